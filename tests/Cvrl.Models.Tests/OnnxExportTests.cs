using Cvrl.Models.Onnx;
using Cvrl.Models.Weights;
using Cvrl.Testing;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;
using OrtTensors = Microsoft.ML.OnnxRuntime.Tensors;

namespace Cvrl.Models.Tests;

/// <summary>
/// Exported graphs run in ONNX Runtime to the outputs of the TorchSharp module in evaluation mode, for both layouts,
/// both padding modes, depths 18 and 50, widths 0.25x to 2x (R3D-18 2x: 133M parameters, 530 MB), classifier mode and a
/// projection head.
/// </summary>
/// <remarks>
/// Tolerance: the two runtimes sum the same products in different orders and the exported kernels carry BatchNorm's
/// scale folded in (one extra float32 rounding per weight). Each output is a chain of about 20 (depth 18) to 53 (depth 50)
/// convolutions of up to a few thousand terms; float32 summation of n terms is exact to about sqrt(n) x 6e-8 relative, a
/// few 1e-6 per layer, and the residual sums keep errors from growing through depth. Measured max differences are
/// 1e-6 to 1e-5 of the output's scale, so each element must lie within 1e-4 x max|output| + 1e-4 x |expected|: ten
/// times the worst measurement, and still a thousand times smaller than a wrong padding or a missed BatchNorm (which
/// move outputs by 1e-2 to 1 of their scale).
/// </remarks>
public sealed class OnnxExportTests
{
    public static TheoryData<string> Configurations => ["r3d18", "r3d18-cvrl-stem", "r3d18-half", "r3d18-2x", "r3d50", "r3d50-tf-same", "r3d18-classifier-head", "slow-r50-normalising", "imagenet-convention"];

    [Theory]
    [MemberData(nameof(Configurations))]
    public void Exported_graph_matches_TorchSharp(string configuration)
    {
        var (options, input, head) = Configuration(configuration);
        using var dir = new TempDirectory();
        using var model = ResNet3d.Create(options);
        using var headModule = head ? new ProjectionHead(model.FeatureDim, new ProjectionHeadOptions { HiddenDim = 24, HiddenLayers = 2, OutputDim = 16 }) : null;
        Randomise(model, seed: 1);
        if (model.MeanImage is { } meanImage)
        {
            using var noGrad = torch.no_grad();
            meanImage.uniform_(80, 140, new torch.Generator(5));
        }

        if (headModule is not null)
        {
            Randomise(headModule, seed: 2);
        }

        var result = OnnxExporter.Export(model, dir.File("model.onnx"), head: headModule);
        Assert.Null(result.ExternalDataPath);

        using var session = new InferenceSession(result.ModelPath);
        foreach (long[] shape in input)
        {
            using var scope = torch.NewDisposeScope();
            var x = torch.rand(shape, generator: new torch.Generator(3));
            var outputs = RunOnnx(session, x);
            using (torch.no_grad())
            {
                model.eval();
                var features = model.Features(x);
                AssertClose(features, outputs[OnnxExporter.FeaturesOutput], configuration);
                if (model.IsClassifier)
                {
                    AssertClose(model.call(x), outputs[OnnxExporter.LogitsOutput], configuration);
                }

                if (headModule is not null)
                {
                    headModule.eval();
                    AssertClose(headModule.call(features), outputs[OnnxExporter.ProjectionOutput], configuration);
                }
            }
        }
    }

