using System.Diagnostics;
using System.Text.Json.Nodes;
using Cvrl.Augment;
using Cvrl.Data;
using Cvrl.Optim;
using Cvrl.Video;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Cvrl.Evaluation;

/// <summary>How <see cref="LinearProbe"/> gets its training features.</summary>
public enum ProbeMode
{
    /// <summary>
    /// Extract <see cref="LinearProbeOptions.CachedTrainViews"/> augmented views per training video once; epoch e trains
    /// on view e mod K. Only the linear layer runs per epoch, so this is much faster on a CPU. With K at least the
    /// number of epochs it gives the same result as <see cref="Faithful"/>.
    /// </summary>
    Cached,

    /// <summary>
    /// The official protocol: every epoch draws a fresh random clip, crop and flip per training video and runs the
    /// frozen backbone on it. Because the backbone is frozen (inference-mode BatchNorm), extracting an epoch's features
    /// before its linear steps is exactly equivalent to interleaving them.
    /// </summary>
    Faithful,
}

/// <summary>
/// Options for <see cref="LinearProbe"/>. Defaults follow the official linear evaluation (docs/method.md section 5):
/// L2-normalised features, one linear layer, softmax cross-entropy, SGD with momentum 0.9 and no weight decay, LR 32 at
/// batch 1024 scaled linearly, 5% linear warm-up then cosine decay, 100 epochs.
/// </summary>
public sealed record LinearProbeOptions
{
    /// <summary>Cached (default) or faithful training features.</summary>
    public ProbeMode Mode { get; init; } = ProbeMode.Cached;

    /// <summary>Epochs over the training videos (official 100).</summary>
    public int Epochs { get; init; } = 100;

    /// <summary>Videos per linear step (official 1024). Default 64.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>Peak learning rate; null for the official 32 at batch 1024 scaled linearly (<c>32 x BatchSize / 1024</c>).</summary>
    public double? LearningRate { get; init; }

    /// <summary>Warm-up as a fraction of all steps (official 1,787 of 35,744 = 0.05).</summary>
    public double WarmupFraction { get; init; } = 0.05;

    /// <summary>SGD momentum (official 0.9, not Nesterov).</summary>
    public double Momentum { get; init; } = 0.9;

    /// <summary>Weight decay on the linear kernel (official 0).</summary>
    public double WeightDecay { get; init; }

    /// <summary>
    /// Standardise each feature dimension (after the L2 normalisation) with the training features' mean and standard
    /// deviation before the linear layer, as MAE's linear probe does with a parameter-free BatchNorm. Not part of the
    /// official protocol; it lets a short probe fit features whose useful differences are small next to their common
    /// direction (a network at random initialisation, a briefly trained one). The standardisation is folded into the
    /// trained layer, so the classifier still takes L2-normalised features. Pair it with a smaller learning rate
    /// (the inputs have unit variance per dimension instead of unit norm). Default false.
    /// </summary>
    public bool Standardize { get; init; }

    /// <summary>In <see cref="ProbeMode.Cached"/> mode, augmented views extracted per training video. Default 10.</summary>
    public int CachedTrainViews { get; init; } = 10;

    /// <summary>Seed for the training views, the batch order and the layer's initialisation. Default 0.</summary>
    public long Seed { get; init; }

    /// <summary>Feature extraction: views (official 32 x 2 frames; 224 training crops; 10 x 3 test views of 256), batching, workers.</summary>
    public FeatureExtractorOptions Features { get; init; } = new();

    /// <summary>The learning rate the probe uses.</summary>
    public double EffectiveLearningRate => LearningRate ?? (32.0 * BatchSize / 1024.0);

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        if (!Enum.IsDefined(Mode))
        {
            throw new ArgumentOutOfRangeException(nameof(Mode), Mode, "Unknown mode.");
        }

        LinearTraining.Check(Epochs, BatchSize, LearningRate, WarmupFraction, Momentum, WeightDecay);
        if (CachedTrainViews < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(CachedTrainViews), CachedTrainViews, "CachedTrainViews must be at least 1.");
        }

        ArgumentNullException.ThrowIfNull(Features, nameof(Features));
        Features.Validate();
    }
}

