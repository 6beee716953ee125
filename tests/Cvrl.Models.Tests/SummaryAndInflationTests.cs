using Cvrl.Models.Weights;
using Cvrl.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Models.Tests;

[Collection("Torch")]
public sealed class SummaryAndInflationTests
{
    [Fact]
    public void Summary_R3d50_CountsTheSpecsMacsAndParameters()
    {
        using var model = ResNet3d.R3d50();
        var summary = ModelSummary.Create(model, 1, 3, 16, 224, 224);
        Assert.Equal(31_672_128, summary.TotalParameters);
        Assert.Equal(summary.TotalParameters, summary.Layers.Sum(l => l.Parameters));
        // docs/method.md section 3: 45.5 G multiply-accumulates for a 16 x 224 x 224 clip.
        Assert.InRange(summary.TotalMacs / 1e9, 45.4, 45.6);
        Assert.Equal(new long[] { 1, 2048 }, summary.OutputShape);
        var stem = summary.Layers.First();
        Assert.Equal("stem.0", stem.Name);
        Assert.Equal(new long[] { 1, 64, 8, 112, 112 }, stem.OutputShape);
        Assert.Equal(3L * 64 * 5 * 7 * 7, stem.Parameters);
        Assert.Equal(64L * 8 * 112 * 112 * 3 * 5 * 7 * 7, stem.Macs);
        Assert.Contains(summary.Layers, l => l.Name == "stem.3" && l.Type == "MaxPool3d" && l.OutputShape.SequenceEqual(new long[] { 1, 64, 8, 56, 56 }));
        Assert.Contains(summary.Layers, l => l.Name == "layer4.2.conv3.0" && l.OutputShape.SequenceEqual(new long[] { 1, 2048, 8, 7, 7 }));
        string table = summary.ToString();
        Assert.Contains("multiply-accumulates", table, StringComparison.Ordinal);
        Assert.Contains("layer3.5.conv1.0", table, StringComparison.Ordinal);
        Assert.True(model.training, "the summary restores the training mode");
    }

    [Fact]
    public void Summary_HeadAndClassifier()
    {
        using var head = new ProjectionHead(2048);
        var summary = ModelSummary.Create(head, 2, 2048);
        Assert.Equal(12_863_616, summary.TotalParameters);
        Assert.Equal(2L * ((3 * 2048 * 2048) + (2048 * 128)), summary.TotalMacs);
        Assert.Equal(new long[] { 2, 128 }, summary.OutputShape);
    }

    [Fact]
    public void ProjectionHead_HasCvrlsShapesAndDefaults()
    {
        using var head = new ProjectionHead(8192, device: torch.device("meta"));
        var sd = head.state_dict();
        Assert.Equal(new long[] { 2048, 8192 }, sd["net.0.weight"].shape);
        Assert.Equal(new long[] { 128, 2048 }, sd["net.9.weight"].shape);
        Assert.Contains("net.7.running_var", sd.Keys);
        Assert.Equal(0.003, head.Options.BatchNormMomentum);
        using var small = new ProjectionHead(16, new ProjectionHeadOptions { HiddenDim = 8, HiddenLayers = 1, OutputDim = 4 });
        using var y = small.call(torch.rand(5, 16));
        Assert.Equal(new long[] { 5, 4 }, y.shape);
        Assert.Throws<ArgumentException>(() => small.call(torch.rand(5, 15)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ProjectionHead(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ProjectionHead(8, new ProjectionHeadOptions { OutputDim = 0 }));
        Assert.Equal(0f, small.state_dict()["net.0.bias"].abs().sum().item<float>());
    }

    [Fact]
    public void Inflation_StaticClipGivesThe2dResponse()
    {
        // torchvision's 2D ResNet-50 (TorchSharp's TorchVision package), random weights and BatchNorm statistics.
        using var scope = torch.NewDisposeScope();
        var resnet2d = torchvision.models.resnet50();
        using (torch.no_grad())
        {
            foreach (var (name, t) in resnet2d.state_dict())
            {
                if (name.EndsWith("running_mean", StringComparison.Ordinal))
                {
                    t.copy_(torch.randn_like(t) * 0.1);
                }
                else if (name.EndsWith("running_var", StringComparison.Ordinal))
                {
                    t.copy_(torch.rand_like(t) + 0.5);
                }
            }
        }

        resnet2d.eval();
        var model = ResNet3d.R3d50();
        var report = Inflation.FromResNet2d(model, resnet2d);
        Assert.Equal(new[] { "fc.bias", "fc.weight" }, report.Skipped.Order());
        Assert.Empty(report.Missing);
        Assert.Contains(report.Mapped, m => m.Source == "conv1.weight" && m.Target == "stem.0.weight" && m.TemporalKernel == 5);
        Assert.Contains(report.Mapped, m => m.Source == "layer3.0.conv1.weight" && m.Target == "layer3.0.conv1.0.weight" && m.TemporalKernel == 3);
        Assert.Contains(report.Mapped, m => m.Source == "layer2.0.bn2.running_var" && m.Target == "layer2.0.conv2.1.running_var");
        Assert.Contains(report.Mapped, m => m.Source == "layer1.0.downsample.0.weight");
        model.eval();

        // A clip of identical frames: away from the first and last frames (temporal zero padding), the 3D network's
        // final feature map equals the 2D network's.
        var image = torch.rand(1, 3, 64, 64);
        var clip = image.unsqueeze(2).expand(1, 3, 48, 64, 64).contiguous();
        using var noGrad = torch.no_grad();
        var map3d = model.FeatureMap(clip); // [1, 2048, 24, 2, 2]
        var map2d = Run2dTrunk(resnet2d, image);
        var center = map3d.select(2, 12);
        // 2D and 3D kernels sum the same products in different orders over ~4,600 terms per output (3 x 3 x 512):
        // 1e-3 of the map's scale absolute plus 1e-3 relative covers float32 rounding with room for other kernels.
        TorchAssert.AllClose(map2d, center, 1e-3, 1e-3 * map2d.abs().max().item<float>());
    }

    [Fact]
    public void Inflation_Strict_RejectsAnotherWidth()
    {
        using var scope = torch.NewDisposeScope();
        var resnet2d = torchvision.models.resnet18();
        var model = ResNet3d.R3d18(0.5);
        var e = Assert.Throws<WeightsMismatchException>(() => Inflation.FromResNet2d(model, resnet2d));
        Assert.NotEmpty(e.Report!.ShapeMismatches);
        Assert.Equal("stem.0.weight", Inflation.MapKey("conv1.weight"));
        Assert.Equal("layer2.1.conv3.1.running_mean", Inflation.MapKey("layer2.1.bn3.running_mean"));
        Assert.Equal("layer4.0.downsample.1.weight", Inflation.MapKey("layer4.0.downsample.1.weight"));
        Assert.Null(Inflation.MapKey("avgpool.weight"));
    }

    private static Tensor Run2dTrunk(TorchSharp.Modules.ResNet net, Tensor image)
    {
        // conv1 -> bn1 -> relu -> maxpool -> layer1..4 (torchvision's ResNet without pooling and fc).
        var modules = net.named_children().ToDictionary(c => c.name, c => (nn.Module<Tensor, Tensor>)c.module);
        var x = modules["conv1"].call(image);
        x = modules["bn1"].call(x).relu();
        x = modules["maxpool"].call(x);
        foreach (string layer in new[] { "layer1", "layer2", "layer3", "layer4" })
        {
            x = modules[layer].call(x);
        }

        return x;
    }
}
