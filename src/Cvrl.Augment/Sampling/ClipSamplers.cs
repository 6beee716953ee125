using Cvrl.Video;

namespace Cvrl.Augment.Sampling;

/// <summary>
/// Draws one clip at a uniformly random offset: the linear-evaluation training sampler (32 frames, stride 2 by default).
/// The offset is uniform on {0, ..., M-1} with <c>M = L - (n-1)s</c> when <c>L &gt; (n-1)s</c>, else <c>M = L</c>;
/// frames wrap modulo L.
/// </summary>
public sealed class RandomClipSampler
{
    /// <summary>Creates a sampler.</summary>
    /// <param name="framesPerClip">Frames per clip (default 32).</param>
    /// <param name="stride">Stride in stored frames (default 2).</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is not positive.</exception>
    public RandomClipSampler(int framesPerClip = 32, int stride = 2)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(framesPerClip);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(stride);
        FramesPerClip = framesPerClip;
        Stride = stride;
    }

    /// <summary>Frames per clip.</summary>
    public int FramesPerClip { get; }

    /// <summary>Stride in stored frames.</summary>
    public int Stride { get; }

    /// <summary>Draws a clip for a video of <paramref name="frameCount"/> frames.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="frameCount"/> is not positive.</exception>
    public ClipWindow Sample(int frameCount, ClipRandom random)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(frameCount);
        ArgumentNullException.ThrowIfNull(random);
        long needed = (long)(FramesPerClip - 1) * Stride;
        int maxOffset = frameCount > needed ? (int)(frameCount - needed) : frameCount;
        return new ClipWindow(random.NextInt(maxOffset), FramesPerClip, Stride);
    }
}
