using System.Diagnostics;
using System.Globalization;
using Cvrl.Augment;
using Cvrl.Augment.Functional;
using Cvrl.Augment.Sampling;
using Cvrl.Augment.Transforms;
using Cvrl.Augment.Video;
using Cvrl.Video;
using OpenCvSharp;
using TorchSharp;
using Scalar = OpenCvSharp.Scalar;
using static TorchSharp.torch;

namespace Cvrl.Benchmarks;

/// <summary>
/// Issue 3's benchmark: clip pairs per second for (a) decoding only the frames CVRL's sampler picked and (b) the full
/// two-view pre-training pipeline at 16 x 224 x 224, on 640x480 videos, on one thread and on all cores, in one run.
/// </summary>
internal static class AugmentBenchmark
{
    public static int Run(string[] args)
    {
        int videos = Option(args, "--videos", 8);
        int samples = Option(args, "--samples", 24);
        int rounds = Option(args, "--rounds", 3);
        string codecName = OptionText(args, "--codec", "mpeg4");
        bool python = args.Contains("--python");
        var codec = codecName.Equals("mjpeg", StringComparison.OrdinalIgnoreCase) ? VideoCodec.Mjpeg : VideoCodec.Mpeg4;

        torch.set_num_threads(1);
        Cv2.SetNumThreads(1);
        string dir = Path.Combine(Path.GetTempPath(), "cvrl-bench-videos");
        Directory.CreateDirectory(dir);
        var paths = Enumerable.Range(0, videos).Select(i => MakeVideo(Path.Combine(dir, $"v{i}_{codecName}{VideoFileWriter.DefaultExtension(codec)}"), i, codec)).ToArray();

        var generator = new CvrlViewGenerator();
        var sampler = new IntervalSampler();

        // Warm-up (JIT, OpenCV and libtorch first-use costs).
        for (int i = 0; i < 4; i++)
        {
            DecodeOnly(paths[i % paths.Length], sampler, i);
            using var v = generator.Generate(paths[i % paths.Length], 1, 0, i);
        }

        var decodeOne = new List<double>();
        var fullOne = new List<double>();
        for (int r = 0; r < rounds; r++)
        {
            // Alternate the order so drift on a shared machine hits both sides alike.
            if (r % 2 == 0)
            {
                decodeOne.Add(Time(samples, i => DecodeOnly(paths[i % paths.Length], sampler, i)));
                fullOne.Add(Time(samples, i => Full(generator, paths[i % paths.Length], i)));
            }
            else
            {
                fullOne.Add(Time(samples, i => Full(generator, paths[i % paths.Length], i)));
                decodeOne.Add(Time(samples, i => DecodeOnly(paths[i % paths.Length], sampler, i)));
            }
        }

        int workers = Environment.ProcessorCount;
        var decodeAll = new List<double>();
        var fullAll = new List<double>();
        for (int r = 0; r < rounds; r++)
        {
            decodeAll.Add(TimeParallel(samples, workers, i => DecodeOnly(paths[i % paths.Length], sampler, i)));
            fullAll.Add(TimeParallel(samples, workers, i => Full(generator, paths[i % paths.Length], i)));
        }

        var steps = StepBreakdown(paths[0]);
        double a1 = Machine.Median(decodeOne), b1 = Machine.Median(fullOne), aN = Machine.Median(decodeAll), bN = Machine.Median(fullAll);

        var ci = CultureInfo.InvariantCulture;
        Console.WriteLine("### Augmentation pipeline (issue 3)");
        Console.WriteLine();
        Console.WriteLine(string.Create(ci, $"Command: `dotnet run -c Release --project benchmarks/Cvrl.Benchmarks -- augment --videos {videos} --samples {samples} --rounds {rounds} --codec {codecName}`  "));
        Console.WriteLine($"Machine: {Machine.Describe()}  ");
        Console.WriteLine(string.Create(ci, $"Data: {videos} generated 640x480 videos, 250 frames each, {codec} (OpenCV's writer); per sample one CVRL pair: 2 clips x 16 frames at stride 2, crop to 224x224. Medians of {rounds} rounds of {samples} samples; torch and OpenCV on 1 thread per worker."));
        Console.WriteLine();
        Console.WriteLine("| setting | (a) decode only, pairs/s | (b) full two-view pipeline, pairs/s | (b) / (a) |");
        Console.WriteLine("|---|---|---|---|");
        Console.WriteLine(string.Create(ci, $"| 1 thread | {a1:0.00} | {b1:0.00} | {b1 / a1:0.00} |"));
        Console.WriteLine(string.Create(ci, $"| {workers} workers | {aN:0.00} | {bN:0.00} | {bN / aN:0.00} |"));
        Console.WriteLine();
        Console.WriteLine("Where the time of one view goes (16 x 224 x 224, one thread, ms per call, median of 30):");
        Console.WriteLine();
        Console.WriteLine("| step | ms |");
        Console.WriteLine("|---|---|");
        foreach (var (name, ms) in steps)
        {
            Console.WriteLine(string.Create(ci, $"| {name} | {ms:0.00} |"));
        }

        if (python)
        {
            Console.WriteLine();
            Console.WriteLine(PythonBaseline(paths, samples));
        }

        return 0;
    }

