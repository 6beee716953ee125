using System.Globalization;
using System.Text.RegularExpressions;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Models.Weights;

/// <summary>An imported model: the encoder, the projection head when one was mapped, and the report. Owns both modules.</summary>
public sealed class ZooImport : IDisposable
{
    internal ZooImport(ResNet3d encoder, ProjectionHead? head, ZooImportReport report)
    {
        Encoder = encoder;
        Head = head;
        Report = report;
    }

    /// <summary>The encoder, normalising its input as the zoo model expects and carrying its clips (<see cref="ResNet3d.TrainedClips"/>).</summary>
    public ResNet3d Encoder { get; }

    /// <summary>The self-supervised projection head, when the checkpoint holds one that fits; else null.</summary>
    public ProjectionHead? Head { get; }

    /// <summary>What was found, mapped and assumed.</summary>
    public ZooImportReport Report { get; }

    /// <summary>Disposes the modules.</summary>
    public void Dispose()
    {
        Encoder.Dispose();
        Head?.Dispose();
    }
}

/// <summary>
/// Imports 3D-ResNet checkpoints from the PyTorch video model zoos (PySlowFast, pytorchvideo's hub, mmaction2,
/// torchvision) into <see cref="ResNet3d"/>: reads the file without Python (<see cref="TorchSaveFile"/>), finds the
/// weights by the zoo's convention, maps the zoo's names onto Cvrl's, infers the architecture from the shapes (depth,
/// width, stem and per-stage temporal kernels), loads strictly, and records the clips and the input normalisation the
/// model was trained with. Slow-R50/R101 and SlowOnly map; two-pathway SlowFast, X3D and MViT do not (a clear error says
/// why).
/// </summary>
public static class ZooImporter
{
    private static readonly string[] s_bnParts = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"];
    private static readonly double[] s_kineticsMean = [0.45, 0.45, 0.45];
    private static readonly double[] s_kineticsStd = [0.225, 0.225, 0.225];
    private static readonly double[] s_torchvisionMean = [0.43216, 0.394666, 0.37645];
    private static readonly double[] s_torchvisionStd = [0.22803, 0.22145, 0.216989];

    /// <summary>Imports a zoo checkpoint file.</summary>
    /// <param name="path">The file (.pyth, .pth, .pt).</param>
    /// <param name="options">Options (validated); null for the defaults.</param>
    /// <returns>The encoder, the head if any and the report, owned by the caller.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file cannot be read, holds no weights where expected, is from another zoo or architecture than Cvrl maps; the message says which and why.</exception>
    /// <exception cref="WeightsMismatchException">The weights do not fill the inferred network exactly (the message lists missing and mismatched names).</exception>
    public static ZooImport Import(string path, ZooImportOptions? options = null)
    {
        options ??= new ZooImportOptions();
        options.Validate();
        using var content = TorchSaveFile.Read(path);
        string location = ChooseStateDict(content, options);
        if (!content.StateDicts.Any(l => l.Path == location))
        {
            throw new InvalidDataException($"'{path}' has no dictionary of tensors at '{location}'; it has {TorchSaveContent.Describe(content.StateDicts)}.");
        }

        using var weights = content.TakeStateDict(location);
        var notes = new List<string>();
        if (content.OpaqueClasses.Count > 0)
        {
            notes.Add($"read but not interpreted: {string.Join(", ", content.OpaqueClasses)}");
        }

        var zoo = options.From == ModelZoo.Auto ? Recognise(weights, path) : options.From;
        return Map(path, location, weights, zoo, options, content, notes);
    }

    /// <summary>
    /// Imports weights already read into a dictionary (names as the zoo writes them). The clips and normalisation are
    /// the zoo's defaults unless <paramref name="options"/> gives them.
    /// </summary>
    /// <inheritdoc cref="Import(string, ZooImportOptions?)"/>
    /// <param name="weights">The state dict (not modified, not disposed).</param>
    /// <param name="zoo">The zoo whose names it uses (<see cref="ModelZoo.Auto"/> to recognise them).</param>
    /// <param name="options">Options (validated); null for the defaults.</param>
    /// <param name="origin">A name for the source in messages.</param>
    public static ZooImport Import(IReadOnlyDictionary<string, Tensor> weights, ModelZoo zoo, ZooImportOptions? options = null, string origin = "state dict")
    {
        ArgumentNullException.ThrowIfNull(weights);
        options ??= new ZooImportOptions();
        options.Validate();
        if (zoo == ModelZoo.Auto)
        {
            zoo = Recognise(weights, origin);
        }

        return Map(origin, "", weights, zoo, options, null, []);
    }

