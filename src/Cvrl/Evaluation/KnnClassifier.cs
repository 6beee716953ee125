using System.Diagnostics;
using System.Text.Json.Nodes;
using Cvrl.Data;
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
    /// <exception cref="DatasetException">A split is empty or unlabelled, a class has no training videos, or the classes differ.</exception>
    /// <exception cref="ArgumentException">The views are smaller than the encoder accepts.</exception>
    public ClassificationResult Evaluate(nn.Module<Tensor, Tensor> encoder, VideoDataset train, VideoDataset test, IProgress<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default)
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
    /// <exception cref="DatasetException">Unlabelled features, mismatched classes, or a class without training videos.</exception>
    /// <exception cref="ArgumentException">The feature dimensions differ.</exception>
    public ClassificationResult Evaluate(VideoFeatures train, VideoFeatures test)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        return Score(train, test, null, Stopwatch.StartNew());
    }

    private ClassificationResult Score(VideoFeatures train, VideoFeatures test, JsonObject? encoder, Stopwatch watch)
    {
        LinearTraining.CheckFeatures(train, test);
        int k = Options.K;
        if (k > train.Count)
        {
            Log.KnnClamped(_logger, k, train.Count);
            k = train.Count;
        }

        int classes = train.Classes.Count;
        float[][] scores;
        using (var scope = torch.NewDisposeScope())
        {
            var reference = nn.functional.normalize(Means(train), p: 2, dim: 1);
            var queries = nn.functional.normalize(Means(test), p: 2, dim: 1);
            var similarity = queries.matmul(reference.t());
            var (top, index) = similarity.topk(k, dim: 1);
            using var t = (Options.Temperature ?? 1.0).ToScalar();
            var weights = Options.Temperature is null ? torch.ones_like(top) : top.div(t).exp();
            var labels = train.LabelTensor().index_select(0, index.flatten()).view(index.shape);
            var votes = torch.zeros([test.Count, classes]).scatter_add_(1, labels, weights);
            var normalised = votes.div(votes.sum(1, keepdim: true)).contiguous();
            var flat = normalised.data<float>().ToArray();
            scores = [.. Enumerable.Range(0, test.Count).Select(i => flat.AsSpan(i * classes, classes).ToArray())];
        }

        var settings = new JsonObject
        {
            ["knn"] = ClassificationResult.ToNode(Options),
            ["effectiveK"] = k,
            ["encoder"] = encoder,
        };
        var result = ClassificationResult.Score("knn", scores, test, train.Count, [], [.. train.Skipped, .. test.Skipped], settings, watch.Elapsed);
        Log.Done(_logger, "knn", result.Top1, result.Top5, test.Count, watch.Elapsed);
        return result;
    }

    private static Tensor Means(VideoFeatures features) => features.ToTensor().mean([1]);
}
