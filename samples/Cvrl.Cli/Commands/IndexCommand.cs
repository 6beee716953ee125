using System.ComponentModel;
using System.Globalization;
using Cvrl.Cli.Infrastructure;
using Cvrl.Data;
using Cvrl.Evaluation;
using Cvrl.Video;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Cvrl.Cli.Commands;

/// <summary>
/// Builds or refreshes the verified video index of a folder and shows what it really holds: one row per video with the
/// frames that decode, the frames the container claims, frame rate, size and status; bad files named.
/// </summary>
internal sealed class IndexCommand : Command<IndexCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<VIDEOS>")]
        [Description("The folder of videos (searched recursively), or one video file.")]
        public string Folder { get; init; } = string.Empty;

        [CommandOption("--extensions <LIST>")]
        [Description("Comma-separated file extensions to include. [grey]Default: the common video extensions[/]")]
        public string? Extensions { get; init; }

        [CommandOption("--no-cache")]
        [Description("Decode every file again and write no cache (by default the index is kept in <FOLDER>/.cvrl-index.json).")]
        public bool NoCache { get; init; }

        [CommandOption("--workers <N>")]
        [Description("Videos decoded in parallel. [grey]Default: one per core[/]")]
        public int? Workers { get; init; }

        [CommandOption("--bad-only")]
        [Description("List only the videos that are bad or whose container count was wrong.")]
        public bool BadOnly { get; init; }

        [CommandOption("-v|--verbose")]
        [Description("Log every corrected count on standard error as well.")]
        public bool Verbose { get; init; }

        public override ValidationResult Validate() =>
            Workers is < 1 ? ValidationResult.Error("--workers must be at least 1") : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var extensions = settings.Extensions?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(e => e.StartsWith('.') ? e : "." + e).ToList();
        VideoSource.RequireExists(settings.Folder);

        var data = VideoDataset.FromPath(settings.Folder, extensions);
        var options = new VideoIndexOptions { UseCache = !settings.NoCache, Workers = settings.Workers ?? Environment.ProcessorCount };
        var index = CliProgress.Run(progress => VideoIndex.Build(
            data.Items.Select(i => i.Path),
            options,
            data.Root,
            new ForwardingProgress<IndexProgress>(p => progress.Report(new StageProgress("indexing videos", p.Done, p.Total, p.Elapsed))),
            CliLogger.For(settings.Verbose),
            cancellationToken));

        var ci = CultureInfo.InvariantCulture;
        var table = new Table().AddColumn("video").AddColumn(new TableColumn("frames").RightAligned()).AddColumn(new TableColumn("claimed").RightAligned())
            .AddColumn(new TableColumn("fps").RightAligned()).AddColumn("size").AddColumn("access").AddColumn("status");
        foreach (var v in index.Videos.Where(v => !settings.BadOnly || v.Status != VideoStatus.Ok))
        {
            string status = v.Status switch
            {
                VideoStatus.Ok => "[green]ok[/]",
                VideoStatus.CountCorrected => "[yellow]count corrected[/]",
                _ => $"[red]bad:[/] {Markup.Escape(v.Problem ?? string.Empty)}{(v.IsTransient ? " (not cached: tried again on the next run)" : string.Empty)}",
            };
            table.AddRow(
                Markup.Escape(Path.GetRelativePath(data.Root, v.Path)),
                v.Frames.ToString(ci),
                v.ClaimedFrames > 0 ? v.ClaimedFrames.ToString(ci) : "none",
                v.FramesPerSecond.ToString("0.##", ci),
                v.Width > 0 ? $"{v.Width}x{v.Height}" : "-",
                v.IsUsable ? v.Access switch
                {
                    FrameAccess.Seek => "seek",
                    FrameAccess.Direct => "direct",
                    _ => $"sequential: {Markup.Escape(v.AccessNote ?? string.Empty)}",
                } : "-",
                status);
        }

        AnsiConsole.Write(table);
        foreach (string file in data.LeftOut.Where(f => !VideoFiles.IsCompanionFile(f)))
        {
            AnsiConsole.MarkupLine($"[yellow]left out (not a video extension):[/] {Markup.Escape(Path.GetRelativePath(data.Root, file))}");
        }

        SkippedVideos.PrintScanIssues([.. data.Duplicates, .. data.NotSearched], data.Root);
        int bad = index.Videos.Count(v => v.Status == VideoStatus.Bad);
        int corrected = index.Videos.Count(v => v.Status == VideoStatus.CountCorrected);
        AnsiConsole.MarkupLine($"{index.Videos.Count} videos: {index.Videos.Count - bad - corrected} ok, {corrected} with a wrong container count (the verified count is used), {bad} bad (left out); {index.Videos.Sum(v => (long)v.Frames).ToString("N0", ci)} frames in all; reached by seeking {index.Videos.Count(v => v.IsUsable && v.Access == FrameAccess.Seek)}, directly {index.Videos.Count(v => v.IsUsable && v.Access == FrameAccess.Direct)}, sequentially {index.Videos.Count(v => v.IsUsable && v.Access == FrameAccess.Sequential)}{(data.LeftOut.Count > 0 ? $"; {data.LeftOut.Count} other file(s) left out for their extension ({data.LeftOut.Count(f => !VideoFiles.IsCompanionFile(f))} not lists, subtitles or notes; --extensions adds more)" : string.Empty)}");
        AnsiConsole.MarkupLine(index.CachePath is null
            ? "no index cache written (--no-cache)"
            : $"index: [green]{Markup.Escape(index.CachePath)}[/] ({index.FromCache} of {index.Videos.Count} from the cache)");
        return bad == index.Videos.Count ? CliErrors.FailureExitCode : 0;
    }
}
