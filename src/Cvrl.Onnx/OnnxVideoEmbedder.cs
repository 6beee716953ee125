using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Cvrl.Embeddings;
using Cvrl.Video;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cvrl.Onnx;

/// <summary>Options of <see cref="OnnxVideoEmbedder"/>.</summary>
public sealed record OnnxEmbedderOptions
{
    /// <summary>
    /// The views a video's embedding averages; null: 10 evenly spaced centre crops with the clip length, stride and size
    /// recorded in the model (<c>cvrl export</c> records the checkpoint's), else Cvrl's defaults (32 x 2 frames, 256).
    /// Use the same views as the embeddings you compare with.
    /// </summary>
    public TestViewOptions? Views { get; init; }

    /// <summary>Views per ONNX Runtime call. Default 8.</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>Decoding threads. Default: one per core.</summary>
    public int Workers { get; init; } = Environment.ProcessorCount;

    /// <summary>Leave undecodable videos out of sets with a warning (default) instead of stopping.</summary>
    public bool SkipBadVideos { get; init; } = true;

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        if (BatchSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchSize must be at least 1.");
        }

        if (Workers < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(Workers), Workers, "Workers must be at least 1.");
        }

        Views?.Validate();
    }
}

/// <summary>Progress of an embedding run: videos done of the total.</summary>
/// <param name="Done">Videos embedded or skipped.</param>
/// <param name="Total">Videos in the run.</param>
/// <param name="Elapsed">Time since the start.</param>
public readonly record struct EmbeddingProgress(int Done, int Total, TimeSpan Elapsed);

/// <summary>
/// Embeds and searches videos with an exported encoder on ONNX Runtime, without TorchSharp: a video's embedding is the
/// mean of the L2-normalised features of its test views (<see cref="TestViews"/>: the same views, geometry and values
/// as Cvrl's <c>VideoEmbedder</c>, so both give the same vectors for the same encoder and options). Sets it makes
/// carry the encoder's fingerprint and can be searched by either embedder.
/// </summary>
/// <example>
/// <code>
/// using var encoder = OnnxEncoder.Load("encoder.onnx");
/// var embedder = new OnnxVideoEmbedder(encoder);
/// EmbeddingSet library = embedder.EmbedFolder("videos/");
/// foreach (var hit in embedder.Search(library, "query.mp4", k: 5))
///     Console.WriteLine($"{hit.Score:F3} {hit.Key}");
/// </code>
/// </example>
public sealed class OnnxVideoEmbedder
{
    private static readonly JsonSerializerOptions Json = new() { Converters = { new JsonStringEnumConverter() } };

    private readonly OnnxEncoder _encoder;
    private readonly TestViews _views;
    private readonly ILogger _logger;

    /// <summary>Creates an embedder.</summary>
    /// <param name="encoder">The encoder (not owned).</param>
    /// <param name="options">Options (validated); null for the defaults.</param>
    /// <param name="logger">Optional logging (skipped videos are warnings).</param>
    /// <exception cref="ArgumentException">The views are smaller than the encoder accepts.</exception>
    public OnnxVideoEmbedder(OnnxEncoder encoder, OnnxEmbedderOptions? options = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        Options = options ?? new OnnxEmbedderOptions();
        Options.Validate();
        _encoder = encoder;
        _logger = logger ?? NullLogger.Instance;
        var views = Options.Views ?? new TestViewOptions
        {
            FramesPerClip = encoder.ClipFrames ?? 32,
            Stride = encoder.ClipStride ?? 2,
            ShortSide = encoder.ShortSide ?? encoder.CropSize ?? 256,
            CropSize = encoder.CropSize ?? 256,
        };
        _views = new TestViews(views);
        var (t, h, w) = encoder.MinimumInput;
        if (views.FramesPerClip < t || views.CropSize < h || views.CropSize < w)
        {
            throw new ArgumentException($"Views of {views.FramesPerClip} x {views.CropSize} x {views.CropSize} are smaller than {encoder.Architecture} accepts ({t} x {h} x {w}).", nameof(options));
        }
    }

