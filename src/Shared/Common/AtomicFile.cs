// Shared source: compiled into Cvrl.Augment, Cvrl.Models and Cvrl (Common.props) and into Cvrl.Video (linked in its
// project file), internal in each: the one atomic-write helper.
namespace Cvrl;

/// <summary>Writes files so that readers see the old content or the complete new one, never a partial file.</summary>
internal static class AtomicFile
{
    /// <summary>Writes through a temporary file in the same folder, flushed to disk, then renamed over <paramref name="path"/>.</summary>
    /// <param name="path">The file to write.</param>
    /// <param name="write">Writes the content to the stream.</param>
    /// <param name="beforeRename">Called with the temporary file's path just before the rename (tests inject faults here).</param>
    public static void Write(string path, Action<Stream> write, Action<string>? beforeRename = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string tmp = full + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp";
        try
        {
            using (var stream = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }

            beforeRename?.Invoke(tmp);
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp))
            {
                File.Delete(tmp);
            }
        }
    }
}
