using System.Collections.Frozen;

namespace Cvrl.Models;

/// <summary>How a <see cref="ResNet3d"/>'s weights are initialised.</summary>
public enum WeightInit
{
    /// <summary>The depth's own default: <see cref="Keras"/> for depth 50 and up (CVRL), <see cref="Torchvision"/> for 18 and 34.</summary>
    Default,

    /// <summary>
    /// CVRL's official initialisation: convolutions Keras <c>VarianceScaling()</c> (truncated normal, fan-in, scale 1,
    /// std = sqrt(1/fan_in)/0.8796), classifier Glorot-uniform, BatchNorm gamma 1, beta 0.
    /// </summary>
    Keras,

    /// <summary>torchvision's video ResNets: convolutions Kaiming-normal (fan-out, ReLU), BatchNorm 1/0, classifier N(0, 0.01).</summary>
    Torchvision,
}

/// <summary>The order of the colour channels a network was trained on.</summary>
public enum InputChannelOrder
{
    /// <summary>Red, green, blue: what Cvrl feeds, torchvision's and the video zoos' order.</summary>
    Rgb,

    /// <summary>Blue, green, red: OpenCV's, Caffe's and CNTK's order; the network reverses Cvrl's RGB input itself.</summary>
    Bgr,
}

/// <summary>How convolutions pad their input.</summary>
public enum ConvPadding
{
    /// <summary>PyTorch style: k/2 on both sides. Same output shapes as TensorFlow, alignment shifted by half a pixel on stride 2. The default (faster).</summary>
    Symmetric,

    /// <summary>TensorFlow 'SAME': the extra pad at the end (explicit padding before stride-2 layers). Use to load TensorFlow weights exactly.</summary>
    TensorFlowSame,
}

/// <summary>
/// Options for <see cref="ResNet3d.Create(ResNet3dOptions, TorchSharp.torch.Device?)"/>. Every value left null takes the
/// depth's default: CVRL's R3D layout for depth 50 and up, torchvision's R3D layout for 18 and 34.
/// <see cref="ResNet3d.Options"/> reports the resolved values.
/// </summary>
public sealed record ResNet3dOptions
{
    /// <summary>Blocks per stage for each supported depth (basic blocks for 18 and 34, bottlenecks from 50).</summary>
    public static IReadOnlyDictionary<int, int[]> StageBlocks { get; } = new Dictionary<int, int[]>
    {
        [18] = [2, 2, 2, 2],
        [34] = [3, 4, 6, 3],
        [50] = [3, 4, 6, 3],
        [101] = [3, 4, 23, 3],
        [152] = [3, 8, 36, 3],
        [200] = [3, 24, 36, 3],
    }.ToFrozenDictionary();

    /// <summary>Network depth: 18, 34 (basic blocks) or 50, 101, 152, 200 (bottlenecks). Default 50.</summary>
    public int Depth { get; init; } = 50;

    /// <summary>
    /// Multiplies every convolution's width, stem included (1, 2, 4, or a fraction such as 0.25 for small models).
    /// The stem has <c>round(64 w)</c> channels and stage i <c>round(64 w 2^i)</c> (times 4 for bottleneck outputs).
    /// Default 1.
    /// </summary>
    public double WidthMultiplier { get; init; } = 1.0;

    /// <summary>
    /// Residual blocks per stage, or null for the depth's (<see cref="StageBlocks"/>): for networks whose layout is not a
    /// standard depth's, such as CNTK's ImageNet "ResNet-18" with blocks 2, 2, 2, 3. <see cref="Depth"/> still decides the
    /// block type (basic below 50, bottleneck from 50). Default null.
    /// </summary>
    public IReadOnlyList<int>? Blocks { get; init; }

    /// <summary>The blocks per stage the network has: <see cref="Blocks"/>, else the depth's.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public IReadOnlyList<int> BlocksPerStage => Blocks ?? StageBlocks[Depth];

    /// <summary>Input channels. Default 3.</summary>
    public int InputChannels { get; init; } = 3;

    /// <summary>Classes of the classifier head, or null for a backbone that returns pooled features. Default null.</summary>
    public int? NumClasses { get; init; }

    /// <summary>Dropout before the classifier (classifier mode only). Default 0.5 (the Model Garden's supervised setting).</summary>
    public double DropoutRate { get; init; } = 0.5;

    /// <summary>Temporal kernel of the stem convolution (CVRL: 5; torchvision R3D: 3).</summary>
    public int? StemTemporalKernel { get; init; }

    /// <summary>Temporal stride of the stem convolution (CVRL: 2; torchvision R3D: 1).</summary>
    public int? StemTemporalStride { get; init; }

