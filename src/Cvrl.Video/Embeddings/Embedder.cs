using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Cvrl.Video;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cvrl.Embeddings;

/// <summary>A video to embed: its file, its key in the set, and its verified frame count when one is known.</summary>
/// <param name="Path">Full path of the file.</param>
/// <param name="Key">Its key in the embedding set.</param>
/// <param name="Frames">Its verified number of stored frames, or null to trust the container until decoding proves it wrong.</param>
public readonly record struct EmbeddingInput(string Path, string Key, int? Frames = null);

/// <summary>
/// What both embedders share, written once: resolving the views (options, else the encoder's own, else the defaults),
/// decoding the test views of many videos in parallel (<see cref="ViewRun{TViews}"/>), the bad-video rule, progress,
/// averaging each video's normalised view features, keys, the set's metadata, search and the encoder check. A runtime
/// supplies only how to encode a batch of views (<see cref="EncodeViews"/>) and what identifies its encoder.
/// Cvrl's <c>VideoEmbedder</c> (TorchSharp) and Cvrl.Onnx's <c>OnnxVideoEmbedder</c> (ONNX Runtime) derive from it,
/// so the same encoder and views give the same vectors through either, and either searches the other's sets.
/// </summary>
public abstract class Embedder
{
    private static readonly JsonSerializerOptions Json = new() { Converters = { new JsonStringEnumConverter() } };

    /// <summary>Sets up the views and options.</summary>
    /// <param name="options">Options (validated); null for the defaults.</param>
    /// <param name="encoderViews">The views that match the encoder's training clips, when it records them; used when the options give none.</param>
    /// <param name="logger">Optional logging.</param>
    protected Embedder(EmbeddingOptions? options, TestViewOptions? encoderViews, ILogger? logger)
    {
        Options = options ?? new EmbeddingOptions();
        Options.Validate();
        (Views, ViewsSource) = Options.Views is { } given ? (given, "the options")
            : encoderViews is { } own ? (own, "the encoder's training clips")
            : (new TestViewOptions(), "Cvrl's defaults");
        ViewMaker = new TestViews(Views);
        RequireViewMemory(ViewMaker, Options.Workers, Options.BatchSize, "Embedding", "options");
        Logger = logger ?? NullLogger.Instance;
        EmbedderLog.Views(Logger, Views.Clips, Views.Crops, Views.FramesPerClip, Views.Stride, Views.ShortSide, Views.CropSize, ViewsSource);
    }

    /// <summary>The options.</summary>
    public EmbeddingOptions Options { get; }

    /// <summary>The views each embedding averages, resolved: the options', else the encoder's own, else the defaults.</summary>
    public TestViewOptions Views { get; }

    /// <summary>Where <see cref="Views"/> came from: "the options", "the encoder's training clips" or "Cvrl's defaults".</summary>
    public string ViewsSource { get; }

    /// <summary>Identifies the encoder; recorded in every set this embedder makes and checked by <see cref="CheckCompatible(EmbeddingSet)"/>.</summary>
    public abstract string Fingerprint { get; }

    /// <summary>The runtime's name, recorded in the set's metadata ("torchsharp", "onnxruntime").</summary>
    protected abstract string Runtime { get; }

    /// <summary>Makes the views of a file.</summary>
    protected TestViews ViewMaker { get; }

    /// <summary>The logger.</summary>
    protected ILogger Logger { get; }

    /// <summary>The embedding of one video.</summary>
    /// <param name="path">The video.</param>
    /// <returns>The mean of its views' normalised features.</returns>
    /// <exception cref="DatasetException">The file does not exist.</exception>
    /// <exception cref="VideoDecodeException">The video cannot be decoded.</exception>
    public float[] Embed(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = Path.GetFullPath(path);
        RequireFiles([full]);
        var (kept, rejected) = Verify([new EmbeddingInput(full, full)], null, CancellationToken.None);
        if (kept.Count == 0)
        {
            throw new VideoDecodeException(full, VideoDecodeFailure.NoDecodableFrames, rejected.Count > 0 ? rejected[0].Reason : "no frame decodes");
        }

        var encoded = Run(kept, BadVideoPolicy.Fail, workers: 1, "embedding", $"'{full}'", [], null, CancellationToken.None);
        return encoded.Mean(0);
    }

