using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using Cvrl.Models.Weights;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Cvrl.Models.Onnx;

/// <summary>Options of <see cref="OnnxExporter.Export"/>.</summary>
public sealed record OnnxExportOptions
{
    /// <summary>
    /// When all weights together take more bytes than this, every weight of 1 KiB or more is written to an external data
    /// file beside the model (<c>model.onnx.data</c>), as ONNX allows; below it the model is one file. A single protobuf
    /// file cannot exceed 2 GiB (CVRL's 4x-wide R3D-50 holds about 2 GB of weights). 0 always writes external data.
    /// Default 1 GiB.
    /// </summary>
    public long ExternalDataThreshold { get; init; } = 1L << 30;

    /// <summary>Frames per clip the encoder was trained on, recorded in the metadata. Default: the encoder's <see cref="ResNet3d.TrainedClips"/>, when it has them.</summary>
    public int? ClipFrames { get; init; }

    /// <summary>Temporal stride of those clips. Default: the encoder's <see cref="ResNet3d.TrainedClips"/>.</summary>
    public int? ClipStride { get; init; }

    /// <summary>Short side the frames are resized to before cropping at test time. Default: <see cref="CropSize"/>.</summary>
    public int? ShortSide { get; init; }

    /// <summary>Crop size. Default: the encoder's <see cref="ResNet3d.TrainedClips"/>.</summary>
    public int? CropSize { get; init; }

    /// <summary>More metadata entries (keys must not start with "cvrl.", which the exporter writes).</summary>
    public IReadOnlyDictionary<string, string>? Metadata { get; init; }

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    /// <exception cref="ArgumentException">A metadata key is reserved.</exception>
    public void Validate()
    {
        if (ExternalDataThreshold < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(ExternalDataThreshold), ExternalDataThreshold, "ExternalDataThreshold must be 0 or more bytes.");
        }

        foreach (var (name, value) in new[] { (nameof(ClipFrames), ClipFrames), (nameof(ClipStride), ClipStride), (nameof(ShortSide), ShortSide), (nameof(CropSize), CropSize) })
        {
            if (value is < 1)
            {
                throw new ArgumentOutOfRangeException(name, value, $"{name} must be at least 1 when set.");
            }
        }

        foreach (string key in Metadata?.Keys ?? [])
        {
            if (string.IsNullOrEmpty(key) || key.StartsWith(OnnxExporter.MetadataPrefix, StringComparison.Ordinal))
            {
                throw new ArgumentException($"Metadata key '{key}' is empty or reserved (keys starting with '{OnnxExporter.MetadataPrefix}' are written by the exporter).", nameof(Metadata));
            }
        }
    }
}

/// <summary>What <see cref="OnnxExporter.Export"/> wrote.</summary>
/// <param name="ModelPath">The .onnx file.</param>
/// <param name="ExternalDataPath">The external weight file, or null when the weights are inside the model.</param>
/// <param name="WeightBytes">Bytes of float32 weights (after folding BatchNorm).</param>
/// <param name="Nodes">Operators in the graph.</param>
/// <param name="Outputs">The graph's outputs, in order.</param>
/// <param name="Fingerprint">The encoder's <see cref="ModelWeights.Fingerprint"/>.</param>
/// <param name="Metadata">The metadata written into the model.</param>
public sealed record OnnxExportResult(string ModelPath, string? ExternalDataPath, long WeightBytes, int Nodes, IReadOnlyList<string> Outputs, string Fingerprint, IReadOnlyDictionary<string, string> Metadata);

