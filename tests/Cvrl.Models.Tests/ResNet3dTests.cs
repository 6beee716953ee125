using Cvrl.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Models.Tests;

[Collection("Torch")]
public sealed class ResNet3dTests
{
    private static readonly Device Meta = torch.device("meta");

    private static long Parameters(nn.Module m) => m.parameters().Sum(p => p.numel());

    [Theory]
    [InlineData(50, 1.0, 31_672_128)]
    [InlineData(50, 2.0, 126_488_192)]
    [InlineData(50, 4.0, 505_552_128)]
    [InlineData(101, 1.0, 59_577_152)]
    [InlineData(152, 1.0, 82_036_544)]
    public void ParameterCounts_MatchTheSpec(int depth, double width, long expected)
    {
        // Built on the meta device: shapes without memory, so the 4x model costs nothing here.
        using var model = ResNet3d.Create(new ResNet3dOptions { Depth = depth, WidthMultiplier = width }, Meta);
        Assert.Equal(expected, Parameters(model));
        Assert.Equal((int)(2048 * width), model.FeatureDim);
    }

    [Fact]
    public void NamedFactories_CoverEveryDepth_WithOneParameterOrder()
    {
        var factories = new (int Depth, Func<double, int?, Device?, ResNet3d> Make)[]
        {
            (18, ResNet3d.R3d18), (34, ResNet3d.R3d34), (50, ResNet3d.R3d50), (101, ResNet3d.R3d101), (152, ResNet3d.R3d152), (200, ResNet3d.R3d200),
        };
        Assert.Equal(ResNet3dOptions.StageBlocks.Keys.Order(), factories.Select(f => f.Depth));
        foreach (var (depth, make) in factories)
        {
            using var named = make(0.5, 7, Meta);
            using var generic = ResNet3d.OfDepth(depth, 0.5, 7, Meta);
            Assert.Equal(depth, named.Options.Depth);
            Assert.Equal(0.5, named.Options.WidthMultiplier);
            Assert.Equal(7, named.Options.NumClasses);
            Assert.Equal(named.Options, generic.Options);
            Assert.Equal(Parameters(generic), Parameters(named));
        }
    }

    [Fact]
    public void R3d18_WithTorchvisionLayout_Has33371472ParametersAndTorchvisionKeys()
    {
        using var model = ResNet3d.R3d18(numClasses: 400, device: Meta);
        Assert.Equal(33_371_472, Parameters(model));
        var keys = model.state_dict().Keys.ToHashSet();
        foreach (string key in new[] { "stem.0.weight", "stem.1.running_var", "layer1.0.conv1.0.weight", "layer1.0.conv2.1.bias", "layer2.0.downsample.0.weight", "layer4.1.conv2.1.num_batches_tracked", "fc.weight", "fc.bias" })
        {
            Assert.Contains(key, keys);
        }

        Assert.Equal(122, keys.Count); // 62 parameters and 60 BatchNorm buffers, as torchvision's r3d_18
        Assert.Equal(new long[] { 64, 3, 3, 7, 7 }, model.state_dict()["stem.0.weight"].shape);
    }

    [Fact]
    public void R3d50_HasCvrlsLayout()
    {
        using var model = ResNet3d.R3d50(device: Meta);
        var sd = model.state_dict();
        Assert.Equal(new long[] { 64, 3, 5, 7, 7 }, sd["stem.0.weight"].shape);
        Assert.Equal(new long[] { 64, 64, 1, 1, 1 }, sd["layer1.0.conv1.0.weight"].shape);
        Assert.Equal(new long[] { 128, 128, 1, 3, 3 }, sd["layer2.0.conv2.0.weight"].shape);
        Assert.Equal(new long[] { 256, 512, 3, 1, 1 }, sd["layer3.0.conv1.0.weight"].shape);
        Assert.Equal(new long[] { 512, 2048, 3, 1, 1 }, sd["layer4.2.conv1.0.weight"].shape);
        Assert.Equal(new long[] { 2048, 1024, 1, 1, 1 }, sd["layer4.0.downsample.0.weight"].shape);
        Assert.DoesNotContain(sd.Keys, k => k.Contains(".bias", StringComparison.Ordinal) && k.Contains(".0.bias", StringComparison.Ordinal));
        var o = model.Options;
        Assert.Equal((5, 2, true), (o.StemTemporalKernel, o.StemTemporalStride, o.StemPool));
        Assert.Equal(new[] { 1, 1, 3, 3 }, o.StageTemporalKernels);
        Assert.Equal(WeightInit.Keras, o.Init);
        Assert.Equal(0.1, o.BatchNormMomentum);
    }

