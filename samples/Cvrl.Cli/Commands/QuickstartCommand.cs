using System.ComponentModel;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cvrl.Augment;
using Cvrl.Augment.Sampling;
using Cvrl.Cli.Infrastructure;
using Cvrl.Data;
using Cvrl.Embeddings;
using Cvrl.Explore;
using Cvrl.Models;
using Microsoft.Extensions.Logging;
using Cvrl.Evaluation;
using Cvrl.Video;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Cvrl.Cli.Commands;

/// <summary>
/// The first thing to run: generates a synthetic motion data set, pre-trains a small 3D-ResNet with CVRL, and compares
/// its features with the same network's random initialisation (linear probe and kNN).
/// </summary>
internal sealed class QuickstartCommand : Command<QuickstartCommand.Settings>
{
    public sealed class Settings : ExperimentOptions
    {
        [CommandOption("-o|--out <DIR>")]
        [Description("Folder for the data set, checkpoint, table and pictures.")]
        [DefaultValue("cvrl-quickstart")]
        public string Output { get; init; } = "cvrl-quickstart";

        [CommandOption("--tiny")]
        [Description("A seconds-long smoke run (tiny data and network): checks the pipeline, not the method.")]
        public bool Tiny { get; init; }

        public (SyntheticMotionOptions Data, ExperimentSettings Experiment) Resolve() => Tiny ? ResolveTiny() : Resolve(Seed);
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        OutputPaths.RequireFolder(settings.Output, "--out");
        var (dataOptions, experiment) = settings.Resolve();
        string output = Path.GetFullPath(settings.Output);
        Directory.CreateDirectory(output);
        AnsiConsole.MarkupLine($"[bold]Cvrl quickstart[/]: CVRL pre-training on synthetic motion videos, compared with random weights. Output: [green]{Markup.Escape(output)}[/]");

        // A quickstart always starts from scratch (the pretrain command is the one that resumes).
        string checkpoints = Path.Combine(output, "checkpoints");
        if (Directory.Exists(checkpoints))
        {
            Directory.Delete(checkpoints, recursive: true);
        }

        var set = QuickstartSteps.GenerateData(Path.Combine(output, "data"), dataOptions, cancellationToken);
        var train = set.Train();
        var test = set.Test();
        AnsiConsole.MarkupLine($"data: {train.Count} training and {test.Count} test videos, {train.Classes.Count} classes ({Markup.Escape(string.Join(", ", train.Classes))}), {dataOptions.Frames} frames of {dataOptions.Width}x{dataOptions.Height}");
        string sheet = QuickstartSteps.WriteContactSheet(Path.Combine(output, "views.png"), train[0].Path, experiment);
        AnsiConsole.MarkupLine($"augmented views: [green]{Markup.Escape(sheet)}[/]");
        AnsiConsole.MarkupLine($"encoder: {Markup.Escape(experiment.Architecture.ArchitectureName)}, clips of {experiment.Frames} frames at stride {experiment.Stride}, {experiment.Crop}x{experiment.Crop}; {experiment.Epochs} epochs of {experiment.BatchSize} videos, learning rate {experiment.Trainer(null).EffectiveLearningRate:G3}, temperature {experiment.Temperature}");

        var reports = new List<string>();
        var outcome = CliProgress.Run(sink => Experiment.Run(
            experiment, train, test, checkpoints, evaluateRandom: true, settings.Logger, sink.Training, sink.Evaluation, cancellationToken,
            inspect: (encoder, name) => reports.Add(QuickstartSteps.WriteExplore(output, name, encoder, test, experiment, settings.Logger, cancellationToken))));
        QuickstartSteps.Report(output, outcome, experiment, dataOptions);
        AnsiConsole.MarkupLine($"maps of the test videos (open in a browser): {string.Join(" and ", reports.Select(r => $"[green]{Markup.Escape(r)}[/]"))}");
        return 0;
    }
}

/// <summary>The quickstart's steps, also used by the results command and the tests.</summary>
internal static class QuickstartSteps
{
    public static SyntheticMotionSet GenerateData(string folder, SyntheticMotionOptions options, CancellationToken cancellationToken)
    {
        int total = options.Classes * (options.TrainPerClass + options.TestPerClass);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        return CliProgress.Run(progress => SyntheticMotion.Generate(
            folder,
            options,
            new Reporter(done => progress.Report(new StageProgress("generating videos", done, total, watch.Elapsed))),
            cancellationToken));
    }

    public static string WriteContactSheet(string path, string video, ExperimentSettings experiment)
    {
        var generator = new CvrlViewGenerator(experiment.Trainer(null).Views);
        using var views = generator.Generate(video, experiment.Seed, 0, 0);
        ContactSheet.Write(path, views, $"CVRL's two views of {Path.GetFileName(video)}: clips {views.Clips.Gap} frames apart, each with its own crop, flip, colour, blur", maxFrames: 8, cellHeight: 96);
        return path;
    }

