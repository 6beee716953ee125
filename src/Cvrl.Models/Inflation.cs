using System.Text.RegularExpressions;
using Cvrl.Models.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Models;

/// <summary>One tensor copied by <see cref="Inflation"/>.</summary>
/// <param name="Source">The 2D key (torchvision naming).</param>
/// <param name="Target">The 3D key.</param>
/// <param name="TemporalKernel">The temporal kernel the 2D kernel was spread over (1 for copied tensors and 1x1 kernels).</param>
public sealed record InflatedTensor(string Source, string Target, int TemporalKernel);

/// <summary>What <see cref="Inflation.FromResNet2d(ResNet3d, IReadOnlyDictionary{string, Tensor}, bool)"/> mapped.</summary>
public sealed record InflationReport
{
    /// <summary>Tensors copied or inflated into the 3D network.</summary>
    public required IReadOnlyList<InflatedTensor> Mapped { get; init; }

    /// <summary>2D keys that have no place in the 3D network (for example the ImageNet classifier).</summary>
    public required IReadOnlyList<string> Skipped { get; init; }

    /// <summary>3D keys that nothing in the 2D state dict filled.</summary>
    public required IReadOnlyList<string> Missing { get; init; }

    /// <summary>Keys whose 2D shape does not fit the 3D layer.</summary>
    public required IReadOnlyList<WeightMismatch> Mismatched { get; init; }

    /// <inheritdoc />
    public override string ToString() =>
        $"{Mapped.Count} tensors mapped ({Mapped.Count(m => m.TemporalKernel > 1)} kernels inflated in time), {Skipped.Count} skipped" +
        (Skipped.Count > 0 ? $" ({string.Join(", ", Skipped.Take(6))}{(Skipped.Count > 6 ? ", ..." : string.Empty)})" : string.Empty) +
        $", {Missing.Count} missing, {Mismatched.Count} mismatched";
}

/// <summary>
/// I3D-style inflation of a 2D ResNet (torchvision naming: <c>conv1</c>, <c>bn1</c>, <c>layerN.i.convK</c>,
/// <c>layerN.i.bnK</c>, <c>layerN.i.downsample.{0,1}</c>, <c>fc</c>) into a <see cref="ResNet3d"/> of the same depth and
/// width: each 2D kernel is repeated over the 3D kernel's temporal extent and divided by its length, so a clip of
/// identical frames gives the 2D network's response (away from the clip's first and last frames, where the temporal
/// zero padding differs). BatchNorm statistics are copied. This is the paper's "ImageNet inflated" baseline.
/// </summary>
public static partial class Inflation
{
    /// <summary>Inflates a 2D ResNet state dict into <paramref name="target"/> (in place).</summary>
    /// <param name="target">The 3D network (same depth and width as the 2D one).</param>
    /// <param name="resnet2d">The 2D state dict (for example <c>torchvision.models.resnet50().state_dict()</c>, or <see cref="StateDictFile.Read"/> of a PyTorch file).</param>
    /// <param name="strict">Throw when a 3D tensor is left unfilled or a shape does not fit. Default true.</param>
    /// <returns>The report.</returns>
    /// <exception cref="WeightsMismatchException">Strict inflation found a missing or mismatched tensor; nothing was changed.</exception>
    public static InflationReport FromResNet2d(ResNet3d target, IReadOnlyDictionary<string, Tensor> resnet2d, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(resnet2d);
        var destination = target.state_dict();
        var plan = new List<(string Source, string Target, int Kt)>();
        var skipped = new List<string>();
        var mismatched = new List<WeightMismatch>();
        foreach (var (key, tensor) in resnet2d)
        {
            string? mapped = MapKey(key);
            if (mapped is null || !destination.TryGetValue(mapped, out var dst))
            {
                skipped.Add(key);
                continue;
            }

            int kt = 1;
            bool fits;
            if (tensor.dim() == 4 && dst.dim() == 5)
            {
                kt = (int)dst.shape[2];
                fits = dst.shape[0] == tensor.shape[0] && dst.shape[1] == tensor.shape[1] && dst.shape[3] == tensor.shape[2] && dst.shape[4] == tensor.shape[3];
            }
            else
            {
                fits = dst.shape.SequenceEqual(tensor.shape);
            }

            if (!fits)
            {
                mismatched.Add(new WeightMismatch(mapped, $"[{string.Join(", ", dst.shape)}]", $"{key} [{string.Join(", ", tensor.shape)}]"));
                continue;
            }

            plan.Add((key, mapped, kt));
        }

        var filled = plan.Select(p => p.Target).ToHashSet(StringComparer.Ordinal);
        // The input convention's mean image is no 2D weight: its importer sets it.
        var missing = destination.Keys.Where(k => !filled.Contains(k) && k != ResNet3d.MeanImageBuffer && !(target.IsClassifier && k.StartsWith("fc.", StringComparison.Ordinal))).ToList();
        var report = new InflationReport
        {
            Mapped = [.. plan.Select(p => new InflatedTensor(p.Source, p.Target, p.Kt))],
            Skipped = skipped,
            Missing = missing,
            Mismatched = mismatched,
        };
        if (strict && (missing.Count > 0 || mismatched.Count > 0))
        {
            throw new WeightsMismatchException(new WeightLoadReport
            {
                Path = "2D ResNet state dict (inflation)",
                Loaded = [],
                Missing = missing,
                Unexpected = skipped,
                ShapeMismatches = mismatched,
                DtypeMismatches = [],
            });
        }

        using var noGrad = torch.no_grad();
        foreach (var (source, key, kt) in plan)
        {
            var src = resnet2d[source];
            var dst = destination[key];
            if (src.dim() == 4 && dst.dim() == 5)
            {
                using var divisor = ((double)kt).ToScalar(); // disposed after use: see ResNet3d.TruncatedNormal
                using var inflated = src.unsqueeze(2).expand(dst.shape).div(divisor);
                dst.copy_(inflated);
            }
            else
            {
                dst.copy_(src);
            }
        }

        return report;
    }

