using System.Diagnostics;
using System.Globalization;
using OpenCvSharp;

namespace Cvrl.Video;

/// <summary>
/// Reads exact frames of a video file through OpenCV's FFmpeg backend into planar RGB uint8 clips <c>[3, T, H, W]</c>
/// (byte arrays here; Cvrl.Augment adds <c>ReadClip</c>/<c>ReadClips</c> that return TorchSharp tensors). Frame indices
/// count decoded frames from 0 in presentation order ("stored frames").
/// </summary>
/// <remarks>
/// <para>
/// Frames ahead are reached by seeking to an earlier key frame where that was verified to be exact for the file
/// (<see cref="SeekMode.Auto"/>, the default: the file's <see cref="VideoTimeline"/> says <see cref="FrameAccess.Seek"/>),
/// and by decoding forward otherwise, which is exact for every codec; OpenCV's frame-index seek on its own is not
/// (opencv#9053). Prepared videos (<see cref="PreparedVideo"/>) are read frame by frame, directly. Container frame counts can be wrong: <see cref="FrameCount"/>
/// starts as the container's count and is corrected as soon as decoding reaches the real end, and a request past the
/// real end throws <see cref="VideoDecodeException"/> with <see cref="VideoDecodeFailure.FrameOutOfRange"/> and the
/// real count, so no frame is ever invented. OpenCV decodes to BGR; the reader converts to RGB here, once.
/// </para>
/// <para>Not thread-safe: use one reader per thread. Dispose it to release the decoder.</para>
/// </remarks>
public sealed class VideoReader : IDisposable
{
    private const int CapPropOpenTimeoutMsec = 53;
    private const int CapPropReadTimeoutMsec = 54;
    private const int CapPropThreads = 70;

    private const int CapPropLastPacketIsKeyFrame = 67;

    /// <summary>Frames OpenCV's seek decodes before the frame asked for (its fixed lead, cap_ffmpeg_impl.hpp).</summary>
    private const int OpenCvSeekLead = 16;

    /// <summary>How far (in frames) a timestamp may lie from its grid position and still identify that frame.</summary>
    private const double GridTolerance = 0.25;

    private readonly VideoReaderOptions _options;
    private readonly Mat _frame = new();
    private readonly Mat _resized = new();
    private readonly PreparedVideoFile? _prepared;
    private VideoCapture? _capture;
    private int _position; // index of the next frame the decoder will produce
    private int? _verifiedFrameCount;
    private double _firstPtsMs = double.NaN;
    private bool _seekAllowed;
    private bool _disposed;

    private VideoReader(string path, VideoReaderOptions options, VideoCapture? capture, PreparedVideoFile? prepared, VideoInfo info, VideoTimeline? timeline)
    {
        Path = path;
        _options = options;
        _capture = capture;
        _prepared = prepared;
        Info = info;
        Timeline = timeline;
        if (prepared is not null)
        {
            _verifiedFrameCount = prepared.Header.Frames;
        }
        else if (timeline is not null)
        {
            _verifiedFrameCount = timeline.FrameCount;
        }

        _seekAllowed = prepared is null && options.Seek switch
        {
            SeekMode.KeyframeVerified => true,
            SeekMode.Auto => timeline?.Access == FrameAccess.Seek,
            _ => false,
        };
    }

    /// <summary>The file being read.</summary>
    public string Path { get; }

    /// <summary>What the container reports, plus the output size after the optional decode-time resize.</summary>
    public VideoInfo Info { get; }

    /// <summary>
    /// The number of frames: the decoded count once known (see <see cref="IsFrameCountVerified"/>), else the container's
    /// count. A container that reports no usable count (zero, negative, or more than
    /// <see cref="VideoReaderOptions.MaxFrames"/>) is counted when the reader opens. A plausible but wrong count is only
    /// corrected when decoding reaches the real end; <c>VideoDataset.Verify</c> (Cvrl's video index) establishes real
    /// counts up front. Always at least 1 for an open reader.
    /// </summary>
    public int FrameCount => _verifiedFrameCount ?? Math.Max(1, Info.ReportedFrameCount);

    /// <summary>True once decoding (or the file's <see cref="Timeline"/>) has established the real frame count.</summary>
    public bool IsFrameCountVerified => _verifiedFrameCount.HasValue;

    /// <summary>
    /// What an earlier pass established about this file (given to <see cref="Open(string, VideoReaderOptions?, VideoTimeline?)"/>
    /// or registered with <see cref="VideoTimeline.Register"/>), or null. For a prepared video, its own
    /// <see cref="FrameAccess.Direct"/> timeline.
    /// </summary>
    public VideoTimeline? Timeline { get; }

    /// <summary>How this reader reaches frames ahead: directly, by verified seeking, or by decoding forward.</summary>
    public FrameAccess Access => _prepared is not null ? FrameAccess.Direct : _seekAllowed ? FrameAccess.Seek : FrameAccess.Sequential;

