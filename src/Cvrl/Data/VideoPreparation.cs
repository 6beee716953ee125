using System.Diagnostics;
using System.Text.Json;
using Cvrl.Evaluation;
using Cvrl.Video;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cvrl.Data;

/// <summary>Options for <see cref="VideoPreparation.Prepare"/>.</summary>
public sealed record PreparationOptions
{
    /// <summary>How each video is stored: short side (default 256), JPEG or raw frames, JPEG quality, decoding limits.</summary>
    public PreparedVideoOptions Video { get; init; } = new();

    /// <summary>Videos prepared in parallel. Default: one per core.</summary>
    public int Workers { get; init; } = Environment.ProcessorCount;

    /// <summary>Extensions of the videos to prepare; null for <see cref="VideoFiles.DefaultExtensions"/>.</summary>
    public IReadOnlyList<string>? Extensions { get; init; }

    /// <summary>
    /// Copy the small list files of the source (<c>.txt</c>, <c>.csv</c>, <c>.json</c>, <c>.lst</c>, at most 64 MiB
    /// each: class indices, split lists, Kinetics CSVs) to the same relative paths, so that labels and splits carry over.
    /// Default true.
    /// </summary>
    public bool CopyListFiles { get; init; } = true;

    /// <summary>
    /// Prepare into a folder that holds videos prepared from another source, replacing them (their files are removed as
    /// orphans). Default false: such a folder is refused before anything changes, so one data set's prepared copy is never
    /// deleted by preparing another into the same place.
    /// </summary>
    public bool ReplaceOtherSource { get; init; }

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Video, nameof(Video));
        Video.Validate();
        if (Workers < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(Workers), Workers, "Workers must be at least 1.");
        }
    }
}

/// <summary>Progress of <see cref="VideoPreparation.Prepare"/>.</summary>
/// <param name="Done">Videos done (prepared, up to date, or found bad).</param>
/// <param name="Total">Videos in the source.</param>
/// <param name="Prepared">Of those, prepared in this run.</param>
/// <param name="UpToDate">Of those, already prepared from the unchanged original with the same options.</param>
/// <param name="Bad">Of those, not decodable (left out).</param>
/// <param name="SecondsOfVideo">Seconds of video prepared in this run (frames over frame rate).</param>
/// <param name="Elapsed">Time since the start.</param>
public sealed record PreparationProgress(int Done, int Total, int Prepared, int UpToDate, int Bad, double SecondsOfVideo, TimeSpan Elapsed);

/// <summary>What <see cref="VideoPreparation.Prepare"/> did.</summary>
public sealed record PreparationReport
{
    /// <summary>The source folder (or the folder of the single source file).</summary>
    public required string Source { get; init; }

    /// <summary>The prepared folder.</summary>
    public required string Destination { get; init; }

    /// <summary>Videos found in the source.</summary>
    public int Videos { get; init; }

    /// <summary>Videos prepared in this run.</summary>
    public int Prepared { get; init; }

    /// <summary>Videos already prepared from the unchanged original with the same options (skipped).</summary>
    public int UpToDate { get; init; }

    /// <summary>Videos that do not decode, with the reason; left out of the prepared folder.</summary>
    public IReadOnlyList<SkippedVideo> Bad { get; init; } = [];

    /// <summary>Files of the source left out for their extension (list files that were copied are not among them).</summary>
    public IReadOnlyList<string> LeftOut { get; init; } = [];

    /// <summary>List files copied (relative paths).</summary>
    public IReadOnlyList<string> CopiedListFiles { get; init; } = [];

    /// <summary>Prepared files removed because their original is no longer in the source.</summary>
    public IReadOnlyList<string> Removed { get; init; } = [];

    /// <summary>Frames in the prepared folder (all usable videos).</summary>
    public long Frames { get; init; }

    /// <summary>Bytes of frame data in the prepared folder.</summary>
    public long Bytes { get; init; }

    /// <summary>Seconds of video prepared in this run.</summary>
    public double SecondsPrepared { get; init; }

    /// <summary>The verified index written for the prepared folder.</summary>
    public required string IndexPath { get; init; }

    /// <summary>Wall-clock time of the run.</summary>
    public TimeSpan Elapsed { get; init; }
}

