using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cvrl.Cli.Infrastructure;
using Cvrl.Data;
using Cvrl.Evaluation;
using Cvrl.Models;
using Cvrl.Optim;
using Cvrl.Training;
using Cvrl.Video;
using Spectre.Console;
using Spectre.Console.Cli;
using TorchSharp;

namespace Cvrl.Cli.Commands;

/// <summary>
/// What works on your own labelled clips: for each seed, the same network with random weights, each starting encoder as
/// it is (inflated ImageNet weights, a zoo model), each start adapted with CVRL on the training videos without labels,
/// CVRL from scratch, and supervised fine-tuning (from each start, the ceiling, and from scratch), all evaluated with
/// the same linear probe and kNN; resumable; a table, a chart and explore reports of the two best encoders and of CVRL from scratch.
/// </summary>
internal sealed class CompareCommand : Command<CompareCommand.Settings>
{
    /// <summary>The rows a comparison can run, in the order of its table.</summary>
    internal static readonly string[] AllRows = ["random", "start", "adapted", "scratch", "supervised", "supervised-scratch"];

    public sealed class Settings : DeviceSettings
    {
        [CommandArgument(0, "<DATA>")]
        [Description("Labelled clips: class folders (split by --test-every and --group), train/ and test/ folders of class folders, or UCF101-style split lists.")]
        public string Data { get; init; } = string.Empty;

        [CommandOption("--init <CHECKPOINTS>")]
        [Description("Starting encoders, comma-separated Cvrl checkpoints (cvrl import writes them: --inflate for ImageNet weights, or a zoo model). The first sets the architecture of the random and from-scratch rows.")]
        public string Init { get; init; } = string.Empty;

        [CommandOption("-o|--out <FOLDER>")]
        [Description("Output folder: results per row and seed (a rerun skips what is done), runs, compare.md, compare.json, compare.png, explore reports.")]
        [DefaultValue("cvrl-compare")]
        public string Output { get; init; } = "cvrl-compare";

        [CommandOption("--rows <ROWS>")]
        [Description("Which rows, comma-separated: random, start, adapted, scratch, supervised, supervised-scratch.")]
        [DefaultValue("random,start,adapted,scratch,supervised,supervised-scratch")]
        public string Rows { get; init; } = string.Join(",", AllRows);

        [CommandOption("--seeds <N>")]
        [Description("Seeds (0 to N-1): initialisation, data order, augmentation and the probe.")]
        [DefaultValue(3)]
        public int Seeds { get; init; } = 3;

        [CommandOption("--epochs <N>")]
        [Description("Epochs of CVRL pre-training (adapted and scratch rows).")]
        [DefaultValue(20)]
        public int Epochs { get; init; } = 20;

        [CommandOption("--batch <N>")]
        [Description("Videos per CVRL step.")]
        [DefaultValue(16)]
        public int Batch { get; init; } = 16;

        [CommandOption("--supervised-epochs <N>")]
        [Description("Epochs of supervised fine-tuning (supervised rows).")]
        [DefaultValue(15)]
        public int SupervisedEpochs { get; init; } = 15;

        [CommandOption("--adapt-lr <RATE>")]
        [Description("The adapted rows' learning rate. [grey]Default: the adapt recipe's[/]")]
        public double? AdaptLearningRate { get; init; }

        [CommandOption("--adapt-color-strength <S>")]
        [Description("The adapted rows' colour jitter strength. [grey]Default: the adapt recipe's[/]")]
        public double? AdaptColorStrength { get; init; }

        [CommandOption("--adapt-frozen-stages <N>")]
        [Description("The adapted rows' encoder parts kept as they are (0 none, 1 the stem, 2 the stem and layer1, ... 5 all). [grey]Default: the adapt recipe's[/]")]
        public int? AdaptFrozenStages { get; init; }

        [CommandOption("--adapt-bn <MODE>")]
        [Description("The adapted rows' batch normalisation: 'train' (statistics and scale updated) or 'freeze' (kept as the start has them). [grey]Default: the adapt recipe's[/]")]
        public string? AdaptBatchNorm { get; init; }

