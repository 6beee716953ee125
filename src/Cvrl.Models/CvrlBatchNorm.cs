using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Cvrl.Models;

/// <summary>
/// Batch normalisation over the channel dimension of any <c>[N, C, ...]</c> input (1D features, 3D clips), with
/// PyTorch's semantics and state-dict names (<c>weight</c>, <c>bias</c>, <c>running_mean</c>, <c>running_var</c>,
/// <c>num_batches_tracked</c>), used by every Cvrl network instead of TorchSharp's <c>BatchNorm1d</c>/<c>BatchNorm3d</c>.
/// </summary>
/// <remarks>
/// <para>
/// TorchSharp 0.107's BatchNorm counts batches with <c>num_batches_tracked.add_(1)</c>, which turns the 1 into a
/// temporary native scalar that only a finaliser frees; a garbage collection during the call can free it while libtorch
/// reads it, and training dies with "Expected false to be true ... toLong" (seen here in a fine-tuning run). This module
/// counts with a scalar that lives as long as the process and hands everything else to libtorch's batch norm as plain
/// numbers.
/// </para>
/// <para>
/// In training mode the batch's statistics normalise the input and update the running ones with
/// <see cref="Momentum"/> (PyTorch's convention: <c>running = (1 - m) running + m batch</c>, the variance unbiased); with
/// <see cref="Momentum"/> null the running statistics are the cumulative average over all batches since
/// <see cref="ResetRunningStatistics"/>. In evaluation mode the running statistics normalise.
/// </para>
/// </remarks>
public sealed class CvrlBatchNorm : Module<Tensor, Tensor>
{
    /// <summary>An integer 1 for the batch counter (int64), alive as long as the process.</summary>
    private static readonly Scalar BatchStep = 1L.ToScalar();

    private readonly int _dimensions;

#pragma warning disable IDE1006, SA1300, SA1307, CA1051 // state-dict names, as in TorchSharp's own modules
    /// <summary>The scale γ, <c>[C]</c>, initialised to 1.</summary>
    public Parameter weight;

    /// <summary>The shift β, <c>[C]</c>, initialised to 0.</summary>
    public Parameter bias;

    /// <summary>The running mean, <c>[C]</c>.</summary>
    public Tensor running_mean;

    /// <summary>The running (unbiased) variance, <c>[C]</c>.</summary>
    public Tensor running_var;

    /// <summary>Training batches seen since the statistics were reset (int64 scalar).</summary>
    public Tensor num_batches_tracked;
#pragma warning restore IDE1006, SA1300, SA1307, CA1051

    /// <summary>Creates the layer.</summary>
    /// <param name="channels">C, the size of dimension 1 of the input.</param>
    /// <param name="dimensions">The number of input dimensions it accepts: 2 for <c>[N, C]</c> features, 5 for <c>[N, C, T, H, W]</c> clips.</param>
    /// <param name="eps">Added to the variance. Default 1e-5.</param>
    /// <param name="momentum">Weight of the new batch in the running statistics (PyTorch convention); null for the cumulative average. Default 0.1.</param>
    /// <param name="device">Where to allocate the tensors (default CPU).</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range.</exception>
    public CvrlBatchNorm(long channels, int dimensions, double eps = 1e-5, double? momentum = 0.1, Device? device = null)
        : base(nameof(CvrlBatchNorm))
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(channels);
        ArgumentOutOfRangeException.ThrowIfLessThan(dimensions, 2);
        if (!(eps > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps must be positive.");
        }

        Momentum = momentum;
        Eps = eps;
        _dimensions = dimensions;
        weight = new Parameter(torch.ones(channels, device: device));
        bias = new Parameter(torch.zeros(channels, device: device));
        running_mean = torch.zeros(channels, device: device);
        running_var = torch.ones(channels, device: device);
        num_batches_tracked = torch.tensor(0L, device: device);
        RegisterComponents();
    }

    /// <summary>C, the number of channels.</summary>
    public long Channels => weight.shape[0];

    /// <summary>Added to the variance.</summary>
    public double Eps { get; }