    /// <summary>Whether the stem ends with a 1x3x3 max pool of stride (1, 2, 2) (CVRL: yes; torchvision R3D: no).</summary>
    public bool? StemPool { get; init; }

    /// <summary>
    /// Temporal kernel of each stage's temporal convolution: the first 1x1x1 of a bottleneck, or both 3x3 convolutions
    /// of a basic block (CVRL: 1, 1, 3, 3; torchvision R3D: 3, 3, 3, 3).
    /// </summary>
    public IReadOnlyList<int>? StageTemporalKernels { get; init; }

    /// <summary>Temporal stride of each stage's first block (CVRL: 1, 1, 1, 1; torchvision R3D: 1, 2, 2, 2).</summary>
    public IReadOnlyList<int>? StageTemporalStrides { get; init; }

    /// <summary>BatchNorm momentum in PyTorch's convention (Keras 0.9 becomes 0.1). Default 0.1.</summary>
    public double BatchNormMomentum { get; init; } = 0.1;

    /// <summary>BatchNorm epsilon. Default 1e-5.</summary>
    public double BatchNormEps { get; init; } = 1e-5;

    /// <summary>Initialise the last BatchNorm of every residual branch to zero. Default false (CVRL does not).</summary>
    public bool ZeroInitResidual { get; init; }

    /// <summary>Weight initialisation. Default: the depth's own.</summary>
    public WeightInit Init { get; init; } = WeightInit.Default;

    /// <summary>Convolution padding. Default <see cref="ConvPadding.Symmetric"/>.</summary>
    public ConvPadding Padding { get; init; } = ConvPadding.Symmetric;

    /// <summary>
    /// Run the network in the channels-last-3d memory layout (NDHWC strides), which libtorch's CPU (oneDNN) and GPU
    /// (cuDNN) convolutions prefer: on the CPU it made an R3D-50 training step about 5 to 10% faster and 10% leaner
    /// (docs/benchmarks.md). TorchSharp has no memory-format API, so the network gives its input channels-last strides
    /// and libtorch carries the layout through every layer. Results are the same up to float rounding. Default true.
    /// </summary>
    public bool ChannelsLast { get; init; } = true;

    /// <summary>
    /// Per-channel values subtracted from the input before the stem, in the input's units (Cvrl feeds RGB in [0, 1]), or
    /// null for none: CVRL feeds pixels as they are. Model-zoo encoders were trained on normalised pixels (PySlowFast and
    /// pytorchvideo: mean 0.45, std 0.225; mmaction2: ImageNet's 0.485, 0.456, 0.406 and 0.229, 0.224, 0.225); their
    /// importer sets both so that every consumer (embedding, evaluation, fine-tuning, ONNX export) feeds them right. Set
    /// with <see cref="InputStd"/>; one value per input channel.
    /// </summary>
    public IReadOnlyList<double>? InputMean { get; init; }

    /// <summary>Per-channel divisors applied after <see cref="InputMean"/>, or null for none. Positive; one per input channel.</summary>
    public IReadOnlyList<double>? InputStd { get; init; }

    /// <summary>
    /// The channel order the network was trained on. Cvrl feeds RGB; with <see cref="Cvrl.Models.InputChannelOrder.Bgr"/>
    /// the network reverses the channels first (3 input channels only). Default RGB.
    /// </summary>
    public InputChannelOrder InputChannelOrder { get; init; } = InputChannelOrder.Rgb;

    /// <summary>
    /// Multiplies Cvrl's input (pixels in [0, 1]) before anything else: 255 for networks trained on 8-bit pixel values
    /// (Caffe and CNTK ImageNet models), 1 for networks trained on [0, 1] (torchvision, the video zoos). The means of
    /// <see cref="InputMean"/> and the mean image are in these units. Default 1.
    /// </summary>
    public double InputScale { get; init; } = 1.0;

    /// <summary>
    /// The size (channels, height, width) of a per-pixel mean image subtracted after <see cref="InputScale"/> and before
    /// <see cref="InputMean"/> (resized bilinearly to the input's height and width when they differ), or null for none.
    /// The image itself is the network's buffer <c>input_mean_image</c>, saved and loaded with its weights; importers of
    /// models trained with a mean image (ML.NET's and CNTK's ImageNet ResNets) set both. Default null.
    /// </summary>
    public IReadOnlyList<int>? InputMeanImageSize { get; init; }

    /// <summary>Whether the network transforms its input before the stem (any of the input convention's settings made).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool NormalizesInput => InputMean is not null || InputScale != 1.0 || InputChannelOrder != InputChannelOrder.Rgb || InputMeanImageSize is not null;

