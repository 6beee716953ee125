using System.Diagnostics;
using System.Globalization;
using Cvrl.Embeddings;
using Cvrl.Models;
using Cvrl.Models.Onnx;
using Cvrl.Onnx;
using Cvrl.Video;
using TorchSharp;

namespace Cvrl.Benchmarks;

/// <summary>
/// Issue 13's benchmark: embedding the same videos with the same encoder through TorchSharp (<see cref="VideoEmbedder"/>)
/// and through ONNX Runtime (<see cref="OnnxVideoEmbedder"/>) at 1 and 2 threads, and ONNX Runtime's optimisation
/// levels and memory options at 1 thread. Each row runs in its own process (so that peak memory is the row's own); it
/// embeds every video once to warm up and then times a second pass. Also reports the native payload of each runtime.
/// </summary>
internal static class OnnxBenchmark
{
    private static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    private static readonly (string Name, string Runtime, int Threads, string Variant)[] Rows =
    [
        ("TorchSharp, 1 thread", "torch", 1, "-"),
        ("ONNX Runtime, 1 thread (optimisation All)", "onnx", 1, "all"),
        ("ONNX Runtime, 1 thread, Extended", "onnx", 1, "extended"),
        ("ONNX Runtime, 1 thread, Basic", "onnx", 1, "basic"),
        ("ONNX Runtime, 1 thread, None", "onnx", 1, "none"),
        ("ONNX Runtime, 1 thread, no memory pattern", "onnx", 1, "no-pattern"),
        ("ONNX Runtime, 1 thread, no CPU arena", "onnx", 1, "no-arena"),
        ("TorchSharp, 2 threads", "torch", 2, "-"),
        ("ONNX Runtime, 2 threads", "onnx", 2, "all"),
    ];

