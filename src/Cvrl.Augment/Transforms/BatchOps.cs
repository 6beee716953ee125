using Cvrl.Augment.Functional;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Augment.Transforms;

/// <summary>
/// Batched, device-agnostic versions of the colour, grayscale, blur and solarize operations over
/// <c>[N, C, T, H, W]</c> float batches, with one parameter record per sample. They run as TorchSharp operations on
/// whatever device the batch is on (so GPU training can augment on the GPU) and give the same result as applying
/// the per-clip transforms to each sample. Inputs are not modified; results are new tensors owned by the caller.
/// </summary>
public static class BatchOps
{
    /// <summary>Applies each sample's <see cref="ColorJitterParams"/> (CVRL's defaults for which operations are active).</summary>
    public static Tensor ColorJitter(Tensor batch, IReadOnlyList<ColorJitterParams> parameters) =>
        ColorJitter(batch, parameters, new ColorJitter());

    /// <summary>Applies each sample's <see cref="ColorJitterParams"/>; <paramref name="jitter"/> says which operations are active.</summary>
    public static Tensor ColorJitter(Tensor batch, IReadOnlyList<ColorJitterParams> parameters, ColorJitter jitter)
    {
        CheckBatch(batch, parameters.Count, requireRgb: true);
        ArgumentNullException.ThrowIfNull(jitter);
        using var scope = torch.NewDisposeScope();
        var current = batch;
        for (int position = 0; position < 4; position++)
        {
            foreach (ColorOp op in Enum.GetValues<ColorOp>())
            {
                if (!jitter.IsActive(op))
                {
                    continue;
                }

                var members = new List<long>();
                var values = new List<float>();
                for (int i = 0; i < parameters.Count; i++)
                {
                    var p = parameters[i];
                    if (p.Applied && p.Order[position] == op)
                    {
                        members.Add(i);
                        values.Add(op switch
                        {
                            ColorOp.Brightness => p.Brightness,
                            ColorOp.Contrast => p.Contrast,
                            ColorOp.Saturation => p.Saturation,
                            _ => p.Hue,
                        });
                    }
                }

                if (members.Count == 0)
                {
                    continue;
                }

                var index = torch.tensor(members.ToArray(), device: batch.device);
                var factors = torch.tensor(values.ToArray(), device: batch.device);
                var subset = current.index_select(0, index);
                var changed = op switch
                {
                    ColorOp.Brightness => TorchKernels.Brightness(subset, factors),
                    ColorOp.Contrast => TorchKernels.Contrast(subset, factors),
                    ColorOp.Saturation => TorchKernels.Hsv(subset, factors, torch.zeros_like(factors)),
                    _ => TorchKernels.Hsv(subset, torch.ones_like(factors), factors),
                };
                current = current.index_copy(0, index, changed);
            }
        }

        return (ReferenceEquals(current, batch) ? batch.clone() : current).MoveToOuterDisposeScope();
    }

    /// <summary>Turns the samples whose <see cref="GrayscaleParams.Applied"/> is set to grey.</summary>
    public static Tensor Grayscale(Tensor batch, IReadOnlyList<GrayscaleParams> parameters)
    {
        CheckBatch(batch, parameters.Count, requireRgb: true);
        return OnSubset(batch, Members(parameters, p => p.Applied), TorchKernels.Grayscale);
    }

    /// <summary>Solarises the samples whose <see cref="SolarizeParams.Applied"/> is set.</summary>
    public static Tensor Solarize(Tensor batch, IReadOnlyList<SolarizeParams> parameters, float threshold = 0.5f)
    {
        CheckBatch(batch, parameters.Count, requireRgb: false);
        return OnSubset(batch, Members(parameters, p => p.Applied), b => TorchKernels.Solarize(b, threshold));
    }

    /// <summary>Blurs the samples whose <see cref="BlurParams.Applied"/> is set, each with its own sigma.</summary>
    public static Tensor GaussianBlur(Tensor batch, IReadOnlyList<BlurParams> parameters)
    {
        CheckBatch(batch, parameters.Count, requireRgb: false);
        using var scope = torch.NewDisposeScope();
        var current = batch;
        foreach (var group in parameters.Select((p, i) => (p, i)).Where(x => x.p.Applied).GroupBy(x => x.p.KernelSize))
        {
            long[] members = [.. group.Select(x => (long)x.i)];
            var sigmas = torch.tensor(group.Select(x => x.p.Sigma).ToArray(), device: batch.device);
            var kernels = TorchKernels.GaussianKernels(sigmas, group.Key);
            var index = torch.tensor(members, device: batch.device);
            current = current.index_copy(0, index, TorchKernels.GaussianBlur(current.index_select(0, index), kernels));
        }

        return (ReferenceEquals(current, batch) ? batch.clone() : current).MoveToOuterDisposeScope();
    }

