using Cvrl.Data;
using Cvrl.Video;
using static TorchSharp.torch;

namespace Cvrl.Evaluation;

/// <summary>
/// What every evaluation protocol returns: the <see cref="Result"/> it measured on the test split, and a model that
/// classifies further videos from their features (<see cref="Predict"/>): a trained layer for
/// <see cref="LinearProbe"/> and <see cref="FineTuner"/> (<see cref="ClassifierRun"/>), the reference set for
/// <see cref="KnnClassifier"/> (<see cref="KnnRun"/>). Dispose it to release its tensors.
/// </summary>
public abstract class EvaluationRun : IDisposable
{
    private ClassificationResult? _result;
    private bool _disposed;

    /// <summary>Creates a run over <paramref name="classes"/>.</summary>
    private protected EvaluationRun(IReadOnlyList<string> classes)
    {
        ArgumentNullException.ThrowIfNull(classes);
        Classes = [.. classes];
    }

    /// <summary>Class names, in label order.</summary>
    public IReadOnlyList<string> Classes { get; }

    /// <summary>The evaluation on the test split.</summary>
    /// <exception cref="InvalidOperationException">The run has no result yet.</exception>
    public ClassificationResult Result
    {
        get => _result ?? throw new InvalidOperationException("The run has no result yet.");
        internal set => _result = value;
    }

    /// <summary>Class scores per video (each row sums to 1), from features made with the run's feature options.</summary>
    /// <param name="features">Features of the videos to classify.</param>
    /// <returns>One row of <see cref="Classes"/>.Count scores per video.</returns>
    /// <exception cref="DatasetException">The features' classes differ from the run's.</exception>
    /// <exception cref="ArgumentException">The feature dimension differs from the run's.</exception>
    public abstract float[][] Predict(VideoFeatures features);

    /// <summary>Releases the run's tensors.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the run's tensors (<paramref name="disposing"/> true) .</summary>
    protected virtual void Dispose(bool disposing)
    {
    }

    /// <summary>Checks that <paramref name="features"/> fit this run (classes, when labelled, and dimension).</summary>
    private protected void CheckFeatures(VideoFeatures features, int dim)
    {
        ArgumentNullException.ThrowIfNull(features);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (features.Classes.Count > 0)
        {
            EvaluationData.CheckClassesMatch(Classes, features.Classes, "The evaluation set's classes");
        }

        if (features.Dim != dim)
        {
            throw new ArgumentException($"The features have {features.Dim} dimensions; the run expects {dim}.", nameof(features));
        }
    }

    /// <summary>Splits a contiguous <c>[videos, classes]</c> float tensor into rows.</summary>
    private protected float[][] Rows(Tensor scores, int videos)
    {
        var flat = scores.data<float>().ToArray();
        int c = Classes.Count;
        return [.. Enumerable.Range(0, videos).Select(i => flat.AsSpan(i * c, c).ToArray())];
    }
}
