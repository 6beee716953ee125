using System.Reflection;
using Cvrl.Models.Onnx;
using Cvrl.Models.Weights;
using Cvrl.Testing;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;
using OrtTensors = Microsoft.ML.OnnxRuntime.Tensors;

namespace Cvrl.Models.Tests;

/// <summary>
/// 2D ImageNet ResNets in, inflated 3D encoders out: ML.NET's ImageNet ResNet-18 (restored from NuGet with the test
/// project), a bottleneck ResNet generated here as an ONNX graph with arbitrary names, folded BatchNorm and its
/// normalisation in the graph, and a torchvision state dict. Inflated with temporal kernels of 1, an encoder computes
/// the 2D network's features frame by frame, so on a clip of identical frames its pooled features must be the 2D
/// network's, as ONNX Runtime (or TorchSharp's 2D module) computes them from the same image with its preprocessing.
/// </summary>
/// <remarks>
/// Tolerance, as for the exporter's parity (OnnxExportTests): each output is a chain of 20 (ResNet-18) to 53 (ResNet-50)
/// convolutions of up to 4,608 float32 terms, summed in another order by the other runtime, which also folds BatchNorm
/// into the kernels (one more rounding per weight); float32 sums of n terms are exact to about sqrt(n) x 6e-8, a few 1e-6
/// per layer, kept from growing by the residual sums. The input is rescaled once more here (x / 255 x 255: at most one
/// rounding, 2e-5 pixel units against the preprocessing's mean image). Each feature must lie within 1e-4 x |expected| +
/// 1e-4 x max|expected|; a channel order, a mean image or a BatchNorm mapped wrongly moves features by 1e-2 to 1 of that
/// scale.
/// </remarks>
[Collection("Torch")]
public sealed class ImageNetImportTests
{
    private static readonly ImageNetImportOptions FrameWise = new() { StemTemporalKernel = 1, StemTemporalStride = 1, StageTemporalKernels = [1, 1, 1, 1] };

    private static string MlNetModels { get; } = Path.GetFullPath(
        typeof(ImageNetImportTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "ResNet18Package").Value!);

    [Fact]
    public void The_NuGet_ImageNet_ResNet18_inflates_into_an_encoder_that_computes_its_features()
    {
        string model = Path.Combine(MlNetModels, "ResNet18Onnx", "ResNet18.onnx");
        string prep = Path.Combine(MlNetModels, "ResNetPrepOnnx", "ResNetPreprocess.onnx");
        Assert.True(File.Exists(model), $"the NuGet package Microsoft.ML.DnnImageFeaturizer.ResNet18 0.24.0 is not restored at {MlNetModels}");
        using var imported = ImageNetImporter.Import(model, FrameWise);
        var report = imported.Report;
        // CNTK's "ResNet-18" has a third block in its last stage: 22 convolutions, not torchvision's 20.
        Assert.Equal("ResNet-18-like (basic blocks 2, 2, 2, 3), width 1", report.Network);
        Assert.Equal([2, 2, 2, 3], imported.Encoder.Options.BlocksPerStage);
        Assert.StartsWith("ONNX graph from CNTK", report.Format, StringComparison.Ordinal);
        var fromFile = report.Mapped.Where(m => !m.Target.EndsWith("num_batches_tracked", StringComparison.Ordinal)).ToList();
        Assert.Equal(22 * 5, fromFile.Count); // each convolution with its BatchNorm's four tensors: all 110 initializers
        Assert.Empty(report.Unused);
        Assert.All(fromFile, m => Assert.Matches("^(Parameter|Constant)[0-9]+$", m.Source));
        Assert.Contains(report.Notes, n => n.Contains("ResNetPreprocess.onnx", StringComparison.Ordinal));
        var o = imported.Encoder.Options;
        Assert.Equal((InputChannelOrder.Bgr, 255.0), (o.InputChannelOrder, o.InputScale));
        Assert.Equal([3, 224, 224], o.InputMeanImageSize!);
        Assert.Null(o.InputMean);

        using var scope = torch.NewDisposeScope();
        var image = TestImage(224, 224, seed: 5);                                    // RGB pixel values, [3, 224, 224]
        using var prepSession = new InferenceSession(prep);
        using var netSession = new InferenceSession(model);
        var prepared = Run(prepSession, "OriginalInput", image.unsqueeze(0));
        var expected = Run(netSession, "Input247", prepared).reshape(1, 512);
        var actual = Features(imported.Encoder, image, frames: 4);
        AssertClose(expected, actual);

        // The mean image is part of the encoder's state: it is in the weights, and the fingerprint changes with it.
        string before = ModelWeights.Fingerprint(imported.Encoder);
        Assert.True(imported.Encoder.state_dict().ContainsKey(ResNet3d.MeanImageBuffer));
        using (torch.no_grad())
        {
            imported.Encoder.state_dict()[ResNet3d.MeanImageBuffer].add_(1);
        }

        Assert.NotEqual(before, ModelWeights.Fingerprint(imported.Encoder));
    }

