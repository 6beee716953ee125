using Cvrl.Augment.Functional;
using static TorchSharp.torch;

namespace Cvrl.Augment.Transforms;

/// <summary>Parameters of <see cref="RandomSolarize"/>.</summary>
/// <param name="Applied">Whether the clip is solarised.</param>
public readonly record struct SolarizeParams(bool Applied)
{
    /// <inheritdoc />
    public override string ToString() => Applied ? "yes" : "no";
}

/// <summary>With probability <see cref="Probability"/> (CVRL: 0.2, view 2 only), replaces x by 1 - x wherever x &gt;= <see cref="Threshold"/>.</summary>
public sealed class RandomSolarize : ClipTransform<SolarizeParams>, IBatchClipTransform
{
    /// <summary>Creates the transform.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The probability or threshold is outside [0, 1].</exception>
    public RandomSolarize(double probability = 0.2, float threshold = 0.5f)
    {
        Probability = Probabilities.Check(probability, nameof(probability));
        Threshold = (float)Probabilities.Check(threshold, nameof(threshold));
    }

    /// <summary>Probability of solarising.</summary>
    public double Probability { get; }

    /// <summary>Values at or above this are inverted.</summary>
    public float Threshold { get; }

    /// <inheritdoc />
    public override string Name => "solarize";

    /// <inheritdoc />
    public override SolarizeParams Sample(ClipShape input, ClipRandom random)
    {
        ArgumentNullException.ThrowIfNull(random);
        return new SolarizeParams(random.Bernoulli(Probability));
    }

    /// <inheritdoc />
    protected internal override Tensor ApplyCore(Tensor clip, SolarizeParams parameters, bool mayOverwriteInput)
    {
        if (!parameters.Applied)
        {
            return clip;
        }

        if (mayOverwriteInput && CpuKernels.CanRunFloat(clip))
        {
            CpuKernels.Solarize(clip, clip, Threshold);
            return clip;
        }

        return ClipOps.Solarize(clip, Threshold);
    }

    /// <inheritdoc />
    public Tensor ApplyBatch(Tensor batch, IReadOnlyList<object> parameters) =>
        BatchOps.Solarize(batch, [.. parameters.Select(Unbox)], Threshold);
}
