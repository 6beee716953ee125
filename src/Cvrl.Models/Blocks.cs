using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Cvrl.Models;

/// <summary>
/// Convolution, BatchNorm and optional ReLU, registered as a <c>Sequential("0": conv, "1": bn[, "2": relu])</c> so
/// that state-dict keys are <c>name.0.weight</c>, <c>name.1.running_mean</c>, ... (torchvision's video ResNet layout).
/// Runs the layers itself to free intermediates early and to pad the TensorFlow 'SAME' way when asked.
/// </summary>
internal sealed class ConvBn
{
    private readonly long[] _kernel;
    private readonly long[] _stride;
    private readonly bool _tfSame;

    public ConvBn(long inChannels, long outChannels, (long T, long H, long W) kernel, (long T, long H, long W) stride, bool relu, ResNet3dOptions options, Device? device)
    {
        _kernel = [kernel.T, kernel.H, kernel.W];
        _stride = [stride.T, stride.H, stride.W];
        _tfSame = options.Padding == ConvPadding.TensorFlowSame && _stride.Any(s => s > 1);
        var padding = _tfSame ? (0L, 0L, 0L) : (kernel.T / 2, kernel.H / 2, kernel.W / 2);
        Conv = kernel == (1, 1, 1)
            ? new PointwiseConv3d(inChannels, outChannels, stride, device)
            : nn.Conv3d(inChannels, outChannels, kernel, stride, padding, bias: false, device: device);
        Bn = new CvrlBatchNorm(outChannels, dimensions: 5, options.BatchNormEps, options.BatchNormMomentum, device);
        Relu = relu;
        var layers = new List<(string, Module<Tensor, Tensor>)> { ("0", Conv), ("1", Bn) };
        if (relu)
        {
            layers.Add(("2", nn.ReLU(inplace: true)));
        }

        Sequential = nn.Sequential(layers);
    }

    /// <summary>The convolution: a <see cref="TorchSharp.Modules.Conv3d"/>, or a <see cref="PointwiseConv3d"/> for 1x1x1 kernels.</summary>
    public Module<Tensor, Tensor> Conv { get; }

    public CvrlBatchNorm Bn { get; }

    public bool Relu { get; }

    /// <summary>The container registered with the parent (owns the layers).</summary>
    public Sequential Sequential { get; }

    /// <summary>Kernel size (T, H, W).</summary>
    public IReadOnlyList<long> Kernel => _kernel;

    /// <summary>Stride (T, H, W).</summary>
    public IReadOnlyList<long> Stride => _stride;

    /// <summary>Whether the input is padded the TensorFlow 'SAME' way (else symmetrically by half the kernel).</summary>
    public bool TensorFlowSame => _tfSame;

    /// <summary>The kernel tensor <c>[out, in, kt, kh, kw]</c> of either convolution kind.</summary>
    public Tensor Weight => Conv switch
    {
        TorchSharp.Modules.Conv3d c => c.weight!,
        PointwiseConv3d p => p.weight,
        _ => throw new InvalidOperationException($"Unexpected convolution {Conv.GetType().Name}."),
    };

    /// <summary>
    /// Runs conv, BN and ReLU in the compute type of the enclosing <see cref="ComputeScope"/> (float32, or bfloat16
    /// with bfloat16 copies of the input and the kernel; BatchNorm keeps float32 statistics either way and returns the
    /// convolution's type); disposes every intermediate it creates (never <paramref name="x"/>).
    /// </summary>
    public Tensor Forward(Tensor x)
    {
        Tensor conv;
        if (_tfSame)
        {
            using var padded = nn.functional.pad(x, SamePadding.Pads(x.shape, _kernel, _stride));
            conv = Convolve(padded);
        }
        else
        {
            conv = Convolve(x);
        }

        var y = Bn.call(conv);
        conv.Dispose();
        return Relu ? y.relu_() : y;
    }

    /// <summary>
    /// The convolution in the input's element type: the module itself for float32, else with a cast copy of its kernel.
    /// In bfloat16, an input shorter in time than the kernel is padded in time explicitly: libtorch 2.10's CPU
    /// bfloat16 convolution returns wrong kernel gradients (NaN, infinite, or off by 100%) when it pads such an input
    /// itself (measured: 2 frames under a 3-frame kernel, 3 or 4 frames under a 5-frame one; forward values are right).
    /// </summary>
    private Tensor Convolve(Tensor input)
    {
        if (Conv is not TorchSharp.Modules.Conv3d conv || ComputeScope.Current == ScalarType.Float32)
        {
            return Conv.call(input); // PointwiseConv3d casts for itself
        }

        using var cast = ComputeScope.Cast(input);
        var x = cast ?? input;
        using var kernel = conv.weight!.to(x.dtype);
        long[] padding = _tfSame ? [0, 0, 0] : [_kernel[0] / 2, _kernel[1] / 2, _kernel[2] / 2];
        if (padding[0] > 0 && x.shape[2] < _kernel[0])
        {
            using var padded = nn.functional.pad(x, [0, 0, 0, 0, padding[0], padding[0]]);
            return nn.functional.conv3d(padded, kernel, strides: _stride, padding: [0, padding[1], padding[2]]);
        }

        return nn.functional.conv3d(x, kernel, strides: _stride, padding: padding);
    }
}

