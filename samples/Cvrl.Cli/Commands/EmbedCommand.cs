using System.ComponentModel;
using Cvrl.Cli.Infrastructure;
using Cvrl.Embeddings;
using Cvrl.Onnx;
using Cvrl.Video;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Cvrl.Cli.Commands;

/// <summary>Embeds every video of a folder and saves the set.</summary>
internal sealed class EmbedCommand : Command<EmbedCommand.Settings>
{
    public sealed class Settings : EncoderSettings
    {
        [CommandArgument(0, "<VIDEOS>")]
        [Description("Folder of videos (searched recursively; a prepared folder too), or one video file.")]
        public string Folder { get; init; } = string.Empty;

        [CommandOption("-o|--out <FILE>")]
        [Description("The embedding file to write (with --index: the index's folder).")]
        [DefaultValue("embeddings.cvrlemb")]
        public string Output { get; init; } = "embeddings.cvrlemb";

        [CommandOption("--clips <N>")]
        [Description("Evenly spaced clips averaged per video. [grey]Default: 10[/]")]
        public int? Clips { get; init; }

        [CommandOption("--crops <N>")]
        [Description("Crops per clip: 1 (centre) or 3 (along the long side). [grey]Default: 1[/]")]
        public int? Crops { get; init; }

        [CommandOption("--frames <N>")]
        [Description("Frames per clip. [grey]Default: the encoder's (a checkpoint's training clips, an ONNX model's metadata), else 32[/]")]
        public int? Frames { get; init; }

        [CommandOption("--stride <N>")]
        [Description("Stride between frames. [grey]Default: the encoder's, else 2[/]")]
        public int? Stride { get; init; }

        [CommandOption("--size <PIXELS>")]
        [Description("Short side and crop size. [grey]Default: the encoder's, else 256[/]")]
        public int? Size { get; init; }

        [CommandOption("--batch <N>")]
        [Description("Clips per forward pass. [grey]Default: 8[/]")]
        public int? Batch { get; init; }

        [CommandOption("--windows")]
        [Description("One item per window instead of per video, for moment search (cvrl search --moments): windows of --window frames (else the encoder's clip length) at --stride, one every --step frames or --step-seconds, keyed video@start-end.")]
        public bool Windows { get; init; }

        [CommandOption("--window <N>")]
        [Description("With --windows: frames per window. [grey]Default: as --frames[/]")]
        public int? Window { get; init; }

        [CommandOption("--step <N>")]
        [Description("With --windows: frames between window starts.")]
        [DefaultValue(8)]
        public int Step { get; init; } = 8;

        [CommandOption("--step-seconds <S>")]
        [Description("With --windows: seconds between window starts, instead of --step.")]
        public double? StepSeconds { get; init; }

        [CommandOption("--index")]
        [Description("With --windows: write a window index folder (memory-mapped NumPy rows, an int8 copy; built one video at a time, for libraries of any size) instead of an embedding file.")]
        public bool Index { get; init; }

        public WindowOptions WindowOptions => new() { Step = Step, StepSeconds = StepSeconds, Normalize = true, BatchSize = Batch ?? 16, Workers = Math.Min(WorkerCount, 4) };

        /// <summary>Whether any view option was given (then it overrides the encoder's geometry field by field).</summary>
        public bool HasViewOverrides => Clips is not null || Crops is not null || Frames is not null || Stride is not null || Size is not null || Window is not null || Windows;

        /// <summary>The views: <paramref name="encoder"/>'s geometry with the options given here laid over it.</summary>
        public TestViewOptions Views(TestViewOptions encoder) => Windows ? encoder.Over(1, 1, Window ?? Frames, Stride, Size) : encoder.Over(Clips, Crops, Frames, Stride, Size);

