namespace Cvrl.Video;

/// <summary>
/// Places N clips evenly over a video: the evaluation sampler (10 clips of 32 frames at stride 2 by default). Offsets
/// are <c>linspace(0, max(0, L - n*s), N)</c> truncated to integers, as the official evaluation computes them; frames
/// wrap modulo L when the video is short.
/// </summary>
public sealed class UniformClipSampler
{
    /// <summary>Creates a sampler.</summary>
    /// <param name="clips">Number of clips (default 10).</param>
    /// <param name="framesPerClip">Frames per clip (default 32).</param>
    /// <param name="stride">Stride in stored frames (default 2).</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is not positive.</exception>
    public UniformClipSampler(int clips = 10, int framesPerClip = 32, int stride = 2)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(clips);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(framesPerClip);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(stride);
        Clips = clips;
        FramesPerClip = framesPerClip;
        Stride = stride;
    }

    /// <summary>Number of clips.</summary>
    public int Clips { get; }

    /// <summary>Frames per clip.</summary>
    public int FramesPerClip { get; }

    /// <summary>Stride in stored frames.</summary>
    public int Stride { get; }

    /// <summary>The clips for a video of <paramref name="frameCount"/> frames (deterministic).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="frameCount"/> is not positive.</exception>
    public ClipWindow[] Sample(int frameCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(frameCount);
        long last = Math.Max(0, frameCount - ((long)FramesPerClip * Stride));
        var result = new ClipWindow[Clips];
        float delta = Clips > 1 ? (float)last / (Clips - 1) : 0f;
        for (int i = 0; i < Clips; i++)
        {
            // Like tf.linspace: exact end points, float32 steps in between, then truncation.
            int start = i == 0 ? 0 : i == Clips - 1 ? (int)last : (int)(i * delta);
            result[i] = new ClipWindow(start, FramesPerClip, Stride);
        }

        return result;
    }
}
