using System.ComponentModel;
using Cvrl.Cli.Infrastructure;
using Cvrl.Embeddings;
using Cvrl.Onnx;
using Cvrl.Video;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Cvrl.Cli.Commands;

/// <summary>Embeds every video of a folder and saves the set.</summary>
internal sealed class EmbedCommand : Command<EmbedCommand.Settings>
{
    public sealed class Settings : EncoderSettings
    {
        [CommandArgument(0, "<VIDEOS>")]
        [Description("Folder of videos (searched recursively; a prepared folder too), or one video file.")]
        public string Folder { get; init; } = string.Empty;

        [CommandOption("-o|--out <FILE>")]
        [Description("The embedding file to write.")]
        [DefaultValue("embeddings.cvrlemb")]
        public string Output { get; init; } = "embeddings.cvrlemb";

        [CommandOption("--clips <N>")]
        [Description("Evenly spaced clips averaged per video. [grey]Default: 10[/]")]
        public int? Clips { get; init; }

        [CommandOption("--crops <N>")]
        [Description("Crops per clip: 1 (centre) or 3 (along the long side). [grey]Default: 1[/]")]
        public int? Crops { get; init; }

        [CommandOption("--frames <N>")]
        [Description("Frames per clip. [grey]Default: the encoder's (a checkpoint's training clips, an ONNX model's metadata), else 32[/]")]
        public int? Frames { get; init; }

        [CommandOption("--stride <N>")]
        [Description("Stride between frames. [grey]Default: the encoder's, else 2[/]")]
        public int? Stride { get; init; }

        [CommandOption("--size <PIXELS>")]
        [Description("Short side and crop size. [grey]Default: the encoder's, else 256[/]")]
        public int? Size { get; init; }

        [CommandOption("--batch <N>")]
        [Description("Clips per forward pass.")]
        [DefaultValue(8)]
        public int Batch { get; init; } = 8;

        /// <summary>Whether any view option was given (then it overrides the encoder's geometry field by field).</summary>
        public bool HasViewOverrides => Clips is not null || Crops is not null || Frames is not null || Stride is not null || Size is not null;

        /// <summary>The views: <paramref name="encoder"/>'s geometry with the options given here laid over it.</summary>
        public TestViewOptions Views(TestViewOptions encoder) => encoder with
        {
            Clips = Clips ?? encoder.Clips,
            Crops = Crops ?? encoder.Crops,
            FramesPerClip = Frames ?? encoder.FramesPerClip,
            Stride = Stride ?? encoder.Stride,
            ShortSide = Size ?? encoder.ShortSide,
            CropSize = Size ?? encoder.CropSize,
        };

        public VideoEmbedderOptions EmbedderOptions(TestViewOptions views) => new()
        {
            Clips = views.Clips,
            Crops = views.Crops,
            FramesPerClip = views.FramesPerClip,
            Stride = views.Stride,
            ShortSide = views.ShortSide,
            CropSize = views.CropSize,
            BatchSize = Batch,
            Workers = WorkerCount,
        };

        public override ValidationResult Validate()
        {
            var baseResult = base.Validate();
            if (!baseResult.Successful)
            {
                return baseResult;
            }

            return Checked(() => EmbedderOptions(Views(new TestViewOptions())).Validate());
        }
    }

    /// <summary>Prints the views an embedding run uses and where they come from.</summary>
    internal static void AnnounceViews(TestViewOptions v, string source) =>
        AnsiConsole.MarkupLine(Markup.Escape($"views: {v.Clips} clip(s) x {v.Crops} crop(s) of {v.FramesPerClip} frames at stride {v.Stride}, short side {v.ShortSide}, crop {v.CropSize} ({source})"));

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        VideoSource.RequireExists(settings.Folder);

        EmbeddingSet set;
        string overridden = settings.HasViewOverrides ? ", with the options given" : string.Empty;
        if (settings.IsOnnx)
        {
            using var onnx = settings.LoadOnnx();
            var probe = new OnnxVideoEmbedder(onnx, new OnnxEmbedderOptions { BatchSize = settings.Batch, Workers = settings.WorkerCount }, settings.Logger);
            var views = settings.Views(probe.Views);
            var embedder = new OnnxVideoEmbedder(onnx, new OnnxEmbedderOptions { Views = views, BatchSize = settings.Batch, Workers = settings.WorkerCount }, settings.Logger);
            AnnounceViews(views, (onnx.ClipFrames is null ? "Cvrl's defaults: the ONNX model records no clip geometry" : "the ONNX model's metadata") + overridden);
            set = CliProgress.Run(progress => embedder.EmbedFolder(settings.Folder, progress: EncoderSettings.Embedding(progress), cancellationToken: cancellationToken));
        }
        else
        {
            var trained = settings.TrainedViews;
            var views = settings.Views(trained ?? new TestViewOptions());
            var (encoder, description) = settings.CreateEncoder();
            using (encoder)
            {
                settings.Announce(description);
                AnnounceViews(views, (trained is null ? "Cvrl's defaults" : "the checkpoint's training geometry") + overridden);
                var embedder = new VideoEmbedder(encoder, settings.EmbedderOptions(views), settings.Logger);
                set = CliProgress.Run(progress => embedder.EmbedFolder(settings.Folder, progress: progress, cancellationToken: cancellationToken));
            }
        }

        set = settings.Source().Stamp(set);
        set.Save(settings.Output);
        int skipped = System.Text.Json.Nodes.JsonNode.Parse(set.Metadata)?["skipped"]?.AsArray().Count ?? 0;
        AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(Path.GetFullPath(settings.Output))}[/]: {set.Count} videos x {set.Dim} dimensions{(skipped > 0 ? $", [yellow]{skipped} skipped[/] (undecodable)" : string.Empty)}; encoder {Markup.Escape(set.ModelFingerprint)}");
        return 0;
    }
}
