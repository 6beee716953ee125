namespace Cvrl.Video;

/// <summary>The files a search found: the videos, and the files left out for their extension.</summary>
/// <param name="Videos">The video files, full paths in ordinal order.</param>
/// <param name="LeftOut">Other files (full paths, ordinal order), not counting hidden files and Cvrl's own files.</param>
public sealed record VideoFileScan(IReadOnlyList<string> Videos, IReadOnlyList<string> LeftOut);

/// <summary>Which files count as videos when a folder is searched.</summary>
public static class VideoFiles
{
    /// <summary>
    /// The file extensions picked up by default (case-insensitive): the containers and elementary streams FFmpeg reads
    /// that cameras, phones, broadcast recorders, DVDs and the web produce, and Cvrl's prepared videos
    /// (<see cref="PreparedVideo.Extension"/>).
    /// </summary>
    public static IReadOnlyList<string> DefaultExtensions { get; } =
    [
        ".mp4", ".m4v", ".mov", ".qt", ".avi", ".mkv", ".webm", ".wmv", ".asf", ".flv", ".f4v",
        ".mpg", ".mpeg", ".m1v", ".m2v", ".mpv", ".vob", ".ts", ".mts", ".m2ts", ".3gp", ".3g2",
        ".ogv", ".mxf", ".dv", ".divx", ".xvid", ".rm", ".rmvb", ".nut", ".y4m", ".ivf",
        ".h264", ".264", ".avc", ".h265", ".265", ".hevc", ".mjpeg", ".mjpg",
        PreparedVideo.Extension,
    ];

    private static readonly HashSet<string> s_companions = new(
        [".txt", ".csv", ".tsv", ".json", ".lst", ".md", ".srt", ".vtt", ".ass", ".sub", ".xml", ".yaml", ".yml", ".nfo"],
        StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Whether a file is one that lives beside videos and is clearly not one (lists, subtitles, notes: <c>.txt .csv .json
    /// .lst .md .srt .vtt .xml .yaml ...</c>): reports of files left out do not warn about these.
    /// </summary>
    /// <param name="path">A file path.</param>
    public static bool IsCompanionFile(string path) => s_companions.Contains(Path.GetExtension(path));

    /// <summary>The video files in <paramref name="folder"/>, full paths in ordinal order.</summary>
    /// <param name="folder">The folder.</param>
    /// <param name="recursive">Include subfolders.</param>
    /// <param name="extensions">Extensions to include; default <see cref="DefaultExtensions"/>.</param>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    public static IReadOnlyList<string> Find(string folder, bool recursive = true, IEnumerable<string>? extensions = null) =>
        Scan(folder, recursive, extensions).Videos;

    /// <summary>
    /// Searches <paramref name="path"/>: a folder (recursively by default) or a single video file. Files whose
    /// extension is not a video's are listed in <see cref="VideoFileScan.LeftOut"/>, so that a caller can say what it
    /// did not use; hidden files and Cvrl's own files (index, preparation manifest, temporary files) are not.
    /// </summary>
    /// <param name="path">A folder, or one file (taken whatever its extension).</param>
    /// <param name="recursive">Include subfolders.</param>
    /// <param name="extensions">Extensions to include; default <see cref="DefaultExtensions"/>.</param>
    /// <returns>The videos and the files left out.</returns>
    /// <exception cref="DirectoryNotFoundException">Neither a folder nor a file exists at <paramref name="path"/>.</exception>
    public static VideoFileScan Scan(string path, bool recursive = true, IEnumerable<string>? extensions = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = Path.GetFullPath(path);
        if (File.Exists(full))
        {
            return new VideoFileScan([full], []);
        }

        if (!Directory.Exists(full))
        {
            throw new DirectoryNotFoundException($"Neither a folder nor a file exists at '{full}'.");
        }

        var allowed = new HashSet<string>(extensions ?? DefaultExtensions, StringComparer.OrdinalIgnoreCase);
        var videos = new List<string>();
        var leftOut = new List<string>();
        foreach (string file in Directory.EnumerateFiles(full, "*", recursive ? SearchOption.AllDirectories : SearchOption.TopDirectoryOnly))
        {
            if (allowed.Contains(Path.GetExtension(file)))
            {
                videos.Add(file);
            }
            else if (!IsHiddenOrOwn(full, file))
            {
                leftOut.Add(file);
            }
        }

        videos.Sort(StringComparer.Ordinal);
        leftOut.Sort(StringComparer.Ordinal);
        return new VideoFileScan(videos, leftOut);
    }

    private static bool IsHiddenOrOwn(string root, string file)
    {
        string name = Path.GetFileName(file);
        if (name.StartsWith('.') || name.EndsWith(".partial", StringComparison.Ordinal) || name.EndsWith(".tmp", StringComparison.Ordinal))
        {
            return true;
        }

        // A file inside a hidden folder (.git, .cache, ...) below the root.
        string relative = Path.GetRelativePath(root, Path.GetDirectoryName(file)!);
        return relative != "." && relative.Split(Path.DirectorySeparatorChar).Any(part => part.StartsWith('.'));
    }
}
