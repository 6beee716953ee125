using System.Diagnostics;
using System.Globalization;
using Cvrl.Data;
using Cvrl.Embeddings;
using Cvrl.Models;
using Cvrl.Video;
using TorchSharp;

namespace Cvrl.Benchmarks;

/// <summary>
/// Issue 29's speed benchmark: dense window features of a generated 10-minute 640x360 H.264 video (a key frame every
/// 250 frames, B-frames) and of its prepared copy, in windows per second, against the encoder alone on the same batch
/// (the bound: windows already in memory) and against the naive approach, each window read on its own (a reader
/// opened, the window's frames reached by the reader's best path and decoded, resized and cropped), all in the same
/// run. The naive rate is measured on windows spread evenly over the video and applies to all of them.
/// </summary>
internal static class DenseBenchmark
{
    public static int Run(string[] args)
    {
        int seconds = AugmentBenchmark.Option(args, "--seconds", 600);
        string size = AugmentBenchmark.OptionText(args, "--size", "640x360");
        int window = AugmentBenchmark.Option(args, "--window", 16);
        int stride = AugmentBenchmark.Option(args, "--stride", 1);
        int step = AugmentBenchmark.Option(args, "--step", 8);
        int crop = AugmentBenchmark.Option(args, "--crop", 112);
        int depth = AugmentBenchmark.Option(args, "--depth", 18);
        double width = double.Parse(AugmentBenchmark.OptionText(args, "--width", "1"), CultureInfo.InvariantCulture);
        int batch = AugmentBenchmark.Option(args, "--batch", 16);
        int naiveWindows = AugmentBenchmark.Option(args, "--naive-windows", 48);
        string dir = AugmentBenchmark.OptionText(args, "--dir", Path.Combine(Path.GetTempPath(), "cvrl-bench-dense"));
        var ci = CultureInfo.InvariantCulture;

        string originals = Path.Combine(dir, "originals");
        Directory.CreateDirectory(originals);
        string video = DataBenchmark.MakeVideo(Path.Combine(originals, $"long_{size}_{seconds}s.mp4"), size, seconds, variant: 0, rate: 25);
        string preparedFolder = Path.Combine(dir, "prepared");
        _ = VideoPreparation.Prepare(originals, preparedFolder, new PreparationOptions { Workers = Environment.ProcessorCount });
        string prepared = Path.Combine(preparedFolder, Path.GetFileName(video) + PreparedVideo.Extension);

        torch.manual_seed(0);
        using var encoder = ResNet3d.OfDepth(depth, width);
        encoder.eval();
        var views = new TestViewOptions { Clips = 1, Crops = 1, FramesPerClip = window, Stride = stride, ShortSide = crop * 8 / 7, CropSize = crop };
        var embedder = new VideoEmbedder(encoder, new EmbeddingOptions { Views = views, BatchSize = batch });
        var options = new WindowOptions { Step = step, BatchSize = batch, Workers = 1 };

        // The bound: the encoder alone, on batches of windows already in memory.
        int bytesPerWindow = 3 * window * crop * crop;
        var bytes = new byte[batch * bytesPerWindow];
        new Random(1).NextBytes(bytes);
        _ = embedder.EncodeForBenchmark(bytes, batch, normalize: false);
        var (encoded, encodeSeconds) = EncoderAlone(embedder, bytes, batch);

        var rows = new List<(string Name, int Windows, double Seconds, double FramesPerWindow)>();
        foreach (var (name, path) in new[] { ("H.264 original", video), ("prepared copy (JPEG frames)", prepared) })
        {
            var watch = Stopwatch.StartNew();
            var features = embedder.ExtractWindows(path, options);
            double elapsed = watch.Elapsed.TotalSeconds;
            rows.Add(($"dense: {name}, decoded once in order", features.Windows.Count, elapsed, (double)features.Frames / features.Windows.Count));
            Console.Error.WriteLine(string.Create(ci, $"dense: {name}: {features.Windows.Count} windows in {elapsed:0} s"));

            var (naiveCount, naiveSeconds, naiveFrames) = Naive(embedder, path, views, features.Frames, step, naiveWindows, batch);
            rows.Add(($"naive: {name}, each window read on its own", naiveCount, naiveSeconds, naiveFrames));
            Console.Error.WriteLine(string.Create(ci, $"naive: {name}: {naiveCount} windows in {naiveSeconds:0} s"));
        }

        // Measured again after the extraction runs, and the faster of the two kept: the bound is the best the encoder did.
        var (again, againSeconds) = EncoderAlone(embedder, bytes, batch);
        if (again / againSeconds > encoded / encodeSeconds)
        {
            (encoded, encodeSeconds) = (again, againSeconds);
        }

        double encoderRate = encoded / encodeSeconds;
        Console.WriteLine("### Dense window features: decoded once against the encoder alone and per-window reads (issue 29)");
        Console.WriteLine();
        Console.WriteLine($"Command: `dotnet run -c Release --project benchmarks/Cvrl.Benchmarks -- dense --seconds {seconds} --size {size} --window {window} --stride {stride} --step {step} --crop {crop} --depth {depth} --width {width.ToString(ci)} --batch {batch} --naive-windows {naiveWindows}`  ");
        Console.WriteLine($"Machine: {Machine.Describe()}  ");
        Console.WriteLine(string.Create(ci, $"Video: {seconds} s of {size} H.264 at 25 fps (testsrc2 with noise; key frame every 250 frames, 3 B-frames) and its prepared copy (short side 256, JPEG). Windows: {window} frames at stride {stride}, short side {views.ShortSide}, centre crop {crop}, one every {step} frames. Encoder: R3D-{depth} x{width} (random weights: speed does not depend on them), float32, batches of {batch}, TorchSharp with its default threads; one decoding thread. Bound (same run): the encoder alone on batches already in memory, {encoderRate:0.00} windows/s (the faster of a measurement before and one after the extraction runs, each at least 60 s and 8 batches). Naive: {naiveWindows} windows spread evenly, each with its own reader (seeking where the reader's measurements say it pays)."));
        Console.WriteLine();
        Console.WriteLine("| path | windows | time | windows/s | vs encoder alone | frames decoded per window |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|");
        Console.WriteLine(string.Create(ci, $"| encoder alone (bound) | {encoded} | {encodeSeconds:0} s | {encoderRate:0.00} | 100% | 0 |"));
        foreach (var (name, count, time, frames) in rows)
        {
            double rate = count / time;
            Console.WriteLine(string.Create(ci, $"| {name} | {count:N0} | {time:0} s | {rate:0.00} | {100 * rate / encoderRate:0}% | {frames:0.0} |"));
        }

        Console.WriteLine();
        return 0;
    }