    public static int Run(string[] args)
    {
        int videos = AugmentBenchmark.Option(args, "--videos", 12);
        int clips = AugmentBenchmark.Option(args, "--clips", 5);
        int frames = AugmentBenchmark.Option(args, "--frames", 8);
        int size = AugmentBenchmark.Option(args, "--size", 64);
        int depth = AugmentBenchmark.Option(args, "--depth", 18);
        double width = AugmentBenchmark.Option(args, "--width-percent", 50) / 100.0;
        if (args.Contains("--row"))
        {
            return Row(args, clips, frames, size);
        }

        string dir = Path.Combine(Path.GetTempPath(), $"cvrl-onnx-benchmark-{Environment.ProcessId}");
        try
        {
            return Compare(dir, videos, clips, frames, size, depth, width);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private static int Compare(string dir, int videos, int clips, int frames, int size, int depth, double width)
    {
        TrainerBenchmark.MakeVideos(Path.Combine(dir, "videos"), videos);
        string model = Path.Combine(dir, "encoder.onnx");
        string weights = Path.Combine(dir, "encoder.weights");
        torch.manual_seed(0);
        using (var encoder = ResNet3d.OfDepth(depth, width))
        {
            OnnxExporter.Export(encoder, model);
            Cvrl.Models.Weights.ModelWeights.Save(weights, encoder);
        }

        var results = new List<(string Name, double Seconds, double PerSecond, double PeakMiB, double ForwardMs)>();
        foreach (var (name, runtime, threads, variant) in Rows)
        {
            var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, UseShellExecute = false };
            string[] childArgs =
            [
                typeof(OnnxBenchmark).Assembly.Location, "onnx", "--row", runtime, threads.ToString(Ci), variant, dir,
                "--clips", clips.ToString(Ci), "--frames", frames.ToString(Ci), "--size", size.ToString(Ci),
                "--depth", depth.ToString(Ci), "--width-percent", ((int)(width * 100)).ToString(Ci),
            ];
            foreach (string a in childArgs)
            {
                start.ArgumentList.Add(a);
            }

            using var child = Process.Start(start)!;
            string output = child.StandardOutput.ReadToEnd();
            child.WaitForExit();
            string? row = output.Split('\n').FirstOrDefault(l => l.StartsWith("ROW ", StringComparison.Ordinal));
            if (child.ExitCode != 0 || row is null)
            {
                Console.Error.WriteLine($"row '{name}' failed:\n{output}");
                return 1;
            }

            var parts = row[4..].Split(' ');
            results.Add((name, double.Parse(parts[0], Ci), videos / double.Parse(parts[0], Ci), double.Parse(parts[1], Ci), double.Parse(parts[2], Ci)));
        }

        var torch1 = results[0];
        var torch2 = results.First(r => r.Name == "TorchSharp, 2 threads");
        Console.WriteLine("### Embedding with ONNX Runtime against TorchSharp (issue 13)");
        Console.WriteLine();
        Console.WriteLine($"Command: `dotnet run -c Release --project benchmarks/Cvrl.Benchmarks -- onnx --videos {videos} --clips {clips} --frames {frames} --size {size}`  ");
        Console.WriteLine($"Machine: {Machine.Describe()}  ");
        Console.WriteLine($"Encoder: R3D-{depth} {width:0.##}x, random weights, exported with `OnnxExporter` (BatchNorm folded). {videos} generated videos (64 frames, 160 x 120, MJPEG, a moving disc); " +
                          $"each embedding averages {clips} centre views of {frames} frames x 2 stride at {size} x {size} (short side {size}), batch 8 views. " +
                          "Each row is a separate process: one warm-up pass over all videos, then the timed pass; decoding threads = compute threads. Peak memory is the process's peak resident set (VmHWM). " +
                          "End to end, `VideoEmbedder` also verifies every video's frame count by decoding it (Cvrl's video index) while `OnnxVideoEmbedder` trusts the container until decoding proves it wrong, so the engine columns (one forward pass over the same batch of 8 views, best of 5) compare the runtimes alone.");
        Console.WriteLine();
        Console.WriteLine("| runtime and settings | seconds for all videos | videos/s | end-to-end time vs TorchSharp, same threads | engine: ms per 8 views | engine time vs TorchSharp | peak memory (MiB) |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var (name, seconds, perSecond, peak, forwardMs) in results)
        {
            var baseline = name.Contains("2 threads", StringComparison.Ordinal) ? torch2 : torch1;
            Console.WriteLine(string.Create(Ci, $"| {name} | {seconds:0.00} | {perSecond:0.0} | {seconds / baseline.Seconds:0.00}x | {forwardMs:0.0} | {forwardMs / baseline.ForwardMs:0.00}x | {peak:0} |"));
        }

        Console.WriteLine();
        Console.WriteLine("Native payload (the shared libraries each deployment loads, from this build's output):");
        Console.WriteLine();
        Console.WriteLine("| runtime | files | MiB |");
        Console.WriteLine("|---|---|---|");
        foreach (var (name, patterns) in new (string, string[])[]
        {
            ("TorchSharp (libtorch and its companions)", ["libtorch", "libc10", "libLibTorchSharp", "libgomp", "libbackend_with_compiler", "libjitbackend_test", "libnnapi_backend", "libshm", "libaoti_custom_ops", "libtorchbind_test"]),
            ("ONNX Runtime (CPU)", ["libonnxruntime"]),
            ("OpenCV (both deployments decode with it)", ["libOpenCvSharpExtern"]),
        })
        {
            var files = Directory.EnumerateFiles(AppContext.BaseDirectory, "*.so*", SearchOption.AllDirectories)
                .Where(f => patterns.Any(p => Path.GetFileName(f).StartsWith(p, StringComparison.Ordinal)))
                .GroupBy(Path.GetFileName).Select(g => g.First()).ToList();
            Console.WriteLine(string.Create(Ci, $"| {name} | {files.Count} | {files.Sum(f => new FileInfo(f).Length) / 1048576.0:0} |"));
        }

        return 0;
    }

    private static int Row(string[] args, int clips, int frames, int size)
    {
        int at = Array.IndexOf(args, "--row");
        string runtime = args[at + 1];
        int threads = int.Parse(args[at + 2], Ci);
        string variant = args[at + 3];
        string dir = args[at + 4];
        var views = new TestViewOptions { Clips = clips, Crops = 1, FramesPerClip = frames, Stride = 2, ShortSide = size, CropSize = size };
        var paths = VideoFiles.Find(Path.Combine(dir, "videos"));
        Func<EmbeddingSet> embed;
        Action forward;
        IDisposable owner;
        var input = new float[8 * 3 * frames * size * size];
        var random = new Random(5);
        for (int i = 0; i < input.Length; i++)
        {
            input[i] = (float)random.NextDouble();
        }

        if (runtime == "torch")
        {
            torch.set_num_threads(threads);
            int depth = AugmentBenchmark.Option(args, "--depth", 18);
            double width = AugmentBenchmark.Option(args, "--width-percent", 50) / 100.0;
            var encoder = ResNet3d.OfDepth(depth, width);
            Cvrl.Models.Weights.ModelWeights.Load(Path.Combine(dir, "encoder.weights"), encoder);
            var embedder = new VideoEmbedder(encoder, new EmbeddingOptions { Views = views, BatchSize = 8, Workers = threads });
            embed = () => embedder.EmbedMany(paths);
            var batch = torch.tensor(input, [8, 3, frames, size, size]);
            encoder.eval();
            forward = () =>
            {
                using var noGrad = torch.no_grad();
                using var features = encoder.call(batch);
            };
            owner = encoder;
        }
        else
        {
            var session = new OnnxSessionOptions
            {
                IntraOpThreads = threads,
                Optimization = variant switch
                {
                    "none" => OnnxGraphOptimization.None,
                    "basic" => OnnxGraphOptimization.Basic,
                    "extended" => OnnxGraphOptimization.Extended,
                    _ => OnnxGraphOptimization.All,
                },
                MemoryPattern = variant != "no-pattern",
                CpuMemoryArena = variant != "no-arena",
            };
            var encoder = OnnxEncoder.Load(Path.Combine(dir, "encoder.onnx"), session);
            var embedder = new OnnxVideoEmbedder(encoder, new EmbeddingOptions { Views = views, BatchSize = 8, Workers = threads });
            embed = () => embedder.EmbedMany(paths);
            forward = () => encoder.Features(input, 8, frames, size, size);
            owner = encoder;
        }

        using (owner)
        {
            embed();
            var watch = Stopwatch.StartNew();
            var set = embed();
            double seconds = watch.Elapsed.TotalSeconds;
            if (set.Count != paths.Count)
            {
                Console.WriteLine($"embedded {set.Count} of {paths.Count} videos");
                return 1;
            }

            // The engines alone: one batch of 8 views, the same values in both runtimes, best of 5 after 2 warm-ups.
            forward();
            forward();
            double best = double.MaxValue;
            for (int r = 0; r < 5; r++)
            {
                var w = Stopwatch.StartNew();
                forward();
                best = Math.Min(best, w.Elapsed.TotalMilliseconds);
            }

            Console.WriteLine(string.Create(Ci, $"ROW {seconds:0.000} {Machine.PeakRssMiB():0} {best:0.0}"));
        }

        return 0;
    }
}
