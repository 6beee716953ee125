namespace Cvrl.Video;

/// <summary>Why a video could not be decoded.</summary>
public enum VideoDecodeFailure
{
    /// <summary>The file does not exist.</summary>
    FileNotFound,

    /// <summary>The file is empty (0 bytes).</summary>
    EmptyFile,

    /// <summary>
    /// The file exists but cannot be read (permission denied, an I/O error): a failure that may pass, so the video index
    /// does not remember it and tries the file again next time.
    /// </summary>
    Unreadable,

    /// <summary>OpenCV's FFmpeg backend could not open the file (not a video, or an unsupported container/codec).</summary>
    CannotOpen,

    /// <summary>The file opened but not a single frame decoded.</summary>
    NoDecodableFrames,

    /// <summary>A requested frame index is at or past the last frame that actually decodes.</summary>
    FrameOutOfRange,

    /// <summary>Decoded frames changed size or had an unexpected pixel format mid-stream.</summary>
    InconsistentFrames,

    /// <summary>Decoding took longer than <see cref="VideoReaderOptions.Timeout"/>.</summary>
    Timeout,

    /// <summary>The file holds more frames than <see cref="VideoReaderOptions.MaxFrames"/> allows to decode.</summary>
    TooManyFrames,

    /// <summary>
    /// Its frames are larger than <see cref="VideoReaderOptions.MaxFramePixels"/> allows, or decoding its clips would
    /// need more memory than <see cref="MemoryBudget.LimitBytes"/>: refused before the frames are decoded.
    /// </summary>
    TooLarge,
}

/// <summary>A video file could not be opened or decoded. Names the file and the reason.</summary>
public sealed class VideoDecodeException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="path">The video file.</param>
    /// <param name="failure">The reason.</param>
    /// <param name="detail">A human-readable detail appended to the message.</param>
    /// <param name="decodableFrames">For <see cref="VideoDecodeFailure.FrameOutOfRange"/>: the number of frames that decode.</param>
    /// <param name="inner">The underlying exception, if any.</param>
    public VideoDecodeException(string path, VideoDecodeFailure failure, string detail, int? decodableFrames = null, Exception? inner = null)
        : base($"Cannot decode video '{path}': {detail}", inner)
    {
        Path = path;
        Failure = failure;
        DecodableFrames = decodableFrames;
        Detail = detail;
    }

    /// <summary>Creates the exception with a message only (serialisation and tooling).</summary>
    public VideoDecodeException()
        : this(string.Empty, VideoDecodeFailure.CannotOpen, "unknown failure")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public VideoDecodeException(string message)
        : base(message)
    {
        Path = string.Empty;
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    public VideoDecodeException(string message, Exception inner)
        : base(message, inner)
    {
        Path = string.Empty;
    }

    /// <summary>The video file.</summary>
    public string Path { get; }

    /// <summary>What went wrong, without the file's name (the message is "Cannot decode video '<see cref="Path"/>': " and this).</summary>
    public string Detail { get; } = string.Empty;

    /// <summary>The reason.</summary>
    public VideoDecodeFailure Failure { get; }

    /// <summary>When known, the number of frames that actually decode (the container may claim more).</summary>
    public int? DecodableFrames { get; }
}
