using System.ComponentModel;
using System.Text.Json;
using Cvrl.Models;
using Cvrl.Models.Weights;
using Cvrl.Training;
using Spectre.Console;
using Spectre.Console.Cli;
using TorchSharp;

namespace Cvrl.Cli.Infrastructure;

/// <summary>Options shared by every command that needs an encoder: a checkpoint, or a freshly initialised network.</summary>
internal class EncoderSettings : DeviceSettings
{
    private CheckpointState? _state;
    private bool _stateRead;

    [CommandOption("-c|--checkpoint <FILE>")]
    [Description("A Cvrl checkpoint (from pretrain), or a weight file (.pt/.pth/.safetensors/TorchSharp) for --depth/--width. Default: a freshly initialised encoder.")]
    public string? Checkpoint { get; init; }

    [CommandOption("--depth <N>")]
    [Description("ResNet depth (18, 34, 50, 101, 152, 200) of a fresh encoder or of a weight file; with a Cvrl checkpoint, checked against it. [grey]Default: 50[/]")]
    public int? Depth { get; init; }

    [CommandOption("--width <X>")]
    [Description("Width multiplier (1, 2, 4; any positive value). [grey]Default: 1[/]")]
    public double? Width { get; init; }

    [CommandOption("--init-seed <SEED>")]
    [Description("Seed of a freshly initialised encoder (the same seed gives the same weights).")]
    [DefaultValue(0L)]
    public long InitSeed { get; init; }

    public override ValidationResult Validate()
    {
        if (Depth is int d && d is not (18 or 34 or 50 or 101 or 152 or 200))
        {
            return ValidationResult.Error("--depth must be 18, 34, 50, 101, 152 or 200");
        }

        if (Width is double w && !(w > 0 && double.IsFinite(w)))
        {
            return ValidationResult.Error("--width must be positive");
        }

        return base.Validate();
    }

    /// <summary>The architecture asked for on the command line (depth 50, width 1 by default).</summary>
    public ResNet3dOptions Architecture => new() { Depth = Depth ?? 50, WidthMultiplier = Width ?? 1 };

    /// <summary>The checkpoint or weight file the encoder comes from (null: a fresh one); commands that take it as an argument override it.</summary>
    public virtual string? EncoderFile => Checkpoint;