/// <summary>
/// Writes a <see cref="ResNet3d"/> (any depth, width, layout and padding the builder makes; backbone or classifier),
/// optionally followed by its <see cref="ProjectionHead"/>, as an ONNX model for inference: ONNX Runtime and other
/// engines run it without libtorch. The graph is the network in evaluation mode: every BatchNorm is folded into the
/// convolution or linear layer before it (computed in float64, stored as float32), dropout is left out, and batch,
/// frame, height and width are dynamic.
/// </summary>
/// <remarks>
/// <para>
/// Input <c>video</c>: float32 <c>[N, 3, T, H, W]</c>, RGB, values in [0, 1] (the library's clips, no mean/std
/// normalisation), T, H and W at least <see cref="ResNet3d.MinimumInput"/>. Outputs: <c>features</c> <c>[N, D]</c>
/// (the pooled features, what embeddings are made of); <c>logits</c> in classifier mode; <c>projection</c> when a head
/// is exported. Operators (opset 17, IR version 8): Conv, Relu, Add, MaxPool, GlobalAveragePool, Flatten, Gemm.
/// </para>
/// <para>
/// Metadata (model properties, readable with ONNX Runtime's <c>ModelMetadata.CustomMetadataMap</c>): the architecture
/// and its options as JSON, input name, layout, value range and minimum size, output names, the encoder's weight
/// fingerprint, the library version, and the clip geometry when given in <see cref="OnnxExportOptions"/>.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// using var encoder = ResNet3d.R3d18(width: 0.25);
/// OnnxExporter.Export(encoder, "encoder.onnx", new OnnxExportOptions { ClipFrames = 8, ClipStride = 4, CropSize = 32, ShortSide = 32 });
/// </code>
/// </example>
public static class OnnxExporter
{
    /// <summary>The ONNX operator set the graphs use.</summary>
    public const int OpsetVersion = 17;

    /// <summary>Name of the graph input.</summary>
    public const string InputName = "video";

    /// <summary>Name of the pooled-features output.</summary>
    public const string FeaturesOutput = "features";

    /// <summary>Name of the classifier output (classifier mode only).</summary>
    public const string LogitsOutput = "logits";

    /// <summary>Name of the projection head's output (when a head is exported).</summary>
    public const string ProjectionOutput = "projection";

    /// <summary>Prefix of the metadata keys the exporter writes.</summary>
    public const string MetadataPrefix = "cvrl.";

    /// <summary>Exports <paramref name="model"/> (and <paramref name="head"/>) to <paramref name="path"/>, atomically.</summary>
    /// <param name="model">The encoder (not modified; its weights are read on the CPU).</param>
    /// <param name="path">The .onnx file to write (its folder is created).</param>
    /// <param name="options">Options (validated); null for the defaults.</param>
    /// <param name="head">A projection head to append (its input must be the model's features), or null.</param>
    /// <returns>What was written.</returns>
    /// <exception cref="NotSupportedException">The model cannot be exported: weights on the meta device, non-finite
    /// weights or BatchNorm statistics, a head that does not fit, or weights over 2 GiB without external data.</exception>
    public static OnnxExportResult Export(ResNet3d model, string path, OnnxExportOptions? options = null, ProjectionHead? head = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        options ??= new OnnxExportOptions();
        options.Validate();
        if (head is not null && head.InputDim != model.FeatureDim)
        {
            throw new NotSupportedException($"The projection head takes {head.InputDim} features but the encoder gives {model.FeatureDim}; export the head that was trained with this encoder.");
        }

        if (model.parameters().Any(p => p.device_type == DeviceType.META))
        {
            throw new NotSupportedException("The model's weights are on the meta device (no values); build it on the CPU or a GPU and load weights before exporting.");
        }

        var o = model.Options;
        var graph = new OnnxGraph();
        using (torch.no_grad())
        {
            string x = Input(graph, o.InputChannels);
            if (o.NormalizesInput)
            {
                x = InputConvention(graph, model, x);
            }

            x = ConvBn(graph, model.StemPart.Conv, x, "stem.0", relu: true);
            if (model.StemPart.HasPool)
            {
                x = model.StemPart.PoolTensorFlowSame
                    ? graph.AddNode("MaxPool", "stem.3", [x], ("kernel_shape", new long[] { 1, 3, 3 }), ("strides", new long[] { 1, 2, 2 }), ("auto_pad", "SAME_UPPER"))
                    : graph.AddNode("MaxPool", "stem.3", [x], ("kernel_shape", new long[] { 1, 3, 3 }), ("strides", new long[] { 1, 2, 2 }), ("pads", new long[] { 0, 1, 1, 0, 1, 1 }));
            }

            for (int s = 0; s < model.Stages.Count; s++)
            {
                for (int b = 0; b < model.Stages[s].Length; b++)
                {
                    x = Block(graph, model.Stages[s][b], x, $"layer{s + 1}.{b}");
                }
            }

            string pooled = graph.AddNode("GlobalAveragePool", "pool", [x]);
            string features = graph.AddNode("Flatten", FeaturesOutput, [pooled], ("axis", 1L));
            graph.AddOutput(features, "N", (long)model.FeatureDim);
            var outputs = new List<string> { features };
            if (model.Classifier is { } fc)
            {
                string logits = Gemm(graph, LogitsOutput, features, fc.weight!, fc.bias!, null);
                graph.AddOutput(logits, "N", fc.weight!.shape[0]);
                outputs.Add(logits);
            }

            if (head is not null)
            {
                string projection = Head(graph, head, features);
                graph.AddOutput(projection, "N", (long)head.Options.OutputDim);
                outputs.Add(projection);
            }

            string fingerprint = ModelWeights.Fingerprint(model);
            var metadata = Metadata(model, head, options, outputs, fingerprint);
            return Write(graph, path, options, metadata, outputs, fingerprint);
        }
    }

