using System.Diagnostics;
using Cvrl.Augment;
using Cvrl.Augment.Sampling;
using Cvrl.Augment.Transforms;
using Cvrl.Data;
using Cvrl.Evaluation;
using Cvrl.Models;
using Cvrl.Optim;
using Cvrl.Training;
using Cvrl.Video;
using Microsoft.Extensions.Logging;
using TorchSharp;

namespace Cvrl.Cli.Infrastructure;

/// <summary>
/// Everything one small CVRL experiment needs: the library's small recipe (<see cref="CvrlRecipe.Small"/>; its values
/// differ from the paper's on purpose, docs/fidelity.md) at the quickstart's sizes, recorded as it is in results.json;
/// every training value is read from the library's recipe or options records, and <see cref="Trainer"/> and
/// <see cref="Features"/> turn the settings into them.
/// </summary>
internal sealed record ExperimentSettings
{
    private static readonly CvrlTrainerOptions Library = new();
    private static readonly CvrlTrainerOptions Small = CvrlTrainerOptions.ForRecipe(CvrlRecipe.Small);

    public int Depth { get; init; } = new ResNet3dOptions().Depth;

    public double WidthMultiplier { get; init; } = 0.25;

    public int Frames { get; init; } = 8;

    public int Stride { get; init; } = 4;

    public int Crop { get; init; } = 64;

    public int Epochs { get; init; } = 40;

    public int BatchSize { get; init; } = 32;

    public OptimizerKind Optimizer { get; init; } = Small.Optimizer.Kind;

    public double? LearningRate { get; init; } = Small.LearningRate;

    public double WeightDecay { get; init; } = Small.Optimizer.WeightDecay;

    public double WarmupFraction { get; init; } = Small.WarmupFraction;

    public double Temperature { get; init; } = Library.Temperature;

    public double ColorStrength { get; init; } = Library.Views.ColorJitterStrength;

    public IntervalDistribution Distribution { get; init; } = Library.Views.Sampler.Distribution;

    public int HeadLayers { get; init; } = Small.Head.HiddenLayers;

    public ValueRange CropAspect { get; init; } = Small.Views.CropAspect;

    public ValueRange CropArea { get; init; } = Small.Views.CropArea;

    public TemporalConsistency Consistency { get; init; } = Library.Views.Consistency;

    public int FrozenStages { get; init; } = Library.FrozenStages;

    public bool FreezeBatchNorm { get; init; } = Library.FreezeBatchNorm;

    public int TestClips { get; init; } = 4;

    public int TestCrops { get; init; } = 1;

    public int CachedViews { get; init; } = 5;

    public int ProbeEpochs { get; init; } = new LinearProbeOptions().Epochs;

    public bool ProbeStandardize { get; init; } = true;

    public double ProbeLearningRate { get; init; } = 0.1;

    public int KnnK { get; init; } = new KnnOptions().K;

    public bool PreciseBatchNorm { get; init; } = true;

    public long Seed { get; init; }

    public string Device { get; init; } = Library.Device;

    public Precision Precision { get; init; } = Library.Precision;

    public int Workers { get; init; } = Environment.ProcessorCount;

    public ResNet3dOptions Architecture => new() { Depth = Depth, WidthMultiplier = WidthMultiplier };

    public CvrlTrainerOptions Trainer(string? checkpoints) => new()
    {
        Epochs = Epochs,
        BatchSize = BatchSize,
        LearningRate = LearningRate,
        WarmupFraction = WarmupFraction,
        Optimizer = new CvrlOptimizerOptions { Kind = Optimizer, WeightDecay = WeightDecay },
        Temperature = Temperature,
        FrozenStages = FrozenStages,
        FreezeBatchNorm = FreezeBatchNorm,
        Head = ProjectionHeadOptions.ForWidth(WidthMultiplier) with { HiddenLayers = HeadLayers },
        Views = new CvrlViewOptions
        {
            CropSize = Crop,
            CropAspect = CropAspect,
            CropArea = CropArea,
            Consistency = Consistency,
            ColorJitterStrength = ColorStrength,
            Sampler = new IntervalSamplerOptions { FramesPerClip = Frames, Stride = Stride, Distribution = Distribution },
        },
        Seed = Seed,
        Workers = Workers,
        Device = Device,
        Precision = Precision,
        CheckpointDirectory = checkpoints,
        CheckpointEverySteps = 1000,
        KeepCheckpoints = 1,
        LogEverySteps = 1,
    };