    /// <summary>The options.</summary>
    public OnnxEmbedderOptions Options { get; }

    /// <summary>The views each embedding averages (resolved).</summary>
    public TestViewOptions Views => _views.Options;

    /// <summary>The encoder's fingerprint, recorded in every set this embedder makes.</summary>
    public string Fingerprint => _encoder.Fingerprint;

    /// <summary>The embedding of one video.</summary>
    /// <exception cref="VideoDecodeException">The video cannot be decoded (or does not exist).</exception>
    public float[] Embed(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        return EmbedDecoded([_views.Read(Path.GetFullPath(path))])[0];
    }

    /// <summary>Embeds every video in <paramref name="folder"/>; keys are paths relative to it, with '/' separators.</summary>
    /// <param name="folder">The folder (a prepared folder too), or one video file (its key is its file name).</param>
    /// <param name="recursive">Include subfolders (default true).</param>
    /// <param name="progress">Reports videos done.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="InvalidDataException">It holds no videos, or none could be decoded.</exception>
    public EmbeddingSet EmbedFolder(string folder, bool recursive = true, IProgress<EmbeddingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var files = VideoFiles.Find(folder, recursive);
        string root = File.Exists(folder) ? Path.GetDirectoryName(Path.GetFullPath(folder))! : Path.GetFullPath(folder);
        return EmbedMany(files, root, progress, cancellationToken);
    }

