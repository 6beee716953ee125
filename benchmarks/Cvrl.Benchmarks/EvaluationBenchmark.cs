using System.Diagnostics;
using System.Globalization;
using Cvrl.Augment.Video;
using Cvrl.Embeddings;
using Cvrl.Evaluation;
using Cvrl.Models;
using Cvrl.Video;
using OpenCvSharp;
using TorchSharp;
using static TorchSharp.torch;
using Scalar = OpenCvSharp.Scalar;

namespace Cvrl.Benchmarks;

/// <summary>
/// Issue 6's benchmark: embedding throughput (videos/s) of R3D-18 and R3D-50 1x at the test resolution, next to the
/// encoder alone on the same clips already in memory (the same run); and the time of a cached linear probe over 1,000
/// feature vectors.
/// </summary>
internal static class EvaluationBenchmark
{
    public static int Run(string[] args)
    {
        int videos = AugmentBenchmark.Option(args, "--videos", 2);
        int clips = AugmentBenchmark.Option(args, "--clips", 10);
        bool skipModels = args.Contains("--probe-only");
        torch.set_num_threads(Environment.ProcessorCount);
        var ci = CultureInfo.InvariantCulture;
        Console.WriteLine("### Evaluation and embeddings (issue 6)");
        Console.WriteLine();
        Console.WriteLine($"Command: `dotnet run -c Release --project benchmarks/Cvrl.Benchmarks -- evaluation --videos {videos} --clips {clips}`  ");
        Console.WriteLine($"Machine: {Machine.Describe()}  ");
        if (!skipModels)
        {
            string dir = Path.Combine(Path.GetTempPath(), "cvrl-bench-embed");
            var paths = MakeVideos(dir, videos + 1);
            Console.WriteLine($"Data: {videos + 1} generated 320x240 MJPG videos of 150 frames (the first one warms up and is not timed). " +
                              $"Embedding: {clips} clips of 32 frames at stride 2 per video, short side resized to 256, one 256x256 centre crop " +
                              "(the test resolution), 2 decoding workers, 5 clips per forward pass, torch on all cores. Baseline (same run): the " +
                              "encoder alone on the same number of 32x256x256 clips already in memory, same batch size.");
            Console.WriteLine();
            Console.WriteLine("| encoder | parameters | embedding, videos/s | s/video | encoder alone, s/video | decode + augment overhead |");
            Console.WriteLine("|---|---|---|---|---|---|");
            foreach (var depth in new[] { 18, 50 })
            {
                torch.manual_seed(0);
                using var encoder = ResNet3d.Create(new ResNet3dOptions { Depth = depth });
                var options = new EmbeddingOptions { Views = new TestViewOptions { Clips = clips }, BatchSize = 5, Workers = 2 };
                var embedder = new VideoEmbedder(encoder, options);
                embedder.Embed(paths[0]);
                var watch = Stopwatch.StartNew();
                var set = embedder.EmbedMany(paths.Skip(1));
                double perVideo = watch.Elapsed.TotalSeconds / set.Count;
                double alone = EncoderAlone(encoder, clips, 5);
                long parameters = encoder.parameters().Sum(p => p.numel());
                Console.WriteLine(string.Create(ci, $"| {encoder.Options.ArchitectureName} | {parameters / 1e6:0.0}M | {1 / perVideo:0.000} | {perVideo:0.00} | {alone:0.00} | {(perVideo / alone) - 1:P1} |"));
            }

            Console.WriteLine();
        }

        ProbeTiming(ci);
        return 0;
    }

    private static double EncoderAlone(ResNet3d encoder, int clips, int batch)
    {
        encoder.eval();
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var input = torch.rand([batch, 3, 32, 256, 256]);
        var watch = Stopwatch.StartNew();
        for (int done = 0; done < clips; done += batch)
        {
            using var inner = torch.NewDisposeScope();
            int n = Math.Min(batch, clips - done);
            nn.functional.normalize(encoder.Features(input.narrow(0, 0, n)), p: 2, dim: 1);
        }

        return watch.Elapsed.TotalSeconds;
    }

