using System.Diagnostics;
using System.Text.Json.Nodes;
using Cvrl.Data;
using Cvrl.Video;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Evaluation;

/// <summary>
/// Options for <see cref="KnnClassifier"/>. Not part of the CVRL paper; the defaults (k 20, temperature 0.07,
/// exponential weights) are the common ones for self-supervised kNN monitors.
/// </summary>
public sealed record KnnOptions
{
    /// <summary>Neighbours that vote. Clamped to the number of training videos (with a warning). Default 20.</summary>
    public int K { get; init; } = 20;

    /// <summary>Vote weight <c>exp(similarity / Temperature)</c>; null gives every neighbour weight 1. Default 0.07.</summary>
    public double? Temperature { get; init; } = 0.07;

    /// <summary>
    /// Feature extraction. Each video is represented by the mean of its L2-normalised test-view features (the same
    /// representation <see cref="Embeddings.VideoEmbedder"/> makes), for training and test videos alike.
    /// </summary>
    public FeatureExtractorOptions Features { get; init; } = new();

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        LinearTraining.Require(K >= 1, nameof(K), K, "K must be at least 1.");
        LinearTraining.Require(Temperature is null || (Temperature > 0 && double.IsFinite(Temperature.Value)), nameof(Temperature), Temperature, "Temperature must be positive and finite, or null for equal votes.");
        ArgumentNullException.ThrowIfNull(Features, nameof(Features));
        Features.Validate();
    }
}

/// <summary>
/// k-nearest-neighbour evaluation on frozen features: every test video is compared by cosine similarity with every
/// training video, and its k most similar neighbours vote for their classes with weights
/// <c>exp(similarity / temperature)</c>. Scores are the normalised vote totals; top-1 and top-5 come from them.
/// </summary>
public sealed class KnnClassifier
{
    private readonly ILogger _logger;

    /// <summary>Creates the protocol.</summary>
    /// <param name="options">Options (validated); null for the defaults.</param>
    /// <param name="logger">Optional logging.</param>
    public KnnClassifier(KnnOptions? options = null, ILogger? logger = null)
    {
        Options = options ?? new KnnOptions();
        Options.Validate();
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>The options.</summary>
    public KnnOptions Options { get; }

    /// <summary>Extracts features of both splits with the frozen <paramref name="encoder"/> and evaluates.</summary>
    /// <param name="encoder">The encoder (not modified).</param>
    /// <param name="train">Labelled reference videos.</param>
    /// <param name="test">Labelled test videos with the same classes.</param>
    /// <param name="progress">Reports feature extraction.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    /// <returns>The reference set and the result, owned by the caller.</returns>
    /// <exception cref="DatasetException">A split is empty or unlabelled, a class has no training videos, or the classes differ.</exception>
    /// <exception cref="ArgumentException">The views are smaller than the encoder accepts.</exception>
    public KnnRun Fit(nn.Module<Tensor, Tensor> encoder, VideoDataset train, VideoDataset test, IProgress<StageProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        EvaluationData.CheckSplits(train, test);
        var watch = Stopwatch.StartNew();
        var extractor = new FeatureExtractor(encoder, Options.Features with { Normalize = true }, _logger);
        Log.Start(_logger, "knn", train.Count, test.Count, train.Classes.Count);
        var trainFeatures = extractor.TestFeatures(train, "reference features", progress, cancellationToken);
        var testFeatures = extractor.TestFeatures(test, "test features", progress, cancellationToken);
        return Score(trainFeatures, testFeatures, EvaluationData.Describe(encoder), watch);
    }

    /// <summary>Evaluates on features extracted earlier (each video's views are averaged, then L2-normalised).</summary>
    /// <param name="train">Reference features.</param>
    /// <param name="test">Test features with the same classes and dimension.</param>
    /// <returns>The reference set and the result, owned by the caller.</returns>
    /// <exception cref="DatasetException">Unlabelled features, mismatched classes, or a class without training videos.</exception>
    /// <exception cref="ArgumentException">The feature dimensions differ.</exception>
    public KnnRun Fit(VideoFeatures train, VideoFeatures test)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        return Score(train, test, null, Stopwatch.StartNew());
    }

    private KnnRun Score(VideoFeatures train, VideoFeatures test, JsonObject? encoder, Stopwatch watch)
    {
        LinearTraining.CheckFeatures(train, test);
        int k = Options.K;
        if (k > train.Count)
        {
            Log.KnnClamped(_logger, k, train.Count);
            k = train.Count;
        }

        var run = new KnnRun(train, k, Options.Temperature);
        try
        {
            var scores = run.Predict(test);
            var settings = new JsonObject
            {
                ["knn"] = ClassificationResult.ToNode(Options),
                ["effectiveK"] = k,
                ["encoder"] = encoder,
            };
            run.Result = ClassificationResult.Score("knn", scores, test, train.Count, [], [.. train.Skipped, .. test.Skipped], settings, watch.Elapsed);
            Log.Done(_logger, "knn", run.Result.Top1, run.Result.Top5, test.Count, watch.Elapsed);
            return run;
        }
        catch
        {
            run.Dispose();
            throw;
        }
    }
}

/// <summary>
/// A kNN classifier: the reference videos' features (each video's views averaged and L2-normalised) and their labels,
/// with the evaluation result that measured it. <see cref="Predict"/> classifies further videos by the
/// <c>exp(similarity / temperature)</c>-weighted votes of their <see cref="K"/> most similar reference videos.
/// </summary>
public sealed class KnnRun : EvaluationRun
{
    private readonly Tensor _reference;
    private readonly Tensor _labels;

    internal KnnRun(VideoFeatures reference, int k, double? temperature)
        : base(reference.Classes)
    {
        K = k;
        Temperature = temperature;
        ReferenceVideos = reference.Count;
        Dim = reference.Dim;
        using var scope = torch.NewDisposeScope();
        _reference = nn.functional.normalize(reference.ToTensor().mean([1]), p: 2, dim: 1).DetachFromDisposeScope();
        _labels = reference.LabelTensor().DetachFromDisposeScope();
    }

    /// <summary>Neighbours that vote (clamped to the number of reference videos).</summary>
    public int K { get; }

    /// <summary>Vote weight temperature; null for equal votes.</summary>
    public double? Temperature { get; }

    /// <summary>Reference videos.</summary>
    public int ReferenceVideos { get; }

    /// <summary>Feature dimension.</summary>
    public int Dim { get; }

    /// <summary>Normalised vote totals per video: the weighted votes of its <see cref="K"/> nearest reference videos by class.</summary>
    /// <inheritdoc />
    public override float[][] Predict(VideoFeatures features)
    {
        CheckFeatures(features, Dim);
        using var scope = torch.NewDisposeScope();
        var queries = nn.functional.normalize(features.ToTensor().mean([1]), p: 2, dim: 1);
        var similarity = queries.matmul(_reference.t());
        var (top, index) = similarity.topk(K, dim: 1);
        using var t = (Temperature ?? 1.0).ToScalar();
        var weights = Temperature is null ? torch.ones_like(top) : top.div(t).exp();
        var labels = _labels.index_select(0, index.flatten()).view(index.shape);
        var votes = torch.zeros([features.Count, Classes.Count]).scatter_add_(1, labels, weights);
        return Rows(votes.div(votes.sum(1, keepdim: true)).contiguous(), features.Count);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _reference.Dispose();
            _labels.Dispose();
        }
    }
}