    /// <summary>The network's input convention as graph nodes, in the order ResNet3d applies it.</summary>
    private static string InputConvention(OnnxGraph graph, ResNet3d model, string x)
    {
        var o = model.Options;
        long[] shape = [1, o.InputChannels, 1, 1, 1];
        using var scope = torch.NewDisposeScope();
        if (o.InputChannelOrder == InputChannelOrder.Bgr)
        {
            // A 1x1x1 convolution with a permutation kernel reverses the channels (float weights only, any opset).
            var reverse = torch.zeros([3, 3, 1, 1, 1], ScalarType.Float32);
            for (int c = 0; c < 3; c++)
            {
                reverse[c, 2 - c, 0, 0, 0] = torch.tensor(1f);
            }

            x = graph.AddNode("Conv", "input.bgr", [x, graph.AddWeight("input.bgr.weight", reverse)], ("kernel_shape", new long[] { 1, 1, 1 }));
        }

        if (o.InputScale != 1.0)
        {
            x = graph.AddNode("Mul", "input.scaled", [x, graph.AddWeight("input.scale", torch.tensor(new[] { (float)o.InputScale }))]);
        }

        if (model.MeanImage is { } image)
        {
            // The mean image resized to the input's height and width (bilinear, half-pixel centres: torch's
            // interpolate with align_corners=False), the same for every frame.
            string meanImage = graph.AddWeight("input.mean_image", image.unsqueeze(0));
            string inputShape = graph.AddNode("Shape", "input.shape", [x]);
            string hw = graph.AddNode("Slice", "input.hw", [inputShape, graph.AddInt64s("input.hw.starts", 3), graph.AddInt64s("input.hw.ends", 5)]);
            string sizes = graph.AddNode("Concat", "input.mean_image.sizes", [graph.AddInt64s("input.mean_image.nc", 1, o.InputChannels), hw], ("axis", 0L));
            string resized = graph.AddNode("Resize", "input.mean_image.resized", [meanImage, string.Empty, string.Empty, sizes], ("mode", "linear"), ("coordinate_transformation_mode", "half_pixel"));
            string perFrame = graph.AddNode("Unsqueeze", "input.mean_image.frames", [resized, graph.AddInt64s("input.mean_image.axis", 2)]);
            x = graph.AddNode("Sub", "input.minus_mean_image", [x, perFrame]);
        }

        if (o.InputMean is not null)
        {
            string mean = graph.AddWeight("input.mean", torch.tensor(o.InputMean.ToArray(), ScalarType.Float32).view(shape));
            string std = graph.AddWeight("input.std", torch.tensor(o.InputStd!.ToArray(), ScalarType.Float32).view(shape));
            x = graph.AddNode("Div", "input.normalized", [graph.AddNode("Sub", "input.centred", [x, mean]), std]);
        }

        return x;
    }

    private static string Input(OnnxGraph graph, int channels)
    {
        graph.AddInput(InputName, "N", (long)channels, "T", "H", "W");
        return InputName;
    }

    private static string Block(OnnxGraph graph, nn.Module<Tensor, Tensor> block, string input, string name)
    {
        var (branch, downsample) = block switch
        {
            BasicBlock3d basic => (basic.Branch, basic.Downsample),
            Bottleneck3d bottleneck => (bottleneck.Branch, bottleneck.Downsample),
            _ => throw new NotSupportedException($"Block {name} is a {block.GetType().Name}, which the exporter does not know."),
        };
        string y = input;
        for (int i = 0; i < branch.Count; i++)
        {
            y = ConvBn(graph, branch[i], y, $"{name}.conv{i + 1}", relu: i < branch.Count - 1);
        }

        string shortcut = downsample is null ? input : ConvBn(graph, downsample, input, $"{name}.downsample", relu: false);
        string sum = graph.AddNode("Add", $"{name}.add", [y, shortcut]);
        return graph.AddNode("Relu", $"{name}.relu", [sum]);
    }

