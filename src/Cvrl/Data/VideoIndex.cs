using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Cvrl.Augment.Video;
using Cvrl.Video;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cvrl.Data;

/// <summary>What indexing found out about a video.</summary>
public enum VideoStatus
{
    /// <summary>Decodes; the container's frame count was right.</summary>
    Ok,

    /// <summary>Decodes, but the container claims another number of frames (or none): the verified count is used.</summary>
    CountCorrected,

    /// <summary>No frame decodes (or the file cannot be opened): left out of training, evaluation and embedding.</summary>
    Bad,
}

/// <summary>One video as the index knows it.</summary>
public sealed record IndexedVideo
{
    /// <summary>Full path of the file.</summary>
    public required string Path { get; init; }

    /// <summary>File size in bytes when it was indexed (part of the cache key).</summary>
    public long SizeBytes { get; init; }

    /// <summary>Last write time (UTC) when it was indexed (part of the cache key).</summary>
    public DateTime ModifiedUtc { get; init; }

    /// <summary>Frames that decode, counted by decoding the whole file; 0 for a bad video.</summary>
    public int Frames { get; init; }

    /// <summary>The frame count the container claims (can be 0, negative or wrong).</summary>
    public long ClaimedFrames { get; init; }

    /// <summary>Frame rate the container reports (0 when unknown).</summary>
    public double FramesPerSecond { get; init; }

    /// <summary>Frame width in pixels.</summary>
    public int Width { get; init; }

    /// <summary>Frame height in pixels.</summary>
    public int Height { get; init; }

    /// <summary>The verdict.</summary>
    public VideoStatus Status { get; init; }

    /// <summary>Why a video is bad, or how its count was corrected; null when <see cref="VideoStatus.Ok"/>.</summary>
    public string? Problem { get; init; }

    /// <summary>
    /// For a bad video, what failed: <see cref="VideoDecodeFailure.Unreadable"/> (permission, I/O), not a video the
    /// decoder can open (<see cref="VideoDecodeFailure.CannotOpen"/>), no decodable frame, too many frames, a timeout,
    /// ...; null for a usable video.
    /// </summary>
    public VideoDecodeFailure? Failure { get; init; }

    /// <summary>
    /// Whether the entry describes a failure that may pass (the file could not be read: permission, I/O). Such entries
    /// are never kept in the cache, so the file is tried again on the next run; a bad entry from an older cache that does
    /// not say what failed is tried again once too.
    /// </summary>
    public bool IsTransient => Status == VideoStatus.Bad && (Failure is VideoDecodeFailure.Unreadable or null);

    /// <summary>
    /// How its frames are reached: <see cref="FrameAccess.Seek"/> where every frame's timestamp lies on the constant-rate
    /// grid at its own position and trial seeks returned the frames decoding forward does, <see cref="FrameAccess.Direct"/>
    /// for a prepared video, <see cref="FrameAccess.Sequential"/> otherwise (see <see cref="AccessNote"/>).
    /// </summary>
    public FrameAccess Access { get; init; }

    /// <summary>Why the video is read sequentially; null otherwise.</summary>
    public string? AccessNote { get; init; }

    /// <summary>The mean key-frame interval in frames (0 when unknown).</summary>
    public int KeyFrameInterval { get; init; }

    /// <summary>What a seek cost when the video was indexed, in frames decoded in the same time (0 when not measured).</summary>
    public int SeekCostFrames { get; init; }

    /// <summary>Whether the video can be used (it has at least one decodable frame).</summary>
    public bool IsUsable => Status != VideoStatus.Bad;

    /// <summary>What readers need of this entry (null for a bad video).</summary>
    public VideoTimeline? Timeline => IsUsable
        ? new VideoTimeline { FrameCount = Frames, Access = Access, KeyFrameInterval = KeyFrameInterval, SeekCostFrames = SeekCostFrames, Note = AccessNote }
        : null;
}

/// <summary>Progress of <see cref="VideoIndex.Build"/>.</summary>
/// <param name="Done">Videos done (indexed or taken from the cache).</param>
/// <param name="Total">Videos to do.</param>
/// <param name="FromCache">Of those, how many came from the cache.</param>
/// <param name="Elapsed">Time since the start.</param>
public sealed record IndexProgress(int Done, int Total, int FromCache, TimeSpan Elapsed);

/// <summary>Options for <see cref="VideoIndex.Build"/>.</summary>
public sealed record VideoIndexOptions
{
    /// <summary>
    /// The cache file; null for <see cref="VideoIndex.DefaultFileName"/> in the data set's root folder. Entries are keyed
    /// by path, size and modification time, so a changed file is indexed again. Default null.
    /// </summary>
    public string? CachePath { get; init; }

