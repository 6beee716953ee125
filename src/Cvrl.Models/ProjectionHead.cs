using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Cvrl.Models;

/// <summary>Options for <see cref="ProjectionHead"/>; the defaults are CVRL's (docs/method.md section 4).</summary>
public sealed record ProjectionHeadOptions
{
    /// <summary>Width of the hidden layers. Default 2048.</summary>
    public int HiddenDim { get; init; } = 2048;

    /// <summary>Number of Linear-BN-ReLU blocks. Default 3.</summary>
    public int HiddenLayers { get; init; } = 3;

    /// <summary>Size of the output embedding. Default 128.</summary>
    public int OutputDim { get; init; } = 128;

    /// <summary>BatchNorm momentum in PyTorch's convention (Keras 0.997 is 0.003). Default 0.003.</summary>
    public double BatchNormMomentum { get; init; } = 0.003;

    /// <summary>BatchNorm epsilon. Default 1e-5.</summary>
    public double BatchNormEps { get; init; } = 1e-5;

    /// <summary>
    /// The head for an encoder of width <paramref name="widthMultiplier"/>: hidden layers <see cref="HiddenDim"/> wide
    /// scaled with the encoder (2048 x width, rounded to the nearest integer, at least 64), the rest CVRL's defaults. The
    /// one rule the CLI and the experiments use.
    /// </summary>
    /// <param name="widthMultiplier">The encoder's width multiplier (1 for R3D-50: a 2048-wide head).</param>
    /// <returns>The options.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The width is not positive.</exception>
    public static ProjectionHeadOptions ForWidth(double widthMultiplier)
    {
        if (!(widthMultiplier > 0) || !double.IsFinite(widthMultiplier))
        {
            throw new ArgumentOutOfRangeException(nameof(widthMultiplier), widthMultiplier, "The width multiplier must be positive.");
        }

        var defaults = new ProjectionHeadOptions();
        return defaults with { HiddenDim = Math.Max(64, (int)Math.Round(defaults.HiddenDim * widthMultiplier)) };
    }

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        if (HiddenDim < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(HiddenDim), HiddenDim, "HiddenDim must be at least 1.");
        }

        if (HiddenLayers < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(HiddenLayers), HiddenLayers, "HiddenLayers must be 0 or more.");
        }

        if (OutputDim < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(OutputDim), OutputDim, "OutputDim must be at least 1.");
        }

        if (BatchNormMomentum is <= 0 or > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(BatchNormMomentum), BatchNormMomentum, "BatchNormMomentum must lie in (0, 1] (PyTorch convention).");
        }

        if (!(BatchNormEps > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(BatchNormEps), BatchNormEps, "BatchNormEps must be positive.");
        }
    }
}

/// <summary>
/// CVRL's projection head: <see cref="ProjectionHeadOptions.HiddenLayers"/> blocks of Linear (with bias) -> BatchNorm
/// -> ReLU, then a Linear to <see cref="ProjectionHeadOptions.OutputDim"/> with no BatchNorm or activation. Input
/// <c>[N, inputDim]</c> (any feature size: 2048 for R3D-50, 8192 for the 4x model), output <c>[N, OutputDim]</c>.
/// No normalisation happens here: the contrastive loss normalises. Linear layers use Glorot-uniform weights and zero
/// biases (the Keras defaults the official code uses). State-dict keys: <c>net.0.weight</c>, <c>net.1.running_mean</c>, ...
/// </summary>
public sealed class ProjectionHead : Module<Tensor, Tensor>
{
    private readonly Sequential _net;
    private readonly List<Module<Tensor, Tensor>> _layers;
    private ScalarType _computeType = ScalarType.Float32;

    /// <summary>Creates a head.</summary>
    /// <param name="inputDim">Size of the incoming features.</param>
    /// <param name="options">Options (validated); null for CVRL's defaults.</param>
    /// <param name="device">Where to allocate the weights (default CPU).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="inputDim"/> or an option is out of range.</exception>
    public ProjectionHead(int inputDim, ProjectionHeadOptions? options = null, Device? device = null)
        : base(nameof(ProjectionHead))
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inputDim);
        Options = options ?? new ProjectionHeadOptions();
        Options.Validate();
        TorchNative.EnsureLoaded();
        InputDim = inputDim;
        var layers = new List<(string, Module<Tensor, Tensor>)>();
        int width = inputDim;
        for (int i = 0; i < Options.HiddenLayers; i++)
        {
            layers.Add(((3 * i).ToString(System.Globalization.CultureInfo.InvariantCulture), nn.Linear(width, Options.HiddenDim, device: device)));
            layers.Add((((3 * i) + 1).ToString(System.Globalization.CultureInfo.InvariantCulture),
                new CvrlBatchNorm(Options.HiddenDim, dimensions: 2, Options.BatchNormEps, Options.BatchNormMomentum, device)));
            layers.Add((((3 * i) + 2).ToString(System.Globalization.CultureInfo.InvariantCulture), nn.ReLU()));
            width = Options.HiddenDim;
        }

        layers.Add(((3 * Options.HiddenLayers).ToString(System.Globalization.CultureInfo.InvariantCulture), nn.Linear(width, Options.OutputDim, device: device)));
        _net = nn.Sequential(layers);
        register_module("net", _net);
        _layers = [.. layers.Select(l => l.Item2)];

        using var noGrad = torch.no_grad();
        foreach (var (_, module) in named_modules())
        {
            if (module is Linear linear && linear.weight!.device_type != DeviceType.META)
            {
                nn.init.xavier_uniform_(linear.weight);
                nn.init.zeros_(linear.bias!);
            }
        }
    }

    /// <summary>The options.</summary>
    public ProjectionHeadOptions Options { get; }

    /// <summary>Size of the incoming features.</summary>
    public int InputDim { get; }

    /// <summary>
    /// The element type the head computes in: <see cref="ScalarType.Float32"/> (default) or
    /// <see cref="ScalarType.BFloat16"/> (linear layers on bfloat16 copies of their float32 weights, BatchNorm statistics
    /// in float32); the embeddings come back as float32 either way, for the loss. See <see cref="ResNet3d.ComputeType"/>.
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

    /// <summary>Projects features <c>[N, InputDim]</c> to embeddings <c>[N, OutputDim]</c>.</summary>
    /// <exception cref="ArgumentException">The input is not <c>[N, InputDim]</c>.</exception>
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.dim() != 2 || input.shape[1] != InputDim)
        {
            throw new ArgumentException($"Expected features [N, {InputDim}], got [{string.Join(", ", input.shape)}].", nameof(input));
        }

        if (_computeType == ScalarType.Float32)
        {
            return _net.call(input);
        }

        using var scope = torch.NewDisposeScope();
        using var compute = ComputeScope.Enter(_computeType);
        var x = input.to(_computeType);
        foreach (var layer in _layers)
        {
            x = layer is Linear linear
                ? nn.functional.linear(x, linear.weight!.to(x.dtype), linear.bias?.to(x.dtype))
                : layer.call(x);
        }

        return x.to(ScalarType.Float32).MoveToOuterDisposeScope();
    }
}
