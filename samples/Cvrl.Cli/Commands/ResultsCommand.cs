using System.ComponentModel;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cvrl.Augment;
using Cvrl.Augment.Sampling;
using Cvrl.Augment.Transforms;
using Cvrl.Cli.Infrastructure;
using Cvrl.Evaluation;
using Cvrl.Models;
using Cvrl.Training;
using Spectre.Console;
using Spectre.Console.Cli;
using TorchSharp;

namespace Cvrl.Cli.Commands;

/// <summary>
/// Regenerates docs/results.md: the paper's ablations at small scale on synthetic motion videos (CVRL against random
/// weights, per-clip against per-frame augmentation, the decreasing interval against uniform and same-start), over
/// several seeds, each seed with its own data set, initialisation and augmentations shared by every row.
/// </summary>
internal sealed class ResultsCommand : Command<ResultsCommand.Settings>
{
    public sealed class Settings : ExperimentOptions
    {
        [CommandOption("-o|--out <FILE>")]
        [Description("The Markdown table to write (a PNG chart and the raw JSON go next to it).")]
        [DefaultValue("docs/results.md")]
        public string Output { get; init; } = "docs/results.md";

        [CommandOption("--work <DIR>")]
        [Description("Folder for the generated data sets and checkpoints.")]
        [DefaultValue("cvrl-results")]
        public string Work { get; init; } = "cvrl-results";

        [CommandOption("--seeds <N>")]
        [Description("Seeds per row (0, 1, ...).")]
        [DefaultValue(3)]
        public int Seeds { get; init; } = 3;

        [CommandOption("--supervised-epochs <N>")]
        [Description("Epochs of the supervised reference (the same network trained from scratch with the labels); 0 skips it.")]
        [DefaultValue(20)]
        public int SupervisedEpochs { get; init; } = 20;

        [CommandOption("--render <JSON>")]
        [Description("Only rewrite the table and chart from the raw results of an earlier run (its results.json), for example after editing results-notes.md.")]
        public string? Render { get; init; }

        public override ValidationResult Validate()
        {
            var result = base.Validate();
            return !result.Successful ? result : Seeds is < 1 or > 20 ? ValidationResult.Error("--seeds must lie in 1..20") : ValidationResult.Success();
        }
    }

    /// <summary>One row: a name and how its pre-training differs from CVRL.</summary>
    private sealed record Variant(string Key, string Name, TemporalConsistency Consistency, IntervalDistribution Distribution);

    private static readonly Variant[] Variants =
    [
        new("cvrl", "CVRL: per-clip augmentation, decreasing interval", TemporalConsistency.PerClip, IntervalDistribution.Decreasing),
        new("per-frame", "per-frame (inconsistent) augmentation", TemporalConsistency.PerFrame, IntervalDistribution.Decreasing),
        new("uniform", "uniform interval", TemporalConsistency.PerClip, IntervalDistribution.Uniform),
        new("same-start", "both clips from the same start", TemporalConsistency.PerClip, IntervalDistribution.SameStart),
    ];

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        OutputPaths.RequireFile(settings.Output, "--out");
        OutputPaths.RequireFolder(settings.Work, "--work");
        if (settings.Render is not null)
        {
            if (!File.Exists(settings.Render))
            {
                throw new FileNotFoundException($"results file '{settings.Render}' does not exist", settings.Render);
            }

            var earlier = JsonNode.Parse(File.ReadAllText(settings.Render)) as JsonObject ?? throw new InvalidDataException($"'{settings.Render}' is not a results JSON object");
            Write(settings.Output, earlier);
            return 0;
        }

        string work = Path.GetFullPath(settings.Work);
        var rows = new Dictionary<string, List<JsonObject>>(StringComparer.Ordinal) { ["random"] = [] };
        foreach (var v in Variants)
        {
            rows[v.Key] = [];
        }

