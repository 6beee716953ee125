using System.Diagnostics;
using System.Globalization;
using Cvrl.Augment;
using Cvrl.Augment.Sampling;
using Cvrl.Augment.Video;
using Cvrl.Data;
using Cvrl.Training;
using Cvrl.Video;
using OpenCvSharp;
using TorchSharp;

namespace Cvrl.Benchmarks;

/// <summary>
/// Issue 18's benchmark: CVRL pairs per second per core at the paper's geometry (16 frames at stride 2, 224 crop, both
/// views fully augmented) on minutes-long H.264 videos with a key frame every 250 frames and B-frames, for today's
/// sequential decoding, verified seeking, and the prepared copy; decode-only beside each; the cost of a sample from a
/// long video against one from a 10-second cut; the speed and size of preparation; the loader on all cores.
/// </summary>
internal static class DataBenchmark
{
    public static int Run(string[] args)
    {
        int seconds = AugmentBenchmark.Option(args, "--seconds", 120);
        int cutSeconds = AugmentBenchmark.Option(args, "--cut-seconds", 10);
        int samples = AugmentBenchmark.Option(args, "--samples", 8);
        int perSize = AugmentBenchmark.Option(args, "--videos-per-size", 1);
        bool raw = args.Contains("--raw");
        string[] sizes = AugmentBenchmark.OptionText(args, "--sizes", "640x360,1280x720").Split(',', StringSplitOptions.RemoveEmptyEntries);
        string dir = AugmentBenchmark.OptionText(args, "--dir", Path.Combine(Path.GetTempPath(), "cvrl-bench-data"));
        var ci = CultureInfo.InvariantCulture;

        torch.set_num_threads(1);
        Cv2.SetNumThreads(1);
        string originals = Path.Combine(dir, "originals");
        string cuts = Path.Combine(dir, "cuts");
        Directory.CreateDirectory(originals);
        Directory.CreateDirectory(cuts);
        var longs = new List<string>();
        var shorts = new List<string>();
        var encodeWatch = Stopwatch.StartNew();
        foreach (string size in sizes)
        {
            for (int v = 0; v < perSize; v++)
            {
                longs.Add(MakeVideo(Path.Combine(originals, $"long_{size}_{v}.mp4"), size, seconds, v));
                shorts.Add(MakeVideo(Path.Combine(cuts, $"cut_{size}_{v}.mp4"), size, cutSeconds, v));
            }
        }

        Console.Error.WriteLine($"data: videos ready in {encodeWatch.Elapsed.TotalSeconds:0} s");
        if (args.Contains("--trainer-only"))
        {
            return TrainerOnly(args, dir, longs[0], shorts[0], seconds, cutSeconds);
        }

        // The verified index (measures every file once; what pre-training does first), timed.
        var indexWatch = Stopwatch.StartNew();
        var longIndex = VideoIndex.Build(longs, new VideoIndexOptions { UseCache = false, Workers = 1 });
        double indexSeconds = indexWatch.Elapsed.TotalSeconds;
        var cutIndex = VideoIndex.Build(shorts, new VideoIndexOptions { UseCache = false, Workers = 1 });
        double videoSeconds = longIndex.Videos.Sum(v => v.Frames / v.FramesPerSecond);

        // Prepared copies, one video at a time on one worker: seconds of video per second per core.
        string prepared = Path.Combine(dir, "prepared");
        var prepareWatch = Stopwatch.StartNew();
        var report = VideoPreparation.Prepare(originals, prepared, new PreparationOptions { Workers = 1 });
        double prepareSeconds = prepareWatch.Elapsed.TotalSeconds;
        var preparedPaths = longs.Select(p => Path.Combine(prepared, Path.GetFileName(p) + PreparedVideo.Extension)).ToList();
        double psnr = Psnr(longs[0], preparedPaths[0]);
        string? rawDir = null;
        PreparationReport? rawReport = null;
        double rawSeconds = 0;
        if (raw)
        {
            rawDir = Path.Combine(dir, "prepared-raw");
            var w = Stopwatch.StartNew();
            rawReport = VideoPreparation.Prepare(originals, rawDir, new PreparationOptions { Workers = 1, Video = new() { Encoding = FrameEncoding.Raw } });
            rawSeconds = w.Elapsed.TotalSeconds;
        }

        var sequential = new VideoReaderOptions { Seek = SeekMode.Sequential };
        var auto = new VideoReaderOptions();
        var rows = new List<(string Name, string Files, double Decode, double Full, double DecodedFrames)>();
        void Measure(string name, IReadOnlyList<string> files, VideoReaderOptions reader)
        {
            var generator = new CvrlViewGenerator(new CvrlViewOptions { Reader = reader });
            var sampler = new IntervalSampler();
            for (int w = 0; w < 2; w++)
            {
                // Warm-up: first-use costs of OpenCV, libtorch and the file cache.
                DecodeOnly(files[w % files.Count], sampler, reader, 1000 + w);
                Full(generator, files[w % files.Count], 1000 + w);
            }

            long decoded = 0;
            double decode = AugmentBenchmark.Time(samples, i => decoded += DecodeOnly(files[i % files.Count], sampler, reader, i));
            double full = AugmentBenchmark.Time(samples, i => Full(generator, files[i % files.Count], i));
            rows.Add((name, string.Join(", ", files.Select(Path.GetFileName)), decode, full, (double)decoded / samples));
            Console.Error.WriteLine(string.Create(ci, $"data: {name}: decode {decode:0.00} pairs/s, full {full:0.00} pairs/s, {(double)decoded / samples:0} frames decoded per pair"));
        }

        foreach (string size in sizes)
        {
            var l = longs.Where(p => p.Contains(size, StringComparison.Ordinal)).ToList();
            var c = shorts.Where(p => p.Contains(size, StringComparison.Ordinal)).ToList();
            var pr = preparedPaths.Where(p => p.Contains(size, StringComparison.Ordinal)).ToList();
            Measure($"{size}, {seconds} s originals, sequential (the default before this change)", l, sequential);
            Measure($"{size}, {seconds} s originals, verified seeking (the default now)", l, auto);
            Measure($"{size}, {cutSeconds} s cuts, verified seeking", c, auto);
            Measure($"{size}, {cutSeconds} s cuts, sequential", c, sequential);
            Measure($"{size}, prepared (JPEG, short side 256)", pr, auto);
            if (rawDir is not null)
            {
                Measure($"{size}, prepared (raw, short side 256)", [.. l.Select(p => Path.Combine(rawDir, Path.GetFileName(p) + PreparedVideo.Extension))], auto);
            }
        }

        // The loader on every core, on the prepared copy: what a trainer would get (after two warm-up batches).
        int workers = Environment.ProcessorCount;
        var data = VideoDataset.FromFolder(prepared).Verify();
        int batch = data.Count;
        var loader = new PretrainLoader(data, new CvrlViewGenerator(), new LoaderOptions { BatchSize = batch, Workers = workers, Seed = 1 });
        int batches = Math.Max(8, (8 * samples) / batch);
        var loaderWatch = Stopwatch.StartNew();
        int pairs = 0;
        int seen = 0;
        foreach (var b in loader.ReadEpochs(0, batches + 2))
        {
            if (++seen == 3)
            {
                loaderWatch.Restart();
            }

            if (seen > 2)
            {
                pairs += b.Count;
            }

            b.Dispose();
        }

        double loaderRate = pairs / loaderWatch.Elapsed.TotalSeconds;

        // The issue's own case: `cvrl pretrain`'s trainer with a small R3D-18 on four copies of a 120 s 640x360 video,
        // against four copies of its 10 s cut and the prepared copy; torch on every core as in a real run.
        torch.set_num_threads(workers);
        string smallest = sizes[0];
        var trainRows = new List<string>();
        var trainSets = new (string Name, string Source, VideoReaderOptions Reader)[]
        {
            ($"4 x {seconds} s, sequential (the default before this change)", longs.First(p => p.Contains(smallest, StringComparison.Ordinal)), sequential),
            ($"4 x {seconds} s, verified seeking (the default now)", longs.First(p => p.Contains(smallest, StringComparison.Ordinal)), auto),
            ($"4 x {cutSeconds} s cuts, verified seeking", shorts.First(p => p.Contains(smallest, StringComparison.Ordinal)), auto),
            ($"4 x {seconds} s, prepared (JPEG)", preparedPaths.First(p => p.Contains(smallest, StringComparison.Ordinal)), auto),
        };
        foreach (var (name, sourceFile, reader) in trainSets)
        {
            string folder = Path.Combine(dir, "train-" + trainRows.Count);
            Directory.CreateDirectory(folder);
            for (int c = 0; c < 4; c++)
            {
                string copy = Path.Combine(folder, $"copy{c}{(PreparedVideo.IsPrepared(sourceFile) ? ".mp4" + PreparedVideo.Extension : ".mp4")}");
                if (!File.Exists(copy))
                {
                    File.Copy(sourceFile, copy);
                }
            }

            var (clipsPerSecond, wait) = TrainSteps(VideoDataset.FromFolder(folder), reader, workers);
            trainRows.Add(string.Create(ci, $"| {name} | {clipsPerSecond:0.00} | {wait:P0} |"));
            Console.Error.WriteLine($"data: trainer {name}: {clipsPerSecond:0.00} clips/s, data wait {wait:P0}");
        }

        Console.WriteLine("### Real videos: seeking, prepared copies and the loader (issue 18)");
        Console.WriteLine();
        Console.WriteLine(string.Create(ci, $"Command: `dotnet run -c Release --project benchmarks/Cvrl.Benchmarks -- data --seconds {seconds} --cut-seconds {cutSeconds} --samples {samples} --videos-per-size {perSize} --sizes {string.Join(',', sizes)}{(raw ? " --raw" : string.Empty)}`  "));
        Console.WriteLine($"Machine: {Machine.Describe()}  ");
        Console.WriteLine(string.Create(ci, $"Data (generated with ffmpeg): per size {perSize} video(s) of {seconds} s and a {cutSeconds} s cut made with the same settings; `testsrc2` with temporal noise, 30 fps, H.264 (libx264 veryfast), a key frame every 250 frames, 3 B-frames. Per sample one CVRL pair: 2 clips x 16 frames at stride 2 (decreasing-interval sampler), both views augmented (crop to 224 x 224, flip, colour jitter, grayscale, blur, solarize). One thread (torch and OpenCV), so pairs/s = pairs/s per core; {samples} samples per row, the same (seed, sample) keys in every row."));
        Console.WriteLine();
        Console.WriteLine("| data and access | decode only, pairs/s per core | full two-view pipeline, pairs/s per core | frames decoded per pair |");
        Console.WriteLine("|---|---|---|---|");
        foreach (var r in rows)
        {
            Console.WriteLine(string.Create(ci, $"| {r.Name} | {r.Decode:0.00} | {r.Full:0.00} | {r.DecodedFrames:0} |"));
        }

        Console.WriteLine();
        foreach (string size in sizes)
        {
            var mine = rows.Where(r => r.Name.StartsWith(size + ",", StringComparison.Ordinal)).ToList();
            double seqLong = mine[0].Full, seekLong = mine[1].Full, seekCut = mine[2].Full, prep = mine[4].Full;
            Console.WriteLine(string.Create(ci, $"- {size}: a sample from a {seconds} s video costs {seekCut / seekLong:0.00}x one from its {cutSeconds} s cut with seeking (target at most 1.5x; sequential: {mine[3].Full / seqLong:0.0}x); the prepared copy gives {prep:0.0} pairs/s per core (target at least 12.5), {prep / seqLong:0.0}x the sequential default on the originals (target at least 10x) and {prep / seekLong:0.0}x seeking."));
        }

        Console.WriteLine();
        var timelines = longIndex.Videos.Select(v => string.Create(ci, $"{Path.GetFileName(v.Path)}: {v.Access.ToString().ToLowerInvariant()}, key frames every {v.KeyFrameInterval} frames, seek costs {v.SeekCostFrames} frames")).ToList();
        timelines.AddRange(cutIndex.Videos.Select(v => string.Create(ci, $"{Path.GetFileName(v.Path)}: {v.Access.ToString().ToLowerInvariant()}{(v.AccessNote is null ? string.Empty : " (" + v.AccessNote + ")")}")));
        Console.WriteLine($"What the index measured: {string.Join("; ", timelines)}.");
        Console.WriteLine();
        Console.WriteLine(string.Create(ci, $"Indexing the long videos (one worker): {videoSeconds / indexSeconds:0.0} s of video per second. Preparing them (one worker, JPEG quality 90, 4:4:4, short side 256): {report.SecondsPrepared / prepareSeconds:0.0} s of video per second per core, {(double)report.Bytes / report.Frames / 1024:0.0} KiB per frame, mean PSNR {psnr:0.0} dB against the original read at short side 256 (60 frames of the first video)."));
        if (rawReport is not null)
        {
            Console.WriteLine(string.Create(ci, $"Raw frames instead: {rawReport.SecondsPrepared / rawSeconds:0.0} s of video per second per core, {(double)rawReport.Bytes / rawReport.Frames / 1024:0.0} KiB per frame, exact."));
        }

        Console.WriteLine(string.Create(ci, $"The loader on all {workers} cores (PretrainLoader, {workers} workers, batch {batch}, {pairs} pairs after 2 warm-up batches) on the prepared copy: {loaderRate:0.0} pairs/s ({loaderRate / workers:0.0} per core)."));
        Console.WriteLine();
        Console.WriteLine(string.Create(ci, $"The trainer (as `cvrl pretrain --depth 18 --width 0.125 --frames 16 --stride 2 --size 112 --batch 4 --workers {workers}`, torch on {workers} threads; {smallest}; median over steps 3-10, data wait = share of those steps spent waiting for the loader):"));
        Console.WriteLine();
        Console.WriteLine("| data | clips/s | data wait |");
        Console.WriteLine("|---|---|---|");
        trainRows.ForEach(Console.WriteLine);
        return 0;
    }

