using System.Diagnostics;
using System.Text.Json.Nodes;
using Cvrl.Augment.Video;
using Cvrl.Data;
using Cvrl.Models;
using Cvrl.Optim;
using Cvrl.Video;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Evaluation;

/// <summary>
/// Options for <see cref="FineTuner"/>. The paper's fine-tuning settings are not in the official code (docs/method.md
/// section 5); the defaults follow the Model Garden's generic UCF-101 recipe where it has one (momentum 0.9, weight
/// decay 1e-4 on kernels, dropout 0.2, LR 0.8 at batch 64, 5% warm-up then cosine decay), with plain rather than
/// Nesterov momentum.
/// </summary>
public sealed record FineTuneOptions
{
    /// <summary>Epochs over the training videos. Default 100.</summary>
    public int Epochs { get; init; } = 100;

    /// <summary>Videos (one random clip each) per step. Default 16.</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>
    /// The optimizer of both parts: SGD with momentum (the default, the Model Garden recipe), LARS, or AdamW (not in
    /// the recipe; it trains small networks from scratch more reliably, docs/results.md). Default SGD.
    /// </summary>
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Sgd;

    /// <summary>
    /// Peak learning rate of the new classifier head; null for 0.8 at batch 64 scaled linearly (<c>0.8 x BatchSize / 64</c>)
    /// with SGD or LARS, and 1e-3 with AdamW.
    /// </summary>
    public double? HeadLearningRate { get; init; }

    /// <summary>Peak learning rate of the backbone; null for the head's rate (the Model Garden recipe uses one rate for both).</summary>
    public double? BackboneLearningRate { get; init; }

    /// <summary>Warm-up as a fraction of all steps. Default 0.05.</summary>
    public double WarmupFraction { get; init; } = 0.05;

    /// <summary>SGD and LARS momentum. Default 0.9.</summary>
    public double Momentum { get; init; } = 0.9;

    /// <summary>Weight decay on convolution and linear kernels (decoupled for AdamW, where 1e-2 is usual). Default 1e-4.</summary>
    public double WeightDecay { get; init; } = 1e-4;

    /// <summary>Dropout before the classifier. Default 0.2.</summary>
    public double Dropout { get; init; } = 0.2;

    /// <summary>Seed for the training views, the batch order and the head's initialisation. Default 0.</summary>
    public long Seed { get; init; }

    /// <summary>Views (training crops and the test views), test batching and workers. Features are not normalised when fine-tuning.</summary>
    public FeatureExtractorOptions Features { get; init; } = new();

    /// <summary>The head's learning rate.</summary>
    public double EffectiveHeadLearningRate => HeadLearningRate ?? (Optimizer == OptimizerKind.AdamW ? 1e-3 : 0.8 * BatchSize / 64.0);

    /// <summary>The backbone's learning rate.</summary>
    public double EffectiveBackboneLearningRate => BackboneLearningRate ?? EffectiveHeadLearningRate;

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        LinearTraining.Check(Epochs, BatchSize, HeadLearningRate, WarmupFraction, Momentum, WeightDecay);
        LinearTraining.Require(BackboneLearningRate is null || (BackboneLearningRate >= 0 && double.IsFinite(BackboneLearningRate.Value)), nameof(BackboneLearningRate), BackboneLearningRate, "BackboneLearningRate must be 0 (frozen) or positive, or null for the head's rate.");
        LinearTraining.Require(Dropout is >= 0 and < 1, nameof(Dropout), Dropout, "Dropout must lie in [0, 1).");
        LinearTraining.Require(Enum.IsDefined(Optimizer), nameof(Optimizer), Optimizer, "Unknown optimizer.");
        ArgumentNullException.ThrowIfNull(Features, nameof(Features));
        Features.Validate();
    }
}

/// <summary>
/// Fine-tuning: the whole encoder trains together with a new linear classifier (dropout, then linear, on the pooled
/// features), each with its own learning rate, on single random training clips with crop and flip (and colour, when the views ask for it); BatchNorm is in
/// training mode. Then the test split is scored with the same 30-view protocol as the linear probe. The encoder is
/// modified in place.
/// </summary>
public sealed class FineTuner
{
    private readonly ILogger _logger;

