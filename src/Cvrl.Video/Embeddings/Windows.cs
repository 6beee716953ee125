using System.Collections.Concurrent;
using System.Globalization;
using Cvrl.Video;

namespace Cvrl.Embeddings;

/// <summary>
/// Options of dense window features (<see cref="Embedder.ExtractWindows(IReadOnlyList{EmbeddingInput}, WindowOptions?, IProgress{StageProgress}?, CancellationToken)"/>): where windows start and
/// how they are batched. A window's length, frame stride, short side and centre crop are the embedder's views
/// (<see cref="Embedder.Views"/>: the encoder's geometry unless the options say otherwise). Validated where used.
/// </summary>
public sealed record WindowOptions
{
    /// <summary>Frames between the starts of consecutive windows (video_features' <c>step_size</c>). Default 8.</summary>
    public int Step { get; init; } = 8;

    /// <summary>
    /// Seconds between the starts of consecutive windows, instead of <see cref="Step"/>: a window starts at the first frame
    /// whose presentation time reaches each multiple of it (variable frame rates keep their times). Default null.
    /// </summary>
    public double? StepSeconds { get; init; }

    /// <summary>
    /// Divide each window's feature by its L2 norm (what embedding sets and moment search use); false gives the pooled
    /// features as the encoder computes them (what localisation models are trained on). Default false.
    /// </summary>
    public bool Normalize { get; init; }

    /// <summary>Windows per forward pass, across videos. Default 16.</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>Videos decoded at a time (each front to back, once). Default: the cores, at most 4.</summary>
    public int Workers { get; init; } = Math.Clamp(Environment.ProcessorCount, 1, 4);

    /// <summary>A video that fails to decode: skipped with its reason (default) or the run stops.</summary>
    public BadVideoPolicy BadVideos { get; init; } = BadVideoPolicy.Skip;

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        if (Step < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(Step), Step, "Step must be at least 1 frame.");
        }

        if (StepSeconds is double s && (!double.IsFinite(s) || !(s > 0)))
        {
            throw new ArgumentOutOfRangeException(nameof(StepSeconds), s, "StepSeconds must be positive, or null to step in frames.");
        }

        if (BatchSize < 1 || Workers < 1)
        {
            throw new ArgumentOutOfRangeException(BatchSize < 1 ? nameof(BatchSize) : nameof(Workers), BatchSize < 1 ? BatchSize : Workers, "BatchSize and Workers must be at least 1.");
        }

        if (!Enum.IsDefined(BadVideos))
        {
            throw new ArgumentOutOfRangeException(nameof(BadVideos), BadVideos, "Unknown policy.");
        }
    }
}

/// <summary>One window of a video: its first frame and its span in seconds.</summary>
/// <param name="StartFrame">The window's first frame (stored-frame index).</param>
/// <param name="StartSeconds">The presentation time of its first frame, from the video's first frame.</param>
/// <param name="EndSeconds">The time after its last frame (that frame's time plus one frame at the nominal rate).</param>
public readonly record struct VideoWindow(int StartFrame, double StartSeconds, double EndSeconds)
{
    /// <summary>"12.40-14.96".</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{StartSeconds:0.00}-{EndSeconds:0.00}");
}

/// <summary>The dense features of one video: a feature row per window, with the windows' times.</summary>
public sealed class WindowFeatures
{
    internal WindowFeatures(string path, string key, double framesPerSecond, int frames, IReadOnlyList<VideoWindow> windows, int dim, float[] features)
    {
        Path = path;
        Key = key;
        FramesPerSecond = framesPerSecond;
        Frames = frames;
        Windows = windows;
        Dim = dim;
        Features = features;
    }

    /// <summary>The video file.</summary>
    public string Path { get; }

    /// <summary>Its key (relative path, as embedding sets key videos).</summary>
    public string Key { get; }

    /// <summary>The frame rate the container reports (0 when unknown).</summary>
    public double FramesPerSecond { get; }

    /// <summary>Frames decoded.</summary>
    public int Frames { get; }

