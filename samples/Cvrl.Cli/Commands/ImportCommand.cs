using System.ComponentModel;
using System.Globalization;
using Cvrl.Cli.Infrastructure;
using Cvrl.Models;
using Cvrl.Models.Weights;
using Cvrl.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Cvrl.Cli.Commands;

/// <summary>
/// Imports a model-zoo checkpoint (PySlowFast, pytorchvideo, mmaction2, torchvision) as a Cvrl checkpoint, or, with
/// --inflate, a 2D ImageNet ResNet (ONNX or a torchvision state dict) inflated into a 3D encoder.
/// </summary>
internal sealed class ImportCommand : Command<ImportCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<FILE>")]
        [Description("The zoo's checkpoint (.pyth, .pth, .pt), as downloaded; with --inflate, a 2D ResNet (.onnx, .pth, .pt, .safetensors).")]
        public string File { get; init; } = string.Empty;

        [CommandOption("--inflate")]
        [Description("The file is a 2D ImageNet ResNet (depth 18, 34, 50 or 101): inflate it into a 3D encoder of the same depth, with its input convention (channel order, value range, mean image or mean, std).")]
        public bool Inflate { get; init; }

        [CommandOption("--temporal-kernels <S,T1,T2,T3,T4>")]
        [Description("With --inflate: the stem's temporal kernel, then each stage's. 1,1,1,1,1 computes the 2D network frame by frame. [grey]Default: 5,1,1,3,3 (CVRL's R3D-50, the paper's inflation)[/]")]
        public string? TemporalKernels { get; init; }

        [CommandOption("--preprocess <FILE>")]
        [Description("With --inflate: an ONNX model that prepares the 2D network's input (ML.NET's ResNetPreprocess.onnx). [grey]Default: found beside an ML.NET featurizer's model[/]")]
        public string? Preprocess { get; init; }

        [CommandOption("--input-range <N>")]
        [Description("With --inflate: the pixel range the network's input expects, 1 or 255. [grey]Default: 255 when its preprocessing subtracts means above 1.5, else 1[/]")]
        public double? InputRange { get; init; }

        [CommandOption("--channel-order <ORDER>")]
        [Description("With --inflate: rgb or bgr, for a network whose file does not say. [grey]Default: rgb[/]")]
        public string? ChannelOrder { get; init; }

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
        [Description("Input normalisation mean in [[0, 1]] units (with --std; with --inflate, in --input-range units). [grey]Default: the checkpoint's configuration, else the zoo's default (torchvision's ImageNet values for a 2D state dict)[/]")]
        public string? Mean { get; init; }

        [CommandOption("--std <R,G,B>")]
        [Description("Input normalisation standard deviation (with --mean).")]
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

            if (!Inflate && (TemporalKernels ?? Preprocess ?? ChannelOrder ?? (object?)InputRange) is not null)
            {
                return ValidationResult.Error("--temporal-kernels, --preprocess, --input-range and --channel-order go with --inflate");
            }

            return DeviceSettings.Checked(() =>
            {
                if (Inflate)
                {
                    InflateOptions().Validate();
                }
                else
                {
                    Options().Validate();
                }
            });
        }

        public ImageNetImportOptions InflateOptions()
        {
            var defaults = new ImageNetImportOptions();
            int[]? kernels = TemporalKernels is null ? null : [.. TemporalKernels.Split(',', StringSplitOptions.TrimEntries).Select(k => int.TryParse(k, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v : throw new ArgumentException($"--temporal-kernels takes five whole numbers (stem, then stages 1 to 4), got '{TemporalKernels}'"))];
            if (kernels is not null && kernels.Length != 5)
            {
                throw new ArgumentException($"--temporal-kernels takes five numbers (stem, then stages 1 to 4), got {kernels.Length}");
            }

            return defaults with
            {
                PreprocessingModel = Preprocess,
                InputRange = InputRange,
                InputMean = Mean is null ? null : Values(Mean, "--mean"),
                InputStd = Std is null ? null : Values(Std, "--std"),
                ChannelOrder = ChannelOrder?.Trim().ToLowerInvariant() switch
                {
                    null => null,
                    "rgb" => InputChannelOrder.Rgb,
                    "bgr" => InputChannelOrder.Bgr,
                    _ => throw new ArgumentException($"--channel-order must be rgb or bgr, got '{ChannelOrder}'"),
                },
                StemTemporalKernel = kernels?[0] ?? defaults.StemTemporalKernel,
                StemTemporalStride = kernels is not null && kernels[0] == 1 ? 1 : defaults.StemTemporalStride,
                StageTemporalKernels = kernels?[1..] ?? defaults.StageTemporalKernels,
                Clips = Frames is int f ? new ClipGeometry(f, Stride!.Value, Size!.Value) : null,
            };
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
        OutputPaths.RequireNotInput(settings.Output, "--out", (settings.File, "the file to import"), (settings.Preprocess, "the preprocessing model"));
        if (settings.Inflate)
        {
            return Inflate(settings);
        }

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

    private static int Inflate(Settings settings)
    {
        if (!System.IO.File.Exists(settings.File))
        {
            throw new FileNotFoundException($"'{settings.File}' does not exist.", settings.File);
        }

        using var imported = ImageNetImporter.Import(settings.File, settings.InflateOptions());
        var report = imported.Report;
        var o = imported.Encoder.Options;
        string source = $"{report.Network} from {Path.GetFileName(settings.File)}, inflated";
        CvrlCheckpoint.WriteEncoder(settings.Output, imported.Encoder, null, source);
        var ci = CultureInfo.InvariantCulture;
        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(report.Format)}[/]: {Markup.Escape(report.Network)}");
        int inflated = report.Mapped.Count(m => m.TemporalKernel > 1);
        AnsiConsole.MarkupLine($"mapped {report.Mapped.Count} tensors ({inflated} kernels spread over time), unused {report.Unused.Count}{(report.Unused.Count > 0 ? " (" + Markup.Escape(string.Join(", ", report.Unused.Take(6))) + (report.Unused.Count > 6 ? ", ..." : string.Empty) + ")" : string.Empty)}{(report.FoldedBatchNorms > 0 ? $", {report.FoldedBatchNorms} BatchNorm layers folded in the file rebuilt" : string.Empty)}");
        AnsiConsole.MarkupLine(string.Create(ci, $"inflated into {Markup.Escape(o.ArchitectureName)}: stem temporal kernel {o.StemTemporalKernel} (stride {o.StemTemporalStride}), stage temporal kernels {string.Join(", ", o.StageTemporalKernels!)}"));
        AnsiConsole.MarkupLine($"input convention: {Markup.Escape(o.DescribeInput())} (from {Markup.Escape(report.InputSource)})");
        AnsiConsole.MarkupLine(imported.Encoder.TrainedClips is { } clips
            ? $"clips: {Markup.Escape(clips.ToString())} (as given)"
            : "clips: none recorded (trained on images): embed, probe, knn and finetune use their default views or --frames, --stride, --size");
        foreach (string note in report.Notes)
        {
            AnsiConsole.MarkupLine($"note: {Markup.Escape(note)}");
        }

        AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(Path.GetFullPath(settings.Output))}[/]: use it with embed, search, probe, knn, finetune, export (--checkpoint) and pretrain --init");
        return 0;
    }
}
