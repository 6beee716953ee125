namespace Cvrl.Models.Weights;

/// <summary>The model zoos whose checkpoints <see cref="ZooImporter"/> reads.</summary>
public enum ModelZoo
{
    /// <summary>Recognise the zoo from the checkpoint's parameter names.</summary>
    Auto,

    /// <summary>
    /// PySlowFast (facebookresearch/SlowFast, including its <c>projects/contrastive_ssl</c> models): <c>.pyth</c> files
    /// holding <c>{epoch, model_state, optimizer_state, cfg}</c>, names such as <c>s2.pathway0_res0.branch2.a.weight</c>.
    /// </summary>
    PySlowFast,

    /// <summary>pytorchvideo's hub: <c>.pyth</c> files holding <c>{model_state}</c>, names such as <c>blocks.1.res_blocks.0.branch2.conv_a.weight</c>.</summary>
    PyTorchVideo,

    /// <summary>mmaction2: <c>.pth</c> files holding <c>{meta, state_dict, optimizer}</c>, names such as <c>backbone.layer1.0.conv1.conv.weight</c>.</summary>
    MmAction2,

    /// <summary>torchvision's video ResNets (<c>r3d_18</c>): a plain state dict whose names are Cvrl's own.</summary>
    Torchvision,
}

/// <summary>Options for <see cref="ZooImporter.Import(string, ZooImportOptions?)"/>.</summary>
public sealed record ZooImportOptions
{
    /// <summary>The zoo the file comes from. Default <see cref="ModelZoo.Auto"/> (recognised from its parameter names).</summary>
    public ModelZoo From { get; init; } = ModelZoo.Auto;

    /// <summary>
    /// Keep the checkpoint's classifier: the encoder is built in classifier mode with the checkpoint's classes and its
    /// final layer. Default false: a backbone that returns pooled features (the classifier's weights are reported unused).
    /// </summary>
    public bool KeepClassifier { get; init; }

    /// <summary>
    /// Map a self-supervised projection head onto <see cref="ProjectionHead"/> where the checkpoint holds one that fits
    /// (hidden layers of Linear, BatchNorm and ReLU, then a Linear). Default true.
    /// </summary>
    public bool KeepProjectionHead { get; init; } = true;

    /// <summary>
    /// The dictionary of tensors that holds the weights, as a '/'-joined path of keys ("model_state", "state_dict", ""
    /// for the top level), or null for the zoo's convention.
    /// </summary>
    public string? StateDictPath { get; init; }

    /// <summary>The clips the model expects, or null for what the checkpoint's configuration says (else the zoo's default for the model).</summary>
    public ClipGeometry? Clips { get; init; }

    /// <summary>The input normalisation's per-channel mean in [0, 1] units, or null for the checkpoint's (else the zoo's default). Set with <see cref="InputStd"/>.</summary>
    public IReadOnlyList<double>? InputMean { get; init; }

    /// <summary>The input normalisation's per-channel standard deviation in [0, 1] units, or null for the checkpoint's. Set with <see cref="InputMean"/>.</summary>
    public IReadOnlyList<double>? InputStd { get; init; }

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    /// <exception cref="ArgumentException">Only one of <see cref="InputMean"/> and <see cref="InputStd"/> is set.</exception>
    public void Validate()
    {
        if (!Enum.IsDefined(From))
        {
            throw new ArgumentOutOfRangeException(nameof(From), From, "Unknown model zoo.");
        }

        Clips?.Validate();
        if ((InputMean is null) != (InputStd is null))
        {
            throw new ArgumentException($"{nameof(InputMean)} and {nameof(InputStd)} go together: set both or neither.", InputMean is null ? nameof(InputMean) : nameof(InputStd));
        }

        if (InputStd is not null && (InputStd.Any(v => !(v > 0) || !double.IsFinite(v)) || InputMean!.Any(v => !double.IsFinite(v))))
        {
            throw new ArgumentOutOfRangeException(nameof(InputStd), "InputMean must be finite and InputStd positive and finite.");
        }
    }
}

