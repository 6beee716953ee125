using System.ComponentModel;
using Cvrl.Augment;
using Cvrl.Augment.Sampling;
using Cvrl.Augment.Transforms;
using Cvrl.Cli.Infrastructure;
using Cvrl.Data;
using Cvrl.Distributed;
using Cvrl.Models;
using Cvrl.Optim;
using Cvrl.Training;
using Cvrl.Video;
using Spectre.Console;
using Spectre.Console.Cli;
using TorchSharp;

namespace Cvrl.Cli.Commands;

/// <summary>CVRL pre-training on a folder of unlabelled videos, with checkpoints, resume and a clean Ctrl+C.</summary>
internal sealed class PretrainCommand : Command<PretrainCommand.Settings>
{
    public sealed class Settings : DeviceSettings
    {
        [CommandArgument(0, "<VIDEOS>")]
        [Description("Folder of videos, searched recursively (labels and class folders are ignored), a prepared folder (cvrl prepare), or one video file.")]
        public string Folder { get; init; } = string.Empty;

        [CommandOption("-o|--out <DIR>")]
        [Description("Run folder: checkpoints, metrics.csv and TensorBoard events. A run already there is resumed.")]
        [DefaultValue("cvrl-run")]
        public string Output { get; init; } = "cvrl-run";

        [CommandOption("--fresh")]
        [Description("Delete the checkpoints already in the run folder and start from step 0 (damaged ones set aside as *.cvrl.damaged are kept).")]
        public bool Fresh { get; init; }

        [CommandOption("--init <CHECKPOINT>")]
        [Description("Start from an encoder's weights: a Cvrl checkpoint (cvrl import writes one from a model-zoo file). The architecture comes from it; the projection head and the optimizer start fresh. A run already in --out resumes instead.")]
        public string? Init { get; init; }

        [CommandOption("--depth <N>")]
        [DefaultFrom("ResNet depth: 18, 34, 50, 101, 152 or 200.", typeof(ResNet3dOptions), "Depth")]
        public int? Depth { get; init; }

        [CommandOption("--width <X>")]
        [DefaultFrom("Width multiplier (paper: 1, 2 or 4).", typeof(ResNet3dOptions), "WidthMultiplier")]
        public double? Width { get; init; }

        [CommandOption("--epochs <N>")]
        [DefaultFrom("Epochs (paper: 200 to 800 on Kinetics-400).", typeof(CvrlTrainerOptions), "Epochs")]
        public int? Epochs { get; init; }

        [CommandOption("--batch <N>")]
        [DefaultFrom("Videos per step, two clips each (paper: 1024).", typeof(CvrlTrainerOptions), "BatchSize")]
        public int? Batch { get; init; }

        [CommandOption("--chunk <N>")]
        [Description("Gradient-cache chunk: embed the batch this many videos at a time (same gradients, the memory of one chunk).")]
        public int? Chunk { get; init; }

        [CommandOption("--recipe <RECIPE>")]
        [Description("The training recipe every option below defaults from: paper (the official one: SGD at 0.32 x batch / 1024, weight decay 1e-6, 3-layer head; made for large batches on accelerators), small (the quickstart's: AdamW 1e-3, weight decay 1e-2, 10% warm-up, 1-layer head, crops of aspect 3/4 to 4/3; learns at small batches on a CPU) or adapt (for --init: the small recipe at learning rate 1e-4, colour strength 0.5, crops of at least half the frame, the stem, layer1 and layer2 frozen and every batch normalisation layer kept as imported). [grey]Default: adapt with --init, else paper[/]")]
        public string? Recipe { get; init; }

        [CommandOption("--lr <RATE>")]
        [Description("Peak learning rate. [grey]Default: the recipe's (paper: 0.32 x batch / 1024, the official 0.32 at 1024 scaled linearly; small 1e-3; adapt 1e-4)[/]")]
        public double? LearningRate { get; init; }

        [CommandOption("--optimizer <KIND>")]
        [RecipeDefault("Sgd (the official optimizer), Lars or AdamW (decoupled weight decay).", "Optimizer.Kind")]
        public OptimizerKind? Optimizer { get; init; }

        [CommandOption("--weight-decay <WD>")]
        [RecipeDefault("Weight decay on kernels (decoupled for AdamW).", "Optimizer.WeightDecay")]
        public double? WeightDecay { get; init; }

        [CommandOption("--warmup <FRACTION>")]
        [RecipeDefault("Warm-up as a fraction of all steps.", "WarmupFraction")]
        public double? Warmup { get; init; }

        [CommandOption("--head-layers <N>")]
        [RecipeDefault("Hidden layers of the projection head.", "Head.HiddenLayers")]
        public int? HeadLayers { get; init; }

