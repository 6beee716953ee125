using Cvrl.Augment.Functional;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Cvrl.Optim;

/// <summary>The optimizers Cvrl provides.</summary>
public enum OptimizerKind
{
    /// <summary>SGD with momentum, the official CVRL recipe (no LARS appears in the official code).</summary>
    Sgd,

    /// <summary>LARS (layer-wise adaptive rate scaling, as in SimCLR), for very large batches.</summary>
    Lars,

    /// <summary>
    /// AdamW (Adam with decoupled weight decay, Loshchilov and Hutter). Not part of the official recipe; it trains the
    /// small CPU-sized networks of the quickstart reliably (docs/fidelity.md).
    /// </summary>
    AdamW,
}

/// <summary>
/// Optimizer settings; the defaults are CVRL's (SGD, momentum 0.9, weight decay 1e-6 on kernels). For
/// <see cref="OptimizerKind.AdamW"/> set <see cref="WeightDecay"/> yourself (1e-2 is AdamW's usual value).
/// </summary>
public sealed record CvrlOptimizerOptions
{
    /// <summary>The algorithm. Default <see cref="OptimizerKind.Sgd"/>.</summary>
    public OptimizerKind Kind { get; init; } = OptimizerKind.Sgd;

    /// <summary>Momentum. Default 0.9.</summary>
    public double Momentum { get; init; } = 0.9;

    /// <summary>
    /// L2 weight decay on convolution and linear weights only (never on BatchNorm parameters or biases). The official
    /// code adds <c>1e-6 x sum(||W||^2 / 2)</c> over kernels to the loss, which is this. Default 1e-6.
    /// </summary>
    public double WeightDecay { get; init; } = 1e-6;

    /// <summary>LARS trust coefficient (eta). Default 0.001.</summary>
    public double TrustCoefficient { get; init; } = 0.001;

    /// <summary>AdamW: decay rate of the first-moment (mean) estimate. Default 0.9.</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>AdamW: decay rate of the second-moment (uncentred variance) estimate. Default 0.999.</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>AdamW: added to the square root of the second moment. Default 1e-8.</summary>
    public double Epsilon { get; init; } = 1e-8;

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        if (!Enum.IsDefined(Kind))
        {
            throw new ArgumentOutOfRangeException(nameof(Kind), Kind, "Unknown optimizer.");
        }

        if (Momentum is < 0 or >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(Momentum), Momentum, "Momentum must lie in [0, 1).");
        }

        if (WeightDecay < 0 || double.IsNaN(WeightDecay))
        {
            throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "WeightDecay must be 0 or positive.");
        }

        if (!(TrustCoefficient > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(TrustCoefficient), TrustCoefficient, "TrustCoefficient must be positive.");
        }

        if (Beta1 is < 0 or >= 1 || double.IsNaN(Beta1))
        {
            throw new ArgumentOutOfRangeException(nameof(Beta1), Beta1, "Beta1 must lie in [0, 1).");
        }

        if (Beta2 is < 0 or >= 1 || double.IsNaN(Beta2))
        {
            throw new ArgumentOutOfRangeException(nameof(Beta2), Beta2, "Beta2 must lie in [0, 1).");
        }

        if (!(Epsilon > 0) || double.IsInfinity(Epsilon))
        {
            throw new ArgumentOutOfRangeException(nameof(Epsilon), Epsilon, "Epsilon must be positive and finite.");
        }
    }
}

/// <summary>One parameter under an optimizer, with whether it is decayed (and, for LARS, adapted).</summary>
/// <param name="Name">Its state-dict name (e.g. "encoder.layer1.0.conv1.0.weight").</param>
/// <param name="Parameter">The parameter.</param>
/// <param name="IsKernel">True for convolution and linear weights (2 or more dimensions): decayed and LARS-adapted. BatchNorm parameters and biases are not.</param>
public sealed record OptimizedParameter(string Name, Parameter Parameter, bool IsKernel);

/// <summary>
/// Base class of Cvrl's optimizers: per-parameter state buffers allocated up front (on the parameter's device), a
/// settable learning rate (driven by a schedule), and a state that checkpoints save and restore.
/// </summary>
public abstract class CvrlOptimizer : IDisposable
{
    private const string StepKey = "step";
    private readonly string[] _bufferNames;
    private readonly Tensor[][] _buffers;
    private bool _disposed;

