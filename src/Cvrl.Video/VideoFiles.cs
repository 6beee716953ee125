namespace Cvrl.Video;

/// <summary>Which files count as videos when a folder is searched.</summary>
public static class VideoFiles
{
    /// <summary>The file extensions picked up by default (case-insensitive).</summary>
    public static IReadOnlyList<string> DefaultExtensions { get; } = [".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"];

    /// <summary>The video files in <paramref name="folder"/>, full paths in ordinal order.</summary>
    /// <param name="folder">The folder.</param>
    /// <param name="recursive">Include subfolders.</param>
    /// <param name="extensions">Extensions to include; default <see cref="DefaultExtensions"/>.</param>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    public static IReadOnlyList<string> Find(string folder, bool recursive = true, IEnumerable<string>? extensions = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        string full = Path.GetFullPath(folder);
        if (!Directory.Exists(full))
        {
            throw new DirectoryNotFoundException($"Folder '{full}' does not exist.");
        }

        var allowed = new HashSet<string>(extensions ?? DefaultExtensions, StringComparer.OrdinalIgnoreCase);
        return [.. Directory.EnumerateFiles(full, "*", recursive ? SearchOption.AllDirectories : SearchOption.TopDirectoryOnly)
            .Where(f => allowed.Contains(Path.GetExtension(f)))
            .Order(StringComparer.Ordinal)];
    }
}
