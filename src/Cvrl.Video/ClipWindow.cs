namespace Cvrl.Video;

/// <summary>
/// One clip in a video: <see cref="Length"/> frames starting at <see cref="Start"/>, every <see cref="Stride"/>-th
/// stored frame. Frame j is <c>(Start + j * Stride) mod frameCount</c>, so a clip longer than the video wraps
/// around (the official code tiles short sequences the same way).
/// </summary>
/// <param name="Start">Index of the first frame (stored-frame index, 0-based).</param>
/// <param name="Length">Number of frames in the clip.</param>
/// <param name="Stride">Distance between consecutive frames, in stored frames.</param>
public readonly record struct ClipWindow(int Start, int Length, int Stride)
{
    /// <summary>Number of stored frames the clip covers, <c>(Length - 1) * Stride + 1</c>.</summary>
    public int Span => ((Length - 1) * Stride) + 1;

    /// <summary>The stored-frame indices of the clip in a video of <paramref name="frameCount"/> frames (wrapping).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="frameCount"/> is not positive.</exception>
    public int[] Indices(int frameCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(frameCount);
        var result = new int[Length];
        for (int j = 0; j < Length; j++)
        {
            result[j] = (int)(((long)Start + ((long)j * Stride)) % frameCount);
        }

        return result;
    }

    /// <inheritdoc />
    public override string ToString() => $"start {Start}, {Length} x {Stride}";
}
