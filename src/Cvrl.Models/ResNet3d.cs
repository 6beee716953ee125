using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Cvrl.Models;

/// <summary>
/// An inflated 3D-ResNet, built from <see cref="ResNet3dOptions"/>: depth 18 to 200, any width, per-stage temporal
/// kernels. Input <c>[N, C, T, H, W]</c> float; output the pooled features <c>[N, FeatureDim]</c> (backbone mode) or
/// logits <c>[N, NumClasses]</c> (classifier mode).
/// </summary>
/// <remarks>
/// <code>
///   input [N, 3, T, H, W]
///     ↓ stem: conv kt x 7 x 7 (stride st, 2, 2), BN, ReLU [, max pool 1 x 3 x 3 (stride 1, 2, 2)]
///     ↓ layer1: blocks at 64w (x4 for bottlenecks), stride 1
///     ↓ layer2: 128w, spatial stride 2 (temporal per stage)
///     ↓ layer3: 256w, spatial stride 2
///     ↓ layer4: 512w, spatial stride 2
///     ↓ global average pool over T, H, W  → features [N, FeatureDim]
///     ↓ (classifier mode) dropout, linear → logits [N, NumClasses]
/// </code>
/// Depth 50 and up default to CVRL's R3D (stem 5 x 7 x 7 stride (2, 2, 2) plus pool; temporal kernel 3 only in
/// layer3 and layer4, on the first 1x1 convolution of each bottleneck; stride on the 3x3; R3D-50 has 31,672,128
/// parameters). Depth 18 and 34 default to torchvision's R3D (3 x 3 x 3 convolutions, stem 3 x 7 x 7 stride (1, 2, 2), no
/// pool), with torchvision's state-dict names, so <c>r3d_18</c> weights load as they are.
/// </remarks>
public sealed class ResNet3d : Module<Tensor, Tensor>
{
    private readonly Stem _stem;
    private readonly Module<Tensor, Tensor>[][] _stages;
    private readonly Dropout? _dropout;
    private readonly Linear? _fc;
    private readonly Tensor? _meanImage;
    private ScalarType _computeType = ScalarType.Float32;

    private ResNet3d(ResNet3dOptions options, Device? device)
        : base(nameof(ResNet3d))
    {
        Options = options;
        if (options.InputMeanImageSize is { } image)
        {
            // Part of the state (saved and loaded with the weights), not trained: the importer fills it.
            _meanImage = torch.zeros([image[0], image[1], image[2]], device: device);
            register_buffer(MeanImageBuffer, _meanImage);
        }

        int stemWidth = ResNet3dOptions.Channels(64, options.WidthMultiplier);
        _stem = new Stem(options, stemWidth, device);
        register_module("stem", _stem.Sequential);

        var blocks = options.BlocksPerStage;
        int expansion = options.IsBottleneck ? Bottleneck3d.Expansion : BasicBlock3d.Expansion;
        int inChannels = stemWidth;
        _stages = new Module<Tensor, Tensor>[4][];
        for (int stage = 0; stage < 4; stage++)
        {
            int planes = ResNet3dOptions.Channels(64 << stage, options.WidthMultiplier);
            int kt = options.StageTemporalKernels![stage];
            long spatialStride = stage == 0 ? 1 : 2;
            var layer = new List<(string, Module<Tensor, Tensor>)>();
            _stages[stage] = new Module<Tensor, Tensor>[blocks[stage]];
            for (int b = 0; b < blocks[stage]; b++)
            {
                (long T, long S) stride = b == 0 ? (options.StageTemporalStrides![stage], spatialStride) : (1, 1);
                Module<Tensor, Tensor> block = options.IsBottleneck
                    ? new Bottleneck3d(inChannels, planes, kt, stride, options, device)
                    : new BasicBlock3d(inChannels, planes, kt, stride, options, device);
                _stages[stage][b] = block;
                layer.Add((b.ToString(System.Globalization.CultureInfo.InvariantCulture), block));
                inChannels = planes * expansion;
            }

            register_module($"layer{stage + 1}", nn.Sequential(layer));
        }

        FeatureDim = inChannels;
        if (options.NumClasses is int classes)
        {
            _dropout = nn.Dropout(options.DropoutRate);
            _fc = nn.Linear(FeatureDim, classes, device: device);
            register_module("dropout", _dropout);
            register_module("fc", _fc);
        }

        MinimumInput = ComputeMinimumInput(options);
        InitializeWeights();
    }