    /// <summary>Read and write the cache file (false: index everything, write nothing). Default true.</summary>
    public bool UseCache { get; init; } = true;

    /// <summary>Videos decoded in parallel. Default: one per core.</summary>
    public int Workers { get; init; } = Environment.ProcessorCount;

    /// <summary>Decoding limits (time and frames per file), so a broken file cannot stall indexing.</summary>
    public VideoReaderOptions Reader { get; init; } = new();

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        if (Workers < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(Workers), Workers, "Workers must be at least 1.");
        }

        ArgumentNullException.ThrowIfNull(Reader, nameof(Reader));
        Reader.Validate();
    }
}

/// <summary>
/// The verified facts about a set of video files: for each, the number of frames that really decode (counted by
/// decoding the file once), the frame count its container claims, frame rate, size, a status, and whether seeking in it
/// is exact (<see cref="VideoReader.Measure"/>). Built in parallel, kept in a cache file (JSON, keyed by path, size and
/// modification time), and used by pre-training, evaluation and embedding so that clips are planned from verified frame
/// counts only (a container that claims too many frames, too few, or none can neither produce repeated frames nor hide
/// part of a video) and readers seek only where seeking was verified: every usable entry's
/// <see cref="IndexedVideo.Timeline"/> is registered for the process (<see cref="VideoTimeline.Register"/>).
/// </summary>
/// <example>
/// <code>
/// var videos = VideoDataset.FromFolder("clips/").Verify();   // builds or refreshes clips/.cvrl-index.json
/// foreach (var bad in videos.Rejected) Console.WriteLine($"{bad.Path}: {bad.Problem}");
/// </code>
/// </example>
public sealed class VideoIndex
{
    /// <summary>The cache file's name when it lives in a data set's root folder.</summary>
    public const string DefaultFileName = ".cvrl-index.json";

    /// <summary>
    /// Version 3: seek costs measured correctly. Version 2 caches are read, but their seek-access entries are measured
    /// again (their costs came from a measure that took the time since the last frame for the time per frame, so every
    /// seek looked millions of frames expensive and none was ever made).
    /// </summary>
    private const int FormatVersion = 3;
    private readonly Dictionary<string, IndexedVideo> _byPath;

    private VideoIndex(IReadOnlyList<IndexedVideo> videos, string? cachePath, int fromCache)
    {
        Videos = videos;
        CachePath = cachePath;
        FromCache = fromCache;
        _byPath = videos.ToDictionary(v => v.Path, StringComparer.Ordinal);
    }

    /// <summary>The indexed videos, in the order they were given.</summary>
    public IReadOnlyList<IndexedVideo> Videos { get; }

    /// <summary>The videos with no decodable frame.</summary>
    public IReadOnlyList<IndexedVideo> Bad => [.. Videos.Where(v => !v.IsUsable)];

    /// <summary>The cache file read and written, or null when none was used.</summary>
    public string? CachePath { get; }

    /// <summary>How many entries came from the cache instead of being decoded.</summary>
    public int FromCache { get; }

    /// <summary>The entry for a file (full path), or null.</summary>
    public IndexedVideo? Find(string path) => _byPath.GetValueOrDefault(System.IO.Path.GetFullPath(path));

    /// <summary>
    /// Indexes <paramref name="paths"/>: takes unchanged files from the cache, decodes the others (in parallel) to count
    /// their frames, and writes the cache back (atomically).
    /// </summary>
    /// <param name="paths">The files (full or relative paths).</param>
    /// <param name="options">Options (validated); null for the defaults. Without a cache path the cache goes to <paramref name="defaultFolder"/>.</param>
    /// <param name="defaultFolder">Where the cache lives when <see cref="VideoIndexOptions.CachePath"/> is null (a data set's root); null for no cache.</param>
    /// <param name="progress">Reports videos done.</param>
    /// <param name="logger">Names every bad video and every corrected count.</param>
    /// <param name="cancellationToken">Stops between videos.</param>
    /// <returns>The index.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public static VideoIndex Build(
        IEnumerable<string> paths,
        VideoIndexOptions? options = null,
        string? defaultFolder = null,
        IProgress<IndexProgress>? progress = null,
        ILogger? logger = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(paths);
        options ??= new VideoIndexOptions();
        options.Validate();
        logger ??= NullLogger.Instance;
        var files = paths.Select(System.IO.Path.GetFullPath).ToList();
        string? cachePath = !options.UseCache ? null
            : options.CachePath is not null ? System.IO.Path.GetFullPath(options.CachePath)
            : defaultFolder is not null ? System.IO.Path.Combine(System.IO.Path.GetFullPath(defaultFolder), DefaultFileName)
            : null;
        var cached = cachePath is null ? [] : ReadCache(cachePath, logger, options.Reader.MaxFrames);
        var watch = Stopwatch.StartNew();
        var results = new IndexedVideo[files.Count];
        var todo = new List<int>();
        int fromCache = 0;
        for (int i = 0; i < files.Count; i++)
        {
            var info = new FileInfo(files[i]);
            if (info.Exists && cached.TryGetValue(files[i], out var known) && !known.IsTransient && known.SizeBytes == info.Length && known.ModifiedUtc == info.LastWriteTimeUtc)
            {
                results[i] = known;
                fromCache++;
            }
            else
            {
                todo.Add(i);
            }
        }

