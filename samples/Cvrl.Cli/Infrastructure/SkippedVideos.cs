using Cvrl.Video;
using Spectre.Console;

namespace Cvrl.Cli.Infrastructure;

/// <summary>
/// Names every video a command left out, once, with the reason, in the command's own output (the library's per-video
/// warnings are shown only with --verbose, so that a file is not named twice).
/// </summary>
internal static class SkippedVideos
{
    /// <summary>Prints one line per skipped video (paths relative to <paramref name="root"/> when given), first occurrence of a path only.</summary>
    public static void Print(IEnumerable<SkippedVideo> skipped, string? root = null)
    {
        foreach (var video in skipped.DistinctBy(v => v.Path, StringComparer.Ordinal))
        {
            string path = root is null ? video.Path : Path.GetRelativePath(root, video.Path);
            string reason = video.Reason.StartsWith($"Cannot decode video '{video.Path}': ", StringComparison.Ordinal) ? video.Reason[$"Cannot decode video '{video.Path}': ".Length..] : video.Reason;
            AnsiConsole.MarkupLine($"[yellow]skipped:[/] {Markup.Escape(path)}: {Markup.Escape(reason)}");
        }
    }

    /// <summary>Prints the names a folder search passed over (links to files already taken, loops, broken links, unreadable folders).</summary>
    public static void PrintScanIssues(IEnumerable<ScanIssue> issues, string root)
    {
        foreach (var issue in issues)
        {
            AnsiConsole.MarkupLine($"[yellow]left out:[/] {Markup.Escape(Path.GetRelativePath(root, issue.Path))}: {Markup.Escape(issue.Reason)}");
        }
    }
}
