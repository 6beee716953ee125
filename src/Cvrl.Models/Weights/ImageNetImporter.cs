using System.Globalization;
using Cvrl.Models.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Models.Weights;

/// <summary>
/// Options for <see cref="ImageNetImporter.Import"/>: how the 2D network is inflated in time, and its input convention
/// where the file does not say it. Validated there.
/// </summary>
public sealed record ImageNetImportOptions
{
    /// <summary>
    /// An ONNX model that prepares the 2D network's input (ML.NET's <c>ResNetPreprocess.onnx</c>: RGB to BGR, minus a mean
    /// image); its steps become part of the encoder's input convention. Null: none, except that beside an ML.NET image
    /// featurizer's model (<c>.../ResNet18Onnx/ResNet18.onnx</c>) the package's <c>../ResNetPrepOnnx/ResNetPreprocess.onnx</c>
    /// is found and used (the report says so). Default null.
    /// </summary>
    public string? PreprocessingModel { get; init; }

    /// <summary>
    /// The pixel range the 2D network's input (before any preprocessing steps the files contain) expects: 255 for 8-bit
    /// values, 1 for [0, 1]. Null: inferred: 255 when the files subtract means above 1.5 (pixel units), else 1. Default null.
    /// </summary>
    public double? InputRange { get; init; }

    /// <summary>
    /// The per-channel mean and standard deviation of a network whose files hold no preprocessing (a bare graph or a state
    /// dict), in units of <see cref="InputRange"/>; null for torchvision's ImageNet values (0.485, 0.456, 0.406 and 0.229,
    /// 0.224, 0.225 on RGB in [0, 1]). Ignored when the files hold preprocessing. Set both or neither.
    /// </summary>
    public IReadOnlyList<double>? InputMean { get; init; }

    /// <inheritdoc cref="InputMean"/>
    public IReadOnlyList<double>? InputStd { get; init; }

    /// <summary>The channel order of a network whose files do not say it; null for RGB (torchvision). Ignored when the files reorder channels.</summary>
    public InputChannelOrder? ChannelOrder { get; init; }

    /// <summary>
    /// Temporal kernel of the inflated stem; CVRL's R3D-50 (the paper's inflated baseline) has 5. Use 1 for a network that
    /// computes exactly the 2D network's features frame by frame. Default 5.
    /// </summary>
    public int StemTemporalKernel { get; init; } = 5;

    /// <summary>Temporal stride of the stem. Default 2 (CVRL's R3D-50).</summary>
    public int StemTemporalStride { get; init; } = 2;

    /// <summary>Temporal kernel of each stage's inflated convolutions (both 3x3 convolutions of a basic block, the first 1x1 of a bottleneck). Default 1, 1, 3, 3 (CVRL's R3D-50).</summary>
    public IReadOnlyList<int> StageTemporalKernels { get; init; } = [1, 1, 3, 3];

    /// <summary>Temporal stride of each stage's first block. Default 1, 1, 1, 1.</summary>
    public IReadOnlyList<int> StageTemporalStrides { get; init; } = [1, 1, 1, 1];

    /// <summary>The clips to record as the encoder's (<see cref="ResNet3d.TrainedClips"/>): the views embedding and evaluation default to. Null: none (their own defaults). Default null.</summary>
    public ClipGeometry? Clips { get; init; }

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    /// <exception cref="ArgumentException">Per-stage lists of the wrong length, or a mean without a standard deviation.</exception>
    public void Validate()
    {
        if (InputRange is double range && (!double.IsFinite(range) || !(range > 0)))
        {
            throw new ArgumentOutOfRangeException(nameof(InputRange), range, "InputRange must be positive: 255 for 8-bit pixel values, 1 for [0, 1].");
        }

        if ((InputMean is null) != (InputStd is null))
        {
            throw new ArgumentException("InputMean and InputStd go together: set both or neither.", nameof(InputMean));
        }

        if (ChannelOrder is { } order && !Enum.IsDefined(order))
        {
            throw new ArgumentOutOfRangeException(nameof(ChannelOrder), order, "Unknown channel order.");
        }

        // The layout is checked by the options of the network it builds.
        new ResNet3dOptions
        {
            Depth = 18,
            StemTemporalKernel = StemTemporalKernel,
            StemTemporalStride = StemTemporalStride,
            StageTemporalKernels = StageTemporalKernels,
            StageTemporalStrides = StageTemporalStrides,
            InputMean = InputMean,
            InputStd = InputStd,
        }.Validate();
    }
}

/// <summary>What <see cref="ImageNetImporter.Import"/> found and did.</summary>
public sealed record ImageNetImportReport
{
    /// <summary>The file.</summary>
    public required string Path { get; init; }

    /// <summary>What kind of file it was ("ONNX graph from CNTK 2.6, opset 8", "PyTorch state dict", "safetensors").</summary>
    public required string Format { get; init; }

    /// <summary>The 2D network: "ResNet-18 (basic blocks 2, 2, 2, 2), width 1".</summary>
    public required string Network { get; init; }

    /// <summary>The options of the inflated encoder.</summary>
    public required ResNet3dOptions Encoder { get; init; }

    /// <summary>Every 2D tensor placed in the 3D network (for an ONNX graph, the source names are its initializers').</summary>
    public required IReadOnlyList<InflatedTensor> Mapped { get; init; }

