using Cvrl.Losses;
using Cvrl.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Tests;

[Collection("Torch")]
public sealed class LossTests
{
    [Fact]
    public void NtXent_MatchesAHandComputation()
    {
        // Two orthonormal pairs at temperature 1: each anchor's row is [1 (positive), 0, -inf (self), 0]:
        // cross-entropy log(1 + 2/e) per anchor and direction; the official reduction sums the two directions.
        using var scope = torch.NewDisposeScope();
        var z = torch.tensor(new float[] { 1, 0, 0, 1 }).reshape(2, 2);
        var loss = new NtXentLoss(temperature: 1).Compute(z, z);
        double expected = 2 * Math.Log(1 + (2 / Math.E));
        // A float32 log-sum-exp over four logits: a few units in the last place, far inside 1e-5 relative.
        TorchAssert.Near(expected, loss.Loss.item<float>(), 1e-5, 1e-6);
        var mean = new NtXentLoss(temperature: 1, NtXentReduction.MeanOfDirections).Compute(z, z);
        TorchAssert.Near(expected / 2, mean.Loss.item<float>(), 1e-5, 1e-6);

        // At temperature 0.5 the logits double: log(1 + 2 e^-2) per anchor and direction.
        var sharp = new NtXentLoss(temperature: 0.5).Compute(z, z);
        TorchAssert.Near(2 * Math.Log(1 + (2 * Math.Exp(-2))), sharp.Loss.item<float>(), 1e-5, 1e-6);
    }

    [Fact]
    public void NtXent_UsesAllOther2NMinus2ClipsAsNegatives()
    {
        // N = 3 identical embeddings except the positive: every non-self entry equals the positive, so each anchor's
        // softmax spreads over 1 positive + 2N - 2 = 4 negatives equally: loss log(5) per anchor and direction.
        using var scope = torch.NewDisposeScope();
        var z = torch.ones(3, 4);
        var output = new NtXentLoss(temperature: 0.1).Compute(z, z);
        TorchAssert.Near(2 * Math.Log(5), output.Loss.item<float>(), 1e-5, 1e-6);
        TorchAssert.Near(Math.Log(3), output.Entropy.item<float>(), 1e-5, 1e-6); // uniform over the 3 view-2 clips
        TorchAssert.Near(1.0 / 3, output.Accuracy.item<float>(), 1e-6, 0);    // argmax ties resolve to the first column
    }

    [Fact]
    public void NtXent_AccuracyAndEntropyOnConstructedCases()
    {
        using var scope = torch.NewDisposeScope();
        var basis = torch.eye(4);
        var perfect = new NtXentLoss(temperature: 0.01).Compute(basis, basis);
        Assert.Equal(1f, perfect.Accuracy.item<float>());
        Assert.True(perfect.Entropy.item<float>() < 1e-3);
        var swapped = new NtXentLoss(temperature: 0.01).Compute(basis, basis.flip(0));
        Assert.Equal(0f, swapped.Accuracy.item<float>());
    }

    [Fact]
    public void NtXent_IsInvariantToEmbeddingScale()
    {
        using var scope = torch.NewDisposeScope();
        var g = new Generator(1);
        var z1 = torch.randn(new long[] { 5, 8 }, generator: g);
        var z2 = torch.randn(new long[] { 5, 8 }, generator: g);
        var loss = new NtXentLoss();
        // Normalising 8 components rounds differently at each scale (a few ulps per cosine); over the ten logits of a row
        // and the mean over rows that stays below 1e-6 relative. 1e-5 relative leaves a factor 10 for other kernels.
        TorchAssert.Near(loss.Compute(z1, z2).Loss.item<float>(), loss.Compute(z1 * 7.5f, z2 * 0.01f).Loss.item<float>(), 1e-5, 1e-6);
    }

    [Fact]
    public void NtXent_GradientMatchesFiniteDifferences()
    {
        using var scope = torch.NewDisposeScope();
        var g = new Generator(2);
        var z1 = torch.randn(new long[] { 3, 4 }, dtype: ScalarType.Float64, generator: g).requires_grad_(true);
        var z2 = torch.randn(new long[] { 3, 4 }, dtype: ScalarType.Float64, generator: g);
        var loss = new NtXentLoss(temperature: 0.5);
        loss.Compute(z1, z2).Loss.backward();
        var analytic = z1.grad!.clone();
        const double eps = 1e-3;
        using var noGrad = torch.no_grad();
        for (int i = 0; i < 3; i++)
        {
            for (int j = 0; j < 4; j++)
            {
                var plus = z1.detach().clone();
                plus[i, j] += eps;
                var minus = z1.detach().clone();
                minus[i, j] -= eps;
                double numeric = (loss.Compute(plus, z2).Loss.item<float>() - loss.Compute(minus, z2).Loss.item<float>()) / (2 * eps);
                Assert.InRange(analytic[i, j].item<double>() - numeric, -2e-3, 2e-3);
            }
        }
    }

    [Fact]
    public void NtXent_IsStableAtSmallTemperaturesAndInHalfPrecision()
    {
        using var scope = torch.NewDisposeScope();
        var g = new Generator(3);
        var z1 = torch.randn(new long[] { 16, 32 }, generator: g);
        var z2 = z1 + (torch.randn(new long[] { 16, 32 }, generator: g) * 0.1f);
        var cold = new NtXentLoss(temperature: 0.001).Compute(z1, z2);
        Assert.True(float.IsFinite(cold.Loss.item<float>()));
        var reference = new NtXentLoss().Compute(z1, z2).Loss.item<float>();
        foreach (var dtype in new[] { ScalarType.Float16, ScalarType.BFloat16 })
        {
            var half = new NtXentLoss().Compute(z1.to_type(dtype), z2.to_type(dtype)).Loss;
            Assert.Equal(ScalarType.Float32, half.dtype);
            Assert.InRange(half.item<float>(), reference - 0.05, reference + 0.05);
        }
    }

    [Fact]
    public void NtXent_RejectsBadShapes()
    {
        var loss = new NtXentLoss();
        Assert.Throws<ArgumentException>(() => loss.Compute(torch.ones(3, 4), torch.ones(3, 5)));
        Assert.Throws<ArgumentException>(() => loss.Compute(torch.ones(1, 4), torch.ones(1, 4)));
        Assert.Throws<ArgumentException>(() => loss.Compute(torch.ones(4), torch.ones(4)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new NtXentLoss(0));
    }
}
