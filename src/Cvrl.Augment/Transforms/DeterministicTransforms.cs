using Cvrl.Augment.Functional;
using Cvrl.Video;
using static TorchSharp.torch;

namespace Cvrl.Augment.Transforms;

/// <summary>The parameters of a transform that draws nothing.</summary>
public readonly record struct NoParams
{
    /// <inheritdoc />
    public override string ToString() => string.Empty;
}

/// <summary>Converts uint8 frames to float32 in [0, 1] (<c>x / 255</c>; no mean/std normalisation, as in CVRL).</summary>
public sealed class ToFloat : ClipTransform<NoParams>
{
    /// <inheritdoc />
    public override string Name => "float";

    /// <inheritdoc />
    public override NoParams Sample(ClipShape input, ClipRandom random) => default;

    /// <inheritdoc />
    protected internal override Tensor ApplyCore(Tensor clip, NoParams parameters, bool mayOverwriteInput) =>
        clip.dtype == ScalarType.Float32 && mayOverwriteInput ? clip : ClipOps.ToFloat(clip);
}

/// <summary>Resizes frames so that the shorter side has <see cref="Size"/> pixels (the official evaluation's <c>resize_smallest</c>).</summary>
public sealed class ResizeShortSide : ClipTransform<NoParams>
{
    /// <summary>Creates the transform.</summary>
    /// <param name="size">Target length of the shorter side (256 in the official evaluation).</param>
    public ResizeShortSide(int size = 256)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        Size = size;
    }

    /// <summary>Target length of the shorter side.</summary>
    public int Size { get; }

    /// <inheritdoc />
    public override string Name => "resize";

    /// <inheritdoc />
    public override ClipShape OutputShape(ClipShape input)
    {
        var (h, w) = ViewGeometry.ShortSideSize(input.Height, input.Width, Size);
        return input.WithSize(h, w);
    }

    /// <inheritdoc />
    public override NoParams Sample(ClipShape input, ClipRandom random) => default;

    /// <inheritdoc />
    protected internal override Tensor ApplyCore(Tensor clip, NoParams parameters, bool mayOverwriteInput) =>
        ClipOps.ResizeShortSide(clip, Size);
}

/// <summary>Crops the centred <see cref="Height"/> x <see cref="Width"/> region of every frame.</summary>
public sealed class CenterCrop : ClipTransform<NoParams>
{
    /// <summary>Creates the transform.</summary>
    public CenterCrop(int height, int width)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        Height = height;
        Width = width;
    }

    /// <summary>Crop height.</summary>
    public int Height { get; }

    /// <summary>Crop width.</summary>
    public int Width { get; }

    /// <inheritdoc />
    public override string Name => "center";

    /// <inheritdoc />
    public override ClipShape OutputShape(ClipShape input) => input.WithSize(Height, Width);

    /// <inheritdoc />
    public override NoParams Sample(ClipShape input, ClipRandom random) => default;

    /// <inheritdoc />
    protected internal override Tensor ApplyCore(Tensor clip, NoParams parameters, bool mayOverwriteInput) =>
        ClipOps.CenterCrop(clip, Height, Width);
}