    /// <summary>
    /// Only the trainer's seeking row against its cuts' row, alternated <c>--rounds</c> times in one process (the ratio
    /// the long-video target is about, with the noise of single short runs averaged out): medians of every round's
    /// median clips/s, and the ratio of those medians.
    /// </summary>
    private static int TrainerOnly(string[] args, string dir, string longVideo, string cutVideo, int seconds, int cutSeconds)
    {
        var ci = CultureInfo.InvariantCulture;
        int rounds = AugmentBenchmark.Option(args, "--rounds", 3);
        int epochs = AugmentBenchmark.Option(args, "--epochs", 10);
        int workers = Environment.ProcessorCount;
        int threads = AugmentBenchmark.Option(args, "--torch-threads", workers);
        torch.set_num_threads(threads);
        var auto = new VideoReaderOptions();
        var sets = new (string Name, string Source)[] { ($"4 x {seconds} s, verified seeking", longVideo), ($"4 x {cutSeconds} s cuts, verified seeking", cutVideo) };
        var rates = sets.Select(_ => new List<double>()).ToArray();
        var waits = sets.Select(_ => new List<double>()).ToArray();
        for (int round = 0; round < rounds; round++)
        {
            for (int i = 0; i < sets.Length; i++)
            {
                string folder = Path.Combine(dir, "trainer-only-" + i);
                Directory.CreateDirectory(folder);
                for (int c = 0; c < 4; c++)
                {
                    string copy = Path.Combine(folder, $"copy{c}.mp4");
                    if (!File.Exists(copy))
                    {
                        File.Copy(sets[i].Source, copy);
                    }
                }

                var (clipsPerSecond, wait) = TrainSteps(VideoDataset.FromFolder(folder), auto, workers, epochs);
                rates[i].Add(clipsPerSecond);
                waits[i].Add(wait);
                Console.Error.WriteLine(string.Create(ci, $"data: round {round + 1}: {sets[i].Name}: {clipsPerSecond:0.00} clips/s, data wait {wait:P0}"));
            }
        }

        Console.WriteLine(string.Create(ci, $"The trainer (as `cvrl pretrain --depth 18 --width 0.125 --frames 16 --stride 2 --size 112 --batch 4 --workers {workers}`, torch on {threads} threads; {epochs} epochs of one step; {rounds} rounds alternating the rows; median of the rounds' medians over steps 3-{epochs}):"));
        Console.WriteLine();
        Console.WriteLine("| data | clips/s | every round | data wait |");
        Console.WriteLine("|---|---|---|---|");
        for (int i = 0; i < sets.Length; i++)
        {
            Console.WriteLine(string.Create(ci, $"| {sets[i].Name} | {Machine.Median([.. rates[i]]):0.00} | {string.Join(", ", rates[i].Select(r => r.ToString("0.00", ci)))} | {Machine.Median([.. waits[i]]):P0} |"));
        }

        Console.WriteLine();
        Console.WriteLine(string.Create(ci, $"Long originals against their cuts: {Machine.Median([.. rates[0]]) / Machine.Median([.. rates[1]]):0.00}x."));
        return 0;
    }

