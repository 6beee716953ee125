using Cvrl.Video;
using System.Diagnostics;
using System.Globalization;
using Cvrl.Augment;
using Cvrl.Augment.Video;
using Cvrl.Data;
using Cvrl.Losses;
using Cvrl.Models;
using Cvrl.Optim;
using Cvrl.Training;
using OpenCvSharp;
using TorchSharp;
using static TorchSharp.torch;
using Scalar = OpenCvSharp.Scalar;

namespace Cvrl.Benchmarks;

/// <summary>
/// Issue 5's benchmark: the trainer's step split into data wait, forward, backward, optimizer and the rest, for a small
/// and a mid-size configuration, next to the model's own step on a fixed in-memory batch in the same run; and resident
/// memory over a long run.
/// </summary>
internal static class TrainerBenchmark
{
    private sealed record Config(string Name, double Width, int Crop, int Frames, int Batch, int Steps);

    public static int Run(string[] args)
    {
        int smallSteps = AugmentBenchmark.Option(args, "--small-steps", 300);
        int midSteps = AugmentBenchmark.Option(args, "--mid-steps", 12);
        torch.set_num_threads(Environment.ProcessorCount);
        string dir = Path.Combine(Path.GetTempPath(), "cvrl-bench-trainer");
        var data = MakeVideos(dir, 48);
        var ci = CultureInfo.InvariantCulture;
        var configs = new[]
        {
            new Config("small: R3D-50 0.25x, 8 x 64 x 64 clips, batch 8", 0.25, 64, 8, 8, smallSteps),
            new Config("mid: R3D-50 1x, 16 x 112 x 112 clips, batch 4", 1.0, 112, 16, 4, midSteps),
        };

        Console.WriteLine("### Trainer (issue 5)");
        Console.WriteLine();
        Console.WriteLine($"Command: `dotnet run -c Release --project benchmarks/Cvrl.Benchmarks -- trainer --small-steps {smallSteps} --mid-steps {midSteps}`  ");
        Console.WriteLine($"Machine: {Machine.Describe()}  ");
        Console.WriteLine("Data: 48 generated 160x120 MJPG videos (64 frames). Trainer: 2 loader workers, prefetch 2, SGD, torch on all cores. " +
                          "Baseline (same run): the same encoder, head, loss and optimizer stepping on one fixed batch already in memory. " +
                          "Seconds per step, averaged after 3 warm-up steps.");
        Console.WriteLine();
        Console.WriteLine("| configuration | data wait | forward | backward | optimizer | other (trainer bookkeeping) | trainer step | model-only step (baseline) | bookkeeping share | data wait share |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|");
        var memoryRows = new List<string>();
        foreach (var config in configs)
        {
            var (timings, rss) = RunTrainer(data, config);
            double baseline = RunBaseline(data, config);
            var t = timings.Skip(3).ToList();
            double wait = t.Average(x => x.DataWait), fwd = t.Average(x => x.Forward), bwd = t.Average(x => x.Backward), opt = t.Average(x => x.Optimizer), other = t.Average(x => x.Other);
            double total = wait + fwd + bwd + opt + other;
            Console.WriteLine(string.Create(ci, $"| {config.Name} | {wait:0.000} | {fwd:0.000} | {bwd:0.000} | {opt:0.000} | {other:0.0000} | {total:0.000} | {baseline:0.000} | {other / total:P1} | {wait / total:P1} |"));
            if (rss.Count > 20)
            {
                var after = rss.Skip(10).ToList();
                double reference = after.Take(10).Average();
                memoryRows.Add(string.Create(ci,
                    $"| {config.Name} | {rss.Count} | {reference:0} | {after.Min():0} | {after.Max():0} | {after.TakeLast(10).Average():0} | {(after.Max() / reference) - 1:P1} |"));
            }
        }

        if (memoryRows.Count > 0)
        {
            Console.WriteLine();
            Console.WriteLine("Resident memory per step (peak within each step, MiB: VmHWM reset before every step), after 10 warm-up steps; " +
                              "the trainer's native heap guard (CvrlTrainerOptions.NativeHeapGrowthLimit, default 10%) is on:");
            Console.WriteLine();
            Console.WriteLine("| configuration | steps | steps 11-20 (reference) | min | max | last 10 | max above reference |");
            Console.WriteLine("|---|---|---|---|---|---|---|");
            memoryRows.ForEach(Console.WriteLine);
        }

        return 0;
    }

