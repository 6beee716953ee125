using System.Globalization;
using System.ComponentModel;
using Cvrl.Cli.Infrastructure;
using Cvrl.Embeddings;
using Cvrl.Onnx;
using Cvrl.Video;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Cvrl.Cli.Commands;

/// <summary>Finds the videos of an embedding file most similar to a query video.</summary>
internal sealed class SearchCommand : Command<SearchCommand.Settings>
{
    public sealed class Settings : EncoderSettings
    {
        [CommandArgument(0, "<EMBEDDINGS>")]
        [Description("An embedding file written by 'cvrl embed', or a window index folder ('cvrl embed --windows --index', 'cvrl index').")]
        public string Embeddings { get; init; } = string.Empty;

        [CommandArgument(1, "<QUERY>")]
        [Description("The query: a video; with --moments also a span of one (video.mp4@75.0-78.5, in seconds) or a folder (one search per video).")]
        public string Video { get; init; } = string.Empty;

        [CommandOption("-k|--top <K>")]
        [Description("Results to show.")]
        [DefaultValue(5)]
        public int Top { get; init; } = 5;

        [CommandOption("--moments")]
        [Description("Search windows (a set from cvrl embed --windows, or an index; implied for an index) for moments: video, start and end in seconds, score; the query's own span is left out.")]
        public bool Moments { get; init; }

        [CommandOption("--match <HOW>")]
        [Description("With --moments: 'aligned' matches the query's windows one by one at their offsets (a copy of the span scores as the span itself; moments as long as the query), 'mean' searches with the mean of its windows and merges adjacent hits (moments like the span, of any length).")]
        [DefaultValue("aligned")]
        public string Match { get; init; } = "aligned";

        [CommandOption("--merge-drop <D>")]
        [Description("With --match mean: how much lower than a moment's best window an adjacent window may score and still join it.")]
        [DefaultValue(0.05)]
        public double MergeDrop { get; init; } = 0.05;

        [CommandOption("--query-windows <N>")]
        [Description("With --match aligned: at most this many of the query's windows, chosen evenly (each costs one pass over the scores).")]
        [DefaultValue(16)]
        public int QueryWindows { get; init; } = 16;

        [CommandOption("--scan <PRECISION>")]
        [Description("For an index: 'float32' (exact) or 'int8' (a quarter of the bytes, the best candidates re-scored exactly).")]
        [DefaultValue("float32")]
        public string Scan { get; init; } = "float32";

        public bool Aligned => string.Equals(Match, "aligned", StringComparison.OrdinalIgnoreCase);

        public ScanPrecision ScanPrecision => string.Equals(Scan, "int8", StringComparison.OrdinalIgnoreCase) ? ScanPrecision.Int8 : ScanPrecision.Float32;

        public override ValidationResult Validate()
        {
            var baseResult = base.Validate();
            if (!baseResult.Successful)
            {
                return baseResult;
            }

            return Top < 1 ? ValidationResult.Error("--top must be at least 1")
                : QueryWindows < 1 ? ValidationResult.Error("--query-windows must be at least 1")
                : !Aligned && !string.Equals(Match, "mean", StringComparison.OrdinalIgnoreCase) ? ValidationResult.Error($"--match must be 'aligned' or 'mean', not '{Match}'")
                : !string.Equals(Scan, "float32", StringComparison.OrdinalIgnoreCase) && !string.Equals(Scan, "int8", StringComparison.OrdinalIgnoreCase) ? ValidationResult.Error($"--scan must be 'float32' or 'int8', not '{Scan}'")
                : Checked(() => new MomentSearchOptions { Top = Top, MergeDrop = MergeDrop }.Validate());
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        bool isIndex = Directory.Exists(settings.Embeddings) && WindowIndex.Exists(settings.Embeddings);
        if (!isIndex && !File.Exists(settings.Embeddings))
        {
            throw new FileNotFoundException($"'{settings.Embeddings}' is neither an embedding file nor a window index folder", settings.Embeddings);
        }

        var set = isIndex ? null : EmbeddingSet.Load(settings.Embeddings);
        using var index = isIndex ? WindowIndex.Open(settings.Embeddings) : null;
        string metadata = set?.Metadata ?? index!.Metadata;
        var windowOptions = set is not null ? Embedder.WindowsOf(set) : Embedder.WindowsOf(index!) ?? new WindowOptions { Normalize = true };
        bool moments = settings.Moments || isIndex;
        if (moments && windowOptions is null)
        {
            throw new ArgumentException($"'{settings.Embeddings}' holds one item per video; --moments needs a set of windows (cvrl embed --windows)");
        }

        // The query: a file, a folder (moments only) or a span of a file (moments only).
        string queryPath = settings.Video;
        (double Start, double End)? span = null;
        if (moments && !File.Exists(queryPath) && !Directory.Exists(queryPath) && MomentKey.TryParse(queryPath, out string spanVideo, out double spanStart, out double spanEnd))
        {
            (queryPath, span) = (spanVideo, (spanStart, spanEnd));
        }

        if (!File.Exists(queryPath) && !(moments && Directory.Exists(queryPath)))
        {
            throw new FileNotFoundException($"video '{queryPath}' does not exist", queryPath);
        }

        // The views the set was made with (null for sets that do not record them: then the encoder's own).
        var options = new EmbeddingOptions { Views = set is not null ? Embedder.ViewsOf(set) : Embedder.ViewsOf(index!), Workers = settings.WorkerCount };

        // Without --checkpoint (or --depth/--width), the encoder the set records: the file it was made with, or the same
        // fresh initialisation.
        string? file = settings.EncoderFile;
        var architecture = settings.Architecture;
        long seed = settings.InitSeed;
        if (file is null && settings.Depth is null && settings.Width is null && EncoderSource.Of(metadata) is { } source)
        {
            if (source.Path is not null)
            {
                if (!File.Exists(source.Path))
                {
                    throw new FileNotFoundException($"'{settings.Embeddings}' was made by the encoder '{source.Path}', which no longer exists; give the same encoder with --checkpoint");
                }

                file = source.Path;
            }

            if (source.Depth is int depth)
            {
                architecture = new Cvrl.Models.ResNet3dOptions { Depth = depth, WidthMultiplier = source.Width ?? 1 };
            }

            seed = source.InitSeed ?? seed;

            AnsiConsole.MarkupLine($"encoder from the embedding file: {Markup.Escape(source.Path ?? $"fresh, seed {seed}")}");
        }

        IReadOnlyList<SearchHit> hits;
        // The query is embedded in the precision the set was made in, unless --precision says otherwise.
        var precision = settings.RequestedPrecision
            ?? ((System.Text.Json.Nodes.JsonNode.Parse(metadata)?["encoder"] as System.Text.Json.Nodes.JsonObject)?["computeType"]?.GetValue<string>() == "BFloat16" ? Cvrl.Models.Precision.BFloat16 : Cvrl.Models.Precision.Float32);
        var (embedder, owner) = EmbedCommand.CreateEmbedder(settings, _ => options, file, architecture, seed, precision);
        using (owner)
        {
            if (moments)
            {
                if (set is not null)
                {
                    embedder.CheckCompatible(set);
                }
                else
                {
                    embedder.CheckCompatible(index!);
                }

                SearchMoments(settings, set, index, metadata, embedder, windowOptions!, queryPath, span, cancellationToken);
                return 0;
            }

            hits = embedder.Search(set!, settings.Video, settings.Top);
        }

        var table = new Table().AddColumn("rank").AddColumn("similarity").AddColumn("video");
        for (int i = 0; i < hits.Count; i++)
        {
            table.AddRow($"{i + 1}", $"{hits[i].Score:F4}", Markup.Escape(hits[i].Key));
        }

        AnsiConsole.Write(table);
        return 0;
    }

