using System.ComponentModel;
using Cvrl.Data;
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
    [DefaultValue(32)]
    public int TrainPerClass { get; init; } = 32;

    [CommandOption("--test-per-class <N>")]
    [Description("Test videos per class.")]
    [DefaultValue(16)]
    public int TestPerClass { get; init; } = 16;

    [CommandOption("--epochs <N>")]
    [Description("Pre-training epochs.")]
    [DefaultValue(100)]
    public int Epochs { get; init; } = 100;

    [CommandOption("--batch <N>")]
    [Description("Videos per pre-training step (two clips each).")]
    [DefaultValue(32)]
    public int Batch { get; init; } = 32;

    [CommandOption("--lr <RATE>")]
    [Description("Peak learning rate. [grey]Default: 0.32 x batch / 1024, the official rate scaled linearly[/]")]
    public double? LearningRate { get; init; }

    [CommandOption("--temperature <T>")]
    [Description("NT-Xent temperature (official 0.1; see docs/results.md for why the small runs use 0.2).")]
    [DefaultValue(0.2)]
    public double Temperature { get; init; } = 0.2;

    [CommandOption("--color-strength <S>")]
    [Description("Colour jitter strength (official 1.0; SimCLR used 0.5 on small images; see docs/results.md).")]
    [DefaultValue(0.5)]
    public double ColorStrength { get; init; } = 0.5;

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

        if (TrainPerClass < 2 || TestPerClass < 1 || Epochs < 1 || Batch < 2 || Frames < 1 || Stride < 1 || Size < 16)
        {
            return ValidationResult.Error("--train-per-class >= 2, --test-per-class >= 1, --epochs >= 1, --batch >= 2, --frames/--stride >= 1, --size >= 16");
        }

        return base.Validate();
    }

    /// <summary>The data set and experiment for <paramref name="seed"/> (data, initialisation and augmentation all follow it).</summary>
    public (SyntheticMotionOptions Data, ExperimentSettings Experiment) Resolve(long seed)
    {
        int workers = WorkerCount;
        int batch = Math.Min(Batch, Classes * TrainPerClass);
        return (
            new SyntheticMotionOptions { Classes = Classes, TrainPerClass = TrainPerClass, TestPerClass = TestPerClass, Seed = seed, Workers = workers },
            new ExperimentSettings
            {
                Depth = Depth, WidthMultiplier = Width, Frames = Frames, Stride = Stride, Crop = Size, Epochs = Epochs,
                BatchSize = batch, LearningRate = LearningRate ?? 0.32 * batch / 1024, Temperature = Temperature,
                ColorStrength = ColorStrength, Seed = seed, Device = Device, Workers = workers,
            });
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
                CachedViews = 1, ProbeEpochs = 5, KnnK = 3, Seed = Seed, Device = Device, Workers = workers,
            });
    }
}