    /// <summary>
    /// Frames this reader decoded so far: video frames grabbed (frames OpenCV decodes inside a seek are not visible and
    /// not counted), or prepared frames decoded.
    /// </summary>
    public long FramesDecoded { get; private set; }

    /// <summary>Seeks that landed where they were verified to land.</summary>
    public int Seeks { get; private set; }

    /// <summary>Seeks abandoned because a landing could not be verified (the reader then decoded forward; results are unaffected).</summary>
    public int SeekFallbacks { get; private set; }

    /// <summary>Opens a video and decodes its first frame to make sure it is readable.</summary>
    /// <param name="path">The video file (any container and codec OpenCV's FFmpeg backend reads, or a prepared <c>.cvrlvid</c> file).</param>
    /// <param name="options">Reader options (validated here); null for <see cref="VideoReaderOptions.Default"/>.</param>
    /// <param name="timeline">
    /// What an earlier pass over this file established (its index's <see cref="VideoTimeline"/>); null to use the one
    /// registered for the unchanged file (<see cref="VideoTimeline.Register"/>), if any. Its frame count is trusted, and
    /// with <see cref="SeekMode.Auto"/> it decides whether the reader seeks.
    /// </param>
    /// <returns>An open reader owned by the caller.</returns>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    /// <exception cref="VideoDecodeException">The file is missing, empty, not a readable video, or has no decodable frame.</exception>
    /// <exception cref="DllNotFoundException">OpenCV's native runtime cannot be loaded; the message says why.</exception>
    public static VideoReader Open(string path, VideoReaderOptions? options = null, VideoTimeline? timeline = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        options ??= VideoReaderOptions.Default;
        options.Validate();
        string full = System.IO.Path.GetFullPath(path);
        var file = new FileInfo(full);
        if (!file.Exists)
        {
            throw new VideoDecodeException(full, Directory.Exists(full) ? VideoDecodeFailure.CannotOpen : VideoDecodeFailure.FileNotFound,
                Directory.Exists(full) ? "it is a folder, not a video file" : "the file does not exist");
        }

        if (file.Length == 0)
        {
            throw new VideoDecodeException(full, VideoDecodeFailure.EmptyFile, "the file is empty (0 bytes)");
        }

        RequireReadable(full);
        OpenCvNative.EnsureLoaded();
        if (PreparedVideo.IsPrepared(full))
        {
            return OpenPrepared(full, options);
        }

        timeline ??= VideoTimeline.Find(file);
        if (timeline is not null && timeline.FrameCount < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(timeline), timeline.FrameCount, "A timeline's FrameCount must be at least 1.");
        }

        var capture = OpenCapture(full, options);
        VideoInfo info;
        try
        {
            info = WithOutputSize(new VideoInfo(full, capture.FrameWidth, capture.FrameHeight, capture.Fps, capture.FrameCount, SafeFourCc(capture)), options);
        }
        catch
        {
            capture.Dispose();
            throw;
        }

        var reader = new VideoReader(full, options, capture, null, info, timeline);
        try
        {
            reader.Initialise();
        }
        catch
        {
            reader.Dispose();
            throw;
        }

