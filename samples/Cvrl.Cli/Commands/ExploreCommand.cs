using System.ComponentModel;
using System.Globalization;
using Cvrl.Cli.Infrastructure;
using Cvrl.Embeddings;
using Cvrl.Explore;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Cvrl.Cli.Commands;

/// <summary>Writes an explore report (map, thumbnails, neighbours, kNN) of an embedding file.</summary>
internal sealed class ExploreCommand : Command<ExploreCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<EMBEDDINGS>")]
        [Description("An embedding file written by 'cvrl embed' (TorchSharp or ONNX encoder).")]
        public string Embeddings { get; init; } = string.Empty;

        [CommandOption("-o|--out <FOLDER>")]
        [Description("Folder of the report (index.html and its files).")]
        [DefaultValue("explore")]
        public string Output { get; init; } = "explore";

        [CommandOption("--map <METHOD>")]
        [Description("Layout of the map: pca or tsne.")]
        [DefaultValue("pca")]
        public string Map { get; init; } = "pca";

        [CommandOption("--perplexity <P>")]
        [DefaultFrom("t-SNE perplexity.", typeof(TsneOptions), nameof(TsneOptions.Perplexity))]
        public double? Perplexity { get; init; }

        [CommandOption("--iterations <N>")]
        [DefaultFrom("t-SNE steps.", typeof(TsneOptions), nameof(TsneOptions.Iterations))]
        public int? Iterations { get; init; }

        [CommandOption("-k|--top <K>")]
        [DefaultFrom("Neighbours listed per video (as 'cvrl search' ranks them).", typeof(ExploreOptions), nameof(ExploreOptions.Neighbours))]
        public int? Top { get; init; }

        [CommandOption("--neighbours <K>")]
        [DefaultFrom("Neighbours that vote in the leave-one-out kNN accuracy (labelled sets).", typeof(ExploreOptions), nameof(ExploreOptions.KnnK))]
        public int? KnnK { get; init; }

        [CommandOption("--videos <FOLDER>")]
        [Description("Where the videos are, for thumbnails. [grey]Default: the folder the embedding file records[/]")]
        public string? Videos { get; init; }

        [CommandOption("--no-thumbnails")]
        [Description("Leave thumbnails out (no video is decoded).")]
        public bool NoThumbnails { get; init; }

        [CommandOption("--frames <N>")]
        [DefaultFrom("Frames per thumbnail strip.", typeof(ExploreOptions), nameof(ExploreOptions.ThumbnailFrames))]
        public int? Frames { get; init; }

        [CommandOption("--no-classes")]
        [Description("Do not read the first folder of each video as its class.")]
        public bool NoClasses { get; init; }

        [CommandOption("--projector")]
        [Description("Also write TensorBoard projector files (tensors.tsv, metadata.tsv, sprite.png, projector_config.pbtxt) under <FOLDER>/projector.")]
        public bool Projector { get; init; }

        [CommandOption("--title <TEXT>")]
        [Description("Title of the page. [grey]Default: the embedding file's name[/]")]
        public string? Title { get; init; }

        [CommandOption("--workers <N>")]
        [DefaultFrom("Videos decoded at once for thumbnails.", typeof(ExploreOptions), nameof(ExploreOptions.Workers))]
        public int? Workers { get; init; }

        [CommandOption("-v|--verbose")]
        [Description("Log each step.")]
        public bool Verbose { get; init; }

        public MapMethod Method => Map.Trim().ToLowerInvariant() switch
        {
            "pca" => MapMethod.Pca,
            "tsne" or "t-sne" => MapMethod.Tsne,
            _ => throw new InvalidOperationException("validated"),
        };

        /// <summary>The library's explore options with the options given here laid over them.</summary>
        public ExploreOptions Options
        {
            get
            {
                var defaults = new ExploreOptions();
                return defaults with
                {
                    Map = Method,
                    Tsne = defaults.Tsne with { Perplexity = Perplexity ?? defaults.Tsne.Perplexity, Iterations = Iterations ?? defaults.Tsne.Iterations },
                    Neighbours = Top ?? defaults.Neighbours,
                    KnnK = KnnK ?? defaults.KnnK,
                    ClassFolders = NoClasses ? false : null,
                    VideoRoot = Videos,
                    Thumbnails = !NoThumbnails,
                    ThumbnailFrames = Frames ?? defaults.ThumbnailFrames,
                    Projector = Projector,
                    Workers = Workers ?? defaults.Workers,
                    Title = Title ?? Path.GetFileName(Embeddings),
                };
            }
        }

        public override ValidationResult Validate() =>
            Map.Trim().ToLowerInvariant() is not ("pca" or "tsne" or "t-sne") ? ValidationResult.Error("--map must be pca or tsne")
            : DeviceSettings.Checked(() => Options.Validate());
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        if (!File.Exists(settings.Embeddings))
        {
            throw new FileNotFoundException($"embedding file '{settings.Embeddings}' does not exist", settings.Embeddings);
        }

        OutputPaths.RequireFolder(settings.Output, "--out");
        OutputPaths.RequireNotInput(settings.Output, "--out", (settings.Embeddings, "the embedding file"));
        var set = EmbeddingSet.Load(settings.Embeddings);
        var options = settings.Options;
        var report = CliProgress.Run(progress => ExploreReport.Write(set, settings.Output, options, CliLogger.For(settings.Verbose), progress, cancellationToken));

        var c = CultureInfo.InvariantCulture;
        AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(report.IndexPath)}[/]: {report.Videos} videos, {Markup.Escape(report.Layout.Method == MapMethod.Pca ? "PCA" : "t-SNE")} map in {report.Layout.Elapsed.TotalSeconds.ToString("0.0", c)} s, neighbours in {report.NeighboursElapsed.TotalSeconds.ToString("0.0", c)} s");
        if (report.Layout.ExplainedVariance.Count == 2)
        {
            AnsiConsole.MarkupLine($"the map's axes hold {(100 * report.Layout.ExplainedVariance[0]).ToString("0.0", c)}% and {(100 * report.Layout.ExplainedVariance[1]).ToString("0.0", c)}% of the variance");
        }

        if (report.Knn is { } knn)
        {
            AnsiConsole.MarkupLine($"leave-one-out kNN accuracy: {(100 * knn.Accuracy).ToString("0.0", c)}% ({knn.Correct} of {knn.Total}, {knn.K} neighbours, {report.Classes.Count} classes)");
            foreach (var confusion in knn.Confusions.Take(3))
            {
                AnsiConsole.MarkupLine($"  {Markup.Escape(confusion.Actual)} taken for {Markup.Escape(confusion.Predicted)}: {confusion.Count}");
            }
        }

        if (!settings.NoThumbnails)
        {
            AnsiConsole.MarkupLine($"thumbnails: {report.Thumbnails} of {report.Videos} videos in {report.ThumbnailsElapsed.TotalSeconds.ToString("0.0", c)} s");
            SkippedVideos.Print(report.ThumbnailFailures, null);
        }

        if (report.ProjectorFolder is { } projector)
        {
            AnsiConsole.MarkupLine($"TensorBoard projector files in [green]{Markup.Escape(projector)}[/] (tensorboard --logdir {Markup.Escape(projector)})");
        }

        return 0;
    }
}
