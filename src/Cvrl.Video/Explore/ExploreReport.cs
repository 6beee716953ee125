using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cvrl.Embeddings;
using Cvrl.Video;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cvrl.Explore;

/// <summary>Options of an explore report (<see cref="ExploreReport.Write"/>).</summary>
public sealed record ExploreOptions
{
    /// <summary>How the map is laid out. Default <see cref="MapMethod.Pca"/>.</summary>
    public MapMethod Map { get; init; } = MapMethod.Pca;

    /// <summary>t-SNE settings (with <see cref="MapMethod.Tsne"/>).</summary>
    public TsneOptions Tsne { get; init; } = new();

    /// <summary>Nearest neighbours listed for each video (as <c>cvrl search</c> ranks them). Default 10.</summary>
    public int Neighbours { get; init; } = 10;

    /// <summary>Neighbours that vote in the leave-one-out kNN accuracy (the rule of <c>cvrl knn</c>). Default 20.</summary>
    public int KnnK { get; init; } = 20;

    /// <summary>kNN vote weight <c>exp(similarity / KnnTemperature)</c>; null weighs every neighbour 1. Default 0.07.</summary>
    public double? KnnTemperature { get; init; } = 0.07;

    /// <summary>
    /// Whether the first folder of each key is its class. Null (default): yes when the set records classes, or when every
    /// key lies in a folder and there are at least two folders (the layout of class folders).
    /// </summary>
    public bool? ClassFolders { get; init; }

    /// <summary>The folder the set's keys are relative to, for thumbnails; null for the folder the set records.</summary>
    public string? VideoRoot { get; init; }

    /// <summary>Make thumbnail strips (one extra decoding pass over the videos). Default true.</summary>
    public bool Thumbnails { get; init; } = true;

    /// <summary>Frames per thumbnail strip, evenly spread over each video. Default 4.</summary>
    public int ThumbnailFrames { get; init; } = 4;

    /// <summary>Height of the thumbnails in pixels. Default 72.</summary>
    public int ThumbnailHeight { get; init; } = 72;

    /// <summary>Also write the TensorBoard projector files (tensors, metadata, sprite, config) under <c>projector/</c>. Default false.</summary>
    public bool Projector { get; init; }

    /// <summary>Videos decoded at once for thumbnails. Default: the machine's cores, at most 4.</summary>
    public int Workers { get; init; } = Math.Clamp(Environment.ProcessorCount, 1, 4);

    /// <summary>Title of the page; null for the set's file name or "Embeddings".</summary>
    public string? Title { get; init; }

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public void Validate()
    {
        Tsne.Validate();
        Require(Neighbours is >= 1 and <= 100, nameof(Neighbours), Neighbours, "between 1 and 100");
        Require(KnnK is >= 1 and <= 1000, nameof(KnnK), KnnK, "between 1 and 1000");
        Require(KnnTemperature is null || KnnTemperature > 0, nameof(KnnTemperature), KnnTemperature, "positive (or null)");
        Require(ThumbnailFrames is >= 1 and <= 16, nameof(ThumbnailFrames), ThumbnailFrames, "between 1 and 16");
        Require(ThumbnailHeight is >= 16 and <= 256, nameof(ThumbnailHeight), ThumbnailHeight, "between 16 and 256 pixels");
        Require(Workers is >= 1 and <= 64, nameof(Workers), Workers, "between 1 and 64");

        static void Require(bool ok, string name, object? value, string expected)
        {
            if (!ok)
            {
                throw new ArgumentOutOfRangeException(name, value, $"{name} must be {expected}.");
            }
        }
    }
}

/// <summary>Two classes the leave-one-out kNN confuses.</summary>
/// <param name="Actual">The videos' class.</param>
/// <param name="Predicted">The class their neighbours voted for.</param>
/// <param name="Count">How many videos.</param>
public sealed record ClassConfusion(string Actual, string Predicted, int Count);