/// <summary>
/// The linear evaluation protocol: the encoder is frozen (inference-mode BatchNorm, no gradients), a linear layer is
/// trained on L2-normalised pooled features of random training clips, and each test video is scored by the softmax
/// probabilities averaged over its 30 views (10 clips x 3 crops). Returns a <see cref="ClassifierRun"/> with the
/// trained layer and a <see cref="ClassificationResult"/>.
/// </summary>
/// <example>
/// <code>
/// var train = VideoDataset.FromSplitList("UCF-101/", "classInd.txt", "trainlist01.txt");
/// var test = VideoDataset.FromSplitList("UCF-101/", "classInd.txt", "testlist01.txt");
/// using var encoder = CvrlCheckpoint.LoadEncoder("runs/a/checkpoints/checkpoint-0000000500.cvrl");
/// using var run = new LinearProbe(new LinearProbeOptions { Epochs = 30 }).Fit(encoder, train, test);
/// Console.WriteLine(run.Result);
/// </code>
/// </example>
public sealed class LinearProbe
{
    private readonly ILogger _logger;

    /// <summary>Creates the protocol.</summary>
    /// <param name="options">Options (validated); null for the official ones.</param>
    /// <param name="logger">Optional logging.</param>
    public LinearProbe(LinearProbeOptions? options = null, ILogger? logger = null)
    {
        Options = options ?? new LinearProbeOptions();
        Options.Validate();
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>The options.</summary>
    public LinearProbeOptions Options { get; }

    private string Protocol => Options.Mode == ProbeMode.Cached ? "linear-probe (cached)" : "linear-probe (faithful)";

    /// <summary>Trains a linear layer on the frozen <paramref name="encoder"/>'s features and tests it.</summary>
    /// <param name="encoder">The encoder (any module mapping clips to features; a ResNet3d uses its pooled features). Not modified.</param>
    /// <param name="train">Labelled training videos.</param>
    /// <param name="test">Labelled test videos with the same classes.</param>
    /// <param name="progress">Reports feature extraction and training.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    /// <returns>The trained layer and the result, owned by the caller.</returns>
    /// <exception cref="DatasetException">A split is empty or unlabelled, a class has no training videos, or the splits' classes differ.</exception>
    /// <exception cref="ArgumentException">The views are smaller than the encoder accepts.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public ClassifierRun Fit(nn.Module<Tensor, Tensor> encoder, VideoDataset train, VideoDataset test, IProgress<StageProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        EvaluationData.CheckSplits(train, test);
        var extractor = new FeatureExtractor(encoder, Options.Features with { Normalize = true }, _logger);
        train = extractor.Verified(train, cancellationToken); // once, not once per faithful epoch
        var watch = Stopwatch.StartNew();
        Log.Start(_logger, Protocol, train.Count, test.Count, train.Classes.Count);
        var testFeatures = extractor.TestFeatures(test, progress, cancellationToken);
        var settings = Settings(EvaluationData.Describe(encoder));
        if (Options.Mode == ProbeMode.Cached)
        {
            var trainFeatures = extractor.TrainFeatures(train, Options.Seed, 0, Options.CachedTrainViews, progress, cancellationToken);
            return FitCore(trainFeatures, testFeatures, e => trainFeatures, settings, watch, progress, cancellationToken);
        }

        // Faithful: fresh views every epoch. The first epoch's features also fix which videos decode.
        var first = extractor.TrainFeatures(train, Options.Seed, 0, 1, progress, cancellationToken);
        VideoFeatures Epoch(int e) => e == 0 ? first : extractor.TrainFeatures(train, Options.Seed, e, 1, null, cancellationToken);
        return FitCore(first, testFeatures, Epoch, settings, watch, progress, cancellationToken);
    }

