using System.ComponentModel;
using Cvrl.Cli.Infrastructure;
using Cvrl.Embeddings;
using Cvrl.Onnx;
using Cvrl.Video;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Cvrl.Cli.Commands;

/// <summary>Finds the videos of an embedding file most similar to a query video.</summary>
internal sealed class SearchCommand : Command<SearchCommand.Settings>
{
    public sealed class Settings : EncoderSettings
    {
        [CommandArgument(0, "<EMBEDDINGS>")]
        [Description("An embedding file written by 'cvrl embed'.")]
        public string Embeddings { get; init; } = string.Empty;

        [CommandArgument(1, "<VIDEO>")]
        [Description("The query video.")]
        public string Video { get; init; } = string.Empty;

        [CommandOption("-k|--top <K>")]
        [Description("Results to show.")]
        [DefaultValue(5)]
        public int Top { get; init; } = 5;

        public override ValidationResult Validate()
        {
            var baseResult = base.Validate();
            return !baseResult.Successful ? baseResult : Top < 1 ? ValidationResult.Error("--top must be at least 1") : ValidationResult.Success();
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        if (!File.Exists(settings.Embeddings))
        {
            throw new FileNotFoundException($"embedding file '{settings.Embeddings}' does not exist", settings.Embeddings);
        }

        if (!File.Exists(settings.Video))
        {
            throw new FileNotFoundException($"video '{settings.Video}' does not exist", settings.Video);
        }

        var set = EmbeddingSet.Load(settings.Embeddings);
        var options = (VideoEmbedder.OptionsOf(set) ?? new VideoEmbedderOptions()) with { Workers = settings.WorkerCount };
        IReadOnlyList<SearchHit> hits;
        if (settings.IsOnnx)
        {
            using var onnx = settings.LoadOnnx();
            var embedder = new OnnxVideoEmbedder(onnx, new OnnxEmbedderOptions { Views = options.ToTestViewOptions(), Workers = settings.WorkerCount }, settings.Logger);
            embedder.CheckCompatible(set);
            hits = embedder.Search(set, settings.Video, settings.Top);
        }
        else
        {
            var (encoder, description) = settings.CreateEncoder();
            using (encoder)
            {
                settings.Announce(description);
                var embedder = new VideoEmbedder(encoder, options, settings.Logger);
                embedder.CheckCompatible(set);
                hits = embedder.Search(set, settings.Video, settings.Top);
            }
        }

        var table = new Table().AddColumn("rank").AddColumn("similarity").AddColumn("video");
        for (int i = 0; i < hits.Count; i++)
        {
            table.AddRow($"{i + 1}", $"{hits[i].Score:F4}", Markup.Escape(hits[i].Key));
        }

        AnsiConsole.Write(table);
        return 0;
    }
}