    [Fact]
    public void A_generated_bottleneck_ResNet_with_other_names_folded_BatchNorm_and_in_graph_normalisation_computes_its_features()
    {
        using var dir = new TempDirectory();
        string path = dir.File("resnet50-tiny.onnx");
        GeneratedResNet.Write(path, depth: 50, width: 1.0 / 32, seed: 3, foldBatchNorm: true);
        using var imported = ImageNetImporter.Import(path, FrameWise);
        Assert.Equal("ResNet-50 (bottleneck blocks 3, 4, 6, 3), width 0.031", imported.Report.Network);
        Assert.Equal(53, imported.Report.FoldedBatchNorms);
        var o = imported.Encoder.Options;
        Assert.Equal((InputChannelOrder.Rgb, 1.0), (o.InputChannelOrder, o.InputScale));
        Assert.Equal(GeneratedResNet.Mean, o.InputMean!.Select(v => Math.Round(v, 6)));
        Assert.Contains("inferred from the means", imported.Report.InputSource, StringComparison.Ordinal);

        using var scope = torch.NewDisposeScope();
        var image = TestImage(64, 64, seed: 6);
        using var session = new InferenceSession(path);
        var expected = Run(session, "pixels", image.div(255).unsqueeze(0)).flatten(1); // the graph takes RGB in [0, 1]
        var actual = Features(imported.Encoder, image, frames: 2);
        AssertClose(expected, actual);

        // The same network with its BatchNorm layers as nodes, and the paper's inflation (5-frame stem, 1, 1, 3, 3): the
        // same mapping, and on a clip of identical frames long enough that the middle frames see no temporal padding,
        // the pooled features stay close (the edge frames differ, as zero padding in time has it).
        string withBn = dir.File("resnet50-tiny-bn.onnx");
        GeneratedResNet.Write(withBn, depth: 50, width: 1.0 / 32, seed: 3, foldBatchNorm: false);
        using var unfolded = ImageNetImporter.Import(withBn, FrameWise);
        Assert.Equal(0, unfolded.Report.FoldedBatchNorms);
        using var bnSession = new InferenceSession(withBn);
        AssertClose(Run(bnSession, "pixels", image.div(255).unsqueeze(0)).flatten(1), Features(unfolded.Encoder, image, frames: 2));
        using var paper = ImageNetImporter.Import(withBn);
        Assert.Equal((5, 2), (paper.Encoder.Options.StemTemporalKernel!.Value, paper.Encoder.Options.StemTemporalStride!.Value));
        Assert.Equal([1, 1, 3, 3], paper.Encoder.Options.StageTemporalKernels!);
    }

    [Fact]
    public void A_torchvision_state_dict_with_a_wrapper_prefix_inflates_with_torchvisions_input_convention()
    {
        using var dir = new TempDirectory();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(11);
        using var resnet = torchvision.models.resnet18();
        resnet.eval();
        var weights = resnet.state_dict().ToDictionary(kv => "module." + kv.Key, kv => kv.Value);
        string pth = dir.File("resnet18.pth");
        string safetensors = dir.File("resnet18.safetensors");
        StateDictFile.Write(pth, weights, WeightFormat.PyTorch);
        StateDictFile.Write(safetensors, weights, WeightFormat.Safetensors);

        var image = TestImage(64, 64, seed: 8);
        var mean = torch.tensor(new[] { 0.485f, 0.456f, 0.406f }).view(1, 3, 1, 1);
        var std = torch.tensor(new[] { 0.229f, 0.224f, 0.225f }).view(1, 3, 1, 1);
        var expected = TwoDimensionalFeatures(resnet, image.div(255).unsqueeze(0).sub(mean).div(std));
        foreach (string file in new[] { pth, safetensors })
        {
            using var imported = ImageNetImporter.Import(file, FrameWise);
            Assert.Equal("ResNet-18 (basic blocks 2, 2, 2, 2), width 1", imported.Report.Network);
            Assert.Contains("module.fc.weight", imported.Report.Unused);
            Assert.Contains(imported.Report.Notes, n => n.Contains("torchvision's ImageNet input convention", StringComparison.Ordinal));
            AssertClose(expected, Features(imported.Encoder, image, frames: 3));
        }
    }

