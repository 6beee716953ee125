using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Cvrl.Embeddings;
using Cvrl.Models;
using Cvrl.Models.Weights;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Training;

/// <summary>The metadata stored in a Cvrl checkpoint next to the tensors.</summary>
public sealed record CheckpointState
{
    /// <summary>The checkpoint format version this build writes.</summary>
    public const int CurrentFormatVersion = 1;

    /// <summary>The format version of this checkpoint.</summary>
    public int FormatVersion { get; init; } = CurrentFormatVersion;

    /// <summary>Global steps done.</summary>
    public long Step { get; init; }

    /// <summary>The epoch the next step belongs to.</summary>
    public int Epoch { get; init; }

    /// <summary>The index, within <see cref="Epoch"/>, of the next batch.</summary>
    public int BatchIndex { get; init; }

    /// <summary>The epoch-order position where the next batch starts (the loader's sampler position).</summary>
    public int Position { get; init; }

    /// <summary>The encoder's resolved options (the architecture).</summary>
    public required ResNet3dOptions Encoder { get; init; }

    /// <summary>The trainer options of the run (seed, schedule, augmentation, ...).</summary>
    public required CvrlTrainerOptions Trainer { get; init; }

    /// <summary>The pre-training data set's <see cref="Data.VideoDataset.Fingerprint"/> (null in checkpoints written before it was recorded).</summary>
    public string? DataFingerprint { get; init; }

    /// <summary>The number of videos pre-trained on.</summary>
    public int? DataVideos { get; init; }

    /// <summary>When it was written (UTC, ISO 8601).</summary>
    public string CreatedUtc { get; init; } = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture);

    /// <summary>The Cvrl version that wrote it.</summary>
    public string CvrlVersion { get; init; } = typeof(CheckpointState).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    /// <summary>The clips the encoder was trained on (clip length, stride and crop size of <see cref="Trainer"/>'s views).</summary>
    [JsonIgnore]
    public ClipGeometry TrainedClips => CvrlTrainer.ClipsOf(Trainer);

    /// <summary>
    /// The test views that match the encoder's training geometry (<see cref="Cvrl.Video.TestViewOptions.ForClips"/>):
    /// what both embedders, <c>cvrl embed</c>, <c>search</c>, <c>probe</c> and <c>knn</c> use for this encoder unless
    /// told otherwise, and what <c>cvrl export</c> records in an ONNX model's metadata. (The paper's linear evaluation
    /// uses longer clips than pre-training, 32 frames at 256: pass those explicitly to follow its protocol.)
    /// </summary>
    public Cvrl.Video.TestViewOptions MatchingTestViews() => TrainedClips.MatchingTestViews();
}

/// <summary>
/// Reads Cvrl training checkpoints: one file (<c>checkpoint-0000000500.cvrl</c>, the step in ten digits; TorchSharp's weight format) holding the
/// encoder (<c>encoder.*</c>), the projection head (<c>head.*</c>), the optimizer state (<c>optimizer.*</c>) and a JSON
/// <see cref="CheckpointState"/> (<c>__meta__</c>).
/// </summary>
public static class CvrlCheckpoint
{
    internal const string MetaKey = "__meta__";
    internal const string Extension = ".cvrl";

    /// <summary>Reads a checkpoint's metadata.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a Cvrl checkpoint (or is corrupt, or of a newer format).</exception>
    public static CheckpointState ReadState(string path)
    {
        using var file = StateDictFile.Read(path);
        return State(file, path);
    }

    /// <summary>Builds the checkpoint's encoder on <paramref name="device"/> with its weights (strictly checked).</summary>
    /// <param name="path">The checkpoint.</param>
    /// <param name="device">Where to put it (default CPU).</param>
    /// <returns>The encoder, owned by the caller, carrying the clips it was trained on (<see cref="ResNet3d.TrainedClips"/>).</returns>
    /// <exception cref="InvalidDataException">The file is not a readable Cvrl checkpoint.</exception>
    public static ResNet3d LoadEncoder(string path, Device? device = null) => Load(path, null, device);

    /// <summary>
    /// Loads the checkpoint's weights into an encoder built from <paramref name="expected"/>, so that a checkpoint of
    /// another architecture fails with a clear message instead of giving a different model than asked for.
    /// </summary>
    /// <param name="path">The checkpoint.</param>
    /// <param name="expected">The architecture the caller expects.</param>
    /// <param name="device">Where to put it (default CPU).</param>
    /// <returns>The encoder, owned by the caller, carrying the clips it was trained on (<see cref="ResNet3d.TrainedClips"/>).</returns>
    /// <exception cref="InvalidDataException">The file is not a readable Cvrl checkpoint.</exception>
    /// <exception cref="WeightsMismatchException">The checkpoint holds another architecture; the message names both.</exception>
    public static ResNet3d LoadEncoder(string path, ResNet3dOptions expected, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(expected);
        return Load(path, expected, device);
    }

    /// <summary>Builds the encoder (of <paramref name="expected"/>, or the checkpoint's own architecture) with its weights and training clips.</summary>
    private static ResNet3d Load(string path, ResNet3dOptions? expected, Device? device)
    {
        using var file = StateDictFile.Read(path);
        var state = State(file, path);
        var encoder = ResNet3d.Create(expected ?? state.Encoder);
        encoder.TrainedClips = state.TrainedClips;
        try
        {
            ModelWeights.LoadStateDict(encoder, Prefixed(file, "encoder."), strict: true, origin: path);
            if (device is not null)
            {
                encoder.to(device);
            }

            return encoder;
        }
        catch (WeightsMismatchException e) when (expected is not null)
        {
            encoder.Dispose();
            throw new WeightsMismatchException($"Checkpoint '{path}' holds an {state.Encoder.ArchitectureName} encoder, not the {expected.ArchitectureName} asked for. {e.Message}", e);
        }
        catch
        {
            encoder.Dispose();
            throw;
        }
    }

