using System.Text.Json.Serialization;
using Cvrl.Augment;
using Cvrl.Data;
using Cvrl.Losses;
using Cvrl.Models;
using Cvrl.Optim;
using Cvrl.Video;

namespace Cvrl.Training;

/// <summary>The training recipes Cvrl defines (<see cref="CvrlTrainerOptions.ForRecipe"/>), each in one place.</summary>
public enum CvrlRecipe
{
    /// <summary>
    /// The paper's official recipe (the options' defaults): SGD with momentum 0.9 at 0.32 per 1024 videos, weight decay
    /// 1e-6 on kernels, 2.5% warm-up, a three-layer projection head, crops of aspect 0.5 to 2, colour strength 1.0. Made
    /// for batches of hundreds to thousands of videos on accelerators.
    /// </summary>
    Paper,

    /// <summary>
    /// The small-scale recipe the quickstart uses (measured in docs/results-notes.md): AdamW at 1e-3 with decoupled
    /// weight decay 1e-2, 10% warm-up, a one-layer projection head, crops of aspect 3/4 to 4/3, colour strength 1.0.
    /// Learns at batches of 16 to 64 on a CPU where the official SGD recipe stays at chance.
    /// </summary>
    Small,

    /// <summary>
    /// Adapting a pretrained encoder (<c>cvrl pretrain --init</c>: inflated ImageNet weights or a zoo model) to a domain
    /// with CVRL, without labels, keeping what the start knew: the small recipe at a tenth of its learning rate (AdamW at
    /// 1e-4), 10% warm-up (the fresh head aligns before the backbone moves much), the stem, layer1 and layer2 frozen, every
    /// batch normalisation layer kept as the start has it (small batches would replace its statistics with noisy
    /// ones), colour strength 0.5 and crops of at least half the frame. Of the variants measured on real footage
    /// (docs/results.md, "Real footage") this one lost least of what the start knew; none gained on it at that scale.
    /// </summary>
    Adapt,
}

/// <summary>
/// Everything <see cref="CvrlTrainer"/> needs, with defaults from the paper's official recipe (docs/method.md section 5)
/// scaled to the batch size. Validated by <see cref="Validate"/> before any work starts; serialisable to JSON so that
/// runs can be reproduced (checkpoints store it).
/// </summary>
public sealed record CvrlTrainerOptions
{
    /// <summary>Epochs to train (the official recipe: 200 on Kinetics-600). Default 100.</summary>
    public int Epochs { get; init; } = 100;

    /// <summary>Videos per step; each gives two clips, so the encoder sees 2 x BatchSize clips (official: 1024). Default 64.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>
    /// Peak learning rate. Null: the official 0.32 at batch 1024 scaled linearly to <see cref="BatchSize"/>
    /// (<c>0.32 x BatchSize / 1024</c>; the official code has no scaling rule, see docs/training.md). Default null.
    /// </summary>
    public double? LearningRate { get; init; }

    /// <summary>Warm-up as a fraction of all steps (official: 5 of 200 epochs = 0.025). Default 0.025.</summary>
    public double WarmupFraction { get; init; } = 0.025;

    /// <summary>Optimizer (official: SGD, momentum 0.9, weight decay 1e-6 on kernels).</summary>
    public CvrlOptimizerOptions Optimizer { get; init; } = new();

    /// <summary>NT-Xent temperature. Default <see cref="NtXentLoss.DefaultTemperature"/> (0.1).</summary>
    public double Temperature { get; init; } = NtXentLoss.DefaultTemperature;

    /// <summary>
    /// Parts of the encoder kept as they are (not trained, their batch normalisation not updated): 0 trains everything;
    /// 1 keeps the stem; 2 the stem and layer1; up to 5, where only the projection head trains. For adapting a
    /// pretrained encoder: its early layers hold generic features that a small data set should not overwrite. Default 0.
    /// </summary>
    public int FrozenStages { get; init; }

    /// <summary>
    /// Keep every batch normalisation layer of the encoder as it is: running statistics not updated (the layers run in
    /// evaluation mode) and their scale and shift not trained. For adapting a pretrained encoder with small batches,
    /// whose statistics would replace the start's with noisy estimates. Default false.
    /// </summary>
    public bool FreezeBatchNorm { get; init; }

    /// <summary>How the loss combines its two directions (official: sum). Default <see cref="NtXentReduction.SumOfDirections"/>.</summary>
    public NtXentReduction LossReduction { get; init; } = NtXentReduction.SumOfDirections;

    /// <summary>The projection head (official: 3 x 2048, output 128).</summary>
    public ProjectionHeadOptions Head { get; init; } = new();

    /// <summary>Clip sampling and augmentation (official: 16 frames, stride 2, 224 x 224).</summary>
    public CvrlViewOptions Views { get; init; } = new();

    /// <summary>Experiment seed: epoch order, clips, augmentations and the head's initialisation. Default 0.</summary>
    public long Seed { get; init; }