    /// <summary>Inflates the weights of a 2D module (its state dict) into <paramref name="target"/>.</summary>
    /// <inheritdoc cref="FromResNet2d(ResNet3d, IReadOnlyDictionary{string, Tensor}, bool)"/>
    public static InflationReport FromResNet2d(ResNet3d target, nn.Module resnet2d, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(resnet2d);
        return FromResNet2d(target, resnet2d.state_dict(), strict);
    }

    /// <summary>The 3D key for a torchvision 2D ResNet key, or null when it has no counterpart.</summary>
    internal static string? MapKey(string key)
    {
        if (key.StartsWith("conv1.", StringComparison.Ordinal))
        {
            return "stem.0." + key["conv1.".Length..];
        }

        if (key.StartsWith("bn1.", StringComparison.Ordinal))
        {
            return "stem.1." + key["bn1.".Length..];
        }

        if (key.StartsWith("fc.", StringComparison.Ordinal))
        {
            return key;
        }

        var m = BlockKey().Match(key);
        if (!m.Success)
        {
            return null;
        }

        string block = m.Groups["block"].Value;
        string rest = m.Groups["rest"].Value;
        if (rest.StartsWith("downsample.", StringComparison.Ordinal))
        {
            return block + rest;
        }

        var layer = LayerKey().Match(rest);
        if (!layer.Success)
        {
            return null;
        }

        string index = layer.Groups["index"].Value;
        string slot = layer.Groups["kind"].Value == "conv" ? "0" : "1";
        return $"{block}conv{index}.{slot}.{layer.Groups["param"].Value}";
    }

    [GeneratedRegex(@"^(?<block>layer[1-4]\.\d+\.)(?<rest>.+)$")]
    private static partial Regex BlockKey();

    [GeneratedRegex(@"^(?<kind>conv|bn)(?<index>[1-3])\.(?<param>.+)$")]
    private static partial Regex LayerKey();
}