    /// <summary>Builds the checkpoint's projection head with its weights.</summary>
    /// <exception cref="InvalidDataException">The file is not a readable Cvrl checkpoint.</exception>
    public static ProjectionHead LoadHead(string path, Device? device = null)
    {
        using var file = StateDictFile.Read(path);
        var state = State(file, path);
        var encoder = ResNet3d.Create(state.Encoder, torch.device("meta"));
        int featureDim = encoder.FeatureDim;
        encoder.Dispose();
        var head = new ProjectionHead(featureDim, state.Trainer.Head);
        try
        {
            ModelWeights.LoadStateDict(head, Prefixed(file, "head."), strict: true, origin: path);
            if (device is not null)
            {
                head.to(device);
            }

            return head;
        }
        catch
        {
            head.Dispose();
            throw;
        }
    }

    internal static CheckpointState State(StateDict file, string path)
    {
        if (!file.TryGetValue(MetaKey, out var meta) || meta.dtype != ScalarType.Byte)
        {
            throw new InvalidDataException($"'{path}' is a weight file but not a Cvrl checkpoint (no {MetaKey} entry).");
        }

        CheckpointState? state;
        try
        {
            state = JsonSerializer.Deserialize<CheckpointState>(Encoding.UTF8.GetString(meta.bytes), CvrlJson.Compact);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Checkpoint '{path}' has unreadable metadata: {e.Message}", e);
        }

        if (state is null || state.FormatVersion < 1)
        {
            throw new InvalidDataException($"Checkpoint '{path}' has no valid metadata.");
        }

        if (state.FormatVersion > CheckpointState.CurrentFormatVersion)
        {
            throw new InvalidDataException($"Checkpoint '{path}' has format version {state.FormatVersion}; this Cvrl reads up to {CheckpointState.CurrentFormatVersion}.");
        }

        return state;
    }

    internal static Dictionary<string, Tensor> Prefixed(StateDict file, string prefix) =>
        file.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal)).ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value, StringComparer.Ordinal);

    internal static Tensor MetaTensor(CheckpointState state)
    {
        byte[] json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(state, CvrlJson.Compact));
        return torch.tensor(json, ScalarType.Byte);
    }
}

/// <summary>Writes, lists, prunes and finds the newest readable checkpoint in a folder.</summary>
internal sealed class CheckpointStore
{
    private readonly string _directory;
    private readonly int _keep;

    /// <param name="directory">The folder.</param>
    /// <param name="keep">Checkpoints to keep.</param>
    /// <param name="writer">
    /// Whether this process writes (and cleans up after a crash); in a data-parallel job only rank 0 does, the others
    /// only read the folder.
    /// </param>
    public CheckpointStore(string directory, int keep, bool writer = true)
    {
        _directory = Path.GetFullPath(directory);
        _keep = keep;
        if (!writer)
        {
            return;
        }

        System.IO.Directory.CreateDirectory(_directory);
        foreach (string stale in System.IO.Directory.GetFiles(_directory, "*.tmp"))
        {
            File.Delete(stale); // left by a crash during a write; the target was never replaced
        }
    }

    public string Directory => _directory;

    /// <summary>Checkpoint files, oldest first.</summary>
    public IReadOnlyList<string> List() =>
        System.IO.Directory.Exists(_directory) ? [.. System.IO.Directory.GetFiles(_directory, "checkpoint-*" + CvrlCheckpoint.Extension).Order(StringComparer.Ordinal)] : [];

    /// <summary>Writes a checkpoint atomically, then deletes all but the newest <c>keep</c>.</summary>
    public string Write(CheckpointState state, IEnumerable<(string Prefix, IReadOnlyDictionary<string, Tensor> Tensors)> parts)
    {
        string path = Path.Combine(_directory, string.Create(CultureInfo.InvariantCulture, $"checkpoint-{state.Step:D10}{CvrlCheckpoint.Extension}"));
        var all = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (prefix, tensors) in parts)
        {
            foreach (var (key, tensor) in tensors)
            {
                all[prefix + key] = tensor;
            }
        }

        using var meta = CvrlCheckpoint.MetaTensor(state);
        all[CvrlCheckpoint.MetaKey] = meta;
        StateDictFile.Write(path, all, WeightFormat.TorchSharp);
        var files = List();
        foreach (string old in files.Take(Math.Max(0, files.Count - _keep)))
        {
            File.Delete(old);
        }

        return path;
    }

    /// <summary>The newest checkpoint that reads back, skipping (and logging) corrupt ones; null when none.</summary>
    public (string Path, CheckpointState State, StateDict Tensors)? LoadNewest(ILogger logger)
    {
        foreach (string path in List().Reverse())
        {
            StateDict? file = null;
            try
            {
                file = StateDictFile.Read(path);
                var state = CvrlCheckpoint.State(file, path);
                return (path, state, file);
            }
            catch (InvalidDataException e)
            {
                file?.Dispose();
                Log.BadCheckpoint(logger, path, e.Message);
            }
        }

        return null;
    }
}
