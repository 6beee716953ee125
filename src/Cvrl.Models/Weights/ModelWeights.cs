using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Models.Weights;

/// <summary>A tensor whose shape or dtype in the file differs from the module's.</summary>
/// <param name="Name">The module's key.</param>
/// <param name="Expected">What the module holds, e.g. "Float32 [64, 3, 3, 7, 7]".</param>
/// <param name="Actual">What the file holds.</param>
public sealed record WeightMismatch(string Name, string Expected, string Actual);

/// <summary>What loading a weight file into a module found and did.</summary>
public sealed record WeightLoadReport
{
    /// <summary>The file.</summary>
    public required string Path { get; init; }

    /// <summary>Keys copied into the module.</summary>
    public required IReadOnlyList<string> Loaded { get; init; }

    /// <summary>Module keys the file lacks.</summary>
    public required IReadOnlyList<string> Missing { get; init; }

    /// <summary>File keys the module lacks.</summary>
    public required IReadOnlyList<string> Unexpected { get; init; }

    /// <summary>Keys present in both with another shape.</summary>
    public required IReadOnlyList<WeightMismatch> ShapeMismatches { get; init; }

    /// <summary>Keys present in both, same shape, another dtype.</summary>
    public required IReadOnlyList<WeightMismatch> DtypeMismatches { get; init; }

    /// <summary>True when every module key was found with the right shape and dtype and nothing was left over.</summary>
    public bool IsExact => Missing.Count == 0 && Unexpected.Count == 0 && ShapeMismatches.Count == 0 && DtypeMismatches.Count == 0;

    /// <summary>A readable multi-line report.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append(System.Globalization.CultureInfo.InvariantCulture,
            $"{Path}: {Loaded.Count} loaded, {Missing.Count} missing, {Unexpected.Count} unexpected, {ShapeMismatches.Count} shape and {DtypeMismatches.Count} dtype mismatches");
        Append(sb, "missing", Missing);
        Append(sb, "unexpected", Unexpected);
        Append(sb, "shape", ShapeMismatches.Select(m => $"{m.Name}: module {m.Expected}, file {m.Actual}").ToList());
        Append(sb, "dtype", DtypeMismatches.Select(m => $"{m.Name}: module {m.Expected}, file {m.Actual}").ToList());
        return sb.ToString();
    }

    private static void Append(StringBuilder sb, string label, IReadOnlyList<string> items)
    {
        const int shown = 8;
        if (items.Count == 0)
        {
            return;
        }

        sb.AppendLine().Append("  ").Append(label).Append(": ").Append(string.Join(", ", items.Take(shown)));
        if (items.Count > shown)
        {
            sb.Append(System.Globalization.CultureInfo.InvariantCulture, $" (and {items.Count - shown} more)");
        }
    }
}

/// <summary>A weight file does not match the module it is loaded into (strict loading). Carries the full report.</summary>
public sealed class WeightsMismatchException : InvalidOperationException
{
    /// <summary>Creates the exception from a report.</summary>
    public WeightsMismatchException(WeightLoadReport report)
        : base($"Weights do not match the model. {report}")
    {
        Report = report;
    }

    /// <summary>Creates the exception (tooling).</summary>
    public WeightsMismatchException()
        : base("Weights do not match the model.")
    {
    }

    /// <summary>Creates the exception (tooling).</summary>
    public WeightsMismatchException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception (tooling).</summary>
    public WeightsMismatchException(string message, Exception inner)
        : base(message, inner)
    {
    }

    /// <summary>What was found.</summary>
    public WeightLoadReport? Report { get; }
}