    /// <summary>
    /// Trains on features extracted earlier (cached mode whatever <see cref="LinearProbeOptions.Mode"/> says): epoch e uses
    /// view e mod K of <paramref name="train"/>; <paramref name="test"/>'s views are averaged as probabilities.
    /// </summary>
    /// <param name="train">Training features (normalised ones for the official protocol).</param>
    /// <param name="test">Test features with the same classes and dimension.</param>
    /// <param name="progress">Reports training epochs.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    /// <exception cref="DatasetException">Unlabelled features, mismatched classes, or a class without training videos.</exception>
    /// <exception cref="ArgumentException">The feature dimensions differ.</exception>
    public ClassifierRun Fit(VideoFeatures train, VideoFeatures test, IProgress<StageProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        return FitCore(train, test, _ => train, Settings(null), Stopwatch.StartNew(), progress, cancellationToken, cachedProtocol: true);
    }

    private ClassifierRun FitCore(VideoFeatures firstTrain, VideoFeatures test, Func<int, VideoFeatures> trainForEpoch, JsonObject settings, Stopwatch watch, IProgress<StageProgress>? progress, CancellationToken cancellationToken, bool cachedProtocol = false)
    {
        LinearTraining.CheckFeatures(firstTrain, test);
        string protocol = cachedProtocol ? "linear-probe (cached)" : Protocol;
        var spec = new LinearTraining(Options.Epochs, Options.BatchSize, Options.EffectiveLearningRate, Options.WarmupFraction, Options.Momentum, Options.WeightDecay, Options.Seed, protocol, _logger);
        using var standardizer = Options.Standardize ? FeatureStandardizer.Fit(firstTrain) : null;
        var (layer, losses) = spec.Train(
            firstTrain.Dim,
            firstTrain.Classes.Count,
            epoch =>
            {
                var features = trainForEpoch(epoch);
                var x = features.ViewTensor(epoch % features.ViewsPerVideo);
                return (standardizer?.Apply(x) ?? x, features.LabelTensor());
            },
            watch,
            progress,
            cancellationToken);
        standardizer?.FoldInto(layer);
        var run = new ClassifierRun(layer, firstTrain.Classes, normalizeFeatures: true);
        try
        {
            var scores = run.Predict(test);
            run.Result = ClassificationResult.Score(protocol, scores, test, firstTrain.Count, losses, [.. firstTrain.Skipped, .. test.Skipped], settings, watch.Elapsed);
            Log.Done(_logger, protocol, run.Result.Top1, run.Result.Top5, test.Count, watch.Elapsed);
            return run;
        }
        catch
        {
            run.Dispose();
            throw;
        }
    }

    private JsonObject Settings(JsonObject? encoder) => new()
    {
        ["probe"] = ClassificationResult.ToNode(Options),
        ["learningRate"] = Options.EffectiveLearningRate,
        ["encoder"] = encoder,
    };
}

/// <summary>
/// Per-dimension standardisation of L2-normalised features, <c>(x - mean) / std</c> with the training features'
/// statistics over all their views, and its folding into a linear layer trained on standardised inputs.
/// </summary>
internal sealed class FeatureStandardizer : IDisposable
{
    private readonly Tensor _mean;
    private readonly Tensor _std;

    private FeatureStandardizer(Tensor mean, Tensor std) => (_mean, _std) = (mean, std);

    /// <summary>Statistics of every view of <paramref name="train"/> (L2-normalised first when the features are not).</summary>
    public static FeatureStandardizer Fit(VideoFeatures train)
    {
        using var scope = torch.NewDisposeScope();
        var all = train.ToTensor().reshape(-1, train.Dim);
        if (!train.Normalized)
        {
            all = nn.functional.normalize(all, p: 2, dim: 1);
        }

        using var floor = 1e-6.ToScalar();
        var mean = all.mean([0]);
        var std = all.std([0]).clamp_min(floor);
        return new FeatureStandardizer(mean.DetachFromDisposeScope(), std.DetachFromDisposeScope());
    }

    /// <summary>Standardises <paramref name="x"/> <c>[N, D]</c> (disposing it); returns a new tensor.</summary>
    public Tensor Apply(Tensor x)
    {
        using (x)
        {
            using var minusOne = (-1.0).ToScalar();
            return x.add(_mean, alpha: minusOne).div_(_std);
        }
    }