    /// <summary>Embeds every video found in <paramref name="folder"/>; keys are paths relative to it, with '/' separators.</summary>
    /// <param name="folder">The folder (a prepared folder too), or one video file (its key is its file name).</param>
    /// <param name="recursive">Include subfolders (default true).</param>
    /// <param name="progress">Reports videos done.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    /// <returns>The set.</returns>
    /// <exception cref="DirectoryNotFoundException">Neither a folder nor a file exists there.</exception>
    /// <exception cref="DatasetException">It holds no videos, or none could be decoded.</exception>
    public virtual EmbeddingSet EmbedFolder(string folder, bool recursive = true, IProgress<StageProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        var files = VideoFiles.Find(folder, recursive);
        if (files.Count == 0)
        {
            throw new DatasetException($"No video files under '{Path.GetFullPath(folder)}'.");
        }

        string root = File.Exists(folder) ? Path.GetDirectoryName(Path.GetFullPath(folder))! : Path.GetFullPath(folder);
        return EmbedMany(files, root, progress, cancellationToken);
    }

    /// <summary>Embeds the given videos; keys are the paths relative to <paramref name="root"/> (default: as given).</summary>
    /// <param name="paths">The videos.</param>
    /// <param name="root">Folder the keys are relative to; null to use the paths as given.</param>
    /// <param name="progress">Reports videos done.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    /// <returns>The set.</returns>
    /// <exception cref="DatasetException">No paths, a file is missing, or none could be decoded.</exception>
    /// <exception cref="VideoDecodeException">A video cannot be decoded and <see cref="ViewRunOptions.BadVideos"/> is <see cref="BadVideoPolicy.Fail"/>.</exception>
    public EmbeddingSet EmbedMany(IEnumerable<string> paths, string? root = null, IProgress<StageProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(paths);
        var list = paths.ToList();
        if (list.Count == 0)
        {
            throw new DatasetException("There are no videos to embed (the list is empty).");
        }

        string? fullRoot = root is null ? null : Path.GetFullPath(root);
        var inputs = list.Select(p =>
        {
            string full = Path.GetFullPath(p);
            return new EmbeddingInput(full, fullRoot is null ? p : VideoFiles.RelativeKey(fullRoot, full));
        }).ToList();
        RequireFiles([.. inputs.Select(i => i.Path)]);
        var (kept, rejected) = Verify(inputs, fullRoot, cancellationToken);
        if (Options.BadVideos == BadVideoPolicy.Fail && rejected.Count > 0)
        {
            throw new VideoDecodeException(rejected[0].Path, VideoDecodeFailure.NoDecodableFrames, rejected[0].Reason);
        }

        return EmbedVerified(kept, rejected, [], fullRoot is null ? "the given videos" : $"'{fullRoot}'", progress, cancellationToken, fullRoot);
    }