    /// <summary>Creates the optimizer over named parameters (frozen ones, <c>requires_grad == false</c>, are skipped).</summary>
    /// <param name="parameters">The parameters by name.</param>
    /// <param name="options">The options (validated).</param>
    /// <param name="bufferNames">The optimizer's per-parameter buffers (zeros like the parameter), by name; one "momentum" when omitted.</param>
    protected CvrlOptimizer(IEnumerable<(string Name, Parameter Parameter)> parameters, CvrlOptimizerOptions options, params string[] bufferNames)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        Options = options ?? throw new ArgumentNullException(nameof(options));
        Options.Validate();
        Parameters = [.. parameters.Where(p => p.Parameter.requires_grad).Select(p => new OptimizedParameter(p.Name, p.Parameter, p.Parameter.dim() >= 2))];
        if (Parameters.Select(p => p.Name).Distinct().Count() != Parameters.Count)
        {
            throw new ArgumentException("Parameter names must be unique.", nameof(parameters));
        }

        _bufferNames = bufferNames is { Length: > 0 } ? bufferNames : ["momentum"];
        _buffers = [.. Parameters.Select(p => _bufferNames.Select(_ => torch.zeros_like(p.Parameter).DetachFromDisposeScope()).ToArray())];
    }

    /// <summary>The options.</summary>
    public CvrlOptimizerOptions Options { get; }

    /// <summary>The parameters, in order.</summary>
    public IReadOnlyList<OptimizedParameter> Parameters { get; }

    /// <summary>The learning rate the next <see cref="Step"/> uses.</summary>
    public double LearningRate { get; set; }

    /// <summary>Updates applied so far (restored from checkpoints by optimizers that depend on it, such as AdamW).</summary>
    public long UpdateCount { get; private set; }

    /// <summary>Whether <see cref="State"/> includes <see cref="UpdateCount"/> (the update depends on it).</summary>
    protected virtual bool SavesUpdateCount => false;

    /// <summary>Creates the optimizer <paramref name="options"/> asks for.</summary>
    public static CvrlOptimizer Create(IEnumerable<(string Name, Parameter Parameter)> parameters, CvrlOptimizerOptions options) =>
        (options ?? throw new ArgumentNullException(nameof(options))).Kind switch
        {
            OptimizerKind.Lars => new Lars(parameters, options),
            OptimizerKind.AdamW => new AdamWOptimizer(parameters, options),
            _ => new MomentumSgd(parameters, options),
        };

    /// <summary>Applies one update from the parameters' gradients (parameters without a gradient are left alone).</summary>
    public void Step()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        UpdateCount++;
        for (int i = 0; i < Parameters.Count; i++)
        {
            var p = Parameters[i];
            var grad = p.Parameter.grad;
            if (grad is null)
            {
                continue;
            }

            Update(p, grad, _buffers[i]);
        }
    }

    /// <summary>Clears every parameter's gradient (frees it).</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters)
        {
            p.Parameter.grad = null;
        }
    }

    /// <summary>
    /// The optimizer's state by name, for checkpoints: <c>"{buffer}.{parameter}"</c> for every buffer (the live tensors),
    /// and <c>"step"</c> (a new int64 scalar) where the update depends on the number of updates.
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> State()
    {
        var state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        for (int i = 0; i < Parameters.Count; i++)
        {
            for (int b = 0; b < _bufferNames.Length; b++)
            {
                state[$"{_bufferNames[b]}.{Parameters[i].Name}"] = _buffers[i][b];
            }
        }

        if (SavesUpdateCount)
        {
            state[StepKey] = torch.tensor(UpdateCount);
        }

        return state;
    }

    /// <summary>Restores state saved by <see cref="State"/>.</summary>
    /// <exception cref="InvalidDataException">An entry is missing or has another shape.</exception>
    public void LoadState(IReadOnlyDictionary<string, Tensor> state)
    {
        ArgumentNullException.ThrowIfNull(state);
        using var noGrad = torch.no_grad();
        for (int i = 0; i < Parameters.Count; i++)
        {
            for (int b = 0; b < _bufferNames.Length; b++)
            {
                string key = $"{_bufferNames[b]}.{Parameters[i].Name}";
                var buffer = _buffers[i][b];
                if (!state.TryGetValue(key, out var saved) || !saved.shape.SequenceEqual(buffer.shape))
                {
                    throw new InvalidDataException($"Optimizer state '{key}' is missing or has another shape.");
                }

                buffer.copy_(saved);
            }
        }

        if (SavesUpdateCount)
        {
            if (!state.TryGetValue(StepKey, out var step) || step.numel() != 1)
            {
                throw new InvalidDataException($"Optimizer state '{StepKey}' (the number of updates) is missing.");
            }

            UpdateCount = step.to_type(ScalarType.Int64).item<long>();
        }
    }

    /// <summary>Releases the buffers.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var buffer in _buffers.SelectMany(b => b))
        {
            buffer.Dispose();
        }

        GC.SuppressFinalize(this);
    }

    /// <summary>Updates one parameter from its gradient <paramref name="grad"/> and its buffers (in the order given to the constructor).</summary>
    protected abstract void Update(OptimizedParameter parameter, Tensor grad, Tensor[] buffers);

    /// <summary>The gradient with L2 weight decay added for kernels (<c>g + wd w</c>), as the official loss term gives.</summary>
    protected Tensor CoupledDecay(OptimizedParameter parameter, Tensor grad)
    {
        ArgumentNullException.ThrowIfNull(parameter);
        if (!parameter.IsKernel || Options.WeightDecay <= 0)
        {
            return grad;
        }

        using var decay = Options.WeightDecay.ToScalar();
        return grad.add(parameter.Parameter, alpha: decay);
    }
}