        var started = DateTime.UtcNow;
        ExperimentSettings? last = null;
        Cvrl.Data.SyntheticMotionOptions? lastData = null;
        for (int seed = 0; seed < settings.Seeds; seed++)
        {
            var (dataOptions, baseExperiment) = settings.Resolve(seed);
            var set = QuickstartSteps.GenerateData(Path.Combine(work, $"data-seed{seed}"), dataOptions, cancellationToken);
            var train = set.Train();
            var test = set.Test();
            foreach (var variant in Variants)
            {
                var experiment = baseExperiment with { Consistency = variant.Consistency, Distribution = variant.Distribution };
                (last, lastData) = (experiment, dataOptions);
                AnsiConsole.MarkupLine($"[bold]seed {seed}: {Markup.Escape(variant.Name)}[/]");
                string checkpoints = Path.Combine(work, $"{variant.Key}-seed{seed}");
                string key = ResultKey(experiment, dataOptions, 0);

                // Every variant of a seed starts from the same weights (the seed sets the initialisation), so random
                // weights are evaluated once per seed.
                bool random = variant.Key == "cvrl";
                var done = FinishedOrRun(checkpoints, key, () =>
                {
                    var outcome = CliProgress.Run(sink => Experiment.Run(experiment, train, test, checkpoints, random, settings.Logger, sink.Training, sink.Evaluation, cancellationToken));
                    var result = new JsonObject { ["row"] = Row(seed, outcome.CvrlProbe.Top1, outcome.CvrlKnn.Top1, outcome.Training!.FinalLoss, outcome.Elapsed) };
                    if (random)
                    {
                        result["random"] = Row(seed, outcome.RandomProbe!.Top1, outcome.RandomKnn!.Top1, double.NaN, TimeSpan.Zero);
                    }

                    return result;
                });

                var row = done["row"]!.AsObject();
                rows[variant.Key].Add((JsonObject)row.DeepClone());
                if (random)
                {
                    rows["random"].Add((JsonObject)done["random"]!.DeepClone());
                }

                AnsiConsole.MarkupLine($"  probe {row["probe"]!.GetValue<double>():P1}, kNN {row["knn"]!.GetValue<double>():P1}, final loss {row["finalLoss"]!.GetValue<double>():F3} ({row["minutes"]!.GetValue<double>():F1} min)");
            }

            if (settings.SupervisedEpochs > 0)
            {
                // The reference the ablations are read against: can this network learn the classes at all, at this
                // scale, when it is given the labels?
                AnsiConsole.MarkupLine($"[bold]seed {seed}: supervised reference[/]");
                string folder = Path.Combine(work, $"supervised-seed{seed}");
                string key = ResultKey(baseExperiment, dataOptions, settings.SupervisedEpochs);
                var done = FinishedOrRun(folder, key, () =>
                {
                    var watch = System.Diagnostics.Stopwatch.StartNew();
                    var options = baseExperiment.Supervised(settings.SupervisedEpochs);
                    torch.manual_seed(seed);
                    using var encoder = ResNet3d.Create(baseExperiment.Architecture, DeviceSpec.Resolve(baseExperiment.Device));
                    using var run = CliProgress.Run(progress => new FineTuner(options, settings.Logger).Fit(encoder, train, test, progress, cancellationToken));
                    var final = run.Result.TrainingLoss.Count > 0 ? run.Result.TrainingLoss[^1] : double.NaN;
                    return new JsonObject { ["row"] = Row(seed, run.Result.Top1, double.NaN, final, watch.Elapsed) };
                });

                var row = done["row"]!.AsObject();
                rows.TryAdd("supervised", []);
                rows["supervised"].Add((JsonObject)row.DeepClone());
                AnsiConsole.MarkupLine($"  top-1 {row["probe"]!.GetValue<double>():P1}, final training loss {row["finalLoss"]!.GetValue<double>():F3} ({row["minutes"]!.GetValue<double>():F1} min)");
            }
        }