    /// <summary>The windows, in order.</summary>
    public IReadOnlyList<VideoWindow> Windows { get; }

    /// <summary>Feature dimension.</summary>
    public int Dim { get; }

    /// <summary>The features, row-major <c>[windows, dim]</c> (float32).</summary>
    public float[] Features { get; }

    /// <summary>Window <paramref name="index"/>'s feature.</summary>
    public ReadOnlySpan<float> this[int index] => Features.AsSpan(index * Dim, Dim);
}

/// <summary>
/// Keys of window items in an embedding set: the video's key, '@', and the window's span in seconds
/// (<c>match.mp4@75.00-78.52</c>), so that a set of windows is an ordinary <see cref="EmbeddingSet"/> and a query can
/// name a span the same way.
/// </summary>
public static class MomentKey
{
    /// <summary>The key of a window of video <paramref name="video"/>.</summary>
    public static string Format(string video, double startSeconds, double endSeconds) =>
        string.Create(CultureInfo.InvariantCulture, $"{video}@{startSeconds:0.00}-{endSeconds:0.00}");

    /// <summary>Splits "video@start-end" (the last '@'); false for a key without a span.</summary>
    public static bool TryParse(string key, out string video, out double startSeconds, out double endSeconds)
    {
        ArgumentNullException.ThrowIfNull(key);
        video = key;
        startSeconds = endSeconds = 0;
        int at = key.LastIndexOf('@');
        if (at <= 0)
        {
            return false;
        }

        string span = key[(at + 1)..];
        int dash = span.IndexOf('-', 1);
        if (dash < 0
            || !double.TryParse(span[..dash], NumberStyles.Float, CultureInfo.InvariantCulture, out startSeconds)
            || !double.TryParse(span[(dash + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out endSeconds)
            || !(endSeconds >= startSeconds) || startSeconds < 0)
        {
            startSeconds = endSeconds = 0;
            return false;
        }

        video = key[..at];
        return true;
    }
}

/// <summary>
/// Decodes one video front to back, once, and cuts it into windows: each frame is resized on its short side and
/// centre-cropped as the test views are (<see cref="ViewGeometry"/>), kept in a ring of the last frames a window spans,
/// and each window is handed on as planar RGB <c>[3, T, S, S]</c> as soon as its last frame is decoded. A video shorter
/// than one window gives one window whose frames wrap around, as the clip samplers' do.
/// </summary>
internal sealed class WindowCutter(TestViewOptions views, WindowOptions options)
{
    private readonly int _t = views.FramesPerClip;
    private readonly int _stride = views.Stride;
    private readonly int _s = views.CropSize;

    /// <summary>Bytes of one window.</summary>
    public int WindowBytes => 3 * _t * _s * _s;

    /// <summary>Cuts <paramref name="path"/>; <paramref name="emit"/> receives each window's bytes (a new array) and times.</summary>
    /// <returns>The frame rate and the frames decoded.</returns>
    public (double Fps, int Frames) Cut(string path, Action<byte[], VideoWindow> emit, CancellationToken cancellationToken)
    {
        using var reader = VideoReader.Open(path, views.Reader with { Seek = SeekMode.Sequential });
        int h = reader.Info.OutputHeight;
        int w = reader.Info.OutputWidth;
        var (rh, rw) = ViewGeometry.ShortSideSize(h, w, views.ShortSide);
        var box = ViewGeometry.CenterCropBox(rh, rw, _s, _s);
        int span = ((_t - 1) * _stride) + 1;
        int plane = _s * _s;
        var ring = new byte[span][];
        var times = new double[span];
        var resized = new byte[3 * rh * rw];
        double fps = double.IsFinite(reader.Info.FramesPerSecond) && reader.Info.FramesPerSecond > 0 ? reader.Info.FramesPerSecond : 0;
        double frameSeconds = fps > 0 ? 1 / fps : 0;
        var starts = new Queue<(int Frame, double Seconds)>();
        int nextStep = 0;
        int frames = 0;
        int emitted = 0;
        reader.ForEachFramePlanar(
            (index, seconds, planar) =>
            {
                cancellationToken.ThrowIfCancellationRequested();
                var slot = ring[index % span] ??= new byte[3 * plane];
                ViewGeometry.ResizedCrop(planar, resized, PixelDepth.UInt8, 3, h, w, CropBox.Full(h, w), rh, rw);
                ViewGeometry.ResizedCrop(resized, slot, PixelDepth.UInt8, 3, rh, rw, box, _s, _s);
                times[index % span] = seconds;
                frames = index + 1;

                // Does a window start here?
                bool start = options.StepSeconds is double step
                    ? seconds >= (nextStep * step) - 1e-9
                    : index % options.Step == 0;
                if (start)
                {
                    starts.Enqueue((index, seconds));
                    nextStep = options.StepSeconds is double st ? (int)Math.Floor((seconds / st) + 1e-9) + 1 : nextStep;
                }

                // Does a window end here?
                while (starts.Count > 0 && starts.Peek().Frame + span - 1 == index)
                {
                    var (first, startSeconds) = starts.Dequeue();
                    emit(Assemble(ring, first, span, plane, frames), new VideoWindow(first, startSeconds, seconds + frameSeconds));
                    emitted++;
                }

                while (starts.Count > 0 && starts.Peek().Frame + span - 1 < index)
                {
                    starts.Dequeue(); // cannot happen in order, kept for safety
                }
            },
            cancellationToken);

        if (emitted == 0 && frames > 0)
        {
            // Shorter than one window: one window from the start, its frames wrapping around (every frame is in the ring).
            emit(Assemble(ring, 0, span, plane, frames), new VideoWindow(0, times[0], times[(frames - 1) % span] + frameSeconds));
        }

        return (fps, frames);
    }

    private byte[] Assemble(byte[][] ring, int first, int span, int plane, int frames)
    {
        var window = new byte[WindowBytes];
        for (int t = 0; t < _t; t++)
        {
            int frame = (first + (t * _stride)) % Math.Max(frames, 1);
            var source = ring[frame % span];
            for (int c = 0; c < 3; c++)
            {
                source.AsSpan(c * plane, plane).CopyTo(window.AsSpan(((c * _t) + t) * plane, plane));
            }
        }

        return window;
    }
}

/// <summary>
/// The pipeline of dense features: videos decoded on worker threads, each front to back, their windows queued (a
/// bounded queue, so memory stays at a few batches), encoded in batches across videos on the calling thread, and each
/// video's features handed back in input order once all its windows are encoded.
/// </summary>
internal sealed class WindowRun(TestViewOptions views, WindowOptions options, Func<byte[], int, bool, float[]> encode)
{
    private sealed record Item(int Video, int Window, byte[]? Bytes, VideoWindow Span, VideoDone? Done);

    private sealed record VideoDone(double Fps, int Frames, int Windows, Exception? Error);

    public IEnumerable<(int Index, WindowFeatures? Features, SkippedVideo? Skipped)> Run(IReadOnlyList<EmbeddingInput> videos, IProgress<StageProgress>? progress, CancellationToken cancellationToken)
    {
        var cutter = new WindowCutter(views, options);
        using var queue = new BlockingCollection<Item>(Math.Max(2 * options.BatchSize, options.Workers * 2));
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        int next = -1;
        int workerCount = Math.Min(options.Workers, Math.Max(videos.Count, 1));
        int running = workerCount;
        var workers = Enumerable.Range(0, workerCount).Select(_ => Task.Run(() =>
        {
            try
            {
                int v;
                while ((v = Interlocked.Increment(ref next)) < videos.Count && !stop.IsCancellationRequested)
                {
                    int count = 0;
                    VideoDone done;
                    try
                    {
                        int video = v;
                        var (fps, frames) = cutter.Cut(videos[v].Path, (bytes, span) => queue.Add(new Item(video, count++, bytes, span, null), stop.Token), stop.Token);
                        done = new VideoDone(fps, frames, count, null);
                    }
                    catch (Exception e) when (e is VideoDecodeException or IOException)
                    {
                        done = new VideoDone(0, 0, count, e);
                    }

                    queue.Add(new Item(v, -1, null, default, done), stop.Token);
                }
            }
            catch (OperationCanceledException)
            {
                // The run was stopped; the consumer reports it.
            }
            finally
            {
                if (Interlocked.Decrement(ref running) == 0)
                {
                    queue.CompleteAdding();
                }
            }
        })).ToList();

        var watch = System.Diagnostics.Stopwatch.StartNew();
        var rows = new Dictionary<int, List<(int Window, VideoWindow Span, float[] Row)>>();
        var done = new Dictionary<int, VideoDone>();
        var pending = new List<Item>();
        int dim = 0;
        int yielded = 0;
        int windowBytes = cutter.WindowBytes;
        var ready = new SortedDictionary<int, (WindowFeatures? Features, SkippedVideo? Skipped)>();
        try
        {
            void Flush()
            {
                if (pending.Count == 0)
                {
                    return;
                }

                var batch = new byte[pending.Count * windowBytes];
                for (int j = 0; j < pending.Count; j++)
                {
                    pending[j].Bytes!.CopyTo(batch, j * windowBytes);
                }

                float[] features = encode(batch, pending.Count, options.Normalize);
                dim = features.Length / pending.Count;
                for (int j = 0; j < pending.Count; j++)
                {
                    if (!rows.TryGetValue(pending[j].Video, out var list))
                    {
                        rows[pending[j].Video] = list = [];
                    }

                    list.Add((pending[j].Window, pending[j].Span, features.AsSpan(j * dim, dim).ToArray()));
                }

                pending.Clear();
            }

            void Complete()
            {
                foreach (var (v, d) in done.ToList())
                {
                    int have = rows.TryGetValue(v, out var list) ? list.Count : 0;
                    if (have < d.Windows)
                    {
                        continue;
                    }

                    done.Remove(v);
                    rows.Remove(v);
                    if (d.Error is not null)
                    {
                        string reason = d.Error is VideoDecodeException e ? e.Detail : d.Error.Message;
                        if (options.BadVideos == BadVideoPolicy.Fail)
                        {
                            throw d.Error;
                        }

                        ready[v] = (null, new SkippedVideo(videos[v].Path, reason));
                        continue;
                    }

                    var ordered = (list ?? []).OrderBy(r => r.Window).ToList();
                    var flat = new float[ordered.Count * dim];
                    for (int k = 0; k < ordered.Count; k++)
                    {
                        ordered[k].Row.CopyTo(flat, k * dim);
                    }

                    ready[v] = (new WindowFeatures(videos[v].Path, videos[v].Key, d.Fps, d.Frames, [.. ordered.Select(r => r.Span)], dim, flat), null);
                }
            }

            // The videos whose windows are all encoded, handed back in input order.
            IEnumerable<(int Index, WindowFeatures? Features, SkippedVideo? Skipped)> Completed()
            {
                Complete();
                while (ready.Count > 0 && ready.First().Key == yielded)
                {
                    var (features, skipped) = ready[yielded];
                    ready.Remove(yielded);
                    progress?.Report(new StageProgress("windows", yielded + 1, videos.Count, watch.Elapsed));
                    yield return (yielded, features, skipped);
                    yielded++;
                }
            }

            foreach (var item in queue.GetConsumingEnumerable(cancellationToken))
            {
                if (item.Done is { } d)
                {
                    done[item.Video] = d;
                }
                else
                {
                    pending.Add(item);
                }

                if (pending.Count >= options.BatchSize || (queue.Count == 0 && pending.Count > 0 && done.Count > 0))
                {
                    Flush();
                }

                foreach (var result in Completed())
                {
                    yield return result;
                }
            }

            Flush();
            foreach (var result in Completed())
            {
                yield return result;
            }

            cancellationToken.ThrowIfCancellationRequested();
        }
        finally
        {
            stop.Cancel();
            while (queue.TryTake(out _))
            {
                // Unblock workers waiting to add.
            }

            Task.WaitAll([.. workers]);
        }
    }
}
