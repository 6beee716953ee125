using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cvrl.Video;

/// <summary>A video left out of an evaluation, a fine-tuning run or an embedding set because it could not be decoded.</summary>
/// <param name="Path">The file.</param>
/// <param name="Reason">Why.</param>
public sealed record SkippedVideo(string Path, string Reason);

/// <summary>
/// A progress report from an evaluation, fine-tuning or embedding run, by either embedder: <paramref name="Completed"/>
/// of <paramref name="Total"/> units of the current <paramref name="Stage"/>.
/// </summary>
/// <param name="Stage">What is running ("embedding", "test features", "train features", "batch-norm statistics", "training", "fine-tuning").</param>
/// <param name="Completed">Units done in this stage (videos, steps or epochs).</param>
/// <param name="Total">Units in this stage.</param>
/// <param name="Elapsed">Time since the run started.</param>
/// <param name="Loss">The latest training loss, while training.</param>
public sealed record StageProgress(string Stage, int Completed, int Total, TimeSpan Elapsed, double? Loss = null);

/// <summary>One view in a batch: the video's position in the run, the views decoded for it, and which of them.</summary>
/// <typeparam name="TViews">What a video's decoded views are (bytes for the embedders, a tensor for evaluation).</typeparam>
/// <param name="Video">The video's position in the run's list.</param>
/// <param name="Views">All views decoded for that video.</param>
/// <param name="View">Which view of them.</param>
public readonly record struct BatchedView<TViews>(int Video, TViews Views, int View);

