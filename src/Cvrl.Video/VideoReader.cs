using System.Diagnostics;
using OpenCvSharp;

namespace Cvrl.Video;

/// <summary>
/// Reads exact frames of a video file through OpenCV's FFmpeg backend into planar RGB uint8 clips <c>[3, T, H, W]</c>
/// (byte arrays here; Cvrl.Augment adds <c>ReadClip</c>/<c>ReadClips</c> that return TorchSharp tensors). Frame indices
/// count decoded frames from 0 in presentation order ("stored frames").
/// </summary>
/// <remarks>
/// <para>
/// Frames are reached by decoding forward (<see cref="SeekMode.Sequential"/>, the default), which is exact for every
/// codec; OpenCV's frame-index seek is not (opencv#9053). Container frame counts can be wrong: <see cref="FrameCount"/>
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

    private readonly VideoReaderOptions _options;
    private readonly Mat _frame = new();
    private readonly Mat _resized = new();
    private VideoCapture _capture;
    private int _position; // index of the next frame the decoder will produce
    private int? _verifiedFrameCount;
    private double _firstPtsMs = double.NaN;
    private bool _disposed;

    private VideoReader(string path, VideoReaderOptions options, VideoCapture capture, VideoInfo info)
    {
        Path = path;
        _options = options;
        _capture = capture;
        Info = info;
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

    /// <summary>True once decoding has established the real frame count.</summary>
    public bool IsFrameCountVerified => _verifiedFrameCount.HasValue;

    /// <summary>Opens a video and decodes its first frame to make sure it is readable.</summary>
    /// <param name="path">The video file (any container and codec OpenCV's FFmpeg backend reads).</param>
    /// <param name="options">Reader options (validated here); null for <see cref="VideoReaderOptions.Default"/>.</param>
    /// <returns>An open reader owned by the caller.</returns>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    /// <exception cref="VideoDecodeException">The file is missing, empty, not a readable video, or has no decodable frame.</exception>
    /// <exception cref="DllNotFoundException">OpenCV's native runtime cannot be loaded; the message says why.</exception>
    public static VideoReader Open(string path, VideoReaderOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        options ??= VideoReaderOptions.Default;
        options.Validate();
        string full = System.IO.Path.GetFullPath(path);
        var file = new FileInfo(full);
        if (!file.Exists)
        {
            throw new VideoDecodeException(full, VideoDecodeFailure.FileNotFound, "the file does not exist");
        }

        if (file.Length == 0)
        {
            throw new VideoDecodeException(full, VideoDecodeFailure.EmptyFile, "the file is empty (0 bytes)");
        }

        OpenCvNative.EnsureLoaded();

        var capture = OpenCapture(full, options);
        var info = new VideoInfo(
            full,
            capture.FrameWidth,
            capture.FrameHeight,
            capture.Fps,
            capture.FrameCount,
            SafeFourCc(capture));
        if (options.ShortSide is int shortSide && info.Width > 0 && info.Height > 0)
        {
            var (outH, outW) = ViewGeometry.ShortSideSize(info.Height, info.Width, shortSide);
            info = info with { OutputHeight = outH, OutputWidth = outW };
        }
        var reader = new VideoReader(full, options, capture, info);
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
                return (read(plan(frames)), frames);
            }
            catch (VideoDecodeException e) when (e.Failure == VideoDecodeFailure.FrameOutOfRange && e.DecodableFrames is int real && real > 0 && real < frames && attempt < 3)
            {
                frames = real;
            }
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
        _capture.Dispose();
        _frame.Dispose();
        _resized.Dispose();
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

        if (!_capture.Retrieve(_frame) || _frame.Empty())
        {
            throw new VideoDecodeException(Path, VideoDecodeFailure.NoDecodableFrames, "the first frame could not be retrieved", 0);
        }

        CheckFrame(_frame);
        _firstPtsMs = _capture.Get(VideoCaptureProperties.PosMsec);
        if (_options.CountFramesOnOpen || Info.ReportedFrameCount <= 0 || Info.ReportedFrameCount > _options.MaxFrames)
        {
            // A container without a usable count (elementary streams report 0 or a huge negative number): counting is
            // the only way to plan clips over the whole video instead of over one frame.
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

    /// <summary>Grabs the frame at <see cref="_position"/>. Returns false at the real end (and records the count).</summary>
    private bool GrabNext(Stopwatch watch)
    {
        if (_verifiedFrameCount is int count && _position >= count)
        {
            return false;
        }

        if (watch.Elapsed > _options.Timeout)
        {
            throw new VideoDecodeException(Path, VideoDecodeFailure.Timeout, $"decoding took longer than {_options.Timeout.TotalSeconds:0.#} s (frame {_position})");
        }

        if (_position >= _options.MaxFrames)
        {
            throw new VideoDecodeException(Path, VideoDecodeFailure.TooManyFrames, $"more than {_options.MaxFrames} frames (VideoReaderOptions.MaxFrames)");
        }

        if (!_capture.Grab())
        {
            _verifiedFrameCount = _position;
            return false;
        }

        _position++;
        return true;
    }

    /// <summary>Makes frame <paramref name="target"/> the decoder's current (last grabbed) frame.</summary>
    private void MoveTo(int target, Stopwatch watch)
    {
        if (_position - 1 == target)
        {
            return;
        }

        if (target < _position - 1)
        {
            Rewind();
        }

        if (_options.Seek == SeekMode.KeyframeVerified && target - _position >= _options.SeekThreshold)
        {
            TrySeek(target);
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
    /// Seeks so that the next grab returns frame <paramref name="target"/>, verified on the timestamp grid; on any
    /// doubt, restores a sequential state (reopen) so the caller decodes forward instead.
    /// </summary>
    private void TrySeek(int target)
    {
        double fps = Info.FramesPerSecond;
        if (!(fps > 0) || double.IsNaN(_firstPtsMs))
        {
            return;
        }

        double frameMs = 1000.0 / fps;
        int landing = Math.Max(0, target - 1);
        if (!_capture.Set(VideoCaptureProperties.PosFrames, landing))
        {
            Rewind();
            return;
        }

        // The capture now sits before some frame; grab it and read its timestamp.
        if (!_capture.Grab())
        {
            Rewind();
            return;
        }

        double pts = _capture.Get(VideoCaptureProperties.PosMsec);
        double exact = (pts - _firstPtsMs) / frameMs;
        int index = (int)Math.Round(exact);
        if (Math.Abs(exact - index) > 0.25 || index > target || index < 0)
        {
            Rewind();
            return;
        }

        _position = index + 1;

        // Walk forward to target, checking that every frame steps exactly one grid position.
        while (_position <= target)
        {
            if (!_capture.Grab())
            {
                Rewind();
                return;
            }

            double next = (_capture.Get(VideoCaptureProperties.PosMsec) - _firstPtsMs) / frameMs;
            if (Math.Abs(next - _position) > 0.25)
            {
                Rewind();
                return;
            }

            _position++;
        }
    }

    private void Rewind()
    {
        _capture.Dispose();
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

    private unsafe void RetrieveInto(Span<byte> clip, int slot, int frames)
    {
        if (!_capture.Retrieve(_frame) || _frame.Empty())
        {
            // The demuxer delivered a packet the decoder cannot turn into a picture: treat it as the real end.
            _verifiedFrameCount = _position - 1;
            throw OutOfRange(_position - 1, _position - 1);
        }

        CheckFrame(_frame);
        Mat source = _frame;
        int h = Info.OutputHeight;
        int w = Info.OutputWidth;
        if (h != Info.Height || w != Info.Width)
        {
            Cv2.Resize(_frame, _resized, new OpenCvSharp.Size(w, h), 0, 0, InterpolationFlags.Linear);
            source = _resized;
        }

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