    /// <summary>A convolution with its BatchNorm folded in (float64 arithmetic) and an optional ReLU.</summary>
    private static string ConvBn(OnnxGraph graph, ConvBn layer, string input, string name, bool relu)
    {
        string weight, bias;
        using (torch.NewDisposeScope())
        {
            var (scale, shift) = FoldedBatchNorm(layer.Bn, name);
            var w = layer.Weight.detach().cpu().to(ScalarType.Float64);
            weight = AddWeight(graph, $"{name}.weight", w * scale.view(-1, 1, 1, 1, 1));
            bias = AddWeight(graph, $"{name}.bias", shift);
        }

        long[] kernel = [.. layer.Kernel];
        long[] stride = [.. layer.Stride];
        (string, object) padding = layer.TensorFlowSame
            ? ("auto_pad", "SAME_UPPER")
            : ("pads", new long[] { kernel[0] / 2, kernel[1] / 2, kernel[2] / 2, kernel[0] / 2, kernel[1] / 2, kernel[2] / 2 });
        string conv = graph.AddNode("Conv", $"{name}.conv", [input, weight, bias], ("kernel_shape", kernel), ("strides", stride), padding);
        return relu ? graph.AddNode("Relu", $"{name}.relu", [conv]) : conv;
    }

    /// <summary>BatchNorm in evaluation mode as y = scale * x + shift, per channel, in float64.</summary>
    private static (Tensor Scale, Tensor Shift) FoldedBatchNorm(CvrlBatchNorm bn, string name)
    {
        var gamma = bn.weight.detach().cpu().to(ScalarType.Float64);
        var beta = bn.bias.detach().cpu().to(ScalarType.Float64);
        var mean = bn.running_mean.cpu().to(ScalarType.Float64);
        var variance = bn.running_var.cpu().to(ScalarType.Float64);
        if (variance.lt(0).any().item<bool>())
        {
            throw new NotSupportedException($"BatchNorm {name}: a running variance is negative; the statistics are corrupt.");
        }

        var scale = gamma / (variance + bn.Eps).sqrt();
        var shift = beta - (mean * scale);
        return (scale, shift);
    }

    /// <summary>A fully connected layer <c>x W^T + b</c>, optionally followed by a folded BatchNorm.</summary>
    private static string Gemm(OnnxGraph graph, string name, string input, Tensor weight, Tensor bias, CvrlBatchNorm? bn)
    {
        string wName, bName;
        using (torch.NewDisposeScope())
        {
            var w = weight.detach().cpu().to(ScalarType.Float64);
            var b = bias.detach().cpu().to(ScalarType.Float64);
            if (bn is not null)
            {
                var (scale, shift) = FoldedBatchNorm(bn, name);
                w = w * scale.view(-1, 1);
                b = (b * scale) + shift;
            }

            wName = AddWeight(graph, $"{name}.weight", w);
            bName = AddWeight(graph, $"{name}.bias", b);
        }

        return graph.AddNode("Gemm", name, [input, wName, bName], ("transB", 1L));
    }

    private static string Head(OnnxGraph graph, ProjectionHead head, string input)
    {
        var layers = head.named_modules().Where(m => m.name.StartsWith("net.", StringComparison.Ordinal))
            .Select(m => m.module).ToList();
        string x = input;
        int hidden = 0;
        for (int i = 0; i < layers.Count; i++)
        {
            if (layers[i] is not Linear linear)
            {
                continue;
            }

            bool last = i == layers.Count - 1;
            var bn = !last && i + 1 < layers.Count ? layers[i + 1] as CvrlBatchNorm : null;
            string name = last ? ProjectionOutput : $"head.{hidden++}";
            x = Gemm(graph, name, x, linear.weight!, linear.bias!, bn);
            if (!last)
            {
                x = graph.AddNode("Relu", $"{name}.relu", [x]);
            }
        }

        return x;
    }