    /// <summary>Multiplies sample n by <c>factors[n]</c> and clamps to [0, 1].</summary>
    public static Tensor AdjustBrightness(Tensor batch, ReadOnlySpan<float> factors) =>
        WithFactors(batch, factors, TorchKernels.Brightness);

    /// <summary>Contrast about each sample's per-channel mean, factor <c>factors[n]</c>, then clamp.</summary>
    public static Tensor AdjustContrast(Tensor batch, ReadOnlySpan<float> factors) =>
        WithFactors(batch, factors, TorchKernels.Contrast);

    /// <summary>Scales HSV saturation of sample n by <c>factors[n]</c>, then clamps.</summary>
    public static Tensor AdjustSaturation(Tensor batch, ReadOnlySpan<float> factors) =>
        WithFactors(batch, factors, (b, f) => TorchKernels.Hsv(b, f, torch.zeros_like(f)));

    /// <summary>Rotates the hue of sample n by <c>deltas[n]</c> turns, then clamps.</summary>
    public static Tensor AdjustHue(Tensor batch, ReadOnlySpan<float> deltas) =>
        WithFactors(batch, deltas, (b, d) => TorchKernels.Hsv(b, torch.ones_like(d), d));

    /// <summary>Applies a per-clip function to every sample and stacks the results (for transforms without a batched kernel).</summary>
    internal static Tensor PerSample(Tensor batch, IReadOnlyList<object> parameters, Func<Tensor, object, Tensor> apply)
    {
        if (batch.dim() != 5 || batch.shape[0] != parameters.Count)
        {
            throw new ArgumentException($"Expected a batch [N, C, T, H, W] with N = {parameters.Count}, got [{string.Join(", ", batch.shape)}].", nameof(batch));
        }

        using var scope = torch.NewDisposeScope();
        var outputs = new Tensor[parameters.Count];
        for (int i = 0; i < outputs.Length; i++)
        {
            outputs[i] = apply(batch[i], parameters[i]);
        }

        return torch.stack(outputs).MoveToOuterDisposeScope();
    }

    private static long[] Members<T>(IReadOnlyList<T> parameters, Func<T, bool> selected) =>
        [.. Enumerable.Range(0, parameters.Count).Where(i => selected(parameters[i])).Select(i => (long)i)];

    private static Tensor OnSubset(Tensor batch, long[] members, Func<Tensor, Tensor> op)
    {
        if (members.Length == 0)
        {
            return batch.clone();
        }

        using var scope = torch.NewDisposeScope();
        if (members.Length == batch.shape[0])
        {
            return op(batch).MoveToOuterDisposeScope();
        }

        var index = torch.tensor(members, device: batch.device);
        return batch.index_copy(0, index, op(batch.index_select(0, index))).MoveToOuterDisposeScope();
    }

    private static Tensor WithFactors(Tensor batch, ReadOnlySpan<float> factors, Func<Tensor, Tensor, Tensor> op)
    {
        CheckBatch(batch, factors.Length, requireRgb: true);
        using var scope = torch.NewDisposeScope();
        var f = torch.tensor(factors.ToArray(), device: batch.device);
        return op(batch, f).MoveToOuterDisposeScope();
    }

    private static void CheckBatch(Tensor batch, int count, bool requireRgb)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.dim() != 5)
        {
            throw new ArgumentException($"Expected a batch [N, C, T, H, W], got [{string.Join(", ", batch.shape)}].", nameof(batch));
        }

        if (batch.shape[0] != count)
        {
            throw new ArgumentException($"The batch holds {batch.shape[0]} samples but {count} parameter records were given.", nameof(batch));
        }

        if (!torch.is_floating_point(batch))
        {
            throw new ArgumentException($"Expected a floating-point batch with values in [0, 1], got {batch.dtype}.", nameof(batch));
        }

        if (requireRgb && batch.shape[1] != 3)
        {
            throw new ArgumentException($"Colour operations need 3 (RGB) channels, the batch has {batch.shape[1]}.", nameof(batch));
        }
    }
}