/// <summary>
/// Makes a training-ready copy of a data set, once: every video decoded front to back, resized (short side 256 by
/// default) and stored frame by frame as a <see cref="PreparedVideo"/> (<c>.cvrlvid</c>), so that training reads any frame
/// directly instead of decoding forward through a long GOP. Relative paths and class folders are kept (the prepared copy
/// of <c>a/b.mp4</c> is <c>a/b.mp4.cvrlvid</c>), list files are copied, and the verified index is written in the same
/// pass, so that <see cref="VideoDataset"/>, the trainer, the evaluations and the embedders take the prepared folder
/// as they take the original one, with the same labels and splits.
/// </summary>
/// <remarks>
/// Runs in parallel. Resumable: each prepared file appears complete or not at all, a rerun skips files prepared from the
/// unchanged original with the same options, re-prepares changed ones, removes leftovers of an interrupted run and
/// prepared files whose original is gone. Bad originals are named (log and report) and left out; an unchanged bad
/// original is not tried again (the manifest <see cref="ManifestFileName"/> remembers it).
/// </remarks>
/// <example>
/// <code>
/// var report = VideoPreparation.Prepare("kinetics/train", "prepared/train");
/// var videos = VideoDataset.FromClassFolders("prepared/train");   // same classes, frames read directly
/// </code>
/// </example>
public static class VideoPreparation
{
    /// <summary>The manifest kept in the prepared folder (videos found bad, with the original's size and time).</summary>
    public const string ManifestFileName = ".cvrl-prepare.json";

    private const int ManifestVersion = 1;
    private const long MaxListFileBytes = 64L << 20;
    private static readonly HashSet<string> s_listExtensions = new([".txt", ".csv", ".json", ".lst"], StringComparer.OrdinalIgnoreCase);

    /// <summary>Prepares every video of <paramref name="source"/> (a folder, searched recursively, or one file) into <paramref name="destination"/>.</summary>
    /// <param name="source">The original videos: a folder or one file.</param>
    /// <param name="destination">The prepared folder (created; must not be the source folder).</param>
    /// <param name="options">Options (validated); null for the defaults.</param>
    /// <param name="progress">Reports videos done.</param>
    /// <param name="logger">Names bad videos, removed leftovers and what was copied.</param>
    /// <param name="cancellationToken">Stops between frames; what was complete stays, nothing half-written remains.</param>
    /// <returns>What was done.</returns>
    /// <exception cref="DirectoryNotFoundException">The source does not exist.</exception>
    /// <exception cref="ArgumentException">
    /// The destination is the source folder (by any name), is a file, or holds videos prepared from another source (see
    /// <see cref="PreparationOptions.ReplaceOtherSource"/>).
    /// </exception>
    /// <exception cref="FolderInUseException">Another preparation is writing into the destination.</exception>
    /// <exception cref="DatasetException">The source holds no video, or none decodes.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public static PreparationReport Prepare(
        string source,
        string destination,
        PreparationOptions? options = null,
        IProgress<PreparationProgress>? progress = null,
        ILogger? logger = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(source);
        ArgumentException.ThrowIfNullOrWhiteSpace(destination);
        options ??= new PreparationOptions();
        options.Validate();
        logger ??= NullLogger.Instance;
        var watch = Stopwatch.StartNew();
        string sourceFull = Path.GetFullPath(source);
        string outRoot = Path.TrimEndingDirectorySeparator(Path.GetFullPath(destination));
        bool single = File.Exists(sourceFull);
        if (!single && !Directory.Exists(sourceFull))
        {
            throw new DirectoryNotFoundException($"Neither a video file nor a data folder exists at '{sourceFull}'.");
        }

        string root = single ? Path.GetDirectoryName(sourceFull)! : Path.TrimEndingDirectorySeparator(sourceFull);
        if (File.Exists(outRoot))
        {
            throw new ArgumentException($"The destination '{outRoot}' is a file; give a folder.", nameof(destination));
        }

