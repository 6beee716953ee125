using System.Text.Json.Nodes;

namespace Cvrl.Training;

/// <summary>
/// A checkpoint to resume from belongs to another experiment: options that change the result (seed, batch size,
/// schedule, sampler, augmentation, ...) or the data set differ from the run's. Resuming it would mix two experiments;
/// start afresh (<see cref="CvrlTrainerOptions.Resume"/> = false, the CLI's <c>--fresh</c>) or use another checkpoint
/// folder.
/// </summary>
public sealed class ExperimentMismatchException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="checkpoint">The checkpoint.</param>
    /// <param name="differences">What differs, one line each ("BatchSize: 32 in the checkpoint, 64 now").</param>
    public ExperimentMismatchException(string checkpoint, IReadOnlyList<string> differences)
        : base($"Checkpoint '{checkpoint}' belongs to another experiment: {string.Join("; ", differences ?? [])}. Resume with the options and data it was written with, or start afresh (Resume = false, or --fresh) or in another checkpoint folder.")
    {
        Checkpoint = checkpoint;
        Differences = differences ?? [];
    }

    /// <summary>Creates the exception (tooling).</summary>
    public ExperimentMismatchException()
        : this(string.Empty, [])
    {
    }

    /// <summary>Creates the exception (tooling).</summary>
    public ExperimentMismatchException(string message, Exception inner)
        : base(message, inner)
    {
        Checkpoint = string.Empty;
        Differences = [];
    }

    /// <summary>The checkpoint's path.</summary>
    public string Checkpoint { get; }

    /// <summary>What differs, one line each.</summary>
    public IReadOnlyList<string> Differences { get; }

    /// <summary>
    /// The options whose difference makes another experiment, as JSON property paths of <see cref="CvrlTrainerOptions"/>:
    /// all except the number of epochs (a run may be extended; its cosine schedule is then recomputed for the new total),
    /// where checkpoints, logs and metrics go, how many threads load data, the device, and decoding limits.
    /// </summary>
    internal static IReadOnlyList<string> Compare(CvrlTrainerOptions saved, CvrlTrainerOptions now)
    {
        var before = Flatten(System.Text.Json.JsonSerializer.SerializeToNode(saved, CvrlJson.Compact)!, string.Empty);
        var after = Flatten(System.Text.Json.JsonSerializer.SerializeToNode(now, CvrlJson.Compact)!, string.Empty);
        return [.. before.Keys.Union(after.Keys).Where(k => !Ignored(k)).Order(StringComparer.Ordinal)
            .Where(k => before.GetValueOrDefault(k) != after.GetValueOrDefault(k))
            .Select(k => $"{k}: {before.GetValueOrDefault(k) ?? "unset"} in the checkpoint, {after.GetValueOrDefault(k) ?? "unset"} now")];
    }

    private static readonly string[] IgnoredOptions =
    [
        nameof(CvrlTrainerOptions.Epochs), nameof(CvrlTrainerOptions.Workers), nameof(CvrlTrainerOptions.PrefetchBatches), nameof(CvrlTrainerOptions.BadVideos),
        nameof(CvrlTrainerOptions.Device), nameof(CvrlTrainerOptions.Precision), nameof(CvrlTrainerOptions.CheckpointDirectory), nameof(CvrlTrainerOptions.CheckpointEverySteps),
        nameof(CvrlTrainerOptions.KeepCheckpoints), nameof(CvrlTrainerOptions.Resume), nameof(CvrlTrainerOptions.LogEverySteps),
        nameof(CvrlTrainerOptions.MetricsFile), nameof(CvrlTrainerOptions.TensorBoardDirectory), nameof(CvrlTrainerOptions.NativeHeapGrowthLimit),
        "Views.Reader.DecoderThreads", "Views.Reader.Timeout", "Views.Reader.MaxFrames", "Views.Reader.CountFramesOnOpen",
        "Views.Reader.Seek", "Views.Reader.SeekThreshold",
    ];

    private static bool Ignored(string key) => IgnoredOptions.Any(i => key == i || key.StartsWith(i + ".", StringComparison.Ordinal));

    private static Dictionary<string, string?> Flatten(JsonNode node, string prefix)
    {
        var result = new Dictionary<string, string?>(StringComparer.Ordinal);
        if (node is JsonObject obj)
        {
            foreach (var (name, child) in obj)
            {
                string key = prefix.Length == 0 ? name : $"{prefix}.{name}";
                if (child is JsonObject)
                {
                    foreach (var kv in Flatten(child, key))
                    {
                        result[kv.Key] = kv.Value;
                    }
                }
                else
                {
                    result[key] = child?.ToJsonString();
                }
            }
        }

        return result;
    }
}