/// <summary>
/// The embedding driver: decodes the views of many videos on worker threads (through <see cref="OrderedParallel"/>),
/// applies the bad-video rule, cuts the views of consecutive videos into batches of <see cref="BatchSize"/> views (the
/// last one partial) and, for feature runs, collects each video's feature rows. The runtime that encodes a batch
/// (TorchSharp or ONNX Runtime) is the only thing callers supply, so both embedders, feature extraction and
/// fine-tuning share one implementation of decoding, skipping, batching, progress and ordering. Results do not depend
/// on the number of workers.
/// </summary>
/// <typeparam name="TViews">What a video's decoded views are.</typeparam>
public sealed class ViewRun<TViews>
    where TViews : class
{
    private readonly List<SkippedVideo> _skipped = [];

    /// <summary>The videos of the run, in order (used to name skipped ones).</summary>
    public required IReadOnlyList<string> Videos { get; init; }

    /// <summary>Views <see cref="Decode"/> makes per video.</summary>
    public required int ViewsPerVideo { get; init; }

    /// <summary>Decodes the views of the video at a position; runs on worker threads; throws <see cref="VideoDecodeException"/> for a bad video.</summary>
    public required Func<int, TViews> Decode { get; init; }

    /// <summary>Releases a video's views once all of them went through a batch (or the run stopped); optional.</summary>
    public Action<TViews>? Release { get; init; }

    /// <summary>Views per batch. Default 8.</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>Decoding threads. Default: one per core.</summary>
    public int Workers { get; init; } = Environment.ProcessorCount;

    /// <summary>Bad videos: skipped (listed in <see cref="Skipped"/>) or the exception reaches the caller.</summary>
    public BadVideoPolicy BadVideos { get; init; } = BadVideoPolicy.Skip;

    /// <summary>Receives a warning per skipped video; optional.</summary>
    public ILogger? Logger { get; init; }

    /// <summary>The videos skipped so far, in run order.</summary>
    public IReadOnlyList<SkippedVideo> Skipped => _skipped;

    /// <summary>
    /// Decodes every video and yields its views in batches of <see cref="BatchSize"/> (the last batch may be smaller), in
    /// run order. A batch's views are valid until the enumeration moves on; then the views of videos whose last view was
    /// in it are released. Bad videos are skipped (logged once as a warning and listed in <see cref="Skipped"/>) or throw,
    /// as <see cref="BadVideos"/> says.
    /// </summary>
    /// <param name="skipped">Called for each skipped video, with its position and the error; optional.</param>
    /// <param name="completed">Called when the last view of the video at a position went through a batch; optional.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    /// <returns>The batches, lazily; enumerate once.</returns>
    /// <exception cref="VideoDecodeException">With <see cref="BadVideoPolicy.Fail"/>, the first bad video.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public IEnumerable<IReadOnlyList<BatchedView<TViews>>> Batches(Action<int, VideoDecodeException>? skipped = null, Action<int>? completed = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(Videos);
        ArgumentNullException.ThrowIfNull(Decode);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(ViewsPerVideo);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(BatchSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(Workers);
        return BatchesCore(skipped, completed, cancellationToken);
    }

    /// <summary>
    /// Runs <paramref name="encode"/> over every batch and returns each decodable video's feature rows (view-major).
    /// Skipped videos are listed after <paramref name="skippedBefore"/>.
    /// </summary>
    /// <param name="encode">Encodes a batch: returns one row of D numbers per view, row-major (the same D every time).</param>
    /// <param name="stage">The progress stage name.</param>
    /// <param name="where">What the videos are, for the error when none decodes (a folder, "the given videos").</param>
    /// <param name="skippedBefore">Videos already left out before the run (by a verified index), listed first.</param>
    /// <param name="progress">Reports videos done (decoded and encoded, or skipped).</param>
    /// <param name="cancellationToken">Stops the run.</param>
    /// <returns>The features.</returns>
    /// <exception cref="DatasetException">No video could be decoded.</exception>
    /// <exception cref="VideoDecodeException">With <see cref="BadVideoPolicy.Fail"/>, the first bad video.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public EncodedVideos Encode(Func<IReadOnlyList<BatchedView<TViews>>, float[]> encode, string stage, string where, IReadOnlyList<SkippedVideo>? skippedBefore = null, IProgress<StageProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(encode);
        var watch = Stopwatch.StartNew();
        int n = Videos.Count;
        var values = new float[n][];
        int dim = 0;
        int done = 0;

        void Done(int video)
        {
            done++;
            progress?.Report(new StageProgress(stage, done, n, watch.Elapsed));
        }

        foreach (var batch in Batches((video, _) => Done(video), Done, cancellationToken))
        {
            float[] rows = encode(batch);
            if (rows.Length == 0 || rows.Length % batch.Count != 0 || (dim != 0 && rows.Length != batch.Count * dim))
            {
                throw new InvalidOperationException($"The encoder returned {rows.Length} numbers for {batch.Count} views; expected {batch.Count} rows of {(dim == 0 ? "D" : dim.ToString(System.Globalization.CultureInfo.InvariantCulture))}.");
            }

            dim = rows.Length / batch.Count;
            for (int k = 0; k < batch.Count; k++)
            {
                var (video, _, view) = batch[k];
                values[video] ??= new float[ViewsPerVideo * dim];
                Array.Copy(rows, k * dim, values[video], view * dim, dim);
            }
        }

        var skipped = (skippedBefore ?? []).Concat(_skipped).ToList();
        int[] kept = [.. Enumerable.Range(0, n).Where(i => values[i] is not null)];
        if (kept.Length == 0)
        {
            throw new DatasetException(skipped.Count == 0
                ? $"There are no videos to encode in {where}."
                : $"None of the {n + (skippedBefore?.Count ?? 0)} videos in {where} could be decoded (first: {skipped[0].Path}: {skipped[0].Reason}).");
        }

        return new EncodedVideos(kept, [.. kept.Select(i => values[i])], ViewsPerVideo, dim, skipped);
    }

    private IEnumerable<IReadOnlyList<BatchedView<TViews>>> BatchesCore(Action<int, VideoDecodeException>? skipped, Action<int>? completed, CancellationToken cancellationToken)
    {
        var pending = new Queue<BatchedView<TViews>>();
        var remaining = new Dictionary<int, int>();

        (TViews? Views, VideoDecodeException? Error) Make(string path, int video)
        {
            try
            {
                return (Decode(video), null);
            }
            catch (VideoDecodeException e) when (BadVideos == BadVideoPolicy.Skip)
            {
                return (null, e);
            }
        }

        // Releases the views of videos that have no view left in the queue, in run order.
        void Settle(IReadOnlyList<BatchedView<TViews>> batch)
        {
            foreach (var (video, views, _) in batch)
            {
                if (--remaining[video] == 0)
                {
                    remaining.Remove(video);
                    Release?.Invoke(views);
                    completed?.Invoke(video);
                }
            }
        }

        try
        {
            int lookAhead = Math.Max(2, 2 * Workers);
            int video = 0;
            foreach (var (views, error) in OrderedParallel.Map(Videos, Make, Workers, lookAhead, r => { if (r.Views is not null) { Release?.Invoke(r.Views); } }, cancellationToken))
            {
                int i = video++;
                if (views is null)
                {
                    _skipped.Add(new SkippedVideo(Videos[i], error!.Detail));
                    ViewRunLog.SkippedVideo(Logger ?? NullLogger.Instance, Videos[i], error.Detail);
                    skipped?.Invoke(i, error);
                    continue;
                }

                remaining[i] = ViewsPerVideo;
                for (int v = 0; v < ViewsPerVideo; v++)
                {
                    pending.Enqueue(new BatchedView<TViews>(i, views, v));
                }

                while (pending.Count >= BatchSize)
                {
                    var batch = Take(pending, BatchSize);
                    yield return batch;
                    Settle(batch);
                }
            }

            while (pending.Count > 0)
            {
                var batch = Take(pending, BatchSize);
                yield return batch;
                Settle(batch);
            }
        }
        finally
        {
            var unreleased = pending.Select(p => p.Views).Distinct(ReferenceEqualityComparer.Instance).Cast<TViews>().ToList();
            pending.Clear();
            foreach (var views in unreleased)
            {
                Release?.Invoke(views);
            }
        }
    }

    private static List<BatchedView<TViews>> Take(Queue<BatchedView<TViews>> queue, int count)
    {
        var batch = new List<BatchedView<TViews>>(Math.Min(count, queue.Count));
        while (batch.Count < count && queue.Count > 0)
        {
            batch.Add(queue.Dequeue());
        }

        return batch;
    }
}