    /// <summary>
    /// Decoding and augmentation threads of the loader (and of indexing). Null (the default): one per core of this
    /// process's share of the machine, that is every core for one process and the cores divided by the processes on the
    /// machine under MPI (<see cref="Cvrl.Distributed.Communicators.ThreadsPerProcess"/>).
    /// </summary>
    public int? Workers { get; init; }

    /// <summary>Batches prepared ahead. Default 2.</summary>
    public int PrefetchBatches { get; init; } = 2;

    /// <summary>Undecodable videos: skip with a warning (default) or stop.</summary>
    public BadVideoPolicy BadVideos { get; init; } = BadVideoPolicy.Skip;

    /// <summary>"cpu", "cuda" or "cuda:N". Default "cpu".</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>
    /// The arithmetic of the encoder and the head (<see cref="Models.Precision"/>): float32, bfloat16 convolutions and
    /// matrix products with float32 weights, optimizer state, BatchNorm statistics, loss and gradient reduction, or
    /// <see cref="Models.Precision.Auto"/> (bfloat16 where the hardware computes it natively). Checkpoints are float32
    /// either way, and a run may resume in another precision (it is not part of the experiment's identity). Default
    /// <see cref="Models.Precision.Float32"/>.
    /// </summary>
    public Precision Precision { get; init; } = Precision.Float32;

    /// <summary>
    /// Gradient caching: embed the batch in chunks of this many videos without keeping activations, compute the loss
    /// over the whole batch, then re-run each chunk with its share of the gradient, so a large batch needs the memory of
    /// one chunk. Null turns it off. Default null.
    /// </summary>
    public int? GradientCacheChunk { get; init; }

    /// <summary>
    /// Synchronised BatchNorm: normalise every BatchNorm layer with the statistics of the global batch (every rank's
    /// clips, the official recipe) instead of each rank's slice. Null (the default): synchronised whenever there are
    /// several ranks. True in one process runs the same code with nothing to exchange (per-channel sums in float64),
    /// which is the exact single-process counterpart of a synchronised multi-rank run; false with several ranks
    /// normalises each rank's slice on its own.
    /// </summary>
    public bool? SyncBatchNorm { get; init; }

    /// <summary>Folder for checkpoints (and resume); null for none. Default null.</summary>
    public string? CheckpointDirectory { get; init; }

    /// <summary>Write a checkpoint every this many steps (also at the end of every epoch and on cancellation). Default 500.</summary>
    public int CheckpointEverySteps { get; init; } = 500;

    /// <summary>Checkpoints to keep (the oldest are deleted). Default 3.</summary>
    public int KeepCheckpoints { get; init; } = 3;

    /// <summary>Resume from the newest checkpoint in <see cref="CheckpointDirectory"/> when there is one. Default true.</summary>
    public bool Resume { get; init; } = true;

    /// <summary>Report progress, log and write metrics every this many steps. Default 10.</summary>
    public int LogEverySteps { get; init; } = 10;

    /// <summary>Metrics file: ".csv" for CSV, ".jsonl" or ".json" for JSON lines; null for none. Default null.</summary>
    public string? MetricsFile { get; init; }

    /// <summary>Folder for TensorBoard event files; null for none. Default null.</summary>
    public string? TensorBoardDirectory { get; init; }

    /// <summary>
    /// Keep resident memory flat by returning fragmented native heap pages to the system when it grows past this
    /// fraction above its post-warm-up level (docs/models.md, "Native memory in long runs"); null turns it off. Default 0.1.
    /// </summary>
    public double? NativeHeapGrowthLimit { get; init; } = 0.1;

    /// <summary>The learning rate the run uses (<see cref="LearningRate"/> or <see cref="ScaledLearningRate"/> of the batch).</summary>
    [JsonIgnore]
    public double EffectiveLearningRate => LearningRate ?? ScaledLearningRate(BatchSize);

    /// <summary>
    /// The official peak learning rate, 0.32 at a batch of 1024 videos, scaled linearly to <paramref name="batchSize"/>
    /// (<c>0.32 x batchSize / 1024</c>; the official code has no scaling rule, see docs/training.md). The one place the
    /// rule is written.
    /// </summary>
    /// <param name="batchSize">Videos per step (the global batch).</param>
    /// <returns>The rate.</returns>
    public static double ScaledLearningRate(int batchSize) => 0.32 * batchSize / 1024.0;

