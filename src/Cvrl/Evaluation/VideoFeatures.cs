using Cvrl.Video;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Evaluation;

/// <summary>
/// Features of a set of videos: for each video, <see cref="ViewsPerVideo"/> feature vectors of <see cref="Dim"/>
/// numbers (one per view), with the videos' labels. Made by <see cref="FeatureExtractor"/>; consumed by
/// <see cref="LinearProbe"/> and <see cref="KnnClassifier"/>. Immutable.
/// </summary>
public sealed class VideoFeatures
{
    private readonly float[][] _values;

    /// <summary>Creates a feature set.</summary>
    /// <param name="paths">The videos.</param>
    /// <param name="labels">Their labels (-1 for none).</param>
    /// <param name="classes">Class names (empty when unlabelled).</param>
    /// <param name="viewsPerVideo">Views per video.</param>
    /// <param name="dim">Feature dimension.</param>
    /// <param name="values">Per video, <c>viewsPerVideo x dim</c> numbers, view-major.</param>
    /// <param name="normalized">Whether each view's vector has unit L2 norm.</param>
    /// <param name="skipped">Videos left out.</param>
    /// <exception cref="ArgumentException">The sizes do not agree.</exception>
    public VideoFeatures(IReadOnlyList<string> paths, IReadOnlyList<int> labels, IReadOnlyList<string> classes, int viewsPerVideo, int dim, IReadOnlyList<float[]> values, bool normalized, IReadOnlyList<SkippedVideo>? skipped = null)
    {
        ArgumentNullException.ThrowIfNull(paths);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(classes);
        ArgumentNullException.ThrowIfNull(values);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(viewsPerVideo);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dim);
        if (labels.Count != paths.Count || values.Count != paths.Count)
        {
            throw new ArgumentException($"{paths.Count} paths, {labels.Count} labels and {values.Count} feature rows: the counts must agree.", nameof(values));
        }

        for (int i = 0; i < values.Count; i++)
        {
            if (values[i] is null || values[i].Length != viewsPerVideo * dim)
            {
                throw new ArgumentException($"Video {i} ('{paths[i]}') has {values[i]?.Length ?? 0} numbers; expected {viewsPerVideo} views x {dim}.", nameof(values));
            }
        }

        Paths = [.. paths];
        Labels = [.. labels];
        Classes = [.. classes];
        ViewsPerVideo = viewsPerVideo;
        Dim = dim;
        _values = [.. values];
        Normalized = normalized;
        Skipped = skipped is null ? [] : [.. skipped];
    }

    /// <summary>The videos (without the skipped ones).</summary>
    public IReadOnlyList<string> Paths { get; }

    /// <summary>The videos' labels (-1 for none).</summary>
    public IReadOnlyList<int> Labels { get; }

    /// <summary>Class names (empty when unlabelled).</summary>
    public IReadOnlyList<string> Classes { get; }

    /// <summary>Views per video.</summary>
    public int ViewsPerVideo { get; }

    /// <summary>Feature dimension.</summary>
    public int Dim { get; }

    /// <summary>Number of videos.</summary>
    public int Count => Paths.Count;

    /// <summary>Whether each view's vector has unit L2 norm.</summary>
    public bool Normalized { get; }

    /// <summary>Videos that could not be decoded and are not in the set.</summary>
    public IReadOnlyList<SkippedVideo> Skipped { get; }

    /// <summary>View <paramref name="view"/> of video <paramref name="video"/>.</summary>
    public ReadOnlySpan<float> Get(int video, int view)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(view);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(view, ViewsPerVideo);
        return _values[video].AsSpan(view * Dim, Dim);
    }

    /// <summary>All views of video <paramref name="video"/>, view-major (<see cref="ViewsPerVideo"/> x <see cref="Dim"/>).</summary>
    public ReadOnlySpan<float> Video(int video) => _values[video];

    /// <summary>The mean of a video's view vectors (its embedding; <see cref="EncodedVideos.MeanOfViews"/>).</summary>
    public float[] Mean(int video) => EncodedVideos.MeanOfViews(_values[video], ViewsPerVideo, Dim);

    /// <summary>All features as a new CPU tensor <c>[Count, ViewsPerVideo, Dim]</c>.</summary>
    public Tensor ToTensor()
    {
        var flat = new float[(long)Count * ViewsPerVideo * Dim];
        for (int i = 0; i < Count; i++)
        {
            _values[i].CopyTo(flat, (long)i * ViewsPerVideo * Dim);
        }

        return torch.tensor(flat, [Count, ViewsPerVideo, Dim]);
    }

    /// <summary>One view of every video as a new CPU tensor <c>[Count, Dim]</c>.</summary>
    public Tensor ViewTensor(int view)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(view);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(view, ViewsPerVideo);
        var flat = new float[(long)Count * Dim];
        for (int i = 0; i < Count; i++)
        {
            Array.Copy(_values[i], view * Dim, flat, (long)i * Dim, Dim);
        }

        return torch.tensor(flat, [Count, Dim]);
    }

    /// <summary>The labels as an int64 CPU tensor.</summary>
    public Tensor LabelTensor() => torch.tensor(Labels.Select(l => (long)l).ToArray());
}
