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
        // The views the set was made with (null for sets that do not record them: then the encoder's own).
        var options = new EmbeddingOptions { Views = Embedder.ViewsOf(set), Workers = settings.WorkerCount };

        // Without --checkpoint (or --depth/--width), the encoder the set records: the file it was made with, or the same
        // fresh initialisation.
        string? file = settings.EncoderFile;
        var architecture = settings.Architecture;
        long seed = settings.InitSeed;
        if (file is null && settings.Depth is null && settings.Width is null && EncoderSource.Of(set) is { } source)
        {
            if (source.Path is not null)
            {
                if (!File.Exists(source.Path))
                {
                    throw new FileNotFoundException($"'{settings.Embeddings}' was made by the encoder '{source.Path}', which no longer exists; give the same encoder with --checkpoint");
                }

                file = source.Path;
            }

            if (source.Depth is int depth)
            {
                architecture = new Cvrl.Models.ResNet3dOptions { Depth = depth, WidthMultiplier = source.Width ?? 1 };
            }

            seed = source.InitSeed ?? seed;

            AnsiConsole.MarkupLine($"encoder from the embedding file: {Markup.Escape(source.Path ?? $"fresh, seed {seed}")}");
        }

        IReadOnlyList<SearchHit> hits;
        // The query is embedded in the precision the set was made in, unless --precision says otherwise.
        var precision = settings.RequestedPrecision
            ?? ((System.Text.Json.Nodes.JsonNode.Parse(set.Metadata)?["encoder"] as System.Text.Json.Nodes.JsonObject)?["computeType"]?.GetValue<string>() == "BFloat16" ? Cvrl.Models.Precision.BFloat16 : Cvrl.Models.Precision.Float32);
        var (embedder, owner) = EmbedCommand.CreateEmbedder(settings, _ => options, file, architecture, seed, precision);
        using (owner)
        {
            hits = embedder.Search(set, settings.Video, settings.Top);
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