    /// <summary>
    /// Moment search: each query video cut into windows as the set was, the windows inside the span (or all) made the
    /// query (matched one by one at their offsets, or as their mean), the query's own span left out when its video is in
    /// the set, then <see cref="MomentSearch"/>.
    /// </summary>
    private static void SearchMoments(Settings settings, EmbeddingSet? set, WindowIndex? index, string metadata, Embedder embedder, WindowOptions windows, string query, (double Start, double End)? span, CancellationToken cancellationToken)
    {
        string? root = System.Text.Json.Nodes.JsonNode.Parse(metadata)?["root"]?.GetValue<string>();
        var queries = Directory.Exists(query) ? VideoFiles.Find(query) : [Path.GetFullPath(query)];
        var inputs = queries.Select(q => new EmbeddingInput(q, root is not null && FileIdentity.IsWithin(q, root) ? VideoFiles.RelativeKey(root, q) : Path.GetFileName(q))).ToList();
        var options = new MomentSearchOptions { Top = settings.Top, MergeDrop = settings.MergeDrop, Precision = settings.ScanPrecision };
        foreach (var (i, features, skipped) in embedder.ExtractWindows(inputs, windows with { Normalize = true, Workers = Math.Min(settings.WorkerCount, 4) }, null, cancellationToken))
        {
            if (skipped is not null)
            {
                AnsiConsole.MarkupLine($"[yellow]skipped: {Markup.Escape(skipped.Path)}: {Markup.Escape(skipped.Reason)}[/]");
                continue;
            }

            var q = SpanQuery.FromWindows(features!, span?.Start, span?.End, settings.Aligned ? settings.QueryWindows : int.MaxValue);
            var own = new MomentSpan(inputs[i].Key, span?.Start ?? 0, span?.End ?? double.PositiveInfinity);
            bool aligned = settings.Aligned && q.Vectors.Count > 1;
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var found = (aligned, set) switch
            {
                (true, not null) => MomentSearch.SearchAligned(set, q, options, own),
                (true, null) => MomentSearch.SearchAligned(index!, q, options, own),
                (false, not null) => MomentSearch.Search(set, q.Mean(), options, own),
                (false, null) => MomentSearch.Search(index!, q.Mean(), options, own),
            };
            double ms = watch.Elapsed.TotalMilliseconds;
            string what = span is { } s ? string.Create(CultureInfo.InvariantCulture, $"{inputs[i].Key} at {s.Start:0.##}-{s.End:0.##} s") : inputs[i].Key;
            string how = aligned ? $"aligned on {q.Vectors.Count} of its {q.WindowsInSpan} windows" : $"the mean of its {q.Vectors.Count} windows";
            int rows = set?.Count ?? index!.Count;
            var table = new Table().Title(Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"moments like {what} ({how}; {rows:N0} windows searched in {ms:0} ms)")))
                .AddColumn("rank").AddColumn("similarity").AddColumn("video").AddColumn("from (s)").AddColumn("to (s)").AddColumn(aligned ? "matched" : "windows");
            for (int r = 0; r < found.Count; r++)
            {
                var m = found[r];
                table.AddRow($"{r + 1}", m.Score.ToString("F4", CultureInfo.InvariantCulture), Markup.Escape(m.Video), m.StartSeconds.ToString("0.00", CultureInfo.InvariantCulture), m.EndSeconds.ToString("0.00", CultureInfo.InvariantCulture), m.Windows.ToString(CultureInfo.InvariantCulture));
            }

            AnsiConsole.Write(table);
        }
    }
}