    /// <summary>
    /// Turns a layer trained on standardised inputs into one over the raw (normalised) features:
    /// <c>W' = W / std</c>, <c>b' = b - W' mean</c>.
    /// </summary>
    public void FoldInto(Linear layer)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var weight = layer.weight!.div(_std);
        using var minusOne = (-1.0).ToScalar();
        layer.bias!.add_(weight.matmul(_mean), alpha: minusOne);
        layer.weight!.copy_(weight);
    }

    public void Dispose()
    {
        _mean.Dispose();
        _std.Dispose();
    }
}

/// <summary>
/// A trained linear classifier over (optionally L2-normalised) encoder features, with the evaluation result that
/// measured it. Predicts from features (<see cref="Predict"/>) and saves its weights.
/// </summary>
public sealed class ClassifierRun : EvaluationRun
{
    internal ClassifierRun(Linear layer, IReadOnlyList<string> classes, bool normalizeFeatures)
        : base(classes)
    {
        Classifier = layer;
        NormalizesFeatures = normalizeFeatures;
    }

    /// <summary>The linear layer: weight <c>[classes, D]</c>, bias <c>[classes]</c>, on the CPU.</summary>
    public Linear Classifier { get; }

    /// <summary>Whether features are L2-normalised before the layer (linear probe: yes; fine-tune: no).</summary>
    public bool NormalizesFeatures { get; }

    /// <summary>
    /// Class probabilities per video: the softmax of the layer's logits for every view, averaged over the views (the
    /// official 30-view protocol).
    /// </summary>
    /// <param name="features">Features of the videos (normalised or not, as <see cref="NormalizesFeatures"/> expects; the probe normalises them anyway).</param>
    /// <returns>One row of <see cref="EvaluationRun.Classes"/>.Count probabilities per video.</returns>
    /// <exception cref="DatasetException">The features' classes differ from the classifier's.</exception>
    /// <exception cref="ArgumentException">The feature dimension differs from the layer's.</exception>
    public override float[][] Predict(VideoFeatures features)
    {
        CheckFeatures(features, (int)Classifier.weight!.shape[1]);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var x = features.ToTensor();
        if (NormalizesFeatures)
        {
            x = nn.functional.normalize(x, p: 2, dim: 2);
        }

        var probabilities = nn.functional.softmax(Classifier.call(x), dim: 2).mean([1]).contiguous();
        return Rows(probabilities, features.Count);
    }

    /// <summary>Saves the layer's weights ("weight", "bias") with <c>ModelWeights.Save</c>.</summary>
    public void SaveClassifier(string path) => Models.Weights.ModelWeights.Save(path, Classifier);

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Classifier.Dispose();
        }
    }
}

/// <summary>Trains one linear layer on per-epoch feature matrices with momentum SGD, warm-up and cosine decay.</summary>
internal sealed class LinearTraining(int epochs, int batchSize, double learningRate, double warmupFraction, double momentum, double weightDecay, long seed, string protocol, ILogger logger)
{
    public static void Check(int epochs, int batchSize, double? learningRate, double warmupFraction, double momentum, double weightDecay)
    {
        Require(epochs >= 1, "Epochs", epochs, "Epochs must be at least 1.");
        Require(batchSize >= 1, "BatchSize", batchSize, "BatchSize must be at least 1.");
        Require(learningRate is null || (learningRate > 0 && !double.IsInfinity(learningRate.Value)), "LearningRate", learningRate, "LearningRate must be positive and finite, or null for the scaled official rate.");
        Require(warmupFraction is >= 0 and < 1, "WarmupFraction", warmupFraction, "WarmupFraction must lie in [0, 1).");
        Require(momentum is >= 0 and < 1, "Momentum", momentum, "Momentum must lie in [0, 1).");
        Require(weightDecay >= 0 && !double.IsInfinity(weightDecay), "WeightDecay", weightDecay, "WeightDecay must be 0 or positive.");
    }

    public static void Require(bool ok, string name, object? value, string message)
    {
        if (!ok)
        {
            throw new ArgumentOutOfRangeException(name, value, message);
        }
    }

