using Microsoft.Extensions.Logging;

namespace Cvrl.Data;

/// <summary>Log messages of the data layer (indexing).</summary>
internal static partial class DataLog
{
    [LoggerMessage(EventId = 400, Level = LogLevel.Warning, Message = "Bad video {Path}: {Reason}; it is left out")]
    public static partial void BadVideoIndexed(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 401, Level = LogLevel.Information, Message = "{Path}: {Frames} frames decode, the container claims {Claimed}; using {Frames}")]
    public static partial void CountCorrected(ILogger logger, string path, long claimed, int frames);

    [LoggerMessage(EventId = 402, Level = LogLevel.Warning, Message = "Video index cache {Path} ignored: {Reason}")]
    public static partial void CacheIgnored(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 404, Level = LogLevel.Warning, Message = "Video index cache {Cache}: the entry of {Video} is not valid ({Reason}); the video is measured again")]
    public static partial void CacheEntryInvalid(ILogger logger, string cache, string video, string reason);

    [LoggerMessage(EventId = 403, Level = LogLevel.Warning, Message = "Video index cache {Path} not written: {Reason}")]
    public static partial void CacheNotWritten(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 405, Level = LogLevel.Warning, Message = "{Count} file(s) under {Root} left out for their extension (not a video extension), first: {First}")]
    public static partial void FilesLeftOut(ILogger logger, int count, string root, string first);

    /// <summary>Warns about the files left out for their extension, except lists, subtitles and notes; names the first five.</summary>
    public static void LeftOut(ILogger logger, string root, IEnumerable<string> files)
    {
        var unexpected = files.Where(f => !Cvrl.Video.VideoFiles.IsCompanionFile(f)).ToList();
        if (unexpected.Count > 0)
        {
            FilesLeftOut(logger, unexpected.Count, root, string.Join(", ", unexpected.Take(5).Select(f => Path.GetRelativePath(root, f))));
        }
    }

    [LoggerMessage(EventId = 406, Level = LogLevel.Warning, Message = "{Path} is left out: {Reason}")]
    public static partial void PassedOver(ILogger logger, string path, string reason);

    /// <summary>Names every duplicate name and every path the folder search passed over, once each.</summary>
    public static void ScanIssues(ILogger logger, string root, IEnumerable<Cvrl.Video.ScanIssue> duplicates, IEnumerable<Cvrl.Video.ScanIssue> notSearched)
    {
        foreach (var issue in duplicates.Concat(notSearched))
        {
            PassedOver(logger, Path.GetRelativePath(root, issue.Path), issue.Reason);
        }
    }

    [LoggerMessage(EventId = 404, Level = LogLevel.Information, Message = "Indexed {Videos} videos ({FromCache} from {Cache}): {Bad} bad, {Corrected} with a corrected frame count, in {Elapsed}")]
    public static partial void Indexed(ILogger logger, int videos, int fromCache, string cache, int bad, int corrected, TimeSpan elapsed);
}