    /// <summary>
    /// Embeds the test videos with <paramref name="encoder"/> (the evaluation's test views) and writes the set and its
    /// explore report as <c>{name}-test.cvrlemb</c> and <c>explore-{name}/</c>; returns the report's page.
    /// </summary>
    public static string WriteExplore(string output, string name, ResNet3d encoder, VideoDataset test, ExperimentSettings experiment, ILogger logger, CancellationToken cancellationToken, string? title = null)
    {
        var embedder = new VideoEmbedder(encoder, new EmbeddingOptions { Views = experiment.Features.Views.Test, Workers = experiment.Workers }, logger);
        var set = embedder.Embed(test, cancellationToken: cancellationToken);
        set.Save(Path.Combine(output, $"{name}-test.cvrlemb"));
        title ??= name == "random" ? "Quickstart test videos, random weights" : "Quickstart test videos, CVRL pre-trained";
        var report = ExploreReport.Write(set, Path.Combine(output, $"explore-{name}"), new ExploreOptions { Title = title, Map = MapMethod.Tsne, Workers = experiment.Workers }, logger, cancellationToken: cancellationToken);
        return report.IndexPath;
    }

    public static void Report(string output, ExperimentOutcome outcome, ExperimentSettings experiment, SyntheticMotionOptions data)
    {
        var ci = CultureInfo.InvariantCulture;
        var table = new Table().Title("linear probe and kNN on the test split (top-1)").AddColumn("encoder").AddColumn("linear probe").AddColumn("kNN");
        table.AddRow("random initialisation", Percent(outcome.RandomProbe!.Top1), Percent(outcome.RandomKnn!.Top1));
        table.AddRow("CVRL pre-trained", Percent(outcome.CvrlProbe.Top1), Percent(outcome.CvrlKnn.Top1));
        double gain = (outcome.CvrlProbe.Top1 - outcome.RandomProbe.Top1) * 100;
        table.AddRow("[bold]difference[/]", $"[bold]{gain.ToString("+0.0;-0.0", ci)} points[/]", $"{((outcome.CvrlKnn.Top1 - outcome.RandomKnn.Top1) * 100).ToString("+0.0;-0.0", ci)} points");
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"chance: {Percent(1.0 / outcome.CvrlProbe.Classes.Count)}; {outcome.CvrlProbe.TestVideos} test videos; run time {outcome.Elapsed.TotalMinutes:F1} min");

        var losses = outcome.Training!.Losses;
        Charts.Save(Path.Combine(output, "loss.png"), Charts.Line("CVRL pre-training loss (NT-Xent, sum of both directions)", "step", "loss", [new ChartSeries("loss per step", losses)], smoothing: Math.Max(1, losses.Count / 20)));
        Charts.Save(Path.Combine(output, "accuracy.png"), Charts.Bars(
            "Top-1 accuracy on the test split",
            "top-1",
            ["random initialisation", "CVRL pre-trained"],
            [
                new BarGroup("linear probe", [outcome.RandomProbe.Top1, outcome.CvrlProbe.Top1]),
                new BarGroup("kNN", [outcome.RandomKnn.Top1, outcome.CvrlKnn.Top1]),
            ],
            yMax: 1));
        var summary = new JsonObject
        {
            ["randomProbeTop1"] = outcome.RandomProbe.Top1,
            ["randomKnnTop1"] = outcome.RandomKnn.Top1,
            ["cvrlProbeTop1"] = outcome.CvrlProbe.Top1,
            ["cvrlKnnTop1"] = outcome.CvrlKnn.Top1,
            ["probeGainPoints"] = gain,
            ["minutes"] = outcome.Elapsed.TotalMinutes,
            ["experiment"] = JsonSerializer.SerializeToNode(experiment, CvrlJson.Options),
            ["data"] = JsonSerializer.SerializeToNode(data with { Workers = 1 }, CvrlJson.Options),
            ["finalLoss"] = outcome.Training.FinalLoss,
        };
        File.WriteAllText(Path.Combine(output, "summary.json"), summary.ToJsonString(CvrlJson.Options));
        outcome.CvrlProbe.Save(Path.Combine(output, "cvrl-probe.json"));
        outcome.CvrlKnn.Save(Path.Combine(output, "cvrl-knn.json"));
        outcome.RandomProbe.Save(Path.Combine(output, "random-probe.json"));
        outcome.RandomKnn.Save(Path.Combine(output, "random-knn.json"));
        AnsiConsole.MarkupLine($"wrote [green]loss.png[/], [green]accuracy.png[/], [green]views.png[/], [green]summary.json[/] and the four results (*.json) in {Markup.Escape(output)}");
    }

    private static string Percent(double value) => value.ToString("P1", CultureInfo.InvariantCulture);

    private sealed class Reporter(Action<int> report) : IProgress<int>
    {
        public void Report(int value) => report(value);
    }
}