    [Fact]
    public void What_is_not_an_image_ResNet_is_refused_by_name()
    {
        using var dir = new TempDirectory();
        string text = dir.File("notes.onnx");
        File.WriteAllText(text, "not a model");
        var e = Assert.Throws<InvalidDataException>(() => ImageNetImporter.Import(text));
        Assert.Contains(text, e.Message, StringComparison.Ordinal);

        // A ResNet v1 (Caffe layout) strides the first 1x1 convolution of a bottleneck: named, not mis-mapped.
        string caffe = dir.File("caffe.onnx");
        GeneratedResNet.Write(caffe, depth: 50, width: 1.0 / 32, seed: 1, foldBatchNorm: false, strideOnFirst: true);
        var v1 = Assert.Throws<InvalidDataException>(() => ImageNetImporter.Import(caffe));
        Assert.Contains("Caffe style", v1.Message, StringComparison.Ordinal);

        Assert.Throws<FileNotFoundException>(() => ImageNetImporter.Import(dir.File("missing.onnx")));
        Assert.Throws<ArgumentOutOfRangeException>(() => ImageNetImporter.Import(caffe, new ImageNetImportOptions { StemTemporalKernel = 2 }));
    }

    /// <summary>A deterministic image of pixel values in [0, 255] (smooth gradients and blocks), RGB [3, H, W].</summary>
    internal static Tensor TestImage(int height, int width, int seed)
    {
        var generator = new Random(seed);
        var pixels = new float[3 * height * width];
        double[] phase = [generator.NextDouble() * 6, generator.NextDouble() * 6, generator.NextDouble() * 6];
        for (int c = 0; c < 3; c++)
        {
            for (int y = 0; y < height; y++)
            {
                for (int x = 0; x < width; x++)
                {
                    double value = 127.5 + (100 * Math.Sin((x * 0.11) + (y * 0.07 * (c + 1)) + phase[c])) + (((x / 16) + (y / 16)) % 2 == 0 ? 20 : -20);
                    pixels[(((c * height) + y) * width) + x] = (float)Math.Round(Math.Clamp(value, 0, 255));
                }
            }
        }

        return torch.tensor(pixels, [3, height, width]);
    }

    /// <summary>The encoder's pooled features for a clip of <paramref name="frames"/> copies of a pixel-valued image (fed as Cvrl feeds: [0, 1]).</summary>
    private static Tensor Features(ResNet3d encoder, Tensor image, int frames)
    {
        encoder.eval();
        using var noGrad = torch.no_grad();
        var clip = image.div(255).unsqueeze(1).expand(3, frames, image.shape[1], image.shape[2]).unsqueeze(0).contiguous();
        return encoder.forward(clip);
    }

    private static Tensor TwoDimensionalFeatures(nn.Module<Tensor, Tensor> resnet, Tensor x)
    {
        using var noGrad = torch.no_grad();
        foreach (var (name, child) in resnet.named_children())
        {
            if (name == "fc")
            {
                break;
            }

            x = ((nn.Module<Tensor, Tensor>)child).call(x);
        }

        return x.flatten(1);
    }

    private static Tensor Run(InferenceSession session, string input, Tensor x)
    {
        var values = x.contiguous().data<float>().ToArray();
        var tensor = new OrtTensors.DenseTensor<float>(values, [.. x.shape.Select(d => (int)d)]);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(input, tensor)]);
        var t = results.First().AsTensor<float>();
        return torch.tensor(t.ToArray(), [.. t.Dimensions.ToArray().Select(d => (long)d)]);
    }

    private static void AssertClose(Tensor expected, Tensor actual)
    {
        double scale = expected.abs().max().item<float>();
        Assert.True(scale > 0, "the reference features are all zeros");
        Assert.Equal(expected.shape, actual.shape);
        TorchAssert.AllClose(expected, actual, relative: 1e-4, absolute: 1e-4 * scale);
    }
}