        [CommandOption("--crop-aspect <MIN:MAX>")]
        [RecipeDefault("Aspect ratios of the random crops.", "Views.CropAspect")]
        public string? CropAspect { get; init; }

        [CommandOption("--crop-area <MIN:MAX>")]
        [RecipeDefault("Fractions of the frame's area the random crops cover.", "Views.CropArea")]
        public string? CropArea { get; init; }

        [CommandOption("--color-strength <S>")]
        [RecipeDefault("Colour jitter strength (0 to 1.25).", "Views.ColorJitterStrength")]
        public double? ColorStrength { get; init; }

        [CommandOption("--frozen-stages <N>")]
        [RecipeDefault("Encoder parts kept as they are: 0 none, 1 the stem, 2 the stem and layer1, ... 5 all (only the head trains).", "FrozenStages")]
        public int? FrozenStages { get; init; }

        [CommandOption("--bn <MODE>")]
        [RecipeDefault("Batch normalisation while training: 'train' updates statistics, scale and shift; 'freeze' keeps the encoder's as they are (below, True means freeze).", "FreezeBatchNorm")]
        public string? BatchNorm { get; init; }

        [CommandOption("--temperature <T>")]
        [DefaultFrom("NT-Xent temperature (paper: 0.1).", typeof(CvrlTrainerOptions), "Temperature")]
        public double? Temperature { get; init; }

        [CommandOption("--frames <N>")]
        [DefaultFrom("Frames per clip (paper: 16).", typeof(CvrlTrainerOptions), "Views.Sampler.FramesPerClip")]
        public int? Frames { get; init; }

        [CommandOption("--stride <N>")]
        [DefaultFrom("Stride between frames (paper: 2).", typeof(CvrlTrainerOptions), "Views.Sampler.Stride")]
        public int? Stride { get; init; }

        [CommandOption("--size <PIXELS>")]
        [DefaultFrom("Crop size (paper: 224).", typeof(CvrlTrainerOptions), "Views.CropSize")]
        public int? Size { get; init; }

        [CommandOption("--distribution <KIND>")]
        [DefaultFrom("Interval between the two clips: Decreasing (CVRL), Uniform, or SameStart.", typeof(CvrlTrainerOptions), "Views.Sampler.Distribution")]
        public IntervalDistribution? Distribution { get; init; }

        [CommandOption("--per-frame")]
        [Description("Draw augmentation parameters per frame instead of per clip (the paper's inconsistent ablation).")]
        public bool PerFrame { get; init; }

        [CommandOption("--seed <SEED>")]
        [Description("Seed of the initialisation, the shuffling and every augmentation.")]
        [DefaultValue(0L)]
        public long Seed { get; init; }

        [CommandOption("--sync-bn")]
        [Description("Synchronised BatchNorm even in one process: the same statistics code as a multi-process run (the single-process reference of an mpiexec run).")]
        public bool SyncBatchNorm { get; init; }

        [CommandOption("--no-sync-bn")]
        [Description("Under mpiexec: normalise BatchNorm with each process's slice of the batch instead of the global batch (the official recipe synchronises).")]
        public bool NoSyncBatchNorm { get; init; }

        [CommandOption("--log-every <STEPS>")]
        [DefaultFrom("Steps between progress reports and metrics.csv rows (one is also written at every epoch end).", typeof(CvrlTrainerOptions), "LogEverySteps")]
        public int? LogEvery { get; init; }

        [CommandOption("--checkpoint-every <STEPS>")]
        [DefaultFrom("Steps between checkpoints (one is also written at every epoch end and on Ctrl+C).", typeof(CvrlTrainerOptions), "CheckpointEverySteps")]
        public int? CheckpointEvery { get; init; }

        /// <summary>The --init checkpoint's architecture, else the library's default architecture with --depth and --width laid over it.</summary>
        public ResNet3dOptions Architecture
        {
            get
            {
                if (InitState is { } init)
                {
                    return init.Encoder;
                }

                var defaults = new ResNet3dOptions();
                return defaults with { Depth = Depth ?? defaults.Depth, WidthMultiplier = Width ?? defaults.WidthMultiplier };
            }
        }

        /// <summary>The --init checkpoint's state (read once, checksum verified), or null.</summary>
        public CheckpointState? InitState => Init is null ? null : _initState ??= CvrlCheckpoint.ReadState(Init);

        private CheckpointState? _initState;

        /// <summary>The recipe: --recipe, else adapt with --init, else paper.</summary>
        public CvrlRecipe RecipeKind => Recipe?.Trim().ToLowerInvariant() switch
        {
            null => Init is null ? CvrlRecipe.Paper : CvrlRecipe.Adapt,
            "paper" or "official" => CvrlRecipe.Paper,
            "small" => CvrlRecipe.Small,
            "adapt" => CvrlRecipe.Adapt,
            _ => throw new ArgumentException($"--recipe must be paper, small or adapt, not '{Recipe}'"),
        };