    /// <summary>Creates the protocol.</summary>
    /// <param name="options">Options (validated); null for the defaults.</param>
    /// <param name="logger">Optional logging.</param>
    public FineTuner(FineTuneOptions? options = null, ILogger? logger = null)
    {
        Options = options ?? new FineTuneOptions();
        Options.Validate();
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>The options.</summary>
    public FineTuneOptions Options { get; }

    /// <summary>Fine-tunes <paramref name="encoder"/> on <paramref name="train"/> and tests on <paramref name="test"/>.</summary>
    /// <param name="encoder">A backbone-mode encoder; trained in place on its own device.</param>
    /// <param name="train">Labelled training videos.</param>
    /// <param name="test">Labelled test videos with the same classes.</param>
    /// <param name="progress">Reports training steps and test feature extraction.</param>
    /// <param name="cancellationToken">Stops the run (the encoder keeps the updates made so far).</param>
    /// <returns>The classifier head and the result, owned by the caller.</returns>
    /// <exception cref="DatasetException">A split is empty or unlabelled, a class has no training videos, or the classes differ.</exception>
    /// <exception cref="ArgumentException">The encoder already has a classifier, or the views are smaller than it accepts.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public ClassifierRun Fit(ResNet3d encoder, VideoDataset train, VideoDataset test, IProgress<StageProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        EvaluationData.CheckSplits(train, test);
        if (encoder.IsClassifier)
        {
            throw new ArgumentException($"The encoder has its own classifier ({encoder.Options.NumClasses} classes); fine-tuning adds a head for the {train.Classes.Count} classes of the data. Pass a backbone-mode encoder (ResNet3dOptions.NumClasses = null).", nameof(encoder));
        }

        var extractor = new FeatureExtractor(encoder, Options.Features with { Normalize = false }, _logger);
        train = extractor.Verified(train, cancellationToken);
        var watch = Stopwatch.StartNew();
        Log.Start(_logger, "fine-tune", train.Count, test.Count, train.Classes.Count);
        var device = FeatureExtractor.DeviceOf(encoder);
        int classes = train.Classes.Count;
        var head = LinearTraining.CreateLayer(encoder.FeatureDim, classes, Options.Seed);
        head.to(device);
        var run = new ClassifierRun(head, train.Classes, normalizeFeatures: false);
        try
        {
            var (losses, skipped, used) = FeatureExtractor.WithComputeType(encoder, extractor.ComputeType, () => Train(encoder, run, extractor.Views, train, device, watch, progress, cancellationToken));
            var testFeatures = extractor.TestFeatures(test, progress, cancellationToken);
            head.to(torch.CPU);
            var scores = run.Predict(testFeatures);
            var settings = new JsonObject
            {
                ["fineTune"] = ClassificationResult.ToNode(Options),
                ["headLearningRate"] = Options.EffectiveHeadLearningRate,
                ["backboneLearningRate"] = Options.EffectiveBackboneLearningRate,
                ["encoder"] = EvaluationData.Describe(encoder),
            };
            run.Result = ClassificationResult.Score("fine-tune", scores, testFeatures, used, losses, [.. skipped, .. testFeatures.Skipped], settings, watch.Elapsed);
            Log.Done(_logger, "fine-tune", run.Result.Top1, run.Result.Top5, testFeatures.Count, watch.Elapsed);
            return run;
        }
        catch
        {
            run.Dispose();
            throw;
        }
    }