    public static TheoryData<int, double, int, int, int> Shapes => new()
    {
        { 18, 0.125, 8, 32, 32 },
        { 18, 0.25, 16, 48, 40 },
        { 34, 0.0625, 8, 32, 32 },
        { 50, 0.0625, 4, 64, 64 },
        { 50, 0.125, 16, 32, 48 },
        { 101, 0.03125, 2, 32, 32 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Forward_BothModes_GiveTheExpectedShapes(int depth, double width, int t, int h, int w)
    {
        using var scope = torch.NewDisposeScope();
        var backbone = ResNet3d.Create(new ResNet3dOptions { Depth = depth, WidthMultiplier = width });
        var classifier = ResNet3d.Create(new ResNet3dOptions { Depth = depth, WidthMultiplier = width, NumClasses = 7 });
        var x = torch.randn(new long[] { 2, 3, t, h, w });
        int feature = (depth >= 50 ? 2048 : 512) * ResNet3dOptions.Channels(64, width) / 64;
        Assert.Equal(feature, backbone.FeatureDim);
        Assert.Equal(new long[] { 2, feature }, backbone.call(x).shape);
        Assert.Equal(new long[] { 2, 7 }, classifier.call(x).shape);
        Assert.Equal(new long[] { 2, feature }, classifier.Features(x).shape);
    }

    [Fact]
    public void FeatureMap_R3d50_KeepsTimeAndReducesSpaceBy32()
    {
        using var scope = torch.NewDisposeScope();
        var model = ResNet3d.R3d50(0.0625);
        var map = model.FeatureMap(torch.randn(new long[] { 1, 3, 16, 64, 96 }));
        Assert.Equal(new long[] { 1, 128, 8, 2, 3 }, map.shape);
    }

    [Fact]
    public void TensorFlowSamePadding_GivesTheSameShapes()
    {
        using var scope = torch.NewDisposeScope();
        var same = ResNet3d.Create(new ResNet3dOptions { Depth = 50, WidthMultiplier = 0.0625, Padding = ConvPadding.TensorFlowSame });
        var sym = ResNet3d.Create(new ResNet3dOptions { Depth = 50, WidthMultiplier = 0.0625 });
        var x = torch.rand(new long[] { 1, 3, 16, 64, 64 });
        Assert.Equal(sym.FeatureMap(x).shape, same.FeatureMap(x).shape);
        Assert.Equal(new long[] { 2, 3, 2, 3, 1, 2 }, SamePadding.Pads([1, 3, 16, 224, 224], [5, 7, 7], [2, 2, 2])); // W, H, T: the larger half at the end
        Assert.Equal(new long[] { 0, 1, 0, 1, 0, 0 }, SamePadding.Pads([1, 64, 8, 112, 112], [1, 3, 3], [1, 2, 2]));
    }

    [Fact]
    public void Options_RejectBadValuesBeforeAllocating()
    {
        var depth = Assert.Throws<ArgumentOutOfRangeException>(() => ResNet3d.Create(new ResNet3dOptions { Depth = 42 }));
        Assert.Contains("18, 34, 50, 101, 152, 200", depth.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => ResNet3d.Create(new ResNet3dOptions { WidthMultiplier = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => ResNet3d.Create(new ResNet3dOptions { WidthMultiplier = -1 }));
        var tiny = Assert.Throws<ArgumentOutOfRangeException>(() => ResNet3d.Create(new ResNet3dOptions { WidthMultiplier = 0.005 }));
        Assert.Contains("fewer than one channel", tiny.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => ResNet3d.Create(new ResNet3dOptions { NumClasses = 0 }));
        Assert.Throws<ArgumentException>(() => ResNet3d.Create(new ResNet3dOptions { StageTemporalKernels = [1, 3] }));
        Assert.Throws<ArgumentOutOfRangeException>(() => ResNet3d.Create(new ResNet3dOptions { StageTemporalKernels = [1, 2, 3, 3] }));
        Assert.Throws<ArgumentOutOfRangeException>(() => ResNet3d.Create(new ResNet3dOptions { StemTemporalKernel = 4 }));
    }

    [Fact]
    public void Forward_RejectsBadInputsWithTheMinimumSize()
    {
        using var scope = torch.NewDisposeScope();
        var model = ResNet3d.R3d50(0.0625);
        Assert.Equal((2, 32, 32), model.MinimumInput);
        Assert.Contains("5 dimensions", Assert.Throws<ArgumentException>(() => model.call(torch.rand(3, 8, 64, 64))).Message, StringComparison.Ordinal);
        Assert.Contains("3 input channels", Assert.Throws<ArgumentException>(() => model.call(torch.rand(new long[] { 1, 1, 8, 64, 64 }))).Message, StringComparison.Ordinal);
        var small = Assert.Throws<ArgumentException>(() => model.call(torch.rand(new long[] { 1, 3, 8, 16, 64 })));
        Assert.Contains("minimum is 2 x 32 x 32", small.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => model.call(torch.zeros(new long[] { 1, 3, 8, 64, 64 }, ScalarType.Byte)));
        using var r18 = ResNet3d.R3d18();
        Assert.Equal((8, 16, 16), r18.MinimumInput);
        Assert.Contains("minimum is 8 x 16 x 16", Assert.Throws<ArgumentException>(() => r18.call(torch.rand(new long[] { 1, 3, 4, 32, 32 }))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void KerasInit_HasTheOfficialScale()
    {
        using var model = ResNet3d.R3d50(0.25);
        var w = model.state_dict()["layer3.0.conv1.0.weight"]; // [64, 128, 3, 1, 1]: fan-in 384
        double std = Math.Sqrt(1.0 / 384) / 0.87962566103423978 * 0.87962566103423978; // truncation at 2 sd shrinks the sd by 0.8796
        Assert.InRange(w.std().item<float>(), std * 0.95, std * 1.05);
        Assert.True(w.abs().max().item<float>() <= 2 * Math.Sqrt(1.0 / 384) / 0.87962566103423978 + 1e-6);
        Assert.Equal(1f, model.state_dict()["stem.1.weight"].mean().item<float>());
        using var zero = ResNet3d.Create(new ResNet3dOptions { Depth = 50, WidthMultiplier = 0.25, ZeroInitResidual = true });
        Assert.Equal(0f, zero.state_dict()["layer2.1.conv3.1.weight"].abs().sum().item<float>());
    }

    [Fact]
    public void ForwardBackward_DoNotLeakTensors()
    {
        using var model = ResNet3d.R3d50(0.0625, numClasses: 3);
        using var head = new ProjectionHead(model.FeatureDim, new ProjectionHeadOptions { HiddenDim = 16, OutputDim = 8 });
        using var x = torch.rand(new long[] { 2, 3, 4, 32, 32 });
        long before = LiveTensors.Settled();
        for (int i = 0; i < 3; i++)
        {
            using var scope = torch.NewDisposeScope();
            var logits = model.call(x);
            var z = head.call(model.Features(x));
            var loss = logits.sum() + z.pow(2).mean();
            loss.backward();
        }

        model.zero_grad(set_to_none: true);
        head.zero_grad(set_to_none: true);
        Assert.Equal(before, LiveTensors.Count);
    }
}