/// <summary>
/// Saves and loads module weights with strict name, shape and dtype checks. A file may hold several modules under
/// prefixes (for example <c>encoder.</c> and <c>head.</c>), so a checkpoint keeps the projection head next to the encoder.
/// </summary>
/// <example>
/// <code>
/// ModelWeights.Save("cvrl.weights", new Dictionary&lt;string, nn.Module&gt; { ["encoder"] = encoder, ["head"] = head });
/// var report = ModelWeights.Load("cvrl.weights", encoder, prefix: "encoder");   // throws on any mismatch
/// ModelWeights.Load("r3d_18.pth", ResNet3d.R3d18(numClasses: 400));                       // a torchvision state dict
/// </code>
/// </example>
public static class ModelWeights
{
    /// <summary>
    /// Identifies a module's weights: "sha256:" and the first 16 hex digits of a hash over its type name and its state
    /// (parameter and buffer names, shapes, types and values, in name order) and, for a <see cref="ResNet3d"/> that
    /// normalises its input, that normalisation. Two modules with the same fingerprint
    /// compute the same function; an exported ONNX model records its encoder's fingerprint, so embeddings made by either
    /// runtime can be searched together.
    /// </summary>
    /// <param name="module">The module (any device).</param>
    public static string Fingerprint(nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes(module.GetType().FullName ?? module.GetType().Name));
        if (module is ResNet3d { Options.NormalizesInput: true } normalizing)
        {
            // The input normalisation changes the function; networks without one keep their earlier fingerprints.
            var o = normalizing.Options;
            static string Values(IReadOnlyList<double>? values) => values is null ? "none" : string.Join(",", values.Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)));
            hash.AppendData(Encoding.UTF8.GetBytes($"|input|{Values(o.InputMean)}|{Values(o.InputStd)}|"));
            if (o.InputScale != 1.0 || o.InputChannelOrder != InputChannelOrder.Rgb)
            {
                // Only conventions beyond a mean and standard deviation add to the hash (the mean image is in the state).
                hash.AppendData(Encoding.UTF8.GetBytes($"|scale|{o.InputScale.ToString("R", System.Globalization.CultureInfo.InvariantCulture)}|{o.InputChannelOrder}|"));
            }
        }

        foreach (var (name, tensor) in module.state_dict().OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            hash.AppendData(Encoding.UTF8.GetBytes($"|{name}|{tensor.dtype}|{string.Join(",", tensor.shape)}|"));
            using var scope = torch.NewDisposeScope();
            var host = tensor.detach().cpu().contiguous();
            hash.AppendData(host.bytes);
        }

        return "sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset())[..16];
    }

    /// <summary>Saves one module's state dict (atomically).</summary>
    public static void Save(string path, nn.Module module, WeightFormat format = WeightFormat.TorchSharp)
    {
        ArgumentNullException.ThrowIfNull(module);
        StateDictFile.Write(path, module.state_dict(), format);
    }

    /// <summary>Saves several modules into one file, each key prefixed with the module's name and a dot (atomically).</summary>
    public static void Save(string path, IReadOnlyDictionary<string, nn.Module> modules, WeightFormat format = WeightFormat.TorchSharp)
    {
        ArgumentNullException.ThrowIfNull(modules);
        var all = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (prefix, module) in modules)
        {
            foreach (var (key, tensor) in module.state_dict())
            {
                all[prefix + "." + key] = tensor;
            }
        }

        StateDictFile.Write(path, all, format);
    }

    /// <summary>
    /// Loads weights from a file (TorchSharp, PyTorch or safetensors, detected) into a module. With
    /// <paramref name="strict"/>, any missing, unexpected or mismatched key throws before anything is changed; otherwise
    /// the matching tensors are copied and the report lists the rest.
    /// </summary>
    /// <param name="path">The weight file.</param>
    /// <param name="module">The module to fill (on any device).</param>
    /// <param name="strict">Require an exact match. Default true.</param>
    /// <param name="prefix">Only use file keys under this prefix (e.g. "encoder"), with the prefix removed; file keys outside it are ignored.</param>
    /// <returns>The report.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a readable weight file.</exception>
    /// <exception cref="WeightsMismatchException">Strict loading found a mismatch (the message holds the report).</exception>
    public static WeightLoadReport Load(string path, nn.Module module, bool strict = true, string? prefix = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        using var file = StateDictFile.Read(path);
        IReadOnlyDictionary<string, Tensor> source = file;
        if (prefix is not null)
        {
            string p = prefix.EndsWith('.') ? prefix : prefix + ".";
            source = file.Where(kv => kv.Key.StartsWith(p, StringComparison.Ordinal)).ToDictionary(kv => kv.Key[p.Length..], kv => kv.Value, StringComparer.Ordinal);
        }

        return LoadStateDict(module, source, strict, path);
    }

    /// <summary>Copies tensors into a module with the same checks as <see cref="Load"/>.</summary>
    /// <param name="module">The module to fill.</param>
    /// <param name="source">Name to tensor (not modified, not disposed).</param>
    /// <param name="strict">Require an exact match.</param>
    /// <param name="origin">A name for the source in the report (e.g. the file).</param>
    /// <exception cref="WeightsMismatchException">Strict loading found a mismatch.</exception>
    public static WeightLoadReport LoadStateDict(nn.Module module, IReadOnlyDictionary<string, Tensor> source, bool strict = true, string origin = "state dict")
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(source);
        var target = module.state_dict();
        var loaded = new List<string>();
        var missing = new List<string>();
        var shapes = new List<WeightMismatch>();
        var dtypes = new List<WeightMismatch>();
        foreach (var (name, tensor) in target)
        {
            if (!source.TryGetValue(name, out var value))
            {
                missing.Add(name);
            }
            else if (!value.shape.SequenceEqual(tensor.shape))
            {
                shapes.Add(new WeightMismatch(name, Describe(tensor), Describe(value)));
            }
            else if (value.dtype != tensor.dtype)
            {
                dtypes.Add(new WeightMismatch(name, Describe(tensor), Describe(value)));
            }
            else
            {
                loaded.Add(name);
            }
        }

        var unexpected = source.Keys.Where(k => !target.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        var report = new WeightLoadReport
        {
            Path = origin,
            Loaded = loaded,
            Missing = missing,
            Unexpected = unexpected,
            ShapeMismatches = shapes,
            DtypeMismatches = dtypes,
        };
        if (strict && !report.IsExact)
        {
            throw new WeightsMismatchException(report);
        }

        using var noGrad = torch.no_grad();
        foreach (string name in loaded)
        {
            target[name].copy_(source[name]);
        }

        return report;
    }

    private static string Describe(Tensor t) => $"{t.dtype} [{string.Join(", ", t.shape)}]";
}