    private static string ChooseStateDict(TorchSaveContent content, ZooImportOptions options)
    {
        if (options.StateDictPath is { } given)
        {
            return given;
        }

        var found = content.StateDicts;
        if (found.Count == 0)
        {
            throw new InvalidDataException($"'{content.Path}' holds no dictionary of tensors: not a model checkpoint.");
        }

        if (found.Count == 1)
        {
            return found[0].Path;
        }

        // The zoos' conventions: PySlowFast and pytorchvideo "model_state", mmaction2 and Lightning "state_dict", then "model".
        foreach (string conventional in new[] { "model_state", "state_dict", "model", "" })
        {
            if (found.Any(l => l.Path == conventional))
            {
                return conventional;
            }
        }

        throw new InvalidDataException($"'{content.Path}' holds several dictionaries of tensors ({TorchSaveContent.Describe(found)}); say which holds the model's weights (ZooImportOptions.StateDictPath, cvrl import --state-dict).");
    }

    private static ModelZoo Recognise(IReadOnlyDictionary<string, Tensor> weights, string origin)
    {
        var keys = weights.Keys.ToList();
        if (keys.Any(k => k.Contains("pathway1", StringComparison.Ordinal)))
        {
            throw new InvalidDataException($"'{origin}' holds a two-pathway SlowFast network (pathway1 weights): Cvrl's ResNet3d has one pathway. Slow-R50, Slow-R101 and SlowOnly checkpoints map.");
        }

        if (keys.Any(k => k.Contains("pathway0_stem", StringComparison.Ordinal)))
        {
            return ModelZoo.PySlowFast;
        }

        if (keys.Any(k => k.Contains(".res_blocks.", StringComparison.Ordinal)))
        {
            return ModelZoo.PyTorchVideo;
        }

        if (keys.Any(k => k.StartsWith("backbone.conv1.conv.", StringComparison.Ordinal) || k.StartsWith("conv1.conv.", StringComparison.Ordinal)))
        {
            return ModelZoo.MmAction2;
        }

        if (keys.Any(k => k.StartsWith("stem.0.", StringComparison.Ordinal)) && keys.Any(k => k.StartsWith("layer1.", StringComparison.Ordinal)))
        {
            return ModelZoo.Torchvision;
        }

        string sample = string.Join(", ", keys.Take(4));
        string hint = keys.Any(k => k.Contains("patch_embed", StringComparison.Ordinal) || k.Contains("blocks.0.attn", StringComparison.Ordinal))
            ? " It looks like a transformer (MViT, VideoMAE, TimeSformer), which does not map onto a 3D-ResNet."
            : keys.Any(k => k.Contains("conv_xy", StringComparison.Ordinal) || k.Contains("conv_t", StringComparison.Ordinal)) ? " It looks like an X3D or (2+1)D network, which does not map onto Cvrl's ResNet3d."
            : string.Empty;
        throw new InvalidDataException($"'{origin}' is not a checkpoint of a zoo Cvrl recognises (PySlowFast, pytorchvideo, mmaction2, torchvision); its first names are {sample}.{hint}");
    }

    private static ZooImport Map(string path, string location, IReadOnlyDictionary<string, Tensor> weights, ModelZoo zoo, ZooImportOptions options, TorchSaveContent? content, List<string> notes)
    {
        // 1. Names: the zoo's onto Cvrl's.
        string prefix = CommonPrefix(weights.Keys, zoo);
        var encoderMap = new Dictionary<string, string>(StringComparer.Ordinal); // Cvrl name -> source name
        var classifier = new Dictionary<string, string>(StringComparer.Ordinal);
        var headSource = new SortedDictionary<int, Dictionary<string, string>>();
        var unused = new List<string>();
        foreach (string key in weights.Keys.Order(StringComparer.Ordinal))
        {
            if (!key.StartsWith(prefix, StringComparison.Ordinal))
            {
                unused.Add(key);
                continue;
            }

            string local = key[prefix.Length..];
            switch (Translate(local, zoo))
            {
                case (Part.Encoder, string target):
                    encoderMap[target] = key;
                    break;
                case (Part.Classifier, string target):
                    classifier[target] = key;
                    break;
                case (Part.Head, string target):
                    int layer = int.Parse(target.Split('.')[0], CultureInfo.InvariantCulture);
                    if (!headSource.TryGetValue(layer, out var parts))
                    {
                        headSource[layer] = parts = new Dictionary<string, string>(StringComparer.Ordinal);
                    }

                    parts[target[(target.IndexOf('.', StringComparison.Ordinal) + 1)..]] = key;
                    break;
                default:
                    unused.Add(key);
                    break;
            }
        }

        if (!encoderMap.ContainsKey("stem.0.weight"))
        {
            throw new InvalidDataException($"'{path}': no stem convolution among the {zoo} names at '{location}' (expected {ExpectedStemName(zoo)}); is it a {zoo} 3D-ResNet checkpoint?");
        }

        var locals = weights.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).Select(k => k[prefix.Length..]).ToList();
        if (zoo == ModelZoo.PyTorchVideo && locals.Any(k => k.StartsWith("blocks.5.res_blocks.", StringComparison.Ordinal)) && !locals.Any(k => k.StartsWith("blocks.2.", StringComparison.Ordinal)))
        {
            // Residual stages at blocks 1, 3, 4 and 5 around a block 2 without weights: a pooling layer between stages.
            throw new InvalidDataException($"'{path}' is a pytorchvideo network with a temporal pooling layer after its first stage (blocks.2 holds no weights and the residual stages sit at blocks 1, 3, 4 and 5): the layout of pytorchvideo's C2D and I3D models (c2d_r50, i3d_r50). Cvrl's ResNet3d does not pool in time between stages, so it does not map; pytorchvideo's Slow-R50 (slow_r50) does.");
        }

