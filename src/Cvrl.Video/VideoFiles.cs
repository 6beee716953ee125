namespace Cvrl.Video;

/// <summary>The files a search found: the videos, and the files left out for their extension.</summary>
/// <param name="Videos">The video files, full paths in ordinal order.</param>
/// <param name="LeftOut">Other files (full paths, ordinal order), not counting hidden files and Cvrl's own files.</param>
public sealed record VideoFileScan(IReadOnlyList<string> Videos, IReadOnlyList<string> LeftOut)
{
    /// <summary>
    /// Names that lead to a file already taken (a link to a file, or to a folder whose files were reached another way):
    /// each listed with the name kept in <see cref="Videos"/>, so that one video never counts twice (as its own negative
    /// in pre-training, or as two keys of an embedding set).
    /// </summary>
    public IReadOnlyList<ScanIssue> Duplicates { get; init; } = [];

    /// <summary>What the search passed over: links to a folder it had searched already (link loops included), broken links, folders it cannot read.</summary>
    public IReadOnlyList<ScanIssue> Skipped { get; init; } = [];
}

/// <summary>A path a folder search did not take, and why.</summary>
/// <param name="Path">The path as found under the searched folder.</param>
/// <param name="Reason">Why it was not taken.</param>
public sealed record ScanIssue(string Path, string Reason);

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
    public static VideoFileScan Scan(string path, bool recursive = true, IEnumerable<string>? extensions = null) =>
        Scan(path, recursive, extensions, [], CancellationToken.None);

    /// <summary>
    /// Searches <paramref name="path"/> as <see cref="Scan(string, bool, IEnumerable{string}?)"/> does, never entering the
    /// folders <paramref name="exclude"/> names (judged with every link resolved: an output folder inside the source, or
    /// a link to it, is left out), and stopping between folders when cancelled.
    /// </summary>
    /// <param name="path">A folder, or one file (taken whatever its extension).</param>
    /// <param name="recursive">Include subfolders.</param>
    /// <param name="extensions">Extensions to include; null for <see cref="DefaultExtensions"/>.</param>
    /// <param name="exclude">Folders not to search (they need not exist).</param>
    /// <param name="cancellationToken">Stops the search.</param>
    /// <returns>The videos and the files left out.</returns>
    /// <exception cref="DirectoryNotFoundException">Neither a folder nor a file exists at <paramref name="path"/>.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public static VideoFileScan Scan(string path, bool recursive, IEnumerable<string>? extensions, IEnumerable<string> exclude, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(exclude);
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
        var files = new List<(string Path, string Canonical, bool IsLink)>();
        var skipped = new List<ScanIssue>();
        var searched = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string folder in exclude)
        {
            // An excluded folder counts as searched already: never entered, by any name.
            searched.TryAdd(FileIdentity.Resolve(folder), "(excluded: " + Path.GetFullPath(folder) + ")");
        }

        Search(full, Canonical(full), recursive, files, skipped, searched, cancellationToken);

        // The name kept for a file is its own (not a link) when it has one, else the first in ordinal order; the others are duplicates of it.
        files.Sort((a, b) => a.IsLink != b.IsLink ? a.IsLink.CompareTo(b.IsLink) : StringComparer.Ordinal.Compare(a.Path, b.Path));
        var kept = new Dictionary<string, string>(StringComparer.Ordinal);
        var videos = new List<string>();
        var leftOut = new List<string>();
        var duplicates = new List<ScanIssue>();
        foreach (var (file, canonical, _) in files)
        {
            if (kept.TryGetValue(canonical, out string? first))
            {
                duplicates.Add(new ScanIssue(file, $"the same file as '{first}'"));
            }
            else
            {
                kept[canonical] = file;
                if (allowed.Contains(Path.GetExtension(file)))
                {
                    videos.Add(file);
                }
                else if (!IsHiddenOrOwn(full, file))
                {
                    leftOut.Add(file);
                }
            }
        }

        videos.Sort(StringComparer.Ordinal);
        leftOut.Sort(StringComparer.Ordinal);
        duplicates.Sort((a, b) => StringComparer.Ordinal.Compare(a.Path, b.Path));
        skipped.Sort((a, b) => StringComparer.Ordinal.Compare(a.Path, b.Path));
        return new VideoFileScan(videos, leftOut) { Duplicates = duplicates, Skipped = skipped };
    }

    /// <summary>
    /// Searches one folder: regular files and links to files are taken with their canonical path (every link resolved)
    /// and whether the name itself is a link;
    /// subfolders and links to folders are searched once per canonical folder, so a link back up the tree or a second
    /// link to the same folder adds nothing.
    /// </summary>
    private static void Search(string folder, string canonical, bool recursive, List<(string Path, string Canonical, bool IsLink)> files, List<ScanIssue> skipped, Dictionary<string, string> searched, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (searched.TryGetValue(canonical, out string? earlier))
        {
            if (!earlier.StartsWith("(excluded", StringComparison.Ordinal))
            {
                skipped.Add(new ScanIssue(folder, $"a link to a folder searched already ('{earlier}')"));
            }

            return;
        }

        searched[canonical] = folder;
        List<string> entries;
        try
        {
            entries = [.. Directory.EnumerateFileSystemEntries(folder).Order(StringComparer.Ordinal)];
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            skipped.Add(new ScanIssue(folder, $"the folder cannot be read ({e.Message})"));
            return;
        }

        foreach (string entry in entries)
        {
            string target;
            bool isLink;
            try
            {
                isLink = new FileInfo(entry).LinkTarget is not null;
                target = isLink ? Canonical(entry) : Path.Combine(canonical, Path.GetFileName(entry));
            }
            catch (IOException e)
            {
                skipped.Add(new ScanIssue(entry, $"a link that cannot be resolved ({e.Message})"));
                continue;
            }

            if (Directory.Exists(target))
            {
                if (recursive)
                {
                    Search(entry, target, recursive, files, skipped, searched, cancellationToken);
                }
            }
            else if (File.Exists(target))
            {
                files.Add((entry, target, isLink));
            }
            else
            {
                skipped.Add(new ScanIssue(entry, $"a broken link (its target '{target}' does not exist)"));
            }
        }
    }

    /// <summary>
    /// The key of a file under <paramref name="root"/>: its relative path with '/' between folders on every system. A
    /// backslash in a Linux or macOS file name is a character of the name, kept as it is (only Windows separates folders
    /// with it), so a class folder named <c>a\b</c> stays one folder.
    /// </summary>
    /// <param name="root">The folder the key is relative to.</param>
    /// <param name="path">A file below it.</param>
    public static string RelativeKey(string root, string path)
    {
        string relative = Path.GetRelativePath(root, path);
        return Path.DirectorySeparatorChar == '/' ? relative : relative.Replace(Path.DirectorySeparatorChar, '/');
    }

    /// <summary>
    /// The path with every symbolic link along it resolved (as realpath does); throws <see cref="IOException"/> for a
    /// chain of more than 40 links (a loop).
    /// </summary>
    internal static string Canonical(string fullPath, int depth = 0)
    {
        if (depth > 40)
        {
            throw new IOException($"more than 40 links to follow from '{fullPath}' (a link loop)");
        }

        string current = Path.GetPathRoot(fullPath) ?? "/";
        foreach (string part in fullPath[current.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            string next = Path.Combine(current, part);
            string? link = new FileInfo(next).LinkTarget;
            current = link is null ? next : Canonical(Path.GetFullPath(link, current), depth + 1);
        }

        return current;
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
