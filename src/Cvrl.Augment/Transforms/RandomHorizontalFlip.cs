using Cvrl.Augment.Functional;
using static TorchSharp.torch;

namespace Cvrl.Augment.Transforms;

/// <summary>Parameters of <see cref="RandomHorizontalFlip"/>.</summary>
/// <param name="Flipped">Whether every frame is mirrored left to right.</param>
public readonly record struct FlipParams(bool Flipped)
{
    /// <inheritdoc />
    public override string ToString() => Flipped ? "yes" : "no";
}

/// <summary>Mirrors the whole clip left to right with probability <see cref="Probability"/> (CVRL: 0.5).</summary>
public sealed class RandomHorizontalFlip : ClipTransform<FlipParams>, IBatchClipTransform
{
    /// <summary>Creates the transform.</summary>
    /// <param name="probability">Probability of flipping, in [0, 1].</param>
    /// <exception cref="ArgumentOutOfRangeException">The probability is outside [0, 1].</exception>
    public RandomHorizontalFlip(double probability = 0.5)
    {
        Probability = Probabilities.Check(probability, nameof(probability));
    }

    /// <summary>Probability of flipping.</summary>
    public double Probability { get; }

    /// <inheritdoc />
    public override string Name => "flip";

    /// <inheritdoc />
    public override FlipParams Sample(ClipShape input, ClipRandom random)
    {
        ArgumentNullException.ThrowIfNull(random);
        return new FlipParams(random.Bernoulli(Probability));
    }

    /// <inheritdoc />
    protected internal override Tensor ApplyCore(Tensor clip, FlipParams parameters, bool mayOverwriteInput) =>
        parameters.Flipped ? ClipOps.HorizontalFlip(clip) : clip;

    /// <inheritdoc />
    public Tensor ApplyBatch(Tensor batch, IReadOnlyList<object> parameters) =>
        BatchOps.PerSample(batch, parameters, (clip, p) => Apply(clip, Unbox(p)));
}

/// <summary>Validates probabilities.</summary>
internal static class Probabilities
{
    public static double Check(double p, string name) =>
        p is >= 0 and <= 1 ? p : throw new ArgumentOutOfRangeException(name, p, "A probability must lie in [0, 1].");
}