    /// <summary>The name of the per-pixel mean image buffer (<see cref="ResNet3dOptions.InputMeanImageSize"/>).</summary>
    public const string MeanImageBuffer = "input_mean_image";

    /// <summary>The per-pixel mean image (C, H, W), or null (read by the ONNX exporter).</summary>
    internal Tensor? MeanImage => _meanImage;

    /// <summary>The stem (read by the ONNX exporter).</summary>
    internal Stem StemPart => _stem;

    /// <summary>The residual blocks of each stage (read by the ONNX exporter).</summary>
    internal IReadOnlyList<Module<Tensor, Tensor>[]> Stages => _stages;

    /// <summary>The classifier layer, or null in backbone mode.</summary>
    internal Linear? Classifier => _fc;

    /// <summary>The resolved options (every depth default filled in).</summary>
    public ResNet3dOptions Options { get; }

    /// <summary>Size of the pooled feature vector: 2048 x width for bottleneck depths, 512 x width for 18 and 34.</summary>
    public int FeatureDim { get; }

    /// <summary>Whether the network ends in a classifier (else it returns pooled features).</summary>
    public bool IsClassifier => _fc is not null;

    /// <summary>
    /// The clips this encoder was trained on, or null when unknown (a fresh network, plain weight files). Cvrl's trainer
    /// sets it when training starts and loading a Cvrl checkpoint restores it; the embedders take their default views
    /// from it and the ONNX exporter records it in the model. Not part of the weights or the fingerprint.
    /// </summary>
    public ClipGeometry? TrainedClips { get; set; }

    /// <summary>
    /// The element type the network computes in: <see cref="ScalarType.Float32"/> (the default) or
    /// <see cref="ScalarType.BFloat16"/> (<see cref="Precision.BFloat16"/>: the input and the activations between layers
    /// in bfloat16, convolutions with bfloat16 copies of their float32 kernels, BatchNorm statistics in float32; the
    /// pooled features come back as float32). Weights stay float32, so checkpoints and optimizers do not change. Set it
    /// with <see cref="PrecisionPolicy.Resolve"/>; Cvrl's trainer, evaluations and embedder set it for the duration of
    /// their run and put it back.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Another element type.</exception>
    public ScalarType ComputeType
    {
        get => _computeType;
        set
        {
            PrecisionPolicy.RequireSupported(value, nameof(ComputeType));
            _computeType = value;
        }
    }

    /// <summary>
    /// The smallest input (T, H, W) the network accepts: each at least the product of the strides along it, so that
    /// the last stage still sees one position per stride.
    /// </summary>
    public (int Frames, int Height, int Width) MinimumInput { get; }

    /// <summary>Builds a network.</summary>
    /// <param name="options">The options (validated before any weight is allocated).</param>
    /// <param name="device">Where to allocate the weights (default CPU; <c>torch.device("meta")</c> allocates nothing, for counting parameters).</param>
    /// <returns>A new module owned by the caller (dispose it).</returns>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message lists the valid values.</exception>
    /// <exception cref="DllNotFoundException">TorchSharp's native backend cannot be loaded.</exception>
    public static ResNet3d Create(ResNet3dOptions options, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var resolved = options.Resolve();
        TorchNative.EnsureLoaded();
        return new ResNet3d(resolved, device);
    }

    /// <summary>
    /// A network of the given depth in its default layout (<see cref="Create"/> with
    /// <see cref="ResNet3dOptions.Depth"/>, <see cref="ResNet3dOptions.WidthMultiplier"/> and
    /// <see cref="ResNet3dOptions.NumClasses"/> set). Every named factory below calls it with its depth.
    /// </summary>
    /// <param name="depth">18, 34, 50, 101, 152 or 200.</param>
    /// <param name="width">The width multiplier (1 for the standard widths; 2 and 4 for CVRL's wide models).</param>
    /// <param name="numClasses">Classes of a classifier head; null for a backbone that returns pooled features.</param>
    /// <param name="device">Where to allocate the weights (default CPU).</param>
    /// <returns>A new module owned by the caller (dispose it).</returns>
    /// <exception cref="ArgumentOutOfRangeException">The depth or another value is out of range.</exception>
    public static ResNet3d OfDepth(int depth, double width = 1, int? numClasses = null, Device? device = null) =>
        Create(new() { Depth = depth, WidthMultiplier = width, NumClasses = numClasses }, device);