        return reader;
    }

    /// <summary>Counts frames by decoding the whole file (bounded by the options' limits) and returns the count.</summary>
    /// <exception cref="VideoDecodeException">Decoding exceeded <see cref="VideoReaderOptions.Timeout"/> or <see cref="VideoReaderOptions.MaxFrames"/>.</exception>
    public int CountFrames()
    {
        ThrowIfDisposed();
        if (_verifiedFrameCount is int known)
        {
            return known;
        }

        var watch = Stopwatch.StartNew();
        while (GrabNext(watch))
        {
        }

        return _verifiedFrameCount!.Value;
    }

    /// <summary>
    /// Decodes the whole file once, front to back, and returns what that establishes: the real frame count, whether
    /// seeking in this file returns exactly the frames decoding forward does (every frame's timestamp lies on the
    /// constant-rate grid at its own position, and trial seeks to two frames far into the file, made with a seeking
    /// reader, return the same pixels as this pass), the mean key-frame interval, and what a seek costs here compared
    /// with decoding one frame.
    /// </summary>
    /// <param name="cancellationToken">Stops between frames.</param>
    /// <returns>The file's timeline (for a prepared video, its direct-access timeline at once).</returns>
    /// <exception cref="VideoDecodeException">Decoding exceeded a limit.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public VideoTimeline Measure(CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        if (_prepared is not null)
        {
            return Timeline!;
        }

        // Measuring means counting: a count known from a timeline is not trusted here. `watch` is the per-frame timeout
        // (GrabNext restarts it on every frame); `decoding` times the whole pass, for the cost of one frame.
        var watch = Stopwatch.StartNew();
        var decoding = Stopwatch.StartNew();
        _verifiedFrameCount = null;
        if (_position != 1)
        {
            Rewind();
            GrabNext(watch);
        }

        double frameMs = FrameMs;
        string? offGrid = double.IsNaN(frameMs) ? "the container gives no frame rate or no first timestamp" : null;
        int keys = KeyFlag() ? 1 : 0;
        int untimedFrom = -1;

        // Trial frames far enough into the file that reading them seeks (planned from the claimed count; frames that turn
        // out not to exist are not tried).
        int claimed = Info.ReportedFrameCount;
        int lead = 2 * OpenCvSeekLead;
        int[] probes = claimed > 4 * lead ? [claimed / 2, claimed - 1 - lead] : [];
        var expected = new Dictionary<int, byte[]>();
        long plane = (long)Info.OutputHeight * Info.OutputWidth;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!GrabNext(watch))
            {
                break;
            }

            int index = _position - 1;
            keys += KeyFlag() ? 1 : 0;
            if (offGrid is null)
            {
                double pts = _capture!.Get(VideoCaptureProperties.PosMsec);
                double at = GridPosition(pts, frameMs);
                if (pts == 0 && _firstPtsMs != 0 && untimedFrom < 0)
                {
                    // No timestamp (OpenCV reports 0): acceptable only for the last few frames a decoder flushes at the
                    // end (B-frames in AVI); a seeking reader never lands on them, it decodes forward to them.
                    untimedFrom = index;
                }
                else if (untimedFrom >= 0 && pts != 0)
                {
                    offGrid = string.Create(CultureInfo.InvariantCulture, $"frame {untimedFrom} has no timestamp");
                }
                else if (untimedFrom < 0 && (!double.IsFinite(pts) || Math.Abs(at - index) > GridTolerance))
                {
                    offGrid = string.Create(CultureInfo.InvariantCulture, $"frame {index} has timestamp {pts:0.###} ms, {(_firstPtsMs + (index * frameMs)):0.###} ms on the constant {Info.FramesPerSecond:0.###} fps grid (variable frame rate, missing frames or no timestamps)");
                }
            }

            if (Array.IndexOf(probes, index) >= 0 && offGrid is null)
            {
                var bytes = new byte[3 * plane];
                RetrieveInto(bytes, 0, 1);
                expected[index] = bytes;
            }
        }

        int frames = _verifiedFrameCount!.Value;
        if (offGrid is null && untimedFrom >= 0 && frames - untimedFrom > 4)
        {
            offGrid = string.Create(CultureInfo.InvariantCulture, $"frames {untimedFrom} to {frames - 1} have no timestamps");
        }

        double msPerFrame = decoding.Elapsed.TotalMilliseconds / Math.Max(1, frames);
        int interval = keys > 0 ? (int)Math.Round((double)frames / keys) : 0;
        var timeline = new VideoTimeline { FrameCount = frames, KeyFrameInterval = interval };
        if (offGrid is not null)
        {
            return timeline with { Access = FrameAccess.Sequential, Note = offGrid };
        }

        timeline = timeline with { Access = FrameAccess.Seek };
        double slowest = 0;
        foreach (var (index, bytes) in expected)
        {
            // Each trial seek twice, on fresh readers, keeping the faster: a pause of the process (another job on the
            // cores) during one seek would otherwise be taken for the price of every seek in this file.
            double fastest = double.PositiveInfinity;
            for (int repeat = 0; repeat < 2; repeat++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var trial = Open(Path, _options with { Seek = SeekMode.Auto, CountFramesOnOpen = false, SeekThreshold = 1 }, timeline);
                var time = Stopwatch.StartNew();
                byte[] seen = trial.ReadClipBytes([[index]])[0];
                fastest = Math.Min(fastest, time.Elapsed.TotalMilliseconds);
                if (trial.Seeks == 0 || !seen.AsSpan().SequenceEqual(bytes))
                {
                    string why = trial.Seeks == 0 ? "could not be verified" : "returned other pixels than decoding forward";
                    return timeline with { Access = FrameAccess.Sequential, Note = string.Create(CultureInfo.InvariantCulture, $"a trial seek to frame {index} {why}") };
                }
            }

            slowest = Math.Max(slowest, fastest);
        }

        // A seek pays when the frame is further ahead than the frames that could be decoded in the time a seek took.
        int cost = expected.Count > 0 && msPerFrame > 0 ? (int)Math.Clamp(Math.Ceiling(slowest / msPerFrame), OpenCvSeekLead, int.MaxValue / 2) : 0;
        return timeline with { SeekCostFrames = cost };
    }

    /// <summary>
    /// Decodes several clips in one forward pass over the file into caller-provided buffers: clip k, planar RGB uint8
    /// <c>[3, T_k, H, W]</c> with H x W = <see cref="VideoInfo.OutputHeight"/> x <see cref="VideoInfo.OutputWidth"/>,
    /// holding the frames <paramref name="clips"/>[k] in the order given (repeats allowed), goes to
    /// <paramref name="destination"/>(k), which must be exactly 3 x T_k x H x W bytes.
    /// </summary>
    /// <param name="clips">One array of frame indices per clip; each non-empty.</param>
    /// <param name="destination">Returns the buffer of clip k (called once per decoded frame; return the same memory each time).</param>
    /// <exception cref="ArgumentException">No clips, an empty clip, or a buffer of the wrong size.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An index is negative.</exception>
    /// <exception cref="VideoDecodeException">
    /// An index is past the last decodable frame (<see cref="VideoDecodeFailure.FrameOutOfRange"/>, with the real count),
    /// frames changed size, or a limit was exceeded.
    /// </exception>
    public void ReadClipsInto(IReadOnlyList<int[]> clips, ClipBuffer destination)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(clips);
        ArgumentNullException.ThrowIfNull(destination);
        if (clips.Count == 0 || clips.Any(c => c is null || c.Length == 0))
        {
            throw new ArgumentException("At least one clip with at least one frame index is required.", nameof(clips));
        }

        var requests = new List<(int Frame, int Clip, int Slot)>();
        for (int k = 0; k < clips.Count; k++)
        {
            for (int t = 0; t < clips[k].Length; t++)
            {
                int i = clips[k][t];
                ArgumentOutOfRangeException.ThrowIfNegative(i, nameof(clips));
                if (_verifiedFrameCount is int count && i >= count)
                {
                    throw OutOfRange(i, count);
                }

                requests.Add((i, k, t));
            }
        }

        requests.Sort((a, b) => a.Frame != b.Frame ? a.Frame.CompareTo(b.Frame) : a.Clip != b.Clip ? a.Clip.CompareTo(b.Clip) : a.Slot.CompareTo(b.Slot));
        var watch = Stopwatch.StartNew();
        (int Clip, int Slot) previous = (-1, -1);
        int previousFrame = -1;
        foreach (var (frame, clip, slot) in requests)
        {
            var buffer = Buffer(destination, clip, clips[clip].Length);
            if (frame == previousFrame)
            {
                var from = Buffer(destination, previous.Clip, clips[previous.Clip].Length);
                CopySlot(from, clips[previous.Clip].Length, previous.Slot, buffer, clips[clip].Length, slot);
                continue;
            }

            MoveTo(frame, watch);
            RetrieveInto(buffer, slot, clips[clip].Length);
            previousFrame = frame;
            previous = (clip, slot);
        }
    }

    /// <summary>Decodes several clips (see <see cref="ReadClipsInto"/>) into new byte arrays, one per clip.</summary>
    /// <inheritdoc cref="ReadClipsInto" path="/exception"/>
    public byte[][] ReadClipBytes(IReadOnlyList<int[]> clips)
    {
        ArgumentNullException.ThrowIfNull(clips);
        long plane = (long)Info.OutputHeight * Info.OutputWidth;
        var outputs = clips.Select(c => new byte[3 * (c?.Length ?? 0) * plane]).ToArray();
        ReadClipsInto(clips, k => outputs[k]);
        return outputs;
    }

    /// <summary>
    /// Plans clips from the frame count and decodes them with <paramref name="read"/>. When the container over-reported
    /// its length (or its last packets do not decode), the clips are planned again from the real count, up to three
    /// times, so the result depends only on the decodable frames.
    /// </summary>
    /// <typeparam name="T">What <paramref name="read"/> returns (byte arrays, tensors, ...).</typeparam>
    /// <param name="plan">Returns the clips' frame indices for a frame count; called again after a correction.</param>
    /// <param name="read">Decodes the planned clips with this reader (for example with <see cref="ReadClipBytes"/>); on failure it must release what it allocated.</param>
    /// <param name="knownFrameCount">A count established earlier, or null for <see cref="FrameCount"/>.</param>
    /// <returns>What <paramref name="read"/> returned and the frame count the clips were planned from.</returns>
    /// <exception cref="VideoDecodeException">The video cannot be decoded.</exception>
    public (T Clips, int FrameCount) ReadPlanned<T>(Func<int, IReadOnlyList<int[]>> plan, Func<IReadOnlyList<int[]>, T> read, int? knownFrameCount = null)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(read);
        int frames = knownFrameCount ?? FrameCount;
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                var clips = plan(frames);
                RequireMemoryFor(clips);
                return (read(clips), frames);
            }
            catch (VideoDecodeException e) when (e.Failure == VideoDecodeFailure.FrameOutOfRange && e.DecodableFrames is int real && real > 0 && real < frames && attempt < 3)
            {
                frames = real;
            }
        }
    }

    /// <summary>
    /// Refuses to decode <paramref name="clips"/> when holding their frames (planar RGB bytes at the output size) would
    /// exceed <see cref="MemoryBudget.LimitBytes"/>, before any of them is decoded.
    /// </summary>
    /// <exception cref="VideoDecodeException"><see cref="VideoDecodeFailure.TooLarge"/>.</exception>
    public void RequireMemoryFor(IReadOnlyList<int[]> clips)
    {
        ArgumentNullException.ThrowIfNull(clips);
        long frames = clips.Sum(c => (long)c.Length);
        long bytes = MemoryBudget.Product(frames, 3, Info.OutputHeight, Info.OutputWidth);
        if (!MemoryBudget.Fits(bytes))
        {
            throw new VideoDecodeException(Path, VideoDecodeFailure.TooLarge, $"{clips.Count} clip(s) of {frames} frames in all at {Info.OutputWidth}x{Info.OutputHeight} need {MemoryBudget.Describe(bytes)}, more than the {MemoryBudget.Describe(MemoryBudget.LimitBytes)} input data may take (MemoryBudget, CVRL_INPUT_MEMORY)");
        }
    }

    /// <summary>Releases the decoder.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _capture?.Dispose();
        _prepared?.Dispose();
        _frame.Dispose();
        _resized.Dispose();
    }

    /// <summary>Throws <see cref="VideoDecodeFailure.Unreadable"/> when the file cannot be opened for reading (OpenCV would only say it is not a video).</summary>
    private static void RequireReadable(string full)
    {
        try
        {
            using var probe = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new VideoDecodeException(full, VideoDecodeFailure.Unreadable, "the file cannot be read (permission denied)", inner: e);
        }
        catch (IOException e)
        {
            throw new VideoDecodeException(full, VideoDecodeFailure.Unreadable, $"the file cannot be read ({e.Message})", inner: e);
        }
    }

    private static VideoCapture OpenCapture(string path, VideoReaderOptions options)
    {
        int timeoutMs = (int)Math.Min(int.MaxValue, options.Timeout.TotalMilliseconds);
        int[] parameters =
        [
            CapPropOpenTimeoutMsec, timeoutMs,
            CapPropReadTimeoutMsec, timeoutMs,
            CapPropThreads, options.DecoderThreads,
        ];

        VideoCapture capture;
        try
        {
            capture = new VideoCapture(path, VideoCaptureAPIs.FFMPEG, parameters);
        }
        catch (OpenCVException e)
        {
            throw new VideoDecodeException(path, VideoDecodeFailure.CannotOpen, "OpenCV's FFmpeg backend could not open it: " + e.Message, null, e);
        }

        if (!capture.IsOpened())
        {
            capture.Dispose();
            throw new VideoDecodeException(path, VideoDecodeFailure.CannotOpen,
                "OpenCV's FFmpeg backend could not open it (not a video file, or an unsupported container or codec)");
        }

        return capture;
    }

    private static string SafeFourCc(VideoCapture capture)
    {
        try
        {
            string code = capture.FourCC ?? string.Empty;
            return code.All(c => c >= ' ' && c <= '~') ? code.Trim() : string.Empty;
        }
        catch (OpenCVException)
        {
            return string.Empty;
        }
    }

    private static VideoReader OpenPrepared(string full, VideoReaderOptions options)
    {
        var prepared = PreparedVideoFile.Open(full, options);
        try
        {
            var h = prepared.Header;
            var info = WithOutputSize(new VideoInfo(full, h.Width, h.Height, h.FramesPerSecond, h.Frames, "CVRL-" + h.Encoding.ToString().ToUpperInvariant()), options);
            var timeline = new VideoTimeline { FrameCount = h.Frames, Access = FrameAccess.Direct, KeyFrameInterval = 1 };
            return new VideoReader(full, options, null, prepared, info, timeline);
        }
        catch
        {
            prepared.Dispose();
            throw;
        }
    }

    /// <summary>The info with the output size the options ask for; refuses frames larger than <see cref="VideoReaderOptions.MaxFramePixels"/>.</summary>
    private static VideoInfo WithOutputSize(VideoInfo info, VideoReaderOptions options)
    {
        if ((long)info.Width * info.Height > options.MaxFramePixels)
        {
            throw new VideoDecodeException(info.Path, VideoDecodeFailure.TooLarge, string.Create(CultureInfo.InvariantCulture, $"its frames are {info.Width}x{info.Height}, more than the {options.MaxFramePixels:N0} pixels VideoReaderOptions.MaxFramePixels allows"));
        }

        if (options.ShortSide is int shortSide && info.Width > 0 && info.Height > 0)
        {
            var (outH, outW) = ViewGeometry.ShortSideSize(info.Height, info.Width, shortSide);
            return info with { OutputHeight = outH, OutputWidth = outW };
        }

        return info;
    }

    private void Initialise()
    {
        if (Info.Width <= 0 || Info.Height <= 0)
        {
            throw new VideoDecodeException(Path, VideoDecodeFailure.CannotOpen, $"the container reports an invalid frame size {Info.Width}x{Info.Height}");
        }

        var watch = Stopwatch.StartNew();
        if (!GrabNext(watch))
        {
            throw new VideoDecodeException(Path, VideoDecodeFailure.NoDecodableFrames, "no frame could be decoded", 0);
        }

        if (!_capture!.Retrieve(_frame) || _frame.Empty())
        {
            throw new VideoDecodeException(Path, VideoDecodeFailure.NoDecodableFrames, "the first frame could not be retrieved", 0);
        }

        CheckFrame(_frame);
        _firstPtsMs = _capture.Get(VideoCaptureProperties.PosMsec);
        if (Timeline is null && (_options.CountFramesOnOpen || Info.ReportedFrameCount <= 0 || Info.ReportedFrameCount > _options.MaxFrames))
        {
            // A container without a usable count (elementary streams report 0 or a huge negative number): counting is
            // the only way to plan clips over the whole video instead of over one frame. A timeline already knows it.
            CountFrames();
        }
    }

    private void CheckFrame(Mat frame)
    {
        if (frame.Type() != MatType.CV_8UC3)
        {
            throw new VideoDecodeException(Path, VideoDecodeFailure.InconsistentFrames,
                $"decoded frames have pixel type {frame.Type()}, expected 8-bit BGR (CV_8UC3)");
        }

        if (frame.Rows != Info.Height || frame.Cols != Info.Width)
        {
            throw new VideoDecodeException(Path, VideoDecodeFailure.InconsistentFrames,
                $"frame {_position - 1} is {frame.Cols}x{frame.Rows}, the stream declared {Info.Width}x{Info.Height}");
        }
    }

    /// <summary>Whether the packet behind the frame just grabbed carried a key frame (approximate with B-frames; only counted).</summary>
    private bool KeyFlag()
    {
        try
        {
            return _capture!.Get((VideoCaptureProperties)CapPropLastPacketIsKeyFrame) > 0;
        }
        catch (OpenCVException)
        {
            return false;
        }
    }

    /// <summary>
    /// Grabs the frame at <see cref="_position"/>. Returns false at the real end (and records the count). Throws when the
    /// time since <paramref name="watch"/> was last restarted (by the previous frame) exceeds the timeout.
    /// </summary>
    private bool GrabNext(Stopwatch watch)
    {
        if (_verifiedFrameCount is int count && _position >= count)
        {
            return false;
        }

        if (watch.Elapsed > _options.Timeout)
        {
            throw new VideoDecodeException(Path, VideoDecodeFailure.Timeout, $"decoding one frame took longer than {_options.Timeout.TotalSeconds:0.#} s (frame {_position}): the stream stalls");
        }

        if (_position >= _options.MaxFrames)
        {
            throw new VideoDecodeException(Path, VideoDecodeFailure.TooManyFrames, $"more than {_options.MaxFrames} frames (VideoReaderOptions.MaxFrames)");
        }

        if (!_capture!.Grab())
        {
            if (_verifiedFrameCount is int known && _position < known)
            {
                throw new VideoDecodeException(Path, VideoDecodeFailure.InconsistentFrames,
                    $"only {_position} frames decode, but its timeline says {known} (the file changed since it was indexed?)", _position);
            }

            _verifiedFrameCount = _position;
            return false;
        }

        _position++;
        FramesDecoded++;
        watch.Restart(); // the limit is on the time to the next frame, so a long video is never cut short for its length
        return true;
    }

    /// <summary>Decodes every frame from the start, in order, handing each (BGR, at the output size) to <paramref name="onFrame"/>.</summary>
    internal void ForEachFrame(Action<int, Mat> onFrame, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        if (_prepared is not null)
        {
            for (int i = 0; i < _prepared.Header.Frames; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var decoded = _prepared.Decode(i);
                onFrame(i, Resized(decoded));
            }

            return;
        }

        if (_position != 1)
        {
            Rewind();
            if (!GrabNext(Stopwatch.StartNew()))
            {
                throw new VideoDecodeException(Path, VideoDecodeFailure.NoDecodableFrames, "no frame could be decoded", 0);
            }
        }

        var watch = Stopwatch.StartNew();
        int index = 0;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            onFrame(index, Resized(RetrieveCurrent(index)));
            if (!GrabNext(watch))
            {
                return;
            }

            index++;
        }
    }

    /// <summary>
    /// Decodes every frame from the start, in order, handing each to <paramref name="onFrame"/> as planar RGB uint8
    /// <c>[3, H, W]</c> at the output size (a buffer reused for the next frame), with its index and presentation time in
    /// seconds from the first frame: the container's timestamp where it has one (so variable frame rates keep their
    /// times), else the index on the constant-rate grid (prepared videos, streams without timestamps).
    /// </summary>
    internal void ForEachFramePlanar(Action<int, double, ReadOnlySpan<byte>> onFrame, CancellationToken cancellationToken)
    {
        int h = Info.OutputHeight;
        int w = Info.OutputWidth;
        var planar = new byte[3 * h * w];
        double fps = Info.FramesPerSecond;
        double Grid(int index) => double.IsFinite(fps) && fps > 0 ? index / fps : index;
        ForEachFrame(
            (index, frame) =>
            {
                double seconds = Grid(index);
                if (_prepared is null)
                {
                    double pts = _capture!.Get(VideoCaptureProperties.PosMsec);
                    if (double.IsFinite(pts) && double.IsFinite(_firstPtsMs) && (pts != 0 || index == 0))
                    {
                        seconds = (pts - _firstPtsMs) / 1000.0;
                    }
                }

                ToPlanar(frame, planar, h, w);
                onFrame(index, seconds, planar);
            },
            cancellationToken);
    }

    /// <summary>A BGR frame of <paramref name="h"/> x <paramref name="w"/> as planar RGB in <paramref name="planar"/>.</summary>
    private static unsafe void ToPlanar(Mat source, Span<byte> planar, int h, int w)
    {
        long plane = (long)h * w;
        fixed (byte* basePtr = planar)
        {
            using var r = Mat.FromPixelData(h, w, MatType.CV_8UC1, (IntPtr)basePtr);
            using var g = Mat.FromPixelData(h, w, MatType.CV_8UC1, (IntPtr)(basePtr + plane));
            using var b = Mat.FromPixelData(h, w, MatType.CV_8UC1, (IntPtr)(basePtr + (2 * plane)));
            Cv2.MixChannels([source], [r, g, b], [2, 0, 1, 1, 0, 2]);
        }
    }

    /// <summary>Makes frame <paramref name="target"/> the decoder's current (last grabbed) frame.</summary>
    private void MoveTo(int target, Stopwatch watch)
    {
        if (_prepared is not null)
        {
            if (target >= _prepared.Header.Frames)
            {
                throw OutOfRange(target, _prepared.Header.Frames);
            }

            _position = target + 1;
            return;
        }

        if (_position - 1 == target)
        {
            return;
        }

        if (target < _position - 1)
        {
            Rewind();
        }

        if (_seekAllowed && target - _position >= EffectiveSeekThreshold())
        {
            TrySeek(target, watch);
        }

        while (_position - 1 < target)
        {
            if (!GrabNext(watch))
            {
                throw OutOfRange(target, _verifiedFrameCount!.Value);
            }
        }
    }

    /// <summary>
    /// How far ahead a frame must be before seeking pays: an explicit <see cref="VideoReaderOptions.SeekThreshold"/>, else
    /// the seek cost the file's timeline measured, else the expected cost from its key-frame interval (OpenCV's lead plus
    /// half an interval), else 96.
    /// </summary>
    private int EffectiveSeekThreshold() =>
        _options.SeekThreshold
        ?? (Timeline?.SeekCostFrames > 0 ? Timeline.SeekCostFrames
            : Timeline?.KeyFrameInterval > 0 ? OpenCvSeekLead + 8 + (Timeline.KeyFrameInterval / 2)
            : 96);

    /// <summary>
    /// Tries to make frame <paramref name="target"/> the current frame by seeking: OpenCV seeks to an earlier key frame and
    /// decodes forward; the frame it lands on is identified by its timestamp on the constant-rate grid, and every frame up
    /// to the target must step exactly one grid position. A landing after the target (some demuxers seek forward) is
    /// retried further back. On any doubt the reader is put back to a sequential state (reopened at frame 0, or left
    /// untouched when nothing was moved), seeking is given up for this reader, and the caller decodes forward.
    /// </summary>
    private void TrySeek(int target, Stopwatch watch)
    {
        double frameMs = FrameMs;
        if (double.IsNaN(frameMs))
        {
            _seekAllowed = false;
            return;
        }

        int interval = Math.Max(Timeline?.KeyFrameInterval ?? 0, 32);
        int back = 0;
        bool moved = false;
        for (int attempt = 0; attempt < 4; attempt++)
        {
            int request = target - back;
            if (request - Math.Max(_position, 0) < OpenCvSeekLead)
            {
                break;
            }

            moved = true;
            if (!_capture!.Set(VideoCaptureProperties.PosFrames, request) || !_capture.Grab())
            {
                break;
            }

            double exact = GridPosition(_capture.Get(VideoCaptureProperties.PosMsec), frameMs);
            int index = (int)Math.Round(exact);
            if (!double.IsFinite(exact) || Math.Abs(exact - index) > GridTolerance || index < 0)
            {
                break;
            }

            if (index > target)
            {
                // Landed past the target: ask for a point further back (at least one key-frame interval before it).
                back = Math.Max(2 * back, (index - target) + interval);
                _position = -1; // the capture has moved: only a verified landing or a rewind restores a known state
                continue;
            }

            _position = index + 1;
            FramesDecoded++;
            while (_position <= target)
            {
                if (watch.Elapsed > _options.Timeout || !_capture.Grab())
                {
                    Fallback();
                    return;
                }

                double next = GridPosition(_capture.Get(VideoCaptureProperties.PosMsec), frameMs);
                if (Math.Abs(next - _position) > GridTolerance)
                {
                    Fallback();
                    return;
                }

                _position++;
                FramesDecoded++;
            }

            Seeks++;
            return;
        }

        if (moved)
        {
            Fallback();
        }
    }

    /// <summary>The frame duration of the constant-rate grid (ms), or NaN when the container gives no frame rate or first timestamp.</summary>
    private double FrameMs
    {
        get
        {
            double fps = Info.FramesPerSecond;
            return double.IsFinite(fps) && fps > 0 && double.IsFinite(_firstPtsMs) ? 1000.0 / fps : double.NaN;
        }
    }

    /// <summary>Where a timestamp lies on the grid that starts at the first frame's, in frames.</summary>
    private double GridPosition(double ptsMs, double frameMs) => (ptsMs - _firstPtsMs) / frameMs;

    /// <summary>Gives up seeking in this reader and restores a sequential state.</summary>
    private void Fallback()
    {
        SeekFallbacks++;
        _seekAllowed = false;
        Rewind();
    }

    private void Rewind()
    {
        _capture!.Dispose();
        _capture = OpenCapture(Path, _options);
        _position = 0;
    }

    private Span<byte> Buffer(ClipBuffer destination, int clip, int frames)
    {
        var buffer = destination(clip);
        long expected = 3L * frames * Info.OutputHeight * Info.OutputWidth;
        if (buffer.Length != expected)
        {
            throw new ArgumentException($"The buffer of clip {clip} holds {buffer.Length} bytes; [3, {frames}, {Info.OutputHeight}, {Info.OutputWidth}] needs {expected}.", nameof(destination));
        }

        return buffer;
    }

    /// <summary>The current frame (index <paramref name="index"/>) as a stored-size BGR Mat, owned by the reader.</summary>
    private Mat RetrieveCurrent(int index)
    {
        if (_prepared is not null)
        {
            using var decoded = _prepared.Decode(index);
            decoded.CopyTo(_frame);
            FramesDecoded++;
            return _frame;
        }

        if (!_capture!.Retrieve(_frame) || _frame.Empty())
        {
            // The demuxer delivered a packet the decoder cannot turn into a picture: treat it as the real end.
            _verifiedFrameCount = _position - 1;
            throw OutOfRange(_position - 1, _position - 1);
        }

        CheckFrame(_frame);
        return _frame;
    }

    /// <summary><paramref name="frame"/> at the output size (itself, or the reader's resize buffer).</summary>
    private Mat Resized(Mat frame)
    {
        int h = Info.OutputHeight;
        int w = Info.OutputWidth;
        if (h == frame.Rows && w == frame.Cols)
        {
            return frame;
        }

        Cv2.Resize(frame, _resized, new OpenCvSharp.Size(w, h), 0, 0, InterpolationFlags.Linear);
        return _resized;
    }

    private unsafe void RetrieveInto(Span<byte> clip, int slot, int frames)
    {
        Mat source = Resized(RetrieveCurrent(_position - 1));
        int h = Info.OutputHeight;
        int w = Info.OutputWidth;
        long plane = (long)h * w;
        fixed (byte* basePtr = clip)
        {
            using var r = Mat.FromPixelData(h, w, MatType.CV_8UC1, (IntPtr)(basePtr + (((0L * frames) + slot) * plane)));
            using var g = Mat.FromPixelData(h, w, MatType.CV_8UC1, (IntPtr)(basePtr + (((1L * frames) + slot) * plane)));
            using var b = Mat.FromPixelData(h, w, MatType.CV_8UC1, (IntPtr)(basePtr + (((2L * frames) + slot) * plane)));

            // BGR to planar RGB: the one colour-order conversion in Cvrl.
            Cv2.MixChannels([source], [r, g, b], [2, 0, 1, 1, 0, 2]);
        }
    }

    private void CopySlot(Span<byte> fromClip, int fromFrames, int from, Span<byte> toClip, int toFrames, int to)
    {
        int plane = Info.OutputHeight * Info.OutputWidth;
        for (int c = 0; c < 3; c++)
        {
            fromClip.Slice(((c * fromFrames) + from) * plane, plane).CopyTo(toClip.Slice(((c * toFrames) + to) * plane, plane));
        }
    }

    private VideoDecodeException OutOfRange(int index, int count) =>
        new(Path, VideoDecodeFailure.FrameOutOfRange,
            $"frame {index} requested, but only {count} frames decode (the container reports {Info.ReportedFrameCount})", count);

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);
}

/// <summary>Returns the buffer that receives clip <paramref name="clip"/> (see <see cref="VideoReader.ReadClipsInto"/>).</summary>
/// <param name="clip">The clip's position in the request.</param>
public delegate Span<byte> ClipBuffer(int clip);