    private static void ProbeTiming(CultureInfo ci)
    {
        // 1,000 training vectors (2048-d, as R3D-50 gives) in 10 classes, 200 test videos x 30 views; Gaussian clusters.
        const int dim = 2048, classes = 10, train = 1000, test = 200, views = 30;
        var rng = new Random(1);
        var means = Enumerable.Range(0, classes).Select(_ => Enumerable.Range(0, dim).Select(_ => (float)Gaussian(rng)).ToArray()).ToArray();
        float[] Sample(int c, int n) => [.. Enumerable.Range(0, n * dim).Select(i => means[c][i % dim] + (3f * (float)Gaussian(rng)))];
        var trainLabels = Enumerable.Range(0, train).Select(i => i % classes).ToList();
        var testLabels = Enumerable.Range(0, test).Select(i => i % classes).ToList();
        string[] names = [.. Enumerable.Range(0, classes).Select(c => $"c{c}")];
        var trainSet = Normalise(new VideoFeatures([.. trainLabels.Select((_, i) => $"t{i}")], trainLabels, names, 1, dim, [.. trainLabels.Select(c => Sample(c, 1))], normalized: false));
        var testSet = Normalise(new VideoFeatures([.. testLabels.Select((_, i) => $"v{i}")], testLabels, names, views, dim, [.. testLabels.Select(c => Sample(c, views))], normalized: false));
        var probe = new LinearProbe(new LinearProbeOptions { Epochs = 100, BatchSize = 64 });
        using (probe.Fit(trainSet, testSet))
        {
            // Warm-up.
        }

        var times = new List<double>();
        ClassificationResult? result = null;
        int rounds = int.TryParse(Environment.GetEnvironmentVariable("CVRL_BENCH_ROUNDS"), out int n) ? n : 3;
        for (int r = 0; r < rounds; r++)
        {
            var watch = Stopwatch.StartNew();
            using var run = probe.Fit(trainSet, testSet);
            times.Add(watch.Elapsed.TotalSeconds);
            result = run.Result;
        }

        times.Sort();
        Console.WriteLine("Cached linear probe: 1,000 training vectors of 2,048 dimensions (Gaussian clusters, 10 classes), 100 epochs at batch 64 " +
                          "(1,600 SGD steps, the official schedule), then 200 test videos x 30 views scored by averaged softmax. Median of 3 runs after a warm-up:");
        Console.WriteLine();
        Console.WriteLine("| stage | seconds |");
        Console.WriteLine("|---|---|");
        Console.WriteLine(string.Create(ci, $"| train 100 epochs + score 6,000 test views | {times[1]:0.000} |"));
        Console.WriteLine(string.Create(ci, $"| (top-1 on the clusters, a sanity check) | {result!.Top1:P1} |"));
        Console.WriteLine();
    }

    private static VideoFeatures Normalise(VideoFeatures f)
    {
        var rows = Enumerable.Range(0, f.Count).Select(i =>
        {
            var v = f.Video(i).ToArray();
            for (int view = 0; view < f.ViewsPerVideo; view++)
            {
                var span = v.AsSpan(view * f.Dim, f.Dim);
                float norm = MathF.Sqrt(span.ToArray().Sum(x => x * x));
                for (int d = 0; d < span.Length; d++)
                {
                    span[d] /= norm;
                }
            }

            return v;
        }).ToList();
        return new VideoFeatures(f.Paths, f.Labels, f.Classes, f.ViewsPerVideo, f.Dim, rows, normalized: true);
    }

    private static double Gaussian(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    internal static List<string> MakeVideos(string dir, int count)
    {
        Directory.CreateDirectory(dir);
        var paths = new List<string>();
        for (int v = 0; v < count; v++)
        {
            string path = Path.Combine(dir, $"v{v}.avi");
            paths.Add(path);
            if (File.Exists(path))
            {
                continue;
            }

            using var writer = new VideoFileWriter(path, 320, 240, 25, VideoCodec.Mjpeg);
            using var frame = new Mat(240, 320, MatType.CV_8UC3);
            for (int t = 0; t < 150; t++)
            {
                frame.SetTo(new Scalar(30 + (v * 40 % 200), 90, 140));
                Cv2.Circle(frame, new OpenCvSharp.Point((t * 2) + 10, 120 + (v * 7 % 60) - 30), 25, new Scalar(200, 60 + v, 30), -1);
                writer.WriteFrame(frame);
            }
        }

        return paths;
    }
}
