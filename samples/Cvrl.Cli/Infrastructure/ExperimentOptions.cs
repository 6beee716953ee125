using System.ComponentModel;
using Cvrl.Data;
using Cvrl.Optim;
using Cvrl.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Cvrl.Cli.Infrastructure;

/// <summary>The options of a small synthetic-motion experiment, shared by quickstart and results.</summary>
internal class ExperimentOptions : DeviceSettings
{
    [CommandOption("--classes <N>")]
    [Description("Motion classes (2-6).")]
    [DefaultValue(6)]
    public int Classes { get; init; } = 6;

    [CommandOption("--train-per-class <N>")]
    [Description("Training videos per class (used unlabelled for pre-training, labelled for the probe).")]
    [DefaultValue(64)]
    public int TrainPerClass { get; init; } = 64;

    [CommandOption("--test-per-class <N>")]
    [Description("Test videos per class.")]
    [DefaultValue(32)]
    public int TestPerClass { get; init; } = 32;

    [CommandOption("--video-frames <N>")]
    [Description("Frames per generated video (longer videos let the two clips lie further apart).")]
    [DefaultValue(48)]
    public int VideoFrames { get; init; } = 48;

    [CommandOption("--epochs <N>")]
    [Description("Pre-training epochs.")]
    [DefaultValue(32)]
    public int Epochs { get; init; } = 32;

    [CommandOption("--batch <N>")]
    [Description("Videos per pre-training step (two clips each).")]
    [DefaultValue(32)]
    public int Batch { get; init; } = 32;

    /// <summary>The recipe these experiments follow (CvrlTrainerOptions.ForRecipe: the one place its values are written).</summary>
    internal static CvrlTrainerOptions SmallRecipe => CvrlTrainerOptions.ForRecipe(CvrlRecipe.Small);

    [CommandOption("--optimizer <KIND>")]
    [RecipeDefault("Sgd (official), Lars or AdamW (see docs/fidelity.md).", "Optimizer.Kind", CvrlRecipe.Small)]
    public OptimizerKind? Optimizer { get; init; }

    [CommandOption("--lr <RATE>")]
    [Description("Peak learning rate. [grey]Default: the small recipe's 1e-3 with its AdamW; for SGD and LARS 0.32 x batch / 1024, the official rate scaled linearly[/]")]
    public double? LearningRate { get; init; }

    [CommandOption("--weight-decay <WD>")]
    [Description("Weight decay on kernels. [grey]Default: the small recipe's 1e-2 with its AdamW (decoupled), 1e-6 otherwise (official)[/]")]
    public double? WeightDecay { get; init; }

    [CommandOption("--warmup <FRACTION>")]
    [RecipeDefault("Warm-up as a fraction of all steps (official: 5 of 200 epochs, 0.025).", "WarmupFraction", CvrlRecipe.Small)]
    public double? Warmup { get; init; }

    [CommandOption("--temperature <T>")]
    [DefaultFrom("NT-Xent temperature (official).", typeof(CvrlTrainerOptions), nameof(CvrlTrainerOptions.Temperature))]
    public double? Temperature { get; init; }

    [CommandOption("--color-strength <S>")]
    [DefaultFrom("Colour jitter strength (official).", typeof(CvrlTrainerOptions), "Views.ColorJitterStrength")]
    public double? ColorStrength { get; init; }

    [CommandOption("--head-layers <N>")]
    [RecipeDefault("Hidden layers of the projection head (official 3; one trains faster at this scale, docs/fidelity.md).", "Head.HiddenLayers", CvrlRecipe.Small)]
    public int? HeadLayers { get; init; }

    [CommandOption("--crop-aspect <MIN:MAX>")]
    [RecipeDefault("Aspect-ratio range (width/height) of the random crops (official 0.5:2; narrower distorts 32-pixel frames less, docs/fidelity.md).", "Views.CropAspect", CvrlRecipe.Small)]
    public string? CropAspect { get; init; }

    [CommandOption("--official-probe")]
    [Description("Train the linear probe on L2-normalised features with the official learning rate instead of standardised features (docs/evaluation.md).")]
    public bool OfficialProbe { get; init; }

    [CommandOption("--frozen-bn")]
    [Description("Evaluate with the BatchNorm statistics the encoder has (the official protocol) instead of recomputing them on un-augmented training clips for every encoder (precise BN, the default here; docs/evaluation.md).")]
    public bool FrozenBatchNorm { get; init; }

    [CommandOption("--depth <N>")]
    [Description("ResNet depth.")]
    [DefaultValue(18)]
    public int Depth { get; init; } = 18;

    [CommandOption("--width <X>")]
    [Description("Width multiplier.")]
    [DefaultValue(0.25)]
    public double Width { get; init; } = 0.25;

    [CommandOption("--frames <N>")]
    [Description("Frames per clip.")]
    [DefaultValue(8)]
    public int Frames { get; init; } = 8;

    [CommandOption("--stride <N>")]
    [Description("Temporal stride.")]
    [DefaultValue(4)]
    public int Stride { get; init; } = 4;

    [CommandOption("--size <PIXELS>")]
    [Description("Crop size.")]
    [DefaultValue(32)]
    public int Size { get; init; } = 32;