/// <summary>TensorFlow 'SAME' padding: total pad max((ceil(n/s) - 1) s + k - n, 0), the larger half at the end.</summary>
internal static class SamePadding
{
    /// <summary>F.pad arguments for a [N, C, T, H, W] input (last dimension first).</summary>
    public static long[] Pads(long[] shape, long[] kernel, long[] stride)
    {
        var pads = new long[6];
        for (int d = 0; d < 3; d++)
        {
            long n = shape[2 + d];
            long outSize = (n + stride[d] - 1) / stride[d];
            long total = Math.Max(((outSize - 1) * stride[d]) + kernel[d] - n, 0);
            long before = total / 2;
            int slot = (2 - d) * 2;
            pads[slot] = before;
            pads[slot + 1] = total - before;
        }

        return pads;
    }
}

/// <summary>The network's stem: one convolution with BatchNorm and ReLU, then (CVRL) a 1x3x3 max pool.</summary>
internal sealed class Stem
{
    private readonly ConvBn _conv;
    private readonly MaxPool3d? _pool;
    private readonly bool _tfSame;

    public Stem(ResNet3dOptions o, int outChannels, Device? device)
    {
        long kt = o.StemTemporalKernel!.Value;
        long st = o.StemTemporalStride!.Value;
        _conv = new ConvBn(o.InputChannels, outChannels, (kt, 7, 7), (st, 2, 2), relu: true, o, device);
        _tfSame = o.Padding == ConvPadding.TensorFlowSame;
        var layers = new List<(string, Module<Tensor, Tensor>)> { ("0", _conv.Conv), ("1", _conv.Bn), ("2", nn.ReLU(inplace: true)) };
        if (o.StemPool == true)
        {
            _pool = _tfSame
                ? nn.MaxPool3d((1L, 3L, 3L), (1L, 2L, 2L), (0L, 0L, 0L))
                : nn.MaxPool3d((1L, 3L, 3L), (1L, 2L, 2L), (0L, 1L, 1L));
            layers.Add(("3", _pool));
        }

        Sequential = nn.Sequential(layers);
    }

    /// <summary>The container registered with the network as "stem" (owns the layers).</summary>
    public Sequential Sequential { get; }

    /// <summary>The convolution with its BatchNorm and ReLU.</summary>
    public ConvBn Conv => _conv;

    /// <summary>Whether a 1x3x3 max pool (stride 1, 2, 2) follows.</summary>
    public bool HasPool => _pool is not null;

    /// <summary>Whether the pool pads the TensorFlow 'SAME' way (else by one pixel on each side).</summary>
    public bool PoolTensorFlowSame => _tfSame;

    /// <summary>Runs the stem; disposes every intermediate it creates (never <paramref name="x"/>).</summary>
    public Tensor Forward(Tensor x)
    {
        var y = _conv.Forward(x);
        if (_pool is null)
        {
            return y;
        }

        Tensor pooled;
        if (_tfSame)
        {
            using var padded = nn.functional.pad(y, SamePadding.Pads(y.shape, [1, 3, 3], [1, 2, 2]), value: double.NegativeInfinity);
            pooled = _pool.call(padded);
        }
        else
        {
            pooled = _pool.call(y);
        }

        y.Dispose();
        return pooled;
    }
}

/// <summary>What the two residual blocks share: the projection shortcut and the closing sum and ReLU.</summary>
internal static class Residual
{
    /// <summary>A 1x1x1 projection (with BatchNorm) when the block changes the shape, otherwise null (identity shortcut).</summary>
    public static ConvBn? Shortcut(int inChannels, int outChannels, (long T, long S) stride, ResNet3dOptions o, Device? device) =>
        stride.T != 1 || stride.S != 1 || inChannels != outChannels
            ? new ConvBn(inChannels, outChannels, (1, 1, 1), (stride.T, stride.S, stride.S), relu: false, o, device)
            : null;

