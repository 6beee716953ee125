using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Cvrl.Embeddings;
using Cvrl.Models;
using Cvrl.Models.Weights;
using Cvrl.Video;
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

    /// <summary>
    /// Where the weights came from when training did not write them (for example "PySlowFast checkpoint
    /// SLOW_8x8_R50.pyth" for a model-zoo import, <see cref="CvrlCheckpoint.WriteEncoder"/>), else null.
    /// </summary>
    public string? Source { get; init; }

    /// <summary>When it was written (UTC, ISO 8601).</summary>
    public string CreatedUtc { get; init; } = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture);

    /// <summary>The Cvrl version that wrote it.</summary>
    public string CvrlVersion { get; init; } = typeof(CheckpointState).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    /// <summary>
    /// Whether every entry of the file this state was read from matched the checksum written with it (false for a
    /// checkpoint written before Cvrl wrote checksums: it is loaded unverified). Not stored.
    /// </summary>
    [JsonIgnore]
    public bool IsVerified { get; init; }

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
    /// <exception cref="InvalidDataException">The file is not a Cvrl checkpoint, or of a newer format.</exception>
    /// <exception cref="CheckpointCorruptException">The file is damaged (it fails its checksum); the message names the first bad entry.</exception>
    public static CheckpointState ReadState(string path)
    {
        var (file, state) = Open(path);
        file.Dispose();
        return state;
    }

    /// <summary>
    /// Reads a checkpoint and checks it: every entry against the checksum written with it, then the metadata. The one
    /// way Cvrl reads a checkpoint (loading an encoder or a head, reading its state, resuming).
    /// </summary>
    /// <returns>The tensors (owned by the caller) and the state (<see cref="CheckpointState.IsVerified"/> says whether a checksum was there to check).</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="CheckpointCorruptException">The file is damaged; the message names the first bad entry.</exception>
    /// <exception cref="InvalidDataException">The file is not a Cvrl checkpoint, or of a newer format.</exception>
    internal static (StateDict File, CheckpointState State) Open(string path)
    {
        StateDict file;
        try
        {
            file = StateDictFile.Read(path);
        }
        catch (InvalidDataException e) when (path.EndsWith(Extension, StringComparison.Ordinal))
        {
            throw new CheckpointCorruptException(path, null, $"its structure does not read back ({e.Message})", e);
        }

        try
        {
            bool verified = CheckpointChecksum.Verify(file, path);
            return (file, State(file, path) with { IsVerified = verified });
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Builds the checkpoint's encoder on <paramref name="device"/> with its weights (strictly checked).</summary>
    /// <param name="path">The checkpoint.</param>
    /// <param name="device">Where to put it (default CPU).</param>
    /// <returns>The encoder, owned by the caller, carrying the clips it was trained on (<see cref="ResNet3d.TrainedClips"/>).</returns>
    /// <exception cref="InvalidDataException">The file is not a Cvrl checkpoint.</exception>
    /// <exception cref="CheckpointCorruptException">The file is damaged (it fails its checksum); the message names the first bad entry.</exception>
    public static ResNet3d LoadEncoder(string path, Device? device = null) => Load(path, null, device);

    /// <summary>
    /// Loads the checkpoint's weights into an encoder built from <paramref name="expected"/>, so that a checkpoint of
    /// another architecture fails with a clear message instead of giving a different model than asked for.
    /// </summary>
    /// <param name="path">The checkpoint.</param>
    /// <param name="expected">The architecture the caller expects.</param>
    /// <param name="device">Where to put it (default CPU).</param>
    /// <returns>The encoder, owned by the caller, carrying the clips it was trained on (<see cref="ResNet3d.TrainedClips"/>).</returns>
    /// <exception cref="InvalidDataException">The file is not a Cvrl checkpoint.</exception>
    /// <exception cref="CheckpointCorruptException">The file is damaged (it fails its checksum); the message names the first bad entry.</exception>
    /// <exception cref="WeightsMismatchException">The checkpoint holds another architecture; the message names both.</exception>
    public static ResNet3d LoadEncoder(string path, ResNet3dOptions expected, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(expected);
        return Load(path, expected, device);
    }

    /// <summary>Builds the encoder (of <paramref name="expected"/>, or the checkpoint's own architecture) with its weights and training clips.</summary>
    private static ResNet3d Load(string path, ResNet3dOptions? expected, Device? device)
    {
        var (file, state) = Open(path);
        using var owned = file;
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

    /// <summary>
    /// Writes an encoder (and a projection head) as a Cvrl checkpoint at step 0, atomically and with its checksum: what
    /// <c>cvrl import</c> writes for a model-zoo file, so that every command and API that takes a checkpoint (embedding,
    /// evaluation, fine-tuning, export, <c>cvrl pretrain --init</c>) takes the imported model. The encoder's
    /// <see cref="ResNet3d.TrainedClips"/> become the checkpoint's clips (the trainer's defaults when unknown).
    /// </summary>
    /// <param name="path">The file to write (its folder is created).</param>
    /// <param name="encoder">The encoder (any device).</param>
    /// <param name="head">Its projection head, or null.</param>
    /// <param name="source">Where the weights came from (<see cref="CheckpointState.Source"/>), or null.</param>
    /// <returns>The state written.</returns>
    public static CheckpointState WriteEncoder(string path, ResNet3d encoder, ProjectionHead? head = null, string? source = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(encoder);
        if (head is not null && head.InputDim != encoder.FeatureDim)
        {
            throw new ArgumentException($"The projection head takes {head.InputDim} features but the encoder gives {encoder.FeatureDim}.", nameof(head));
        }

        var defaults = new CvrlTrainerOptions();
        var clips = encoder.TrainedClips ?? CvrlTrainer.ClipsOf(defaults);
        var state = new CheckpointState
        {
            Encoder = encoder.Options,
            Trainer = defaults with
            {
                Head = head?.Options ?? ProjectionHeadOptions.ForWidth(encoder.Options.WidthMultiplier),
                Views = defaults.Views with { CropSize = clips.CropSize, Sampler = defaults.Views.Sampler with { FramesPerClip = clips.FramesPerClip, Stride = clips.Stride } },
            },
            Source = source,
        };
        var parts = new List<(string, IReadOnlyDictionary<string, Tensor>)> { ("encoder.", encoder.state_dict()) };
        if (head is not null)
        {
            parts.Add(("head.", head.state_dict()));
        }

        string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
        if (folder is not null)
        {
            System.IO.Directory.CreateDirectory(folder);
        }

        WriteFile(path, state, parts);
        return state;
    }

    /// <summary>Writes a checkpoint file: every part under its prefix, the metadata and the checksum, atomically.</summary>
    internal static void WriteFile(string path, CheckpointState state, IEnumerable<(string Prefix, IReadOnlyDictionary<string, Tensor> Tensors)> parts)
    {
        var all = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (prefix, tensors) in parts)
        {
            foreach (var (key, tensor) in tensors)
            {
                all[prefix + key] = tensor;
            }
        }

        using var meta = MetaTensor(state);
        all[MetaKey] = meta;
        using var checksum = CheckpointChecksum.Create(all);
        all[CheckpointChecksum.Key] = checksum;
        StateDictFile.Write(path, all, WeightFormat.TorchSharp);
    }

    /// <summary>Builds the checkpoint's projection head with its weights.</summary>
    /// <exception cref="InvalidDataException">The file is not a Cvrl checkpoint, or holds no projection head (an imported encoder without one).</exception>
    /// <exception cref="CheckpointCorruptException">The file is damaged (it fails its checksum); the message names the first bad entry.</exception>
    public static ProjectionHead LoadHead(string path, Device? device = null)
    {
        var (file, state) = Open(path);
        using var owned = file;
        if (!file.Keys.Any(k => k.StartsWith("head.", StringComparison.Ordinal)))
        {
            throw new InvalidDataException($"Checkpoint '{path}' holds no projection head{(state.Source is null ? string.Empty : $" (its encoder was imported from {state.Source})")}.");
        }

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
            if (file.ContainsKey(CheckpointChecksum.Key) || (file.Keys.Any(k => k.StartsWith("encoder.", StringComparison.Ordinal)) && file.Keys.Any(k => k.StartsWith("head.", StringComparison.Ordinal))))
            {
                throw new CheckpointCorruptException(path, MetaKey, "is missing or not bytes, though the file holds a checkpoint's entries");
            }

            throw new InvalidDataException($"'{path}' is a weight file but not a Cvrl checkpoint (no {MetaKey} entry).");
        }

        CheckpointState? state;
        try
        {
            state = JsonSerializer.Deserialize<CheckpointState>(Encoding.UTF8.GetString(meta.bytes), CvrlJson.Compact);
        }
        catch (JsonException e)
        {
            throw new CheckpointCorruptException(path, MetaKey, $"is not readable JSON ({e.Message})", e);
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
internal sealed class CheckpointStore : IDisposable
{
    private readonly string _directory;
    private readonly int _keep;
    private readonly bool _writer;
    private readonly FolderLock? _claim;

    /// <param name="directory">The folder.</param>
    /// <param name="keep">Checkpoints to keep.</param>
    /// <param name="writer">
    /// Whether this process writes (and cleans up after a crash); in a data-parallel job only rank 0 does, the others
    /// only read the folder.
    /// </param>
    /// <param name="logger">Warns when a lock left by a process that ended is taken over.</param>
    /// <exception cref="FolderInUseException">Another run writes checkpoints into the folder.</exception>
    public CheckpointStore(string directory, int keep, bool writer = true, ILogger? logger = null)
    {
        _directory = Path.GetFullPath(directory);
        _keep = keep;
        _writer = writer;
        if (!writer)
        {
            return;
        }

        // One writer per folder: two runs would interleave their checkpoints (and metrics) silently.
        _claim = FolderLock.Acquire(_directory, "pre-training", logger);
        foreach (string stale in System.IO.Directory.GetFiles(_directory, "*.tmp"))
        {
            File.Delete(stale); // left by a crash during a write; the target was never replaced
        }
    }

    public string Directory => _directory;

    /// <summary>Releases the folder.</summary>
    public void Dispose() => _claim?.Dispose();

    /// <summary>Checkpoint files, oldest first.</summary>
    public IReadOnlyList<string> List() =>
        System.IO.Directory.Exists(_directory) ? [.. System.IO.Directory.GetFiles(_directory, "checkpoint-*" + CvrlCheckpoint.Extension).Order(StringComparer.Ordinal)] : [];

    /// <summary>Writes a checkpoint atomically, then deletes all but the newest <c>keep</c>.</summary>
    public string Write(CheckpointState state, IEnumerable<(string Prefix, IReadOnlyDictionary<string, Tensor> Tensors)> parts)
    {
        string path = Path.Combine(_directory, string.Create(CultureInfo.InvariantCulture, $"checkpoint-{state.Step:D10}{CvrlCheckpoint.Extension}"));
        CvrlCheckpoint.WriteFile(path, state, parts);
        var files = List();
        foreach (string old in files.Take(Math.Max(0, files.Count - _keep)))
        {
            File.Delete(old);
        }

        return path;
    }

    /// <summary>
    /// The newest intact checkpoint: damaged ones are passed over with a warning and, by the writing process, renamed
    /// <c>*.cvrl.damaged</c> (kept for inspection, never deleted by the retention policy). Null when the folder holds no
    /// checkpoint.
    /// </summary>
    /// <exception cref="NoIntactCheckpointException">There are checkpoints, but none is intact: the run does not start over on its own.</exception>
    public (string Path, CheckpointState State, StateDict Tensors)? LoadNewest(ILogger logger)
    {
        var damaged = new List<string>();
        foreach (string path in List().Reverse())
        {
            try
            {
                var (file, state) = CvrlCheckpoint.Open(path);
                if (damaged.Count > 0)
                {
                    Log.ResumingFromOlder(logger, path, damaged.Count);
                }

                if (!state.IsVerified)
                {
                    Log.UnverifiedCheckpoint(logger, path);
                }

                return (path, state, file);
            }
            catch (Exception e) when (e is CheckpointCorruptException or InvalidDataException or FileNotFoundException)
            {
                Log.BadCheckpoint(logger, path, e.Message);
                damaged.Add(path);
                SetAside(path);
            }
        }

        return damaged.Count == 0 ? null : throw new NoIntactCheckpointException(_directory, damaged);
    }

    /// <summary>Renames a damaged checkpoint out of the way (the writer only): kept, but no longer listed, resumed from or pruned.</summary>
    private void SetAside(string path)
    {
        if (_writer && File.Exists(path))
        {
            string target = path + ".damaged";
            for (int n = 2; File.Exists(target); n++)
            {
                target = string.Create(CultureInfo.InvariantCulture, $"{path}.damaged-{n}"); // never replace one set aside earlier
            }

            File.Move(path, target);
        }
    }
}
