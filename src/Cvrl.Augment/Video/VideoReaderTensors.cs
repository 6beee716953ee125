using Cvrl.Native;
using Cvrl.Video;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Augment.Video;

/// <summary>
/// <see cref="VideoReader"/> for TorchSharp: decoded clips as RGB uint8 tensors <c>[3, T, H, W]</c> (contiguous, on the
/// CPU, owned by the caller). The frames are decoded straight into the tensors' memory.
/// </summary>
public static class VideoReaderTensors
{
    /// <summary>
    /// Decodes the given frames into an RGB uint8 clip <c>[3, T, H, W]</c>, T = <paramref name="indices"/>.Length, in the
    /// order given (repeats allowed).
    /// </summary>
    /// <param name="reader">An open reader.</param>
    /// <param name="indices">Frame indices in [0, <see cref="VideoReader.FrameCount"/>).</param>
    /// <returns>A new contiguous CPU tensor owned by the caller.</returns>
    /// <exception cref="ArgumentException"><paramref name="indices"/> is empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An index is negative.</exception>
    /// <exception cref="VideoDecodeException">
    /// An index is past the last decodable frame (<see cref="VideoDecodeFailure.FrameOutOfRange"/>, with the real count),
    /// frames changed size, or a limit was exceeded.
    /// </exception>
    public static Tensor ReadClip(this VideoReader reader, ReadOnlySpan<int> indices) => reader.ReadClips([indices.ToArray()])[0];

    /// <inheritdoc cref="ReadClip(VideoReader, ReadOnlySpan{int})"/>
    public static Tensor ReadClip(this VideoReader reader, IReadOnlyList<int> indices)
    {
        ArgumentNullException.ThrowIfNull(indices);
        return reader.ReadClips([[.. indices]])[0];
    }

    /// <summary>
    /// Decodes several clips in one forward pass over the file (<see cref="VideoReader.ReadClipsInto"/>): clip k becomes
    /// an RGB uint8 tensor <c>[3, T_k, H, W]</c> holding the frames <paramref name="clips"/>[k] in the order given.
    /// </summary>
    /// <param name="reader">An open reader.</param>
    /// <param name="clips">One array of frame indices per clip; each non-empty.</param>
    /// <returns>One new CPU tensor per clip, owned by the caller.</returns>
    /// <exception cref="ArgumentException">No clips, or an empty clip.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An index is negative.</exception>
    /// <exception cref="VideoDecodeException">See <see cref="ReadClip(VideoReader, ReadOnlySpan{int})"/>.</exception>
    public static Tensor[] ReadClips(this VideoReader reader, IReadOnlyList<int[]> clips)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(clips);
        if (clips.Count == 0 || clips.Any(c => c is null || c.Length == 0))
        {
            throw new ArgumentException("At least one clip with at least one frame index is required.", nameof(clips));
        }

        TorchLoader.EnsureLoaded();
        int h = reader.Info.OutputHeight;
        int w = reader.Info.OutputWidth;
        var outputs = new Tensor[clips.Count];
        try
        {
            for (int k = 0; k < outputs.Length; k++)
            {
                outputs[k] = torch.empty([3, clips[k].Length, h, w], ScalarType.Byte);
            }

            reader.ReadClipsInto(clips, k => outputs[k].bytes);
            return outputs;
        }
        catch
        {
            foreach (var o in outputs)
            {
                o?.Dispose();
            }

            throw;
        }
    }

    /// <summary>
    /// Plans clips from the frame count and decodes them as tensors (<see cref="VideoReader.ReadPlanned{T}"/>): when the
    /// container over-reported its length, the clips are planned again from the real count.
    /// </summary>
    /// <param name="reader">An open reader.</param>
    /// <param name="plan">Returns the clips' frame indices for a frame count; called again after a correction.</param>
    /// <param name="knownFrameCount">A count established earlier, or null for <see cref="VideoReader.FrameCount"/>.</param>
    /// <returns>The decoded clips (owned by the caller) and the frame count they were planned from.</returns>
    /// <exception cref="VideoDecodeException">The video cannot be decoded.</exception>
    public static (Tensor[] Clips, int FrameCount) ReadPlannedClips(this VideoReader reader, Func<int, IReadOnlyList<int[]>> plan, int? knownFrameCount = null)
    {
        ArgumentNullException.ThrowIfNull(reader);
        return reader.ReadPlanned(plan, reader.ReadClips, knownFrameCount);
    }
}
