namespace Cvrl.Video;

/// <summary>How <see cref="VideoReader"/> reaches a frame that lies ahead of the decoder.</summary>
public enum SeekMode
{
    /// <summary>
    /// Decode forward from the current position (from frame 0 after opening). Exact by construction, whatever the
    /// codec and container; costs decoding every frame up to the last one requested.
    /// </summary>
    Sequential,

    /// <summary>
    /// For a frame far ahead, let FFmpeg seek to an earlier key frame, then decode forward and check each frame's
    /// position against its presentation time on the constant-frame-rate grid measured at open. Any doubt (a timestamp
    /// off the grid, a landing that cannot be placed) falls back to <see cref="Sequential"/>. Without the file's
    /// <see cref="VideoTimeline"/> this trusts the grid: a stream that lost frames but kept a constant-rate grid of
    /// timestamps would be read at the wrong positions. Prefer <see cref="Auto"/>.
    /// </summary>
    KeyframeVerified,

    /// <summary>
    /// Exact and as fast as the file allows, the default: seek as <see cref="KeyframeVerified"/> does where the file's
    /// <see cref="VideoTimeline"/> (measured by Cvrl's video index, <see cref="VideoReader.Measure"/>) says every frame
    /// lies on its grid and trial seeks matched (<see cref="FrameAccess.Seek"/>); decode forward where it says otherwise
    /// or where no timeline is known; read prepared videos directly.
    /// </summary>
    Auto,
}

/// <summary>Options for <see cref="VideoReader"/>. Validated by <see cref="Validate"/> when a reader opens.</summary>
public sealed record VideoReaderOptions
{
    /// <summary>The default options.</summary>
    public static VideoReaderOptions Default { get; } = new();

    /// <summary>
    /// When set, frames are resized at decode time so that their shorter side has this length (aspect kept, the longer
    /// side computed as <c>long * size / short</c> rounded down, as the official evaluation's <c>resize_smallest</c>).
    /// Null keeps the stored size. Default: null.
    /// </summary>
    public int? ShortSide { get; init; }

    /// <summary>How frames ahead of the decoder are reached. Default: <see cref="SeekMode.Auto"/>.</summary>
    public SeekMode Seek { get; init; } = SeekMode.Auto;

    /// <summary>
    /// When seeking: seek only when the next frame is at least this many frames ahead. Null (the default) takes the seek
    /// cost its <see cref="VideoTimeline"/> measured, else derives one from its key-frame interval (the 16 frames
    /// OpenCV's seek decodes before its target, plus half an interval, plus 8), else uses 96.
    /// </summary>
    public int? SeekThreshold { get; init; }

    /// <summary>FFmpeg decoder threads per reader (0 lets FFmpeg choose). Default 1: Cvrl parallelises across videos.</summary>
    public int DecoderThreads { get; init; } = 1;

    /// <summary>
    /// Upper bound on the wall-clock time of opening the file and of decoding one frame (a stream that stalls or loops);
    /// a whole pass over a long video may take longer (<see cref="MaxFrames"/> bounds its length). Default 60 s.
    /// </summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Upper bound on the number of frames decoded from one file, so a broken stream cannot loop forever. Default 1,000,000.</summary>
    public int MaxFrames { get; init; } = 1_000_000;

    /// <summary>
    /// Count frames by decoding the whole file when the reader opens, instead of trusting the container's count until a
    /// read proves it wrong. Containers without a usable count are counted whatever this says. Default false.
    /// </summary>
    public bool CountFramesOnOpen { get; init; }

    /// <summary>
    /// Upper bound on a frame's width x height, checked when the file opens (before any frame is decoded), so a small
    /// file that declares enormous frames cannot take the memory of the process. Default 7680 x 4320 (8K UHD).
    /// </summary>
    public long MaxFramePixels { get; init; } = 7680L * 4320;

    /// <summary>Checks every option and throws on the first bad one.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        if (ShortSide is int s && s < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(ShortSide), s, "ShortSide must be at least 1 pixel, or null to keep the stored size.");
        }

        if (!Enum.IsDefined(Seek))
        {
            throw new ArgumentOutOfRangeException(nameof(Seek), Seek, "Unknown seek mode.");
        }

        if (SeekThreshold is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(SeekThreshold), SeekThreshold, "SeekThreshold must be at least 1 frame.");
        }

        if (DecoderThreads < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(DecoderThreads), DecoderThreads, "DecoderThreads must be 0 (automatic) or positive.");
        }

        if (Timeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(Timeout), Timeout, "Timeout must be positive.");
        }

        if (MaxFrames < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxFrames), MaxFrames, "MaxFrames must be at least 1.");
        }

        if (MaxFramePixels < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxFramePixels), MaxFramePixels, "MaxFramePixels must be at least 1.");
        }
    }
}