        if (string.Equals(outRoot, root, StringComparison.Ordinal) || FileIdentity.SameFile(outRoot, root) || string.Equals(FileIdentity.Resolve(outRoot), FileIdentity.Resolve(root), StringComparison.Ordinal))
        {
            throw new ArgumentException($"The destination '{outRoot}' is the source folder; prepare into another folder.", nameof(destination));
        }

        // One preparation at a time writes into a folder: a second would delete the first one's partial files.
        using var claim = FolderLock.Acquire(outRoot, "preparing videos", logger);

        // The sources: videos of the folder, without prepared files and never searching the destination (by any name:
        // an output inside the source, or a link to it, would otherwise be searched, and searched again as it grows).
        var scan = VideoFiles.Scan(sourceFull, true, options.Extensions, [outRoot], cancellationToken);
        var sources = scan.Videos.Where(f => !PreparedVideo.IsPrepared(f)).ToList();
        var leftOut = scan.LeftOut.ToList();
        if (sources.Count == 0)
        {
            throw new DatasetException($"No video files to prepare under '{sourceFull}'.");
        }

        string manifestPath = Path.Combine(outRoot, ManifestFileName);
        var manifest = ReadManifest(manifestPath, logger);
        var targets = sources.Select(s => Path.Combine(outRoot, Path.GetRelativePath(root, s) + PreparedVideo.Extension)).ToList();
        RequireSameSource(outRoot, root, manifest, targets, options, cancellationToken);
        foreach (string partial in OwnFiles(outRoot, "*" + PreparedVideo.Extension + ".partial", cancellationToken))
        {
            // Left by a run that was killed while writing: never complete, always safe to remove.
            File.Delete(partial);
        }

        var copied = new List<string>();
        if (options.CopyListFiles)
        {
            foreach (string file in leftOut.Where(f => s_listExtensions.Contains(Path.GetExtension(f)) && new FileInfo(f).Length <= MaxListFileBytes).ToList())
            {
                string relative = Path.GetRelativePath(root, file);
                string target = Path.Combine(outRoot, relative);
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Copy(file, target, overwrite: true);
                copied.Add(VideoFiles.RelativeKey(root, file));
                leftOut.Remove(file);
            }
        }

        var knownBad = manifest.Bad;
        var headers = new PreparedVideoHeader?[sources.Count];
        var bad = new SkippedVideo?[sources.Count];
        var todo = new List<int>();
        int upToDate = 0;
        int badCount = 0;
        for (int i = 0; i < sources.Count; i++)
        {
            var original = new FileInfo(sources[i]);
            string relative = VideoFiles.RelativeKey(root, sources[i]);
            int nameBytes = System.Text.Encoding.UTF8.GetByteCount(Path.GetFileName(targets[i]));
            if (nameBytes > AtomicFile.MaxNameBytes)
            {
                // The copy's name cannot exist on the file system: the video is left out, and the run goes on.
                bad[i] = new SkippedVideo(sources[i], $"its prepared copy's name would be {nameBytes} bytes, more than the {AtomicFile.MaxNameBytes} a file name may have; rename the original");
                badCount++;
                DataLog.BadVideoIndexed(logger, sources[i], bad[i]!.Reason);
            }
            else if (File.Exists(targets[i]) && TryHeader(targets[i]) is { } existing && existing.Matches(original, options.Video))
            {
                headers[i] = existing;
                upToDate++;
            }
            else if (knownBad.TryGetValue(relative, out var entry) && entry.SizeBytes == original.Length && entry.ModifiedUtc == original.LastWriteTimeUtc)
            {
                bad[i] = new SkippedVideo(sources[i], entry.Reason);
                badCount++;
            }
            else
            {
                todo.Add(i);
            }
        }

