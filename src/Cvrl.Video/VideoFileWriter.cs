using OpenCvSharp;

namespace Cvrl.Video;

/// <summary>Codecs that OpenCV's bundled FFmpeg writer supports on Linux x64.</summary>
public enum VideoCodec
{
    /// <summary>Motion JPEG (every frame a key frame; lossy). Container: .avi or .mkv.</summary>
    Mjpeg,

    /// <summary>MPEG-4 Part 2 ("mp4v", with predicted frames; lossy). Container: .mp4, .mov or .avi.</summary>
    Mpeg4,

    /// <summary>Xvid (MPEG-4 Part 2 in AVI; lossy). Container: .avi.</summary>
    Xvid,

    /// <summary>FFV1 (lossless). Container: .mkv or .avi.</summary>
    Ffv1,

    /// <summary>HuffYUV (lossless, large). Container: .avi.</summary>
    Huffyuv,

    /// <summary>PNG frames (lossless RGB). Container: .avi.</summary>
    Png,
}

/// <summary>
/// Writes RGB frames to a video file through OpenCV's FFmpeg backend: used to make test fixtures and synthetic data
/// sets. Frames are given as planar RGB bytes (Cvrl's layout, <c>[3, T, H, W]</c>) or as OpenCV BGR <see cref="Mat"/>s;
/// Cvrl.Augment adds the same for uint8 tensors (<c>VideoWriterTensors</c>). It lives beside <see cref="VideoReader"/>
/// because it needs only OpenCV.
/// </summary>
public sealed class VideoFileWriter : IDisposable
{
    private readonly VideoWriter _writer;
    private readonly Mat _bgr;
    private bool _disposed;

    /// <summary>Opens a writer.</summary>
    /// <param name="path">The output file; its folder must exist.</param>
    /// <param name="width">Frame width in pixels.</param>
    /// <param name="height">Frame height in pixels.</param>
    /// <param name="framesPerSecond">Frame rate stored in the container.</param>
    /// <param name="codec">The codec.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size or the frame rate is not positive.</exception>
    /// <exception cref="IOException">OpenCV cannot open a writer for this codec and container.</exception>
    public VideoFileWriter(string path, int width, int height, double framesPerSecond = 25, VideoCodec codec = VideoCodec.Mjpeg)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(framesPerSecond);
        OpenCvNative.EnsureLoaded();
        Path = System.IO.Path.GetFullPath(path);
        Width = width;
        Height = height;
        _writer = new VideoWriter(Path, VideoCaptureAPIs.FFMPEG, FourCcOf(codec), framesPerSecond, new OpenCvSharp.Size(width, height), true);
        if (!_writer.IsOpened())
        {
            _writer.Dispose();
            throw new IOException($"OpenCV could not open a {codec} video writer for '{Path}' (check the folder exists and the container suits the codec, e.g. .avi for MJPG).");
        }

        _bgr = new Mat(height, width, MatType.CV_8UC3);
    }

    /// <summary>The output file.</summary>
    public string Path { get; }

    /// <summary>Frame width.</summary>
    public int Width { get; }

    /// <summary>Frame height.</summary>
    public int Height { get; }

    /// <summary>Frames written so far.</summary>
    public int FramesWritten { get; private set; }

    /// <summary>Writes one OpenCV frame (BGR, 8-bit, 3 channels, the writer's size).</summary>
    /// <exception cref="ArgumentException">The frame has another size or type.</exception>
    public void WriteFrame(Mat bgrFrame)
    {
        ArgumentNullException.ThrowIfNull(bgrFrame);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (bgrFrame.Type() != MatType.CV_8UC3 || bgrFrame.Rows != Height || bgrFrame.Cols != Width)
        {
            throw new ArgumentException($"Expected a {Width}x{Height} CV_8UC3 frame, got {bgrFrame.Cols}x{bgrFrame.Rows} {bgrFrame.Type()}.", nameof(bgrFrame));
        }

        _writer.Write(bgrFrame);
        FramesWritten++;
    }

    /// <summary>Writes every frame of a planar RGB clip <c>[3, T, H, W]</c> (H and W the writer's size), as <see cref="VideoReader"/> returns it.</summary>
    /// <param name="planarRgb">The bytes: three planes of T frames each.</param>
    /// <exception cref="ArgumentException">The length is not a whole number of frames of this size.</exception>
    public void WriteClip(ReadOnlySpan<byte> planarRgb)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        long plane = (long)Height * Width;
        if (planarRgb.Length == 0 || planarRgb.Length % (3 * plane) != 0)
        {
            throw new ArgumentException($"{planarRgb.Length} bytes are not a whole number of planar RGB frames of {Width}x{Height}.", nameof(planarRgb));
        }

        int frames = (int)(planarRgb.Length / (3 * plane));
        for (int t = 0; t < frames; t++)
        {
            PlanarRgb.FrameToBgr(planarRgb, frames, t, Height, Width, _bgr);
            _writer.Write(_bgr);
            FramesWritten++;
        }
    }

    /// <summary>Finishes the file (writes the container index) and releases the writer.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _writer.Release();
        _writer.Dispose();
        _bgr.Dispose();
    }

    /// <summary>The file extension that suits a codec (".avi", ".mp4" or ".mkv").</summary>
    public static string DefaultExtension(VideoCodec codec) => codec switch
    {
        VideoCodec.Mpeg4 => ".mp4",
        VideoCodec.Ffv1 => ".mkv",
        _ => ".avi",
    };

    private static FourCC FourCcOf(VideoCodec codec) => codec switch
    {
        VideoCodec.Mjpeg => FourCC.MJPG,
        VideoCodec.Mpeg4 => FourCC.FromString("mp4v"),
        VideoCodec.Xvid => FourCC.XVID,
        VideoCodec.Ffv1 => FourCC.FromString("FFV1"),
        VideoCodec.Huffyuv => FourCC.FromString("HFYU"),
        VideoCodec.Png => FourCC.FromString("MPNG"),
        _ => throw new ArgumentOutOfRangeException(nameof(codec), codec, "Unknown codec."),
    };
}