    /// <summary>
    /// The supervised reference: the same network trained from scratch with the labels through the library's
    /// fine-tuning path (AdamW, crop and flip as in linear evaluation, no dropout), tested on the same views.
    /// </summary>
    public FineTuneOptions Supervised(int epochs) => new()
    {
        Epochs = epochs,
        BatchSize = 16,
        Optimizer = OptimizerKind.AdamW,
        WeightDecay = 1e-2,
        WarmupFraction = 0.1,
        Dropout = 0,
        Seed = Seed,
        Features = Features,
    };

    public FeatureExtractorOptions Features => new()
    {
        Views = EvaluationViewOptions.Small(Frames, Stride, Crop, TestClips, TestCrops),
        BatchSize = 16,
        Workers = Workers,
        Precision = Precision,
    };
}

/// <summary>What one experiment measured.</summary>
internal sealed record ExperimentOutcome(
    TrainingSummary? Training,
    ClassificationResult CvrlProbe,
    ClassificationResult CvrlKnn,
    ClassificationResult? RandomProbe,
    ClassificationResult? RandomKnn,
    TimeSpan Elapsed);

/// <summary>
/// Pre-trains a small encoder with CVRL on the training split (labels hidden), then evaluates it and the same network
/// at its random initialisation with the linear probe (cached) and kNN, sharing one feature extraction per encoder.
/// </summary>
internal static class Experiment
{
    public static ExperimentOutcome Run(
        ExperimentSettings settings,
        VideoDataset train,
        VideoDataset test,
        string? checkpoints,
        bool evaluateRandom,
        ILogger logger,
        IProgress<TrainingProgress>? training,
        IProgress<StageProgress>? evaluation,
        CancellationToken cancellationToken,
        Action<ResNet3d, string>? inspect = null)
    {
        var watch = Stopwatch.StartNew();
        var index = new VideoIndexOptions { Workers = settings.Workers };
        train = train.Verify(index, null, logger, cancellationToken);
        test = test.Verify(index, null, logger, cancellationToken);
        var device = DeviceSpec.Resolve(settings.Device);
        torch.manual_seed(settings.Seed);
        using var encoder = ResNet3d.Create(settings.Architecture, device);
        (ClassificationResult Probe, ClassificationResult Knn)? random = null;
        if (evaluateRandom)
        {
            random = Evaluate(encoder, settings, train, test, logger, evaluation, cancellationToken);
            inspect?.Invoke(encoder, "random");
        }

        TrainingSummary summary;
        using (var trainer = new CvrlTrainer(encoder, settings.Trainer(checkpoints), logger))
        {
            summary = trainer.Fit(train.Unlabeled(), training, cancellationToken);
        }

        cancellationToken.ThrowIfCancellationRequested();
        var cvrl = Evaluate(encoder, settings, train, test, logger, evaluation, cancellationToken);
        inspect?.Invoke(encoder, "cvrl");
        return new ExperimentOutcome(summary, cvrl.Probe, cvrl.Knn, random?.Probe, random?.Knn, watch.Elapsed);
    }

    public static (ClassificationResult Probe, ClassificationResult Knn) Evaluate(ResNet3d encoder, ExperimentSettings settings, VideoDataset train, VideoDataset test, ILogger logger, IProgress<StageProgress>? progress, CancellationToken cancellationToken)
    {
        var extractor = new FeatureExtractor(encoder, settings.Features, logger);
        if (settings.PreciseBatchNorm)
        {
            extractor.RecomputeBatchNormStatistics(train, progress, cancellationToken);
        }

        var trainViews = extractor.TrainFeatures(train, settings.Seed, 0, settings.CachedViews, progress, cancellationToken);
        var reference = extractor.TestFeatures(train, progress, cancellationToken);
        var testViews = extractor.TestFeatures(test, progress, cancellationToken);
        var probeOptions = new LinearProbeOptions
        {
            Epochs = settings.ProbeEpochs,
            BatchSize = 64,
            Standardize = settings.ProbeStandardize,
            LearningRate = settings.ProbeStandardize ? settings.ProbeLearningRate : null,
            Seed = settings.Seed,
            Features = settings.Features,
        };
        using var probe = new LinearProbe(probeOptions, logger).Fit(trainViews, testViews, progress, cancellationToken);
        using var knn = new KnnClassifier(new KnnOptions { K = settings.KnnK, Features = settings.Features }, logger).Fit(reference, testViews);
        return (probe.Result, knn.Result);
    }
}
