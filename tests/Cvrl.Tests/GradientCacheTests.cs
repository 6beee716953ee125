using Cvrl.Losses;
using Cvrl.Models;
using Cvrl.Testing;
using Cvrl.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Tests;

[Collection("Torch")]
public sealed class GradientCacheTests
{
    private static (ResNet3d Encoder, ProjectionHead Head) Models(int seed)
    {
        torch.manual_seed(seed);
        var encoder = ResNet3d.R3d50(1.0 / 16);
        var head = new ProjectionHead(encoder.FeatureDim, new ProjectionHeadOptions { HiddenDim = 16, OutputDim = 8 });
        return (encoder, head);
    }

    private static Dictionary<string, Tensor> Grads(ResNet3d encoder, ProjectionHead head) =>
        encoder.named_parameters().Select(p => ("e." + p.name, p.parameter))
            .Concat(head.named_parameters().Select(p => ("h." + p.name, p.parameter)))
            .ToDictionary(x => x.Item1, x => x.Item2.grad!.clone());

    /// <summary>
    /// Chunked and full-batch gradients add the same per-clip contributions in another order: a parameter's gradient
    /// sums thousands of float32 products (batch x positions), whose rounding is about sqrt(terms) x 1.2e-7 of their
    /// magnitude. 1e-3 relative plus 1e-4 of the tensor's largest entry absolute (entries that nearly cancel) holds that
    /// with a wide margin for other CPU kernels; a wrong chunk share of the gradient would be off by tens of percent.
    /// </summary>
    private static void AssertGradientsClose(Tensor expected, Tensor actual) =>
        TorchAssert.AllClose(expected, actual, 1e-3, 1e-4 * Math.Max(expected.abs().max().item<float>(), 1e-12f));

    [Fact]
    public void GradientCache_EqualsTheFullBatch_WhenTheForwardDoesNotDependOnTheBatch()
    {
        // BatchNorm in inference mode: chunking cannot change the forward pass, so the gradients must be the full batch's.
        using var scope = torch.NewDisposeScope();
        var g = new Generator(4);
        var v1 = torch.rand(new long[] { 6, 3, 4, 32, 32 }, generator: g);
        var v2 = torch.rand(new long[] { 6, 3, 4, 32, 32 }, generator: g);
        var loss = new NtXentLoss();

        var (e1, h1) = Models(11);
        e1.eval();
        h1.eval();
        var z = h1.call(e1.call(torch.cat([v1, v2], 0)));
        var full = loss.Compute(z.narrow(0, 0, 6), z.narrow(0, 6, 6));
        full.Loss.backward();
        var expected = Grads(e1, h1);

        var (e2, h2) = Models(11);
        e2.eval();
        h2.eval();
        var cached = new GradientCache(2).ForwardBackward(x => h2.call(e2.call(x)), v1, v2, loss, [e2, h2]);
        var actual = Grads(e2, h2);

        TorchAssert.Near(full.Loss.item<float>(), cached.Loss.item<float>(), 1e-5, 1e-6);
        Assert.Equal(expected.Keys, actual.Keys);
        foreach (var key in expected.Keys)
        {
            AssertGradientsClose(expected[key], actual[key]);
        }
    }

    [Fact]
    public void GradientCache_InTrainingMode_MatchesPerChunkBatchNorm_AndUpdatesRunningStatisticsOnce()
    {
        using var scope = torch.NewDisposeScope();
        var g = new Generator(5);
        var v1 = torch.rand(new long[] { 4, 3, 4, 32, 32 }, generator: g);
        var v2 = torch.rand(new long[] { 4, 3, 4, 32, 32 }, generator: g);
        var loss = new NtXentLoss();

        // Reference: each chunk of 2 videos through the network with gradients, one loss over all embeddings.
        var (e1, h1) = Models(12);
        var parts1 = new List<Tensor>();
        var parts2 = new List<Tensor>();
        foreach (long start in new long[] { 0, 2 })
        {
            var z = h1.call(e1.call(torch.cat([v1.narrow(0, start, 2), v2.narrow(0, start, 2)], 0)));
            parts1.Add(z.narrow(0, 0, 2));
            parts2.Add(z.narrow(0, 2, 2));
        }

        loss.Compute(torch.cat(parts1, 0), torch.cat(parts2, 0)).Loss.backward();
        var expected = Grads(e1, h1);

        var (e2, h2) = Models(12);
        new GradientCache(2).ForwardBackward(x => h2.call(e2.call(x)), v1, v2, loss, [e2, h2]);
        var actual = Grads(e2, h2);
        foreach (var key in expected.Keys)
        {
            AssertGradientsClose(expected[key], actual[key]);
        }

        TorchAssert.AllClose(e1.state_dict()["stem.1.running_mean"], e2.state_dict()["stem.1.running_mean"], 1e-5, 1e-6);
        TorchAssert.AllClose(h1.state_dict()["net.1.running_var"], h2.state_dict()["net.1.running_var"], 1e-5, 1e-6);
    }
}