    /// <summary>Weight of the new batch in the running statistics; null for the cumulative average (settable, as PyTorch's <c>momentum</c>).</summary>
    public double? Momentum
    {
        get;
        set
        {
            if (value is double m && !(m is > 0 and <= 1))
            {
                throw new ArgumentOutOfRangeException(nameof(value), m, "Momentum must lie in (0, 1], or be null for the cumulative average.");
            }

            field = value;
        }
    }

    /// <summary>
    /// For synchronised batch normalisation across processes: a differentiable sum over all processes of a tensor
    /// (Cvrl's <c>SyncBatchNorm.Attach</c> sets it). When set, training batches are normalised with the statistics of
    /// the union of every process's batch. Null (the default): this process's batch only.
    /// </summary>
    public Func<Tensor, Tensor>? CrossProcessSum { get; set; }

    /// <summary>Resets the running statistics (mean 0, variance 1, no batches).</summary>
    public void ResetRunningStatistics()
    {
        using var noGrad = torch.no_grad();
        running_mean.zero_();
        running_var.fill_(TorchScalars.One);
        num_batches_tracked.zero_();
    }

    /// <summary>Normalises <paramref name="input"/> <c>[N, C, ...]</c>; returns a new tensor.</summary>
    /// <exception cref="ArgumentException">The input has another number of dimensions or channels.</exception>
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.dim() != _dimensions || input.shape[1] != Channels)
        {
            throw new ArgumentException($"Expected a {_dimensions}-dimensional input with {Channels} channels in dimension 1, got [{string.Join(", ", input.shape)}].", nameof(input));
        }

        double factor = Momentum ?? 0;
        if (training)
        {
            using (torch.no_grad())
            {
                num_batches_tracked.add_(BatchStep, BatchStep);
            }

            if (Momentum is null)
            {
                factor = 1.0 / num_batches_tracked.item<long>();
            }
        }

        return training && CrossProcessSum is { } sum
            ? SynchronisedForward(input, sum, factor)
            : nn.functional.batch_norm(input, running_mean, running_var, weight, bias, training, factor, Eps);
    }

    /// <summary>
    /// Training-mode normalisation with statistics over every process's batch: per-channel count, sum and sum of squares
    /// (in float64) are summed across processes by <paramref name="sum"/>, which carries their gradients back.
    /// </summary>
    private Tensor SynchronisedForward(Tensor input, Func<Tensor, Tensor> sum, double factor)
    {
        using var scope = torch.NewDisposeScope();
        long[] reduce = [0, .. Enumerable.Range(2, (int)input.dim() - 2).Select(d => (long)d)];
        var x = input.to_type(ScalarType.Float64);
        using var perChannel = torch.tensor((double)(input.numel() / Channels), ScalarType.Float64, input.device);
        var local = torch.stack([x.sum(reduce), x.square().sum(reduce), perChannel.expand(Channels)]); // [3, C]
        var global = sum(local);
        var count = global[2];
        var mean = global[0] / count;
        using var minusOne = (-1.0).ToScalar();
        var variance = (global[1] / count).add(mean.square(), alpha: minusOne);
        using (torch.no_grad())
        {
            double n = count[0].item<double>();
            using var keep = (1 - factor).ToScalar();
            using var take = factor.ToScalar();
            running_mean.mul_(keep).add_(mean.to_type(running_mean.dtype), alpha: take);
            using var unbiased = (n / Math.Max(1, n - 1)).ToScalar();
            running_var.mul_(keep).add_((variance * unbiased).to_type(running_var.dtype), alpha: take);
        }

        long[] shape = [1, Channels, .. Enumerable.Repeat(1L, (int)input.dim() - 2)];
        using var eps = Eps.ToScalar();
        // Scale and shift in float32 (the parameters' type), applied in the input's type (bfloat16 activations stay bfloat16).
        var scale = (variance.add(eps, TorchScalars.One).rsqrt().to_type(weight.dtype) * weight).view(shape);
        var shift = bias.add(mean.to_type(weight.dtype) * scale.view(Channels), alpha: minusOne).view(shape);
        return input.mul(scale.to_type(input.dtype)).add_(shift.to_type(input.dtype), TorchScalars.One).MoveToOuterDisposeScope();
    }
}