        [CommandOption("--adapt-crop-area <MIN:MAX>")]
        [Description("The adapted rows' crop area range. [grey]Default: the adapt recipe's[/]")]
        public string? AdaptCropArea { get; init; }

        [CommandOption("--frames <N>")]
        [Description("Frames per clip, in training and evaluation.")]
        [DefaultValue(8)]
        public int Frames { get; init; } = 8;

        [CommandOption("--stride <N>")]
        [Description("Stride between a clip's frames.")]
        [DefaultValue(2)]
        public int Stride { get; init; } = 2;

        [CommandOption("--size <PIXELS>")]
        [Description("Crop size in training; test views are resized to it on their short side and centre-cropped.")]
        [DefaultValue(112)]
        public int Size { get; init; } = 112;

        [CommandOption("--test-clips <N>")]
        [Description("Evenly spaced test clips per video.")]
        [DefaultValue(4)]
        public int TestClips { get; init; } = 4;

        [CommandOption("--cached-views <N>")]
        [Description("Augmented views per training video for the linear probe's cached features.")]
        [DefaultValue(3)]
        public int CachedViews { get; init; } = 3;

        [CommandOption("--test-every <N>")]
        [Description("Plain class folders: every N-th group of videos of a class is tested.")]
        [DefaultValue(3)]
        public int TestEvery { get; init; } = 3;

        [CommandOption("--group <N>")]
        [Description("Plain class folders: consecutive videos kept on one side of the split.")]
        [DefaultValue(1)]
        public int Group { get; init; } = 1;

        [CommandOption("--split <N>")]
        [Description("Split lists: which trainlistNN/testlistNN.")]
        [DefaultValue(1)]
        public int Split { get; init; } = 1;

        public IReadOnlyList<string> InitFiles => [.. Init.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)];

        public IReadOnlyList<string> RowNames => [.. Rows.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(r => r.ToLowerInvariant())];

