using Cvrl.Augment.Functional;
using static TorchSharp.torch;

namespace Cvrl.Augment.Transforms;

/// <summary>Parameters of <see cref="RandomGaussianBlur"/>.</summary>
/// <param name="Applied">Whether the clip is blurred.</param>
/// <param name="Sigma">Standard deviation in pixels.</param>
/// <param name="KernelSize">Number of taps (odd).</param>
public readonly record struct BlurParams(bool Applied, float Sigma, int KernelSize)
{
    /// <inheritdoc />
    public override string ToString() => Applied ? $"sigma {Sigma:0.00} ({KernelSize} taps)" : "off";
}

/// <summary>
/// With probability <see cref="Probability"/>, blurs every frame with one separable Gaussian (sigma uniform in
/// <see cref="SigmaRange"/>) and zero padding, as SimCLR's <c>gaussian_blur</c>. The number of taps follows the official
/// code: <c>2 * ((height / 10) / 2) + 1</c> for the clip's height (23 at 224) unless <see cref="KernelSize"/> is set.
/// CVRL blurs view 1 always (p 1.0) and view 2 rarely (p 0.1).
/// </summary>
public sealed class RandomGaussianBlur : ClipTransform<BlurParams>, IBatchClipTransform
{
    /// <summary>Creates the transform.</summary>
    /// <param name="probability">Probability of blurring.</param>
    /// <param name="sigmaRange">Sigma range in pixels (CVRL: 0.1 to 2.0).</param>
    /// <param name="kernelSize">Fixed odd number of taps, or null for the official rule.</param>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range.</exception>
    public RandomGaussianBlur(double probability, (double Min, double Max)? sigmaRange = null, int? kernelSize = null)
    {
        Probability = Probabilities.Check(probability, nameof(probability));
        var sigma = sigmaRange ?? (0.1, 2.0);
        if (!(sigma.Min > 0) || sigma.Min > sigma.Max)
        {
            throw new ArgumentOutOfRangeException(nameof(sigmaRange), sigma, "The sigma range must satisfy 0 < min <= max.");
        }

        if (kernelSize is int k && (k < 1 || k % 2 == 0))
        {
            throw new ArgumentOutOfRangeException(nameof(kernelSize), k, "The kernel size must be a positive odd number.");
        }

        SigmaRange = sigma;
        KernelSize = kernelSize;
    }

    /// <summary>Probability of blurring.</summary>
    public double Probability { get; }

    /// <summary>Sigma range in pixels.</summary>
    public (double Min, double Max) SigmaRange { get; }

    /// <summary>Fixed number of taps, or null for the official height-based rule.</summary>
    public int? KernelSize { get; }

    /// <inheritdoc />
    public override string Name => "blur";

    /// <inheritdoc />
    public override BlurParams Sample(ClipShape input, ClipRandom random)
    {
        ArgumentNullException.ThrowIfNull(random);
        bool applied = random.Bernoulli(Probability);
        float sigma = (float)random.Uniform(SigmaRange.Min, SigmaRange.Max);
        return new BlurParams(applied, sigma, KernelSize ?? ClipOps.BlurKernelSize(input.Height));
    }

    /// <inheritdoc />
    protected internal override Tensor ApplyCore(Tensor clip, BlurParams parameters, bool mayOverwriteInput) =>
        parameters.Applied ? ClipOps.GaussianBlur(clip, parameters.Sigma, parameters.KernelSize) : clip;

    /// <inheritdoc />
    public Tensor ApplyBatch(Tensor batch, IReadOnlyList<object> parameters) =>
        BatchOps.GaussianBlur(batch, [.. parameters.Select(Unbox)]);
}