/// <summary>The leave-one-out kNN accuracy of a labelled set: each video classified by the votes of its nearest others.</summary>
/// <param name="K">Neighbours that voted (clamped to the set's size less one).</param>
/// <param name="Temperature">Vote weight temperature, or null for equal votes.</param>
/// <param name="Correct">Videos classified correctly.</param>
/// <param name="Total">Videos.</param>
/// <param name="Confusions">Pairs of classes confused, most frequent first (ties by name).</param>
public sealed record KnnSummary(int K, double? Temperature, int Correct, int Total, IReadOnlyList<ClassConfusion> Confusions)
{
    /// <summary>Share classified correctly, in [0, 1].</summary>
    public double Accuracy => Total == 0 ? 0 : (double)Correct / Total;
}

/// <summary>What <see cref="ExploreReport.Write"/> wrote and found.</summary>
/// <param name="IndexPath">The page to open (<c>index.html</c>).</param>
/// <param name="Videos">Videos on the map.</param>
/// <param name="Layout">The map.</param>
/// <param name="Classes">Class names, empty when the set is unlabelled.</param>
/// <param name="Labels">Each video's class index, or -1; empty when unlabelled.</param>
/// <param name="Neighbours">Each video's nearest neighbours as listed on the page.</param>
/// <param name="Knn">The leave-one-out kNN result, or null when unlabelled.</param>
/// <param name="Thumbnails">Videos with a thumbnail strip.</param>
/// <param name="ThumbnailFailures">Videos without one, and why.</param>
/// <param name="ProjectorFolder">Where the TensorBoard files are, or null.</param>
/// <param name="NeighboursElapsed">Time to find every video's neighbours.</param>
/// <param name="ThumbnailsElapsed">Time of the thumbnail pass.</param>
public sealed record ExploreSummary(
    string IndexPath,
    int Videos,
    EmbeddingLayout Layout,
    IReadOnlyList<string> Classes,
    IReadOnlyList<int> Labels,
    IReadOnlyList<IReadOnlyList<SearchHit>> Neighbours,
    KnnSummary? Knn,
    int Thumbnails,
    IReadOnlyList<SkippedVideo> ThumbnailFailures,
    string? ProjectorFolder,
    TimeSpan NeighboursElapsed,
    TimeSpan ThumbnailsElapsed);

