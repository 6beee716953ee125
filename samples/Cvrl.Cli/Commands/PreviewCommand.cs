using Cvrl.Cli.Infrastructure;
using System.ComponentModel;
using Cvrl.Augment;
using Cvrl.Augment.Sampling;
using Cvrl.Augment.Transforms;
using Cvrl.Video;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Cvrl.Cli.Commands;

/// <summary>Writes a contact sheet of the two CVRL views of a video.</summary>
internal sealed class PreviewCommand : Command<PreviewCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<VIDEO>")]
        [Description("The video file.")]
        public string Video { get; init; } = string.Empty;

        [CommandOption("-o|--out <PNG>")]
        [Description("The PNG to write.")]
        [DefaultValue("sheet.png")]
        public string Output { get; init; } = "sheet.png";

        [CommandOption("--seed <SEED>")]
        [Description("Experiment seed.")]
        [DefaultValue(0L)]
        public long Seed { get; init; }

        [CommandOption("--index <N>")]
        [Description("Sample index (different indices give different draws).")]
        [DefaultValue(0L)]
        public long Index { get; init; }

        [CommandOption("--size <PIXELS>")]
        [Description("Crop size of each view.")]
        [DefaultValue(224)]
        public int Size { get; init; } = 224;

        [CommandOption("--frames <N>")]
        [Description("Frames per clip.")]
        [DefaultValue(16)]
        public int Frames { get; init; } = 16;

        [CommandOption("--stride <N>")]
        [Description("Temporal stride in stored frames.")]
        [DefaultValue(2)]
        public int Stride { get; init; } = 2;

        [CommandOption("--per-frame")]
        [Description("Draw augmentation parameters per frame instead of per clip (the ablation).")]
        public bool PerFrame { get; init; }

        public override ValidationResult Validate()
        {
            if (Size < 8)
            {
                return ValidationResult.Error("--size must be at least 8");
            }

            return Frames < 1 || Stride < 1 ? ValidationResult.Error("--frames and --stride must be at least 1") : ValidationResult.Success();
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        OutputPaths.RequireFile(settings.Output, "--out");
        OutputPaths.RequireNotInput(settings.Output, "--out", (settings.Video, "the video"));
        if (!File.Exists(settings.Video))
        {
            throw new FileNotFoundException($"video '{settings.Video}' does not exist", settings.Video);
        }

        var generator = new CvrlViewGenerator(new CvrlViewOptions
        {
            CropSize = settings.Size,
            Sampler = new IntervalSamplerOptions { FramesPerClip = settings.Frames, Stride = settings.Stride },
            Consistency = settings.PerFrame ? TemporalConsistency.PerFrame : TemporalConsistency.PerClip,
        });
        // Plan the clips over the frames that really decode, whatever the container claims.
        var entry = Cvrl.Data.VideoIndex.Build([settings.Video], new Cvrl.Data.VideoIndexOptions { UseCache = false, Workers = 1 }).Videos[0];
        if (!entry.IsUsable)
        {
            throw new Cvrl.Video.VideoDecodeException(entry.Path, entry.Failure ?? Cvrl.Video.VideoDecodeFailure.NoDecodableFrames, entry.Problem ?? "no frame decodes");
        }

        using var views = generator.Generate(settings.Video, settings.Seed, 0, settings.Index, entry.Frames);
        string claim = entry.Status == Cvrl.Data.VideoStatus.CountCorrected ? $" (the container claims {entry.ClaimedFrames})" : string.Empty;
        var (w, h) = ContactSheet.Write(settings.Output, views, $"{Path.GetFileName(settings.Video)}: {views.FrameCount} frames{claim}, seed {settings.Seed}, sample {settings.Index}, gap {views.Clips.Gap}");
        AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(Path.GetFullPath(settings.Output))}[/] ({w}x{h})");
        AnsiConsole.MarkupLine($"view 1: {Markup.Escape(views.Clips.First.ToString())}; {Markup.Escape(views.Plan1.ToString())}");
        AnsiConsole.MarkupLine($"view 2: {Markup.Escape(views.Clips.Second.ToString())}; {Markup.Escape(views.Plan2.ToString())}");
        return 0;
    }
}