        var raw = new JsonObject
        {
            ["seeds"] = settings.Seeds,
            ["supervisedEpochs"] = settings.SupervisedEpochs,
            ["minutes"] = (DateTime.UtcNow - started).TotalMinutes,
            ["experiment"] = JsonSerializer.SerializeToNode(last! with { Seed = 0, Consistency = TemporalConsistency.PerClip, Distribution = IntervalDistribution.Decreasing }, CvrlJson.Options),
            ["data"] = JsonSerializer.SerializeToNode(lastData! with { Seed = 0, Workers = 1 }, CvrlJson.Options),
            ["rows"] = new JsonObject(rows.Select(r => KeyValuePair.Create(r.Key, (JsonNode?)new JsonArray([.. r.Value.Select(o => (JsonNode)o.DeepClone())])))),
        };
        Write(settings.Output, raw);
        return 0;
    }

    /// <summary>Writes the raw results (JSON), the chart (PNG) and the table (Markdown) next to each other.</summary>
    private static void Write(string outputPath, JsonObject raw)
    {
        string output = Path.GetFullPath(outputPath);
        Directory.CreateDirectory(Path.GetDirectoryName(output)!);
        string stem = Path.Combine(Path.GetDirectoryName(output)!, Path.GetFileNameWithoutExtension(output));
        var experiment = raw["experiment"].Deserialize<ExperimentSettings>(CvrlJson.Options) ?? throw new InvalidDataException("results JSON: no experiment");
        var data = raw["data"].Deserialize<Cvrl.Data.SyntheticMotionOptions>(CvrlJson.Options) ?? throw new InvalidDataException("results JSON: no data options");
        int seeds = raw["seeds"]!.GetValue<int>();
        var rows = raw["rows"]!.AsObject().ToDictionary(r => r.Key, r => r.Value!.AsArray().Select(o => o!.AsObject()).ToList(), StringComparer.Ordinal);
        var names = new[] { ("random", "random initialisation (no pre-training)") }.Concat(Variants.Select(v => (v.Key, v.Name))).ToList();
        Charts.Save(stem + ".png", Charts.Bars(
            $"Top-1 per row, mean and sd of {seeds} seeds (chance {1.0 / data.Classes:P0})",
            "top-1",
            ["linear probe", "kNN"],
            [.. names.Select(n => new BarGroup(Short(n.Item1), [Mean(rows[n.Item1], "probe"), Mean(rows[n.Item1], "knn")], [Std(rows[n.Item1], "probe"), Std(rows[n.Item1], "knn")]))],
            yMax: 1));
        File.WriteAllText(stem + ".json", raw.ToJsonString(CvrlJson.Options));
        File.WriteAllText(output, Markdown(output, seeds, raw["supervisedEpochs"]?.GetValue<int>() ?? 0, experiment, data, names, rows, raw["minutes"]?.GetValue<double>() ?? rows.Values.Sum(r => r.Sum(o => o["minutes"]?.GetValue<double>() ?? 0)), Path.GetFileName(stem)));
        AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(output)}[/], {Markup.Escape(Path.GetFileName(stem))}.png and {Markup.Escape(Path.GetFileName(stem))}.json");
    }

    /// <summary>What identifies a finished row: every experiment and data setting (and the supervised epochs).</summary>
    private static string ResultKey(ExperimentSettings experiment, Cvrl.Data.SyntheticMotionOptions data, int supervisedEpochs) =>
        new JsonObject
        {
            ["experiment"] = JsonSerializer.SerializeToNode(experiment, CvrlJson.Options),
            ["data"] = JsonSerializer.SerializeToNode(data with { Workers = 1 }, CvrlJson.Options),
            ["supervisedEpochs"] = supervisedEpochs,
        }.ToJsonString();

    /// <summary>
    /// The result a killed or earlier run left in <paramref name="folder"/> for exactly these settings (a long
    /// <c>cvrl results</c> run that is stopped continues where it was when started again with the same options);
    /// otherwise empties the folder, runs <paramref name="run"/> and keeps its result there.
    /// </summary>
    private static JsonObject FinishedOrRun(string folder, string key, Func<JsonObject> run)
    {
        if (Finished(folder, key) is { } done)
        {
            AnsiConsole.MarkupLine("  (finished in an earlier run with the same settings; its result is reused)");
            return done;
        }

        if (Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
        }

        var result = run();
        Remember(folder, key, result);
        return result;
    }

    private static JsonObject? Finished(string folder, string key)
    {
        string file = Path.Combine(folder, "result.json");
        if (!File.Exists(file))
        {
            return null;
        }

        var saved = JsonNode.Parse(File.ReadAllText(file)) as JsonObject;
        return saved?["key"]?.GetValue<string>() == key ? saved["result"]?.AsObject() : null;
    }

    private static void Remember(string folder, string key, JsonObject result)
    {
        Directory.CreateDirectory(folder);
        string file = Path.Combine(folder, "result.json");
        File.WriteAllText(file + ".tmp", new JsonObject { ["key"] = key, ["result"] = result.DeepClone() }.ToJsonString(CvrlJson.Options));
        File.Move(file + ".tmp", file, overwrite: true);
    }

    private static JsonObject Row(int seed, double probe, double knn, double loss, TimeSpan elapsed) => new()
    {
        ["seed"] = seed,
        ["probe"] = probe,
        ["knn"] = double.IsNaN(knn) ? null : knn,
        ["finalLoss"] = double.IsNaN(loss) ? null : loss,
        ["minutes"] = elapsed.TotalMinutes,
    };

    private static string Short(string key) => key switch
    {
        "random" => "random init",
        "cvrl" => "CVRL",
        _ => key,
    };

    private static double Mean(List<JsonObject> rows, string key) => rows.Average(r => r[key]!.GetValue<double>());

    private static double Std(List<JsonObject> rows, string key)
    {
        if (rows.Count < 2)
        {
            return 0;
        }

        double mean = Mean(rows, key);
        return Math.Sqrt(rows.Sum(r => Math.Pow(r[key]!.GetValue<double>() - mean, 2)) / (rows.Count - 1));
    }

    private static string Markdown(string output, int seeds, int supervisedEpochs, ExperimentSettings e, Cvrl.Data.SyntheticMotionOptions data, List<(string Key, string Name)> names, Dictionary<string, List<JsonObject>> rows, double minutes, string stem)
    {
        var ci = CultureInfo.InvariantCulture;
        string Pct(double v) => (v * 100).ToString("0.0", ci);
        var md = new StringBuilder();
        md.AppendLine("# Results: the paper's claims at small scale");
        md.AppendLine();
        md.AppendLine("<!-- Generated by `bash scripts/run.sh results` (samples/Cvrl.Cli/Commands/ResultsCommand.cs); the discussion below the table is written by hand and kept in docs/results-notes.md. -->");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Setting: synthetic motion videos (`SyntheticMotion`, {data.Classes} classes that differ only in motion, {data.TrainPerClass} training and {data.TestPerClass} test videos per class, {data.Frames} frames of {data.Width}x{data.Height}, {data.GreyLevels} grey levels; appearance random within every class). Pre-training on the training split without labels: {e.Architecture.ArchitectureName}, clips of {e.Frames} frames at stride {e.Stride}, {e.Crop}x{e.Crop} crops (aspect {e.CropAspect}), {e.Epochs} epochs of {e.BatchSize} videos, {e.Optimizer} with learning rate {e.LearningRate?.ToString("G3", ci)} and weight decay {e.WeightDecay.ToString("G3", ci)}, {e.WarmupFraction.ToString("P0", ci)} warm-up then cosine decay, projection head with {e.HeadLayers} hidden layer(s), temperature {e.Temperature.ToString(ci)}, colour jitter strength {e.ColorStrength.ToString(ci)}, blur and solarisation as the paper's recipe. Evaluation: {(e.PreciseBatchNorm ? "BatchNorm statistics recomputed on un-augmented training clips for every encoder (precise BN), then " : string.Empty)}a cached linear probe ({e.CachedViews} augmented views per training video, {e.ProbeEpochs} epochs{(e.ProbeStandardize ? $", standardised features, learning rate {e.ProbeLearningRate.ToString(ci)}" : string.Empty)}) and kNN (k = {e.KnnK}), both on {e.TestClips} clips x {e.TestCrops} crop(s) per test video.");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Seeds 0..{seeds - 1}; each seed has its own data set, initialisation and augmentations, shared by every row, so rows differ only in the pre-training variant. Chance is {Pct(1.0 / data.Classes)}%. Mean ± sample standard deviation over seeds; per-seed values in brackets. Total run time {minutes:F0} min on this machine (2 cores).");
        md.AppendLine();
        md.AppendLine("| pre-training | linear probe top-1 (%) | kNN top-1 (%) | final NT-Xent loss |");
        md.AppendLine("|---|---|---|---|");
        foreach (var (key, name) in names)
        {
            var r = rows[key];
            string perSeed(string k) => string.Join(", ", r.Select(o => Pct(o[k]!.GetValue<double>())));
            string loss = key == "random" ? "-" : r.Average(o => o["finalLoss"]!.GetValue<double>()).ToString("F2", ci);
            md.AppendLine(CultureInfo.InvariantCulture, $"| {name} | {Pct(Mean(r, "probe"))} ± {Pct(Std(r, "probe"))} [{perSeed("probe")}] | {Pct(Mean(r, "knn"))} ± {Pct(Std(r, "knn"))} [{perSeed("knn")}] | {loss} |");
        }

        if (rows.TryGetValue("supervised", out var supervised) && supervised.Count > 0)
        {
            string perSeed = string.Join(", ", supervised.Select(o => Pct(o["probe"]!.GetValue<double>())));
            md.AppendLine();
            var reference = e.Supervised(supervisedEpochs);
            md.AppendLine(CultureInfo.InvariantCulture, $"Supervised reference: the same network trained from scratch **with** the labels (`FineTuner`, {supervisedEpochs} epochs, batch {reference.BatchSize}, {reference.Optimizer} at learning rate {reference.EffectiveHeadLearningRate.ToString("G3", ci)}, crop and flip, same clips and test views): top-1 {Pct(Mean(supervised, "probe"))} ± {Pct(Std(supervised, "probe"))} [{perSeed}], final training loss {supervised.Average(o => o["finalLoss"]!.GetValue<double>()).ToString("F2", ci)} (chance ln {data.Classes} = {Math.Log(data.Classes).ToString("F2", ci)}).");
        }

        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"![linear probe and kNN per row]({stem}.png)");
        md.AppendLine();
        string notes = Path.Combine(Path.GetDirectoryName(output)!, "results-notes.md");
        if (File.Exists(notes))
        {
            md.Append(File.ReadAllText(notes));
        }

        return md.ToString();
    }
}