    [Fact]
    public void External_data_loads_and_matches()
    {
        using var dir = new TempDirectory();
        using var model = ResNet3d.R3d18(width: 0.25);
        Randomise(model, seed: 4);
        var result = OnnxExporter.Export(model, dir.File("big/encoder.onnx"), new OnnxExportOptions { ExternalDataThreshold = 0 });

        Assert.Equal(dir.File("big/encoder.onnx.data"), result.ExternalDataPath);
        long modelBytes = new FileInfo(result.ModelPath).Length;
        long dataBytes = new FileInfo(result.ExternalDataPath!).Length;
        Assert.True(modelBytes < 64 * 1024, $"the model file holds {modelBytes} bytes; its weights should be outside it");
        Assert.True(dataBytes >= result.WeightBytes * 0.99, $"external data {dataBytes} bytes for {result.WeightBytes} bytes of weights");
        Assert.Equal(["encoder.onnx", "encoder.onnx.data"], Directory.GetFiles(dir.File("big")).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        // The data file is found relative to the model, wherever the process runs.
        using var session = new InferenceSession(result.ModelPath);
        using var scope = torch.NewDisposeScope();
        var x = torch.rand([2, 3, 8, 32, 32], generator: new torch.Generator(5));
        model.eval();
        using (torch.no_grad())
        {
            AssertClose(model.Features(x), RunOnnx(session, x)[OnnxExporter.FeaturesOutput], "external");
        }

        // Exporting again without external data replaces both files with one.
        var inline = OnnxExporter.Export(model, result.ModelPath);
        Assert.Null(inline.ExternalDataPath);
        Assert.False(File.Exists(result.ExternalDataPath));
        Assert.True(new FileInfo(inline.ModelPath).Length > result.WeightBytes);
    }

    [Fact]
    public void Metadata_says_what_the_model_expects()
    {
        using var dir = new TempDirectory();
        using var model = ResNet3d.R3d50(width: 0.25);
        string before = ModelWeights.Fingerprint(model);
        var result = OnnxExporter.Export(
            model,
            dir.File("m.onnx"),
            new OnnxExportOptions { ClipFrames = 8, ClipStride = 4, ShortSide = 40, CropSize = 32, Metadata = new Dictionary<string, string> { ["dataset"] = "synthetic" } });

        Assert.Equal(before, ModelWeights.Fingerprint(model));
        Assert.Equal(before, result.Fingerprint);
        using var session = new InferenceSession(result.ModelPath);
        var map = session.ModelMetadata.CustomMetadataMap;
        Assert.Equal(before, map["cvrl.fingerprint"]);
        Assert.Equal(model.Options.ArchitectureName, map["cvrl.architecture"]);
        Assert.Equal("[N, 3, T, H, W]", map["cvrl.input_layout"]);
        Assert.Equal("8", map["cvrl.clip_frames"]);
        Assert.Equal("4", map["cvrl.clip_stride"]);
        Assert.Equal("40", map["cvrl.short_side"]);
        Assert.Equal("32", map["cvrl.crop_size"]);
        Assert.Equal("synthetic", map["dataset"]);
        Assert.Equal($"{model.MinimumInput.Frames},{model.MinimumInput.Height},{model.MinimumInput.Width}", map["cvrl.min_input"]);
        Assert.Contains("\"Padding\":\"Symmetric\"", map["cvrl.options"], StringComparison.Ordinal);
        Assert.Equal("Cvrl", session.ModelMetadata.ProducerName);

        // Dynamic axes: batch, frames, height and width are symbols; channels and features are fixed.
        var input = session.InputMetadata[OnnxExporter.InputName];
        Assert.Equal([-1, 3, -1, -1, -1], input.Dimensions);
        Assert.Equal(["N", string.Empty, "T", "H", "W"], input.SymbolicDimensions);
        Assert.Equal([-1, model.FeatureDim], session.OutputMetadata[OnnxExporter.FeaturesOutput].Dimensions);
    }

    [Fact]
    public void Refuses_what_cannot_be_exported()
    {
        using var dir = new TempDirectory();
        using var meta = ResNet3d.R3d18(width: 0.25, device: torch.device("meta"));
        var e = Assert.Throws<NotSupportedException>(() => OnnxExporter.Export(meta, dir.File("meta.onnx")));
        Assert.Contains("meta device", e.Message, StringComparison.Ordinal);

        using var model = ResNet3d.R3d18(width: 0.25);
        using var head = new ProjectionHead(64, new ProjectionHeadOptions { HiddenDim = 8, HiddenLayers = 1, OutputDim = 4 });
        e = Assert.Throws<NotSupportedException>(() => OnnxExporter.Export(model, dir.File("head.onnx"), head: head));
        Assert.Contains("takes 64 features but the encoder gives 128", e.Message, StringComparison.Ordinal);

        using (torch.no_grad())
        {
            ((nn.Module)model).named_parameters().First(p => p.name == "layer2.0.conv1.0.weight").parameter[0, 0, 0, 0, 0] = float.NaN;
        }

        e = Assert.Throws<NotSupportedException>(() => OnnxExporter.Export(model, dir.File("nan.onnx")));
        Assert.Contains("layer2.0.conv1.weight", e.Message, StringComparison.Ordinal);

        Assert.Throws<ArgumentOutOfRangeException>(() => OnnxExporter.Export(model, dir.File("x.onnx"), new OnnxExportOptions { ClipFrames = 0 }));
        Assert.Throws<ArgumentException>(() => OnnxExporter.Export(model, dir.File("x.onnx"), new OnnxExportOptions { Metadata = new Dictionary<string, string> { ["cvrl.fingerprint"] = "x" } }));

        // Nothing was left behind by the failed exports.
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Export_frees_every_tensor_it_makes()
    {
        using var dir = new TempDirectory();
        using var model = ResNet3d.R3d18(width: 0.25);
        using var head = new ProjectionHead(model.FeatureDim, new ProjectionHeadOptions { HiddenDim = 8, HiddenLayers = 1, OutputDim = 4 });
        OnnxExporter.Export(model, dir.File("warm.onnx"), head: head);
        long before = LiveTensors.Settled();
        OnnxExporter.Export(model, dir.File("again.onnx"), head: head);
        Assert.Equal(before, LiveTensors.Settled());
    }

    private static (ResNet3dOptions Options, long[][] Inputs, bool Head) Configuration(string name) => name switch
    {
        "r3d18" => (new() { Depth = 18, WidthMultiplier = 0.25 }, [[2, 3, 8, 32, 32], [1, 3, 9, 36, 44]], false),
        "r3d18-cvrl-stem" => (new() { Depth = 18, WidthMultiplier = 0.25, StemTemporalKernel = 5, StemTemporalStride = 2, StemPool = true }, [[2, 3, 16, 32, 32], [1, 3, 18, 38, 34]], false),
        "r3d18-half" => (new() { Depth = 18, WidthMultiplier = 0.5 }, [[1, 3, 8, 32, 32]], false),
        "r3d18-2x" => (new() { Depth = 18, WidthMultiplier = 2 }, [[1, 3, 8, 16, 16]], false),
        "r3d50" => (new() { Depth = 50, WidthMultiplier = 0.25 }, [[2, 3, 8, 32, 32], [1, 3, 5, 40, 36]], false),
        "r3d50-tf-same" => (new() { Depth = 50, WidthMultiplier = 0.25, Padding = ConvPadding.TensorFlowSame }, [[1, 3, 9, 33, 35], [2, 3, 8, 32, 32]], false),
        "r3d18-classifier-head" => (new() { Depth = 18, WidthMultiplier = 0.25, NumClasses = 5 }, [[2, 3, 8, 32, 32]], true),
        "slow-r50-normalising" => (new() { Depth = 50, WidthMultiplier = 0.125, StemTemporalKernel = 1, StemTemporalStride = 1, InputMean = [0.485, 0.456, 0.406], InputStd = [0.229, 0.224, 0.225] }, [[2, 3, 8, 32, 32]], false),
        // An inflated ImageNet network's convention (BGR, 8-bit values, a mean image resized to the input, then a mean and
        // std per channel) and a non-standard block layout; the second input is the mean image's own size.
        "imagenet-convention" => (new() { Depth = 18, WidthMultiplier = 0.25, Blocks = [2, 2, 2, 3], StemPool = true, InputChannelOrder = InputChannelOrder.Bgr, InputScale = 255, InputMeanImageSize = [3, 40, 36], InputMean = [1, 2, 3], InputStd = [50, 60, 70] }, [[2, 3, 8, 32, 48], [1, 3, 8, 40, 36]], false),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "unknown configuration"),
    };

    /// <summary>Random weights and BatchNorm statistics far from the identity, so that folding is exercised.</summary>
    private static void Randomise(nn.Module module, int seed)
    {
        using var generator = new torch.Generator((ulong)seed);
        using var noGrad = torch.no_grad();
        foreach (var (_, m) in module.named_modules())
        {
            if (m is CvrlBatchNorm bn)
            {
                bn.weight.uniform_(0.5, 1.5, generator);
                bn.bias.uniform_(-0.2, 0.2, generator);
                bn.running_mean.uniform_(-0.2, 0.2, generator);
                bn.running_var.uniform_(0.5, 2.0, generator);
            }
            else if (m is TorchSharp.Modules.Linear linear)
            {
                linear.bias!.uniform_(-0.1, 0.1, generator);
            }
        }
    }

    private static Dictionary<string, Tensor> RunOnnx(InferenceSession session, Tensor x)
    {
        var values = x.contiguous().data<float>().ToArray();
        var tensor = new OrtTensors.DenseTensor<float>(values, [.. x.shape.Select(d => (int)d)]);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(OnnxExporter.InputName, tensor)]);
        return results.ToDictionary(
            r => r.Name,
            r =>
            {
                var t = r.AsTensor<float>();
                return torch.tensor(t.ToArray(), [.. t.Dimensions.ToArray().Select(d => (long)d)]);
            });
    }

    private static void AssertClose(Tensor expected, Tensor actual, string configuration)
    {
        double scale = expected.abs().max().item<float>();
        Assert.True(scale > 0, $"{configuration}: the reference output is all zeros");
        TorchAssert.AllClose(expected, actual, relative: 1e-4, absolute: 1e-4 * scale);
    }
}