    /// <summary>The encoder alone on one batch already in memory, repeated for at least 60 s and 8 batches: (windows, seconds).</summary>
    private static (int Windows, double Seconds) EncoderAlone(VideoEmbedder embedder, byte[] bytes, int batch)
    {
        var watch = Stopwatch.StartNew();
        int encoded = 0;
        while (watch.Elapsed.TotalSeconds < 60 || encoded < 8 * batch)
        {
            _ = embedder.EncodeForBenchmark(bytes, batch, normalize: false);
            encoded += batch;
        }

        return (encoded, watch.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// Windows read one at a time: for each, a reader opened on the file, its frames reached and decoded
    /// (<see cref="VideoReader.ReadClipBytes"/>), resized on the short side and centre-cropped, then encoded in batches.
    /// </summary>
    private static (int Windows, double Seconds, double FramesPerWindow) Naive(VideoEmbedder embedder, string path, TestViewOptions views, int frames, int step, int count, int batch)
    {
        int span = ((views.FramesPerClip - 1) * views.Stride) + 1;
        int last = (frames - span) / step;
        var starts = Enumerable.Range(0, count).Select(k => (int)Math.Round((double)k * last / Math.Max(1, count - 1)) * step).Distinct().ToList();
        int s = views.CropSize;
        int bytesPerWindow = 3 * views.FramesPerClip * s * s;
        var pending = new byte[batch * bytesPerWindow];
        int inBatch = 0;
        long decoded = 0;
        var watch = Stopwatch.StartNew();
        foreach (int start in starts)
        {
            using var reader = VideoReader.Open(path, new VideoReaderOptions());
            int h = reader.Info.OutputHeight, w = reader.Info.OutputWidth;
            var (rh, rw) = ViewGeometry.ShortSideSize(h, w, views.ShortSide);
            int[] indices = [.. Enumerable.Range(0, views.FramesPerClip).Select(t => start + (t * views.Stride))];
            byte[] clip = reader.ReadClipBytes([indices])[0];
            decoded += reader.FramesDecoded;
            var resized = new byte[3 * views.FramesPerClip * rh * rw];
            ViewGeometry.ResizedCrop(clip, resized, PixelDepth.UInt8, 3 * views.FramesPerClip, h, w, CropBox.Full(h, w), rh, rw);
            ViewGeometry.ResizedCrop(resized, pending.AsSpan(inBatch * bytesPerWindow, bytesPerWindow), PixelDepth.UInt8, 3 * views.FramesPerClip, rh, rw, ViewGeometry.CenterCropBox(rh, rw, s, s), s, s);
            if (++inBatch == batch)
            {
                _ = embedder.EncodeForBenchmark(pending, inBatch, normalize: false);
                inBatch = 0;
            }
        }

        if (inBatch > 0)
        {
            _ = embedder.EncodeForBenchmark(pending.AsSpan(0, inBatch * bytesPerWindow), inBatch, normalize: false);
        }

        return (starts.Count, watch.Elapsed.TotalSeconds, (double)decoded / starts.Count);
    }
}