    /// <summary>Tensors of the files with no place in the encoder (the ImageNet classifier, for example).</summary>
    public required IReadOnlyList<string> Unused { get; init; }

    /// <summary>BatchNorm layers that were folded into their convolutions in the file (and are rebuilt as identities plus a bias).</summary>
    public int FoldedBatchNorms { get; init; }

    /// <summary>Where the input convention came from.</summary>
    public required string InputSource { get; init; }

    /// <summary>Assumptions made and other remarks.</summary>
    public required IReadOnlyList<string> Notes { get; init; }
}

/// <summary>An inflated ImageNet encoder and what its import found.</summary>
public sealed class ImageNetImport : IDisposable
{
    internal ImageNetImport(ResNet3d encoder, ImageNetImportReport report)
    {
        Encoder = encoder;
        Report = report;
    }

    /// <summary>The inflated encoder (a backbone returning pooled features), with the 2D network's input convention.</summary>
    public ResNet3d Encoder { get; }

    /// <summary>What was found and mapped.</summary>
    public ImageNetImportReport Report { get; }

    /// <summary>Disposes the encoder.</summary>
    public void Dispose() => Encoder.Dispose();
}

/// <summary>
/// Real visual knowledge for video encoders: reads a 2D ImageNet ResNet (depth 18, 34, 50 or 101; basic or bottleneck
/// blocks) from an ONNX file (found by walking the graph, whatever its tensors are called: the 7x7 stem, each residual
/// block from its addition back to its input, BatchNorm present or folded into the convolutions, preprocessing steps
/// at the front or in a separate preprocessing model) or from a torchvision-style state dict (.pth, .pt, .safetensors),
/// and inflates it into a <see cref="ResNet3d"/> of the same depth and width (<see cref="Inflation"/>: each 2D kernel
/// spread over its 3D kernel's temporal extent), carrying the input convention it was trained with (channel order,
/// value range, mean image or mean, standard deviation) into the encoder, so that embedding, training, evaluation and
/// ONNX export feed it as it expects. This is the paper's "ImageNet inflated" baseline, and the start a CPU user adapts
/// with CVRL.
/// </summary>
/// <example>
/// <code>
/// using var imported = ImageNetImporter.Import("ResNet18.onnx");   // from the Microsoft.ML.DnnImageFeaturizer.ResNet18 package
/// Console.WriteLine(imported.Report.Encoder.DescribeInput());       // channels reversed to BGR, x 255, minus a 3x224x224 mean image
/// CvrlCheckpoint.WriteEncoder("imagenet_r3d18.cvrl", imported.Encoder, source: "ImageNet ResNet-18, inflated");
/// </code>
/// </example>
public static class ImageNetImporter
{
    private static readonly double[] s_torchvisionMean = [0.485, 0.456, 0.406];
    private static readonly double[] s_torchvisionStd = [0.229, 0.224, 0.225];