    /// <summary>Embeds the given videos; keys are the paths relative to <paramref name="root"/> (default: as given).</summary>
    /// <param name="paths">The videos.</param>
    /// <param name="root">Folder the keys are relative to; null to use the paths as given.</param>
    /// <param name="progress">Reports videos done.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    /// <exception cref="InvalidDataException">No paths, or none could be decoded.</exception>
    /// <exception cref="VideoDecodeException">A video cannot be decoded and <see cref="OnnxEmbedderOptions.SkipBadVideos"/> is off.</exception>
    public EmbeddingSet EmbedMany(IEnumerable<string> paths, string? root = null, IProgress<EmbeddingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(paths);
        var list = paths.ToList();
        if (list.Count == 0)
        {
            throw new InvalidDataException("No videos to embed.");
        }

        var watch = Stopwatch.StartNew();
        var vectors = new float[list.Count][];
        var skipped = new List<(string Path, string Reason)>();
        int window = Math.Max(1, 2 * Options.Workers);
        int done = 0;
        for (int first = 0; first < list.Count; first += window)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int count = Math.Min(window, list.Count - first);
            var decoded = new byte[count][];
            var errors = new VideoDecodeException?[count];
            Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = Options.Workers, CancellationToken = cancellationToken }, i =>
            {
                try
                {
                    decoded[i] = _views.Read(Path.GetFullPath(list[first + i]));
                }
                catch (VideoDecodeException e)
                {
                    errors[i] = e;
                }
            });

            var good = Enumerable.Range(0, count).Where(i => errors[i] is null).ToList();
            for (int i = 0; i < count; i++)
            {
                if (errors[i] is { } e)
                {
                    if (!Options.SkipBadVideos)
                    {
                        throw e;
                    }

                    skipped.Add((list[first + i], e.Message));
                    _logger.LogWarning("Skipped {Path}: {Reason}", list[first + i], e.Message);
                }
            }

            var embedded = good.Count > 0 ? EmbedDecoded([.. good.Select(i => decoded[i])]) : [];
            for (int g = 0; g < good.Count; g++)
            {
                vectors[first + good[g]] = embedded[g];
            }

            done += count;
            progress?.Report(new EmbeddingProgress(done, list.Count, watch.Elapsed));
        }

        if (skipped.Count == list.Count)
        {
            throw new InvalidDataException($"None of the {list.Count} videos could be decoded (first: {skipped[0].Path}: {skipped[0].Reason}).");
        }

        var metadata = new JsonObject
        {
            ["options"] = JsonSerializer.SerializeToNode(Views, Json),
            ["encoder"] = $"{_encoder.Architecture} (ONNX, {Path.GetFileName(_encoder.Path)})",
            ["runtime"] = "onnxruntime",
            ["skipped"] = new JsonArray([.. skipped.Select(s => (JsonNode?)new JsonObject { ["path"] = s.Path, ["reason"] = s.Reason })]),
            ["createdUtc"] = DateTime.UtcNow.ToString("o", System.Globalization.CultureInfo.InvariantCulture),
        };
        var set = new EmbeddingSet(_encoder.FeatureDim > 0 ? _encoder.FeatureDim : vectors.First(v => v is not null).Length, Fingerprint, metadata.ToJsonString());
        for (int i = 0; i < list.Count; i++)
        {
            if (vectors[i] is { } v)
            {
                string full = Path.GetFullPath(list[i]);
                string key = root is null ? list[i] : Path.GetRelativePath(root, full).Replace('\\', '/');
                set.Add(key, v);
            }
        }

        _logger.LogInformation("Embedded {Count} videos ({Skipped} skipped) in {Elapsed}", set.Count, skipped.Count, watch.Elapsed);
        return set;
    }

    /// <summary>Embeds <paramref name="video"/> and returns the <paramref name="k"/> most similar items of <paramref name="set"/>.</summary>
    /// <exception cref="InvalidOperationException">The set was made by another encoder.</exception>
    /// <exception cref="VideoDecodeException">The video cannot be decoded.</exception>
    public IReadOnlyList<SearchHit> Search(EmbeddingSet set, string video, int k = 10)
    {
        CheckCompatible(set);
        return set.Search(Embed(video), k);
    }

    /// <summary>Checks that <paramref name="set"/> was made by this embedder's encoder (by either runtime).</summary>
    /// <exception cref="InvalidOperationException">It was not.</exception>
    public void CheckCompatible(EmbeddingSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        if (!string.Equals(set.ModelFingerprint, Fingerprint, StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"The embeddings were made by encoder {set.ModelFingerprint}; this embedder's encoder is {Fingerprint}. Search with the same encoder.");
        }
    }

    /// <summary>The views recorded in a set's metadata (by either embedder), or null.</summary>
    public static TestViewOptions? ViewsOf(EmbeddingSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        try
        {
            return JsonNode.Parse(set.Metadata)?["options"]?.Deserialize<TestViewOptions>(Json);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Runs the encoder over the views of decoded videos and averages each video's normalised view features.</summary>
    private float[][] EmbedDecoded(IReadOnlyList<byte[]> videos)
    {
        int views = Views.ViewsPerVideo;
        int viewBytes = _views.ViewBytes;
        int total = videos.Count * views;
        int t = Views.FramesPerClip;
        int s = Views.CropSize;
        var sums = new double[videos.Count][];
        for (int start = 0; start < total; start += Options.BatchSize)
        {
            int n = Math.Min(Options.BatchSize, total - start);
            var batch = new float[(long)n * viewBytes];
            for (int j = 0; j < n; j++)
            {
                int view = start + j;
                var bytes = videos[view / views].AsSpan((view % views) * viewBytes, viewBytes);
                var target = batch.AsSpan(j * viewBytes, viewBytes);
                for (int p = 0; p < viewBytes; p++)
                {
                    target[p] = bytes[p] / 255f;
                }
            }

            var features = _encoder.Features(batch, n, t, s, s);
            int dim = features.Length / n;
            for (int j = 0; j < n; j++)
            {
                int video = (start + j) / views;
                var row = features.AsSpan(j * dim, dim);
                double norm = 0;
                foreach (float x in row)
                {
                    norm += (double)x * x;
                }

                float scale = (float)(1 / Math.Max(Math.Sqrt(norm), 1e-12));
                var sum = sums[video] ??= new double[dim];
                for (int d = 0; d < dim; d++)
                {
                    sum[d] += row[d] * scale;
                }
            }
        }

        return [.. sums.Select(sum => sum.Select(x => (float)(x / views)).ToArray())];
    }
}
