namespace Cvrl.Video;

/// <summary>What a video file says about itself, and what decoding has confirmed.</summary>
/// <param name="Path">The file.</param>
/// <param name="Width">Stored frame width in pixels.</param>
/// <param name="Height">Stored frame height in pixels.</param>
/// <param name="FramesPerSecond">The container's frame rate (0 when unknown). Cvrl's samplers work in frame indices and never use it.</param>
/// <param name="ReportedFrameCount">The container's frame count (may be wrong, 0 or negative when unknown).</param>
/// <param name="Codec">The codec's FourCC as text (for example "MJPG", "FMP4"), or empty when unknown.</param>
public sealed record VideoInfo(string Path, int Width, int Height, double FramesPerSecond, int ReportedFrameCount, string Codec)
{
    /// <summary>Output frame height after the reader's optional short-side resize.</summary>
    public int OutputHeight { get; init; } = Height;

    /// <summary>Output frame width after the reader's optional short-side resize.</summary>
    public int OutputWidth { get; init; } = Width;
}
