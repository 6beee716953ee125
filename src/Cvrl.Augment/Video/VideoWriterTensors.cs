using Cvrl.Video;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Augment.Video;

/// <summary>Writes uint8 clip tensors with <see cref="VideoFileWriter"/> (Cvrl.Video), as <see cref="VideoReaderTensors"/> reads them.</summary>
public static class VideoWriterTensors
{
    /// <summary>Writes every frame of an RGB uint8 clip <c>[3, T, H, W]</c> (H and W equal to the writer's size).</summary>
    /// <param name="writer">The writer.</param>
    /// <param name="clip">The frames, on any device.</param>
    /// <exception cref="ArgumentException">The clip is not uint8 <c>[3, T, Height, Width]</c>.</exception>
    public static void WriteClip(this VideoFileWriter writer, Tensor clip)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(clip);
        var shape = ClipShape.Of(clip);
        if (clip.dtype != ScalarType.Byte || shape.Channels != 3 || shape.Height != writer.Height || shape.Width != writer.Width)
        {
            throw new ArgumentException($"Expected a uint8 clip [3, T, {writer.Height}, {writer.Width}], got {clip.dtype} {shape}.", nameof(clip));
        }

        using var scope = torch.NewDisposeScope();
        writer.WriteClip(clip.cpu().contiguous().bytes);
    }

    /// <summary>Writes an RGB uint8 clip <c>[3, T, H, W]</c> to a new video file.</summary>
    /// <param name="path">The output file.</param>
    /// <param name="clip">The frames.</param>
    /// <param name="framesPerSecond">Frame rate stored in the container.</param>
    /// <param name="codec">The codec.</param>
    public static void Write(string path, Tensor clip, double framesPerSecond = 25, VideoCodec codec = VideoCodec.Mjpeg)
    {
        var shape = ClipShape.Of(clip);
        using var writer = new VideoFileWriter(path, shape.Width, shape.Height, framesPerSecond, codec);
        writer.WriteClip(clip);
    }
}