/// <summary>
/// Writes a static, self-contained report of an embedding set that opens from <c>file://</c> with no network and no
/// server: a 2D map of every video drawn on a canvas (coloured by class when the set has classes), thumbnail strips on
/// hover, each video's nearest neighbours with their cosine scores on click (the list <c>cvrl search</c> gives for it),
/// a file-name filter, the leave-one-out kNN accuracy and the most confused classes, and which encoder made the set.
/// Optionally the four files of TensorBoard's embedding projector.
/// </summary>
/// <example>
/// <code>
/// var set = EmbeddingSet.Load("videos.cvrlemb");
/// var report = ExploreReport.Write(set, "explore/", new ExploreOptions { VideoRoot = "videos/" });
/// Console.WriteLine($"open {report.IndexPath}");
/// </code>
/// </example>
public static class ExploreReport
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    /// <summary>
    /// Writes the report into <paramref name="folder"/> (created). An earlier report there stays whole until the new one is
    /// complete: thumbnails go to a folder of this run's own (<c>thumbs-{run}/</c>), the projector files to a staging
    /// folder, and the page's data (<c>data.js</c>) is replaced last, in one rename; then the earlier report's thumbnails
    /// and projector files are removed. An interrupted run leaves the earlier report as it was (its unfinished files are
    /// removed by the next run). One report is written into a folder at a time (<see cref="FolderLock"/>).
    /// </summary>
    /// <param name="set">The embeddings (from either runtime).</param>
    /// <param name="folder">Output folder.</param>
    /// <param name="options">Options (validated); null for the defaults.</param>
    /// <param name="logger">Optional logging.</param>
    /// <param name="progress">Reports the stages (neighbours, map, thumbnails).</param>
    /// <param name="cancellationToken">Stops the work.</param>
    /// <returns>What was written.</returns>
    /// <exception cref="ArgumentException">The set holds fewer than two videos (four for t-SNE).</exception>
    /// <exception cref="DirectoryNotFoundException">Thumbnails are asked for and the videos' folder does not exist or is not known.</exception>
    /// <exception cref="FolderInUseException">Another report is being written into <paramref name="folder"/>.</exception>
    public static ExploreSummary Write(EmbeddingSet set, string folder, ExploreOptions? options = null, ILogger? logger = null, IProgress<StageProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(set);
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        options ??= new ExploreOptions();
        options.Validate();
        logger ??= NullLogger.Instance;
        EmbeddingMap.RequireItems(set, options.Map);

        string? root = options.Thumbnails ? VideoRootOf(set, options.VideoRoot) : null;
        using var claim = FolderLock.Acquire(folder, "writing an explore report", logger);
        var (classes, labels) = ClassesOf(set, options.ClassFolders);

        // Every list the page shows and the kNN vote come from one pass of the set's own search.
        var watch = Stopwatch.StartNew();
        int shown = Math.Min(options.Neighbours, set.Count - 1);
        int knnK = Math.Min(options.KnnK, set.Count - 1);
        int needed = Math.Max(shown, classes.Count > 0 ? knnK : 0);
        if (options.Map == MapMethod.Tsne)
        {
            needed = Math.Max(needed, EmbeddingMap.TsneNeighbours(set.Count, options.Tsne));
        }

        progress?.Report(new StageProgress("neighbours", 0, set.Count, TimeSpan.Zero));
        var all = EmbeddingMap.NearestNeighbours(set, needed, cancellationToken);
        var neighboursElapsed = watch.Elapsed;
        progress?.Report(new StageProgress("neighbours", set.Count, set.Count, neighboursElapsed));
        ExploreLog.Neighbours(logger, set.Count, needed, neighboursElapsed);

        var layout = options.Map == MapMethod.Tsne
            ? EmbeddingMap.Tsne(set, options.Tsne, all, new Progress<int>(step => progress?.Report(new StageProgress("t-SNE", step, options.Tsne.Iterations, watch.Elapsed - neighboursElapsed))), cancellationToken)
            : EmbeddingMap.Pca(set, cancellationToken);
        ExploreLog.Map(logger, layout.Method.ToString(), layout.Elapsed);

        var knn = classes.Count > 0 ? LeaveOneOutKnn(labels, classes, all, knnK, options.KnnTemperature) : null;

        string run = Guid.NewGuid().ToString("N")[..12];
        Thumbnails thumbs;
        TimeSpan thumbnailsElapsed;
        List<IReadOnlyList<SearchHit>> shownLists;
        string? projector = null;
        bool swapped = false;
        try
        {
            thumbs = new Thumbnails(set, root, options, folder, ThumbsPrefix + run);
            var thumbWatch = Stopwatch.StartNew();
            if (root is not null)
            {
                thumbs.Make(logger, progress, cancellationToken);
            }

            thumbnailsElapsed = thumbWatch.Elapsed;
            shownLists = all.Select(h => (IReadOnlyList<SearchHit>)[.. h.Take(shown)]).ToList();
            string? stagedProjector = null;
            if (options.Projector)
            {
                projector = Path.Combine(folder, "projector");
                stagedProjector = Path.Combine(folder, StagingPrefix + run);
                ProjectorExport.Write(set, stagedProjector, classes, labels, thumbs);
            }

            // The swap: everything of this run exists; the page's data switches to it in one rename.
            cancellationToken.ThrowIfCancellationRequested();
            foreach (var (name, text) in ExploreAssets.Files.Where(f => f.Name != "index.html"))
            {
                AtomicFile.Write(Path.Combine(folder, name), s => s.Write(Encoding.UTF8.GetBytes(text)));
            }

            WriteData(set, folder, options, layout, classes, labels, shownLists, knn, thumbs);
            swapped = true; // from here the page shows this run's thumbnails
            foreach (var (name, text) in ExploreAssets.Files.Where(f => f.Name == "index.html"))
            {
                AtomicFile.Write(Path.Combine(folder, name), s => s.Write(Encoding.UTF8.GetBytes(text)));
            }

            if (stagedProjector is not null)
            {
                string old = Path.Combine(folder, StagingPrefix + run + "-old");
                if (Directory.Exists(projector))
                {
                    Directory.Move(projector!, old);
                }

                Directory.Move(stagedProjector, projector!);
            }
        }
        finally
        {
            if (!swapped)
            {
                // Interrupted or failed before the swap: the earlier report stays as it was; this run's files go.
                RemoveRun(folder, run, logger);
            }
        }

        RemoveEarlierRuns(folder, ThumbsPrefix + run, logger);

        return new ExploreSummary(Path.GetFullPath(Path.Combine(folder, "index.html")), set.Count, layout, classes, labels, shownLists, knn, thumbs.Made, thumbs.Failures, projector, neighboursElapsed, thumbnailsElapsed);
    }

    /// <summary>The prefix of a run's thumbnail folder (<c>thumbs-{run}</c>).</summary>
    private const string ThumbsPrefix = "thumbs-";

    /// <summary>The prefix of a run's staging folders.</summary>
    private const string StagingPrefix = ".cvrl-staging-";

    /// <summary>Removes the files of run <paramref name="run"/> (its thumbnails and staging folders).</summary>
    private static void RemoveRun(string folder, string run, ILogger logger)
    {
        foreach (string dir in new[] { ThumbsPrefix + run, StagingPrefix + run }.Select(n => Path.Combine(folder, n)).Where(Directory.Exists))
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                ExploreLog.NotRemoved(logger, dir, e.Message);
            }
        }
    }

    /// <summary>
    /// Removes what earlier or interrupted runs left: thumbnail folders other than <paramref name="current"/> and staging
    /// folders, both named as Cvrl names them (nothing else in the folder is touched).
    /// </summary>
    private static void RemoveEarlierRuns(string folder, string current, ILogger logger)
    {
        foreach (string dir in Directory.EnumerateDirectories(folder))
        {
            string name = Path.GetFileName(dir);
            bool earlierThumbs = name.StartsWith(ThumbsPrefix, StringComparison.Ordinal) && name != current
                && name.Length == ThumbsPrefix.Length + 12 && name[ThumbsPrefix.Length..].All(char.IsAsciiHexDigitLower);
            if ((earlierThumbs || name.StartsWith(StagingPrefix, StringComparison.Ordinal)) && new DirectoryInfo(dir).LinkTarget is null)
            {
                try
                {
                    Directory.Delete(dir, recursive: true);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    ExploreLog.NotRemoved(logger, dir, e.Message);
                }
            }
        }
    }

    /// <summary>
    /// The map as a self-contained SVG image (points coloured by class with a legend, each point's title its key): for
    /// notebooks and documents, where the interactive page cannot run. The page (<see cref="Write"/>) draws the same map.
    /// </summary>
    /// <param name="set">The set.</param>
    /// <param name="layout">Its layout (<see cref="EmbeddingMap.Pca"/> or <see cref="EmbeddingMap.Tsne"/>).</param>
    /// <param name="classFolders">As <see cref="ExploreOptions.ClassFolders"/>.</param>
    /// <param name="width">Width in pixels (at least 200).</param>
    /// <param name="height">Height in pixels (at least 150).</param>
    /// <exception cref="ArgumentException">The layout is not of this set.</exception>
    public static string MapSvg(EmbeddingSet set, EmbeddingLayout layout, bool? classFolders = null, int width = 640, int height = 440)
    {
        ArgumentNullException.ThrowIfNull(set);
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 200);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 150);
        if (layout.X.Length != set.Count || layout.Y.Length != set.Count)
        {
            throw new ArgumentException($"The layout has {layout.X.Length} points; the set holds {set.Count} videos.", nameof(layout));
        }

        var (classes, labels) = ClassesOf(set, classFolders);
        var c = CultureInfo.InvariantCulture;
        int legend = classes.Count > 0 ? Math.Min(220, width / 3) : 0;
        double plotWidth = width - legend, pad = 16;
        float minX = layout.X.Min(), maxX = layout.X.Max(), minY = layout.Y.Min(), maxY = layout.Y.Max();
        double scale = Math.Min((plotWidth - (2 * pad)) / Math.Max(maxX - minX, 1e-9), (height - (2 * pad)) / Math.Max(maxY - minY, 1e-9));
        double ox = (plotWidth - (scale * (maxX - minX))) / 2, oy = (height - (scale * (maxY - minY))) / 2;
        double radius = Math.Clamp(600 / Math.Sqrt(set.Count), 1.5, 5);
        var svg = new StringBuilder()
            .Append(c, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">")
            .Append(c, $"<rect width=\"{width}\" height=\"{height}\" fill=\"#fff\"/>");
        for (int i = 0; i < set.Count; i++)
        {
            double x = ox + ((layout.X[i] - minX) * scale), y = height - (oy + ((layout.Y[i] - minY) * scale));
            string colour = classes.Count > 0 ? ColourOf(labels[i]) : "#2563eb";
            svg.Append(c, $"<circle cx=\"{x:0.#}\" cy=\"{y:0.#}\" r=\"{radius:0.#}\" fill=\"{colour}\" fill-opacity=\"0.85\"><title>{Xml(set.Keys[i])}</title></circle>");
        }

        for (int k = 0; k < classes.Count && k < 30; k++)
        {
            double y = 20 + (k * 18);
            svg.Append(c, $"<circle cx=\"{plotWidth + 10:0}\" cy=\"{y:0}\" r=\"5\" fill=\"{ColourOf(k)}\"/><text x=\"{plotWidth + 20:0}\" y=\"{y + 4:0}\">{Xml(classes[k])} ({labels.Count(l => l == k)})</text>");
        }

        string method = layout.Method == MapMethod.Pca ? "PCA" : "t-SNE";
        svg.Append(c, $"<text x=\"8\" y=\"{height - 8}\" fill=\"#6b7280\">{set.Count} videos, {method}</text></svg>");
        return svg.ToString();

        static string Xml(string text) => text.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal).Replace(">", "&gt;", StringComparison.Ordinal).Replace("\"", "&quot;", StringComparison.Ordinal);
    }

    /// <summary>The colour of class <paramref name="index"/> on the map (the page's palette; grey for -1).</summary>
    internal static string ColourOf(int index) => index < 0 ? "#9ca3af"
        : index < Palette.Length ? Palette[index]
        : string.Create(CultureInfo.InvariantCulture, $"hsl({(index * 137.508) % 360:0.#},65%,45%)");

    private static readonly string[] Palette =
    [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
        "#393b79", "#e7969c", "#637939", "#fd8d3c", "#6baed6", "#843c39", "#31a354", "#ce6dbd", "#9c9ede", "#bd9e39",
    ];

    /// <summary>
    /// The classes of a set's videos from its keys: the first folder of each key (see <see cref="ExploreOptions.ClassFolders"/>).
    /// </summary>
    /// <param name="set">The set.</param>
    /// <param name="classFolders">True: the first folder is the class; false: no classes; null: decide as documented.</param>
    /// <returns>Class names (sorted, ordinal) and each video's class index (-1 for a video outside every class); both empty without classes.</returns>
    public static (IReadOnlyList<string> Classes, IReadOnlyList<int> Labels) ClassesOf(EmbeddingSet set, bool? classFolders = null)
    {
        ArgumentNullException.ThrowIfNull(set);
        if (classFolders == false)
        {
            return ([], []);
        }

        var recorded = RecordedClasses(set);
        var folders = set.Keys.Select(k => k.IndexOf('/', StringComparison.Ordinal) is int at and > 0 ? k[..at] : null).ToList();
        if (classFolders is null && recorded.Count == 0 && (folders.Any(f => f is null) || folders.Distinct().Count() < 2))
        {
            return ([], []);
        }

        var classes = recorded.Count > 0 ? recorded : [.. folders.Where(f => f is not null).Select(f => f!).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
        var index = classes.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => p.i, StringComparer.Ordinal);
        return (classes, [.. folders.Select(f => f is not null && index.TryGetValue(f, out int i) ? i : -1)]);
    }

    /// <summary>
    /// Leave-one-out kNN: each labelled video is classified by its <paramref name="k"/> nearest other videos (from
    /// <paramref name="neighbours"/>, best first), each voting <c>exp(score / temperature)</c> (or 1) for its class; ties
    /// go to the lower class index. Videos without a class neither vote nor count.
    /// </summary>
    /// <param name="labels">Class index per video, or -1.</param>
    /// <param name="classes">Class names.</param>
    /// <param name="neighbours">Each video's neighbours, best first, at least <paramref name="k"/> per video.</param>
    /// <param name="k">Voters.</param>
    /// <param name="temperature">Vote temperature, or null for equal votes.</param>
    /// <exception cref="ArgumentException">The lists are shorter than <paramref name="k"/> or their count differs from the labels'.</exception>
    public static KnnSummary LeaveOneOutKnn(IReadOnlyList<int> labels, IReadOnlyList<string> classes, IReadOnlyList<IReadOnlyList<SearchHit>> neighbours, int k, double? temperature)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(classes);
        ArgumentNullException.ThrowIfNull(neighbours);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(k);
        if (neighbours.Count != labels.Count || neighbours.Any(h => h.Count < Math.Min(k, labels.Count - 1)))
        {
            throw new ArgumentException($"Need {Math.Min(k, labels.Count - 1)} neighbours for each of {labels.Count} videos.", nameof(neighbours));
        }

        int correct = 0, total = 0;
        var confusions = new Dictionary<(int, int), int>();
        var votes = new double[classes.Count];
        for (int i = 0; i < labels.Count; i++)
        {
            if (labels[i] < 0)
            {
                continue;
            }

            Array.Clear(votes);
            foreach (var hit in neighbours[i].Take(k))
            {
                int label = labels[hit.Index];
                if (label >= 0)
                {
                    votes[label] += temperature is double t ? Math.Exp(hit.Score / t) : 1;
                }
            }

            int predicted = 0;
            for (int c = 1; c < votes.Length; c++)
            {
                predicted = votes[c] > votes[predicted] ? c : predicted;
            }

            total++;
            if (predicted == labels[i])
            {
                correct++;
            }
            else
            {
                confusions[(labels[i], predicted)] = confusions.GetValueOrDefault((labels[i], predicted)) + 1;
            }
        }

        var list = confusions.Select(p => new ClassConfusion(classes[p.Key.Item1], classes[p.Key.Item2], p.Value))
            .OrderByDescending(c => c.Count).ThenBy(c => c.Actual, StringComparer.Ordinal).ThenBy(c => c.Predicted, StringComparer.Ordinal).ToList();
        return new KnnSummary(Math.Min(k, labels.Count - 1), temperature, correct, total, list);
    }

    /// <summary>The folder a set's keys are relative to: the one given, else the one the set records.</summary>
    /// <exception cref="DirectoryNotFoundException">Neither is known, or the folder does not exist.</exception>
    public static string VideoRootOf(EmbeddingSet set, string? given)
    {
        ArgumentNullException.ThrowIfNull(set);
        string? root = given ?? RecordedRoot(set);
        if (root is null)
        {
            throw new DirectoryNotFoundException("The embedding set does not record the folder its videos came from (it was written before sets recorded it); give the folder (--videos), or leave thumbnails out (--no-thumbnails).");
        }

        if (!Directory.Exists(root))
        {
            throw new DirectoryNotFoundException(given is null
                ? $"The videos' folder '{root}' that the embedding set records does not exist; give where they are now (--videos), or leave thumbnails out (--no-thumbnails)."
                : $"The videos' folder '{root}' does not exist.");
        }

        return Path.GetFullPath(root);
    }

    private static string? RecordedRoot(EmbeddingSet set) => Metadata(set)?["root"]?.GetValue<string>();

    private static List<string> RecordedClasses(EmbeddingSet set) =>
        Metadata(set)?["classes"] is JsonArray a ? [.. a.Select(c => c?.GetValue<string>()).Where(c => !string.IsNullOrEmpty(c)).Select(c => c!)] : [];

    private static JsonObject? Metadata(EmbeddingSet set)
    {
        try
        {
            return JsonNode.Parse(set.Metadata) as JsonObject;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string? DescribeEncoder(JsonNode? encoder)
    {
        if (encoder is JsonValue value && value.TryGetValue(out string? text))
        {
            return text; // the ONNX embedder records a sentence
        }

        if (encoder is not JsonObject o)
        {
            return null;
        }

        var parts = new List<string>();
        var a = o["architecture"] as JsonObject;
        string type = o["type"]?.ToString() ?? "encoder";
        parts.Add(a?["Depth"] is { } depth ? $"{type}-{depth}" : type);
        if (a?["WidthMultiplier"] is { } width && width.ToString() != "1")
        {
            parts.Add($"{width}x wide");
        }

        if (o["featureDim"] is { } dim)
        {
            parts.Add($"{dim}-d features");
        }

        if (o["parameters"] is { } count && double.TryParse(count.ToString(), CultureInfo.InvariantCulture, out double p))
        {
            parts.Add(string.Create(CultureInfo.InvariantCulture, $"{p / 1e6:0.##}M parameters"));
        }

        if (o["computeType"] is { } compute)
        {
            parts.Add(compute.ToString());
        }

        return string.Join(", ", parts);
    }

    /// <summary>Most int8 values (items x dimensions) a report of windows carries for its timelines: 32 MB, 43 MB of base64.</summary>
    internal const long MaxTimelineValues = 32L << 20;

    /// <summary>
    /// For a set of windows (every key video@start-end): each window's video and span, each video's length, and the
    /// windows' normalised vectors as int8 with one scale per window (base64), from which the page computes, for a
    /// clicked window, the similarity of every window along the videos of its neighbours (the timeline strips). Null for
    /// a set of videos; the vectors are left out (null) past <see cref="MaxTimelineValues"/>.
    /// </summary>
    internal static JsonObject? Moments(EmbeddingSet set)
    {
        var spans = new (string Video, double Start, double End)[set.Count];
        for (int i = 0; i < set.Count; i++)
        {
            if (!MomentKey.TryParse(set.Keys[i], out string video, out double start, out double end))
            {
                return null;
            }

            spans[i] = (video, start, end);
        }

        var videos = spans.Select(s => s.Video).Distinct(StringComparer.Ordinal).ToList();
        var videoIndex = videos.Select((v, i) => (v, i)).ToDictionary(x => x.v, x => x.i, StringComparer.Ordinal);
        var length = new double[videos.Count];
        foreach (var (video, _, end) in spans)
        {
            length[videoIndex[video]] = Math.Max(length[videoIndex[video]], end);
        }

        string? vectors = null;
        JsonArray? scales = null;
        if ((long)set.Count * set.Dim <= MaxTimelineValues)
        {
            var bytes = new byte[set.Count * set.Dim];
            scales = [];
            for (int i = 0; i < set.Count; i++)
            {
                var v = set[i];
                double norm = Math.Sqrt(v.ToArray().Sum(x => (double)x * x));
                double max = 0;
                foreach (float x in v)
                {
                    max = Math.Max(max, Math.Abs(x / norm));
                }

                double scale = max > 0 ? max / 127 : 1;
                for (int d = 0; d < set.Dim; d++)
                {
                    bytes[(i * set.Dim) + d] = (byte)(sbyte)Math.Clamp(Math.Round(v[d] / norm / scale), -127, 127);
                }

                scales.Add((JsonNode?)float.Parse(scale.ToString("G6", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture));
            }

            vectors = Convert.ToBase64String(bytes);
        }

        return new JsonObject
        {
            ["videos"] = new JsonArray([.. videos.Select(v => (JsonNode?)v)]),
            ["video"] = new JsonArray([.. spans.Select(s => (JsonNode?)videoIndex[s.Video])]),
            ["start"] = new JsonArray([.. spans.Select(s => (JsonNode?)Math.Round(s.Start, 3))]),
            ["end"] = new JsonArray([.. spans.Select(s => (JsonNode?)Math.Round(s.End, 3))]),
            ["length"] = new JsonArray([.. length.Select(l => (JsonNode?)Math.Round(l, 3))]),
            ["vectors"] = vectors,
            ["scales"] = scales,
        };
    }

    private static string? DescribeViews(TestViewOptions? v) => v is null ? null
        : string.Create(CultureInfo.InvariantCulture, $"{v.Clips} clip(s) x {v.Crops} crop(s) of {v.FramesPerClip} frames at stride {v.Stride}, short side {v.ShortSide}, crop {v.CropSize}");

    private static void WriteData(EmbeddingSet set, string folder, ExploreOptions options, EmbeddingLayout layout, IReadOnlyList<string> classes, IReadOnlyList<int> labels, IReadOnlyList<IReadOnlyList<SearchHit>> neighbours, KnnSummary? knn, Thumbnails thumbs)
    {
        var metadata = Metadata(set);
        var data = new JsonObject
        {
            ["title"] = options.Title ?? "Embeddings",
            ["created"] = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture),
            ["count"] = set.Count,
            ["dim"] = set.Dim,
            ["fingerprint"] = set.ModelFingerprint,
            ["runtime"] = metadata?["runtime"]?.DeepClone(),
            ["encoder"] = DescribeEncoder(metadata?["encoder"]),
            ["views"] = DescribeViews(Embedder.ViewsOf(set)),
            ["root"] = metadata?["root"]?.DeepClone(),
            ["map"] = new JsonObject
            {
                ["method"] = layout.Method == MapMethod.Pca ? "PCA" : "t-SNE",
                ["seconds"] = Math.Round(layout.Elapsed.TotalSeconds, 3),
                ["explained"] = new JsonArray([.. layout.ExplainedVariance.Select(v => (JsonNode?)Math.Round(v, 4))]),
            },
            ["classes"] = new JsonArray([.. classes.Select(c => (JsonNode?)c)]),
            ["colours"] = new JsonArray([.. classes.Select((_, i) => (JsonNode?)ColourOf(i))]),
            ["noClassColour"] = ColourOf(-1),
            ["keys"] = new JsonArray([.. set.Keys.Select(k => (JsonNode?)k)]),
            ["x"] = new JsonArray([.. layout.X.Select(v => (JsonNode?)v)]),
            ["y"] = new JsonArray([.. layout.Y.Select(v => (JsonNode?)v)]),
            ["labels"] = new JsonArray([.. labels.Select(l => (JsonNode?)l)]),
            ["thumbs"] = new JsonArray([.. Enumerable.Range(0, set.Count).Select(i => (JsonNode?)thumbs.FileOf(i))]),
            ["thumbFrames"] = options.ThumbnailFrames,
            ["neighbours"] = new JsonArray([.. neighbours.Select(h => (JsonNode?)new JsonArray([.. h.Select(x => (JsonNode?)x.Index)]))]),
            ["scores"] = new JsonArray([.. neighbours.Select(h => (JsonNode?)new JsonArray([.. h.Select(x => (JsonNode?)x.Score.ToString("F4", CultureInfo.InvariantCulture))]))]),
            ["knn"] = knn is null ? null : new JsonObject
            {
                ["k"] = knn.K,
                ["temperature"] = knn.Temperature,
                ["correct"] = knn.Correct,
                ["total"] = knn.Total,
                ["confusions"] = new JsonArray([.. knn.Confusions.Take(8).Select(c => (JsonNode?)new JsonObject { ["actual"] = c.Actual, ["predicted"] = c.Predicted, ["count"] = c.Count })]),
            },
            ["missingThumbs"] = new JsonArray([.. thumbs.Failures.Take(20).Select(f => (JsonNode?)new JsonObject { ["path"] = f.Path, ["reason"] = f.Reason })]),
            ["missingThumbCount"] = thumbs.Failures.Count,
            ["moments"] = Moments(set),
        };

        // A script, not a JSON file: pages opened from file:// may not fetch() their neighbours, but may load scripts.
        string json = data.ToJsonString(Json).Replace("</", "<\\/", StringComparison.Ordinal);
        AtomicFile.Write(Path.Combine(folder, "data.js"), s => s.Write(Encoding.UTF8.GetBytes($"window.CVRL_EXPLORE = {json};\n")));
    }
}

/// <summary>Source-generated log messages of the explore report.</summary>
internal static partial class ExploreLog
{
    [LoggerMessage(EventId = 700, Level = LogLevel.Information, Message = "Nearest {K} neighbours of {Count} videos in {Elapsed}")]
    public static partial void Neighbours(ILogger logger, int count, int k, TimeSpan elapsed);

    [LoggerMessage(EventId = 701, Level = LogLevel.Information, Message = "{Method} map in {Elapsed}")]
    public static partial void Map(ILogger logger, string method, TimeSpan elapsed);

    [LoggerMessage(EventId = 702, Level = LogLevel.Information, Message = "Thumbnails of {Made} videos ({Failed} without) in {Elapsed}")]
    public static partial void Thumbnails(ILogger logger, int made, int failed, TimeSpan elapsed);

    [LoggerMessage(EventId = 703, Level = LogLevel.Warning, Message = "No thumbnail for '{Path}': {Reason}")]
    public static partial void NoThumbnail(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 704, Level = LogLevel.Warning, Message = "Could not remove '{Path}' of an earlier report: {Reason}")]
    public static partial void NotRemoved(ILogger logger, string path, string reason);
}
