using System.Collections.Concurrent;

namespace Cvrl.Video;

/// <summary>How the frames of a file can be reached exactly.</summary>
public enum FrameAccess
{
    /// <summary>
    /// Only by decoding forward: the file's timestamps do not identify its frames (variable frame rate, frames missing
    /// from a constant-rate grid, an elementary stream without timestamps) or a trial seek returned other pixels.
    /// </summary>
    Sequential,

    /// <summary>
    /// By seeking to an earlier key frame and decoding forward, every landing checked against the constant frame-rate
    /// grid that every frame of the file was seen to lie on.
    /// </summary>
    Seek,

    /// <summary>Any frame directly: a prepared video (<see cref="PreparedVideo"/>) stores every frame on its own.</summary>
    Direct,
}

/// <summary>
/// What one decoding pass over a file established (<see cref="VideoReader.Measure"/>): the frames that really decode,
/// whether seeking returns exactly the frames that decoding forward does, and how far apart its key frames are. Cvrl's
/// video index measures every file once and keeps the result; readers use it to plan clips from the real count and to
/// seek (<see cref="SeekMode.Auto"/>) only where seeking was verified.
/// </summary>
/// <remarks>
/// <para>
/// A timeline can only make reading faster, never change what is read: with <see cref="FrameAccess.Seek"/> every seek
/// is still checked against the timestamp grid and falls back to decoding forward on any doubt.
/// </para>
/// <para>
/// <see cref="Register"/> keeps timelines for the whole process, keyed by the file's full path, size and modification
/// time, so that every reader of an unchanged file finds what its index measured (the loader's worker threads, the
/// evaluation, both embedders) without passing it along; a changed file is not matched.
/// </para>
/// </remarks>
public sealed record VideoTimeline
{
    private static readonly ConcurrentDictionary<string, (long Size, DateTime Modified, VideoTimeline Timeline)> s_known = new(StringComparer.Ordinal);

    /// <summary>The number of frames that decode, counted by decoding the whole file.</summary>
    public required int FrameCount { get; init; }

    /// <summary>How frames can be reached exactly.</summary>
    public FrameAccess Access { get; init; }

    /// <summary>The mean distance between key frames in frames (0 when unknown); sets when seeking pays off.</summary>
    public int KeyFrameInterval { get; init; }

    /// <summary>
    /// What one seek cost when the file was measured, in frames decoded forward in the same time (0 when unknown). A
    /// reader seeks only to frames further ahead than this (unless <see cref="VideoReaderOptions.SeekThreshold"/> is set).
    /// Timing-based: it changes how fast frames are read, never which frames.
    /// </summary>
    public int SeekCostFrames { get; init; }

    /// <summary>Why the file is read sequentially; null otherwise.</summary>
    public string? Note { get; init; }

    /// <summary>
    /// Keeps <paramref name="timeline"/> for the file at <paramref name="path"/> while it has this size and modification
    /// time (see the remarks). Replaces an earlier entry.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="sizeBytes">Its size when it was measured.</param>
    /// <param name="modifiedUtc">Its last write time (UTC) when it was measured.</param>
    /// <param name="timeline">What was measured.</param>
    public static void Register(string path, long sizeBytes, DateTime modifiedUtc, VideoTimeline timeline)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(timeline);
        s_known[Path.GetFullPath(path)] = (sizeBytes, modifiedUtc, timeline);
    }

    /// <summary>The timeline registered for the file, or null when none was or the file has changed since.</summary>
    /// <param name="path">The file.</param>
    public static VideoTimeline? Find(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var file = new FileInfo(Path.GetFullPath(path));
        return file.Exists ? Find(file) : null;
    }

    /// <summary>Forgets every registered timeline.</summary>
    public static void Clear() => s_known.Clear();

    internal static VideoTimeline? Find(FileInfo file) =>
        s_known.TryGetValue(file.FullName, out var entry) && entry.Size == file.Length && entry.Modified == file.LastWriteTimeUtc
            ? entry.Timeline
            : null;
}