    private static (double ClipsPerSecond, double DataWait) TrainSteps(VideoDataset data, VideoReaderOptions reader, int workers, int epochs = 10)
    {
        torch.manual_seed(0);
        using var encoder = Cvrl.Models.ResNet3d.R3d18(0.125);
        var options = new CvrlTrainerOptions
        {
            Epochs = epochs,
            BatchSize = 4,
            Workers = workers,
            LogEverySteps = 1,
            Views = new CvrlViewOptions { CropSize = 112, Reader = reader, Sampler = new() { FramesPerClip = 16, Stride = 2 } },
            Head = new Cvrl.Models.ProjectionHeadOptions { HiddenDim = 256, OutputDim = 64 },
        };
        using var trainer = new Cvrl.Training.CvrlTrainer(encoder, options);
        var reports = new List<Cvrl.Training.TrainingProgress>();
        trainer.Fit(data, new TrainerBenchmark.Recorder(reports.Add));
        var steady = reports.Where(r => r.Step >= 3).ToList();
        return (Machine.Median([.. steady.Select(r => r.ClipsPerSecond)]), Machine.Median([.. steady.Select(r => r.DataWaitShare)]));
    }

    private static long DecodeOnly(string path, IntervalSampler sampler, VideoReaderOptions options, int index)
    {
        using var reader = VideoReader.Open(path, options);
        int n = reader.FrameCount;
        var pair = sampler.Sample(n, ClipRandom.For(1, 0, index, ClipRandom.TemporalStream));
        foreach (var clip in reader.ReadClips([pair.First.Indices(n), pair.Second.Indices(n)]))
        {
            clip.Dispose();
        }

        return reader.FramesDecoded;
    }