        int done = sources.Count - todo.Count;
        int prepared = 0;
        double seconds = 0;
        progress?.Report(new PreparationProgress(done, sources.Count, 0, upToDate, badCount, 0, watch.Elapsed));
        try
        {
            var results = OrderedParallel.Map(
                todo,
                (i, _) =>
                {
                    try
                    {
                        return (Index: i, Header: PreparedVideo.Write(sources[i], targets[i], options.Video, cancellationToken), Error: (VideoDecodeException?)null);
                    }
                    catch (VideoDecodeException e)
                    {
                        return (Index: i, Header: (PreparedVideoHeader?)null, Error: e);
                    }
                },
                options.Workers,
                2 * options.Workers,
                null,
                cancellationToken);
            foreach (var (i, header, error) in results)
            {
                if (header is not null)
                {
                    headers[i] = header;
                    prepared++;
                    seconds += header.FramesPerSecond > 0 ? header.Frames / header.FramesPerSecond : 0;
                }
                else
                {
                    bad[i] = new SkippedVideo(sources[i], error!.Detail);
                    badCount++;
                    DataLog.BadVideoIndexed(logger, sources[i], error.Detail);
                    if (File.Exists(targets[i]))
                    {
                        // An earlier copy of a file that no longer decodes is no copy of it.
                        File.Delete(targets[i]);
                    }
                }

                progress?.Report(new PreparationProgress(++done, sources.Count, prepared, upToDate, badCount, seconds, watch.Elapsed));
            }
        }
        finally
        {
            // Whatever happened, remember the bad ones found so far.
            WriteManifest(manifestPath, root, sources, bad, logger);
        }

        var removed = RemoveOrphans(outRoot, targets, logger, cancellationToken);
        var entries = new List<IndexedVideo>();
        for (int i = 0; i < sources.Count; i++)
        {
            if (headers[i] is { } h)
            {
                var file = new FileInfo(targets[i]);
                entries.Add(new IndexedVideo
                {
                    Path = file.FullName,
                    SizeBytes = file.Length,
                    ModifiedUtc = file.LastWriteTimeUtc,
                    Frames = h.Frames,
                    ClaimedFrames = h.Frames,
                    FramesPerSecond = h.FramesPerSecond,
                    Width = h.Width,
                    Height = h.Height,
                    Status = VideoStatus.Ok,
                    Access = FrameAccess.Direct,
                    KeyFrameInterval = 1,
                });
            }
        }

        string indexPath = Path.Combine(outRoot, VideoIndex.DefaultFileName);
        VideoIndex.Save(indexPath, entries, logger);
        var badList = bad.Where(b => b is not null).Select(b => b!).ToList();
        if (entries.Count == 0)
        {
            throw new DatasetException($"None of the {sources.Count} videos under '{sourceFull}' decodes (first: {badList[0].Path}: {badList[0].Reason}).");
        }

        DataLog.LeftOut(logger, root, leftOut);

