using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Cvrl.Video;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cvrl.Data;

/// <summary>One video of a data set.</summary>
/// <param name="Path">Full path of the file.</param>
/// <param name="Label">Class index, or -1 when unlabeled.</param>
/// <param name="Frames">The verified number of decodable frames (set by <see cref="VideoDataset.Verify"/>), or null when not verified.</param>
public sealed record VideoItem(string Path, int Label = -1, int? Frames = null)
{
    /// <summary>Whether the item has a class label.</summary>
    public bool HasLabel => Label >= 0;
}

/// <summary>
/// An immutable list of videos (and, for labelled sets, class names), built from a folder, class folders, a
/// Kinetics-style CSV, UCF101/HMDB51-style split lists or a list of paths. Every factory resolves paths inside its data
/// root, rejects paths that escape it, and checks that the files exist before returning: missing files throw a
/// <see cref="DatasetException"/> with their count and the first few names, unless <c>skipMissing</c> is set (then
/// they are dropped and listed in <see cref="Missing"/>).
/// </summary>
/// <example>
/// <code>
/// var unlabeled = VideoDataset.FromFolder("clips/");
/// var ucf = VideoDataset.FromSplitList("UCF-101/", "ucfTrainTestlist/classInd.txt", "ucfTrainTestlist/trainlist01.txt");
/// </code>
/// </example>
public sealed class VideoDataset
{
    /// <summary>The file extensions <see cref="FromFolder"/> and <see cref="FromClassFolders"/> pick up by default.</summary>
    public static IReadOnlyList<string> DefaultExtensions => VideoFiles.DefaultExtensions;

    private const int ShownMissing = 5;

    private VideoDataset(string root, IReadOnlyList<VideoItem> items, IReadOnlyList<string> classes, IReadOnlyList<string> missing, IReadOnlyList<IndexedVideo>? rejected = null, bool hasDataRoot = true, IReadOnlyList<string>? leftOut = null, VideoFileScan? scan = null)
    {
        LeftOut = leftOut ?? [];
        Duplicates = scan?.Duplicates ?? [];
        NotSearched = scan?.Skipped ?? [];
        HasDataRoot = hasDataRoot;
        Root = root;
        Items = items;
        Classes = classes;
        Missing = missing;
        Rejected = rejected ?? [];
    }

    /// <summary>The data root.</summary>
    public string Root { get; }

    /// <summary>
    /// Whether <see cref="Root"/> is the data set's own folder (every factory but <see cref="FromPaths"/> without a root,
    /// whose root is only the current folder). <see cref="Verify"/> keeps its cache there only then.
    /// </summary>
    public bool HasDataRoot { get; }

    /// <summary>The videos, in a stable order.</summary>
    public IReadOnlyList<VideoItem> Items { get; }

    /// <summary>Class names (index = label); empty for unlabeled sets.</summary>
    public IReadOnlyList<string> Classes { get; }

    /// <summary>Files named by the source that do not exist (only with <c>skipMissing</c>).</summary>
    public IReadOnlyList<string> Missing { get; }

    /// <summary>
    /// Files under the data root that were not taken because their extension is not a video's (<see cref="FromFolder"/>,
    /// <see cref="FromPath"/>, <see cref="FromClassFolders"/>; hidden files and Cvrl's own files aside). <see cref="Verify"/>
    /// logs how many and the first few.
    /// </summary>
    public IReadOnlyList<string> LeftOut { get; }

    /// <summary>
    /// Names under the data root that lead to a video already in the set (links), each with the name kept: a video is
    /// in a data set once, whatever links lead to it. <see cref="Verify"/> logs them.
    /// </summary>
    public IReadOnlyList<ScanIssue> Duplicates { get; }

    /// <summary>What the folder search passed over: links to folders searched already (loops), broken links, unreadable folders. <see cref="Verify"/> logs them.</summary>
    public IReadOnlyList<ScanIssue> NotSearched { get; }

    /// <summary>Videos <see cref="Verify"/> left out because no frame of theirs decodes, with the reason.</summary>
    public IReadOnlyList<IndexedVideo> Rejected { get; }

    /// <summary>Whether every video carries a verified frame count (<see cref="Verify"/> ran).</summary>
    public bool IsVerified => Items.All(i => i.Frames is not null);