    /// <summary>Whether the encoder is an exported ONNX model (run by ONNX Runtime, no TorchSharp).</summary>
    public bool IsOnnx => EncoderFile is { } f && f.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase);

    /// <summary>Loads the ONNX encoder (CPU or, with --device cuda[:N], ONNX Runtime's CUDA provider) and says so.</summary>
    public Cvrl.Onnx.OnnxEncoder LoadOnnx(string? file = null)
    {
        file ??= EncoderFile!;
        var (type, index) = DeviceSpec.Parse(Device);
        var encoder = Cvrl.Onnx.OnnxEncoder.Load(file, new Cvrl.Onnx.OnnxSessionOptions
        {
            Provider = type == TorchSharp.DeviceType.CUDA ? Cvrl.Onnx.OnnxExecutionProvider.Cuda : Cvrl.Onnx.OnnxExecutionProvider.Cpu,
            DeviceId = Math.Max(0, index),
        });
        Announce($"{encoder.Architecture} from ONNX model {Path.GetFileName(file)} (ONNX Runtime)");
        return encoder;
    }

    /// <summary>Builds the encoder on the requested device, and a one-line description of where it came from.</summary>
    public (ResNet3d Encoder, string Description) CreateEncoder() => CreateEncoder(EncoderFile, Architecture, InitSeed);

    /// <summary>Where the encoder comes from, as recorded in the embedding sets it makes (so that search can find it again).</summary>
    public EncoderSource Source()
    {
        if (EncoderFile is not { } file)
        {
            return new EncoderSource("fresh", null, Architecture.Depth, Architecture.WidthMultiplier, InitSeed);
        }

        string full = Path.GetFullPath(file);
        return IsOnnx ? new EncoderSource("onnx", full, null, null, null)
            : TrainedState is not null ? new EncoderSource("checkpoint", full, Depth, Width, null)
            : new EncoderSource("weights", full, Architecture.Depth, Architecture.WidthMultiplier, null);
    }

    /// <summary>The test views that match the encoder's training geometry when it is a Cvrl checkpoint, or null for other encoders.</summary>
    public Cvrl.Video.TestViewOptions? TrainedViews => TrainedState?.MatchingTestViews();

    /// <summary>Builds an encoder from a file (null: a fresh one of <paramref name="architecture"/> with <paramref name="seed"/>).</summary>
    public (ResNet3d Encoder, string Description) CreateEncoder(string? file, ResNet3dOptions architecture, long seed)
    {
        var device = DeviceSpec.Resolve(Device);
        if (file is null)
        {
            torch.manual_seed(seed);
            var fresh = ResNet3d.Create(architecture, device);
            return (fresh, $"freshly initialised {architecture.ArchitectureName} (seed {seed})");
        }

        if (!File.Exists(file))
        {
            throw new FileNotFoundException($"checkpoint '{file}' does not exist", file);
        }

        if (IsCvrlCheckpoint(file))
        {
            var encoder = Depth is null && Width is null
                ? CvrlCheckpoint.LoadEncoder(file, device)
                : CvrlCheckpoint.LoadEncoder(file, architecture, device);
            return (encoder, $"{encoder.Options.ArchitectureName} from checkpoint {Path.GetFileName(file)}");
        }

        var model = ResNet3d.Create(architecture);
        try
        {
            ModelWeights.Load(file, model, strict: true);
            model.to(device);
            return (model, $"{architecture.ArchitectureName} from weights {Path.GetFileName(file)}");
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Whether <paramref name="path"/> is a checkpoint written by the trainer (rather than a plain weight file).</summary>
    public static bool IsCvrlCheckpoint(string path) => StateOf(path) is not null;

    /// <summary>
    /// The trainer state of <see cref="EncoderFile"/> when it is a Cvrl checkpoint, else null (an ONNX model, a weight
    /// file, a fresh encoder, a missing file). Read once per command: a checkpoint is read whole to get at it.
    /// </summary>
    public CheckpointState? TrainedState
    {
        get
        {
            if (!_stateRead)
            {
                _state = EncoderFile is { } file && File.Exists(file) && !IsOnnx ? StateOf(file) : null;
                _stateRead = true;
            }

            return _state;
        }
    }

    /// <summary>The state of a Cvrl checkpoint, or null when <paramref name="path"/> is another kind of weight file.</summary>
    private static CheckpointState? StateOf(string path)
    {
        if (StateDictFile.DetectFormat(path) != WeightFormat.TorchSharp)
        {
            return null;
        }

        try
        {
            return CvrlCheckpoint.ReadState(path);
        }
        catch (InvalidDataException e) when (e.Message.Contains("not a Cvrl checkpoint", StringComparison.Ordinal))
        {
            return null;
        }
    }

    /// <summary>Prints which encoder runs where.</summary>
    public void Announce(string description) =>
        AnsiConsole.MarkupLine($"encoder: {Markup.Escape(description)} on {Markup.Escape(Device)}");
}

/// <summary>
/// Where an embedding set's encoder came from, for the CLI to find it again (the "source" entry of the set's metadata,
/// beside the library's "encoder" description; sets written before this version kept it as "encoder").
/// </summary>
/// <param name="Kind">"checkpoint", "onnx", "weights" or "fresh".</param>
/// <param name="Path">The encoder file's full path (null for a fresh encoder).</param>
/// <param name="Depth">The architecture's depth for weight files and fresh encoders (checkpoints and ONNX models carry theirs).</param>
/// <param name="Width">The width multiplier, likewise.</param>
/// <param name="InitSeed">A fresh encoder's seed.</param>
internal sealed record EncoderSource(string Kind, string? Path, int? Depth, double? Width, long? InitSeed)
{
    private static readonly System.Text.Json.JsonSerializerOptions Json = new() { PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.CamelCase };

    /// <summary>A copy of <paramref name="set"/> whose metadata also records this source.</summary>
    public Cvrl.Embeddings.EmbeddingSet Stamp(Cvrl.Embeddings.EmbeddingSet set)
    {
        var metadata = (System.Text.Json.Nodes.JsonNode.Parse(string.IsNullOrWhiteSpace(set.Metadata) ? "{}" : set.Metadata) as System.Text.Json.Nodes.JsonObject) ?? [];
        metadata["source"] = ToNode();
        var stamped = new Cvrl.Embeddings.EmbeddingSet(set.Dim, set.ModelFingerprint, metadata.ToJsonString());
        for (int i = 0; i < set.Count; i++)
        {
            stamped.Add(set.Keys[i], set[i]);
        }

        return stamped;
    }

    /// <summary>This source as the JSON the metadata records.</summary>
    public System.Text.Json.Nodes.JsonNode? ToNode() => System.Text.Json.JsonSerializer.SerializeToNode(this, Json);

    /// <summary>The source recorded in a set, or null (sets made before it was recorded, or by the API).</summary>
    public static EncoderSource? Of(Cvrl.Embeddings.EmbeddingSet set) => Of(set.Metadata);

    /// <summary>The source recorded in a set's or an index's metadata, or null.</summary>
    public static EncoderSource? Of(string json)
    {
        try
        {
            var metadata = System.Text.Json.Nodes.JsonNode.Parse(json);
            var node = metadata?["source"] ?? (metadata?["encoder"]?["kind"] is not null ? metadata["encoder"] : null);
            return node?.Deserialize<EncoderSource>(Json);
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }
}