    /// <summary>Adds a folded weight after checking that every value is finite.</summary>
    private static string AddWeight(OnnxGraph graph, string name, Tensor values)
    {
        if (!values.isfinite().all().item<bool>())
        {
            throw new NotSupportedException($"Weight {name} holds NaN or infinite values; the model cannot be exported.");
        }

        return graph.AddWeight(name, values);
    }

    private static Dictionary<string, string> Metadata(ResNet3d model, ProjectionHead? head, OnnxExportOptions options, List<string> outputs, string fingerprint)
    {
        var (t, h, w) = model.MinimumInput;
        var json = new JsonSerializerOptions { Converters = { new JsonStringEnumConverter() } };
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["cvrl.format"] = "1",
            ["cvrl.architecture"] = model.Options.ArchitectureName,
            ["cvrl.options"] = JsonSerializer.Serialize(model.Options, json),
            ["cvrl.input"] = InputName,
            ["cvrl.input_layout"] = $"[N, {model.Options.InputChannels}, T, H, W]",
            ["cvrl.input_range"] = model.Options.NormalizesInput
                ? $"RGB float32 in [0, 1]; the graph applies the network's input convention ({model.Options.DescribeInput()})"
                : "RGB float32 in [0, 1]; no mean/std normalisation",
            ["cvrl.min_input"] = $"{t},{h},{w}",
            ["cvrl.outputs"] = string.Join(",", outputs),
            ["cvrl.feature_dim"] = model.FeatureDim.ToString(CultureInfo.InvariantCulture),
            ["cvrl.fingerprint"] = fingerprint,
            ["cvrl.batchnorm"] = "folded (float64)",
            ["cvrl.library_version"] = typeof(OnnxExporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown",
        };
        if (head is not null)
        {
            metadata["cvrl.head"] = JsonSerializer.Serialize(head.Options, json);
        }

        void Put(string key, int? value)
        {
            if (value is int v)
            {
                metadata[key] = v.ToString(CultureInfo.InvariantCulture);
            }
        }

        // The options' geometry, else the clips the encoder was trained on (short side = crop, as embedding uses them).
        var clips = model.TrainedClips;
        Put("cvrl.clip_frames", options.ClipFrames ?? clips?.FramesPerClip);
        Put("cvrl.clip_stride", options.ClipStride ?? clips?.Stride);
        Put("cvrl.short_side", options.ShortSide ?? options.CropSize ?? clips?.CropSize);
        Put("cvrl.crop_size", options.CropSize ?? clips?.CropSize);
        foreach (var (key, value) in options.Metadata ?? new Dictionary<string, string>())
        {
            metadata[key] = value;
        }

        return metadata;
    }

    private static OnnxExportResult Write(OnnxGraph graph, string path, OnnxExportOptions options, Dictionary<string, string> metadata, List<string> outputs, string fingerprint)
    {
        string full = Path.GetFullPath(path);
        long bytes = graph.WeightBytes;
        bool external = bytes > options.ExternalDataThreshold;
        const long ProtobufLimit = (2L << 30) - (64L << 20);
        if (!external && bytes > ProtobufLimit)
        {
            throw new NotSupportedException($"The weights take {bytes / (1 << 20)} MiB, more than one protobuf file can hold (2 GiB); set ExternalDataThreshold below that to write them to an external data file.");
        }

        string doc = $"{metadata["cvrl.architecture"]} exported by Cvrl; input '{InputName}' {metadata["cvrl.input_layout"]}, {metadata["cvrl.input_range"]}.";
        string? dataPath = null;
        if (external)
        {
            dataPath = full + ".data";
            string location = Path.GetFileName(dataPath);
            ProtoMessage? model = null;
            AtomicFile.Write(dataPath, stream => model = graph.ToModel("cvrl", OpsetVersion, metadata["cvrl.library_version"], metadata, doc, stream, location, 1024));
            AtomicFile.Write(full, stream => model!.WriteTo(stream));
        }
        else
        {
            var model = graph.ToModel("cvrl", OpsetVersion, metadata["cvrl.library_version"], metadata, doc, null, string.Empty, long.MaxValue);
            AtomicFile.Write(full, model.WriteTo);
            string stale = full + ".data";
            if (File.Exists(stale))
            {
                File.Delete(stale);
            }
        }

        return new OnnxExportResult(full, dataPath, bytes, graph.NodeCount, outputs, fingerprint, metadata);
    }
}