    /// <summary>
    /// The input convention in words, for reports and model metadata: "RGB in [0, 1] as given", or for example "channels
    /// reversed to BGR, x 255, minus a 3x224x224 mean image".
    /// </summary>
    public string DescribeInput()
    {
        static string Values(IReadOnlyList<double> v) => string.Join(", ", v.Select(x => x.ToString("G6", System.Globalization.CultureInfo.InvariantCulture)));
        var steps = new List<string>();
        if (InputChannelOrder == InputChannelOrder.Bgr)
        {
            steps.Add("channels reversed to BGR");
        }

        if (InputScale != 1.0)
        {
            steps.Add(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"x {InputScale:G6}"));
        }

        if (InputMeanImageSize is { } image)
        {
            steps.Add($"minus a {image[0]}x{image[1]}x{image[2]} mean image (resized to the input)");
        }

        if (InputMean is not null)
        {
            steps.Add($"minus mean {Values(InputMean)}, divided by std {Values(InputStd!)}");
        }

        return steps.Count == 0 ? "RGB in [0, 1] as given" : string.Join(", ", steps);
    }

    /// <summary>Whether the depth uses bottleneck blocks (50 and up).</summary>
    public bool IsBottleneck => Depth >= 50;

    /// <summary>Checks every option (before any weight is allocated).</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it and the valid values.</exception>
    /// <exception cref="ArgumentException">A per-stage list does not have four entries.</exception>
    public void Validate()
    {
        if (!StageBlocks.ContainsKey(Depth))
        {
            throw new ArgumentOutOfRangeException(nameof(Depth), Depth, $"Unsupported depth; valid depths are {string.Join(", ", StageBlocks.Keys.Order())}.");
        }

        if (!(WidthMultiplier > 0) || double.IsInfinity(WidthMultiplier))
        {
            throw new ArgumentOutOfRangeException(nameof(WidthMultiplier), WidthMultiplier, "WidthMultiplier must be a positive finite number.");
        }

        if (Channels(64, WidthMultiplier) < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(WidthMultiplier), WidthMultiplier,
                $"WidthMultiplier {WidthMultiplier} gives fewer than one channel in the stem (64 x {WidthMultiplier} rounds to 0); the smallest usable value is 1/128.");
        }

        if (InputChannels < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(InputChannels), InputChannels, "InputChannels must be at least 1.");
        }

        if (NumClasses is int classes && classes < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(NumClasses), classes, "NumClasses must be at least 1, or null for a backbone.");
        }

        if (DropoutRate is < 0 or >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(DropoutRate), DropoutRate, "DropoutRate must lie in [0, 1).");
        }

        if (StemTemporalKernel is int k && (k < 1 || k % 2 == 0))
        {
            throw new ArgumentOutOfRangeException(nameof(StemTemporalKernel), k, "StemTemporalKernel must be a positive odd number.");
        }

        if (StemTemporalStride is int s && s < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(StemTemporalStride), s, "StemTemporalStride must be at least 1.");
        }

        CheckStageList(Blocks, nameof(Blocks), odd: false);
        CheckStageList(StageTemporalKernels, nameof(StageTemporalKernels), odd: true);
        CheckStageList(StageTemporalStrides, nameof(StageTemporalStrides), odd: false);
        if (BatchNormMomentum is <= 0 or > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(BatchNormMomentum), BatchNormMomentum, "BatchNormMomentum must lie in (0, 1] (PyTorch convention).");
        }

        if (!(BatchNormEps > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(BatchNormEps), BatchNormEps, "BatchNormEps must be positive.");
        }

        if ((InputMean is null) != (InputStd is null))
        {
            throw new ArgumentException($"{nameof(InputMean)} and {nameof(InputStd)} go together: set both or neither.", InputMean is null ? nameof(InputMean) : nameof(InputStd));
        }

        if (InputMean is not null && (InputMean.Count != InputChannels || InputStd!.Count != InputChannels))
        {
            throw new ArgumentException($"{nameof(InputMean)} and {nameof(InputStd)} need one value per input channel ({InputChannels}); got {InputMean.Count} and {InputStd!.Count}.", nameof(InputMean));
        }

        if (InputMean is not null && (InputMean.Any(v => !double.IsFinite(v)) || InputStd!.Any(v => !(v > 0) || !double.IsFinite(v))))
        {
            throw new ArgumentOutOfRangeException(nameof(InputStd), $"{nameof(InputMean)} must be finite and {nameof(InputStd)} positive and finite; got [{string.Join(", ", InputMean)}] and [{string.Join(", ", InputStd!)}].");
        }

        if (!double.IsFinite(InputScale) || !(InputScale > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(InputScale), InputScale, "InputScale must be a positive finite number (1 for pixels in [0, 1], 255 for 8-bit pixel values).");
        }

        if (!Enum.IsDefined(InputChannelOrder) || (InputChannelOrder == InputChannelOrder.Bgr && InputChannels != 3))
        {
            throw new ArgumentOutOfRangeException(nameof(InputChannelOrder), InputChannelOrder, "InputChannelOrder must be Rgb or Bgr, and Bgr needs 3 input channels.");
        }

        if (InputMeanImageSize is { } image && (image.Count != 3 || image[0] != InputChannels || image[1] < 1 || image[2] < 1))
        {
            throw new ArgumentException($"{nameof(InputMeanImageSize)} must be (channels, height, width) with {InputChannels} channels; got ({string.Join(", ", image)}).", nameof(InputMeanImageSize));
        }

        if (!Enum.IsDefined(Init))
        {
            throw new ArgumentOutOfRangeException(nameof(Init), Init, "Unknown initialisation.");
        }

        if (!Enum.IsDefined(Padding))
        {
            throw new ArgumentOutOfRangeException(nameof(Padding), Padding, "Unknown padding.");
        }
    }

    /// <summary>Returns a copy with every null option replaced by the depth's default (after validation).</summary>
    public ResNet3dOptions Resolve()
    {
        Validate();
        bool cvrl = IsBottleneck;
        return this with
        {
            StemTemporalKernel = StemTemporalKernel ?? (cvrl ? 5 : 3),
            StemTemporalStride = StemTemporalStride ?? (cvrl ? 2 : 1),
            StemPool = StemPool ?? cvrl,
            StageTemporalKernels = [.. StageTemporalKernels ?? (cvrl ? [1, 1, 3, 3] : [3, 3, 3, 3])],
            StageTemporalStrides = [.. StageTemporalStrides ?? (cvrl ? [1, 1, 1, 1] : [1, 2, 2, 2])],
            Init = Init == WeightInit.Default ? (cvrl ? WeightInit.Keras : WeightInit.Torchvision) : Init,
        };
    }

    /// <summary>A short name such as "R3D-50 2x" or "R3D-18 1x, 101 classes".</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string ArchitectureName =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"R3D-{Depth} {WidthMultiplier:0.###}x{(Blocks is { } b && !b.SequenceEqual(StageBlocks[Depth]) ? $" (blocks {string.Join("-", b)})" : string.Empty)}{(NumClasses is int n ? $", {n} classes" : string.Empty)}");

    /// <summary>Structural equality, comparing the per-stage lists by value.</summary>
    public bool Equals(ResNet3dOptions? other) =>
        other is not null && Depth == other.Depth && WidthMultiplier.Equals(other.WidthMultiplier) && InputChannels == other.InputChannels
        && NumClasses == other.NumClasses && DropoutRate.Equals(other.DropoutRate) && StemTemporalKernel == other.StemTemporalKernel
        && StemTemporalStride == other.StemTemporalStride && StemPool == other.StemPool && SameList(StageTemporalKernels, other.StageTemporalKernels)
        && SameList(StageTemporalStrides, other.StageTemporalStrides) && BatchNormMomentum.Equals(other.BatchNormMomentum)
        && BatchNormEps.Equals(other.BatchNormEps) && ZeroInitResidual == other.ZeroInitResidual && Init == other.Init && Padding == other.Padding
        && ChannelsLast == other.ChannelsLast && SameValues(InputMean, other.InputMean) && SameValues(InputStd, other.InputStd)
        && InputChannelOrder == other.InputChannelOrder && InputScale.Equals(other.InputScale) && SameList(InputMeanImageSize, other.InputMeanImageSize)
        && BlocksPerStage.SequenceEqual(other.BlocksPerStage);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Depth, WidthMultiplier, NumClasses, StemTemporalKernel, Init, Padding);

    /// <summary>The channel count for a base width at a width multiplier.</summary>
    internal static int Channels(int baseWidth, double widthMultiplier) => (int)Math.Round(baseWidth * widthMultiplier, MidpointRounding.AwayFromZero);

    private static bool SameList(IReadOnlyList<int>? a, IReadOnlyList<int>? b) =>
        a is null ? b is null : b is not null && a.SequenceEqual(b);

    private static bool SameValues(IReadOnlyList<double>? a, IReadOnlyList<double>? b) =>
        a is null ? b is null : b is not null && a.SequenceEqual(b);

    private static void CheckStageList(IReadOnlyList<int>? values, string name, bool odd)
    {
        if (values is null)
        {
            return;
        }

        if (values.Count != 4)
        {
            throw new ArgumentException($"{name} needs one value per stage (4), got {values.Count}.", name);
        }

        foreach (int v in values)
        {
            if (v < 1 || (odd && v % 2 == 0))
            {
                throw new ArgumentOutOfRangeException(name, v, odd ? $"{name} must hold positive odd numbers." : $"{name} must hold positive numbers.");
            }
        }
    }
}