        /// <summary>The recipe's trainer options with the options given here laid over them, field by field.</summary>
        public CvrlTrainerOptions TrainerOptions
        {
            get
            {
                var d = CvrlTrainerOptions.ForRecipe(RecipeKind, Architecture.WidthMultiplier);
                var kind = Optimizer ?? d.Optimizer.Kind;
                return d with
                {
                    Epochs = Epochs ?? d.Epochs,
                    BatchSize = Batch ?? d.BatchSize,
                    GradientCacheChunk = Chunk,
                    // A rate is the recipe's only for the recipe's optimizer; another optimizer takes its own default.
                    LearningRate = LearningRate ?? (kind == d.Optimizer.Kind ? d.LearningRate : kind == OptimizerKind.AdamW ? 1e-3 : null),
                    WarmupFraction = Warmup ?? d.WarmupFraction,
                    Optimizer = d.Optimizer with
                    {
                        Kind = kind,
                        WeightDecay = WeightDecay ?? (kind == d.Optimizer.Kind ? d.Optimizer.WeightDecay : kind == OptimizerKind.AdamW ? 1e-2 : new CvrlOptimizerOptions().WeightDecay),
                    },
                    Temperature = Temperature ?? d.Temperature,
                    FrozenStages = FrozenStages ?? d.FrozenStages,
                    FreezeBatchNorm = ParseBatchNorm(BatchNorm, "--bn") ?? d.FreezeBatchNorm,
                    Head = d.Head with { HiddenLayers = HeadLayers ?? d.Head.HiddenLayers },
                    Views = d.Views with
                    {
                        CropAspect = CropAspect is null ? d.Views.CropAspect : ExperimentOptions.ParseRange(CropAspect) ?? throw new ArgumentException($"--crop-aspect takes MIN:MAX with 0 < MIN <= MAX, got '{CropAspect}'"),
                        CropArea = CropArea is null ? d.Views.CropArea : ExperimentOptions.ParseRange(CropArea) ?? throw new ArgumentException($"--crop-area takes MIN:MAX with 0 < MIN <= MAX, got '{CropArea}'"),
                        ColorJitterStrength = ColorStrength ?? d.Views.ColorJitterStrength,
                        CropSize = Size ?? d.Views.CropSize,
                        Consistency = PerFrame ? TemporalConsistency.PerFrame : d.Views.Consistency,
                        Sampler = d.Views.Sampler with
                        {
                            FramesPerClip = Frames ?? d.Views.Sampler.FramesPerClip,
                            Stride = Stride ?? d.Views.Sampler.Stride,
                            Distribution = Distribution ?? d.Views.Sampler.Distribution,
                        },
                    },
                    Seed = Seed,
                    Workers = WorkerCount,
                    Device = Device,
                    CheckpointDirectory = Path.Combine(Output, "checkpoints"),
                    CheckpointEverySteps = CheckpointEvery ?? d.CheckpointEverySteps,
                    Resume = !Fresh,
                    MetricsFile = Path.Combine(Output, "metrics.csv"),
                    LogEverySteps = LogEvery ?? d.LogEverySteps,
                    TensorBoardDirectory = Path.Combine(Output, "tensorboard"),
                    SyncBatchNorm = NoSyncBatchNorm ? false : SyncBatchNorm ? true : null,
                    Precision = Precision,
                };
            }
        }