        // 2. The architecture, from the shapes and what the configuration says the shapes cannot.
        var (encoderOptions, architecture) = InferArchitecture(weights, encoderMap, zoo, path);
        encoderOptions = CheckConfiguration(zoo, content, encoderOptions, notes, path);
        var (clips, clipsSource, mean, std, normSource) = Expectations(zoo, content, options, notes);
        int? classes = null;
        if (options.KeepClassifier)
        {
            if (!classifier.TryGetValue("fc.weight", out string? fcName))
            {
                throw new InvalidDataException($"'{path}' holds no classifier to keep (no {zoo} classifier weight).");
            }

            classes = (int)weights[fcName].shape[0];
            foreach (var (target, source) in classifier)
            {
                encoderMap[target] = source;
            }
        }
        else
        {
            unused.AddRange(classifier.Values);
        }

        encoderOptions = encoderOptions with { NumClasses = classes, InputMean = mean, InputStd = std };
        var converted = new HashSet<string>(StringComparer.Ordinal);
        var encoder = ResNet3d.Create(encoderOptions);
        ProjectionHead? head = null;
        try
        {
            using (var scope = torch.NewDisposeScope())
            {
                var source = encoderMap.ToDictionary(kv => kv.Key, kv => Float32(weights[kv.Value], kv.Value, converted), StringComparer.Ordinal);
                foreach (var (target, tensor) in source)
                {
                    if (tensor.is_floating_point() && !torch.isfinite(tensor).all().item<bool>())
                    {
                        // Caught here, not later as a video that "fails": every embedding would be NaN.
                        throw new InvalidDataException($"'{path}': weight '{encoderMap[target]}' holds NaN or infinite values; an encoder with such weights computes nothing usable (a damaged or diverged checkpoint).");
                    }
                }

                ModelWeights.LoadStateDict(encoder, source, strict: true, origin: $"{path} ({zoo} names mapped to Cvrl's)");
            }

            encoder.TrainedClips = clips;
            ProjectionHeadOptions? headOptions = null;
            if (headSource.Count > 0)
            {
                if (options.KeepProjectionHead)
                {
                    (head, headOptions) = MapHead(headSource, weights, encoder.FeatureDim, zoo, converted, notes, path);
                }

                if (head is null)
                {
                    unused.AddRange(headSource.Values.SelectMany(v => v.Values));
                }
            }

            if (converted.Count > 0)
            {
                notes.Add($"converted {converted.Count} tensors to float32 (they were stored as {string.Join(", ", converted.Select(n => weights[n].dtype).Distinct())})");
            }

            var mapped = encoderMap.Select(kv => new ZooKeyMapping(kv.Value, "encoder." + kv.Key))
                .Concat(head is null ? [] : headSource.SelectMany(l => l.Value.Select(p => new ZooKeyMapping(p.Value, $"head.net.{l.Key}.{p.Key}"))))
                .OrderBy(m => m.Source, StringComparer.Ordinal).ToList();
            var report = new ZooImportReport
            {
                Path = path,
                Zoo = zoo,
                StateDictPath = location,
                Architecture = architecture,
                Encoder = encoder.Options,
                Mapped = mapped,
                Unused = [.. unused.Distinct().Order(StringComparer.Ordinal)],
                Clips = clips,
                ClipsSource = clipsSource,
                NormalizationSource = normSource,
                Head = headOptions,
                Notes = notes,
            };
            return new ZooImport(encoder, head, report);
        }
        catch
        {
            encoder.Dispose();
            head?.Dispose();
            throw;
        }
    }

    private enum Part
    {
        Encoder,
        Classifier,
        Head,
    }

    private static string ExpectedStemName(ModelZoo zoo) => zoo switch
    {
        ModelZoo.PySlowFast => "'s1.pathway0_stem.conv.weight'",
        ModelZoo.PyTorchVideo => "'blocks.0.conv.weight'",
        ModelZoo.MmAction2 => "'backbone.conv1.conv.weight'",
        _ => "'stem.0.weight'",
    };

    /// <summary>The prefix under which the network's own weights lie: "backbone." for a PySlowFast contrastive model, "module." after DataParallel, else "".</summary>
    private static string CommonPrefix(IEnumerable<string> keys, ModelZoo zoo)
    {
        string stem = zoo switch
        {
            ModelZoo.PySlowFast => "s1.pathway0_stem.conv.weight",
            ModelZoo.PyTorchVideo => "blocks.0.conv.weight",
            ModelZoo.MmAction2 => "conv1.conv.weight",
            _ => "stem.0.weight",
        };
        var candidates = keys.Where(k => k.EndsWith(stem, StringComparison.Ordinal)).Select(k => k[..^stem.Length]).OrderBy(p => p.Length).ToList();
        if (candidates.Count == 0)
        {
            return "";
        }

        // mmaction2's backbone prefix is part of its naming, handled by Translate.
        string p = candidates[0];
        return zoo == ModelZoo.MmAction2 && p.EndsWith("backbone.", StringComparison.Ordinal) ? p[..^"backbone.".Length] : p;
    }

    private static (Part Part, string Target)? Translate(string key, ModelZoo zoo)
    {
        switch (zoo)
        {
            case ModelZoo.PySlowFast:
                {
                    if (Match(key, @"^s1\.pathway0_stem\.conv\.weight$") is not null)
                    {
                        return (Part.Encoder, "stem.0.weight");
                    }

                    if (Match(key, @"^s1\.pathway0_stem\.bn\.(\w+)$") is { } bn && s_bnParts.Contains(bn[1]))
                    {
                        return (Part.Encoder, "stem.1." + bn[1]);
                    }

                    if (Match(key, @"^s([2-5])\.pathway0_res(\d+)\.(branch1|branch1_bn|branch2\.[abc]|branch2\.[abc]_bn)\.(\w+)$") is { } m)
                    {
                        string layer = $"layer{int.Parse(m[1], CultureInfo.InvariantCulture) - 1}.{m[2]}";
                        string part = m[3] switch
                        {
                            "branch1" => "downsample.0",
                            "branch1_bn" => "downsample.1",
                            _ => $"conv{m[3][8] - 'a' + 1}.{(m[3].EndsWith("_bn", StringComparison.Ordinal) ? 1 : 0)}",
                        };
                        return (Part.Encoder, $"{layer}.{part}.{m[4]}");
                    }

                    if (Match(key, @"^head\.projection\.(weight|bias)$") is { } fc)
                    {
                        return (Part.Classifier, "fc." + fc[1]);
                    }

                    if (Match(key, @"^head\.projection\.projection\.(\d+)\.(\w+)$") is { } mlp)
                    {
                        return (Part.Head, $"{mlp[1]}.{mlp[2]}");
                    }

                    return null;
                }

            case ModelZoo.PyTorchVideo:
                {
                    if (Match(key, @"^blocks\.0\.conv\.weight$") is not null)
                    {
                        return (Part.Encoder, "stem.0.weight");
                    }

                    if (Match(key, @"^blocks\.0\.norm\.(\w+)$") is { } bn && s_bnParts.Contains(bn[1]))
                    {
                        return (Part.Encoder, "stem.1." + bn[1]);
                    }

                    if (Match(key, @"^blocks\.([1-4])\.res_blocks\.(\d+)\.(branch1_conv|branch1_norm|branch2\.conv_[abc]|branch2\.norm_[abc])\.(\w+)$") is { } m)
                    {
                        string part = m[3] switch
                        {
                            "branch1_conv" => "downsample.0",
                            "branch1_norm" => "downsample.1",
                            _ => $"conv{m[3][^1] - 'a' + 1}.{(m[3].Contains("norm", StringComparison.Ordinal) ? 1 : 0)}",
                        };
                        return (Part.Encoder, $"layer{m[1]}.{m[2]}.{part}.{m[4]}");
                    }

                    if (Match(key, @"^blocks\.5\.proj\.(weight|bias)$") is { } fc)
                    {
                        return (Part.Classifier, "fc." + fc[1]);
                    }

                    return null;
                }

            case ModelZoo.MmAction2:
                {
                    if (Match(key, @"^(?:backbone\.)?conv1\.conv\.weight$") is not null)
                    {
                        return (Part.Encoder, "stem.0.weight");
                    }

                    if (Match(key, @"^(?:backbone\.)?conv1\.bn\.(\w+)$") is { } bn && s_bnParts.Contains(bn[1]))
                    {
                        return (Part.Encoder, "stem.1." + bn[1]);
                    }

                    if (Match(key, @"^(?:backbone\.)?layer([1-4])\.(\d+)\.(conv[123]|downsample)\.(conv|bn)\.(\w+)$") is { } m)
                    {
                        string part = m[3] == "downsample" ? "downsample" : m[3];
                        return (Part.Encoder, $"layer{m[1]}.{m[2]}.{part}.{(m[4] == "conv" ? 0 : 1)}.{m[5]}");
                    }

                    if (Match(key, @"^cls_head\.fc_cls\.(weight|bias)$") is { } fc)
                    {
                        return (Part.Classifier, "fc." + fc[1]);
                    }

                    return null;
                }

            default:
                if (Match(key, @"^fc\.(weight|bias)$") is { } tvFc)
                {
                    return (Part.Classifier, "fc." + tvFc[1]);
                }

                return Match(key, @"^(stem\.[01]|layer[1-4]\.\d+\.(conv[123]\.[01]|downsample\.[01]))\.\w+$") is not null ? (Part.Encoder, key) : null;
        }
    }

    private static string[]? Match(string key, string pattern)
    {
        var m = Regex.Match(key, pattern, RegexOptions.CultureInvariant);
        return m.Success ? [.. m.Groups.Cast<Group>().Select(g => g.Value)] : null;
    }

    private static (ResNet3dOptions Options, string Description) InferArchitecture(IReadOnlyDictionary<string, Tensor> weights, Dictionary<string, string> map, ModelZoo zoo, string path)
    {
        long[] Shape(string target) => weights[map[target]].shape;
        var stem = Shape("stem.0.weight");
        if (stem.Length != 5 || stem[3] != 7 || stem[4] != 7)
        {
            throw new InvalidDataException($"'{path}': the stem convolution '{map["stem.0.weight"]}' has shape [{string.Join(", ", stem)}]; Cvrl's ResNet3d has a k x 7 x 7 stem.");
        }

        int stemWidth = (int)stem[0];
        double width = stemWidth / 64.0;
        bool bottleneck = map.Keys.Any(k => k.Contains(".conv3.", StringComparison.Ordinal));
        int[] blocks = new int[4];
        int[] kernels = new int[4];
        for (int s = 0; s < 4; s++)
        {
            var indices = map.Keys.Where(k => k.StartsWith($"layer{s + 1}.", StringComparison.Ordinal))
                .Select(k => int.Parse(k.Split('.')[1], CultureInfo.InvariantCulture)).Distinct().Order().ToList();
            if (indices.Count == 0 || indices[^1] != indices.Count - 1)
            {
                throw new InvalidDataException($"'{path}': stage {s + 1} of the network has {(indices.Count == 0 ? "no blocks" : "blocks " + string.Join(", ", indices))}; expected blocks 0 to n-1.");
            }

            blocks[s] = indices.Count;
            var temporal = indices.Select(b => Shape($"layer{s + 1}.{b}.conv1.0.weight")[2]).ToList();
            if (temporal.Distinct().Count() != 1)
            {
                throw new InvalidDataException($"'{path}': the blocks of stage {s + 1} have first convolutions with temporal kernels {string.Join(", ", temporal)}; Cvrl's ResNet3d uses one temporal kernel per stage, so I3D-style alternating inflation does not map.");
            }

            kernels[s] = (int)temporal[0];
            if (bottleneck)
            {
                var middle = indices.Select(b => Shape($"layer{s + 1}.{b}.conv2.0.weight")).FirstOrDefault(k => k[2] != 1 || k[3] != 3 || k[4] != 3);
                if (middle is not null)
                {
                    throw new InvalidDataException($"'{path}': a bottleneck of stage {s + 1} has a {middle[2]} x {middle[3]} x {middle[4]} middle convolution; Cvrl's bottleneck's is 1 x 3 x 3.");
                }
            }
        }

        int depth = ResNet3dOptions.StageBlocks.Where(kv => kv.Value.SequenceEqual(blocks) && (kv.Key >= 50) == bottleneck).Select(kv => kv.Key).FirstOrDefault();
        if (depth == 0)
        {
            throw new InvalidDataException($"'{path}': {(bottleneck ? "bottleneck" : "basic")} blocks per stage {string.Join(", ", blocks)} match no depth Cvrl builds ({string.Join(", ", ResNet3dOptions.StageBlocks.Keys)}).");
        }

        var options = zoo == ModelZoo.Torchvision
            ? new ResNet3dOptions { Depth = depth, WidthMultiplier = width, InputChannels = (int)stem[1], StemTemporalKernel = (int)stem[2], StageTemporalKernels = kernels }
            : new ResNet3dOptions
            {
                Depth = depth,
                WidthMultiplier = width,
                InputChannels = (int)stem[1],
                StemTemporalKernel = (int)stem[2],
                StemTemporalStride = 1,
                StemPool = true,
                StageTemporalKernels = kernels,
                StageTemporalStrides = [1, 1, 1, 1],
                BatchNormEps = 1e-5,
                BatchNormMomentum = 0.1,
                Init = WeightInit.Torchvision,
            };
        string name = zoo == ModelZoo.Torchvision ? $"R3D-{depth}" : kernels.SequenceEqual([1, 1, 3, 3]) && stem[2] == 1 ? $"Slow-R{depth}" : $"ResNet3D-{depth}";
        string description = string.Create(CultureInfo.InvariantCulture,
            $"{name} (depth {depth}, width {width:0.###}, stem {stem[2]}x7x7{(options.StemPool != false ? " with a 1x3x3 max pool" : string.Empty)}, stage temporal kernels {string.Join(", ", kernels)})");
        return (options, description);
    }

    /// <summary>
    /// What the weights cannot show: temporal pooling and strides. A zoo network that pools or strides in time where
    /// Cvrl's does not would load and compute something else, so it is refused by name.
    /// </summary>
    private static ResNet3dOptions CheckConfiguration(ModelZoo zoo, TorchSaveContent? content, ResNet3dOptions options, List<string> notes, string path)
    {
        switch (zoo)
        {
            case ModelZoo.PySlowFast:
                if (content?.Find("cfg") is string yaml && YamlValue(yaml, "MODEL", "ARCH") is { } arch)
                {
                    if (arch != "slow")
                    {
                        throw new InvalidDataException($"'{path}' is a PySlowFast '{arch}' network (cfg MODEL.ARCH); Cvrl maps 'slow' networks (Slow-R50, Slow-R101): {(arch is "c2d" or "i3d" ? "this one pools in time after its second stage, which Cvrl's ResNet3d does not" : "its layout is not Cvrl's ResNet3d")}.");
                    }
                }
                else
                {
                    notes.Add("no cfg in the checkpoint: assumed a PySlowFast 'slow' network (no temporal pooling or strides)");
                }

                return options;
            case ModelZoo.MmAction2:
                if (MmConfig(content) is { } mm)
                {
                    var backbone = mm.Config.Get("model", "backbone") as Dictionary<string, object?>;
                    string? type = backbone?.GetValueOrDefault("type") as string;
                    if (type == "ResNet3d" && backbone!.GetValueOrDefault("with_pool2") is not false)
                    {
                        throw new InvalidDataException($"'{path}' is an mmaction2 ResNet3d (I3D-style) network that pools in time after its first stage (with_pool2), which Cvrl's ResNet3d does not; SlowOnly networks map.");
                    }

                    if (PythonConfig.Int(backbone?.GetValueOrDefault("pool1_stride_t")) is int pool && pool != 1)
                    {
                        throw new InvalidDataException($"'{path}': its stem pools with temporal stride {pool} (pool1_stride_t); Cvrl's stem pool has temporal stride 1.");
                    }

                    if (PythonConfig.Int(backbone?.GetValueOrDefault("conv1_stride_t")) is int stride && stride != 1)
                    {
                        return options with { StemTemporalStride = stride };
                    }
                }
                else
                {
                    notes.Add("no meta.cfg or meta.config in the checkpoint: assumed an mmaction2 SlowOnly network (no temporal pooling or strides)");
                }

                return options;
            case ModelZoo.PyTorchVideo when options.StemTemporalKernel == 1 && options.StageTemporalKernels!.All(k => k == 1):
                throw new InvalidDataException($"'{path}' has no temporal convolution at all, the signature of pytorchvideo's C2D, which pools in time after its first stage; Cvrl's ResNet3d does not. Slow-R50 maps.");
            default:
                return options;
        }
    }

    private static (ClipGeometry Clips, string ClipsSource, double[] Mean, double[] Std, string NormSource) Expectations(ModelZoo zoo, TorchSaveContent? content, ZooImportOptions options, List<string> notes)
    {
        int? frames = null, stride = null, crop = null;
        double[]? mean = null, std = null;
        string? from = null;
        switch (zoo)
        {
            case ModelZoo.PySlowFast when content?.Find("cfg") is string yaml:
                frames = YamlInt(yaml, "DATA", "NUM_FRAMES");
                stride = YamlInt(yaml, "DATA", "SAMPLING_RATE");
                crop = YamlInt(yaml, "DATA", "TRAIN_CROP_SIZE");
                mean = YamlList(yaml, "DATA", "MEAN");
                std = YamlList(yaml, "DATA", "STD");
                from = "the checkpoint's cfg";
                break;
            case ModelZoo.MmAction2 when MmConfig(content) is { } mm:
                var (sampling, trainCrop, norm) = MmPipelines(mm.Config);
                frames = PythonConfig.Int(sampling?.GetValueOrDefault("clip_len"));
                stride = PythonConfig.Int(sampling?.GetValueOrDefault("frame_interval"));
                crop = trainCrop;
                mean = PythonConfig.Numbers(norm?.GetValueOrDefault("mean"));
                std = PythonConfig.Numbers(norm?.GetValueOrDefault("std"));
                if (mean is not null && mean.Any(v => v > 1.5))
                {
                    mean = [.. mean.Select(v => v / 255)];
                    std = std is null ? null : [.. std.Select(v => v / 255)];
                }

                if (norm?.GetValueOrDefault("to_bgr") is true)
                {
                    notes.Add("the model was trained on BGR frames (to_bgr=True); Cvrl feeds RGB, so its channels come in the other order");
                }

                from = $"the checkpoint's {mm.Key}";
                break;
        }

        (int Frames, int Stride, int Crop, double[] Mean, double[] Std, string Name) zooDefault = zoo switch
        {
            ModelZoo.Torchvision => (16, 2, 112, s_torchvisionMean, s_torchvisionStd, "torchvision's Kinetics-400 training (16 frames, 112 crops, its mean and std)"),
            ModelZoo.MmAction2 => (8, 8, 224, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], "mmaction2's SlowOnly-R50 8x8 defaults (ImageNet mean and std)"),
            _ => (8, 8, 224, s_kineticsMean, s_kineticsStd, "the Slow-R50 8x8 defaults of PySlowFast and pytorchvideo (mean 0.45, std 0.225)"),
        };
        bool fromFile = frames is not null && stride is not null;
        var clips = options.Clips ?? new ClipGeometry(frames ?? zooDefault.Frames, stride ?? zooDefault.Stride, crop ?? zooDefault.Crop);
        string clipsSource = options.Clips is not null ? "as given" : fromFile ? from! : zooDefault.Name + (zoo == ModelZoo.PyTorchVideo ? "; pytorchvideo's hub files hold no configuration" : string.Empty);
        bool normFromFile = mean is { Length: 3 } && std is { Length: 3 };
        double[] m = options.InputMean?.ToArray() ?? (normFromFile ? mean! : zooDefault.Mean);
        double[] s = options.InputStd?.ToArray() ?? (normFromFile ? std! : zooDefault.Std);
        string normSource = options.InputMean is not null ? "as given" : normFromFile ? from! : zooDefault.Name;
        return (clips, clipsSource, m, s, normSource);
    }

    private static (ProjectionHead? Head, ProjectionHeadOptions? Options) MapHead(SortedDictionary<int, Dictionary<string, string>> layers, IReadOnlyDictionary<string, Tensor> weights, int featureDim, ModelZoo zoo, HashSet<string> converted, List<string> notes, string path)
    {
        // Cvrl's head: blocks of Linear (index 3i), BatchNorm (3i + 1), ReLU (3i + 2), then a Linear at 3H.
        var indices = layers.Keys.ToList();
        int last = indices[^1];
        bool fits = last % 3 == 0 && layers[last].ContainsKey("weight")
            && Enumerable.Range(0, last / 3).All(i => layers.TryGetValue(3 * i, out var lin) && lin.ContainsKey("weight")
                && layers.TryGetValue((3 * i) + 1, out var bn) && s_bnParts.Take(4).All(bn.ContainsKey))
            && indices.All(i => i % 3 != 2 && (i == last || i / 3 < last / 3));
        if (!fits)
        {
            notes.Add($"projection head not mapped: its layers ({string.Join(", ", indices)}) are not blocks of Linear, BatchNorm and ReLU ending in a Linear, the shape of Cvrl's ProjectionHead");
            return (null, null);
        }

        int hiddenLayers = last / 3;
        long[] first = weights[layers[0]["weight"]].shape;
        long[] final = weights[layers[last]["weight"]].shape;
        if (first[1] != featureDim)
        {
            notes.Add($"projection head not mapped: it takes {first[1]} features, the encoder gives {featureDim}");
            return (null, null);
        }

        var options = new ProjectionHeadOptions
        {
            HiddenLayers = hiddenLayers,
            HiddenDim = hiddenLayers > 0 ? (int)first[0] : 2048,
            OutputDim = (int)final[0],
            BatchNormMomentum = 0.1,
            BatchNormEps = 1e-5,
        };
        var head = new ProjectionHead(featureDim, options);
        try
        {
            using var scope = torch.NewDisposeScope();
            var source = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            int zeroBiases = 0;
            foreach (var (index, parts) in layers)
            {
                foreach (var (part, key) in parts)
                {
                    source[$"net.{index}.{part}"] = Float32(weights[key], key, converted);
                }

                if (index % 3 == 0 && !parts.ContainsKey("bias"))
                {
                    // PySlowFast's hidden Linear layers have no bias (BatchNorm follows); Cvrl's have one: zero is the same function.
                    source[$"net.{index}.bias"] = torch.zeros(weights[parts["weight"]].shape[0]);
                    zeroBiases++;
                }
            }

            ModelWeights.LoadStateDict(head, source, strict: true, origin: $"{path} ({zoo} projection head)");
            if (zeroBiases > 0)
            {
                notes.Add($"projection head: {zeroBiases} Linear layers have no bias in the checkpoint (BatchNorm follows them); Cvrl's head gives them zero biases, the same function");
            }

            return (head, options);
        }
        catch
        {
            head.Dispose();
            throw;
        }
    }

    private static Tensor Float32(Tensor t, string name, HashSet<string> converted)
    {
        if (!t.is_floating_point() || t.dtype == ScalarType.Float32)
        {
            return t;
        }

        converted.Add(name);
        return t.to(ScalarType.Float32);
    }

    private static int? YamlInt(string yaml, string section, string key) =>
        YamlValue(yaml, section, key) is { } text && int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v : null;

    private static double[]? YamlList(string yaml, string section, string key)
    {
        // Either "KEY: [a, b, c]" or "KEY:" followed by "- a" lines.
        if (YamlValue(yaml, section, key) is { Length: > 0 } inline)
        {
            return Numbers(inline.Trim('[', ']'));
        }

        var lines = SectionLines(yaml, section);
        int at = lines.FindIndex(l => Regex.IsMatch(l, $@"^\s+{key}:\s*$"));
        if (at < 0)
        {
            return null;
        }

        var items = lines.Skip(at + 1).TakeWhile(l => Regex.IsMatch(l, @"^\s+-\s")).Select(l => l.Trim().TrimStart('-').Trim()).ToList();
        return Numbers(string.Join(",", items));
    }

    private static string? YamlValue(string yaml, string section, string key)
    {
        foreach (string line in SectionLines(yaml, section))
        {
            var m = Regex.Match(line, $@"^\s+{key}:\s*(.*?)\s*$");
            if (m.Success)
            {
                return m.Groups[1].Value;
            }
        }

        return null;
    }

    private static List<string> SectionLines(string yaml, string section)
    {
        var lines = yaml.ReplaceLineEndings("\n").Split('\n');
        int start = Array.FindIndex(lines, l => l == section + ":");
        return start < 0 ? [] : [.. lines.Skip(start + 1).TakeWhile(l => l.Length == 0 || char.IsWhiteSpace(l[0]))];
    }

    /// <summary>
    /// The configuration an mmaction2 checkpoint carries, parsed: mmengine (mmaction2 1.x) keeps its pretty text at
    /// <c>meta.cfg</c>, mmcv (0.x) the file's text at <c>meta.config</c>. Null when there is none.
    /// </summary>
    private static (PythonConfig Config, string Key)? MmConfig(TorchSaveContent? content) =>
        content?.Find("meta/cfg") is string cfg ? (PythonConfig.Parse(cfg), "meta.cfg")
        : content?.Find("meta/config") is string config ? (PythonConfig.Parse(config), "meta.config")
        : null;

    /// <summary>
    /// What an mmaction2 configuration says about the clips a model learned from, found by structure: the frame
    /// sampling step (<c>SampleFrames</c>) of the training pipeline (else validation, else test); the training crop,
    /// the square size of the training pipeline's last fixed-size <c>Resize</c> (else the validation pipeline's
    /// <c>CenterCrop</c>); the normalisation of the model's data preprocessor (1.x), else <c>img_norm_cfg</c> or a
    /// <c>Normalize</c> step (0.x).
    /// </summary>
    private static (Dictionary<string, object?>? Sampling, int? Crop, Dictionary<string, object?>? Norm) MmPipelines(PythonConfig config)
    {
        object? Pipeline(string split) =>
            config.Get(split + "_pipeline") ?? config.Get(split + "_dataloader", "dataset", "pipeline") ?? config.Get("data", split, "pipeline");
        object? train = Pipeline("train"), val = Pipeline("val"), test = Pipeline("test");
        var sampling = PythonConfig.Step(train, "SampleFrames") ?? PythonConfig.Step(val, "SampleFrames") ?? PythonConfig.Step(test, "SampleFrames");

        int? crop = null;
        foreach (var step in PythonConfig.Steps(train).Where(s => s.GetValueOrDefault("type") is "Resize"))
        {
            if (step.GetValueOrDefault("keep_ratio") is false && PythonConfig.Numbers(step.GetValueOrDefault("scale")) is [var w, var h] && w == h && w > 0)
            {
                crop = (int)w;
            }
        }

        crop ??= PythonConfig.Int(PythonConfig.Step(val, "CenterCrop")?.GetValueOrDefault("crop_size"))
            ?? PythonConfig.Int(PythonConfig.Step(test, "CenterCrop")?.GetValueOrDefault("crop_size"));

        var norm = config.Get("model", "data_preprocessor") as Dictionary<string, object?>;
        if (norm?.ContainsKey("mean") != true)
        {
            norm = config.Get("img_norm_cfg") as Dictionary<string, object?> ?? PythonConfig.Step(train, "Normalize") ?? PythonConfig.Step(val, "Normalize");
        }

        return (sampling, crop, norm);
    }

    private static double[]? Numbers(string text)
    {
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var values = new double[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!double.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]))
            {
                return null;
            }
        }

        return values.Length > 0 ? values : null;
    }
}
