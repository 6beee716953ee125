using System.ComponentModel;
using Cvrl.Cli.Infrastructure;
using Cvrl.Models;
using Cvrl.Models.Onnx;
using Cvrl.Training;
using Spectre.Console;
using Spectre.Console.Cli;
using TorchSharp;

namespace Cvrl.Cli.Commands;

/// <summary>Writes an encoder (and optionally its projection head) as an ONNX model for inference without libtorch.</summary>
internal sealed class ExportCommand : Command<ExportCommand.Settings>
{
    public sealed class Settings : EncoderSettings
    {
        [CommandArgument(0, "[CHECKPOINT]")]
        [Description("A Cvrl checkpoint (from pretrain), or a weight file with --depth/--width. Without it, a freshly initialised encoder (--init-seed) is exported.")]
        public string? File { get; init; }

        [CommandOption("-o|--out <FILE>")]
        [Description("The .onnx file to write (weights above the threshold go to FILE.data beside it).")]
        [DefaultValue("encoder.onnx")]
        public string Output { get; init; } = "encoder.onnx";

        [CommandOption("--head")]
        [Description("Also export the projection head (output 'projection'); needs a Cvrl checkpoint.")]
        public bool Head { get; init; }

        [CommandOption("--external-data <MIB>")]
        [Description("Write the weights to an external data file when they take more than this many MiB (one protobuf file holds at most 2 GiB); 0 always.")]
        [DefaultValue(1024L)]
        public long ExternalDataMiB { get; init; } = 1024;

        [CommandOption("--frames <N>")]
        [Description("Frames per clip to record in the model's metadata. [grey]Default: the checkpoint's[/]")]
        public int? Frames { get; init; }

        [CommandOption("--stride <N>")]
        [Description("Temporal stride to record. [grey]Default: the checkpoint's[/]")]
        public int? Stride { get; init; }

        [CommandOption("--size <PIXELS>")]
        [Description("Short side and crop size to record. [grey]Default: the checkpoint's crop size[/]")]
        public int? Size { get; init; }

        public override string? EncoderFile => File ?? Checkpoint;

        public override ValidationResult Validate()
        {
            var baseResult = base.Validate();
            if (!baseResult.Successful)
            {
                return baseResult;
            }

            if (PrecisionName is not null)
            {
                return ValidationResult.Error("--precision does not apply to export: the ONNX model holds float32 weights and ONNX Runtime computes in float32");
            }

            if (File is not null && Checkpoint is not null)
            {
                return ValidationResult.Error("give the checkpoint either as the argument or with --checkpoint, not both");
            }

            if (ExternalDataMiB < 0)
            {
                return ValidationResult.Error("--external-data must be 0 or more MiB");
            }

            return Checked(() => ExportOptions().Validate());
        }

        /// <summary>The export options: the geometry given here; what is not given the exporter takes from the encoder's training clips.</summary>
        public OnnxExportOptions ExportOptions() => new()
        {
            ExternalDataThreshold = ExternalDataMiB << 20,
            ClipFrames = Frames,
            ClipStride = Stride,
            ShortSide = Size,
            CropSize = Size,
        };
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        OutputPaths.RequireFile(settings.Output, "--out");
        OutputPaths.RequireNotInput(settings.Output, "--out", (settings.EncoderFile, "the checkpoint"));
        string? file = settings.EncoderFile;
        var trained = settings.TrainedState;
        bool isCheckpoint = trained is not null;
        if (settings.Head && !isCheckpoint)
        {
            throw new ArgumentException($"--head needs a Cvrl checkpoint (it holds the projection head); '{file ?? "a fresh encoder"}' is not one");
        }

        var (encoder, description) = settings.CreateEncoder();
        using (encoder)
        {
            settings.Announce(description);
            using var head = settings.Head ? CvrlCheckpoint.LoadHead(file!) : null;
            encoder.to(torch.CPU);
            var result = OnnxExporter.Export(encoder, settings.Output, settings.ExportOptions(), head);
            long modelBytes = new FileInfo(result.ModelPath).Length;
            AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(result.ModelPath)}[/] ({modelBytes / 1048576.0:F1} MiB, {result.Nodes} operators, opset {OnnxExporter.OpsetVersion})");
            if (result.ExternalDataPath is not null)
            {
                AnsiConsole.MarkupLine($"weights in [green]{Markup.Escape(result.ExternalDataPath)}[/] ({new FileInfo(result.ExternalDataPath).Length / 1048576.0:F1} MiB); keep the two files together");
            }

            var (t, h, w) = encoder.MinimumInput;
            AnsiConsole.MarkupLine($"input '{OnnxExporter.InputName}' [[N, {encoder.Options.InputChannels}, T, H, W]] float32 RGB in [[0, 1]], at least {t} x {h} x {w}; outputs {string.Join(", ", result.Outputs.Select(o => $"'{o}'"))}; encoder {result.Fingerprint}");
            return 0;
        }
    }
}
