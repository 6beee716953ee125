using System.ComponentModel;
using System.Globalization;
using Cvrl.Cli.Infrastructure;
using Cvrl.Models;
using Cvrl.Models.Weights;
using Cvrl.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Cvrl.Cli.Commands;

/// <summary>Imports a model-zoo checkpoint (PySlowFast, pytorchvideo, mmaction2, torchvision) as a Cvrl checkpoint.</summary>
internal sealed class ImportCommand : Command<ImportCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<FILE>")]
        [Description("The zoo's checkpoint (.pyth, .pth, .pt), as downloaded.")]
        public string File { get; init; } = string.Empty;

        [CommandOption("-o|--out <FILE>")]
        [Description("The Cvrl checkpoint to write.")]
        [DefaultValue("model.cvrl")]
        public string Output { get; init; } = "model.cvrl";

        [CommandOption("--from <ZOO>")]
        [Description("slowfast (PySlowFast), pytorchvideo, mmaction2, torchvision, or auto (recognised from the names).")]
        [DefaultValue("auto")]
        public string From { get; init; } = "auto";

        [CommandOption("--classifier")]
        [Description("Keep the checkpoint's classifier (the encoder also gives logits; fine-tuning then needs a backbone import).")]
        public bool Classifier { get; init; }

        [CommandOption("--no-head")]
        [Description("Leave a self-supervised projection head out even where it maps.")]
        public bool NoHead { get; init; }

        [CommandOption("--state-dict <PATH>")]
        [Description("Where the weights are in the file ('/'-joined keys, '' for the top level). [grey]Default: the zoo's convention[/]")]
        public string? StateDict { get; init; }

        [CommandOption("--frames <N>")]
        [Description("Frames per clip the model expects. [grey]Default: the checkpoint's configuration, else the zoo's default[/]")]
        public int? Frames { get; init; }

        [CommandOption("--stride <N>")]
        [Description("Temporal stride the model expects. [grey]Default: as --frames[/]")]
        public int? Stride { get; init; }

        [CommandOption("--size <PIXELS>")]
        [Description("Crop size the model expects. [grey]Default: as --frames[/]")]
        public int? Size { get; init; }

        [CommandOption("--mean <R,G,B>")]
        [Description("Input normalisation mean in [[0, 1]] units (with --std). [grey]Default: the checkpoint's configuration, else the zoo's default[/]")]
        public string? Mean { get; init; }

        [CommandOption("--std <R,G,B>")]
        [Description("Input normalisation standard deviation in [[0, 1]] units (with --mean).")]
        public string? Std { get; init; }

        public ModelZoo Zoo => From.Trim().ToLowerInvariant() switch
        {
            "auto" => ModelZoo.Auto,
            "slowfast" or "pyslowfast" => ModelZoo.PySlowFast,
            "pytorchvideo" => ModelZoo.PyTorchVideo,
            "mmaction2" or "mmaction" => ModelZoo.MmAction2,
            "torchvision" => ModelZoo.Torchvision,
            _ => throw new ArgumentException($"--from must be auto, slowfast, pytorchvideo, mmaction2 or torchvision, got '{From}'", nameof(From)),
        };

        public override ValidationResult Validate()
        {
            if ((Frames is null) != (Stride is null) || (Frames is null) != (Size is null))
            {
                return ValidationResult.Error("--frames, --stride and --size go together: give all three or none");
            }

            if ((Mean is null) != (Std is null))
            {
                return ValidationResult.Error("--mean and --std go together");
            }

            return DeviceSettings.Checked(() => Options().Validate());
        }

        public ZooImportOptions Options() => new()
        {
            From = Zoo,
            KeepClassifier = Classifier,
            KeepProjectionHead = !NoHead,
            StateDictPath = StateDict,
            Clips = Frames is int f ? new ClipGeometry(f, Stride!.Value, Size!.Value) : null,
            InputMean = Mean is null ? null : Values(Mean, "--mean"),
            InputStd = Std is null ? null : Values(Std, "--std"),
        };

        private static double[] Values(string text, string option)
        {
            var parts = text.Split(',', StringSplitOptions.TrimEntries);
            var values = new double[parts.Length];
            for (int i = 0; i < parts.Length; i++)
            {
                if (!double.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]))
                {
                    throw new ArgumentException($"{option} takes numbers separated by commas (one per channel), got '{text}'", option);
                }
            }

            return values;
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        OutputPaths.RequireFile(settings.Output, "--out");
        OutputPaths.RequireNotInput(settings.Output, "--out", (settings.File, "the file to import"));
        if (!File.Exists(settings.File))
        {
            throw new FileNotFoundException($"'{settings.File}' does not exist.", settings.File);
        }

        using var imported = ZooImporter.Import(settings.File, settings.Options());
        var report = imported.Report;
        string source = $"{report.Zoo} checkpoint {Path.GetFileName(settings.File)}";
        CvrlCheckpoint.WriteEncoder(settings.Output, imported.Encoder, imported.Head, source);

        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(report.Zoo.ToString())}[/] checkpoint, weights at '{Markup.Escape(report.StateDictPath)}': {Markup.Escape(report.Architecture)}{(imported.Encoder.IsClassifier ? $", classifier of {imported.Encoder.Options.NumClasses} classes" : string.Empty)}");
        AnsiConsole.MarkupLine($"mapped {report.Mapped.Count} tensors, unused {report.Unused.Count}{(report.Unused.Count > 0 ? " (" + Markup.Escape(report.UnusedSummary) + ")" : string.Empty)}, missing 0");
        AnsiConsole.MarkupLine($"clips: {Markup.Escape(report.Clips.ToString())} ({Markup.Escape(report.ClipsSource)})");
        AnsiConsole.MarkupLine($"input normalisation: mean {string.Join(", ", report.Encoder.InputMean!.Select(v => v.ToString("G4", CultureInfo.InvariantCulture)))}, std {string.Join(", ", report.Encoder.InputStd!.Select(v => v.ToString("G4", CultureInfo.InvariantCulture)))} ({Markup.Escape(report.NormalizationSource)})");
        if (report.Head is { } head)
        {
            AnsiConsole.MarkupLine($"projection head: {head.HiddenLayers} hidden layers of {head.HiddenDim}, output {head.OutputDim}");
        }

        foreach (string note in report.Notes)
        {
            AnsiConsole.MarkupLine($"note: {Markup.Escape(note)}");
        }

        AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(Path.GetFullPath(settings.Output))}[/]: use it with embed, search, probe, knn, finetune, export (--checkpoint) and pretrain --init");
        return 0;
    }
}
