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
/// Makes a training-ready copy of a folder of videos: every video decoded once, resized and stored frame by frame
/// (<see cref="VideoPreparation"/>), with the verified index written in the same pass.
/// </summary>
internal sealed class PrepareCommand : Command<PrepareCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<VIDEOS>")]
        [Description("The original videos: a folder (searched recursively; class folders and list files are kept) or one file.")]
        public string Source { get; init; } = string.Empty;

        [CommandOption("-o|--out <FOLDER>")]
        [Description("The prepared folder (created; a rerun skips what is done and re-prepares changed files).")]
        public string Output { get; init; } = string.Empty;

        [CommandOption("--short-side <PIXELS>")]
        [Description("Resize frames so that their shorter side has this length; 0 keeps the stored size.")]
        [DefaultValue(256)]
        public int ShortSide { get; init; } = 256;

        [CommandOption("--format <FORMAT>")]
        [Description("jpeg (about 15-30 KB per frame at 256 pixels, lossy) or raw (exact, about 350 KB per frame).")]
        [DefaultValue("jpeg")]
        public string Format { get; init; } = "jpeg";

        [CommandOption("--quality <Q>")]
        [Description("JPEG quality, 1 to 100.")]
        [DefaultValue(90)]
        public int Quality { get; init; } = 90;

        [CommandOption("--workers <N>")]
        [Description("Videos prepared in parallel. [grey]Default: one per core[/]")]
        public int? Workers { get; init; }

        [CommandOption("--replace")]
        [Description("The --out folder holds videos prepared from another source: replace them (without it, such a folder is refused and nothing in it changes).")]
        public bool Replace { get; init; }

        [CommandOption("-v|--verbose")]
        [Description("Log every bad video and removed file on standard error as well.")]
        public bool Verbose { get; init; }

        public FrameEncoding Encoding => Format.ToLowerInvariant() switch
        {
            "jpeg" or "jpg" => FrameEncoding.Jpeg,
            "raw" => FrameEncoding.Raw,
            _ => throw new ArgumentException($"--format must be jpeg or raw, not '{Format}'"),
        };

        public PreparationOptions Options() => new()
        {
            Video = new PreparedVideoOptions { ShortSide = ShortSide == 0 ? null : ShortSide, Encoding = Encoding, JpegQuality = Quality },
            Workers = Workers ?? Environment.ProcessorCount,
            ReplaceOtherSource = Replace,
        };

        public override ValidationResult Validate()
        {
            if (string.IsNullOrWhiteSpace(Output))
            {
                return ValidationResult.Error("--out <FOLDER> is required: where the prepared copy goes");
            }

            if (ShortSide < 0)
            {
                return ValidationResult.Error("--short-side must be a positive number of pixels, or 0 to keep the stored size");
            }

            try
            {
                Options().Validate();
            }
            catch (ArgumentException e)
            {
                return ValidationResult.Error(e.Message);
            }

            return ValidationResult.Success();
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        OutputPaths.RequireFolder(settings.Output, "--out");
        VideoSource.RequireExists(settings.Source);

        var report = CliProgress.Run(progress => VideoPreparation.Prepare(
            settings.Source,
            settings.Output,
            settings.Options(),
            new ForwardingProgress<PreparationProgress>(p => progress.Report(new StageProgress("preparing videos", p.Done, p.Total, p.Elapsed))),
            CliLogger.For(settings.Verbose),
            cancellationToken));

        var ci = CultureInfo.InvariantCulture;
        foreach (var bad in report.Bad)
        {
            AnsiConsole.MarkupLine($"[red]bad:[/] {Markup.Escape(Path.GetRelativePath(report.Source, bad.Path))}: {Markup.Escape(bad.Reason)}");
        }

        var unexpected = report.LeftOut.Where(f => !VideoFiles.IsCompanionFile(f)).ToList();
        if (unexpected.Count > 0)
        {
            AnsiConsole.MarkupLine($"[yellow]{unexpected.Count} file(s) left out for their extension[/]: {Markup.Escape(string.Join(", ", unexpected.Take(5).Select(f => Path.GetRelativePath(report.Source, f))))}{(unexpected.Count > 5 ? ", ..." : string.Empty)}");
        }

        double perCore = report.Elapsed.TotalSeconds > 0 ? report.SecondsPrepared / report.Elapsed.TotalSeconds / Math.Max(1, settings.Workers ?? Environment.ProcessorCount) : 0;
        AnsiConsole.MarkupLine(string.Create(ci, $"{report.Videos} videos: {report.Prepared} prepared now, {report.UpToDate} up to date, {report.Bad.Count} bad (left out); {report.Frames:N0} frames, {report.Bytes / 1048576.0:0.#} MiB ({(report.Frames > 0 ? report.Bytes / 1024.0 / report.Frames : 0):0.#} KiB per frame)"));
        if (report.Prepared > 0)
        {
            AnsiConsole.MarkupLine(string.Create(ci, $"prepared {report.SecondsPrepared:0} s of video in {report.Elapsed.TotalSeconds:0.#} s ({perCore:0.#} s of video per second per core)"));
        }

        if (report.Removed.Count > 0)
        {
            AnsiConsole.MarkupLine($"[yellow]removed {report.Removed.Count} prepared file(s) whose original is no longer in the source[/]: {Markup.Escape(string.Join(", ", report.Removed.Take(5)))}{(report.Removed.Count > 5 ? ", ..." : string.Empty)}");
        }

        if (report.CopiedListFiles.Count > 0)
        {
            AnsiConsole.MarkupLine($"copied {report.CopiedListFiles.Count} list file(s): {Markup.Escape(string.Join(", ", report.CopiedListFiles.Take(5)))}");
        }

        AnsiConsole.MarkupLine($"prepared folder: [green]{Markup.Escape(report.Destination)}[/] (index {Markup.Escape(Path.GetFileName(report.IndexPath))}); use it wherever the original folder went");
        return 0;
    }
}