    /// <summary>Adds the shortcut of <paramref name="x"/> to <paramref name="branch"/> in place and applies ReLU in place.</summary>
    public static Tensor Close(Tensor branch, Tensor x, ConvBn? downsample)
    {
        if (downsample is null)
        {
            branch.add_(x, TorchScalars.One);
        }
        else
        {
            using var shortcut = downsample.Forward(x);
            branch.add_(shortcut, TorchScalars.One);
        }

        return branch.relu_();
    }
}

/// <summary>
/// Basic residual block (depth 18, 34), torchvision's R3D layout: two 3x3x3 convolutions (temporal kernel per stage),
/// the first strided in time and space; a 1x1x1 projection shortcut when the shape changes.
/// </summary>
internal sealed class BasicBlock3d : Module<Tensor, Tensor>
{
    public const int Expansion = 1;

    private readonly ConvBn _conv1;
    private readonly ConvBn _conv2;
    private readonly ConvBn? _downsample;

    public BasicBlock3d(int inChannels, int planes, int temporalKernel, (long T, long S) stride, ResNet3dOptions o, Device? device)
        : base("BasicBlock3d")
    {
        _conv1 = new ConvBn(inChannels, planes, (temporalKernel, 3, 3), (stride.T, stride.S, stride.S), relu: true, o, device);
        _conv2 = new ConvBn(planes, planes, (temporalKernel, 3, 3), (1, 1, 1), relu: false, o, device);
        register_module("conv1", _conv1.Sequential);
        register_module("conv2", _conv2.Sequential);
        _downsample = Residual.Shortcut(inChannels, planes * Expansion, stride, o, device);
        if (_downsample is not null)
        {
            register_module("downsample", _downsample.Sequential);
        }
    }

    /// <summary>The BatchNorm that closes the residual branch (zero-initialised on request).</summary>
    public CvrlBatchNorm LastBn => _conv2.Bn;

    /// <summary>The residual branch in order (ReLU after every one but the last).</summary>
    public IReadOnlyList<ConvBn> Branch => [_conv1, _conv2];

    /// <summary>The projection shortcut, or null for the identity.</summary>
    public ConvBn? Downsample => _downsample;

    public override Tensor forward(Tensor x)
    {
        var a = _conv1.Forward(x);
        var b = _conv2.Forward(a);
        a.Dispose();
        return Residual.Close(b, x, _downsample);
    }
}

/// <summary>
/// Bottleneck residual block (depth 50 and up), CVRL's layout: [kt x 1 x 1] -> [1 x 3 x 3, spatial stride] -> [1 x 1 x 1, 4x],
/// each with BatchNorm, ReLU after the first two and after the residual sum; a 1x1x1 projection shortcut when the shape changes.
/// </summary>
internal sealed class Bottleneck3d : Module<Tensor, Tensor>
{
    public const int Expansion = 4;

    private readonly ConvBn _conv1;
    private readonly ConvBn _conv2;
    private readonly ConvBn _conv3;
    private readonly ConvBn? _downsample;

    public Bottleneck3d(int inChannels, int planes, int temporalKernel, (long T, long S) stride, ResNet3dOptions o, Device? device)
        : base("Bottleneck3d")
    {
        _conv1 = new ConvBn(inChannels, planes, (temporalKernel, 1, 1), (stride.T, 1, 1), relu: true, o, device);
        _conv2 = new ConvBn(planes, planes, (1, 3, 3), (1, stride.S, stride.S), relu: true, o, device);
        _conv3 = new ConvBn(planes, planes * Expansion, (1, 1, 1), (1, 1, 1), relu: false, o, device);
        register_module("conv1", _conv1.Sequential);
        register_module("conv2", _conv2.Sequential);
        register_module("conv3", _conv3.Sequential);
        _downsample = Residual.Shortcut(inChannels, planes * Expansion, stride, o, device);
        if (_downsample is not null)
        {
            register_module("downsample", _downsample.Sequential);
        }
    }

    /// <summary>The BatchNorm that closes the residual branch (zero-initialised on request).</summary>
    public CvrlBatchNorm LastBn => _conv3.Bn;

    /// <summary>The residual branch in order (ReLU after every one but the last).</summary>
    public IReadOnlyList<ConvBn> Branch => [_conv1, _conv2, _conv3];

    /// <summary>The projection shortcut, or null for the identity.</summary>
    public ConvBn? Downsample => _downsample;

    public override Tensor forward(Tensor x)
    {
        var a = _conv1.Forward(x);
        var b = _conv2.Forward(a);
        a.Dispose();
        var c = _conv3.Forward(b);
        b.Dispose();
        return Residual.Close(c, x, _downsample);
    }
}
