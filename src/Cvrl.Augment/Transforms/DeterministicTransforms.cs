using Cvrl.Augment.Functional;
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