        var report = new PreparationReport
        {
            Source = root,
            Destination = outRoot,
            Videos = sources.Count,
            Prepared = prepared,
            UpToDate = upToDate,
            Bad = badList,
            LeftOut = leftOut,
            CopiedListFiles = copied,
            Removed = removed,
            Frames = entries.Sum(e => (long)e.Frames),
            Bytes = headers.Where(h => h is not null).Sum(h => h!.DataBytes),
            SecondsPrepared = seconds,
            IndexPath = indexPath,
            Elapsed = watch.Elapsed,
        };
        PreparationLog.Done(logger, report.Videos, report.Prepared, report.UpToDate, report.Bad.Count, outRoot, report.Elapsed);
        return report;
    }

    private static PreparedVideoHeader? TryHeader(string path)
    {
        try
        {
            return PreparedVideo.ReadHeader(path);
        }
        catch (VideoDecodeException)
        {
            return null;
        }
    }

    /// <summary>
    /// Files matching <paramref name="pattern"/> in <paramref name="outRoot"/> and its real subfolders: links are never
    /// followed (a link in the output folder to itself or to its parent would make the walk endless), and unreadable
    /// folders are passed over.
    /// </summary>
    private static IEnumerable<string> OwnFiles(string outRoot, string pattern, CancellationToken cancellationToken)
    {
        var walk = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true, MatchCasing = MatchCasing.CaseSensitive };
        foreach (string file in Directory.EnumerateFiles(outRoot, pattern, walk))
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return file;
        }
    }

    /// <summary>
    /// Refuses to prepare into a folder that holds another source's prepared copy, before anything there changes, unless
    /// <see cref="PreparationOptions.ReplaceOtherSource"/> says to replace it.
    /// </summary>
    private static void RequireSameSource(string outRoot, string root, ManifestContent manifest, List<string> targets, PreparationOptions options, CancellationToken cancellationToken)
    {
        if (options.ReplaceOtherSource || manifest.Source is null || string.Equals(manifest.Source, root, StringComparison.Ordinal))
        {
            return;
        }

        var keep = new HashSet<string>(targets, StringComparer.Ordinal);
        int others = OwnFiles(outRoot, "*" + PreparedVideo.Extension, cancellationToken).Count(f => !keep.Contains(f));
        if (others > 0)
        {
            throw new ArgumentException($"'{outRoot}' holds {others} video(s) prepared from '{manifest.Source}'; preparing '{root}' there would delete them. Prepare into another folder, or replace them on purpose (PreparationOptions.ReplaceOtherSource, cvrl prepare --replace).");
        }
    }

    private static List<string> RemoveOrphans(string outRoot, List<string> targets, ILogger logger, CancellationToken cancellationToken)
    {
        var keep = new HashSet<string>(targets, StringComparer.Ordinal);
        var removed = new List<string>();
        foreach (string file in OwnFiles(outRoot, "*" + PreparedVideo.Extension, cancellationToken).Order(StringComparer.Ordinal).ToList())
        {
            if (!keep.Contains(file))
            {
                File.Delete(file);
                string relative = VideoFiles.RelativeKey(outRoot, file);
                removed.Add(relative);
                PreparationLog.Removed(logger, relative);
            }
        }

        return removed;
    }

    private static ManifestContent ReadManifest(string path, ILogger logger)
    {
        var entries = new Dictionary<string, ManifestEntry>(StringComparer.Ordinal);
        if (!File.Exists(path))
        {
            return new ManifestContent(null, entries);
        }

        try
        {
            var manifest = JsonSerializer.Deserialize<Manifest>(File.ReadAllText(path), CvrlJson.Compact);
            if (manifest?.Version == ManifestVersion && manifest.Bad is not null)
            {
                foreach (var entry in manifest.Bad.Where(e => e?.Path is not null && e.Reason is not null))
                {
                    entries[entry.Path] = entry;
                }

                return new ManifestContent(manifest.Source, entries);
            }
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
        {
            DataLog.CacheIgnored(logger, path, e.Message);
        }

        return new ManifestContent(null, entries);
    }

    private static void WriteManifest(string path, string root, List<string> sources, SkippedVideo?[] bad, ILogger logger)
    {
        var manifest = new Manifest
        {
            Version = ManifestVersion,
            Source = root,
            Bad = [.. sources.Select((s, i) => (s, i)).Where(x => bad[x.i] is not null).Select(x =>
            {
                var file = new FileInfo(x.s);
                return new ManifestEntry(VideoFiles.RelativeKey(root, x.s), file.Exists ? file.Length : 0, file.Exists ? file.LastWriteTimeUtc : default, bad[x.i]!.Reason);
            })],
        };
        try
        {
            AtomicFile.Write(path, stream => JsonSerializer.Serialize(stream, manifest, CvrlJson.Options));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            DataLog.CacheNotWritten(logger, path, e.Message);
        }
    }

    private sealed record ManifestContent(string? Source, Dictionary<string, ManifestEntry> Bad);

    private sealed record Manifest
    {
        public int Version { get; init; }

        /// <summary>The source folder the videos were prepared from (absent in manifests of earlier versions).</summary>
        public string? Source { get; init; }

        public List<ManifestEntry>? Bad { get; init; }
    }

    private sealed record ManifestEntry(string Path, long SizeBytes, DateTime ModifiedUtc, string Reason);
}

/// <summary>Source-generated log messages of <see cref="VideoPreparation"/>.</summary>
internal static partial class PreparationLog
{
    [LoggerMessage(EventId = 410, Level = LogLevel.Information, Message = "Removed {Path}: its original is no longer in the source")]
    public static partial void Removed(ILogger logger, string path);

    [LoggerMessage(EventId = 411, Level = LogLevel.Information, Message = "Prepared {Videos} videos into {Destination} ({Prepared} now, {UpToDate} up to date, {Bad} bad) in {Elapsed}")]
    public static partial void Done(ILogger logger, int videos, int prepared, int upToDate, int bad, string destination, TimeSpan elapsed);
}