        public override ValidationResult Validate()
        {
            if (InitFiles.Count == 0)
            {
                return ValidationResult.Error("--init <CHECKPOINTS> is required: the starting encoders to compare (cvrl import --inflate writes one from ImageNet weights)");
            }

            if (RowNames.FirstOrDefault(r => !AllRows.Contains(r)) is { } unknown)
            {
                return ValidationResult.Error($"--rows: '{unknown}' is not a row; rows are {string.Join(", ", AllRows)}");
            }

            if (Checked(() => ParseBatchNorm(AdaptBatchNorm, "--adapt-bn")) is { Successful: false } badBatchNorm)
            {
                return badBatchNorm;
            }

            if (AdaptFrozenStages is < 0 or > 5)
            {
                return ValidationResult.Error("--adapt-frozen-stages takes 0 to 5");
            }

            if (Seeds < 1 || Epochs < 1 || Batch < 2 || SupervisedEpochs < 1 || Frames < 1 || Stride < 1 || Size < 8 || TestClips < 1 || CachedViews < 1 || TestEvery < 2 || Group < 1 || Split < 1)
            {
                return ValidationResult.Error("--seeds, --epochs, --supervised-epochs, --frames, --stride, --test-clips, --cached-views, --group and --split must be at least 1, --batch and --test-every at least 2, --size at least 8");
            }

            return base.Validate();
        }
    }

    /// <summary>One row of one seed: what it measured.</summary>
    private sealed record Outcome(string Row, string Label, int Seed, double Probe, double Knn, double Minutes, double? FinalLoss);

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        OutputPaths.RequireFolder(settings.Output, "--out");
        foreach (string init in settings.InitFiles)
        {
            if (!File.Exists(init))
            {
                throw new FileNotFoundException($"--init '{init}' does not exist", init);
            }

            OutputPaths.RequireNotInput(Path.Combine(settings.Output, "compare.md"), "--out", (init, "a starting encoder"));
        }

        string output = Path.GetFullPath(settings.Output);
        using var claim = FolderLock.Acquire(output, "cvrl compare", settings.Logger);
        var (train, test, layout) = LabeledData.Open(settings.Data, settings.Split, settings.TestEvery, settings.Group);
        var index = new VideoIndexOptions { Workers = settings.WorkerCount };
        train = train.Verify(index, null, settings.Logger, cancellationToken);
        test = test.Verify(index, null, settings.Logger, cancellationToken);
        var starts = settings.InitFiles.Select(f => (File: Path.GetFullPath(f), Name: Path.GetFileNameWithoutExtension(f), State: CvrlCheckpoint.ReadState(f))).ToList();
        var architecture = starts[0].State.Encoder;
        AnsiConsole.MarkupLine($"[bold]compare[/] on {Markup.Escape(layout)}: {train.Count} training and {test.Count} test videos, {train.Classes.Count} classes ({Markup.Escape(string.Join(", ", train.Classes))})");
        AnsiConsole.MarkupLine($"starts: {Markup.Escape(string.Join(", ", starts.Select(s => $"{s.Name} ({s.State.Encoder.ArchitectureName}{(s.State.Source is null ? string.Empty : ", " + s.State.Source)})")))}; views: {settings.Frames} frames at stride {settings.Stride}, {settings.Size} pixels, {settings.TestClips} test clips; {settings.Seeds} seed(s). Output: [green]{Markup.Escape(output)}[/]");

        var outcomes = new List<Outcome>();
        foreach (int seed in Enumerable.Range(0, settings.Seeds))
        {
            foreach (string row in AllRows.Where(settings.RowNames.Contains))
            {
                var variants = row is "random" or "scratch" or "supervised-scratch" ? [(Key: row, Label: Label(row, null), Start: (string?)null)]
                    : starts.Select(s => (Key: $"{row}-{s.Name}", Label: Label(row, s.Name), Start: (string?)s.File)).ToList();
                foreach (var (key, label, start) in variants)
                {
                    outcomes.Add(RunOrLoad(settings, output, key, label, seed, () => Measure(settings, output, row, key, label, seed, start, starts[0].File, architecture, train, test, cancellationToken)));
                }
            }
        }

        Report(settings, output, layout, train, test, starts.Select(s => s.Name).ToList(), outcomes);
        WriteExplore(settings, output, outcomes, starts.ToDictionary(s => "start-" + s.Name, s => s.File), starts[0].File, architecture, test, cancellationToken);
        return 0;
    }

    private static string Label(string row, string? start) => row switch
    {
        "random" => "random weights",
        "start" => $"{start}, as it is",
        "adapted" => $"{start}, adapted with CVRL (no labels)",
        "scratch" => "CVRL from scratch (no labels)",
        "supervised" => $"{start}, fine-tuned with labels (ceiling)",
        _ => "supervised from scratch",
    };

    /// <summary>The finished result of (row, seed) from an earlier run, else runs it and keeps its result (atomically).</summary>
    private static Outcome RunOrLoad(Settings settings, string output, string key, string label, int seed, Func<Outcome> run)
    {
        string file = Path.Combine(output, "results", $"{key}-seed{seed}.json");
        var identity = Identity(settings);
        if (File.Exists(file) && JsonNode.Parse(File.ReadAllText(file)) is JsonObject done && done["settings"]?.ToJsonString() == identity.ToJsonString())
        {
            AnsiConsole.MarkupLine($"seed {seed}: {Markup.Escape(label)}: done earlier");
            return done["outcome"].Deserialize<Outcome>(CvrlJson.Options)!;
        }

        AnsiConsole.MarkupLine($"[bold]seed {seed}: {Markup.Escape(label)}[/]");
        var outcome = run();
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        string text = new JsonObject { ["settings"] = identity, ["outcome"] = JsonSerializer.SerializeToNode(outcome, CvrlJson.Options) }.ToJsonString(CvrlJson.Options);
        string temp = file + ".tmp";
        File.WriteAllText(temp, text);
        File.Move(temp, file, overwrite: true);
        AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture, $"seed {seed}: {Markup.Escape(label)}: probe {outcome.Probe:P1}, kNN {(double.IsNaN(outcome.Knn) ? "-" : outcome.Knn.ToString("P1", CultureInfo.InvariantCulture))}, {outcome.Minutes:0.#} min"));
        return outcome;
    }

    /// <summary>What a finished result depends on (a rerun with other values does it again).</summary>
    private static JsonObject Identity(Settings s) => new()
    {
        ["epochs"] = s.Epochs, ["batch"] = s.Batch, ["supervisedEpochs"] = s.SupervisedEpochs, ["frames"] = s.Frames, ["stride"] = s.Stride,
        ["size"] = s.Size, ["testClips"] = s.TestClips, ["cachedViews"] = s.CachedViews, ["testEvery"] = s.TestEvery, ["group"] = s.Group, ["split"] = s.Split,
        ["precision"] = s.Precision.ToString(),
        ["adaptLr"] = s.AdaptLearningRate, ["adaptColorStrength"] = s.AdaptColorStrength, ["adaptCropArea"] = s.AdaptCropArea,
        ["adaptFrozenStages"] = s.AdaptFrozenStages, ["adaptBn"] = s.AdaptBatchNorm,
    };

    /// <summary>The evaluation and training settings of a row (the library's recipes, at the comparison's sizes).</summary>
    internal static ExperimentSettings Experiment(Settings s, CvrlRecipe recipe, ResNet3dOptions architecture, int seed)
    {
        var r = CvrlTrainerOptions.ForRecipe(recipe, architecture.WidthMultiplier);
        return new ExperimentSettings
        {
            Depth = architecture.Depth,
            WidthMultiplier = architecture.WidthMultiplier,
            Frames = s.Frames,
            Stride = s.Stride,
            Crop = s.Size,
            Epochs = s.Epochs,
            BatchSize = s.Batch,
            Optimizer = r.Optimizer.Kind,
            LearningRate = r.LearningRate,
            WeightDecay = r.Optimizer.WeightDecay,
            WarmupFraction = r.WarmupFraction,
            HeadLayers = r.Head.HiddenLayers,
            CropAspect = r.Views.CropAspect,
            CropArea = r.Views.CropArea,
            ColorStrength = r.Views.ColorJitterStrength,
            FrozenStages = r.FrozenStages,
            FreezeBatchNorm = r.FreezeBatchNorm,
            TestClips = s.TestClips,
            TestCrops = 1,
            CachedViews = s.CachedViews,
            Seed = seed,
            Device = s.Device,
            Precision = s.Precision,
            Workers = s.WorkerCount,
        };
    }

    private static Outcome Measure(Settings settings, string output, string row, string key, string label, int seed, string? start, string first, ResNet3dOptions architecture, VideoDataset train, VideoDataset test, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var device = DeviceSpec.Resolve(settings.Device);
        var recipe = row == "adapted" ? CvrlRecipe.Adapt : CvrlRecipe.Small;
        var experiment = Experiment(settings, recipe, architecture, seed);
        if (row == "adapted")
        {
            experiment = experiment with
            {
                LearningRate = settings.AdaptLearningRate ?? experiment.LearningRate,
                ColorStrength = settings.AdaptColorStrength ?? experiment.ColorStrength,
                CropArea = settings.AdaptCropArea is { } area ? ExperimentOptions.ParseRange(area) ?? throw new ArgumentException($"--adapt-crop-area takes MIN:MAX, got '{area}'") : experiment.CropArea,
                FrozenStages = settings.AdaptFrozenStages ?? experiment.FrozenStages,
                FreezeBatchNorm = DeviceSettings.ParseBatchNorm(settings.AdaptBatchNorm, "--adapt-bn") ?? experiment.FreezeBatchNorm,
            };
        }
        using var encoder = Encoder(start, first, architecture, seed, device);
        double? loss = null;
        string runFolder = Path.Combine(output, "runs", $"{key}-seed{seed}");
        if (row is "adapted" or "scratch")
        {
            using var trainer = new CvrlTrainer(encoder, experiment.Trainer(Path.Combine(runFolder, "checkpoints")), settings.Logger);
            var summary = CliProgress.Run(sink => trainer.Fit(train.Unlabeled(), sink.Training, cancellationToken));
            loss = summary.FinalLoss;
        }

        if (row is "supervised" or "supervised-scratch")
        {
            var tune = experiment.Supervised(settings.SupervisedEpochs) with { BackboneLearningRate = row == "supervised" ? 1e-4 : null };
            using var run = CliProgress.Run(progress => new FineTuner(tune, settings.Logger).Fit(encoder, train, test, progress, cancellationToken));
            CvrlCheckpoint.WriteEncoder(Path.Combine(runFolder, "encoder.cvrl"), encoder, null, label);
            return new Outcome(key, label, seed, run.Result.Top1, double.NaN, watch.Elapsed.TotalMinutes, run.Result.TrainingLoss.Count > 0 ? run.Result.TrainingLoss[^1] : null);
        }

        var (probe, knn) = CliProgress.Run(sink => Cvrl.Cli.Infrastructure.Experiment.Evaluate(encoder, experiment, train, test, settings.Logger, sink.Evaluation, cancellationToken));
        return new Outcome(key, label, seed, probe.Top1, knn.Top1, watch.Elapsed.TotalMinutes, loss);
    }

    /// <summary>
    /// A row's encoder: the start, or the first start's architecture at a seeded random initialisation, keeping the
    /// start's input convention (its mean image too), so that only the weights differ.
    /// </summary>
    private static ResNet3d Encoder(string? start, string first, ResNet3dOptions architecture, int seed, torch.Device device)
    {
        if (start is not null)
        {
            return CvrlCheckpoint.LoadEncoder(start, device);
        }

        torch.manual_seed(seed);
        var encoder = ResNet3d.Create(architecture, device);
        if (encoder.Options.InputMeanImageSize is not null)
        {
            using var source = CvrlCheckpoint.LoadEncoder(first, device);
            using var noGrad = torch.no_grad();
            encoder.state_dict()[ResNet3d.MeanImageBuffer].copy_(source.state_dict()[ResNet3d.MeanImageBuffer]);
        }

        return encoder;
    }

    private static void Report(Settings settings, string output, string layout, VideoDataset train, VideoDataset test, IReadOnlyList<string> starts, List<Outcome> outcomes)
    {
        var ci = CultureInfo.InvariantCulture;
        var groups = outcomes.GroupBy(o => o.Row).Select(g => (Row: g.Key, g.First().Label, Items: g.OrderBy(o => o.Seed).ToList())).ToList();
        static (double Mean, double Std) Stats(IEnumerable<double> values)
        {
            var v = values.ToList();
            double mean = v.Average();
            double std = v.Count > 1 ? Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Count - 1)) : 0;
            return (mean, std);
        }

        string Cell(List<Outcome> items, Func<Outcome, double> pick)
        {
            var values = items.Select(pick).ToList();
            if (values.Any(double.IsNaN))
            {
                return "-";
            }

            var (mean, std) = Stats(values);
            return string.Create(ci, $"{mean * 100:0.0} ± {std * 100:0.0}% ({string.Join(", ", values.Select(v => (v * 100).ToString("0.0", ci)))})");
        }

        // The median, not the mean: a run that shared the cores or was paused says nothing about the others.
        string Minutes(List<Outcome> items)
        {
            var sorted = items.Select(o => o.Minutes).Order().ToList();
            double median = sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
            string text = median.ToString("0.0", ci);
            return items.Count == 1 ? text : string.Create(ci, $"{text} ({string.Join(", ", items.Select(o => o.Minutes.ToString("0.0", ci)))})");
        }

        var table = new Table().Title("test top-1, mean ± standard deviation over seeds (per seed)").AddColumn("encoder").AddColumn("linear probe").AddColumn("kNN").AddColumn("minutes, median (per seed)");
        var md = new StringBuilder();
        md.AppendLine("| encoder | linear probe | kNN | minutes, median (per seed) |").AppendLine("|---|---|---|---|");
        foreach (var (row, label, items) in groups)
        {
            string probe = Cell(items, o => o.Probe), knn = Cell(items, o => o.Knn);
            string minutes = Minutes(items);
            table.AddRow(Markup.Escape(label), probe, knn, minutes);
            md.AppendLine(CultureInfo.InvariantCulture, $"| {label} | {probe} | {knn} | {minutes} |");
        }

        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"chance: {(1.0 / train.Classes.Count).ToString("P1", ci)}; {test.Count} test videos; supervised rows give the fine-tuned network's own test accuracy (no kNN)");
        var first = settings;
        string header = string.Create(ci, $"Data: {layout}; {train.Count} training and {test.Count} test videos, {train.Classes.Count} classes. Views: {first.Frames} frames at stride {first.Stride}, crops of {first.Size}, {first.TestClips} test clips. CVRL: {first.Epochs} epochs of {first.Batch} videos (adapted: the adapt recipe; scratch: the small recipe). Supervised: {first.SupervisedEpochs} epochs. Seeds 0 to {first.Seeds - 1}.");
        File.WriteAllText(Path.Combine(output, "compare.md"), header + Environment.NewLine + Environment.NewLine + md);
        File.WriteAllText(Path.Combine(output, "compare.json"), JsonSerializer.Serialize(new { layout, train = train.Count, test = test.Count, classes = train.Classes, starts, settings = Identity(settings), outcomes }, CvrlJson.Options));
        Charts.Save(Path.Combine(output, "compare.png"), Charts.Bars(
            "Top-1 on the test videos (mean over seeds)",
            "top-1",
            [.. groups.Select(g => g.Label)],
            [
                new BarGroup("linear probe (supervised: fine-tuned)", [.. groups.Select(g => g.Items.Average(o => o.Probe))]),
                new BarGroup("kNN", [.. groups.Select(g => g.Items.Any(o => double.IsNaN(o.Knn)) ? double.NaN : g.Items.Average(o => o.Knn))]),
            ],
            yMax: 1,
            legendOutside: true));
        AnsiConsole.MarkupLine($"wrote [green]compare.md[/], [green]compare.json[/] and [green]compare.png[/] in {Markup.Escape(output)}");
    }

    /// <summary>
    /// Maps of the test videos for the two rows with the best mean probe and for CVRL from scratch (seed 0's encoders),
    /// to see what each latched on to. A trained row whose encoder file is gone is skipped with a warning, never drawn
    /// with other weights.
    /// </summary>
    private static void WriteExplore(Settings settings, string output, List<Outcome> outcomes, Dictionary<string, string> startFiles, string first, ResNet3dOptions architecture, VideoDataset test, CancellationToken cancellationToken)
    {
        var seed0 = outcomes.Where(o => o.Seed == 0).ToList();
        var chosen = seed0.OrderByDescending(o => outcomes.Where(x => x.Row == o.Row).Average(x => x.Probe)).Take(2)
            .Concat(seed0.Where(o => o.Row == "scratch"))
            .DistinctBy(o => o.Row)
            .ToList();
        foreach (var o in chosen)
        {
            var experiment = Experiment(settings, CvrlRecipe.Small, architecture, 0);
            string folder = Path.Combine(output, "runs", $"{o.Row}-seed0");
            string? file = o.Row.StartsWith("supervised", StringComparison.Ordinal) ? Path.Combine(folder, "encoder.cvrl")
                : startFiles.GetValueOrDefault(o.Row) is { } startFile ? startFile
                : o.Row == "random" ? null
                : Directory.Exists(Path.Combine(folder, "checkpoints")) ? Directory.GetFiles(Path.Combine(folder, "checkpoints"), "*.cvrl").Order(StringComparer.Ordinal).LastOrDefault() ?? folder
                : folder;
            if (file is not null && !File.Exists(file))
            {
                AnsiConsole.MarkupLine($"[yellow]no map of {Markup.Escape(o.Label)}:[/] its encoder ({Markup.Escape(file)}) is gone; delete {Markup.Escape(Path.Combine(output, "results", $"{o.Row}-seed0.json"))} to measure the row again");
                continue;
            }

            using var encoder = file is not null ? CvrlCheckpoint.LoadEncoder(file) : Encoder(null, first, architecture, 0, torch.CPU);
            string page = QuickstartSteps.WriteExplore(output, o.Row, encoder, test, experiment, settings.Logger, cancellationToken, o.Label);
            AnsiConsole.MarkupLine($"map of the test videos, {Markup.Escape(o.Label)}: [green]{Markup.Escape(page)}[/]");
        }
    }
}