    /// <summary>torchvision's R3D-18 (basic blocks, 3 x 3 x 3 convolutions); 33,371,472 parameters with 400 classes.</summary>
    /// <inheritdoc cref="OfDepth" path="/param[@name!='depth']|/returns|/exception"/>
    public static ResNet3d R3d18(double width = 1, int? numClasses = null, Device? device = null) => OfDepth(18, width, numClasses, device);

    /// <summary>R3D-34 in torchvision's layout (basic blocks [3, 4, 6, 3]).</summary>
    /// <inheritdoc cref="OfDepth" path="/param[@name!='depth']|/returns|/exception"/>
    public static ResNet3d R3d34(double width = 1, int? numClasses = null, Device? device = null) => OfDepth(34, width, numClasses, device);

    /// <summary>CVRL's R3D-50 at a width multiplier (1 is the paper's 31.7M-parameter model, 2 and 4 its wide models).</summary>
    /// <inheritdoc cref="OfDepth" path="/param[@name!='depth']|/returns|/exception"/>
    public static ResNet3d R3d50(double width = 1, int? numClasses = null, Device? device = null) => OfDepth(50, width, numClasses, device);

    /// <summary>R3D-101 in CVRL's layout.</summary>
    /// <inheritdoc cref="OfDepth" path="/param[@name!='depth']|/returns|/exception"/>
    public static ResNet3d R3d101(double width = 1, int? numClasses = null, Device? device = null) => OfDepth(101, width, numClasses, device);

    /// <summary>R3D-152 in CVRL's layout (the paper's largest model is 2x wide).</summary>
    /// <inheritdoc cref="OfDepth" path="/param[@name!='depth']|/returns|/exception"/>
    public static ResNet3d R3d152(double width = 1, int? numClasses = null, Device? device = null) => OfDepth(152, width, numClasses, device);

    /// <summary>R3D-200 in CVRL's layout (bottlenecks [3, 24, 36, 3]).</summary>
    /// <inheritdoc cref="OfDepth" path="/param[@name!='depth']|/returns|/exception"/>
    public static ResNet3d R3d200(double width = 1, int? numClasses = null, Device? device = null) => OfDepth(200, width, numClasses, device);

    /// <summary>Runs the network: features <c>[N, FeatureDim]</c> in backbone mode, logits in classifier mode.</summary>
    /// <param name="input">A float batch <c>[N, C, T, H, W]</c> on the module's device.</param>
    /// <exception cref="ArgumentException">The input has the wrong rank, channel count or dtype, or is smaller than <see cref="MinimumInput"/>.</exception>
    public override Tensor forward(Tensor input)
    {
        using var scope = torch.NewDisposeScope();
        var features = FeaturesCore(input);
        if (_fc is null)
        {
            return features.MoveToOuterDisposeScope();
        }

        var dropped = _dropout!.call(features);
        return _fc.call(dropped).MoveToOuterDisposeScope();
    }

    /// <summary>The pooled features <c>[N, FeatureDim]</c>, also in classifier mode.</summary>
    /// <inheritdoc cref="forward"/>
    public Tensor Features(Tensor input)
    {
        using var scope = torch.NewDisposeScope();
        return FeaturesCore(input).MoveToOuterDisposeScope();
    }

    /// <summary>The feature map of the last stage <c>[N, FeatureDim, T', H', W']</c>, before pooling.</summary>
    /// <inheritdoc cref="forward"/>
    public Tensor FeatureMap(Tensor input)
    {
        using var scope = torch.NewDisposeScope();
        return FeatureMapCore(input).MoveToOuterDisposeScope();
    }

