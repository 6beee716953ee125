using Cvrl.Cli.Infrastructure;
using System.ComponentModel;
using System.Diagnostics;
using Cvrl.Augment;
using Cvrl.Augment.Video;
using Cvrl.Models;
using Cvrl.Video;
using OpenCvSharp;
using Spectre.Console;
using Spectre.Console.Cli;
using TorchSharp;
using Scalar = OpenCvSharp.Scalar;

namespace Cvrl.Cli.Commands;

/// <summary>Checks the whole native stack end to end on a generated video.</summary>
internal sealed class DemoCommand : Command<DemoCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--out <DIR>")]
        [Description("Folder for the generated video and contact sheet (default: a new temporary folder).")]
        public string? Output { get; init; }

        [CommandOption("--frames <N>")]
        [Description("Frames in the generated video.")]
        [DefaultValue(64)]
        public int Frames { get; init; } = 64;

        [CommandOption("--seed <SEED>")]
        [Description("Seed for the augmentations.")]
        [DefaultValue(0)]
        public int Seed { get; init; }

        public override ValidationResult Validate() =>
            Frames < 1 ? ValidationResult.Error("--frames must be at least 1") : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        OutputPaths.RequireFolder(settings.Output, "--out");
        TorchNative.EnsureLoaded();
        OpenCvNative.EnsureLoaded();
        string dir = settings.Output ?? Path.Combine(Path.GetTempPath(), "cvrl-demo-" + Environment.ProcessId);
        Directory.CreateDirectory(dir);
        string video = Path.Combine(dir, "demo.avi");

        // 1. Write a video: a coloured disc moving across a gradient.
        var watch = Stopwatch.StartNew();
        using (var writer = new VideoFileWriter(video, 160, 120, 25, VideoCodec.Mjpeg))
        using (var frame = new Mat(120, 160, MatType.CV_8UC3))
        {
            for (int i = 0; i < settings.Frames; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                frame.SetTo(new Scalar(40 + i % 64, 80, 120));
                Cv2.Circle(frame, new OpenCvSharp.Point(10 + (i * 140 / Math.Max(1, settings.Frames - 1)), 60), 18, new Scalar(30, 200, 250), -1);
                writer.WriteFrame(frame);
            }
        }

        AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(video)}[/]: {settings.Frames} frames, 160x120, MJPG ({watch.ElapsedMilliseconds} ms)");

        // 2. Decode it and draw CVRL's two views.
        using var reader = VideoReader.Open(video);
        AnsiConsole.MarkupLine($"decoded: codec {reader.Info.Codec}, {reader.Info.Width}x{reader.Info.Height}, {reader.FrameCount} frames at {reader.Info.FramesPerSecond:0.#} fps");
        var generator = new CvrlViewGenerator(new CvrlViewOptions { CropSize = 112 });
        using var views = generator.Generate(reader, settings.Seed, 0, 0);
        AnsiConsole.MarkupLine($"view 1: frames {Markup.Escape(views.Clips.First.ToString())}; {Markup.Escape(views.Plan1.ToString())}");
        AnsiConsole.MarkupLine($"view 2: frames {Markup.Escape(views.Clips.Second.ToString())}; {Markup.Escape(views.Plan2.ToString())}");
        string sheet = Path.Combine(dir, "views.png");
        ContactSheet.Write(sheet, views, "cvrl demo: two CVRL views");
        AnsiConsole.MarkupLine($"contact sheet: [green]{Markup.Escape(sheet)}[/]");

        // 3. A 3D convolution over the batch of both views [2, 3, 16, 112, 112].
        using var scope = torch.NewDisposeScope();
        var batch = torch.stack([views.View1, views.View2]);
        using var conv = torch.nn.Conv3d(3, 8, 3, stride: 2, padding: 1);
        watch.Restart();
        var output = conv.call(batch);
        var shape = string.Join("x", output.shape);
        AnsiConsole.MarkupLine($"conv3d 3->8, kernel 3, stride 2: input {string.Join("x", batch.shape)} -> output {shape}, mean {output.mean().item<float>():0.0000}, std {output.std().item<float>():0.0000} ({watch.ElapsedMilliseconds} ms)");
        AnsiConsole.MarkupLine($"TorchSharp native fix-up: {Markup.Escape(TorchNative.FixupStatus ?? "not run")}");
        return 0;
    }
}
