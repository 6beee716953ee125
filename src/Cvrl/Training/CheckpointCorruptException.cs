namespace Cvrl.Training;

/// <summary>
/// A checkpoint failed its integrity check: an entry's bytes do not match the checksum written with it, an entry is
/// missing or unexpected, or the file's structure is damaged. Names the file and the first bad entry. Resuming passes
/// over such a file (to the newest intact checkpoint) and never deletes it.
/// </summary>
public sealed class CheckpointCorruptException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="path">The checkpoint file.</param>
    /// <param name="entry">The first bad entry, or null when the damage is in the file's structure.</param>
    /// <param name="detail">What is wrong.</param>
    /// <param name="inner">The underlying exception, if any.</param>
    public CheckpointCorruptException(string path, string? entry, string detail, Exception? inner = null)
        : base($"Checkpoint '{path}' is damaged: {(entry is null ? string.Empty : $"entry '{entry}' ")}{detail}.", inner)
    {
        Path = path;
        Entry = entry;
    }

    /// <summary>Creates the exception (tooling).</summary>
    public CheckpointCorruptException()
        : this(string.Empty, null, "unknown damage")
    {
    }

    /// <summary>Creates the exception (tooling).</summary>
    public CheckpointCorruptException(string message)
        : base(message)
    {
        Path = string.Empty;
    }

    /// <summary>Creates the exception (tooling).</summary>
    public CheckpointCorruptException(string message, Exception inner)
        : base(message, inner)
    {
        Path = string.Empty;
    }

    /// <summary>The checkpoint file.</summary>
    public string Path { get; }

    /// <summary>The first bad entry, or null when the damage is in the file's structure.</summary>
    public string? Entry { get; }
}

/// <summary>
/// A run folder holds checkpoints, but none of them is intact, so resuming is refused rather than starting over at step 0
/// on its own. The damaged files are kept (renamed <c>*.cvrl.damaged</c>). Start a new run deliberately
/// (<see cref="CvrlTrainerOptions.Resume"/> = false, <c>cvrl pretrain --fresh</c>) or put an intact checkpoint back.
/// </summary>
public sealed class NoIntactCheckpointException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="directory">The checkpoint folder.</param>
    /// <param name="damaged">The damaged checkpoints, newest first.</param>
    public NoIntactCheckpointException(string directory, IReadOnlyList<string> damaged)
        : base($"No intact checkpoint in '{directory}': {damaged.Count} damaged ({string.Join(", ", damaged.Take(3).Select(System.IO.Path.GetFileName))}{(damaged.Count > 3 ? ", ..." : string.Empty)}), kept as *.cvrl.damaged; resuming would start over from step 0, so it is refused: start a new run with --fresh (CvrlTrainerOptions.Resume = false) or put an intact checkpoint back.")
    {
        Directory = directory;
        Damaged = damaged;
    }

    /// <summary>Creates the exception (tooling).</summary>
    public NoIntactCheckpointException()
        : this(string.Empty, [])
    {
    }

    /// <summary>Creates the exception (tooling).</summary>
    public NoIntactCheckpointException(string message)
        : base(message)
    {
        Directory = string.Empty;
        Damaged = [];
    }

    /// <summary>Creates the exception (tooling).</summary>
    public NoIntactCheckpointException(string message, Exception inner)
        : base(message, inner)
    {
        Directory = string.Empty;
        Damaged = [];
    }

    /// <summary>The checkpoint folder.</summary>
    public string Directory { get; }

    /// <summary>The damaged checkpoints, newest first (their original names).</summary>
    public IReadOnlyList<string> Damaged { get; }
}