    public static void CheckFeatures(VideoFeatures train, VideoFeatures test)
    {
        if (train.Classes.Count == 0 || train.Labels.Any(l => l < 0 || l >= train.Classes.Count))
        {
            throw new DatasetException("The training features are unlabelled or have labels outside their class list.");
        }

        if (test.Labels.Any(l => l < 0 || l >= test.Classes.Count))
        {
            throw new DatasetException("The test features are unlabelled or have labels outside their class list.");
        }

        EvaluationData.CheckClassesMatch(train.Classes, test.Classes);
        var seen = new HashSet<int>(train.Labels);
        var empty = Enumerable.Range(0, train.Classes.Count).Where(c => !seen.Contains(c)).Select(c => train.Classes[c]).ToList();
        if (empty.Count > 0)
        {
            throw new DatasetException($"No training videos (that could be decoded) for class{(empty.Count > 1 ? "es" : string.Empty)} {string.Join(", ", empty.Take(10).Select(c => $"'{c}'"))}.");
        }

        if (train.Dim != test.Dim)
        {
            throw new ArgumentException($"Training features have {train.Dim} dimensions, test features {test.Dim}.", nameof(test));
        }
    }

    /// <summary>A linear layer with a deterministic start: N(0, 0.01) weights from <paramref name="seed"/>, zero bias.</summary>
    public static Linear CreateLayer(int dim, int classes, long seed)
    {
        var layer = nn.Linear(dim, classes);
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        using var generator = new Generator((ulong)seed);
        using var std = 0.01.ToScalar();
        layer.weight!.copy_(torch.randn([classes, dim], generator: generator).mul_(std));
        layer.bias!.zero_();
        return layer;
    }

    /// <summary>Trains the layer; <paramref name="epochData"/> gives each epoch's features <c>[N, D]</c> and labels <c>[N]</c>.</summary>
    public (Linear Layer, List<double> Losses) Train(int dim, int classes, Func<int, (Tensor Features, Tensor Labels)> epochData, Stopwatch watch, IProgress<StageProgress>? progress, CancellationToken cancellationToken)
    {
        var layer = CreateLayer(dim, classes, seed);
        var losses = new List<double>();
        CvrlOptimizer? optimizer = null;
        try
        {
            optimizer = new MomentumSgd(layer.named_parameters().Select(p => (p.name, p.parameter)), new CvrlOptimizerOptions { Momentum = momentum, WeightDecay = weightDecay });
            WarmupCosineSchedule? schedule = null;
            long step = 0;
            for (int epoch = 0; epoch < epochs; epoch++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var (x, y) = epochData(epoch);
                using (x)
                using (y)
                {
                    int n = (int)x.shape[0];
                    int stepsPerEpoch = (n + batchSize - 1) / batchSize;
                    schedule ??= new WarmupCosineSchedule(learningRate, (long)Math.Round(warmupFraction * stepsPerEpoch * epochs), (long)stepsPerEpoch * epochs);
                    int[] order = [.. Enumerable.Range(0, n)];
                    ClipRandom.For(seed, epoch, -1, int.MinValue + 1).Shuffle(order.AsSpan());
                    double sum = 0;
                    for (int start = 0; start < n; start += batchSize)
                    {
                        using var scope = torch.NewDisposeScope();
                        var index = torch.tensor(order.AsSpan(start, Math.Min(batchSize, n - start)).ToArray().Select(i => (long)i).ToArray());
                        var logits = layer.call(x.index_select(0, index));
                        var loss = nn.functional.cross_entropy(logits, y.index_select(0, index));
                        optimizer.ZeroGrad();
                        loss.backward();
                        optimizer.LearningRate = schedule.At(step++);
                        optimizer.Step();
                        sum += loss.item<float>() * index.shape[0];
                    }

                    double mean = sum / n;
                    if (!double.IsFinite(mean))
                    {
                        throw new Training.TrainingDivergedException(step, mean, optimizer.LearningRate, lastCheckpoint: null);
                    }

                    losses.Add(mean);
                    Log.Epoch(logger, protocol, epoch + 1, epochs, mean);
                    progress?.Report(new StageProgress("training", epoch + 1, epochs, watch.Elapsed, mean));
                }
            }

            optimizer.ZeroGrad();
            return (layer, losses);
        }
        catch
        {
            layer.Dispose();
            throw;
        }
        finally
        {
            optimizer?.Dispose();
        }
    }
}