    [CommandOption("--seed <SEED>")]
    [Description("Seed for the data, the initialisation and every random draw.")]
    [DefaultValue(0L)]
    public long Seed { get; init; }

    public override ValidationResult Validate()
    {
        if (Classes is < 2 or > 6)
        {
            return ValidationResult.Error("--classes must lie in 2..6");
        }

        if (TrainPerClass < 2 || TestPerClass < 1 || Epochs < 1 || Batch < 2 || Frames < 1 || Stride < 1 || Size < 16 || VideoFrames < 8)
        {
            return ValidationResult.Error("--train-per-class >= 2, --test-per-class >= 1, --epochs >= 1, --batch >= 2, --frames/--stride >= 1, --size >= 16, --video-frames >= 8");
        }

        var optimizer = Checked(() => new CvrlOptimizerOptions { Kind = Optimizer ?? SmallRecipe.Optimizer.Kind, WeightDecay = WeightDecay ?? 0 }.Validate());
        if (!optimizer.Successful)
        {
            return optimizer;
        }

        if (Warmup is < 0 or >= 1)
        {
            return ValidationResult.Error("--warmup must lie in [0, 1)");
        }

        if (HeadLayers < 1)
        {
            return ValidationResult.Error("--head-layers must be at least 1");
        }

        if ((CropAspect is null ? SmallRecipe.Views.CropAspect : ParseRange(CropAspect)) is not { } aspect)
        {
            return ValidationResult.Error($"--crop-aspect must be MIN:MAX with 0 < MIN <= MAX, got '{CropAspect}'");
        }

        var views = Checked(() => new Cvrl.Augment.CvrlViewOptions { CropAspect = aspect }.Validate());
        if (!views.Successful)
        {
            return views;
        }

        return base.Validate();
    }

    /// <summary>The data set and experiment for <paramref name="seed"/> (data, initialisation and augmentation all follow it).</summary>
    public (SyntheticMotionOptions Data, ExperimentSettings Experiment) Resolve(long seed)
    {
        int workers = WorkerCount;
        int batch = Math.Min(Batch, Classes * TrainPerClass);
        var recipe = SmallRecipe;
        var kind = Optimizer ?? recipe.Optimizer.Kind;
        bool recipeOptimizer = kind == recipe.Optimizer.Kind;
        var library = new CvrlTrainerOptions();
        return (
            new SyntheticMotionOptions { Classes = Classes, TrainPerClass = TrainPerClass, TestPerClass = TestPerClass, Frames = VideoFrames, Seed = seed, Workers = workers },
            new ExperimentSettings
            {
                Depth = Depth, WidthMultiplier = Width, Frames = Frames, Stride = Stride, Crop = Size, Epochs = Epochs,
                BatchSize = batch, Optimizer = kind,
                LearningRate = LearningRate ?? (recipeOptimizer ? recipe.LearningRate : kind == OptimizerKind.AdamW ? 1e-3 : CvrlTrainerOptions.ScaledLearningRate(batch)),
                WeightDecay = WeightDecay ?? (recipeOptimizer ? recipe.Optimizer.WeightDecay : kind == OptimizerKind.AdamW ? 1e-2 : new CvrlOptimizerOptions().WeightDecay),
                WarmupFraction = Warmup ?? recipe.WarmupFraction, Temperature = Temperature ?? library.Temperature,
                ColorStrength = ColorStrength ?? recipe.Views.ColorJitterStrength, HeadLayers = HeadLayers ?? recipe.Head.HiddenLayers,
                CropAspect = CropAspect is null ? recipe.Views.CropAspect : ParseRange(CropAspect)!.Value,
                PreciseBatchNorm = !FrozenBatchNorm, ProbeStandardize = !OfficialProbe, Seed = seed, Device = Device, Precision = Precision, Workers = workers,
            });
    }

    /// <summary>"MIN:MAX" as a range, or null when it is not two numbers with 0 &lt; MIN &lt;= MAX.</summary>
    internal static Cvrl.Augment.ValueRange? ParseRange(string text)
    {
        var parts = text.Split(':');
        var ci = System.Globalization.CultureInfo.InvariantCulture;
        return parts.Length == 2
            && double.TryParse(parts[0], System.Globalization.NumberStyles.Float, ci, out double min)
            && double.TryParse(parts[1], System.Globalization.NumberStyles.Float, ci, out double max)
            && min > 0 && min <= max && double.IsFinite(max)
            ? new Cvrl.Augment.ValueRange(min, max)
            : null;
    }

    /// <summary>A seconds-long smoke run: tiny data and network; checks the pipeline, not the method.</summary>
    public (SyntheticMotionOptions Data, ExperimentSettings Experiment) ResolveTiny()
    {
        int workers = WorkerCount;
        return (
            new SyntheticMotionOptions { Classes = 3, TrainPerClass = 4, TestPerClass = 2, Frames = 24, Width = 48, Height = 40, Seed = Seed, Workers = workers },
            new ExperimentSettings
            {
                WidthMultiplier = 1.0 / 16, Frames = 4, Stride = 2, Crop = 32, Epochs = 1, BatchSize = 6, TestClips = 2, TestCrops = 1,
                CachedViews = 1, ProbeEpochs = 5, KnnK = 3, Seed = Seed, Device = Device, Precision = Precision, Workers = workers,
            });
    }
}