    /// <summary>
    /// The options of a recipe (<see cref="CvrlRecipe"/>) for an encoder of width <paramref name="widthMultiplier"/> (the
    /// projection head's hidden width follows it), with every other option at its default: set epochs, batch, views,
    /// checkpoints and so on with <c>with</c>.
    /// </summary>
    /// <param name="recipe">The recipe.</param>
    /// <param name="widthMultiplier">The encoder's width multiplier. Default 1.</param>
    /// <exception cref="ArgumentOutOfRangeException">An unknown recipe or a width that is not positive.</exception>
    public static CvrlTrainerOptions ForRecipe(CvrlRecipe recipe, double widthMultiplier = 1.0)
    {
        var defaults = new CvrlTrainerOptions();
        var head = ProjectionHeadOptions.ForWidth(widthMultiplier);
        return recipe switch
        {
            CvrlRecipe.Paper => defaults with { Head = head },
            CvrlRecipe.Small => defaults with
            {
                LearningRate = 1e-3,
                WarmupFraction = 0.1,
                Optimizer = new CvrlOptimizerOptions { Kind = OptimizerKind.AdamW, WeightDecay = 1e-2 },
                Head = head with { HiddenLayers = 1 },
                Views = defaults.Views with { CropAspect = new ValueRange(0.75, 4.0 / 3) },
            },
            CvrlRecipe.Adapt => defaults with
            {
                LearningRate = 1e-4,
                WarmupFraction = 0.1,
                Optimizer = new CvrlOptimizerOptions { Kind = OptimizerKind.AdamW, WeightDecay = 1e-2 },
                Head = head with { HiddenLayers = 1 },
                FrozenStages = 3,
                FreezeBatchNorm = true,
                Views = defaults.Views with { CropAspect = new ValueRange(0.75, 4.0 / 3), CropArea = new ValueRange(0.5, 1.0), ColorJitterStrength = 0.5 },
            },
            _ => throw new ArgumentOutOfRangeException(nameof(recipe), recipe, "Unknown recipe."),
        };
    }

    /// <summary>Checks every option, before any work starts.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    /// <exception cref="ArgumentException">An option is malformed (for example the device or the metrics file extension).</exception>
    public void Validate()
    {
        Require(Epochs >= 1, nameof(Epochs), Epochs, "Epochs must be at least 1.");
        Require(BatchSize >= 2, nameof(BatchSize), BatchSize, "BatchSize must be at least 2 (negatives come from the other videos of the batch).");
        Require(LearningRate is null || (LearningRate > 0 && !double.IsInfinity(LearningRate.Value)), nameof(LearningRate), LearningRate, "LearningRate must be positive and finite, or null for the scaled official rate.");
        Require(WarmupFraction is >= 0 and < 1, nameof(WarmupFraction), WarmupFraction, "WarmupFraction must lie in [0, 1).");
        Require(Temperature > 0 && !double.IsInfinity(Temperature), nameof(Temperature), Temperature, "Temperature must be positive and finite.");
        Require(FrozenStages is >= 0 and <= 5, nameof(FrozenStages), FrozenStages, "FrozenStages must lie in [0, 5] (the stem and four stages).");
        Require(Enum.IsDefined(Precision), nameof(Precision), Precision, "Unknown precision.");
        Require(Workers is null or >= 1, nameof(Workers), Workers, "Workers must be at least 1, or null for one per core of this process's share.");
        Require(PrefetchBatches >= 1, nameof(PrefetchBatches), PrefetchBatches, "PrefetchBatches must be at least 1.");
        Require(GradientCacheChunk is null or >= 1, nameof(GradientCacheChunk), GradientCacheChunk, "GradientCacheChunk must be at least 1 video, or null.");
        Require(CheckpointEverySteps >= 1, nameof(CheckpointEverySteps), CheckpointEverySteps, "CheckpointEverySteps must be at least 1.");
        Require(KeepCheckpoints >= 1, nameof(KeepCheckpoints), KeepCheckpoints, "KeepCheckpoints must be at least 1.");
        Require(LogEverySteps >= 1, nameof(LogEverySteps), LogEverySteps, "LogEverySteps must be at least 1.");
        Require(NativeHeapGrowthLimit is null or >= 0, nameof(NativeHeapGrowthLimit), NativeHeapGrowthLimit, "NativeHeapGrowthLimit must be 0 or positive, or null.");
        ArgumentNullException.ThrowIfNull(Optimizer, nameof(Optimizer));
        ArgumentNullException.ThrowIfNull(Head, nameof(Head));
        ArgumentNullException.ThrowIfNull(Views, nameof(Views));
        Optimizer.Validate();
        Head.Validate();
        Views.Validate();
        if (!Enum.IsDefined(LossReduction))
        {
            throw new ArgumentOutOfRangeException(nameof(LossReduction), LossReduction, "Unknown reduction.");
        }

        if (!Enum.IsDefined(BadVideos))
        {
            throw new ArgumentOutOfRangeException(nameof(BadVideos), BadVideos, "Unknown policy.");
        }

        DeviceSpec.Parse(Device);
        if (MetricsFile is not null && !MetricsWriter.IsSupported(MetricsFile))
        {
            throw new ArgumentException($"MetricsFile '{MetricsFile}' must end in .csv, .jsonl or .json.", nameof(MetricsFile));
        }
    }

    private static void Require(bool ok, string name, object? value, string message)
    {
        if (!ok)
        {
            throw new ArgumentOutOfRangeException(name, value, message);
        }
    }
}