/// <summary>
/// SGD with momentum in the official (Keras) form: <c>v = m v - lr (g + wd w)</c>, <c>w = w + v</c>, with weight decay on
/// convolution and linear weights only. With a changing learning rate this differs from PyTorch's form (which scales the
/// whole buffer by the current rate); Cvrl follows the official one.
/// </summary>
public sealed class MomentumSgd : CvrlOptimizer
{
    /// <summary>Creates the optimizer.</summary>
    public MomentumSgd(IEnumerable<(string Name, Parameter Parameter)> parameters, CvrlOptimizerOptions? options = null)
        : base(parameters, options ?? new CvrlOptimizerOptions())
    {
    }

    /// <inheritdoc />
    protected override void Update(OptimizedParameter parameter, Tensor grad, Tensor[] buffers)
    {
        ArgumentNullException.ThrowIfNull(parameter);
        ArgumentNullException.ThrowIfNull(buffers);
        var g = CoupledDecay(parameter, grad);
        var momentum = buffers[0];
        // Explicit scalars, disposed after use: see TorchScalars (src/Shared/Common/TorchScalars.cs) for why.
        using var m = Options.Momentum.ToScalar();
        using var lr = (-LearningRate).ToScalar();
        momentum.mul_(m).add_(g, alpha: lr);
        parameter.Parameter.add_(momentum, TorchScalars.One);
    }
}

/// <summary>
/// AdamW: Adam's moment estimates with bias correction and weight decay decoupled from the gradient, applied to
/// convolution and linear weights only: <c>m = b1 m + (1 - b1) g</c>, <c>v = b2 v + (1 - b2) g^2</c>,
/// <c>w = w - lr wd w - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)</c>. PyTorch's <c>AdamW</c> computes the same
/// (it decays every parameter unless told otherwise). Not part of the official CVRL recipe.
/// </summary>
public sealed class AdamWOptimizer : CvrlOptimizer
{
    /// <summary>Creates the optimizer.</summary>
    public AdamWOptimizer(IEnumerable<(string Name, Parameter Parameter)> parameters, CvrlOptimizerOptions? options = null)
        : base(parameters, (options ?? new CvrlOptimizerOptions { WeightDecay = 1e-2 }) with { Kind = OptimizerKind.AdamW }, "exp_avg", "exp_avg_sq")
    {
    }

    /// <inheritdoc />
    protected override bool SavesUpdateCount => true;

    /// <inheritdoc />
    protected override void Update(OptimizedParameter parameter, Tensor grad, Tensor[] buffers)
    {
        ArgumentNullException.ThrowIfNull(parameter);
        ArgumentNullException.ThrowIfNull(buffers);
        var w = parameter.Parameter;
        var (mean, square) = (buffers[0], buffers[1]);
        double b1 = Options.Beta1, b2 = Options.Beta2;
        double correction1 = 1 - Math.Pow(b1, UpdateCount);
        double correction2 = 1 - Math.Pow(b2, UpdateCount);
        using var beta1 = b1.ToScalar();
        using var beta2 = b2.ToScalar();
        using var oneMinusBeta1 = (1 - b1).ToScalar();
        using var oneMinusBeta2 = (1 - b2).ToScalar();
        using var rootCorrection2 = Math.Sqrt(correction2).ToScalar();
        using var eps = Options.Epsilon.ToScalar();
        using var stepSize = (-LearningRate / correction1).ToScalar();
        if (parameter.IsKernel && Options.WeightDecay > 0)
        {
            using var shrink = (1 - (LearningRate * Options.WeightDecay)).ToScalar();
            w.mul_(shrink);
        }

        mean.mul_(beta1).add_(grad, alpha: oneMinusBeta1);
        square.mul_(beta2).addcmul_(grad, grad, oneMinusBeta2);
        using var denominator = square.sqrt().div_(rootCorrection2).add_(eps, TorchScalars.One);
        w.addcdiv_(mean, denominator, stepSize);
    }
}