    /// <summary>
    /// A set of windows (moment search): every video of <paramref name="paths"/> cut into windows as
    /// <see cref="ExtractWindows(IReadOnlyList{EmbeddingInput}, WindowOptions?, IProgress{StageProgress}?, CancellationToken)"/> does, one L2-normalised
    /// item per window keyed <see cref="MomentKey"/> (the video's key relative to <paramref name="root"/>, and the window's
    /// span), with the views, the windows' step, the encoder, the runtime, the root and the videos left out in the
    /// metadata.
    /// </summary>
    /// <param name="paths">The videos.</param>
    /// <param name="root">Folder the keys are relative to; null to use the paths as given.</param>
    /// <param name="options">Where windows start and how they are batched; null for the defaults. (Rows are normalised whatever it says.)</param>
    /// <param name="progress">Reports videos done.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    /// <returns>The set.</returns>
    /// <exception cref="DatasetException">No paths, a file is missing, or none could be decoded.</exception>
    public EmbeddingSet EmbedWindows(IEnumerable<string> paths, string? root = null, WindowOptions? options = null, IProgress<StageProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(paths);
        options = (options ?? new WindowOptions()) with { Normalize = true };
        string? fullRoot = root is null ? null : Path.GetFullPath(root);
        var inputs = paths.Select(p => Path.GetFullPath(p)).Select(full => new EmbeddingInput(full, fullRoot is null ? full : VideoFiles.RelativeKey(fullRoot, full))).ToList();
        if (inputs.Count == 0)
        {
            throw new DatasetException("There are no videos to cut into windows (the list is empty).");
        }

        var skipped = new List<SkippedVideo>();
        var rows = new List<(string Key, float[] Row)>();
        int dim = 0;
        foreach (var (_, features, skip) in ExtractWindows(inputs, options, progress, cancellationToken))
        {
            if (skip is not null)
            {
                skipped.Add(skip);
                EmbedderLog.LeftOut(Logger, skip.Path, skip.Reason);
                continue;
            }

            dim = features!.Dim;
            for (int w = 0; w < features.Windows.Count; w++)
            {
                rows.Add((MomentKey.Format(features.Key, features.Windows[w].StartSeconds, features.Windows[w].EndSeconds), features[w].ToArray()));
            }
        }

        if (rows.Count == 0)
        {
            throw new DatasetException($"None of the {inputs.Count} videos could be cut into windows{(skipped.Count > 0 ? $" (first: {skipped[0].Path}: {skipped[0].Reason})" : string.Empty)}.");
        }

        var set = new EmbeddingSet(dim, Fingerprint, WindowMetadata(options, fullRoot, skipped).ToJsonString());
        foreach (var (key, row) in rows)
        {
            set.Add(key, row);
        }

        return set;
    }

    /// <summary>
    /// A <see cref="WindowIndex"/> of videos: every video of <paramref name="paths"/> cut into windows as
    /// <see cref="EmbedWindows"/> cuts them, written one video at a time (memory holds one video's windows, whatever the
    /// library's size), with the same metadata as a set of windows. The index replaces what is at
    /// <paramref name="folder"/> once complete.
    /// </summary>
    /// <param name="paths">The videos.</param>
    /// <param name="folder">The index's folder.</param>
    /// <param name="root">Folder the keys are relative to; null to use the paths as given.</param>
    /// <param name="options">Where windows start and how they are batched; null for the defaults.</param>
    /// <param name="int8">Also write the int8 copy of the rows (for <see cref="ScanPrecision.Int8"/>).</param>
    /// <param name="extraMetadata">Properties added to the recorded metadata (for example where the encoder came from); null for none.</param>
    /// <param name="progress">Reports videos done.</param>
    /// <param name="cancellationToken">Stops the run (no index is left).</param>
    /// <returns>The index, open.</returns>
    /// <exception cref="DatasetException">No paths, or none could be decoded.</exception>
    public WindowIndex IndexWindows(IEnumerable<string> paths, string folder, string? root = null, WindowOptions? options = null, bool int8 = true, JsonObject? extraMetadata = null, IProgress<StageProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(paths);
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        options ??= new WindowOptions();
        string? fullRoot = root is null ? null : Path.GetFullPath(root);
        var inputs = paths.Select(p => Path.GetFullPath(p)).Select(full => new EmbeddingInput(full, fullRoot is null ? full : VideoFiles.RelativeKey(fullRoot, full))).ToList();
        if (inputs.Count == 0)
        {
            throw new DatasetException("There are no videos to cut into windows (the list is empty).");
        }

        var skipped = new List<SkippedVideo>();
        WindowIndexWriter? writer = null;
        try
        {
            foreach (var (_, features, skip) in ExtractWindows(inputs, options, progress, cancellationToken))
            {
                if (skip is not null)
                {
                    skipped.Add(skip);
                    EmbedderLog.LeftOut(Logger, skip.Path, skip.Reason);
                    continue;
                }

                // The metadata is written at the end; the skipped list grows until then.
                writer ??= new WindowIndexWriter(folder, features!.Dim, Fingerprint, WindowMetadata(options, fullRoot, []).ToJsonString(), int8);
                writer.Add(features!);
            }

            if (writer is null)
            {
                throw new DatasetException($"None of the {inputs.Count} videos could be cut into windows{(skipped.Count > 0 ? $" (first: {skipped[0].Path}: {skipped[0].Reason})" : string.Empty)}.");
            }

            var metadata = WindowMetadata(options, fullRoot, skipped);
            foreach (var (name, value) in extraMetadata ?? [])
            {
                metadata[name] = value?.DeepClone();
            }

            writer.Metadata = metadata.ToJsonString();
            writer.Complete();
        }
        finally
        {
            writer?.Dispose();
        }

        return WindowIndex.Open(folder);
    }