    /// <summary>Reads and inflates a 2D ResNet.</summary>
    /// <param name="path">An ONNX model (.onnx) or a state dict (.pth, .pt, .bin, .safetensors) with torchvision's names.</param>
    /// <param name="options">Options (validated); null for the defaults.</param>
    /// <returns>The encoder and the report; the caller owns both.</returns>
    /// <exception cref="FileNotFoundException">The file (or the preprocessing model) does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a 2D ResNet this importer reads; the message names the file and what was found.</exception>
    public static ImageNetImport Import(string path, ImageNetImportOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        options ??= new ImageNetImportOptions();
        options.Validate();
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"'{path}' does not exist.", path);
        }

        TorchNative.EnsureLoaded();
        var notes = new List<string>();
        ResNet2d net;
        using (var scope = torch.NewDisposeScope())
        {
            // Everything read and computed here goes with the scope but the 2D weights and the mean image, which the
            // encoder takes below (made outside any scope, so that its own weights are not disposed with it).
            net = path.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase)
                ? FromOnnx(path, options, notes)
                : FromStateDict(path, options, notes);
            foreach (var t in net.StateDict.Values)
            {
                t.MoveToOuterDisposeScope();
            }

            net.Input.MeanImage?.MoveToOuterDisposeScope();
        }

        try
        {
            return Inflate(path, net, options, notes);
        }
        finally
        {
            foreach (var t in net.StateDict.Values)
            {
                t.Dispose();
            }

            net.Input.MeanImage?.Dispose();
        }
    }

    private static ImageNetImport Inflate(string path, ResNet2d net, ImageNetImportOptions options, List<string> notes)
    {
        var encoderOptions = new ResNet3dOptions
        {
            Depth = net.Depth,
            Blocks = net.Blocks,
            WidthMultiplier = net.Width,
            StemPool = true,
            StemTemporalKernel = options.StemTemporalKernel,
            StemTemporalStride = options.StemTemporalStride,
            StageTemporalKernels = options.StageTemporalKernels,
            StageTemporalStrides = options.StageTemporalStrides,
            BatchNormEps = net.Epsilon,
            Padding = net.Padding,
            Init = WeightInit.Torchvision,
            InputMean = net.Input.Mean,
            InputStd = net.Input.Std,
            InputScale = net.Input.Scale,
            InputChannelOrder = net.Input.Order,
            InputMeanImageSize = net.Input.MeanImage is { } image ? [.. image.shape.Select(d => (int)d)] : null,
        };
        var encoder = ResNet3d.Create(encoderOptions);
        try
        {
            var inflation = Inflation.FromResNet2d(encoder, net.StateDict, strict: true);
            if (net.Input.MeanImage is { } mean)
            {
                using var noGrad = torch.no_grad();
                encoder.MeanImage!.copy_(mean);
            }

            encoder.TrainedClips = options.Clips;
            string Source(string name) => net.SourceNames.GetValueOrDefault(name, name);
            var report = new ImageNetImportReport
            {
                Path = path,
                Format = net.Format,
                Network = net.Description,
                Encoder = encoder.Options,
                Mapped = [.. inflation.Mapped.Select(m => m with { Source = Source(m.Source) })],
                Unused = [.. net.Unused.Concat(inflation.Skipped.Select(Source)).Distinct().Order(StringComparer.Ordinal)],
                FoldedBatchNorms = net.Folded,
                InputSource = net.Input.Source,
                Notes = notes,
            };
            return new ImageNetImport(encoder, report);
        }
        catch
        {
            encoder.Dispose();
            throw;
        }
    }

    /// <summary>A 2D ResNet in torchvision's names, with where each tensor came from and the input convention.</summary>
    private sealed record ResNet2d(
        string Format,
        int Depth,
        int[]? Blocks,
        double Width,
        string Description,
        Dictionary<string, Tensor> StateDict,
        Dictionary<string, string> SourceNames,
        List<string> Unused,
        int Folded,
        double Epsilon,
        ConvPadding Padding,
        Convention Input);

    /// <summary>The input convention in <see cref="ResNet3dOptions"/>' terms, and where it came from.</summary>
    private sealed record Convention(InputChannelOrder Order, double Scale, Tensor? MeanImage, double[]? Mean, double[]? Std, string Source);

    // ------------------------------------------------------------------ state dicts

    private static ResNet2d FromStateDict(string path, ImageNetImportOptions options, List<string> notes)
    {
        // The file's tensors belong to the import's dispose scope (made inside it), like everything read here.
        var file = StateDictFile.Read(path);
        var tensors = file.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);

        // Prefixes added by wrappers: DataParallel's "module.", Lightning's "model.", timm's "backbone.".
        string prefix = tensors.Keys.FirstOrDefault(k => k.EndsWith("conv1.weight", StringComparison.Ordinal) && !k.Contains("layer", StringComparison.Ordinal)) is { } stem
            ? stem[..^"conv1.weight".Length] : throw new InvalidDataException($"'{path}' has no stem convolution 'conv1.weight' (torchvision's ResNet names); its first names are {string.Join(", ", tensors.Keys.Order(StringComparer.Ordinal).Take(5))}.");
        var dict = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var unused = new List<string>();
        foreach (var (key, value) in tensors)
        {
            if (key.StartsWith(prefix, StringComparison.Ordinal))
            {
                dict[key[prefix.Length..]] = value.to(ScalarType.Float32);
            }
            else
            {
                unused.Add(key);
            }
        }

        foreach (var (key, value) in dict)
        {
            if (value.is_floating_point() && !torch.isfinite(value).all().item<bool>())
            {
                throw new InvalidDataException($"'{path}': weight '{prefix}{key}' holds NaN or infinite values.");
            }
        }

        bool bottleneck = dict.Keys.Any(k => k.Contains(".conv3.", StringComparison.Ordinal));
        int[] blocks = [.. Enumerable.Range(1, 4).Select(s => dict.Keys.Where(k => k.StartsWith($"layer{s}.", StringComparison.Ordinal)).Select(k => k.Split('.')[1]).Distinct().Count())];
        var (depth, custom) = DepthOf(blocks, bottleneck, path);
        AddBatchCounters(dict);
        double width = dict["conv1.weight"].shape[0] / 64.0;
        var order = options.ChannelOrder ?? InputChannelOrder.Rgb;
        double range = options.InputRange ?? 1.0;
        double[] mean = options.InputMean?.ToArray() ?? [.. s_torchvisionMean.Select(v => v * range)];
        double[] std = options.InputStd?.ToArray() ?? [.. s_torchvisionStd.Select(v => v * range)];
        string source = options.InputMean is not null ? "as given" : "torchvision's ImageNet convention (RGB in [0, 1], mean 0.485, 0.456, 0.406, std 0.229, 0.224, 0.225); a state dict holds no preprocessing";
        if (options.InputMean is null)
        {
            notes.Add("assumed torchvision's ImageNet input convention; give InputMean/InputStd (--mean/--std) for a network trained otherwise");
        }

        var convention = new Convention(order, range, null, mean, std, source);
        var names = dict.Keys.ToDictionary(k => k, k => prefix + k, StringComparer.Ordinal);
        string format = path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) ? "safetensors state dict" : "PyTorch state dict";
        return new ResNet2d(format, depth, custom, width, Describe(depth, bottleneck, blocks, width, custom), dict, names, unused, 0, 1e-5, ConvPadding.Symmetric, convention);
    }

    /// <summary>
    /// The depth whose layout the blocks per stage are (and null), or, for another layout, the depth of the same block
    /// type and nearest size as a label, with the layout itself (<see cref="ResNet3dOptions.Blocks"/>).
    /// </summary>
    private static (int Depth, int[]? Blocks) DepthOf(int[] blocks, bool bottleneck, string path)
    {
        if (blocks.Length != 4 || blocks.Any(b => b < 1))
        {
            throw new InvalidDataException($"'{path}' has residual stages of {string.Join(", ", blocks)} blocks; a ResNet has 4 stages of at least one block.");
        }

        foreach (var (depth, layout) in ResNet3dOptions.StageBlocks)
        {
            if (layout.SequenceEqual(blocks) && (depth >= 50) == bottleneck)
            {
                return (depth, null);
            }
        }

        int total = blocks.Sum();
        var nearest = ResNet3dOptions.StageBlocks.Where(kv => (kv.Key >= 50) == bottleneck).MinBy(kv => Math.Abs(kv.Value.Sum() - total)).Key;
        return (nearest, blocks);
    }

    private static string Describe(int depth, bool bottleneck, int[] blocks, double width, int[]? custom) =>
        string.Create(CultureInfo.InvariantCulture, $"ResNet-{depth}{(custom is null ? string.Empty : "-like")} ({(bottleneck ? "bottleneck" : "basic")} blocks {string.Join(", ", blocks)}), width {width:0.###}");

    /// <summary>BatchNorm's step counters, which 2D files may lack (ONNX has none): zero, as a fresh layer's.</summary>
    private static void AddBatchCounters(Dictionary<string, Tensor> dict)
    {
        foreach (string key in dict.Keys.Where(k => k.EndsWith(".running_var", StringComparison.Ordinal)).ToList())
        {
            string counter = key[..^"running_var".Length] + "num_batches_tracked";
            if (!dict.ContainsKey(counter))
            {
                dict[counter] = torch.tensor(0L);
            }
        }
    }

    // ------------------------------------------------------------------ ONNX graphs

    private static ResNet2d FromOnnx(string path, ImageNetImportOptions options, List<string> notes)
    {
        var model = OnnxModelFile.Read(path);
        var graph = new Graph(model);
        if (model.Inputs.Count != 1)
        {
            throw new InvalidDataException($"'{path}' has {model.Inputs.Count} inputs ({string.Join(", ", model.Inputs.Select(i => i.Name))}); an image network has one.");
        }

        // 1. Preprocessing: a separate model first, then the steps in front of the first convolution.
        string? prepPath = options.PreprocessingModel;
        if (prepPath is null && FindMlNetPreprocessing(path) is { } found)
        {
            prepPath = found;
            notes.Add($"used ML.NET's preprocessing model beside it: {found}");
        }

        var steps = new Affine();
        string convention;
        if (prepPath is not null)
        {
            if (!File.Exists(prepPath))
            {
                throw new FileNotFoundException($"Preprocessing model '{prepPath}' does not exist.", prepPath);
            }

            var prep = OnnxModelFile.Read(prepPath);
            var prepGraph = new Graph(prep);
            string end = prepGraph.Walk(prep.Inputs[0].Name, steps, stopAtConv: false);
            if (!prep.Outputs.Contains(end))
            {
                throw new InvalidDataException($"'{prepPath}' is not a chain of preprocessing steps (channel reordering, additions, subtractions, multiplications, divisions by constants): it stops at '{end}', which is not its output.");
            }
        }

        string x = graph.Walk(model.Inputs[0].Name, steps, stopAtConv: true);
        var first = graph.Consumers(x).FirstOrDefault(n => n.Op == "Conv")
            ?? throw new InvalidDataException($"'{path}': the input '{model.Inputs[0].Name}' does not lead to a convolution through preprocessing steps; it is not an image ResNet.");

        // 2. The stem: Conv 7x7 stride 2 (+ BatchNorm) + Relu + MaxPool 3x3 stride 2.
        var sd = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        var used = new HashSet<string>(StringComparer.Ordinal);
        int folded = 0;
        var eps = new List<float>();
        var paddings = new HashSet<ConvPadding>();
        string Unit(OnnxNode conv, string convName, string bnName)
        {
            var (output, wasFolded) = graph.ConvUnit(conv, convName, bnName, sd, names, used, eps, paddings);
            folded += wasFolded ? 1 : 0;
            return output;
        }

        var stemKernel = graph.Weight(first).Dims;
        if (stemKernel.Length != 4 || stemKernel[2] != 7 || stemKernel[3] != 7 || first.IntList("strides") is not [2, 2])
        {
            throw new InvalidDataException($"'{path}': the first convolution ({first}) has kernel [{string.Join(", ", stemKernel)}] and strides [{string.Join(", ", first.IntList("strides") ?? [])}]; a ResNet's stem is 7x7 with stride 2.");
        }

        string stem = graph.Next(Unit(first, "conv1", "bn1"), "Relu", path);
        var pool = graph.Consumers(stem).SingleOrDefault(n => n.Op == "MaxPool")
            ?? throw new InvalidDataException($"'{path}': the stem ({first}) is not followed by a max pool; a ResNet's is.");
        if (pool.IntList("kernel_shape") is not [3, 3] || pool.IntList("strides") is not [2, 2])
        {
            throw new InvalidDataException($"'{path}': the stem's max pool ({pool}) is not 3x3 with stride 2.");
        }

        paddings.Add(Graph.PaddingOf(pool, 3, path));
        string blockInput = pool.Outputs[0];

        // 3. Residual blocks, in order: each Add joins a branch of 2 (basic) or 3 (bottleneck) convolutions from the
        // block's input with its input itself or a 1x1 projection of it; a Relu follows.
        var blocks = new List<(OnnxNode[] Main, OnnxNode? Shortcut, string Output)>();
        while (true)
        {
            var add = graph.BlockEnd(blockInput);
            if (add is null)
            {
                break;
            }

            var (main, shortcut) = graph.Branches(add, blockInput, path);
            string output = graph.Next(add.Outputs[0], "Relu", path);
            blocks.Add((main, shortcut, output));
            blockInput = output;
        }

        if (blocks.Count == 0)
        {
            throw new InvalidDataException($"'{path}': no residual block follows the stem; it is not a ResNet.");
        }

        bool bottleneck = blocks[0].Main.Length == 3;
        if (blocks.Any(b => b.Main.Length != blocks[0].Main.Length))
        {
            throw new InvalidDataException($"'{path}' mixes blocks of {string.Join(" and ", blocks.Select(b => b.Main.Length).Distinct())} convolutions.");
        }

        // Stages: a block with a projection shortcut starts one (the first block of a bottleneck network has one too).
        var stageOf = new int[blocks.Count];
        int stage = 0, inStage = 0;
        var counts = new List<int>();
        for (int i = 0; i < blocks.Count; i++)
        {
            if (blocks[i].Shortcut is not null && i > 0)
            {
                counts.Add(inStage);
                stage++;
                inStage = 0;
            }

            stageOf[i] = stage;
            inStage++;
        }

        counts.Add(inStage);
        if (counts.Count != 4)
        {
            throw new InvalidDataException($"'{path}' has {counts.Count} stages of residual blocks ({string.Join(", ", counts)}); a ResNet has 4.");
        }

        int[] layout = [.. counts];
        var (depth, custom) = DepthOf(layout, bottleneck, path);
        int index = 0;
        for (int i = 0; i < blocks.Count; i++)
        {
            index = i == 0 || stageOf[i] != stageOf[i - 1] ? 0 : index + 1;
            string prefix = $"layer{stageOf[i] + 1}.{index}.";
            var (main, shortcut, _) = blocks[i];
            for (int k = 0; k < main.Length; k++)
            {
                Unit(main[k], $"{prefix}conv{k + 1}", $"{prefix}bn{k + 1}");
            }

            // Cvrl strides a bottleneck's 3x3 convolution (torchvision's ResNet v1.5), a basic block's first.
            int strided = bottleneck ? 1 : 0;
            for (int k = 0; k < main.Length; k++)
            {
                if (k != strided && main[k].IntList("strides") is { } s && s.Any(v => v != 1))
                {
                    throw new InvalidDataException($"'{path}': block {prefix.TrimEnd('.')} strides its convolution {k + 1} ({main[k]}); Cvrl's ResNet3d strides the {(bottleneck ? "3x3 (second)" : "first")} convolution of a block (torchvision's layout), so this network (ResNet v1, Caffe style) does not map.");
                }
            }

            if (shortcut is not null)
            {
                Unit(shortcut, $"{prefix}downsample.0", $"{prefix}downsample.1");
            }
        }

        // 4. What follows: a global average pool, and maybe a classifier (not used: the encoder is a backbone).
        var unused = model.Initializers.Keys.Where(k => !used.Contains(k) && !steps.Constants.Contains(k)).Order(StringComparer.Ordinal).ToList();
        if (eps.Distinct().Count() > 1)
        {
            notes.Add($"BatchNorm epsilons differ ({string.Join(", ", eps.Distinct())}); the first is used");
        }

        if (paddings.Count > 1)
        {
            throw new InvalidDataException($"'{path}' pads some convolutions as PyTorch does and others as TensorFlow's SAME; Cvrl's ResNet3d pads all one way.");
        }

        AddBatchCounters(sd);
        double width = sd["conv1.weight"].shape[0] / 64.0;
        var input = steps.ToConvention(options, prepPath is not null || steps.Count > 0, sd["conv1.weight"].shape[1], path);
        convention = input.Source;
        notes.AddRange(steps.Notes);
        return new ResNet2d(
            $"ONNX graph from {(model.Producer.Length > 0 ? model.Producer : "an unnamed producer")}, opset {model.Opset}",
            depth,
            custom,
            width,
            Describe(depth, bottleneck, layout, width, custom),
            sd,
            names,
            unused,
            folded,
            eps.Count > 0 ? eps[0] : 1e-5,
            paddings.Count > 0 ? paddings.First() : ConvPadding.Symmetric,
            input with { Source = convention });
    }

    /// <summary>ML.NET's image featurizer packages keep the preprocessing model in a sibling folder: <c>ResNetPrepOnnx/ResNetPreprocess.onnx</c>.</summary>
    private static string? FindMlNetPreprocessing(string path)
    {
        string? folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
        if (folder is null || !System.IO.Path.GetFileName(folder).EndsWith("Onnx", StringComparison.Ordinal))
        {
            return null;
        }

        string candidate = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(folder)!, "ResNetPrepOnnx", "ResNetPreprocess.onnx");
        return File.Exists(candidate) ? candidate : null;
    }

    /// <summary>
    /// The preprocessing steps met on the way from an input to the first convolution, composed: the channel order, then
    /// x * A + B with A per channel and B per channel or per pixel.
    /// </summary>
    private sealed class Affine
    {
        private Tensor _a = torch.ones(1, 3, 1, 1);
        private Tensor _b = torch.zeros(1, 3, 1, 1);
        private bool _reversed;

        public int Count { get; private set; }

        public HashSet<string> Constants { get; } = new(StringComparer.Ordinal);

        public List<string> Notes { get; } = [];

        public void Reverse()
        {
            // Reversing the channels after x * A + B: A and B are indexed by channel, so they are reversed too.
            _a = _a.flip(1);
            _b = _b.flip(1);
            _reversed = !_reversed;
            Count++;
        }

        public void Apply(string op, Tensor constant, string name)
        {
            Constants.Add(name);
            var c = constant.dim() switch
            {
                0 or 1 => constant.reshape(1, -1, 1, 1),
                3 => constant.unsqueeze(0),
                _ => constant,
            };
            switch (op)
            {
                case "Sub":
                    _b = _b - c;
                    break;
                case "Add":
                    _b = _b + c;
                    break;
                case "Mul":
                    _a = _a * c;
                    _b = _b * c;
                    break;
                case "Div":
                    _a = _a / c;
                    _b = _b / c;
                    break;
            }

            Count++;
        }

        /// <summary>
        /// The convention: Cvrl's x in [0, 1] is scaled to the pixel range (given, or 255 when the steps subtract means
        /// above 1.5 pixel units), reversed if the steps reverse it, then y = x * A + B = (x - M) / D with D = 1 / A per
        /// channel and M = -B / A (a mean image when B varies over pixels).
        /// </summary>
        public Convention ToConvention(ImageNetImportOptions options, bool fromFiles, long channels, string path)
        {
            if (channels != 3)
            {
                throw new InvalidDataException($"'{path}': the stem takes {channels} input channels; an image ResNet takes 3.");
            }

            if (!fromFiles)
            {
                double r = options.InputRange ?? 1.0;
                double[] m = options.InputMean?.ToArray() ?? [.. s_torchvisionMean.Select(v => v * r)];
                double[] s = options.InputStd?.ToArray() ?? [.. s_torchvisionStd.Select(v => v * r)];
                Notes.Add("the graph holds no preprocessing: assumed torchvision's ImageNet convention unless given (--mean, --std, --input-range, --channel-order)");
                return new Convention(options.ChannelOrder ?? InputChannelOrder.Rgb, r, null, m, s, options.InputMean is null ? "torchvision's ImageNet convention (assumed: the graph holds no preprocessing)" : "as given");
            }

            var a = _a.broadcast_to(1, 3, 1, 1);
            if (_a.shape[2] != 1 || _a.shape[3] != 1)
            {
                throw new InvalidDataException($"'{path}': its preprocessing multiplies or divides by a different value at each pixel; Cvrl's input convention scales per channel.");
            }

            var mean = -_b / _a; // [1, 3, 1, 1] or [1, 3, H, W]
            double meanMagnitude = mean.abs().max().item<float>();
            double range = options.InputRange ?? (meanMagnitude > 1.5 ? 255 : 1);
            double[] std = [.. (1 / a).reshape(3).data<float>().Select(v => (double)v)];
            if (std.Any(v => !(v > 0) || !double.IsFinite(v)))
            {
                throw new InvalidDataException($"'{path}': its preprocessing scales channels by [{string.Join(", ", a.reshape(3).data<float>())}]; the scales must be positive.");
            }

            bool perPixel = mean.shape[2] > 1 || mean.shape[3] > 1;
            var order = _reversed ? InputChannelOrder.Bgr : InputChannelOrder.Rgb;
            string describe = $"its preprocessing steps ({(order == InputChannelOrder.Bgr ? "RGB to BGR, " : string.Empty)}{(perPixel ? $"a {mean.shape[2]}x{mean.shape[3]} mean image" : "a mean per channel")}{(std.All(v => v == 1) ? string.Empty : ", a scale per channel")}), on pixels in [0, {range:G4}]{(options.InputRange is null ? " (inferred from the means)" : " (as given)")}";
            if (perPixel)
            {
                var image = mean.squeeze(0).contiguous(); // the mean image, in pixel units and the network's channel order
                bool unitStd = std.All(v => v == 1);
                return new Convention(order, range, image, unitStd ? null : [0, 0, 0], unitStd ? null : std, describe);
            }

            double[] perChannel = [.. mean.reshape(3).data<float>().Select(v => (double)v)];
            return new Convention(order, range, null, perChannel, std, describe);
        }
    }

    /// <summary>An ONNX graph indexed by value: who produces each value and who consumes it.</summary>
    private sealed class Graph
    {
        private readonly OnnxModelContent _model;
        private readonly Dictionary<string, OnnxNode> _producer = new(StringComparer.Ordinal);
        private readonly Dictionary<string, List<OnnxNode>> _consumers = new(StringComparer.Ordinal);

        public Graph(OnnxModelContent model)
        {
            _model = model;
            foreach (var node in model.Nodes)
            {
                foreach (string o in node.Outputs)
                {
                    _producer[o] = node;
                }

                foreach (string i in node.Inputs.Where(i => i.Length > 0))
                {
                    if (!_consumers.TryGetValue(i, out var list))
                    {
                        _consumers[i] = list = [];
                    }

                    list.Add(node);
                }
            }
        }

        public IReadOnlyList<OnnxNode> Consumers(string value) => _consumers.TryGetValue(value, out var list) ? list : [];

        /// <summary>The constant weight of a Conv (its second input).</summary>
        public OnnxTensor Weight(OnnxNode conv) =>
            _model.Constant(conv.Inputs[1]) ?? throw new InvalidDataException($"'{_model.Path}': the kernel of {conv} is computed, not stored; Cvrl reads stored weights.");

        /// <summary>The single consumer of <paramref name="value"/> of type <paramref name="op"/>, and its output.</summary>
        public string Next(string value, string op, string path)
        {
            var next = Consumers(value).Where(n => n.Op == op).ToList();
            return next.Count == 1 ? next[0].Outputs[0]
                : throw new InvalidDataException($"'{path}': '{value}' is followed by {(next.Count == 0 ? $"no {op}" : $"{next.Count} {op} nodes")} where a ResNet has one.");
        }

        /// <summary>
        /// Follows elementwise preprocessing steps from <paramref name="value"/> (Sub, Add, Mul, Div by constants, a channel
        /// reversal by Split and Concat or Gather, Identity, Cast, a Transpose from NHWC) and returns where they end: at a
        /// Conv's input (<paramref name="stopAtConv"/>) or where no such step follows.
        /// </summary>
        public string Walk(string value, Affine steps, bool stopAtConv)
        {
            while (true)
            {
                var next = Consumers(value);
                if (next.Count == 0 || (stopAtConv && next.Any(n => n.Op == "Conv")))
                {
                    return value;
                }

                if (next.Count == 3 && next.All(n => n.Op == "Slice"))
                {
                    return value; // unusual channel splits are not followed
                }

                var node = next[0];
                switch (node.Op)
                {
                    case "Sub" or "Add" or "Mul" or "Div" when next.Count == 1:
                        {
                            string other = node.Inputs[0] == value ? node.Inputs[1] : node.Inputs[0];
                            var constant = _model.Constant(other);
                            if (constant?.Floats is null || (node.Op is "Sub" or "Div" && node.Inputs[0] != value))
                            {
                                return value;
                            }

                            using var t = torch.tensor(constant.Floats, constant.Dims);
                            steps.Apply(node.Op, t, other);
                            value = node.Outputs[0];
                            break;
                        }

                    case "Split" when next.Count == 1 && node.Int("axis", 0) == 1 && node.Outputs.Count == 3:
                        {
                            var concat = Consumers(node.Outputs[0]).SingleOrDefault(n => n.Op == "Concat");
                            if (concat is null || concat.Int("axis", 0) != 1 || concat.Inputs.Count != 3)
                            {
                                return value;
                            }

                            int[] order = [.. concat.Inputs.Select(i => node.Outputs.ToList().IndexOf(i))];
                            if (order.SequenceEqual([2, 1, 0]))
                            {
                                steps.Reverse();
                            }
                            else if (!order.SequenceEqual([0, 1, 2]))
                            {
                                return value;
                            }

                            value = concat.Outputs[0];
                            break;
                        }

                    case "Gather" when next.Count == 1 && node.Int("axis", 0) == 1 && _model.Constant(node.Inputs[1])?.Longs is [2, 1, 0]:
                        steps.Reverse();
                        value = node.Outputs[0];
                        break;
                    case "Identity" or "Cast" when next.Count == 1:
                        value = node.Outputs[0];
                        break;
                    case "Transpose" when next.Count == 1 && node.IntList("perm") is [0, 3, 1, 2]:
                        steps.Notes.Add("the graph takes NHWC input and transposes it; Cvrl feeds the network NCHW directly");
                        value = node.Outputs[0];
                        break;
                    default:
                        return value;
                }
            }
        }

        /// <summary>
        /// Takes a Conv and its BatchNormalization (or, when folded, builds an identity one around the Conv's bias) into
        /// the state dict under torchvision's names; returns the unit's output (after the BatchNorm) and whether it was folded.
        /// </summary>
        public (string Output, bool Folded) ConvUnit(OnnxNode conv, string convName, string bnName, Dictionary<string, Tensor> sd, Dictionary<string, string> names, HashSet<string> used, List<float> eps, HashSet<ConvPadding> paddings)
        {
            string path = _model.Path;
            if (conv.Int("group", 1) != 1 || (conv.IntList("dilations") is { } d && d.Any(v => v != 1)))
            {
                throw new InvalidDataException($"'{path}': {conv} is grouped or dilated; a plain ResNet's convolutions are neither.");
            }

            var w = Weight(conv);
            long k = w.Dims[2];
            paddings.Add(PaddingOf(conv, k, path));
            sd[convName + ".weight"] = Tensor(w);
            names[convName + ".weight"] = w.Name;
            used.Add(w.Name);
            var bnNode = Consumers(conv.Outputs[0]).SingleOrDefault(n => n.Op == "BatchNormalization");
            long channels = w.Dims[0];
            if (bnNode is not null)
            {
                string[] parts = ["weight", "bias", "running_mean", "running_var"];
                for (int i = 0; i < 4; i++)
                {
                    var t = _model.Constant(bnNode.Inputs[i + 1]) ?? throw new InvalidDataException($"'{path}': {bnNode}'s {parts[i]} is computed, not stored.");
                    sd[$"{bnName}.{parts[i]}"] = Tensor(t);
                    names[$"{bnName}.{parts[i]}"] = t.Name;
                    used.Add(t.Name);
                }

                eps.Add(bnNode.Float("epsilon", 1e-5f));
                if (conv.Inputs.Count > 2 && conv.Inputs[2].Length > 0 && _model.Constant(conv.Inputs[2]) is { } convBias)
                {
                    // A bias before BatchNorm shifts the mean it subtracts.
                    sd[$"{bnName}.running_mean"] = sd[$"{bnName}.running_mean"] - Tensor(convBias);
                    used.Add(convBias.Name);
                }

                return (bnNode.Outputs[0], false);
            }

            // Folded: y = conv(x) + b. An identity BatchNorm (scale 1, mean 0, variance 1 - eps) with the bias as its shift.
            var bias = conv.Inputs.Count > 2 && conv.Inputs[2].Length > 0 ? _model.Constant(conv.Inputs[2]) : null;
            float epsilon = eps.Count > 0 ? eps[0] : 1e-5f;
            sd[$"{bnName}.weight"] = torch.ones(channels);
            sd[$"{bnName}.bias"] = bias is null ? torch.zeros(channels) : Tensor(bias);
            sd[$"{bnName}.running_mean"] = torch.zeros(channels);
            sd[$"{bnName}.running_var"] = torch.full(channels, 1.0 - epsilon);
            if (bias is not null)
            {
                names[$"{bnName}.bias"] = bias.Name;
                used.Add(bias.Name);
            }

            return (conv.Outputs[0], true);
        }

        /// <summary>How a Conv or MaxPool pads: PyTorch's k/2 at the start (the end may pad less), or TensorFlow's SAME.</summary>
        public static ConvPadding PaddingOf(OnnxNode node, long kernel, string path)
        {
            string autoPad = node.Strings.GetValueOrDefault("auto_pad", "NOTSET");
            if (autoPad is "SAME_UPPER")
            {
                return ConvPadding.TensorFlowSame;
            }

            long[] pads = node.IntList("pads") ?? [0, 0, 0, 0];
            long half = kernel / 2;
            if (autoPad is "NOTSET" or "VALID" && pads.Length == 4 && pads[0] == half && pads[1] == half && pads[2] <= half && pads[3] <= half)
            {
                return ConvPadding.Symmetric;
            }

            if (pads.Length == 4 && pads[2] == half && pads[3] == half && pads[0] == half - 1 && pads[1] == half - 1)
            {
                return ConvPadding.TensorFlowSame;
            }

            throw new InvalidDataException($"'{path}': {node} pads [{string.Join(", ", pads)}] ({autoPad}); Cvrl pads a {kernel}x{kernel} kernel by {half} at the start (PyTorch) or as TensorFlow's SAME.");
        }

        /// <summary>The Add that ends the residual block starting at <paramref name="input"/>, or null at the end of the network.</summary>
        public OnnxNode? BlockEnd(string input)
        {
            // Breadth-first along the single-consumer chain of convolutions, BatchNorms and Relus from the input.
            var frontier = new Queue<string>([input]);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            while (frontier.Count > 0)
            {
                string v = frontier.Dequeue();
                foreach (var node in Consumers(v))
                {
                    if (node.Op == "Add")
                    {
                        return node;
                    }

                    if (node.Op is "Conv" or "BatchNormalization" or "Relu" && seen.Add(node.Outputs[0]))
                    {
                        frontier.Enqueue(node.Outputs[0]);
                    }
                }
            }

            return null;
        }

        /// <summary>The main branch's convolutions (in order) and the projection shortcut's (or null) of the block ending in <paramref name="add"/>.</summary>
        public (OnnxNode[] Main, OnnxNode? Shortcut) Branches(OnnxNode add, string input, string path)
        {
            var a = Trace(add.Inputs[0], input);
            var b = Trace(add.Inputs[1], input);
            if (a is null || b is null)
            {
                throw new InvalidDataException($"'{path}': {add} does not join two branches of the block that starts at '{input}'; the graph is not a plain ResNet.");
            }

            var (main, shortcut) = a.Count >= b.Count ? (a, b) : (b, a);
            if (main.Count is not (2 or 3) || shortcut.Count > 1)
            {
                throw new InvalidDataException($"'{path}': the block ending in {add} has branches of {main.Count} and {shortcut.Count} convolutions; a ResNet block has 2 or 3 and a shortcut of 0 or 1.");
            }

            return ([.. main], shortcut.Count == 1 ? shortcut[0] : null);
        }

        /// <summary>The convolutions from <paramref name="input"/> to <paramref name="value"/> through BatchNorms and Relus, in order; null when the chain leads elsewhere.</summary>
        private List<OnnxNode>? Trace(string value, string input)
        {
            var convs = new List<OnnxNode>();
            while (value != input)
            {
                if (!_producer.TryGetValue(value, out var node) || node.Op is not ("Conv" or "BatchNormalization" or "Relu"))
                {
                    return null;
                }

                if (node.Op == "Conv")
                {
                    convs.Insert(0, node);
                }

                value = node.Inputs[0];
            }

            return convs;
        }

        private static Tensor Tensor(OnnxTensor t) =>
            t.Floats is { } f ? torch.tensor(f, t.Dims) : throw new InvalidDataException($"tensor '{t.Name}' is not floating point.");
    }
}