        int done = fromCache;
        progress?.Report(new IndexProgress(done, files.Count, fromCache, watch.Elapsed));
        foreach (var (entry, index) in OrderedParallel.Map(todo, (i, _) => (Inspect(files[i], options.Reader, cancellationToken), i), options.Workers, 2 * options.Workers, null, cancellationToken))
        {
            results[index] = entry;
            if (entry.Status == VideoStatus.Bad)
            {
                DataLog.BadVideoIndexed(logger, entry.Path, entry.Problem ?? "no decodable frame");
            }
            else if (entry.Status == VideoStatus.CountCorrected)
            {
                DataLog.CountCorrected(logger, entry.Path, entry.ClaimedFrames, entry.Frames);
            }

            progress?.Report(new IndexProgress(++done, files.Count, fromCache, watch.Elapsed));
        }

        Register(results);
        if (cachePath is not null && todo.Count > 0)
        {
            foreach (var entry in results)
            {
                cached[entry.Path] = entry;
            }

            WriteCache(cachePath, cached.Values.Where(v => !v.IsTransient && File.Exists(v.Path)), logger);
        }

        return new VideoIndex(results, cachePath, fromCache);
    }

    /// <summary>Decodes one file to its end and describes it; never throws for a bad video.</summary>
    internal static IndexedVideo Inspect(string path, VideoReaderOptions reader, CancellationToken cancellationToken = default)
    {
        var file = new FileInfo(path);
        var entry = new IndexedVideo { Path = path, SizeBytes = file.Exists ? file.Length : 0, ModifiedUtc = file.Exists ? file.LastWriteTimeUtc : default };
        try
        {
            // An explicit empty timeline would be wrong here: the point is to measure the file, so no registered one is used.
            using var video = VideoReader.Open(path, reader with { CountFramesOnOpen = false });
            var info = video.Info;
            entry = entry with { ClaimedFrames = info.ReportedFrameCount, FramesPerSecond = double.IsFinite(info.FramesPerSecond) ? info.FramesPerSecond : 0, Width = info.Width, Height = info.Height };
            var timeline = video.Measure(cancellationToken);
            int frames = timeline.FrameCount;
            entry = entry with { Access = timeline.Access, AccessNote = timeline.Note, KeyFrameInterval = timeline.KeyFrameInterval, SeekCostFrames = timeline.SeekCostFrames };
            if (frames == info.ReportedFrameCount)
            {
                return entry with { Frames = frames, Status = VideoStatus.Ok };
            }

            string claim = info.ReportedFrameCount > 0 ? $"the container claims {info.ReportedFrameCount}" : "the container claims no frame count";
            return entry with { Frames = frames, Status = VideoStatus.CountCorrected, Problem = $"{frames} frames decode; {claim}" };
        }
        catch (VideoDecodeException e)
        {
            return entry with { Frames = 0, Status = VideoStatus.Bad, Problem = e.Detail, Failure = e.Failure };
        }
    }

    private static Dictionary<string, IndexedVideo> ReadCache(string path, ILogger logger, int maxFrames)
    {
        var entries = new Dictionary<string, IndexedVideo>(StringComparer.Ordinal);
        if (!File.Exists(path))
        {
            return entries;
        }

        try
        {
            var file = JsonSerializer.Deserialize<CacheFile>(File.ReadAllText(path), CvrlJson.Compact);
            if (file?.Version is not (FormatVersion or 2) || file.Videos is null)
            {
                DataLog.CacheIgnored(logger, path, "another format version");
                return entries;
            }

            string folder = System.IO.Path.GetDirectoryName(path)!;
            foreach (var v in file.Videos)
            {
                if (v is null || string.IsNullOrWhiteSpace(v.Path) || v.Path.Contains('\0', StringComparison.Ordinal))
                {
                    DataLog.CacheEntryInvalid(logger, path, "(an entry)", "it names no file");
                    continue;
                }

                var entry = v with { Path = System.IO.Path.GetFullPath(System.IO.Path.Combine(folder, v.Path)) };
                string? problem = Invalid(entry, maxFrames) ?? (file.Version == 2 && entry.Access == FrameAccess.Seek ? "its seek cost was measured by an earlier Cvrl that measured it wrongly" : null);
                if (problem is not null)
                {
                    if (file.Version != 2)
                    {
                        DataLog.CacheEntryInvalid(logger, path, entry.Path, problem);
                    }

                    continue;
                }

                entries[entry.Path] = entry;
            }
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            DataLog.CacheIgnored(logger, path, e.Message);
        }

        return entries;
    }

    /// <summary>
    /// Why a cached entry cannot be what indexing wrote (a hand-edited or damaged cache), or null when it is consistent:
    /// counts in range, a status that agrees with the counts, a failure only for a bad video, sizes and rates that exist.
    /// </summary>
    internal static string? Invalid(IndexedVideo e, int maxFrames)
    {
        if (!Enum.IsDefined(e.Status) || !Enum.IsDefined(e.Access) || (e.Failure is { } f && !Enum.IsDefined(f)))
        {
            return "an unknown status, access or failure";
        }

        if (e.SizeBytes < 0 || e.ModifiedUtc == default)
        {
            return "no file size or time";
        }

        if (e.Status == VideoStatus.Bad)
        {
            return e.Frames == 0 && e.Failure is not null ? null : "a bad video with frames or without a failure";
        }

        if (e.Frames < 1 || e.Frames > maxFrames)
        {
            return $"{e.Frames} frames";
        }

        if (e.Failure is not null)
        {
            return "a usable video with a failure";
        }

        if ((e.Status == VideoStatus.Ok) != (e.Frames == e.ClaimedFrames))
        {
            return $"status {e.Status} with {e.Frames} frames where the container claims {e.ClaimedFrames}";
        }

        if (e.Width < 1 || e.Height < 1 || !double.IsFinite(e.FramesPerSecond) || e.FramesPerSecond < 0)
        {
            return $"a frame size of {e.Width}x{e.Height} at {e.FramesPerSecond} fps";
        }

        if (e.KeyFrameInterval < 0 || e.KeyFrameInterval > e.Frames || e.SeekCostFrames < 0)
        {
            return $"a key-frame interval of {e.KeyFrameInterval} or a seek cost of {e.SeekCostFrames} frames";
        }

        if ((e.Access == FrameAccess.Direct) != PreparedVideo.IsPrepared(e.Path))
        {
            return $"{e.Access} access for a {(PreparedVideo.IsPrepared(e.Path) ? "prepared" : "video")} file";
        }

        return null;
    }

    /// <summary>Writes <paramref name="entries"/> as the index cache file <paramref name="path"/> and registers their timelines.</summary>
    internal static void Save(string path, IEnumerable<IndexedVideo> entries, ILogger logger)
    {
        var list = entries.ToList();
        Register(list);
        WriteCache(path, list, logger);
    }

    /// <summary>Registers every usable entry's timeline for the process, so that readers of those files find it.</summary>
    private static void Register(IEnumerable<IndexedVideo> entries)
    {
        foreach (var entry in entries)
        {
            if (entry.Timeline is { } timeline)
            {
                VideoTimeline.Register(entry.Path, entry.SizeBytes, entry.ModifiedUtc, timeline);
            }
        }
    }

    private static void WriteCache(string path, IEnumerable<IndexedVideo> entries, ILogger logger)
    {
        string folder = System.IO.Path.GetDirectoryName(path)!;
        var file = new CacheFile
        {
            Version = FormatVersion,
            Videos = [.. entries.OrderBy(e => e.Path, StringComparer.Ordinal).Select(e => e with { Path = VideoFiles.RelativeKey(folder, e.Path) })],
        };
        try
        {
            AtomicFile.Write(path, stream => JsonSerializer.Serialize(stream, file, CvrlJson.Options));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A read-only data folder: the index still works, it is only rebuilt next time.
            DataLog.CacheNotWritten(logger, path, e.Message);
        }
    }

    private sealed record CacheFile
    {
        public int Version { get; init; }

        public List<IndexedVideo>? Videos { get; init; }
    }
}
