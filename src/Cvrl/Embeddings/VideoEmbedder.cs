using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Cvrl.Augment.Video;
using Cvrl.Data;
using Cvrl.Evaluation;
using Cvrl.Video;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Embeddings;

/// <summary>
/// Options for <see cref="VideoEmbedder"/>: a video's embedding is the mean of the L2-normalised pooled features of
/// <see cref="Clips"/> evenly spaced clips (each resized to short side <see cref="ShortSide"/> and cropped to
/// <see cref="CropSize"/>, <see cref="Crops"/> crops per clip). The defaults are the evaluation's test resolution with
/// one centre crop: 10 clips of 32 x 2 frames at 256 x 256.
/// </summary>
public sealed record VideoEmbedderOptions
{
    /// <summary>Evenly spaced clips per video (N). Default 10.</summary>
    public int Clips { get; init; } = 10;

    /// <summary>Crops per clip: 1 (centre, default) or 3 (along the long side).</summary>
    public int Crops { get; init; } = 1;

    /// <summary>Frames per clip. Default 32.</summary>
    public int FramesPerClip { get; init; } = 32;

    /// <summary>Stride between frames. Default 2.</summary>
    public int Stride { get; init; } = 2;

    /// <summary>Shorter side after resizing. Default 256.</summary>
    public int ShortSide { get; init; } = 256;

    /// <summary>Crop size (at most <see cref="ShortSide"/>). Default 256.</summary>
    public int CropSize { get; init; } = 256;

    /// <summary>Views per forward pass. Default 8.</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>Decoding threads. Default: one per core.</summary>
    public int Workers { get; init; } = Environment.ProcessorCount;

    /// <summary>Undecodable videos: leave out with a warning (default; listed in the set's metadata) or stop.</summary>
    public BadVideoPolicy BadVideos { get; init; } = BadVideoPolicy.Skip;

    /// <summary>Decoding options.</summary>
    public VideoReaderOptions Reader { get; init; } = new();

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        try
        {
            ToExtractorOptions().Validate();
        }
        catch (ArgumentOutOfRangeException e)
        {
            // Name this record's property, not the evaluation view option it maps to.
            string name = e.ParamName switch
            {
                "TestClips" => nameof(Clips),
                "TestCrops" => nameof(Crops),
                "TestShortSide" => nameof(ShortSide),
                "TestCropSize" or "TrainCropSize" => nameof(CropSize),
                _ => e.ParamName ?? "options",
            };
            string message = e.Message.Split(" (Parameter", 2)[0].Replace(e.ParamName ?? name, name, StringComparison.Ordinal).Replace("TestShortSide", nameof(ShortSide), StringComparison.Ordinal);
            throw new ArgumentOutOfRangeException(name, e.ActualValue, message);
        }
    }

    /// <summary>The test-view part of these options, as the ONNX Runtime embedder (Cvrl.Onnx) takes it.</summary>
    public TestViewOptions ToTestViewOptions() => ToExtractorOptions().Views.ToTestViewOptions();

    internal FeatureExtractorOptions ToExtractorOptions() => new()
    {
        Views = new EvaluationViewOptions
        {
            FramesPerClip = FramesPerClip,
            Stride = Stride,
            TrainCropSize = CropSize,
            TestClips = Clips,
            TestCrops = Crops,
            TestShortSide = ShortSide,
            TestCropSize = CropSize,
            Reader = Reader ?? throw new ArgumentNullException(nameof(Reader)),
        },
        BatchSize = BatchSize,
        Workers = Workers,
        Normalize = true,
        BadVideos = BadVideos,
    };
}

/// <summary>
/// Turns videos into embeddings with a (pre-trained or any) encoder and searches them: what most applications call
/// after pre-training. Embeds one video, a list or a folder (decoding in parallel, results in input order and independent
/// of the number of workers), and answers nearest-neighbour queries against an <see cref="EmbeddingSet"/> made by the
/// same encoder.
/// </summary>
/// <example>
/// <code>
/// using var encoder = CvrlCheckpoint.LoadEncoder("runs/a/checkpoints/checkpoint-0000000500.cvrl");
/// var embedder = new VideoEmbedder(encoder);
/// EmbeddingSet library = embedder.EmbedFolder("videos/");
/// library.Save("videos.cvrlemb");
/// foreach (var hit in embedder.Search(library, "query.mp4", k: 5))
///     Console.WriteLine($"{hit.Score:F3} {hit.Key}");
/// </code>
/// </example>
public sealed class VideoEmbedder
{
    private readonly nn.Module<Tensor, Tensor> _encoder;
    private readonly FeatureExtractor _extractor;
    private readonly ILogger _logger;
    private string? _fingerprint;

    /// <summary>Creates an embedder.</summary>
    /// <param name="encoder">The encoder (not owned, not modified; run in inference mode).</param>
    /// <param name="options">Options (validated); null for the defaults.</param>
    /// <param name="logger">Optional logging.</param>
    /// <exception cref="ArgumentException">The clips are smaller than the encoder accepts.</exception>
    public VideoEmbedder(nn.Module<Tensor, Tensor> encoder, VideoEmbedderOptions? options = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        Options = options ?? new VideoEmbedderOptions();
        Options.Validate();
        _encoder = encoder;
        _logger = logger ?? NullLogger.Instance;
        _extractor = new FeatureExtractor(encoder, Options.ToExtractorOptions(), _logger);
    }

    /// <summary>The options.</summary>
    public VideoEmbedderOptions Options { get; }