    private static (List<StepTimings> Timings, List<double> PeakRssMiB) RunTrainer(VideoDataset data, Config config)
    {
        torch.manual_seed(0);
        using var encoder = ResNet3d.R3d50(config.Width);
        int stepsPerEpoch = data.Count / config.Batch;
        var options = new CvrlTrainerOptions
        {
            Epochs = (config.Steps + stepsPerEpoch - 1) / stepsPerEpoch,
            BatchSize = config.Batch,
            LearningRate = 0.01,
            Workers = 2,
            LogEverySteps = 1,
            Views = new CvrlViewOptions { CropSize = config.Crop, Sampler = new() { FramesPerClip = config.Frames, Stride = 2 } },
        };
        using var trainer = new CvrlTrainer(encoder, options);
        var timings = new List<StepTimings>();
        var rss = new List<double>();
        using var cts = new CancellationTokenSource();
        ResetPeak();
        trainer.Fit(data, new Recorder(p =>
        {
            timings.Add(p.Timings);
            rss.Add(Machine.PeakRssMiB());
            ResetPeak();
            if (p.Step >= config.Steps)
            {
                cts.Cancel();
            }
        }), cts.Token);
        return (timings, rss);
    }

    private static double RunBaseline(VideoDataset data, Config config)
    {
        torch.manual_seed(0);
        using var encoder = ResNet3d.R3d50(config.Width);
        using var head = new ProjectionHead(encoder.FeatureDim);
        var loss = new NtXentLoss();
        using var optimizer = new MomentumSgd(encoder.named_parameters().Select(p => (p.name, p.parameter)).Concat(head.named_parameters().Select(p => ("h." + p.name, p.parameter))));
        optimizer.LearningRate = 0.01;
        var generator = new CvrlViewGenerator(new CvrlViewOptions { CropSize = config.Crop, Sampler = new() { FramesPerClip = config.Frames, Stride = 2 } });
        using var batch = new PretrainLoader(data, generator, new LoaderOptions { BatchSize = config.Batch, Workers = 2 }).ReadEpoch(0).First();
        var times = new List<double>();
        int steps = Math.Min(config.Steps, 20);
        for (int i = 0; i < steps; i++)
        {
            var watch = Stopwatch.StartNew();
            using (var scope = torch.NewDisposeScope())
            {
                optimizer.ZeroGrad();
                long n = batch.View1.shape[0];
                var z = head.call(encoder.call(torch.cat([batch.View1, batch.View2], 0)));
                var output = loss.Compute(z.narrow(0, 0, n), z.narrow(0, n, n));
                _ = output.Loss.item<float>();
                output.Loss.backward();
                optimizer.Step();
            }

            if (i >= 3)
            {
                times.Add(watch.Elapsed.TotalSeconds);
            }
        }

        return times.Average();
    }

    private static void ResetPeak()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    internal static VideoDataset MakeVideos(string dir, int count)
    {
        Directory.CreateDirectory(dir);
        var rng = new Random(3);
        for (int i = 0; i < count; i++)
        {
            string path = Path.Combine(dir, $"v{i:D3}.avi");
            if (File.Exists(path))
            {
                continue;
            }

            using var writer = new VideoFileWriter(path, 160, 120, 25, VideoCodec.Mjpeg);
            using var frame = new Mat(120, 160, MatType.CV_8UC3);
            var bg = new Scalar(rng.Next(256), rng.Next(256), rng.Next(256));
            var fg = new Scalar(rng.Next(256), rng.Next(256), rng.Next(256));
            int dx = rng.Next(-4, 5), x0 = rng.Next(160), y0 = rng.Next(120);
            for (int t = 0; t < 64; t++)
            {
                frame.SetTo(bg);
                Cv2.Circle(frame, new OpenCvSharp.Point(((x0 + (dx * t)) % 160 + 160) % 160, y0), 20, fg, -1);
                writer.WriteFrame(frame);
            }
        }

        return VideoDataset.FromFolder(dir);
    }

    internal sealed class Recorder(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