/// <summary>
/// LARS as SimCLR implements it: for convolution and linear weights the step is scaled by the trust ratio
/// <c>eta ||w|| / ||g + wd w||</c> (1 when either norm is 0); BatchNorm parameters and biases are neither decayed nor
/// adapted. <c>v = m v + lr_scaled (g + wd w)</c>, <c>w = w - v</c>.
/// </summary>
public sealed class Lars : CvrlOptimizer
{
    /// <summary>Creates the optimizer.</summary>
    public Lars(IEnumerable<(string Name, Parameter Parameter)> parameters, CvrlOptimizerOptions? options = null)
        : base(parameters, (options ?? new CvrlOptimizerOptions()) with { Kind = OptimizerKind.Lars })
    {
    }

    /// <inheritdoc />
    protected override void Update(OptimizedParameter parameter, Tensor grad, Tensor[] buffers)
    {
        ArgumentNullException.ThrowIfNull(parameter);
        ArgumentNullException.ThrowIfNull(buffers);
        var g = CoupledDecay(parameter, grad);
        var momentum = buffers[0];
        var w = parameter.Parameter;
        using var m = Options.Momentum.ToScalar();
        using var lr = LearningRate.ToScalar();
        if (parameter.IsKernel)
        {
            using var zero = 0.0.ToScalar();
            using var eta = Options.TrustCoefficient.ToScalar();
            var wNorm = w.norm();
            var gNorm = g.norm();
            var ratio = torch.where(wNorm.gt(zero).logical_and(gNorm.gt(zero)), wNorm.div(gNorm).mul(eta), torch.ones_like(wNorm));
            momentum.mul_(m).add_(g.mul(ratio).mul(lr), TorchScalars.One);
        }
        else
        {
            momentum.mul_(m).add_(g, alpha: lr);
        }

        w.sub_(momentum);
    }
}

/// <summary>
/// Linear warm-up, then cosine decay to 0, exactly as the official schedule: for step &lt; W,
/// <c>lr = (step / W) cos_lr(W)</c>; afterwards <c>lr = cos_lr(step)</c>, with
/// <c>cos_lr(s) = base (1 + cos(pi min(s, S) / S)) / 2</c> and S the total number of steps (warm-up included).
/// </summary>
public sealed class WarmupCosineSchedule
{
    /// <summary>Creates the schedule.</summary>
    /// <param name="baseLearningRate">The peak rate (the official recipe: 0.32 at batch 1024).</param>
    /// <param name="warmupSteps">W (the official recipe: 5 epochs, 1,787 steps).</param>
    /// <param name="totalSteps">S (the official recipe: 200 epochs, 71,488 steps).</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range.</exception>
    public WarmupCosineSchedule(double baseLearningRate, long warmupSteps, long totalSteps)
    {
        if (!(baseLearningRate >= 0) || double.IsInfinity(baseLearningRate))
        {
            throw new ArgumentOutOfRangeException(nameof(baseLearningRate), baseLearningRate, "The learning rate must be a non-negative finite number.");
        }

        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(totalSteps);
        ArgumentOutOfRangeException.ThrowIfNegative(warmupSteps);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(warmupSteps, totalSteps);
        BaseLearningRate = baseLearningRate;
        WarmupSteps = warmupSteps;
        TotalSteps = totalSteps;
    }

    /// <summary>The peak rate.</summary>
    public double BaseLearningRate { get; }

    /// <summary>Warm-up steps.</summary>
    public long WarmupSteps { get; }

    /// <summary>Total steps.</summary>
    public long TotalSteps { get; }

    /// <summary>The learning rate at a (0-based) step.</summary>
    public double At(long step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        return step < WarmupSteps ? (double)step / WarmupSteps * Cosine(WarmupSteps) : Cosine(step);
    }

    private double Cosine(long step) => BaseLearningRate * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(step, TotalSteps) / TotalSteps));
}