/// <summary>One weight taken from the checkpoint: its name there and in Cvrl's network.</summary>
/// <param name="Source">The checkpoint's name.</param>
/// <param name="Target">Cvrl's name (<c>encoder</c> or <c>head</c> parameter).</param>
public sealed record ZooKeyMapping(string Source, string Target);

/// <summary>What an import found, mapped and assumed.</summary>
public sealed record ZooImportReport
{
    /// <summary>The file.</summary>
    public required string Path { get; init; }

    /// <summary>The zoo, as given or recognised.</summary>
    public required ModelZoo Zoo { get; init; }

    /// <summary>Where the weights were in the file ('/'-joined keys; "" for the top level).</summary>
    public required string StateDictPath { get; init; }

    /// <summary>The architecture in words ("Slow-R50 (depth 50, width 1, stem 1x7x7 with pool, stage temporal kernels 1, 1, 3, 3)").</summary>
    public required string Architecture { get; init; }

    /// <summary>The encoder's options (with the input normalisation).</summary>
    public required ResNet3dOptions Encoder { get; init; }

    /// <summary>Every weight taken, checkpoint name to Cvrl name.</summary>
    public required IReadOnlyList<ZooKeyMapping> Mapped { get; init; }

    /// <summary>The checkpoint's tensors not used (a momentum encoder, a predictor, a classifier not kept, queues).</summary>
    public required IReadOnlyList<string> Unused { get; init; }

    /// <summary><see cref="Unused"/> grouped by their first two name parts ("backbone_hist.s2.* (48)"), for a console.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string UnusedSummary => Summarize(Unused);

    /// <summary>The clips the model expects (what embedding uses by default).</summary>
    public required ClipGeometry Clips { get; init; }

    /// <summary>Where <see cref="Clips"/> came from.</summary>
    public required string ClipsSource { get; init; }

    /// <summary>Where the input normalisation came from.</summary>
    public required string NormalizationSource { get; init; }

    /// <summary>The projection head's options when one was mapped, else null.</summary>
    public ProjectionHeadOptions? Head { get; init; }

    /// <summary>Anything else worth knowing (a head not mapped and why, converted element types, configuration objects skipped).</summary>
    public required IReadOnlyList<string> Notes { get; init; }

    /// <summary>A few lines for a log or a console.</summary>
    public override string ToString()
    {
        var lines = new List<string>
        {
            $"{Path}: {Zoo} checkpoint, weights at '{StateDictPath}'",
            $"architecture: {Architecture}",
            $"mapped {Mapped.Count} tensors; unused {Unused.Count}{(Unused.Count > 0 ? ": " + UnusedSummary : string.Empty)}; missing 0",
            $"clips: {Clips} ({ClipsSource})",
            $"input normalisation: mean {string.Join(", ", Encoder.InputMean ?? [])}, std {string.Join(", ", Encoder.InputStd ?? [])} ({NormalizationSource})",
        };
        if (Head is not null)
        {
            lines.Add($"projection head: {Head.HiddenLayers} hidden layers of {Head.HiddenDim}, output {Head.OutputDim}");
        }

        lines.AddRange(Notes);
        return string.Join(Environment.NewLine, lines);
    }

    /// <summary>Groups names by their first two parts ("backbone_hist.s2 (48)") so that a long list stays readable.</summary>
    private static string Summarize(IReadOnlyList<string> names)
    {
        var groups = names.GroupBy(n => string.Join('.', n.Split('.').Take(2))).Select(g => g.Count() == 1 ? g.Key : $"{g.Key}.* ({g.Count()})").ToList();
        return groups.Count <= 8 ? string.Join(", ", groups) : string.Join(", ", groups.Take(8)) + $", and {groups.Count - 8} more groups";
    }
}
