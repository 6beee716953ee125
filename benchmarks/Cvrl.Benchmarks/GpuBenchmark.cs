using System.Diagnostics;
using System.Globalization;
using Cvrl.Augment;
using Cvrl.Data;
using Cvrl.Models;
using Cvrl.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Benchmarks;

/// <summary>
/// Issue 20's device check (scripts/gpu-check.sh runs it on a lent GPU machine): the R3D-50 training step per precision
/// and batch size, each in a fresh process, next to PyTorch's float32 and bfloat16 autocast on the same device; then a
/// short pre-training through <see cref="CvrlTrainer"/> per precision (decoding, augmentation and the loader included).
/// Runs on the CPU too (<c>--device cpu</c> with small sizes) so the script can be tried without a GPU.
/// </summary>
internal static class GpuBenchmark
{
    public static int Run(string[] args)
    {
        string deviceName = AugmentBenchmark.OptionText(args, "--device", "cuda");
        int[] batches = AugmentBenchmark.OptionText(args, "--batches", "16,64").Split(',').Select(b => int.Parse(b, CultureInfo.InvariantCulture)).ToArray();
        int frames = AugmentBenchmark.Option(args, "--frames", 16);
        int size = AugmentBenchmark.Option(args, "--size", 224);
        int steps = AugmentBenchmark.Option(args, "--steps", 5);
        int pretrainSteps = AugmentBenchmark.Option(args, "--pretrain-steps", 12);
        int pretrainBatch = AugmentBenchmark.Option(args, "--pretrain-batch", 16);
        double width = double.Parse(AugmentBenchmark.OptionText(args, "--width", "1"), CultureInfo.InvariantCulture);
        int threads = Environment.ProcessorCount;
        var ci = CultureInfo.InvariantCulture;

        var device = OpenDevice(deviceName);
        var (autoType, autoReason) = PrecisionPolicy.Resolve(Precision.Auto, device);
        Console.WriteLine("### Mixed precision on a device (issue 20, scripts/gpu-check.sh)");
        Console.WriteLine();
        Console.WriteLine($"Command: `Cvrl.Benchmarks gpu --device {deviceName} --batches {string.Join(',', batches)} --frames {frames} --size {size} --steps {steps} --pretrain-steps {pretrainSteps} --pretrain-batch {pretrainBatch} --width {width.ToString(ci)}`  ");
        Console.WriteLine($"Machine: {Machine.Describe()}; device {deviceName}: {DeviceDescription(device)}  ");
        Console.WriteLine($"Precision.Auto here: {autoType} ({autoReason})");
        Console.WriteLine();
        Console.WriteLine($"Training step: CVRL's R3D-50 {width.ToString(ci)}x, clips of {frames} x {size} x {size}, channels-last-3d, forward, backward and SGD, loss = mean of squared pooled features; " +
            $"median of {steps} steps after one warm-up, each row a fresh process. PyTorch: `benchmarks/Cvrl.Benchmarks/python/r3d_step.py`, the same architecture, autocast = `torch.autocast(\"{device.type.ToString().ToLowerInvariant()}\", dtype=torch.bfloat16)`.");
        Console.WriteLine();
        Console.WriteLine("| batch (clips) | run | ms/step | clips/s | vs Cvrl float32 |");
        Console.WriteLine("|---|---|---|---|---|");
        string python = Machine.Python ?? "";
        foreach (int batch in batches)
        {
            string common = $"--mode train --width {width.ToString(ci)} --batch {batch} --frames {frames} --size {size} --threads {threads} --steps {steps} --device {deviceName}";
            var rows = new List<(string Name, double Seconds)>
            {
                ("Cvrl float32", ModelBenchmark.RunChild($"model-step {common} --precision Float32").Seconds),
                ("Cvrl bfloat16", ModelBenchmark.RunChild($"model-step {common} --precision BFloat16").Seconds),
            };
            if (python.Length > 0)
            {
                try
                {
                    rows.Add(("PyTorch float32", ModelBenchmark.RunPython($"{common} --channels-last").Seconds));
                    rows.Add(("PyTorch bfloat16 autocast", ModelBenchmark.RunPython($"{common} --channels-last --autocast").Seconds));
                }
                catch (InvalidOperationException e)
                {
                    Console.Error.WriteLine($"PyTorch rows left out: {e.Message}");
                    python = "";
                }
            }

            foreach (var (name, seconds) in rows)
            {
                Console.WriteLine(string.Create(ci, $"| {batch} | {name} | {seconds * 1000:0.0} | {batch / seconds:0.0} | {seconds / rows[0].Seconds:0.00}x |"));
            }
        }

        Console.WriteLine();
        Console.WriteLine(Pretraining(device, deviceName, width, frames, size, pretrainSteps, pretrainBatch));
        return 0;
    }

