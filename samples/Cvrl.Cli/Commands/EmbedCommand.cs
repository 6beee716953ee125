using System.ComponentModel;
using Cvrl.Cli.Infrastructure;
using Cvrl.Embeddings;
using Cvrl.Onnx;
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
        [Description("Evenly spaced clips averaged per video.")]
        [DefaultValue(10)]
        public int Clips { get; init; } = 10;

        [CommandOption("--crops <N>")]
        [Description("Crops per clip: 1 (centre) or 3 (along the long side).")]
        [DefaultValue(1)]
        public int Crops { get; init; } = 1;

        [CommandOption("--frames <N>")]
        [Description("Frames per clip.")]
        [DefaultValue(32)]
        public int Frames { get; init; } = 32;

        [CommandOption("--stride <N>")]
        [Description("Stride between frames.")]
        [DefaultValue(2)]
        public int Stride { get; init; } = 2;

        [CommandOption("--size <PIXELS>")]
        [Description("Short side and crop size.")]
        [DefaultValue(256)]
        public int Size { get; init; } = 256;

        [CommandOption("--batch <N>")]
        [Description("Clips per forward pass.")]
        [DefaultValue(8)]
        public int Batch { get; init; } = 8;

        public VideoEmbedderOptions EmbedderOptions() => new()
        {
            Clips = Clips,
            Crops = Crops,
            FramesPerClip = Frames,
            Stride = Stride,
            ShortSide = Size,
            CropSize = Size,
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

            return Checked(() => EmbedderOptions().Validate());
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        VideoSource.RequireExists(settings.Folder);

        EmbeddingSet set;
        if (settings.IsOnnx)
        {
            using var onnx = settings.LoadOnnx();
            var embedder = new OnnxVideoEmbedder(onnx, new OnnxEmbedderOptions { Views = settings.EmbedderOptions().ToTestViewOptions(), BatchSize = settings.Batch, Workers = settings.WorkerCount }, settings.Logger);
            set = CliProgress.Run(progress => embedder.EmbedFolder(settings.Folder, progress: EncoderSettings.Embedding(progress), cancellationToken: cancellationToken));
        }
        else
        {
            var (encoder, description) = settings.CreateEncoder();
            using (encoder)
            {
                settings.Announce(description);
                var embedder = new VideoEmbedder(encoder, settings.EmbedderOptions(), settings.Logger);
                set = CliProgress.Run(progress => embedder.EmbedFolder(settings.Folder, progress: progress, cancellationToken: cancellationToken));
            }
        }

        set.Save(settings.Output);
        int skipped = System.Text.Json.Nodes.JsonNode.Parse(set.Metadata)?["skipped"]?.AsArray().Count ?? 0;
        AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(Path.GetFullPath(settings.Output))}[/]: {set.Count} videos x {set.Dim} dimensions{(skipped > 0 ? $", [yellow]{skipped} skipped[/] (undecodable)" : string.Empty)}; encoder {Markup.Escape(set.ModelFingerprint)}");
        return 0;
    }
}
