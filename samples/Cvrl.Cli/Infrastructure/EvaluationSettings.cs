using System.ComponentModel;
using Cvrl.Data;
using Cvrl.Evaluation;
using Cvrl.Models;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Cvrl.Cli.Infrastructure;

/// <summary>Options shared by probe, knn and finetune: the labelled data, the clips and views, the result file.</summary>
internal class EvaluationSettings : EncoderSettings
{
    [CommandArgument(0, "<DATA>")]
    [Description("Labelled data: a folder with classInd.txt, trainlistNN.txt and testlistNN.txt (UCF101/HMDB51 style; what quickstart generates), with train/ and test/ folders of class folders, or of class folders (split by --test-every and --group).")]
    public string Data { get; init; } = string.Empty;

    [CommandOption("--split <N>")]
    [Description("Which split list (trainlistNN/testlistNN).")]
    [DefaultValue(1)]
    public int Split { get; init; } = 1;

    [CommandOption("--test-every <N>")]
    [Description("Plain class folders: every N-th group of videos of a class (in name order) is tested, the others train.")]
    [DefaultValue(3)]
    public int TestEvery { get; init; } = 3;

    [CommandOption("--group <N>")]
    [Description("Plain class folders: consecutive videos (in name order) kept on one side of the split, such as a clip and its mirror image.")]
    [DefaultValue(1)]
    public int Group { get; init; } = 1;

    [CommandOption("--frames <N>")]
    [Description("Frames per clip (paper: 32). [grey]Default: a Cvrl checkpoint's training clip length, else 32[/]")]
    public int? Frames { get; init; }

    [CommandOption("--stride <N>")]
    [Description("Stride between frames (paper: 2). [grey]Default: a checkpoint's, else 2[/]")]
    public int? Stride { get; init; }

    [CommandOption("--size <PIXELS>")]
    [Description("Training crop size (paper: 224). [grey]Default: a checkpoint's training crop, else 224[/]")]
    public int? Size { get; init; }

    [CommandOption("--test-size <PIXELS>")]
    [Description("Test short side and crop size (paper: 256). [grey]Default: a checkpoint's training crop, else 256[/]")]
    public int? TestSize { get; init; }

    [CommandOption("--clips <N>")]
    [Description("Evenly spaced test clips per video. [grey]Default: the paper's 10[/]")]
    public int? Clips { get; init; }

    [CommandOption("--crops <N>")]
    [Description("Test crops per clip: 1 or 3. [grey]Default: the paper's 3[/]")]
    public int? Crops { get; init; }

    [CommandOption("--batch <N>")]
    [Description("Clips per forward pass when extracting features. [grey]Default: 8[/]")]
    public int? Batch { get; init; }

    [CommandOption("--seed <SEED>")]
    [Description("Seed of the training views and the classifier.")]
    [DefaultValue(0L)]
    public long Seed { get; init; }

    [CommandOption("-o|--out <FILE>")]
    [Description("Where to write the result (JSON). [grey]Default: none[/]")]
    public string? Output { get; init; }

    /// <summary>The feature options: the options given, else the encoder's training geometry (a Cvrl checkpoint's), else the paper's.</summary>
    public FeatureExtractorOptions Features => FeaturesFor(TrainedViews);

    /// <summary>
    /// The feature options over <paramref name="trained"/> (the encoder's geometry, or null for the paper's): the
    /// library's defaults (<see cref="EvaluationViewOptions"/>, <see cref="FeatureExtractorOptions"/>) with the encoder's
    /// clips, then every option given here, field by field.
    /// </summary>
    public FeatureExtractorOptions FeaturesFor(Cvrl.Video.TestViewOptions? trained)
    {
        var official = new EvaluationViewOptions();
        var test = trained is null ? official.Test : official.Test.Over(null, null, trained.FramesPerClip, trained.Stride, trained.CropSize);
        var defaults = new FeatureExtractorOptions();
        return defaults with
        {
            Views = official with
            {
                Test = test.Over(Clips, Crops, Frames, Stride, TestSize),
                TrainCropSize = Size ?? trained?.CropSize ?? official.TrainCropSize,
            },
            BatchSize = Batch ?? defaults.BatchSize,
            Workers = WorkerCount,
            Precision = Precision,
        };
    }

    /// <summary>Prints the views an evaluation uses and where they come from.</summary>
    public void AnnounceViews(FeatureExtractorOptions features)
    {
        var v = features.Views.Test;
        bool trained = TrainedViews is not null;
        string source = trained ? "the encoder's training clips" : "the paper's defaults";
        if (Frames is not null || Stride is not null || Size is not null || TestSize is not null)
        {
            source += ", with the options given";
        }

        AnsiConsole.MarkupLine(Markup.Escape($"views: {v.FramesPerClip} frames at stride {v.Stride}, training crop {features.Views.TrainCropSize}, test {v.Clips} clip(s) x {v.Crops} crop(s) at {v.CropSize} ({source})"));
    }

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

        if (TestEvery < 2 || Group < 1)
        {
            return ValidationResult.Error("--test-every must be at least 2 and --group at least 1");
        }

        return Checked(() => FeaturesFor(null).Validate());
    }

    /// <summary>Opens the data (before any model is built, so bad input fails first) and prints what was found.</summary>
    public (VideoDataset Train, VideoDataset Test) OpenData()
    {
        var (train, test, layout) = LabeledData.Open(Data, Split, TestEvery, Group);
        AnsiConsole.MarkupLine($"data: {Markup.Escape(layout)}: {train.Count} training and {test.Count} test videos, {train.Classes.Count} classes");
        return (train, test);
    }

    /// <summary>
    /// What probe, knn and finetune do around their protocol: open the data (before any model is built, so bad input
    /// fails first), build the encoder, print both and the views, run <paramref name="evaluate"/> under a progress
    /// display, report the result and let <paramref name="after"/> save what the command saves.
    /// </summary>
    public int Evaluate<TRun>(Func<ResNet3d, VideoDataset, VideoDataset, IProgress<Cvrl.Video.StageProgress>, TRun> evaluate, Func<TRun, ClassificationResult> result, Action<TRun, ResNet3d>? after = null)
        where TRun : IDisposable
    {
        OutputPaths.RequireFile(Output, "--out");
        OutputPaths.RequireNotInput(Output, "--out", (Data, "the labelled data"), (EncoderFile, "the encoder"));
        var (train, test) = OpenData();
        var (encoder, description) = CreateEncoder();
        using (encoder)
        {
            Announce(description);
            AnnounceViews(Features);
            using var run = CliProgress.Run(progress => evaluate(encoder, train, test, progress));
            Report(result(run));
            after?.Invoke(run, encoder);
            return 0;
        }
    }

    /// <summary>Prints the headline numbers and writes the JSON result when asked to.</summary>
    public void Report(ClassificationResult result)
    {
        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(result.Protocol)}[/]: top-1 [green]{result.Top1:P1}[/], top-5 {result.Top5:P1}, mean class accuracy {result.MeanClassAccuracy:P1} ({result.TestVideos} test videos, {result.Elapsed.TotalSeconds:F0} s)");
        if (result.Skipped.Count > 0)
        {
            AnsiConsole.MarkupLine($"[yellow]{result.Skipped.Count} videos skipped (undecodable):[/]");
            SkippedVideos.Print(result.Skipped, Directory.Exists(Data) ? Path.GetFullPath(Data) : null);
        }

        if (Output is not null)
        {
            result.Save(Output);
            AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(Path.GetFullPath(Output))}[/]");
        }
    }
}
