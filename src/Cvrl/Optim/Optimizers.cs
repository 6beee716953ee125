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
}

/// <summary>Optimizer settings; the defaults are CVRL's (momentum 0.9, weight decay 1e-6 on kernels).</summary>
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
    }
}

/// <summary>One parameter under an optimizer, with whether it is decayed (and, for LARS, adapted).</summary>
/// <param name="Name">Its state-dict name (e.g. "encoder.layer1.0.conv1.0.weight").</param>
/// <param name="Parameter">The parameter.</param>
/// <param name="IsKernel">True for convolution and linear weights (2 or more dimensions): decayed and LARS-adapted. BatchNorm parameters and biases are not.</param>
public sealed record OptimizedParameter(string Name, Parameter Parameter, bool IsKernel);

/// <summary>
/// Base class of Cvrl's optimizers: momentum buffers allocated up front (one per parameter, on its device), a settable
/// learning rate (driven by a schedule), and a state that checkpoints save and restore.
/// </summary>
public abstract class CvrlOptimizer : IDisposable
{
    private readonly Tensor[] _momentum;
    private bool _disposed;

    /// <summary>Creates the optimizer over named parameters (frozen ones, <c>requires_grad == false</c>, are skipped).</summary>
    protected CvrlOptimizer(IEnumerable<(string Name, Parameter Parameter)> parameters, CvrlOptimizerOptions options)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        Options = options ?? throw new ArgumentNullException(nameof(options));
        Options.Validate();
        Parameters = [.. parameters.Where(p => p.Parameter.requires_grad).Select(p => new OptimizedParameter(p.Name, p.Parameter, p.Parameter.dim() >= 2))];
        if (Parameters.Select(p => p.Name).Distinct().Count() != Parameters.Count)
        {
            throw new ArgumentException("Parameter names must be unique.", nameof(parameters));
        }

        _momentum = [.. Parameters.Select(p => torch.zeros_like(p.Parameter).DetachFromDisposeScope())];
    }

    /// <summary>The options.</summary>
    public CvrlOptimizerOptions Options { get; }

    /// <summary>The parameters, in order.</summary>
    public IReadOnlyList<OptimizedParameter> Parameters { get; }

    /// <summary>The learning rate the next <see cref="Step"/> uses.</summary>
    public double LearningRate { get; set; }

    /// <summary>Creates the optimizer <paramref name="options"/> asks for.</summary>
    public static CvrlOptimizer Create(IEnumerable<(string Name, Parameter Parameter)> parameters, CvrlOptimizerOptions options) =>
        (options ?? throw new ArgumentNullException(nameof(options))).Kind == OptimizerKind.Lars
            ? new Lars(parameters, options)
            : new MomentumSgd(parameters, options);

    /// <summary>Applies one update from the parameters' gradients (parameters without a gradient are left alone).</summary>
    public void Step()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        using var decay = Options.WeightDecay.ToScalar();
        for (int i = 0; i < Parameters.Count; i++)
        {
            var p = Parameters[i];
            var grad = p.Parameter.grad;
            if (grad is null)
            {
                continue;
            }

            var g = p.IsKernel && Options.WeightDecay > 0 ? grad.add(p.Parameter, alpha: decay) : grad;
            Update(p, g, _momentum[i]);
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

    /// <summary>The optimizer's state (momentum buffers) by parameter name, for checkpoints. The tensors are the live buffers.</summary>
    public IReadOnlyDictionary<string, Tensor> State() =>
        Parameters.Select((p, i) => (p.Name, _momentum[i])).ToDictionary(x => "momentum." + x.Name, x => x.Item2, StringComparer.Ordinal);

    /// <summary>Restores state saved by <see cref="State"/>.</summary>
    /// <exception cref="InvalidDataException">An entry is missing or has another shape.</exception>
    public void LoadState(IReadOnlyDictionary<string, Tensor> state)
    {
        ArgumentNullException.ThrowIfNull(state);
        using var noGrad = torch.no_grad();
        for (int i = 0; i < Parameters.Count; i++)
        {
            string key = "momentum." + Parameters[i].Name;
            if (!state.TryGetValue(key, out var saved) || !saved.shape.SequenceEqual(_momentum[i].shape))
            {
                throw new InvalidDataException($"Optimizer state '{key}' is missing or has another shape.");
            }

            _momentum[i].copy_(saved);
        }
    }

    /// <summary>Releases the momentum buffers.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var m in _momentum)
        {
            m.Dispose();
        }

        GC.SuppressFinalize(this);
    }

    /// <summary>Updates one parameter from its (decayed) gradient <paramref name="g"/> and momentum buffer.</summary>
    protected abstract void Update(OptimizedParameter parameter, Tensor g, Tensor momentum);
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
    protected override void Update(OptimizedParameter parameter, Tensor g, Tensor momentum)
    {
        // Explicit scalars, disposed after use: see Cvrl.Augment.Functional.Scalars for why.
        using var m = Options.Momentum.ToScalar();
        using var lr = (-LearningRate).ToScalar();
        momentum.mul_(m).add_(g, alpha: lr);
        parameter.Parameter.add_(momentum, Scalars.One);
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
    protected override void Update(OptimizedParameter parameter, Tensor g, Tensor momentum)
    {
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
            momentum.mul_(m).add_(g.mul(ratio).mul(lr), Scalars.One);
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
