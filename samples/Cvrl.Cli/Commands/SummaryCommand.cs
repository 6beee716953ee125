using System.ComponentModel;
using System.Globalization;
using Cvrl.Cli.Infrastructure;
using Cvrl.Models;
using Spectre.Console;
using Spectre.Console.Cli;
using TorchSharp;

namespace Cvrl.Cli.Commands;

/// <summary>Per-layer output shapes, parameters and multiply-accumulates of a 3D-ResNet (and its head), like torchinfo.</summary>
internal sealed class SummaryCommand : Command<SummaryCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--depth <N>")]
        [Description("ResNet depth: 18, 34, 50, 101, 152 or 200.")]
        [DefaultValue(50)]
        public int Depth { get; init; } = 50;

        [CommandOption("--width <X>")]
        [Description("Width multiplier.")]
        [DefaultValue(1.0)]
        public double Width { get; init; } = 1.0;

        [CommandOption("--frames <N>")]
        [Description("Frames of the input clip.")]
        [DefaultValue(16)]
        public int Frames { get; init; } = 16;

        [CommandOption("--size <PIXELS>")]
        [Description("Height and width of the input clip.")]
        [DefaultValue(224)]
        public int Size { get; init; } = 224;

        [CommandOption("--head")]
        [Description("Also summarise the projection head on the encoder's features.")]
        public bool Head { get; init; }

        [CommandOption("--layers")]
        [Description("List every layer, not only the totals per stage.")]
        public bool Layers { get; init; }

        public ResNet3dOptions Architecture => new() { Depth = Depth, WidthMultiplier = Width };

        public override ValidationResult Validate()
        {
            if (Frames < 1 || Size < 16)
            {
                return ValidationResult.Error("--frames must be at least 1 and --size at least 16");
            }

            return DeviceSettings.Checked(() => Architecture.Validate());
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        using var model = ResNet3d.Create(settings.Architecture);
        var summary = ModelSummary.Create(model, 1, 3, settings.Frames, settings.Size, settings.Size);
        Print($"{settings.Architecture.ArchitectureName}, input 1x3x{settings.Frames}x{settings.Size}x{settings.Size}", summary, settings.Layers);
        if (settings.Head)
        {
            using var head = new ProjectionHead(model.FeatureDim);
            head.eval();
            Print($"projection head on {model.FeatureDim} features", ModelSummary.Create(head, 2, model.FeatureDim), layers: true);
        }

        return 0;
    }

    private static void Print(string title, ModelSummary summary, bool layers)
    {
        var table = new Table().Title(Markup.Escape(title)).AddColumns("layer", "type", "output", "parameters", "MACs");
        table.Columns[3].RightAligned();
        table.Columns[4].RightAligned();
        var rows = layers ? summary.Layers : ByStage(summary.Layers);
        foreach (var layer in rows)
        {
            table.AddRow(Markup.Escape(layer.Name), Markup.Escape(layer.Type), string.Join('x', layer.OutputShape), layer.Parameters.ToString("N0", CultureInfo.InvariantCulture), Macs(layer.Macs));
        }

        table.AddRow("[bold]total[/]", string.Empty, string.Join('x', summary.OutputShape), $"[bold]{summary.TotalParameters.ToString("N0", CultureInfo.InvariantCulture)}[/]", $"[bold]{Macs(summary.TotalMacs)}[/]");
        AnsiConsole.Write(table);
    }

    /// <summary>Groups layers by their top-level module (stem, res2..res5, pool, ...), keeping the last output shape.</summary>
    private static List<LayerSummary> ByStage(IReadOnlyList<LayerSummary> layers) =>
        [.. layers.GroupBy(l => l.Name.Split('.')[0]).Select(g => new LayerSummary(g.Key, g.Count() == 1 ? g.First().Type : $"{g.Count()} layers", g.Last().OutputShape, g.Sum(l => l.Parameters), g.Sum(l => l.Macs)))];

    private static string Macs(long macs) => macs >= 1_000_000_000
        ? $"{macs / 1e9:F2} G"
        : macs >= 1_000_000 ? $"{macs / 1e6:F2} M" : macs.ToString("N0", CultureInfo.InvariantCulture);
}