    private (List<double> Losses, List<SkippedVideo> Skipped, int Used) Train(ResNet3d encoder, ClassifierRun run, EvaluationViews views, VideoDataset train, Device device, Stopwatch watch, IProgress<StageProgress>? progress, CancellationToken cancellationToken)
    {
        var head = run.Classifier;
        int n = train.Count;
        int stepsPerEpoch = (n + Options.BatchSize - 1) / Options.BatchSize;
        long totalSteps = (long)stepsPerEpoch * Options.Epochs;
        long warmup = (long)Math.Round(Options.WarmupFraction * totalSteps);
        var backboneSchedule = new WarmupCosineSchedule(Options.EffectiveBackboneLearningRate, warmup, totalSteps);
        var headSchedule = new WarmupCosineSchedule(Options.EffectiveHeadLearningRate, warmup, totalSteps);
        var optimizerOptions = new CvrlOptimizerOptions { Kind = Options.Optimizer, Momentum = Options.Momentum, WeightDecay = Options.WeightDecay };
        using var backboneOptimizer = CvrlOptimizer.Create(encoder.named_parameters().Select(p => ("encoder." + p.name, p.parameter)), optimizerOptions);
        using var headOptimizer = CvrlOptimizer.Create(head.named_parameters().Select(p => ("head." + p.name, p.parameter)), optimizerOptions);
        var losses = new List<double>();
        var bad = new Dictionary<string, string>(StringComparer.Ordinal);
        long step = 0;
        bool wasTraining = encoder.training;
        using var dropoutRandom = TorchRandom.Seeded(Options.Seed);
        encoder.train();
        head.train();
        try
        {
            for (int epoch = 0; epoch < Options.Epochs; epoch++)
            {
                // The epoch's order, less the videos already found undecodable (they are not tried again).
                int[] order = [.. Enumerable.Range(0, n)];
                Augment.ClipRandom.For(Options.Seed, epoch, -1, int.MinValue + 2).Shuffle(order.AsSpan());
                order = [.. order.Where(i => !bad.ContainsKey(train[i].Path))];
                int e = epoch;
                var epochRun = new ViewRun<Tensor>
                {
                    Videos = [.. order.Select(i => train[i].Path)],
                    ViewsPerVideo = 1,
                    Decode = p => views.TrainView(train[order[p]].Path, Options.Seed, e, order[p], train[order[p]].Frames),
                    Release = view => view.Dispose(),
                    BatchSize = Options.BatchSize,
                    Workers = Options.Features.Workers,
                    BadVideos = Options.Features.BadVideos,
                    Logger = _logger,
                };
                double sum = 0;
                int count = 0;
                foreach (var batch in epochRun.Batches(cancellationToken: cancellationToken))
                {
                    sum += Step(encoder, head, batch, [.. batch.Select(b => train[order[b.Video]].Label)], device, backboneOptimizer, headOptimizer, backboneSchedule.At(Math.Min(step, totalSteps)), headSchedule.At(Math.Min(step, totalSteps)), step) * batch.Count;
                    count += batch.Count;
                    step++;
                    progress?.Report(new StageProgress("fine-tuning", (int)Math.Min(int.MaxValue, step), (int)Math.Min(int.MaxValue, totalSteps), watch.Elapsed, sum / count));
                }

                foreach (var skipped in epochRun.Skipped)
                {
                    bad.TryAdd(skipped.Path, skipped.Reason);
                }

                if (count == 0)
                {
                    throw new DatasetException($"None of the {n} training videos at '{train.Root}' could be decoded (first: {bad.First().Key}: {bad.First().Value}).");
                }

                double mean = sum / count;
                losses.Add(mean);
                Log.Epoch(_logger, "fine-tune", epoch + 1, Options.Epochs, mean);
            }
        }
        finally
        {
            encoder.train(wasTraining);
            head.eval();
            backboneOptimizer.ZeroGrad();
            headOptimizer.ZeroGrad();
        }

        var skippedVideos = FeatureExtractor.Rejected(train).Concat(bad.Select(kv => new SkippedVideo(kv.Key, kv.Value))).ToList();
        return (losses, skippedVideos, n - bad.Count);
    }

    private double Step(ResNet3d encoder, TorchSharp.Modules.Linear head, IReadOnlyList<BatchedView<Tensor>> batch, long[] labels, Device device, CvrlOptimizer backbone, CvrlOptimizer headOptimizer, double backboneLr, double headLr, long step)
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.stack(batch.Select(b => b.Views)).to(device);
        var y = torch.tensor(labels).to(device);
        var features = encoder.Features(x);
        var logits = head.call(nn.functional.dropout(features, Options.Dropout, training: true));
        var loss = nn.functional.cross_entropy(logits, y);
        double value = loss.item<float>();
        if (!double.IsFinite(value))
        {
            throw new Training.TrainingDivergedException(step, value, headLr, lastCheckpoint: null);
        }

        backbone.ZeroGrad();
        headOptimizer.ZeroGrad();
        loss.backward();
        backbone.LearningRate = backboneLr;
        headOptimizer.LearningRate = headLr;
        backbone.Step();
        headOptimizer.Step();
        return value;
    }
}