    /// <summary>Opens <paramref name="name"/> ("cpu", "cuda", "cuda:1"), initialising TorchSharp's CUDA backend when asked for.</summary>
    internal static Device OpenDevice(string name)
    {
        var device = torch.device(name);
        if (device.type == DeviceType.CUDA)
        {
            torch.InitializeDeviceType(DeviceType.CUDA);
            if (!torch.cuda.is_available())
            {
                throw new InvalidOperationException($"--device {name}: TorchSharp sees no CUDA device (is LD_LIBRARY_PATH pointing at a CUDA libtorch?).");
            }
        }

        return device;
    }

    /// <summary>Waits for queued device work, so that a stopwatch measures it.</summary>
    internal static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA)
        {
            torch.cuda.synchronize(device);
        }
    }

    private static string DeviceDescription(Device device)
    {
        if (device.type != DeviceType.CUDA)
        {
            return $"{Environment.ProcessorCount} CPU threads, native bfloat16 {(PrecisionPolicy.CpuComputesBFloat16 ? "yes" : "no")}";
        }

        try
        {
            using var process = Process.Start(new ProcessStartInfo("nvidia-smi", ["--query-gpu=name,compute_cap,memory.total,driver_version", "--format=csv,noheader", "-i", Math.Max(0, (int)device.index).ToString(CultureInfo.InvariantCulture)])
            {
                RedirectStandardOutput = true,
                UseShellExecute = false,
            })!;
            string text = process.StandardOutput.ReadToEnd().Trim();
            process.WaitForExit();
            return text.Length > 0 ? text : $"{torch.cuda.device_count()} CUDA device(s)";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return $"{torch.cuda.device_count()} CUDA device(s) (no nvidia-smi)";
        }
    }

    /// <summary>A short pre-training per precision through the trainer, on generated videos; clips/s after warm-up.</summary>
    private static string Pretraining(Device device, string deviceName, double width, int frames, int size, int steps, int batch)
    {
        var ci = CultureInfo.InvariantCulture;
        VideoDataset data;
        try
        {
            var set = SyntheticMotion.Generate(Path.Combine(Path.GetTempPath(), "cvrl-gpu-check-data"), new SyntheticMotionOptions { TrainPerClass = Math.Max(4, (batch + 5) / 6), TestPerClass = 1, Frames = Math.Max(48, frames * 2 + 8), Width = 160, Height = 120, Seed = 1 });
            data = set.Train();
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or Cvrl.Video.VideoDecodeException)
        {
            return $"Short pre-training skipped: OpenCV could not run here ({e.GetBaseException().Message}). Install libgtk-3-0 or run it on a machine that has it.";
        }

        var lines = new List<string>
        {
            $"Short pre-training (CvrlTrainer.Fit on {data.Count} generated 160x120 videos, R3D-50 {width.ToString(ci)}x with the projection head and NT-Xent, batches of {batch} videos = {2 * batch} clips of {frames} x {size} x {size}, stride 2, {Math.Min(Environment.ProcessorCount, 8)} loader workers, SGD; {steps} steps, clips/s over the steps after the first two):",
            "",
            "| precision | clips/s | s/step | data wait share | first loss | last loss |",
            "|---|---|---|---|---|---|",
        };
        foreach (var precision in new[] { Precision.Float32, Precision.BFloat16 })
        {
            torch.manual_seed(0);
            using var encoder = ResNet3d.R3d50(width);
            int stepsPerEpoch = Math.Max(1, data.Count / batch);
            var options = new CvrlTrainerOptions
            {
                Epochs = (steps + stepsPerEpoch - 1) / stepsPerEpoch,
                BatchSize = batch,
                LearningRate = 0.01,
                Workers = Math.Min(Environment.ProcessorCount, 8),
                LogEverySteps = 1,
                Device = deviceName,
                Precision = precision,
                Views = new CvrlViewOptions { CropSize = size, Sampler = new() { FramesPerClip = frames, Stride = 2 } },
            };
            using var trainer = new CvrlTrainer(encoder, options);
            var timings = new List<StepTimings>();
            var losses = new List<double>();
            using var stop = new CancellationTokenSource();
            trainer.Fit(data, new TrainerBenchmark.Recorder(p =>
            {
                timings.Add(p.Timings);
                losses.Add(p.Loss);
                if (p.Step >= steps)
                {
                    stop.Cancel();
                }
            }), stop.Token);
            var measured = timings.Skip(2).ToList();
            if (measured.Count == 0)
            {
                lines.Add($"| {precision} | (fewer than 3 steps ran) | | | | |");
                continue;
            }

            double perStep = measured.Average(t => t.Total);
            double wait = measured.Average(t => t.DataWait);
            lines.Add(string.Create(ci, $"| {precision} | {2 * batch / perStep:0.0} | {perStep:0.000} | {wait / perStep:P0} | {losses[0]:0.000} | {losses[^1]:0.000} |"));
        }

        return string.Join(Environment.NewLine, lines);
    }
}