/// <summary>
/// What a feature run produced: for each video that decoded (<see cref="Kept"/>, positions in the run's list), one row of
/// <see cref="Dim"/> numbers per view, view-major; and the videos left out.
/// </summary>
public sealed class EncodedVideos
{
    private readonly float[][] _values;

    internal EncodedVideos(int[] kept, float[][] values, int viewsPerVideo, int dim, IReadOnlyList<SkippedVideo> skipped)
    {
        Kept = kept;
        _values = values;
        ViewsPerVideo = viewsPerVideo;
        Dim = dim;
        Skipped = skipped;
    }

    /// <summary>Positions (in the run's list) of the videos that decoded, ascending.</summary>
    public IReadOnlyList<int> Kept { get; }

    /// <summary>Views per video.</summary>
    public int ViewsPerVideo { get; }

    /// <summary>Feature dimension.</summary>
    public int Dim { get; }

    /// <summary>Videos left out, with the reason.</summary>
    public IReadOnlyList<SkippedVideo> Skipped { get; }

    /// <summary>The rows of the <paramref name="k"/>-th kept video (<see cref="ViewsPerVideo"/> x <see cref="Dim"/>, view-major); not a copy.</summary>
    public float[] Values(int k) => _values[k];

    /// <summary>The mean of the <paramref name="k"/>-th kept video's rows (its embedding).</summary>
    public float[] Mean(int k) => MeanOfViews(_values[k], ViewsPerVideo, Dim);

    /// <summary>
    /// The mean of <paramref name="views"/> rows of <paramref name="dim"/> numbers (view-major): summed in float32 in view
    /// order, then divided by the count. The one definition of a video's embedding, used by both embedders and by
    /// evaluation's feature sets.
    /// </summary>
    public static float[] MeanOfViews(ReadOnlySpan<float> values, int views, int dim)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(views);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dim);
        if (values.Length != views * dim)
        {
            throw new ArgumentException($"{values.Length} numbers are not {views} rows of {dim}.", nameof(values));
        }

        var mean = new float[dim];
        for (int v = 0; v < views; v++)
        {
            for (int d = 0; d < dim; d++)
            {
                mean[d] += values[(v * dim) + d];
            }
        }

        for (int d = 0; d < dim; d++)
        {
            mean[d] /= views;
        }

        return mean;
    }
}

/// <summary>Source-generated log messages of view runs.</summary>
internal static partial class ViewRunLog
{
    [LoggerMessage(EventId = 300, Level = LogLevel.Warning, Message = "Leaving out video {Path}: {Reason}")]
    public static partial void SkippedVideo(ILogger logger, string path, string reason);
}
