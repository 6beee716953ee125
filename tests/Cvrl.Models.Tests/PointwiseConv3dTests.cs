using Cvrl.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Models.Tests;

[Collection("Torch")]
public sealed class PointwiseConv3dTests
{
    [Theory]
    [InlineData(1, 1, 1, false)]
    [InlineData(1, 2, 2, false)]
    [InlineData(2, 2, 2, true)]
    [InlineData(1, 1, 1, true)]
    public void MatrixProduct_EqualsConv3d_ValuesAndGradients(long st, long sh, long sw, bool channelsLast)
    {
        // Float64, so that libtorch's reference convolution never goes through oneDNN (whose 1x1 plans can be wrong on
        // CPUs that report no cache sizes) and the comparison is exact up to summation order.
        using var scope = torch.NewDisposeScope();
        var g = new Generator(21);
        var input = torch.randn(new long[] { 2, 12, 5, 7, 9 }, dtype: ScalarType.Float64, generator: g);
        if (channelsLast)
        {
            input = ResNet3d.ToChannelsLast(input);
        }

        var weight = torch.randn(new long[] { 10, 12, 1, 1, 1 }, dtype: ScalarType.Float64, generator: g);
        long[] stride = [st, sh, sw];
        var x1 = input.detach().requires_grad_(true);
        var w1 = weight.detach().requires_grad_(true);
        var expected = nn.functional.conv3d(x1, w1, strides: stride);
        var x2 = input.detach().requires_grad_(true);
        var w2 = weight.detach().requires_grad_(true);
        var actual = PointwiseConv3d.MatrixProduct(x2, w2, stride);

        TorchAssert.AllClose(expected, actual, 1e-12, 1e-12);
        Assert.True(ResNet3d.IsChannelsLast(actual));
        var upstream = torch.randn(expected.shape, dtype: ScalarType.Float64, generator: g);
        (expected * upstream).sum().backward();
        (actual * upstream).sum().backward();
        TorchAssert.AllClose(x1.grad!, x2.grad!, 1e-12, 1e-12);
        TorchAssert.AllClose(w1.grad!, w2.grad!, 1e-12, 1e-12);
    }

    [Fact]
    public void Module_KeepsConv3dsStateDictKeyAndRunsEitherPath()
    {
        bool saved = PointwiseConv3d.UseMatrixProduct;
        try
        {
            using var scope = torch.NewDisposeScope();
            var conv = new PointwiseConv3d(6, 4, (1, 2, 2), null);
            conv.to(ScalarType.Float64);
            Assert.Equal(["weight"], conv.state_dict().Keys);
            Assert.Equal(new long[] { 4, 6, 1, 1, 1 }, conv.weight.shape);
            var x = torch.randn(new long[] { 3, 6, 2, 8, 8 }, dtype: ScalarType.Float64);
            PointwiseConv3d.UseMatrixProduct = false;
            var viaConv = conv.call(x);
            PointwiseConv3d.UseMatrixProduct = true;
            var viaMatmul = conv.call(x);
            Assert.Equal(new long[] { 3, 4, 2, 4, 4 }, viaMatmul.shape);
            TorchAssert.AllClose(viaConv, viaMatmul, 1e-12, 1e-12);
        }
        finally
        {
            PointwiseConv3d.UseMatrixProduct = saved;
        }
    }

    [Fact]
    public void R3d50_InFloat32_MatchesAFloat64ReferenceThatNeverUsesOneDnn()
    {
        // The whole network in float32 on this machine's kernels (whichever 1x1x1 path it takes here) against float64,
        // which libtorch runs without oneDNN. On a machine where oneDNN's 1x1 plans are wrong, the float32 run would be
        // off by tens of percent without the matrix-product path.
        torch.manual_seed(3);
        using var model = ResNet3d.R3d50();
        model.eval();
        using var x = torch.rand(new long[] { 2, 3, 4, 32, 32 });
        using var noGrad = torch.no_grad();
        using var actual = model.call(x);
        model.to(ScalarType.Float64);
        using var x64 = x.to_type(ScalarType.Float64);
        using var reference = model.call(x64);

        // float32 through 50 layers against float64: rounding grows with depth and with the ~4,600-term sums of the
        // widest convolutions; 1e-3 relative plus 1e-3 of the largest feature absolute.
        TorchAssert.AllClose(reference, actual, 1e-3, 1e-3 * reference.abs().max().item<double>());
    }
}
