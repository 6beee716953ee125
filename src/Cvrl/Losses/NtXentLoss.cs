using Cvrl.Augment.Functional;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Losses;

/// <summary>How <see cref="NtXentLoss"/> combines its two directions.</summary>
public enum NtXentReduction
{
    /// <summary>
    /// The official code's <c>loss_a + loss_b</c>: each direction is the mean over its anchors, and the two are summed.
    /// Its gradients are twice those of <see cref="MeanOfDirections"/>, so with plain SGD it behaves like that form at
    /// twice the learning rate. The default, so that the official learning rates mean the same thing.
    /// </summary>
    SumOfDirections,

    /// <summary>The mean over all 2N anchors (the form usually written in papers): half of <see cref="SumOfDirections"/>.</summary>
    MeanOfDirections,
}

/// <summary>What <see cref="NtXentLoss.Compute"/> returns: scalar tensors on the embeddings' device (no host sync).</summary>
public sealed class NtXentOutput : IDisposable
{
    internal NtXentOutput(Tensor loss, Tensor accuracy, Tensor entropy)
    {
        Loss = loss;
        Accuracy = accuracy;
        Entropy = entropy;
    }

    /// <summary>The loss (a differentiable scalar).</summary>
    public Tensor Loss { get; }

    /// <summary>
    /// Contrastive top-1 accuracy as the official code logs it: the fraction of view-1 clips whose most similar view-2
    /// clip is their own positive (over the N x N view-1 to view-2 similarities).
    /// </summary>
    public Tensor Accuracy { get; }

    /// <summary>Mean entropy (nats) of the softmax over the view-1 to view-2 similarities, as the official code logs it.</summary>
    public Tensor Entropy { get; }

    /// <summary>Releases the three tensors.</summary>
    public void Dispose()
    {
        Loss.Dispose();
        Accuracy.Dispose();
        Entropy.Dispose();
    }
}

/// <summary>
/// The NT-Xent (normalised temperature-scaled cross-entropy, InfoNCE) loss of CVRL and SimCLR, as the official code
/// computes it (docs/method.md section 4): embeddings L2-normalised; for each of the N view-1 anchors the positive is its
/// own view-2 clip and the negatives are the other 2N - 2 clips of the batch (self-similarity masked out); the same from
/// the view-2 side; softmax cross-entropy over cosine similarity divided by the temperature.
/// </summary>
/// <remarks>
/// Computed in float32 whatever the embeddings' dtype (half and bfloat16 inputs are upcast), with the masked entries set
/// to -1e9 and the cross-entropy taken through log-softmax, so it stays finite at small temperatures.
/// </remarks>
public sealed class NtXentLoss
{
    /// <summary>CVRL's temperature, 0.1 (docs/method.md): the default here and of <c>CvrlTrainerOptions.Temperature</c>.</summary>
    public const double DefaultTemperature = 0.1;

    private const double MaskValue = 1e9;

    /// <summary>Creates the loss.</summary>
    /// <param name="temperature">Softmax temperature (default <see cref="DefaultTemperature"/>).</param>
    /// <param name="reduction">How the two directions combine (default: the official sum).</param>
    /// <exception cref="ArgumentOutOfRangeException">The temperature is not positive.</exception>
    public NtXentLoss(double temperature = DefaultTemperature, NtXentReduction reduction = NtXentReduction.SumOfDirections)
    {
        if (!(temperature > 0) || double.IsInfinity(temperature))
        {
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "The temperature must be a positive finite number.");
        }

        if (!Enum.IsDefined(reduction))
        {
            throw new ArgumentOutOfRangeException(nameof(reduction), reduction, "Unknown reduction.");
        }

        Temperature = temperature;
        Reduction = reduction;
    }

    /// <summary>The temperature.</summary>
    public double Temperature { get; }

    /// <summary>The reduction.</summary>
    public NtXentReduction Reduction { get; }

    /// <summary>Computes the loss for N positive pairs.</summary>
    /// <param name="z1">View-1 embeddings <c>[N, D]</c> (not necessarily normalised).</param>
    /// <param name="z2">View-2 embeddings <c>[N, D]</c>, row i the positive of row i of <paramref name="z1"/>.</param>
    /// <returns>Loss, accuracy and entropy; the caller owns them.</returns>
    /// <exception cref="ArgumentException">The shapes differ, are not 2-D, or N is below 2.</exception>
    public NtXentOutput Compute(Tensor z1, Tensor z2)
    {
        ArgumentNullException.ThrowIfNull(z1);
        ArgumentNullException.ThrowIfNull(z2);
        if (z1.dim() != 2 || !z1.shape.SequenceEqual(z2.shape))
        {
            throw new ArgumentException($"Expected two embeddings of shape [N, D], got [{string.Join(", ", z1.shape)}] and [{string.Join(", ", z2.shape)}].", nameof(z2));
        }

        long n = z1.shape[0];
        if (n < 2)
        {
            throw new ArgumentException($"NT-Xent needs at least 2 pairs (negatives come from the other pairs); got {n}.", nameof(z1));
        }

        using var scope = torch.NewDisposeScope();
        var h1 = nn.functional.normalize(z1.to_type(ScalarType.Float32), p: 2, dim: 1);
        var h2 = nn.functional.normalize(z2.to_type(ScalarType.Float32), p: 2, dim: 1);
        // Explicit scalars, disposed after use: see TorchScalars (src/Shared/Common/TorchScalars.cs) for why.
        using var inv = ((float)(1.0 / Temperature)).ToScalar();
        using var maskValue = ((float)MaskValue).ToScalar();
        using var half = 0.5f.ToScalar();
        using var tiny = 1e-8f.ToScalar();
        var mask = torch.eye(n, device: z1.device, dtype: ScalarType.Float32).mul_(maskValue);
        var ab = h1.matmul(h2.t()).mul_(inv);
        var aa = h1.matmul(h1.t()).mul_(inv).sub_(mask);
        var ba = h2.matmul(h1.t()).mul_(inv);
        var bb = h2.matmul(h2.t()).mul_(inv).sub_(mask);
        var labels = torch.arange(n, device: z1.device, dtype: ScalarType.Int64);
        var lossA = nn.functional.cross_entropy(torch.cat([ab, aa], 1), labels);
        var lossB = nn.functional.cross_entropy(torch.cat([ba, bb], 1), labels);
        var loss = Reduction == NtXentReduction.SumOfDirections ? lossA.add(lossB, TorchScalars.One) : lossA.add(lossB, TorchScalars.One).mul(half);

        using var noGrad = torch.no_grad();
        var accuracy = ab.argmax(1).eq(labels).to_type(ScalarType.Float32).mean();
        var probabilities = ab.softmax(1);
        var entropy = probabilities.mul(probabilities.add(tiny, TorchScalars.One).log()).sum(1).mean().neg();
        return new NtXentOutput(loss.MoveToOuterDisposeScope(), accuracy.MoveToOuterDisposeScope(), entropy.MoveToOuterDisposeScope());
    }
}
