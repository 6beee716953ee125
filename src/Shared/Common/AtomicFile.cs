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
        string tmp = TemporaryName(full, ".tmp");
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

    /// <summary>The most bytes of a file name most Linux file systems take.</summary>
    public const int MaxNameBytes = 255;

    /// <summary>
    /// A temporary name beside <paramref name="full"/> ending in <paramref name="suffix"/>: the file's own name with a
    /// random tag, or, where that would pass <see cref="MaxNameBytes"/>, a hidden name of the tag alone (so a file whose
    /// name is near the limit can still be written).
    /// </summary>
    public static string TemporaryName(string full, string suffix)
    {
        string tag = Guid.NewGuid().ToString("N")[..8];
        string name = Path.GetFileName(full) + "." + tag + suffix;
        if (System.Text.Encoding.UTF8.GetByteCount(name) > MaxNameBytes)
        {
            name = ".cvrl-" + Guid.NewGuid().ToString("N") + suffix;
        }

        return Path.Combine(Path.GetDirectoryName(full)!, name);
    }
}