        /// <summary>
        /// The embedding options: the library's defaults, views left to the embedder (the encoder's own, else the
        /// defaults) unless a view option was given, then laid over <paramref name="encoderViews"/> field by field.
        /// </summary>
        public EmbeddingOptions Options(TestViewOptions? encoderViews)
        {
            var defaults = new EmbeddingOptions();
            return defaults with
            {
                Views = HasViewOverrides ? Views(encoderViews ?? new TestViewOptions()) : null,
                BatchSize = Batch ?? defaults.BatchSize,
                Workers = WorkerCount,
            };
        }

        public override ValidationResult Validate()
        {
            var baseResult = base.Validate();
            if (!baseResult.Successful)
            {
                return baseResult;
            }

            if (!Windows && (Window is not null || StepSeconds is not null || Index))
            {
                return ValidationResult.Error("--window, --step-seconds and --index go with --windows");
            }

            return Checked(() => { Options(null).Validate(); WindowOptions.Validate(); });
        }
    }

    /// <summary>Prints the views an embedder uses and where they come from.</summary>
    internal static void AnnounceViews(Embedder embedder, TestViewOptions? encoderViews, bool overridden)
    {
        var v = embedder.Views;
        string source = (encoderViews is null ? "Cvrl's defaults: the encoder records no training clips" : "the encoder's training clips") + (overridden ? ", with the options given" : string.Empty);
        AnsiConsole.MarkupLine(Markup.Escape($"views: {v.Clips} clip(s) x {v.Crops} crop(s) of {v.FramesPerClip} frames at stride {v.Stride}, short side {v.ShortSide}, crop {v.CropSize} ({source})"));
    }

    /// <summary>
    /// Builds the embedder for the encoder the settings name (an ONNX model, a checkpoint, a weight file or a fresh
    /// network) with <paramref name="options"/> laid over the encoder's own views; returns it with the object that owns
    /// the encoder (dispose it after use).
    /// </summary>
    internal static (Embedder Embedder, IDisposable Owner) CreateEmbedder(EncoderSettings settings, Func<TestViewOptions?, EmbeddingOptions> options, string? file, Cvrl.Models.ResNet3dOptions architecture, long seed, Cvrl.Models.Precision precision)
    {
        if (file is not null && file.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase))
        {
            if (precision != Cvrl.Models.Precision.Float32)
            {
                throw new ArgumentException($"--precision {settings.PrecisionName} applies to TorchSharp encoders; an ONNX model runs in ONNX Runtime's float32");
            }

            var onnx = settings.LoadOnnx(file);
            try
            {
                var own = OnnxVideoEmbedder.MatchingViews(onnx);
                var embedder = new OnnxVideoEmbedder(onnx, options(own), settings.Logger);
                return (embedder, onnx);
            }
            catch
            {
                onnx.Dispose();
                throw;
            }
        }

