using TorchSharp;

namespace Cvrl.Augment;

/// <summary>The shape of one clip in Cvrl's layout, <c>[C, T, H, W]</c> (channels, frames, height, width).</summary>
/// <param name="Channels">Channels (3 for RGB).</param>
/// <param name="Frames">Frames.</param>
/// <param name="Height">Height in pixels.</param>
/// <param name="Width">Width in pixels.</param>
public readonly record struct ClipShape(int Channels, int Frames, int Height, int Width)
{
    /// <summary>Reads the shape of a <c>[C, T, H, W]</c> clip tensor.</summary>
    /// <exception cref="ArgumentException">The tensor is not 4-dimensional.</exception>
    public static ClipShape Of(torch.Tensor clip)
    {
        ArgumentNullException.ThrowIfNull(clip);
        if (clip.dim() != 4)
        {
            throw new ArgumentException(
                $"Expected a clip of shape [C, T, H, W] (4 dimensions), got [{string.Join(", ", clip.shape)}].", nameof(clip));
        }

        return new ClipShape((int)clip.shape[0], (int)clip.shape[1], (int)clip.shape[2], (int)clip.shape[3]);
    }

    /// <summary>The same shape with another height and width.</summary>
    public ClipShape WithSize(int height, int width) => this with { Height = height, Width = width };

    /// <summary>The shape as a TorchSharp size array <c>[C, T, H, W]</c>.</summary>
    public long[] ToArray() => [Channels, Frames, Height, Width];

    /// <inheritdoc />
    public override string ToString() => $"[{Channels}, {Frames}, {Height}, {Width}]";
}
