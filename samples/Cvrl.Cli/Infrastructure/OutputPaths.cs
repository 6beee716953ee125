using Cvrl.Video;

namespace Cvrl.Cli.Infrastructure;

/// <summary>
/// Checks where a command will write before it starts its long work, so that a wrong --out fails in one line at once
/// instead of after the work is done: a file is not a folder, a folder is not a file, no file stands where a folder of
/// the path must be, and the folder the output goes into (or the nearest one that exists) can be written.
/// </summary>
internal static class OutputPaths
{
    /// <summary>Checks that a file can be written at <paramref name="path"/> (given with <paramref name="option"/>).</summary>
    /// <exception cref="ArgumentException">It cannot; the message says why.</exception>
    public static void RequireFile(string? path, string option)
    {
        if (path is null)
        {
            return;
        }

        string full = Path.GetFullPath(path);
        if (Directory.Exists(full))
        {
            throw new ArgumentException($"{option} '{path}' is a folder; give the name of the file to write.");
        }

        RequireWritableFolder(Path.GetDirectoryName(full)!, path, option);
    }

    /// <summary>Checks that a folder can be created or written at <paramref name="path"/> (given with <paramref name="option"/>).</summary>
    /// <exception cref="ArgumentException">It cannot; the message says why.</exception>
    public static void RequireFolder(string? path, string option)
    {
        if (path is null)
        {
            return;
        }

        string full = Path.GetFullPath(path);
        if (File.Exists(full))
        {
            throw new ArgumentException($"{option} '{path}' is a file; give a folder.");
        }

        RequireWritableFolder(full, path, option);
    }

    /// <summary>
    /// Refuses an output that would replace something the command reads: the same file as an input (by any name: a link,
    /// a hard link, a relative path), or a video file inside an input folder of videos (it is one of the videos, or would
    /// be taken for one by the next run). Checked before any work.
    /// </summary>
    /// <param name="output">The output file (null: nothing to check).</param>
    /// <param name="option">The option that gave it.</param>
    /// <param name="inputs">The command's inputs (null entries ignored), each with what it is ("the checkpoint").</param>
    /// <exception cref="ArgumentException">The output is an input.</exception>
    public static void RequireNotInput(string? output, string option, params (string? Path, string What)[] inputs)
    {
        if (output is null)
        {
            return;
        }

        foreach (var (path, what) in inputs)
        {
            if (path is null)
            {
                continue;
            }

            if (FileIdentity.SameFile(output, path) || string.Equals(FileIdentity.Resolve(output), FileIdentity.Resolve(path), StringComparison.Ordinal))
            {
                throw new ArgumentException($"{option} '{output}' is {what} ('{path}'), which this command reads; writing there would replace it. Give another path.");
            }

            if (Directory.Exists(path) && !Directory.Exists(output) && FileIdentity.IsWithin(output, path)
                && VideoFiles.DefaultExtensions.Contains(Path.GetExtension(output), StringComparer.OrdinalIgnoreCase))
            {
                throw new ArgumentException($"{option} '{output}' is a video file inside {what} ('{path}'); writing there would replace or add a video. Give another path.");
            }
        }
    }

    private static void RequireWritableFolder(string folder, string given, string option)
    {
        string existing = folder;
        while (!Directory.Exists(existing))
        {
            if (File.Exists(existing))
            {
                throw new ArgumentException($"{option} '{given}' cannot be written: '{existing}' is a file, not a folder.");
            }

            existing = Path.GetDirectoryName(existing) ?? throw new ArgumentException($"{option} '{given}' has no folder that exists.");
        }

        string probe = Path.Combine(existing, $".cvrl-write-check-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            using (File.Create(probe, 1, FileOptions.DeleteOnClose))
            {
            }
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new ArgumentException($"{option} '{given}' cannot be written: the folder '{existing}' is not writable ({e.Message}).");
        }
    }
}