    /// <summary>Checks an input batch against the network, with a message that says what was expected.</summary>
    /// <exception cref="ArgumentException">See <see cref="forward"/>.</exception>
    public void ValidateInput(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.dim() != 5)
        {
            throw new ArgumentException($"Expected a batch [N, C, T, H, W] (5 dimensions), got [{string.Join(", ", input.shape)}].", nameof(input));
        }

        if (input.shape[1] != Options.InputChannels)
        {
            throw new ArgumentException($"Expected {Options.InputChannels} input channels, got {input.shape[1]} (shape [{string.Join(", ", input.shape)}]).", nameof(input));
        }

        if (!torch.is_floating_point(input))
        {
            throw new ArgumentException($"Expected a floating-point batch, got {input.dtype}; convert uint8 clips with ClipOps.ToFloat.", nameof(input));
        }

        var (t, h, w) = MinimumInput;
        if (input.shape[2] < t || input.shape[3] < h || input.shape[4] < w)
        {
            throw new ArgumentException(
                $"Clips of {input.shape[2]} x {input.shape[3]} x {input.shape[4]} (T x H x W) are too small for this network; the minimum is {t} x {h} x {w} (the product of its strides).",
                nameof(input));
        }
    }

    private Tensor FeaturesCore(Tensor input)
    {
        var map = FeatureMapCore(input);
        if (map.dtype == ScalarType.BFloat16)
        {
            map = map.to(ScalarType.Float32); // pool in float32: the features leave the network as float32
        }

        return map.mean([2, 3, 4]);
    }

    private Tensor FeatureMapCore(Tensor input)
    {
        ValidateInput(input);
        using var compute = ComputeScope.Enter(_computeType);
        using var normalized = Options.NormalizesInput ? Normalize(input) : null;
        var source = normalized ?? input;
        Tensor x;
        if (Options.ChannelsLast && !IsChannelsLast(source))
        {
            using var channelsLast = ToChannelsLast(source);
            x = _stem.Forward(channelsLast);
        }
        else
        {
            x = _stem.Forward(source);
        }

        foreach (var stage in _stages)
        {
            foreach (var block in stage)
            {
                var next = block.call(x);
                x.Dispose();
                x = next;
            }
        }

        return x;
    }

    /// <summary>
    /// The input convention, in the input's element type (before any cast to the compute type): channels reversed for a
    /// BGR network, times <see cref="ResNet3dOptions.InputScale"/>, minus the mean image (resized bilinearly to the
    /// input's height and width), minus the per-channel mean, divided by the per-channel standard deviation.
    /// </summary>
    private Tensor Normalize(Tensor input)
    {
        using var scope = torch.NewDisposeScope();
        long[] shape = [1, Options.InputChannels, 1, 1, 1];
        // Every branch below makes a new tensor and at least one runs (NormalizesInput), so the caller's input is never returned.
        var x = Options.InputChannelOrder == InputChannelOrder.Bgr ? input.flip(1) : input;
        if (Options.InputScale != 1.0)
        {
            using var scale = Options.InputScale.ToScalar();
            x = x.mul(scale);
        }

        if (_meanImage is not null)
        {
            var image = _meanImage.to(input.dtype, input.device).unsqueeze(0);
            if (image.shape[2] != input.shape[3] || image.shape[3] != input.shape[4])
            {
                image = nn.functional.interpolate(image, [input.shape[3], input.shape[4]], mode: InterpolationMode.Bilinear, align_corners: false);
            }

            x = x.sub(image.unsqueeze(2)); // [1, C, 1, H, W], the same for every frame
        }

        if (Options.InputMean is not null)
        {
            var mean = torch.tensor(Options.InputMean.ToArray(), input.dtype, input.device).view(shape);
            var std = torch.tensor(Options.InputStd!.ToArray(), input.dtype, input.device).view(shape);
            x = x.sub(mean).div_(std);
        }

        return x.contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Fills <paramref name="w"/> with a normal of standard deviation <paramref name="std"/> truncated at two standard
    /// deviations, by the inverse-CDF method (TorchSharp 0.107's <c>trunc_normal_</c> returns a constant).
    /// </summary>
    internal static void TruncatedNormal(Tensor w, double std)
    {
        static double Phi(double x) => 0.5 * (1 + Erf(x / Math.Sqrt(2)));
        double lo = (2 * Phi(-2)) - 1;
        double hi = (2 * Phi(2)) - 1;
        // Explicit scalars, disposed after use: a finaliser could otherwise free one while the operation reads it.
        using var scope = torch.NewDisposeScope();
        using var scale = (std * Math.Sqrt(2)).ToScalar();
        using var min = (-2 * std).ToScalar();
        using var max = (2 * std).ToScalar();
        w.uniform_(lo, hi).erfinv_().mul_(scale).clamp_(min, max);
    }

    /// <summary>The error function by Abramowitz and Stegun's formula 7.1.26 (absolute error under 1.5e-7; used only for the truncation bounds).</summary>
    private static double Erf(double x)
    {
        double t = 1 / (1 + (0.3275911 * Math.Abs(x)));
        double y = 1 - (((((((((1.061405429 * t) - 1.453152027) * t) + 1.421413741) * t) - 0.284496736) * t) + 0.254829592) * t * Math.Exp(-x * x));
        return x >= 0 ? y : -y;
    }

    /// <summary>Whether a [N, C, T, H, W] tensor already has channels-last-3d strides (C varies fastest).</summary>
    internal static bool IsChannelsLast(Tensor x)
    {
        long[] s = x.stride();
        return s[1] == 1 && s[4] == x.shape[1] && s[3] == s[4] * x.shape[4] && s[2] == s[3] * x.shape[3] && s[0] == s[2] * x.shape[2];
    }

    /// <summary>A copy of a [N, C, T, H, W] tensor with channels-last-3d strides (the same shape and values).</summary>
    internal static Tensor ToChannelsLast(Tensor x)
    {
        using var ndhwc = x.permute(0, 2, 3, 4, 1).contiguous();
        return ndhwc.permute(0, 4, 1, 2, 3);
    }

    private static (int, int, int) ComputeMinimumInput(ResNet3dOptions o)
    {
        int t = o.StemTemporalStride!.Value * o.StageTemporalStrides!.Aggregate(1, (a, b) => a * b);
        int s = 2 * (o.StemPool == true ? 2 : 1) * 8;
        return (t, s, s);
    }

    private static Parameter? Kernel(nn.Module module) => module switch
    {
        TorchSharp.Modules.Conv3d c => c.weight,
        PointwiseConv3d p => p.weight,
        _ => null,
    };

    private void InitializeWeights()
    {
        using var noGrad = torch.no_grad();
        foreach (var (_, module) in named_modules())
        {
            switch (module)
            {
                case TorchSharp.Modules.Conv3d or PointwiseConv3d when Kernel(module) is { } w && w.device_type != DeviceType.META:
                    if (Options.Init == WeightInit.Keras)
                    {
                        long fanIn = w.shape[1] * w.shape[2] * w.shape[3] * w.shape[4];
                        double std = Math.Sqrt(1.0 / fanIn) / 0.87962566103423978;
                        TruncatedNormal(w, std);
                    }
                    else
                    {
                        nn.init.kaiming_normal_(w, mode: init.FanInOut.FanOut, nonlinearity: init.NonlinearityType.ReLU);
                    }

                    break;
                case CvrlBatchNorm bn when bn.weight.device_type != DeviceType.META:
                    nn.init.ones_(bn.weight);
                    nn.init.zeros_(bn.bias);
                    break;
                case Linear linear when linear.weight is { } lw && lw.device_type != DeviceType.META:
                    if (Options.Init == WeightInit.Keras)
                    {
                        nn.init.xavier_uniform_(lw);
                    }
                    else
                    {
                        nn.init.normal_(lw, 0, 0.01);
                    }

                    nn.init.zeros_(linear.bias!);
                    break;
            }
        }

        if (Options.ZeroInitResidual)
        {
            foreach (var block in _stages.SelectMany(s => s))
            {
                var bn = block is Bottleneck3d b ? b.LastBn : ((BasicBlock3d)block).LastBn;
                if (bn.weight!.device_type != DeviceType.META)
                {
                    nn.init.zeros_(bn.weight);
                }
            }
        }
    }
}