    /// <summary>
    /// Identifies the encoder: "sha256:" and the first 16 hex digits of a hash over its state (parameter and buffer
    /// names, shapes, types and values). Two encoders with the same fingerprint give the same embeddings.
    /// </summary>
    public string Fingerprint => _fingerprint ??= Cvrl.Models.Weights.ModelWeights.Fingerprint(_encoder);

    /// <summary>The embedding of one video.</summary>
    /// <exception cref="VideoDecodeException">The video cannot be decoded.</exception>
    /// <exception cref="DatasetException">The file does not exist.</exception>
    public float[] Embed(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var data = VideoDataset.FromPaths([Path.GetFullPath(path)]);
        var features = new FeatureExtractor(_encoder, Options.ToExtractorOptions() with { BadVideos = BadVideoPolicy.Fail, Workers = 1 }, _logger).TestFeatures(data);
        return features.Mean(0);
    }

    /// <summary>Embeds every video found in <paramref name="folder"/>; keys are paths relative to it, with '/' separators.</summary>
    /// <param name="folder">The folder (a prepared folder too), or one video file (its key is its file name).</param>
    /// <param name="recursive">Include subfolders (default true).</param>
    /// <param name="progress">Reports videos done.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="DatasetException">It holds no videos, or none could be decoded.</exception>
    public EmbeddingSet EmbedFolder(string folder, bool recursive = true, IProgress<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        var data = File.Exists(folder) ? VideoDataset.FromPath(folder) : VideoDataset.FromFolder(folder, recursive: recursive);
        return Embed(data, progress, cancellationToken);
    }

    /// <summary>Embeds the given videos; keys are the paths relative to <paramref name="root"/> (default: as given).</summary>
    /// <param name="paths">The videos.</param>
    /// <param name="root">Folder the keys are relative to; null to use the paths as given.</param>
    /// <param name="progress">Reports videos done.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    /// <exception cref="DatasetException">A file is missing, or none could be decoded.</exception>
    public EmbeddingSet EmbedMany(IEnumerable<string> paths, string? root = null, IProgress<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(paths);
        var list = paths.ToList();
        var data = VideoDataset.FromPaths(list, root: root);
        var set = Embed(data, progress, cancellationToken, root is null ? list : null);
        return set;
    }

    /// <summary>Embeds the videos of a data set (labels are kept in the metadata); keys are paths relative to its root.</summary>
    /// <inheritdoc cref="EmbedMany"/>
    /// <param name="data">The videos.</param>
    /// <param name="progress">Reports videos done.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    public EmbeddingSet Embed(VideoDataset data, IProgress<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default) =>
        Embed(data, progress, cancellationToken, null);

    /// <summary>
    /// Embeds <paramref name="video"/> and returns the <paramref name="k"/> most similar items of <paramref name="set"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">The set was made by another encoder (its fingerprint differs) or has another dimension.</exception>
    /// <exception cref="VideoDecodeException">The video cannot be decoded.</exception>
    public IReadOnlyList<SearchHit> Search(EmbeddingSet set, string video, int k = 10)
    {
        ArgumentNullException.ThrowIfNull(set);
        CheckCompatible(set);
        return set.Search(Embed(video), k);
    }

    /// <summary>Checks that <paramref name="set"/> was made by this embedder's encoder.</summary>
    /// <exception cref="InvalidOperationException">It was not.</exception>
    public void CheckCompatible(EmbeddingSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        if (!string.Equals(set.ModelFingerprint, Fingerprint, StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"The embeddings were made by encoder {set.ModelFingerprint}; this embedder's encoder is {Fingerprint}. Search with the same encoder (the same checkpoint, or the same seed and architecture for a random one).");
        }
    }

    /// <summary>The embedding options stored in a set's metadata (so that queries can use the same ones), or null.</summary>
    public static VideoEmbedderOptions? OptionsOf(EmbeddingSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        try
        {
            return JsonNode.Parse(set.Metadata)?["options"]?.Deserialize<VideoEmbedderOptions>(CvrlJson.Compact);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private EmbeddingSet Embed(VideoDataset data, IProgress<EvaluationProgress>? progress, CancellationToken cancellationToken, IReadOnlyList<string>? keysAsGiven)
    {
        ArgumentNullException.ThrowIfNull(data);
        var watch = Stopwatch.StartNew();
        var features = _extractor.TestFeatures(data, "embedding", progress, cancellationToken);
        var metadata = new JsonObject
        {
            ["options"] = JsonSerializer.SerializeToNode(Options, CvrlJson.Compact),
            ["encoder"] = EvaluationData.Describe(_encoder),
            ["classes"] = new JsonArray([.. data.Classes.Select(c => (JsonNode?)c)]),
            ["skipped"] = new JsonArray([.. features.Skipped.Select(s => (JsonNode?)new JsonObject { ["path"] = s.Path, ["reason"] = s.Reason })]),
            ["createdUtc"] = DateTime.UtcNow.ToString("o", System.Globalization.CultureInfo.InvariantCulture),
        };
        var set = new EmbeddingSet(features.Dim, Fingerprint, metadata.ToJsonString());
        var given = keysAsGiven is null ? null : data.Items.Select((item, i) => (item.Path, Key: keysAsGiven[i])).ToDictionary(x => x.Path, x => x.Key, StringComparer.Ordinal);
        for (int i = 0; i < features.Count; i++)
        {
            string full = features.Paths[i];
            string key = given is not null ? given[full] : Path.GetRelativePath(data.Root, full).Replace('\\', '/');
            set.Add(key, features.Mean(i));
        }

        Log.Embedded(_logger, set.Count, features.Skipped.Count, watch.Elapsed);
        return set;
    }
}
