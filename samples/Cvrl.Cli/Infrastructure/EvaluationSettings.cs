using System.ComponentModel;
using Cvrl.Data;
using Cvrl.Evaluation;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Cvrl.Cli.Infrastructure;

/// <summary>Options shared by probe, knn and finetune: the labelled data, the clips and views, the result file.</summary>
internal class EvaluationSettings : EncoderSettings
{
    [CommandArgument(0, "<DATA>")]
    [Description("Labelled data: a folder with classInd.txt, trainlistNN.txt and testlistNN.txt (UCF101/HMDB51 style; what quickstart generates), or with train/ and test/ folders of class folders.")]
    public string Data { get; init; } = string.Empty;

    [CommandOption("--split <N>")]
    [Description("Which split list (trainlistNN/testlistNN).")]
    [DefaultValue(1)]
    public int Split { get; init; } = 1;

    [CommandOption("--frames <N>")]
    [Description("Frames per clip (paper: 32).")]
    [DefaultValue(32)]
    public int Frames { get; init; } = 32;

    [CommandOption("--stride <N>")]
    [Description("Stride between frames (paper: 2).")]
    [DefaultValue(2)]
    public int Stride { get; init; } = 2;

    [CommandOption("--size <PIXELS>")]
    [Description("Training crop size (paper: 224).")]
    [DefaultValue(224)]
    public int Size { get; init; } = 224;

    [CommandOption("--test-size <PIXELS>")]
    [Description("Test short side and crop size (paper: 256).")]
    [DefaultValue(256)]
    public int TestSize { get; init; } = 256;

    [CommandOption("--clips <N>")]
    [Description("Evenly spaced test clips per video (paper: 10).")]
    [DefaultValue(10)]
    public int Clips { get; init; } = 10;

    [CommandOption("--crops <N>")]
    [Description("Test crops per clip: 1 or 3 (paper: 3).")]
    [DefaultValue(3)]
    public int Crops { get; init; } = 3;

    [CommandOption("--batch <N>")]
    [Description("Clips per forward pass when extracting features.")]
    [DefaultValue(8)]
    public int Batch { get; init; } = 8;

    [CommandOption("--seed <SEED>")]
    [Description("Seed of the training views and the classifier.")]
    [DefaultValue(0L)]
    public long Seed { get; init; }

    [CommandOption("-o|--out <FILE>")]
    [Description("Where to write the result (JSON). [grey]Default: none[/]")]
    public string? Output { get; init; }

    public FeatureExtractorOptions Features => new()
    {
        Views = new EvaluationViewOptions
        {
            FramesPerClip = Frames,
            Stride = Stride,
            TrainCropSize = Size,
            TestShortSide = TestSize,
            TestCropSize = TestSize,
            TestClips = Clips,
            TestCrops = Crops,
        },
        BatchSize = Batch,
        Workers = WorkerCount,
    };

    public override ValidationResult Validate()
    {
        var baseResult = base.Validate();
        if (!baseResult.Successful)
        {
            return baseResult;
        }

        if (Split < 1)
        {
            return ValidationResult.Error("--split must be at least 1");
        }

        return Checked(() => Features.Validate());
    }

    /// <summary>Opens the data (before any model is built, so bad input fails first) and prints what was found.</summary>
    public (VideoDataset Train, VideoDataset Test) OpenData()
    {
        var (train, test, layout) = LabeledData.Open(Data, Split);
        AnsiConsole.MarkupLine($"data: {Markup.Escape(layout)}: {train.Count} training and {test.Count} test videos, {train.Classes.Count} classes");
        return (train, test);
    }

    /// <summary>Prints the headline numbers and writes the JSON result when asked to.</summary>
    public void Report(ClassificationResult result)
    {
        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(result.Protocol)}[/]: top-1 [green]{result.Top1:P1}[/], top-5 {result.Top5:P1}, mean class accuracy {result.MeanClassAccuracy:P1} ({result.TestVideos} test videos, {result.Elapsed.TotalSeconds:F0} s)");
        if (result.Skipped.Count > 0)
        {
            AnsiConsole.MarkupLine($"[yellow]{result.Skipped.Count} videos skipped (undecodable)[/]");
        }

        if (Output is not null)
        {
            result.Save(Output);
            AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(Path.GetFullPath(Output))}[/]");
        }
    }
}