        public override ValidationResult Validate()
        {
            if (SyncBatchNorm && NoSyncBatchNorm)
            {
                return ValidationResult.Error("--sync-bn and --no-sync-bn contradict each other; give at most one.");
            }

            if (Init is not null && (Depth is not null || Width is not null))
            {
                return ValidationResult.Error("--init takes the architecture from its checkpoint; leave out --depth and --width");
            }

            var result = base.Validate();
            return result.Successful ? Checked(() => { Architecture.Validate(); TrainerOptions.Validate(); }) : result;
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        OutputPaths.RequireFolder(settings.Output, "--out");
        VideoSource.RequireExists(settings.Folder);

        var videos = VideoDataset.FromPath(settings.Folder);

        // Under mpiexec (or srun) every process runs this command; --batch stays the global batch.
        using var communicator = Communicators.FromEnvironment();
        bool root = communicator.Rank == 0;
        if (communicator.Size > 1 && Environment.GetEnvironmentVariable("OMP_NUM_THREADS") is null)
        {
            torch.set_num_threads(communicator.ThreadsPerProcess());
        }

        string checkpoints = Path.Combine(settings.Output, "checkpoints");
        if (settings.Fresh && settings.Init is { } start && FileIdentity.IsWithin(start, checkpoints))
        {
            throw new ArgumentException($"--init '{start}' lies in the run's checkpoints folder, which --fresh empties; copy it elsewhere first");
        }

        // One run per folder: a second one (on this machine or another sharing the folder) is refused with the holder's pid.
        using var claim = root ? FolderLock.Acquire(settings.Output, "cvrl pretrain", settings.Logger) : null;

        if (root && settings.Fresh && Directory.Exists(checkpoints))
        {
            // Damaged checkpoints set aside (*.cvrl.damaged) are kept for inspection; the rest go.
            foreach (string file in Directory.EnumerateFiles(checkpoints).Where(f => f.EndsWith(".cvrl", StringComparison.Ordinal) || f.EndsWith(".tmp", StringComparison.Ordinal)))
            {
                File.Delete(file);
            }
        }

        communicator.Barrier();
        var options = settings.TrainerOptions with
        {
            Device = communicator.DeviceFor(settings.Device),
            Workers = communicator.Size > 1 && settings.Workers is null ? communicator.ThreadsPerProcess() : settings.WorkerCount,
        };
        torch.manual_seed(settings.Seed);
        using var encoder = settings.Init is { } init
            ? CvrlCheckpoint.LoadEncoder(init, DeviceSpec.Resolve(options.Device))
            : ResNet3d.Create(settings.Architecture, DeviceSpec.Resolve(options.Device));
        using var trainer = new CvrlTrainer(encoder, options, root ? settings.Logger : CliLogger.ErrorsOnly, communicator);
        string batchNorm = trainer.SynchronisesBatchNorm ? "synchronised" : "per-process";
        string ranks = communicator.Size > 1 ? $" on {communicator.Size} processes ({batchNorm} BatchNorm)" : trainer.SynchronisesBatchNorm ? " (synchronised BatchNorm code)" : string.Empty;
        if (root)
        {
            string from = settings.InitState is { } initState
                ? $" from {Markup.Escape(Path.GetFileName(settings.Init!))}{(initState.Source is null ? string.Empty : $" ({Markup.Escape(initState.Source)})")}"
                : string.Empty;
            AnsiConsole.MarkupLine($"pre-training {Markup.Escape(settings.Architecture.ArchitectureName)}{from} on {videos.Count} videos{ranks}: {options.Epochs} epochs of {options.BatchSize}, {settings.RecipeKind.ToString().ToLowerInvariant()} recipe ({options.Optimizer.Kind}, learning rate {options.EffectiveLearningRate:G3}, weight decay {options.Optimizer.WeightDecay:G3}, warm-up {options.WarmupFraction:G3}, head {options.Head.HiddenLayers} layers, colour strength {options.Views.ColorJitterStrength:G3}{(options.FrozenStages > 0 ? $", {FrozenText(options.FrozenStages)} frozen" : string.Empty)}{(options.FreezeBatchNorm ? ", batch normalisation frozen" : string.Empty)}), temperature {options.Temperature}; Ctrl+C stops after the current step and writes a checkpoint");
        }

        var summary = root ? CliProgress.Run(sink => trainer.Fit(videos, sink.Training, cancellationToken)) : trainer.Fit(videos, null, cancellationToken);
        if (!root)
        {
            return summary.Cancelled ? CliErrors.CancelledExitCode : 0;
        }

        string where = summary.Checkpoint is null ? string.Empty : $"; checkpoint [green]{Markup.Escape(Path.GetFullPath(summary.Checkpoint))}[/]";
        string resumed = summary.ResumedFromStep > 0 ? $" (resumed from step {summary.ResumedFromStep})" : string.Empty;
        string loss = summary.Losses.Count > 0 ? $", final loss {summary.Losses[^1]:F4}" : string.Empty;
        string bad = summary.BadVideos > 0 ? $", [yellow]{summary.BadVideos} bad videos skipped[/]" : string.Empty;
        AnsiConsole.MarkupLine($"{(summary.Cancelled ? "[yellow]stopped[/]" : "done")}: step {summary.Steps}{resumed}, {summary.EpochsCompleted} epochs{loss}{bad} in {summary.Elapsed.TotalMinutes:F1} min{where}");
        if (summary.Decoding.Samples > 0)
        {
            AnsiConsole.MarkupLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"decoding: {summary.Decoding.FramesPerSample:0.#} frames decoded per sample (two clips of {options.Views.Sampler.FramesPerClip} frames), {summary.Decoding.Seeks} seeks"));
        }

        SkippedVideos.Print(summary.Skipped, videos.Root);
        return summary.Cancelled ? CliErrors.CancelledExitCode : 0;
    }

    /// <summary>"the stem", "the stem and layer1", ... for <see cref="CvrlTrainerOptions.FrozenStages"/>.</summary>
    private static string FrozenText(int stages) => stages switch
    {
        1 => "the stem",
        5 => "the whole encoder",
        _ => $"the stem and layer1{(stages > 2 ? $"-{stages - 1}" : string.Empty)}",
    };
}