        var (encoder, description) = settings.CreateEncoder(file, architecture, seed);
        try
        {
            settings.Announce(description);
            var own = encoder.TrainedClips?.MatchingTestViews();
            return (new VideoEmbedder(encoder, options(own), settings.Logger, precision), encoder);
        }
        catch
        {
            encoder.Dispose();
            throw;
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        if (settings.Index)
        {
            return WriteIndex(settings, cancellationToken);
        }

        OutputPaths.RequireFile(settings.Output, "--out");
        VideoSource.RequireExists(settings.Folder);
        OutputPaths.RequireNotInput(settings.Output, "--out", (settings.Folder, "the videos"), (settings.EncoderFile, "the encoder"));

        TestViewOptions? own = null;
        var (embedder, owner) = CreateEmbedder(settings, views => settings.Options(own = views), settings.EncoderFile, settings.Architecture, settings.InitSeed, settings.Precision);
        EmbeddingSet set;
        using (owner)
        {
            AnnounceViews(embedder, own, settings.HasViewOverrides);
            if (settings.Windows)
            {
                string root = File.Exists(settings.Folder) ? Path.GetDirectoryName(Path.GetFullPath(settings.Folder))! : Path.GetFullPath(settings.Folder);
                var files = VideoFiles.Find(settings.Folder);
                if (files.Count == 0)
                {
                    throw new DatasetException($"No video files under '{root}'.");
                }

                var w = settings.WindowOptions;
                AnsiConsole.MarkupLine(Markup.Escape(w.StepSeconds is double s ? $"windows: one every {s} s" : $"windows: one every {w.Step} frames"));
                set = CliProgress.Run(progress => embedder.EmbedWindows(files, root, w, progress, cancellationToken));
            }
            else
            {
                set = CliProgress.Run(progress => embedder.EmbedFolder(settings.Folder, progress: progress, cancellationToken: cancellationToken));
            }
        }

        set = settings.Source().Stamp(set);
        set.Save(settings.Output);
        var skipped = (System.Text.Json.Nodes.JsonNode.Parse(set.Metadata)?["skipped"]?.AsArray() ?? [])
            .Select(n => new SkippedVideo((string)n!["path"]!, (string)n["reason"]!)).ToList();
        string items = settings.Windows ? $"{set.Count} windows of {set.Keys.Select(k => MomentKey.TryParse(k, out string v, out _, out _) ? v : k).Distinct().Count()} videos" : $"{set.Count} videos";
        AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(Path.GetFullPath(settings.Output))}[/]: {items} x {set.Dim} dimensions{(skipped.Count > 0 ? $", [yellow]{skipped.Count} skipped[/] (undecodable, below)" : string.Empty)}; encoder {Markup.Escape(set.ModelFingerprint)}");
        SkippedVideos.Print(skipped, File.Exists(settings.Folder) ? null : Path.GetFullPath(settings.Folder));
        return 0;
    }

    /// <summary>cvrl embed --windows --index: the windows of every video streamed into a window index folder.</summary>
    private static int WriteIndex(Settings settings, CancellationToken cancellationToken)
    {
        OutputPaths.RequireFolder(settings.Output, "--out");
        VideoSource.RequireExists(settings.Folder);
        OutputPaths.RequireNotInput(Path.Combine(settings.Output, WindowIndex.DescriptionFile), "--out", (settings.Folder, "the videos"), (settings.EncoderFile, "the encoder"));
        string output = Path.GetFullPath(settings.Output);
        string root = File.Exists(settings.Folder) ? Path.GetDirectoryName(Path.GetFullPath(settings.Folder))! : Path.GetFullPath(settings.Folder);
        var files = VideoFiles.Scan(settings.Folder, true, null, [output], cancellationToken).Videos;
        if (files.Count == 0)
        {
            throw new DatasetException($"No video files under '{root}'.");
        }

        TestViewOptions? own = null;
        var (embedder, owner) = CreateEmbedder(settings, views => settings.Options(own = views), settings.EncoderFile, settings.Architecture, settings.InitSeed, settings.Precision);
        using (owner)
        {
            AnnounceViews(embedder, own, settings.HasViewOverrides);
            var w = settings.WindowOptions;
            AnsiConsole.MarkupLine(Markup.Escape(w.StepSeconds is double s ? $"windows: one every {s} s" : $"windows: one every {w.Step} frames"));
            var extra = new System.Text.Json.Nodes.JsonObject { ["source"] = settings.Source().ToNode() };
            using var index = CliProgress.Run(progress => embedder.IndexWindows(files, output, root, w, int8: true, extra, progress, cancellationToken));
            var skipped = (System.Text.Json.Nodes.JsonNode.Parse(index.Metadata)?["skipped"]?.AsArray() ?? [])
                .Select(n => new SkippedVideo((string)n!["path"]!, (string)n["reason"]!)).ToList();
            AnsiConsole.MarkupLine($"wrote index [green]{Markup.Escape(output)}[/]: {index.Count:N0} windows of {index.Videos.Count} videos x {index.Dim} dimensions ({index.RowBytes / 1048576.0:0.#} MiB of float32 rows){(skipped.Count > 0 ? $", [yellow]{skipped.Count} skipped[/] (below)" : string.Empty)}; encoder {Markup.Escape(index.ModelFingerprint)}");
            SkippedVideos.Print(skipped, root);
        }

        return 0;
    }
}
