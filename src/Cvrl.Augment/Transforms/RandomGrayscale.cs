using Cvrl.Augment.Functional;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Augment.Transforms;

/// <summary>Parameters of <see cref="RandomGrayscale"/>.</summary>
/// <param name="Applied">Whether the clip is turned to grey.</param>
public readonly record struct GrayscaleParams(bool Applied)
{
    /// <inheritdoc />
    public override string ToString() => Applied ? "yes" : "no";
}

/// <summary>
/// With probability <see cref="Probability"/> (CVRL: 0.2, drawn independently of the jitter), replaces every channel
/// with the luma <c>0.2989 R + 0.5870 G + 0.1140 B</c>.
/// </summary>
public sealed class RandomGrayscale : ClipTransform<GrayscaleParams>, IBatchClipTransform
{
    /// <summary>Creates the transform.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The probability is outside [0, 1].</exception>
    public RandomGrayscale(double probability = 0.2)
    {
        Probability = Probabilities.Check(probability, nameof(probability));
    }

    /// <summary>Probability of turning a clip grey.</summary>
    public double Probability { get; }

    /// <inheritdoc />
    public override string Name => "gray";

    /// <inheritdoc />
    public override GrayscaleParams Sample(ClipShape input, ClipRandom random)
    {
        ArgumentNullException.ThrowIfNull(random);
        return new GrayscaleParams(random.Bernoulli(Probability));
    }

    /// <inheritdoc />
    protected internal override Tensor ApplyCore(Tensor clip, GrayscaleParams parameters, bool mayOverwriteInput)
    {
        if (!parameters.Applied)
        {
            return clip;
        }

        ClipOps.RequireColorClip(clip);
        if (mayOverwriteInput && CpuKernels.CanRunFloat(clip))
        {
            CpuKernels.Grayscale(clip, clip);
            return clip;
        }

        return ClipOps.Grayscale(clip);
    }

    /// <inheritdoc />
    public Tensor ApplyBatch(Tensor batch, IReadOnlyList<object> parameters) =>
        BatchOps.Grayscale(batch, [.. parameters.Select(Unbox)]);
}
