using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cvrl.Video;

/// <summary>Who holds (or held) a <see cref="FolderLock"/>.</summary>
/// <param name="ProcessId">The process.</param>
/// <param name="Host">The machine it ran on.</param>
/// <param name="Purpose">What it was doing ("pre-training", "preparing videos", "writing an explore report", ...).</param>
/// <param name="StartedUtc">When it took the lock.</param>
public sealed record FolderLockHolder(int ProcessId, string Host, string Purpose, DateTime StartedUtc)
{
    /// <summary>"process 4242 on node7 (pre-training, since 2026-12-06 10:00:00 UTC)".</summary>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"process {ProcessId} on {Host} ({Purpose}, since {StartedUtc:yyyy-MM-dd HH:mm:ss} UTC)");
}

/// <summary>A folder another process (or another part of this one) is working in: the second run is refused.</summary>
public sealed class FolderInUseException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="folder">The folder.</param>
    /// <param name="holder">Who holds it, when known.</param>
    public FolderInUseException(string folder, FolderLockHolder? holder)
        : base($"'{folder}' is in use by {(holder is null ? "another process" : holder.ToString())}; wait for it to finish, or use another folder.")
    {
        Folder = folder;
        Holder = holder;
    }

    /// <summary>Creates the exception (tooling).</summary>
    public FolderInUseException()
        : base("The folder is in use.")
    {
        Folder = string.Empty;
    }

    /// <summary>Creates the exception (tooling).</summary>
    public FolderInUseException(string message)
        : base(message)
    {
        Folder = string.Empty;
    }

    /// <summary>Creates the exception (tooling).</summary>
    public FolderInUseException(string message, Exception inner)
        : base(message, inner)
    {
        Folder = string.Empty;
    }

    /// <summary>The folder.</summary>
    public string Folder { get; }

    /// <summary>Who holds it, when known.</summary>
    public FolderLockHolder? Holder { get; }
}

/// <summary>
/// An exclusive lock on a folder that a run writes into (a training run's checkpoints, a prepared data set, an explore
/// report), so that two runs never mix their files there: the second is refused with <see cref="FolderInUseException"/>
/// naming the holder. The lock is the operating system's lock on the file <see cref="FileName"/> in the folder, so it
/// ends with its process, whatever the way it ends (a crash, SIGKILL, a lost node); a lock left by a process that is gone
/// is taken over, and <see cref="TookOverFrom"/> and a warning say so. Who holds the lock is recorded beside it in
/// <see cref="OwnerFileName"/>.
/// </summary>
/// <example>
/// <code>
/// using var claim = FolderLock.Acquire("runs/a", "pre-training");   // throws FolderInUseException when taken
/// </code>
/// </example>
public sealed class FolderLock : IDisposable
{
    /// <summary>The lock file's name.</summary>
    public const string FileName = ".cvrl-lock";

    /// <summary>The file that names the holder.</summary>
    public const string OwnerFileName = ".cvrl-lock.json";

    private readonly FileStream _stream;
    private readonly string _ownerPath;
    private bool _disposed;

    private FolderLock(string folder, FileStream stream, string ownerPath, FolderLockHolder holder, FolderLockHolder? tookOverFrom)
    {
        Folder = folder;
        _stream = stream;
        _ownerPath = ownerPath;
        Holder = holder;
        TookOverFrom = tookOverFrom;
    }

    /// <summary>The locked folder (full path).</summary>
    public string Folder { get; }

    /// <summary>This lock's holder record.</summary>
    public FolderLockHolder Holder { get; }

    /// <summary>The holder of a lock left behind by a process that ended without releasing it, taken over by this one; null when the folder was free.</summary>
    public FolderLockHolder? TookOverFrom { get; }

    /// <summary>Locks <paramref name="folder"/> (created when missing) for this process.</summary>
    /// <param name="folder">The folder.</param>
    /// <param name="purpose">What the holder does there, for the message a second run gets.</param>
    /// <param name="logger">Warns when a stale lock is taken over.</param>
    /// <returns>The lock; dispose it to release.</returns>
    /// <exception cref="FolderInUseException">Another process, or another lock in this one, holds the folder.</exception>
    /// <exception cref="IOException">The folder cannot be created or written.</exception>
    public static FolderLock Acquire(string folder, string purpose, ILogger? logger = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        ArgumentException.ThrowIfNullOrWhiteSpace(purpose);
        logger ??= NullLogger.Instance;
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder));
        Directory.CreateDirectory(full);
        string lockPath = Path.Combine(full, FileName);
        string ownerPath = Path.Combine(full, OwnerFileName);
        FileStream stream;
        try
        {
            // FileShare.None: .NET takes an exclusive flock on Unix (and a share lock on Windows); the kernel drops it when
            // the process ends, however it ends.
            stream = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException and not PathTooLongException && File.Exists(lockPath))
        {
            throw new FolderInUseException(full, ReadOwner(ownerPath));
        }

        try
        {
            var stale = ReadOwner(ownerPath);
            var holder = new FolderLockHolder(Environment.ProcessId, Environment.MachineName, purpose, DateTime.UtcNow);
            AtomicFile.Write(ownerPath, s => JsonSerializer.Serialize(s, holder));
            if (stale is not null)
            {
                FolderLockLog.TookOver(logger, full, stale.ToString());
            }

            return new FolderLock(full, stream, ownerPath, holder, stale);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>Who holds <paramref name="folder"/>'s lock now, or null when nobody does.</summary>
    /// <param name="folder">The folder.</param>
    public static FolderLockHolder? HolderOf(string folder)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        string full = Path.GetFullPath(folder);
        string lockPath = Path.Combine(full, FileName);
        if (!File.Exists(lockPath))
        {
            return null;
        }

        try
        {
            using var probe = new FileStream(lockPath, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            return null;
        }
        catch (IOException)
        {
            return ReadOwner(Path.Combine(full, OwnerFileName)) ?? new FolderLockHolder(0, "?", "unknown", default);
        }
    }

    /// <summary>Releases the lock (the holder record is removed first, so a record left behind always means an unreleased lock).</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        try
        {
            File.Delete(_ownerPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The next holder reports it as a lock taken over; nothing else depends on it.
        }

        _stream.Dispose();
    }

    private static FolderLockHolder? ReadOwner(string path)
    {
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize<FolderLockHolder>(File.ReadAllText(path)) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }
}

/// <summary>Source-generated log messages of <see cref="FolderLock"/>.</summary>
internal static partial class FolderLockLog
{
    [LoggerMessage(EventId = 330, Level = LogLevel.Warning, Message = "Took over the lock on {Folder} left by {Holder}, which ended without releasing it")]
    public static partial void TookOver(ILogger logger, string folder, string holder);
}