    private static void DecodeOnly(string path, IntervalSampler sampler, int index)
    {
        using var reader = VideoReader.Open(path);
        var pair = sampler.Sample(reader.FrameCount, ClipRandom.For(1, 0, index, ClipRandom.TemporalStream));
        foreach (var clip in reader.ReadClips([pair.First.Indices(reader.FrameCount), pair.Second.Indices(reader.FrameCount)]))
        {
            clip.Dispose();
        }
    }

    private static void Full(CvrlViewGenerator generator, string path, int index)
    {
        using var views = generator.Generate(path, 1, 0, index);
    }

    internal static double Time(int samples, Action<int> work)
    {
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < samples; i++)
        {
            work(i);
        }

        return samples / watch.Elapsed.TotalSeconds;
    }

    internal static double TimeParallel(int samples, int workers, Action<int> work)
    {
        var watch = Stopwatch.StartNew();
        int next = -1;
        var threads = Enumerable.Range(0, workers).Select(_ => new Thread(() =>
        {
            torch.set_num_threads(1);
            int i;
            while ((i = Interlocked.Increment(ref next)) < samples)
            {
                work(i);
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        return samples / watch.Elapsed.TotalSeconds;
    }

    private static List<(string Name, double Ms)> StepBreakdown(string path)
    {
        using var reader = VideoReader.Open(path);
        using var clip = reader.ReadClip(Enumerable.Range(0, 31).Where(i => i % 2 == 0).ToArray());
        var box = new CropBox(60, 80, 360, 420);
        using var small = ClipOps.ResizedCrop(clip, box, 224, 224);
        using var floats = ClipOps.ToFloat(small);
        var result = new List<(string, double)>
        {
            ("decode 2 x 16 frames (sequential from frame 0 to the last one needed)", Measure(() => { DecodeOnly(path, new IntervalSampler(), 0); return null; })),
            ("crop + resize 640x480 -> 224x224, uint8 (OpenCV)", Measure(() => ClipOps.ResizedCrop(clip, box, 224, 224))),
            ("flip", Measure(() => ClipOps.HorizontalFlip(small))),
            ("to float", Measure(() => ClipOps.ToFloat(small))),
            ("brightness", Measure(() => ClipOps.AdjustBrightness(floats, 1.3f))),
            ("contrast", Measure(() => ClipOps.AdjustContrast(floats, 1.3f))),
            ("saturation (HSV)", Measure(() => ClipOps.AdjustSaturation(floats, 1.3f))),
            ("hue (HSV)", Measure(() => ClipOps.AdjustHue(floats, 0.1f))),
            ("grayscale", Measure(() => ClipOps.Grayscale(floats))),
            ("Gaussian blur, 23 taps, sigma 1.5", Measure(() => ClipOps.GaussianBlur(floats, 1.5f, 23))),
            ("solarize", Measure(() => ClipOps.Solarize(floats))),
            ("whole view-1 pipeline (crop ... blur)", Measure(() => CvrlPresets.PretrainView1().Apply(clip, ClipRandom.For(3, 0, 0, 0)))),
            ("whole view-2 pipeline (crop ... solarize)", Measure(() => CvrlPresets.PretrainView2().Apply(clip, ClipRandom.For(3, 0, 0, 1)))),
        };
        return result;
    }

    private static double Measure(Func<Tensor?> op)
    {
        for (int i = 0; i < 3; i++)
        {
            op()?.Dispose();
        }

        var times = new List<double>();
        for (int i = 0; i < 30; i++)
        {
            var watch = Stopwatch.StartNew();
            op()?.Dispose();
            times.Add(watch.Elapsed.TotalMilliseconds);
        }

        return Machine.Median(times);
    }

    /// <summary>A 640x480 video with moving textured content, so that the codec works as on real footage.</summary>
    private static string MakeVideo(string path, int seed, VideoCodec codec)
    {
        if (File.Exists(path))
        {
            return path;
        }

        var rng = new Random(seed);
        using var writer = new VideoFileWriter(path, 640, 480, 25, codec);
        using var frame = new Mat(480, 640, MatType.CV_8UC3);
        using var texture = new Mat(480, 640, MatType.CV_8UC3);
        Cv2.Randu(texture, new Scalar(0, 0, 0), new Scalar(255, 255, 255));
        Cv2.GaussianBlur(texture, texture, new OpenCvSharp.Size(0, 0), 3);
        var blobs = Enumerable.Range(0, 6).Select(_ => (X: rng.Next(640), Y: rng.Next(480), Dx: rng.Next(-6, 7), Dy: rng.Next(-4, 5), R: rng.Next(20, 80),
            Color: new Scalar(rng.Next(256), rng.Next(256), rng.Next(256)))).ToArray();
        using var noise = new Mat(480, 640, MatType.CV_8UC3);
        for (int t = 0; t < 250; t++)
        {
            // A slowly panning texture, moving blobs and a little sensor noise.
            using var shifted = texture.Clone();
            Cv2.WarpAffine(texture, shifted, Mat.FromPixelData(2, 3, MatType.CV_64FC1, new double[] { 1, 0, t * 0.8, 0, 1, t * 0.3 }), texture.Size(), InterpolationFlags.Linear, BorderTypes.Reflect);
            shifted.CopyTo(frame);
            foreach (var b in blobs)
            {
                Cv2.Circle(frame, new OpenCvSharp.Point((b.X + (b.Dx * t) + 6400) % 640, (b.Y + (b.Dy * t) + 4800) % 480), b.R, b.Color, -1, LineTypes.AntiAlias);
            }

            Cv2.Randn(noise, new Scalar(0, 0, 0), new Scalar(4, 4, 4));
            Cv2.Add(frame, noise, frame);
            writer.WriteFrame(frame);
        }

        return path;
    }

    private static string PythonBaseline(string[] paths, int samples)
    {
        string python = "/usr/bin/python3";
        string script = Path.Combine(AppContext.BaseDirectory, "python", "augment_baseline.py");
        if (!File.Exists(python) || !File.Exists(script))
        {
            return "(Python baseline skipped: /usr/bin/python3 or the script is missing.)";
        }

        var psi = new ProcessStartInfo(python, [script, "--samples", samples.ToString(CultureInfo.InvariantCulture), .. paths])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(psi)!;
        string output = process.StandardOutput.ReadToEnd();
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return process.ExitCode == 0 ? output.TrimEnd() : $"(Python baseline failed: {error.Trim().Split('\n').LastOrDefault()})";
    }

    internal static int Option(string[] args, string name, int fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }

    internal static string OptionText(string[] args, string name, string fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }
}
