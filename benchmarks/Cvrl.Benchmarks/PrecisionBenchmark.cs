using System.Diagnostics;
using System.Globalization;
using Cvrl.Embeddings;
using Cvrl.Models;
using Cvrl.Video;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Benchmarks;

/// <summary>
/// Issue 20's benchmark: the R3D-50 training step in float32 and bfloat16 (Cvrl) next to PyTorch 1.13 in float32 and
/// under bfloat16 autocast, each in a fresh process (time and peak memory), interleaved; the cost of casting the
/// weights; embedding throughput in both precisions.
/// </summary>
internal static class PrecisionBenchmark
{
    public static int Run(string[] args)
    {
        int repeats = AugmentBenchmark.Option(args, "--repeats", 3);
        int steps = AugmentBenchmark.Option(args, "--steps", 3);
        int videos = AugmentBenchmark.Option(args, "--videos", 6);
        var ci = CultureInfo.InvariantCulture;
        string common = $"--mode train --width 1 --batch 4 --frames 16 --size 112 --threads 2 --steps {steps}";
        var runs = new Dictionary<string, List<(double Seconds, double Mib)>>
        {
            ["Cvrl float32"] = [], ["Cvrl bfloat16"] = [], ["PyTorch float32"] = [], ["PyTorch bfloat16 autocast"] = [],
        };
        bool python = Machine.Python is not null;
        for (int r = 0; r < repeats; r++)
        {
            runs["Cvrl float32"].Add(ModelBenchmark.RunChild($"model-step {common} --precision Float32"));
            runs["Cvrl bfloat16"].Add(ModelBenchmark.RunChild($"model-step {common} --precision BFloat16"));
            if (python)
            {
                runs["PyTorch float32"].Add(ModelBenchmark.RunPython($"{common} --channels-last"));
                runs["PyTorch bfloat16 autocast"].Add(ModelBenchmark.RunPython($"{common} --channels-last --autocast"));
            }
        }

        var median = runs.Where(kv => kv.Value.Count > 0).ToDictionary(kv => kv.Key, kv => (Seconds: Machine.Median(kv.Value.Select(v => v.Seconds)), Mib: Machine.Median(kv.Value.Select(v => v.Mib))));
        var f32 = median["Cvrl float32"];
        Console.WriteLine("### Mixed precision (issue 20)");
        Console.WriteLine();
        Console.WriteLine($"Command: `dotnet run -c Release --project benchmarks/Cvrl.Benchmarks -- precision --repeats {repeats} --steps {steps} --videos {videos}`  ");
        Console.WriteLine($"Machine: {Machine.Describe()}; native bfloat16: {(PrecisionPolicy.CpuComputesBFloat16 ? "yes" : "no")}  ");
        Console.WriteLine("Setting: CVRL's R3D-50 1x, training step (forward, backward, SGD) on [4, 3, 16, 112, 112], 2 threads, channels-last-3d on both sides, " +
            $"loss = mean of squared pooled features; each cell the median over {repeats} fresh processes (after one warm-up step each), interleaved. " +
            "PyTorch: Debian's python3-torch 1.13, the same architecture (`benchmarks/Cvrl.Benchmarks/python/r3d_step.py`), `--autocast` = `torch.autocast(\"cpu\", dtype=torch.bfloat16)`.");
        Console.WriteLine();
        Console.WriteLine("| run | s/step | peak RSS | time vs Cvrl float32 | memory vs Cvrl float32 |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var (name, m) in median)
        {
            Console.WriteLine(string.Create(ci, $"| {name} | {m.Seconds:0.000} | {m.Mib:0} MiB | {m.Seconds / f32.Seconds:0.00}x | {m.Mib / f32.Mib:0.00}x |"));
        }

        if (median.TryGetValue("PyTorch bfloat16 autocast", out var autocast))
        {
            Console.WriteLine();
            Console.WriteLine(string.Create(ci, $"Cvrl bfloat16 against PyTorch's autocast: {median["Cvrl bfloat16"].Seconds / autocast.Seconds:0.00}x the time, {median["Cvrl bfloat16"].Mib / autocast.Mib:0.00}x the memory."));
        }

        Console.WriteLine();
        Console.WriteLine(CastCost(f32.Seconds));
        Console.WriteLine();
        Console.WriteLine(Embedding(videos));
        return 0;
    }

    /// <summary>What casting every kernel to bfloat16 costs per forward pass (the per-layer casts Cvrl does, or one refresh of a bfloat16 shadow).</summary>
    private static string CastCost(double stepSeconds)
    {
        torch.set_num_threads(2);
        using var model = ResNet3d.R3d50();
        var times = new List<double>();
        for (int i = 0; i < 6; i++)
        {
            var watch = Stopwatch.StartNew();
            using (var scope = torch.NewDisposeScope())
            {
                foreach (var p in model.parameters())
                {
                    p.to(ScalarType.BFloat16);
                }
            }

            times.Add(watch.Elapsed.TotalSeconds);
        }

        double cast = Machine.Median(times.Skip(1));
        return string.Create(CultureInfo.InvariantCulture, $"Casting R3D-50's 31.7M float32 weights to bfloat16 takes {cast * 1000:0.0} ms ({cast / stepSeconds:P1} of a float32 step): Cvrl casts each kernel inside its forward pass (once per forward; autograd carries the gradient back to the float32 weight). A bfloat16 shadow of the weights refreshed after each optimizer step would cast the same amount once per step, so it saves time only when a step runs several forward passes (a gradient-cache chunk) or in inference over many batches, at most this much per pass; Cvrl keeps the per-layer casts (no second copy of the weights to keep in step, nothing to refresh).");
    }

    /// <summary>Embedding throughput (videos/s) and agreement in both precisions.</summary>
    private static string Embedding(int count)
    {
        torch.set_num_threads(2);
        var paths = EvaluationBenchmark.MakeVideos(Path.Combine(Path.GetTempPath(), "cvrl-bench-precision"), count);
        torch.manual_seed(0);
        using var encoder = ResNet3d.R3d50();
        var options = new EmbeddingOptions { Views = new TestViewOptions { Clips = 4, FramesPerClip = 16, ShortSide = 112, CropSize = 112 }, BatchSize = 4, Workers = 2 };
        var results = new List<(string Name, double VideosPerSecond, EmbeddingSet Set)>();
        foreach (var precision in new[] { Precision.Float32, Precision.BFloat16 })
        {
            var embedder = new VideoEmbedder(encoder, options, precision: precision);
            embedder.Embed(paths[0]); // warm-up
            var watch = Stopwatch.StartNew();
            var set = embedder.EmbedMany(paths);
            results.Add((precision.ToString(), paths.Count / watch.Elapsed.TotalSeconds, set));
        }

        double worst = Enumerable.Range(0, paths.Count).Min(i => Cosine(results[0].Set[i], results[1].Set[i]));
        return string.Create(CultureInfo.InvariantCulture, $"Embedding ({count} videos of 150 frames at 320x240, R3D-50 1x, 4 clips of 16 frames at 112, batches of 4 views, 2 decoding threads and 2 intra-op threads): float32 {results[0].VideosPerSecond:0.00} videos/s, bfloat16 {results[1].VideosPerSecond:0.00} videos/s ({results[1].VideosPerSecond / results[0].VideosPerSecond:0.00}x); the smallest cosine between a video's two embeddings {worst:0.0000}.");
    }

    private static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        using var scope = torch.NewDisposeScope();
        return torch.nn.functional.cosine_similarity(torch.tensor(a.ToArray(), ScalarType.Float64), torch.tensor(b.ToArray(), ScalarType.Float64), dim: 0).item<double>();
    }
}