    /// <summary>The window options a set of windows was made with (<see cref="EmbedWindows"/>), or null for a set of videos.</summary>
    /// <param name="set">The set.</param>
    public static WindowOptions? WindowsOf(EmbeddingSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        return WindowsOf(set.Metadata);
    }

    /// <summary>The window options an index was made with (<see cref="IndexWindows"/>; null when it does not record them).</summary>
    /// <param name="index">The index.</param>
    public static WindowOptions? WindowsOf(WindowIndex index)
    {
        ArgumentNullException.ThrowIfNull(index);
        return WindowsOf(index.Metadata);
    }

    /// <summary>The metadata of a set or index of windows: views, step, encoder, runtime, root and videos left out.</summary>
    private JsonObject WindowMetadata(WindowOptions options, string? root, IReadOnlyList<SkippedVideo> skipped) => new()
    {
        ["views"] = JsonSerializer.SerializeToNode(Views with { Clips = 1, Crops = 1 }, Json),
        ["windows"] = new JsonObject { ["step"] = options.Step, ["stepSeconds"] = options.StepSeconds },
        ["encoder"] = DescribeEncoder(),
        ["runtime"] = Runtime,
        ["classes"] = new JsonArray(),
        ["root"] = root,
        ["skipped"] = new JsonArray([.. skipped.Select(x => (JsonNode?)new JsonObject { ["path"] = x.Path, ["reason"] = x.Reason })]),
        ["createdUtc"] = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture),
    };

    private static WindowOptions? WindowsOf(string metadata)
    {
        if (JsonNode.Parse(metadata)?["windows"] is not JsonObject windows)
        {
            return null;
        }

        return new WindowOptions { Step = windows["step"]?.GetValue<int>() ?? 8, StepSeconds = windows["stepSeconds"]?.GetValue<double?>(), Normalize = true };
    }

    /// <summary>
    /// Embeds <paramref name="video"/> and returns the <paramref name="k"/> most similar items of <paramref name="set"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">The set was made by another encoder (its fingerprint differs).</exception>
    /// <exception cref="VideoDecodeException">The video cannot be decoded.</exception>
    public IReadOnlyList<SearchHit> Search(EmbeddingSet set, string video, int k = 10)
    {
        ArgumentNullException.ThrowIfNull(set);
        CheckCompatible(set);
        return set.Search(Embed(video), k);
    }

    /// <summary>Checks that <paramref name="set"/> was made by this embedder's encoder (through either runtime).</summary>
    /// <exception cref="InvalidOperationException">It was not.</exception>
    public void CheckCompatible(EmbeddingSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        if (!string.Equals(set.ModelFingerprint, Fingerprint, StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"The embeddings were made by encoder {set.ModelFingerprint}; this embedder's encoder is {Fingerprint}. Search with the same encoder (the same checkpoint or ONNX model, or the same seed and architecture for a random one).");
        }
    }

    /// <summary>Checks that <paramref name="index"/> was made by this embedder's encoder (through either runtime).</summary>
    /// <exception cref="InvalidOperationException">It was not.</exception>
    public void CheckCompatible(WindowIndex index)
    {
        ArgumentNullException.ThrowIfNull(index);
        if (!string.Equals(index.ModelFingerprint, Fingerprint, StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"The index in '{index.Folder}' was made by encoder {index.ModelFingerprint}; this embedder's encoder is {Fingerprint}. Search with the same encoder.");
        }
    }

    /// <summary>The views recorded in an index's metadata, or null.</summary>
    public static TestViewOptions? ViewsOf(WindowIndex index)
    {
        ArgumentNullException.ThrowIfNull(index);
        return ViewsOf(index.Metadata);
    }

    /// <summary>The views recorded in a set's metadata (by either embedder, in any version of the format), or null.</summary>
    public static TestViewOptions? ViewsOf(EmbeddingSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        return ViewsOf(set.Metadata);
    }

    private static TestViewOptions? ViewsOf(string json)
    {
        try
        {
            var metadata = JsonNode.Parse(json);
            return (metadata?["views"] ?? metadata?["options"])?.Deserialize<TestViewOptions>(Json);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// Encodes <paramref name="count"/> views, planar RGB uint8 <c>[count, 3, T, S, S]</c> (T and S from
    /// <see cref="Views"/>; values become floats as <c>x / 255</c>), and returns one feature row per view, row-major,
    /// L2-normalised when <paramref name="normalize"/> says so. Called from one thread at a time.
    /// </summary>
    /// <param name="views">The views' bytes.</param>
    /// <param name="count">How many views.</param>
    /// <param name="normalize">Divide each row by its L2 norm (embeddings) or not (dense features as the encoder pools them).</param>
    /// <returns><paramref name="count"/> rows of the feature dimension.</returns>
    protected abstract float[] EncodeViews(ReadOnlySpan<byte> views, int count, bool normalize);

    /// <summary>
    /// Dense features of videos (the features localisation models and moment search take): windows of the embedder's
    /// clip length and stride (<see cref="Views"/>), one every <see cref="WindowOptions.Step"/> frames (or
    /// <see cref="WindowOptions.StepSeconds"/>), each the centre crop of the short-side-resized frames as the test views
    /// are, with its start and end in seconds. Every video is decoded once, front to back (windows share their frames, no
    /// seek per window), on <see cref="WindowOptions.Workers"/> threads, and windows are encoded in batches across videos.
    /// Results come back in input order as each video is done; a video that fails is reported as skipped (or stops the
    /// run, with <see cref="BadVideoPolicy.Fail"/>).
    /// </summary>
    /// <param name="videos">The videos and their keys.</param>
    /// <param name="options">Where windows start and how they are batched (validated); null for the defaults.</param>
    /// <param name="progress">Reports videos done.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    /// <returns>Per video, in order: its position in <paramref name="videos"/>, and its features or why it was skipped.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    /// <exception cref="FileNotFoundException">A video does not exist.</exception>
    public IEnumerable<(int Index, WindowFeatures? Features, SkippedVideo? Skipped)> ExtractWindows(IReadOnlyList<EmbeddingInput> videos, WindowOptions? options = null, IProgress<StageProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(videos);
        options ??= new WindowOptions();
        options.Validate();
        RequireFiles([.. videos.Select(v => v.Path)]);
        var views = Views with { Clips = 1, Crops = 1 };
        MemoryBudget.Require(MemoryBudget.Product(4L * options.BatchSize, 3, views.FramesPerClip, views.CropSize, views.CropSize), $"dense features with windows of {views.FramesPerClip} frames at {views.CropSize}x{views.CropSize} in batches of {options.BatchSize}", nameof(options), "use smaller batches or crops");
        return new WindowRun(views, options, (bytes, count, normalize) => EncodeViews(bytes, count, normalize)).Run(videos, progress, cancellationToken);
    }

    /// <summary>The dense features of one video (see <see cref="ExtractWindows(IReadOnlyList{EmbeddingInput}, WindowOptions?, IProgress{StageProgress}?, CancellationToken)"/>).</summary>
    /// <param name="path">The video.</param>
    /// <param name="options">Options; null for the defaults.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    /// <exception cref="VideoDecodeException">The video cannot be decoded.</exception>
    public WindowFeatures ExtractWindows(string path, WindowOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = Path.GetFullPath(path);
        var result = ExtractWindows([new EmbeddingInput(full, Path.GetFileName(full))], (options ?? new WindowOptions()) with { BadVideos = BadVideoPolicy.Fail, Workers = 1 }, null, cancellationToken).Single();
        return result.Features!;
    }

    /// <summary>Encodes <paramref name="count"/> views of this embedder's geometry (see <see cref="EncodeViews"/>); for benchmarks.</summary>
    internal float[] EncodeForBenchmark(ReadOnlySpan<byte> views, int count, bool normalize) => EncodeViews(views, count, normalize);

    /// <summary>Describes the encoder for the set's metadata ("encoder").</summary>
    protected abstract JsonNode? DescribeEncoder();

    /// <summary>
    /// Checks videos before decoding: returns those to embed, with their verified frame counts where the runtime has a
    /// video index, and those left out with the reason. The default keeps every video and trusts its container.
    /// </summary>
    /// <param name="videos">The videos (files that exist).</param>
    /// <param name="root">The folder they come from, when there is one (an index may keep its cache there).</param>
    /// <param name="cancellationToken">Stops the check.</param>
    /// <returns>The videos to embed, in order, and those left out.</returns>
    protected virtual (IReadOnlyList<EmbeddingInput> Kept, IReadOnlyList<SkippedVideo> Rejected) Verify(IReadOnlyList<EmbeddingInput> videos, string? root, CancellationToken cancellationToken) =>
        (videos, []);

    /// <summary>
    /// Embeds checked videos into a new set: decodes their views on <see cref="ViewRunOptions.Workers"/> threads, encodes
    /// them in batches of <see cref="ViewRunOptions.BatchSize"/> views, averages each video's rows, and records the views,
    /// the encoder, the runtime, the classes and the videos left out (<paramref name="rejected"/> first) in the metadata.
    /// </summary>
    /// <param name="videos">The videos to embed.</param>
    /// <param name="rejected">Videos already left out.</param>
    /// <param name="classes">Class names to record (empty when unlabelled).</param>
    /// <param name="where">What the videos are, for the error when none decodes.</param>
    /// <param name="progress">Reports videos done.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    /// <param name="root">The folder the keys are relative to, recorded as "root" (explore reports find the videos there); null when there is none.</param>
    /// <returns>The set.</returns>
    /// <exception cref="DatasetException">None could be decoded.</exception>
    protected EmbeddingSet EmbedVerified(IReadOnlyList<EmbeddingInput> videos, IReadOnlyList<SkippedVideo> rejected, IReadOnlyList<string> classes, string where, IProgress<StageProgress>? progress, CancellationToken cancellationToken, string? root = null)
    {
        ArgumentNullException.ThrowIfNull(videos);
        ArgumentNullException.ThrowIfNull(rejected);
        ArgumentNullException.ThrowIfNull(classes);
        var watch = Stopwatch.StartNew();
        var encoded = Run(videos, Options.BadVideos, Options.Workers, "embedding", where, rejected, progress, cancellationToken);
        var metadata = new JsonObject
        {
            ["views"] = JsonSerializer.SerializeToNode(Views, Json),
            ["encoder"] = DescribeEncoder(),
            ["runtime"] = Runtime,
            ["classes"] = new JsonArray([.. classes.Select(c => (JsonNode?)c)]),
            ["root"] = root,
            ["skipped"] = new JsonArray([.. encoded.Skipped.Select(s => (JsonNode?)new JsonObject { ["path"] = s.Path, ["reason"] = s.Reason })]),
            ["createdUtc"] = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture),
        };
        var set = new EmbeddingSet(encoded.Dim, Fingerprint, metadata.ToJsonString());
        for (int k = 0; k < encoded.Kept.Count; k++)
        {
            set.Add(videos[encoded.Kept[k]].Key, encoded.Mean(k));
        }

        EmbedderLog.Embedded(Logger, set.Count, encoded.Skipped.Count, watch.Elapsed);
        return set;
    }

    /// <summary>
    /// Refuses views whose buffers would exceed <see cref="MemoryBudget"/>: the videos decoded ahead (at most twice the
    /// workers, <see cref="ViewRun{TViews}"/>'s look-ahead, plus one) as bytes, and a batch of views as float32.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">They would.</exception>
    public static void RequireViewMemory(TestViews views, int workers, int batchSize, string what, string parameterName)
    {
        ArgumentNullException.ThrowIfNull(views);
        long ahead = Math.Max(2, 2L * workers) + 1;
        long bytes = MemoryBudget.Product(ahead, views.VideoBytes);
        long batch = MemoryBudget.Product(batchSize, views.ViewBytes, 1 + sizeof(float));
        bytes = bytes < 0 || batch < 0 ? -1 : bytes + batch;
        var o = views.Options;
        MemoryBudget.Require(bytes, $"{what} with {o.ViewsPerVideo} views of {o.FramesPerClip} frames at {o.CropSize}x{o.CropSize} per video ({ahead} videos decoded ahead, batches of {batchSize})", parameterName, "use fewer clips or crops, fewer frames, smaller crops, fewer workers or a smaller batch");
    }

    private EncodedVideos Run(IReadOnlyList<EmbeddingInput> videos, BadVideoPolicy policy, int workers, string stage, string where, IReadOnlyList<SkippedVideo> rejected, IProgress<StageProgress>? progress, CancellationToken cancellationToken)
    {
        int viewBytes = ViewMaker.ViewBytes;
        var run = new ViewRun<byte[]>
        {
            Videos = [.. videos.Select(v => v.Path)],
            ViewsPerVideo = Views.ViewsPerVideo,
            Decode = i => ViewMaker.Read(videos[i].Path, videos[i].Frames),
            BatchSize = Options.BatchSize,
            Workers = workers,
            BadVideos = policy,
            Logger = Logger,
        };
        byte[] batchBytes = [];
        return run.Encode(
            batch =>
            {
                if (batchBytes.Length != batch.Count * viewBytes)
                {
                    batchBytes = new byte[batch.Count * viewBytes];
                }

                for (int j = 0; j < batch.Count; j++)
                {
                    batch[j].Views.AsSpan(batch[j].View * viewBytes, viewBytes).CopyTo(batchBytes.AsSpan(j * viewBytes));
                }

                return EncodeViews(batchBytes, batch.Count, normalize: true);
            },
            stage,
            where,
            rejected,
            progress,
            cancellationToken);
    }

    private static void RequireFiles(IReadOnlyList<string> paths)
    {
        var missing = paths.Where(p => !File.Exists(p)).ToList();
        if (missing.Count > 0)
        {
            throw new DatasetException($"{missing.Count} of {paths.Count} video(s) do not exist, first: {string.Join(", ", missing.Take(5))}.", missing);
        }
    }
}

/// <summary>Source-generated log messages of the embedders.</summary>
internal static partial class EmbedderLog
{
    [LoggerMessage(EventId = 310, Level = LogLevel.Information, Message = "Embedding views: {Clips} clip(s) x {Crops} crop(s) of {Frames} frames at stride {Stride}, short side {ShortSide}, crop {Crop} (from {Source})")]
    public static partial void Views(ILogger logger, int clips, int crops, int frames, int stride, int shortSide, int crop, string source);

    [LoggerMessage(EventId = 311, Level = LogLevel.Information, Message = "Embedded {Count} videos ({Skipped} skipped) in {Elapsed}")]
    public static partial void Embedded(ILogger logger, int count, int skipped, TimeSpan elapsed);

    [LoggerMessage(EventId = 300, Level = LogLevel.Warning, Message = "Leaving out video {Path}: {Reason}")]
    public static partial void LeftOut(ILogger logger, string path, string reason);
}