/// <summary>
/// Writes a 2D ResNet as an ONNX graph with the project's graph writer, the way exporters other than torchvision's lay
/// them out: every tensor named "w{n}", its normalisation (minus a per-channel mean, divided by a standard deviation, on
/// RGB in [0, 1]) as the first nodes, BatchNorm folded into the convolutions' kernels and biases or kept as nodes, a
/// global average pool at the end.
/// </summary>
internal static class GeneratedResNet
{
    public static readonly double[] Mean = [0.45, 0.5, 0.55];
    public static readonly double[] Std = [0.2, 0.25, 0.3];

    public static void Write(string path, int depth, double width, int seed, bool foldBatchNorm, bool strideOnFirst = false)
    {
        var random = new Random(seed);
        var graph = new OnnxGraph();
        int n = 0;
        using var scope = torch.NewDisposeScope();
        string Weight(Tensor t) => graph.AddWeight($"w{n++}", t);
        string Node(string op, IReadOnlyList<string> inputs, params (string, object)[] attributes) => graph.AddNode(op, $"n{n++}", inputs, attributes);
        Tensor Random(params long[] shape) => torch.tensor([.. Enumerable.Range(0, (int)shape.Aggregate(1L, (a, b) => a * b)).Select(_ => (float)((random.NextDouble() * 2) - 1))], shape);

        string ConvBn(string x, long inC, long outC, long k, long stride, bool relu)
        {
            var kernel = Random(outC, inC, k, k).mul(Math.Sqrt(2.0 / (inC * k * k)));
            var gamma = Random(outC).mul(0.2).add(1);
            var beta = Random(outC).mul(0.1);
            var mean = Random(outC).mul(0.1);
            var variance = Random(outC).abs().mul(0.5).add(0.5);
            long pad = k / 2;
            (string, object)[] attrs = [("kernel_shape", new long[] { k, k }), ("strides", new long[] { stride, stride }), ("pads", new long[] { pad, pad, pad, pad })];
            string y;
            if (foldBatchNorm)
            {
                var scale = gamma.div(variance.add(1e-5).sqrt());
                y = Node("Conv", [x, Weight(kernel.mul(scale.view(-1, 1, 1, 1))), Weight(beta.sub(mean.mul(scale)))], attrs);
            }
            else
            {
                y = Node("BatchNormalization", [Node("Conv", [x, Weight(kernel)], attrs), Weight(gamma), Weight(beta), Weight(mean), Weight(variance)], ("epsilon", 1e-5f));
            }

            return relu ? Node("Relu", [y]) : y;
        }

        graph.AddInput("pixels", 1L, 3L, "H", "W");
        string x = Node("Sub", ["pixels", Weight(torch.tensor(Mean.Select(v => (float)v).ToArray()).view(1, 3, 1, 1))]);
        x = Node("Div", [x, Weight(torch.tensor(Std.Select(v => (float)v).ToArray()).view(1, 3, 1, 1))]);
        long stem = (long)Math.Round(64 * width);
        x = ConvBn(x, 3, stem, 7, 2, relu: true);
        x = Node("MaxPool", [x], ("kernel_shape", new long[] { 3, 3 }), ("strides", new long[] { 2, 2 }), ("pads", new long[] { 1, 1, 1, 1 }));
        bool bottleneck = depth >= 50;
        long inChannels = stem;
        int[] blocks = ResNet3dOptions.StageBlocks[depth];
        for (int s = 0; s < 4; s++)
        {
            long planes = (long)Math.Round((64 << s) * width);
            long outChannels = bottleneck ? planes * 4 : planes;
            for (int b = 0; b < blocks[s]; b++)
            {
                long stride = b == 0 && s > 0 ? 2 : 1;
                string main = bottleneck
                    ? ConvBn(ConvBn(ConvBn(x, inChannels, planes, 1, strideOnFirst ? stride : 1, true), planes, planes, 3, strideOnFirst ? 1 : stride, true), planes, outChannels, 1, 1, false)
                    : ConvBn(ConvBn(x, inChannels, planes, 3, stride, true), planes, planes, 3, 1, false);
                string shortcut = stride != 1 || inChannels != outChannels ? ConvBn(x, inChannels, outChannels, 1, stride, false) : x;
                x = Node("Relu", [Node("Add", [main, shortcut])]);
                inChannels = outChannels;
            }
        }

        x = Node("GlobalAveragePool", [x]);
        graph.AddOutput(x, 1L, inChannels, 1L, 1L);
        var model = graph.ToModel("generated", 13, "test", new Dictionary<string, string>(), "a generated 2D ResNet", null, string.Empty, long.MaxValue);
        using var file = File.Create(path);
        model.WriteTo(file);
    }
}