    /// <summary>
    /// A fingerprint of the data set: SHA-256 over each video's path relative to <see cref="Root"/> and its verified
    /// frame count, in order. Checkpoints record it, so that a run resumes only on the data it started with.
    /// </summary>
    /// <exception cref="InvalidOperationException">The data set is not verified.</exception>
    public string Fingerprint
    {
        get
        {
            if (!IsVerified)
            {
                throw new InvalidOperationException("The data set is not verified; call Verify() first.");
            }

            var sb = new StringBuilder();
            foreach (var item in Items)
            {
                sb.Append(CultureInfo.InvariantCulture, $"{VideoFiles.RelativeKey(Root, item.Path)}\t{item.Frames}\n");
            }

            return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())));
        }
    }

    /// <summary>Number of videos.</summary>
    public int Count => Items.Count;

    /// <summary>The folder search's notes, carried by the data sets derived from this one.</summary>
    private VideoFileScan ScanNotes => new([], []) { Duplicates = Duplicates, Skipped = NotSearched };

    /// <summary>Whether every video has a label.</summary>
    public bool IsLabeled => Classes.Count > 0 && Items.All(i => i.HasLabel);

    /// <summary>The video at <paramref name="index"/>.</summary>
    public VideoItem this[int index] => Items[index];

    /// <summary>All video files under a folder (recursively by default), unlabeled, sorted by path.</summary>
    /// <param name="root">The folder.</param>
    /// <param name="extensions">Extensions to include (case-insensitive); default <see cref="DefaultExtensions"/>.</param>
    /// <param name="recursive">Search subfolders.</param>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="DatasetException">The folder holds no video.</exception>
    public static VideoDataset FromFolder(string root, IEnumerable<string>? extensions = null, bool recursive = true)
    {
        string full = RequireDirectory(root);
        var allowed = new HashSet<string>(extensions ?? DefaultExtensions, StringComparer.OrdinalIgnoreCase);
        var scan = VideoFiles.Scan(full, recursive, allowed);
        if (scan.Videos.Count == 0)
        {
            string others = scan.LeftOut.Count == 0 ? string.Empty
                : $"; {scan.LeftOut.Count} other file(s) left out for their extension, first: {string.Join(", ", scan.LeftOut.Take(ShownMissing).Select(f => Path.GetRelativePath(full, f)))}";
            throw new DatasetException($"No video files ({string.Join(", ", allowed.Order())}) under '{full}'{others}.");
        }

        return new VideoDataset(full, [.. scan.Videos.Select(f => new VideoItem(f))], [], [], leftOut: scan.LeftOut, scan: scan);
    }

    /// <summary>
    /// A folder of videos (as <see cref="FromFolder"/>) or a single video file, unlabeled: what every command that takes
    /// videos accepts. A single file's data root is its folder, and the file is taken whatever its extension.
    /// </summary>
    /// <param name="path">A folder or a video file.</param>
    /// <param name="extensions">Extensions to include when <paramref name="path"/> is a folder; default <see cref="DefaultExtensions"/>.</param>
    /// <exception cref="DirectoryNotFoundException">Neither a folder nor a file exists at <paramref name="path"/>.</exception>
    /// <exception cref="DatasetException">The folder holds no video.</exception>
    public static VideoDataset FromPath(string path, IEnumerable<string>? extensions = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = Path.GetFullPath(path);
        if (File.Exists(full))
        {
            return new VideoDataset(Path.GetDirectoryName(full)!, [new VideoItem(full)], [], []);
        }

        if (!Directory.Exists(full))
        {
            throw new DirectoryNotFoundException($"Neither a video file nor a data folder exists at '{full}'.");
        }

        return FromFolder(full, extensions);
    }

    /// <summary>A folder of class folders: every subfolder is a class (sorted by name), every video inside it (recursively) an example.</summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="DatasetException">No class folder, or a class folder without videos.</exception>
    public static VideoDataset FromClassFolders(string root, IEnumerable<string>? extensions = null)
    {
        string full = RequireDirectory(root);
        var allowed = new HashSet<string>(extensions ?? DefaultExtensions, StringComparer.OrdinalIgnoreCase);
        var classes = Directory.GetDirectories(full).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        if (classes.Count == 0)
        {
            throw new DatasetException($"'{full}' holds no class folders.");
        }

        // One search of the whole root, so that a file reached through two class folders (links) counts once.
        var scan = VideoFiles.Scan(full, true, allowed);
        var labels = classes.Select((name, label) => (name!, label)).ToDictionary(c => c.Item1, c => c.label, StringComparer.Ordinal);
        string ClassOf(string file) => Path.GetRelativePath(full, file).Split(Path.DirectorySeparatorChar)[0];
        var items = scan.Videos.Where(f => labels.ContainsKey(ClassOf(f))).Select(f => new VideoItem(f, labels[ClassOf(f)])).OrderBy(i => i.Label).ThenBy(i => i.Path, StringComparer.Ordinal).ToList();
        foreach (string name in classes!)
        {
            if (!items.Any(i => i.Label == labels[name!]))
            {
                throw new DatasetException($"Class folder '{name}' under '{full}' holds no videos.");
            }
        }

        return new VideoDataset(full, items, classes!, [], leftOut: [.. scan.LeftOut.Where(f => labels.ContainsKey(ClassOf(f)))], scan: scan);
    }

    /// <summary>
    /// A Kinetics-style CSV (<c>label,youtube_id,time_start,time_end,split[,is_cc]</c>, header row optional) with the
    /// usual file naming <c>{youtube_id}_{time_start:000000}_{time_end:000000}</c> and any video extension, found under
    /// <c>root/{label}/</c>, <c>root/{split}/{label}/</c> or <c>root/</c> (labels may use spaces or underscores).
    /// </summary>
    /// <param name="csvPath">The CSV file.</param>
    /// <param name="root">The video root.</param>
    /// <param name="split">Keep only rows of this split (e.g. "train"), or null for all.</param>
    /// <param name="skipMissing">Drop rows whose video is missing instead of throwing.</param>
    /// <exception cref="FileNotFoundException">The CSV does not exist.</exception>
    /// <exception cref="DatasetException">A malformed row, or missing videos.</exception>
    public static VideoDataset FromKineticsCsv(string csvPath, string root, string? split = null, bool skipMissing = false)
    {
        string csv = RequireFile(csvPath);
        string full = RequireDirectory(root);
        var rows = new List<(string Label, string Id, string Split, string Stem)>();
        int lineNumber = 0;
        foreach (string raw in File.ReadLines(csv))
        {
            lineNumber++;
            string line = raw.Trim();
            if (line.Length == 0 || (lineNumber == 1 && line.StartsWith("label,", StringComparison.OrdinalIgnoreCase)))
            {
                continue;
            }

            var cells = SplitCsv(line);
            if (cells.Count < 5 || !int.TryParse(cells[2], NumberStyles.Integer, CultureInfo.InvariantCulture, out int start)
                || !int.TryParse(cells[3], NumberStyles.Integer, CultureInfo.InvariantCulture, out int end))
            {
                throw new DatasetException($"'{csv}' line {lineNumber}: expected label,youtube_id,time_start,time_end,split, got '{line}'.");
            }

            if (split is null || string.Equals(cells[4], split, StringComparison.OrdinalIgnoreCase))
            {
                rows.Add((cells[0], cells[1], cells[4], string.Create(CultureInfo.InvariantCulture, $"{cells[1]}_{start:000000}_{end:000000}")));
            }
        }

        var classes = rows.Select(r => r.Label).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        var index = classes.Select((c, i) => (c, i)).ToDictionary(x => x.c, x => x.i, StringComparer.Ordinal);
        var found = new List<VideoItem>();
        var missing = new List<string>();
        foreach (var row in rows)
        {
            string? path = FindKineticsFile(full, row.Label, row.Split, row.Stem);
            if (path is null)
            {
                missing.Add($"{row.Label}/{row.Stem}");
            }
            else
            {
                found.Add(new VideoItem(path, index[row.Label]));
            }
        }

        return Finish(full, found, classes, missing, skipMissing, csv);
    }

    /// <summary>
    /// UCF101/HMDB51-style split lists: <paramref name="classIndexPath"/> lines "index name" (1-based), and a list whose
    /// lines are "Class/video.avi [index]" relative to <paramref name="root"/> (train lists carry the index, test lists do
    /// not; the class then comes from the folder).
    /// </summary>
    /// <exception cref="FileNotFoundException">A list does not exist.</exception>
    /// <exception cref="DatasetException">A malformed line, an unknown class, or missing videos.</exception>
    public static VideoDataset FromSplitList(string root, string classIndexPath, string listPath, bool skipMissing = false)
    {
        string full = RequireDirectory(root);
        string classInd = RequireFile(classIndexPath);
        string list = RequireFile(listPath);
        var byIndex = new SortedDictionary<int, string>();
        int n = 0;
        foreach (string raw in File.ReadLines(classInd))
        {
            n++;
            string line = raw.Trim();
            if (line.Length == 0)
            {
                continue;
            }

            var parts = line.Split(' ', 2, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (parts.Length != 2 || !int.TryParse(parts[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out int idx) || idx < 1 || !byIndex.TryAdd(idx, parts[1]))
            {
                throw new DatasetException($"'{classInd}' line {n}: expected '<index> <class>' with unique indices from 1, got '{line}'.");
            }
        }

        var classes = byIndex.Values.ToList();
        if (byIndex.Keys.Last() != classes.Count)
        {
            throw new DatasetException($"'{classInd}': class indices must run from 1 to {classes.Count} without gaps.");
        }

        var byName = classes.Select((c, i) => (c, i)).ToDictionary(x => x.c, x => x.i, StringComparer.OrdinalIgnoreCase);
        var found = new List<VideoItem>();
        var missing = new List<string>();
        n = 0;
        foreach (string raw in File.ReadLines(list))
        {
            n++;
            string line = raw.Trim();
            if (line.Length == 0)
            {
                continue;
            }

            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            string relative = parts[0].Replace('\\', '/');
            int label;
            if (parts.Length >= 2)
            {
                if (!int.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out int idx) || !byIndex.ContainsKey(idx))
                {
                    throw new DatasetException($"'{list}' line {n}: class index '{parts[1]}' is not in '{classInd}'.");
                }

                label = idx - 1;
            }
            else
            {
                string folder = relative.Contains('/', StringComparison.Ordinal) ? relative[..relative.IndexOf('/', StringComparison.Ordinal)] : string.Empty;
                if (!byName.TryGetValue(folder, out label))
                {
                    throw new DatasetException($"'{list}' line {n}: the class folder '{folder}' of '{relative}' is not in '{classInd}'.");
                }
            }

            string path = ResolveInside(full, relative, list, n);
            if (OriginalOrPrepared(path) is { } existing)
            {
                found.Add(new VideoItem(existing, label));
            }
            else
            {
                missing.Add(relative);
            }
        }

        return Finish(full, found, classes, missing, skipMissing, list);
    }

    /// <summary>A plain list of paths (absolute, or relative to <paramref name="root"/>), optionally labelled.</summary>
    /// <param name="paths">The videos.</param>
    /// <param name="labels">One label per path, or null.</param>
    /// <param name="classes">Class names for the labels, or null.</param>
    /// <param name="root">The root for relative paths (default: the current folder).</param>
    /// <param name="skipMissing">Drop missing files instead of throwing.</param>
    /// <exception cref="ArgumentException">Labels and paths differ in number, or a label is out of range.</exception>
    /// <exception cref="DatasetException">Missing files (without <paramref name="skipMissing"/>) or no videos.</exception>
    public static VideoDataset FromPaths(IEnumerable<string> paths, IEnumerable<int>? labels = null, IEnumerable<string>? classes = null, string? root = null, bool skipMissing = false)
    {
        ArgumentNullException.ThrowIfNull(paths);
        string full = Path.GetFullPath(root ?? Directory.GetCurrentDirectory());
        var list = paths.ToList();
        var labelList = labels?.ToList();
        var classList = classes?.ToList() ?? [];
        if (labelList is not null && labelList.Count != list.Count)
        {
            throw new ArgumentException($"{labelList.Count} labels for {list.Count} paths.", nameof(labels));
        }

        if (labelList is not null && classList.Count > 0 && labelList.Any(l => l < 0 || l >= classList.Count))
        {
            throw new ArgumentException($"Labels must lie in [0, {classList.Count}).", nameof(labels));
        }

        if (labelList is not null && classList.Count == 0 && labelList.Count > 0)
        {
            classList = [.. Enumerable.Range(0, labelList.Max() + 1).Select(i => i.ToString(CultureInfo.InvariantCulture))];
        }

        var found = new List<VideoItem>();
        var missing = new List<string>();
        for (int i = 0; i < list.Count; i++)
        {
            string path = Path.IsPathRooted(list[i]) ? Path.GetFullPath(list[i]) : ResolveInside(full, list[i], "the path list", i + 1);
            if (File.Exists(path))
            {
                found.Add(new VideoItem(path, labelList?[i] ?? -1));
            }
            else
            {
                missing.Add(list[i]);
            }
        }

        return Finish(full, found, classList, missing, skipMissing, "the path list", hasDataRoot: root is not null);
    }

    /// <summary>
    /// A fixed train/test split of a labelled set, the same on every machine: within each class, the videos in ordinal
    /// order of their paths are taken in groups of <paramref name="group"/> consecutive videos (clips cut from one
    /// recording, or a clip and its mirror image, stay on one side), and every <paramref name="testEvery"/>-th group,
    /// counting from the last of the first <paramref name="testEvery"/>, goes to the test set. With the defaults a third of
    /// each class is tested.
    /// </summary>
    /// <param name="testEvery">One group in this many is tested (at least 2). Default 3.</param>
    /// <param name="group">Consecutive videos kept together (at least 1). Default 1.</param>
    /// <returns>The training and test sets (same classes).</returns>
    /// <exception cref="InvalidOperationException">The set has no labels.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range.</exception>
    /// <exception cref="DatasetException">A class has too few videos to give both sets one group.</exception>
    public (VideoDataset Train, VideoDataset Test) SplitInterleaved(int testEvery = 3, int group = 1)
    {
        if (Classes.Count == 0)
        {
            throw new InvalidOperationException($"The set under '{Root}' has no labels to split by.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(testEvery, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(group, 1);
        var train = new List<int>();
        var test = new List<int>();
        for (int c = 0; c < Classes.Count; c++)
        {
            var members = Enumerable.Range(0, Count).Where(i => Items[i].Label == c).OrderBy(i => Items[i].Path, StringComparer.Ordinal).ToList();
            int groups = (members.Count + group - 1) / group;
            if (groups < testEvery)
            {
                throw new DatasetException($"Class '{Classes[c]}' has {members.Count} videos: fewer than {testEvery} groups of {group}, so one of the train and test sets would have none of it.");
            }

            for (int k = 0; k < members.Count; k++)
            {
                ((k / group) % testEvery == testEvery - 1 ? test : train).Add(members[k]);
            }
        }

        return (Subset(train.Order()), Subset(test.Order()));
    }

    /// <summary>The videos at the given indices, as a new data set with the same classes.</summary>
    public VideoDataset Subset(IEnumerable<int> indices)
    {
        ArgumentNullException.ThrowIfNull(indices);
        return new VideoDataset(Root, [.. indices.Select(i => Items[i])], Classes, [], hasDataRoot: HasDataRoot, scan: ScanNotes);
    }

    /// <summary>The same videos with labels hidden (for pre-training on a labelled set).</summary>
    public VideoDataset Unlabeled() => new(Root, [.. Items.Select(i => i with { Label = -1 })], [], Missing, Rejected, HasDataRoot, LeftOut, ScanNotes);

    /// <summary>
    /// Establishes every video's real frame count with a <see cref="VideoIndex"/> (decoding each file once; unchanged
    /// files come from the cache, by default <see cref="VideoIndex.DefaultFileName"/> in <see cref="Root"/>) and
    /// returns the data set with <see cref="VideoItem.Frames"/> set. Videos with no decodable frame are left out,
    /// named in the log and listed in <see cref="Rejected"/>. Returns this data set when it is already verified.
    /// </summary>
    /// <param name="options">Indexing options; null for the defaults.</param>
    /// <param name="progress">Reports videos done.</param>
    /// <param name="logger">Names bad videos and corrected counts.</param>
    /// <param name="cancellationToken">Stops between videos.</param>
    /// <returns>The verified data set.</returns>
    /// <exception cref="DatasetException">None of the videos decodes.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public VideoDataset Verify(VideoIndexOptions? options = null, IProgress<IndexProgress>? progress = null, ILogger? logger = null, CancellationToken cancellationToken = default)
    {
        if (IsVerified)
        {
            return this;
        }

        logger ??= NullLogger.Instance;
        DataLog.LeftOut(logger, Root, LeftOut);
        DataLog.ScanIssues(logger, Root, Duplicates, NotSearched);

        var watch = System.Diagnostics.Stopwatch.StartNew();
        var index = VideoIndex.Build(Items.Select(i => i.Path), options, HasDataRoot ? Root : null, progress, logger, cancellationToken);
        var kept = new List<VideoItem>(Count);
        var rejected = new List<IndexedVideo>(Rejected);
        for (int i = 0; i < Count; i++)
        {
            var entry = index.Videos[i];
            if (entry.IsUsable)
            {
                kept.Add(Items[i] with { Frames = entry.Frames });
            }
            else
            {
                rejected.Add(entry);
            }
        }

        DataLog.Indexed(logger, Count, index.FromCache, index.CachePath ?? "no cache", rejected.Count - Rejected.Count, index.Videos.Count(v => v.Status == VideoStatus.CountCorrected), watch.Elapsed);
        if (kept.Count == 0)
        {
            throw new DatasetException($"None of the {Count} videos under '{Root}' decodes (first: {rejected[^1].Path}: {rejected[^1].Problem}).");
        }

        return new VideoDataset(Root, kept, Classes, Missing, rejected, HasDataRoot, LeftOut, ScanNotes);
    }

    /// <summary>A short description: count, classes, root.</summary>
    public override string ToString() =>
        $"{Count} videos{(Classes.Count > 0 ? $" in {Classes.Count} classes" : string.Empty)} under {Root}";

    private static VideoDataset Finish(string root, List<VideoItem> found, IReadOnlyList<string> classes, List<string> missing, bool skipMissing, string source, bool hasDataRoot = true)
    {
        if (missing.Count > 0 && !skipMissing)
        {
            var sb = new StringBuilder();
            sb.Append(CultureInfo.InvariantCulture, $"{missing.Count} video(s) named by {source} do not exist under '{root}': ");
            sb.Append(string.Join(", ", missing.Take(ShownMissing)));
            if (missing.Count > ShownMissing)
            {
                sb.Append(CultureInfo.InvariantCulture, $" and {missing.Count - ShownMissing} more");
            }

            sb.Append(" (pass skipMissing: true to drop them).");
            throw new DatasetException(sb.ToString(), missing);
        }

        if (found.Count == 0)
        {
            throw new DatasetException($"{source} names no existing video under '{root}'.", missing);
        }

        return new VideoDataset(root, found, classes, missing, hasDataRoot: hasDataRoot);
    }

    private static string? FindKineticsFile(string root, string label, string split, string stem)
    {
        string[] labelFolders = [label, label.Replace(' ', '_')];
        var folders = labelFolders.SelectMany(l => new[] { Path.Combine(root, l), Path.Combine(root, split, l) }).Append(root).Distinct();
        foreach (string folder in folders)
        {
            foreach (string ext in DefaultExtensions)
            {
                if (OriginalOrPrepared(Path.Combine(folder, stem + ext)) is { } existing)
                {
                    return existing;
                }
            }
        }

        return null;
    }

    /// <summary>
    /// <paramref name="path"/> when it exists, else its prepared copy (cvrl prepare keeps the original's name and adds its
    /// own extension) when that exists, else null: lists and CSVs that name originals work on a prepared folder.
    /// </summary>
    private static string? OriginalOrPrepared(string path) =>
        File.Exists(path) ? path : File.Exists(path + PreparedVideo.Extension) ? path + PreparedVideo.Extension : null;

    private static string ResolveInside(string root, string relative, string source, int line)
    {
        string path = Path.GetFullPath(Path.Combine(root, relative));
        string prefix = root.EndsWith(Path.DirectorySeparatorChar) ? root : root + Path.DirectorySeparatorChar;
        if (!path.StartsWith(prefix, StringComparison.Ordinal))
        {
            throw new DatasetException($"{source} line {line}: '{relative}' resolves outside the data root '{root}'.");
        }

        return path;
    }

    private static List<string> SplitCsv(string line)
    {
        var cells = new List<string>();
        var cell = new StringBuilder();
        bool quoted = false;
        foreach (char c in line)
        {
            if (c == '"')
            {
                quoted = !quoted;
            }
            else if (c == ',' && !quoted)
            {
                cells.Add(cell.ToString().Trim());
                cell.Clear();
            }
            else
            {
                cell.Append(c);
            }
        }

        cells.Add(cell.ToString().Trim());
        return cells;
    }

    private static string RequireDirectory(string root)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(root);
        string full = Path.GetFullPath(root);
        return Directory.Exists(full) ? full.TrimEnd(Path.DirectorySeparatorChar) : throw new DirectoryNotFoundException($"Data folder '{full}' does not exist.");
    }

    private static string RequireFile(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = Path.GetFullPath(path);
        return File.Exists(full) ? full : throw new FileNotFoundException($"List file '{full}' does not exist.", full);
    }
}
