using Cvrl.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Models.Tests;

[Collection("Torch")]
public sealed class CvrlBatchNormTests
{
    [Theory]
    [InlineData(2)]
    [InlineData(5)]
    public void MatchesTorchSharpsBatchNorm_InTrainingAndEvaluation(int dimensions)
    {
        using var scope = torch.NewDisposeScope();
        var g = new Generator(9);
        long[] shape = dimensions == 2 ? [6, 4] : [3, 4, 2, 3, 5];
        var ours = new CvrlBatchNorm(4, dimensions, eps: 1e-3, momentum: 0.2);
        nn.Module<Tensor, Tensor> reference = dimensions == 2 ? nn.BatchNorm1d(4, eps: 1e-3, momentum: 0.2) : nn.BatchNorm3d(4, eps: 1e-3, momentum: 0.2);
        using (torch.no_grad())
        {
            var gamma = torch.rand(4, generator: g).add_(0.5.ToScalar(), 1.ToScalar());
            ours.weight.copy_(gamma);
            ((TorchSharp.Modules.NormBase)reference).weight!.copy_(gamma);
        }

        Assert.Equal(["bias", "num_batches_tracked", "running_mean", "running_var", "weight"], ours.state_dict().Keys.Order(StringComparer.Ordinal));
        for (int step = 0; step < 3; step++)
        {
            var x = torch.randn(shape, generator: g).mul_(2.0.ToScalar());
            TorchAssert.AllClose(reference.call(x), ours.call(x), 1e-5, 1e-5);
        }

        var referenceState = reference.state_dict();
        foreach (var key in new[] { "running_mean", "running_var", "num_batches_tracked" })
        {
            TorchAssert.AllClose(referenceState[key], ours.state_dict()[key], 1e-6, 1e-6);
        }

        ours.eval();
        reference.eval();
        var y = torch.randn(shape, generator: g);
        TorchAssert.AllClose(reference.call(y), ours.call(y), 1e-5, 1e-5);
        Assert.Throws<ArgumentException>(() => ours.call(torch.ones(2, 3)));
    }

    [Fact]
    public void NullMomentum_AveragesEveryBatchSinceTheReset()
    {
        using var scope = torch.NewDisposeScope();
        var bn = new CvrlBatchNorm(2, 2, momentum: 0.1);
        bn.call(torch.full(new long[] { 4, 2 }, 9f));
        bn.ResetRunningStatistics();
        Assert.Equal(0, bn.num_batches_tracked.item<long>());
        bn.Momentum = null;
        var batches = new[] { torch.tensor(new float[] { 1, 2, 3, 4 }).reshape(2, 2), torch.tensor(new float[] { 5, 6, 9, 10 }).reshape(2, 2) };
        foreach (var b in batches)
        {
            bn.call(b);
        }

        // Means per batch: (2, 3) and (7, 8); unbiased variances: (2, 2) and (8, 8).
        TorchAssert.AllClose(torch.tensor(new float[] { 4.5f, 5.5f }), bn.running_mean, 1e-6, 1e-6);
        TorchAssert.AllClose(torch.tensor(new float[] { 5, 5 }), bn.running_var, 1e-6, 1e-6);
        Assert.Throws<ArgumentOutOfRangeException>(() => bn.Momentum = 0);
    }
}