    private static void Full(CvrlViewGenerator generator, string path, int index)
    {
        using var views = generator.Generate(path, 1, 0, index);
    }

    private static double Psnr(string original, string prepared)
    {
        using var a = VideoReader.Open(original, new VideoReaderOptions { ShortSide = 256 });
        using var b = VideoReader.Open(prepared);
        int[] frames = [.. Enumerable.Range(0, 60).Select(i => i * (b.FrameCount / 60))];
        var x = a.ReadClipBytes([frames])[0];
        var y = b.ReadClipBytes([frames])[0];
        int plane = x.Length / 3 / frames.Length;
        double total = 0;
        for (int t = 0; t < frames.Length; t++)
        {
            double se = 0;
            for (int c = 0; c < 3; c++)
            {
                int start = ((c * frames.Length) + t) * plane;
                for (int i = start; i < start + plane; i++)
                {
                    double d = x[i] - y[i];
                    se += d * d;
                }
            }

            double mse = se / (3.0 * plane);
            total += 10 * Math.Log10(255.0 * 255.0 / Math.Max(mse, 1e-12));
        }

        return total / frames.Length;
    }

    /// <summary>A generated H.264 video (testsrc2 with noise, a key frame every 250 frames, 3 B-frames), made once.</summary>
    internal static string MakeVideo(string path, string size, int seconds, int variant, int rate = 30)
    {
        if (File.Exists(path))
        {
            return path;
        }

        string tmp = path + ".tmp.mp4";
        string source = $"testsrc2=size={size}:rate={rate},hue=h={variant * 60},noise=alls=8:allf=t+u";
        var start = new ProcessStartInfo("ffmpeg", $"-v error -y -f lavfi -i \"{source}\" -t {seconds} -c:v libx264 -preset veryfast -g 250 -keyint_min 250 -sc_threshold 0 -bf 3 -pix_fmt yuv420p -an \"{tmp}\"")
        {
            UseShellExecute = false,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException("ffmpeg could not be started (scripts/setup.sh installs it)");
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"ffmpeg failed: {error}");
        }

        File.Move(tmp, path);
        return path;
    }
}
