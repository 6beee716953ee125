using Cvrl.Embeddings;
using Cvrl.Models.Onnx;
using Cvrl.Onnx;
using Cvrl.Testing;
using Cvrl.Video;

namespace Cvrl.Tests;

/// <summary>
/// Dense window features and moment search: window times exact on constant and variable frame rates, a window's
/// feature the embedder's feature of the same clip, the two runtimes agreeing, NumPy reading the files, adjacent hits
/// merged, and a planted copy found where it was planted.
/// </summary>
[Collection("Torch")]
public sealed class MomentTests
{
    /// <summary>Windows of 4 frames at stride 2 (7 frames each), centre crops of 32 at short side 32.</summary>
    private static EmbeddingOptions Views => EmbeddingTests.Small() with { Views = EmbeddingTests.Small().Views! with { Clips = 1 } };

    [Fact]
    public void Window_times_are_exact_on_constant_and_variable_frame_rates()
    {
        using var dir = new TempDirectory();
        string cfr = FfmpegVideos.Create(dir.Path, FfmpegKind.H264Mp4, 100, 64, 48);
        string vfr = FfmpegVideos.Create(dir.Path, FfmpegKind.VfrMp4, 100, 64, 48); // every tenth frame dropped, the rest keep their times
        using var encoder = TrainerTests.TinyEncoder();
        var embedder = new VideoEmbedder(encoder, Views);

        var c = embedder.ExtractWindows(cfr, new WindowOptions { Step = 8 });
        Assert.Equal(100, c.Frames);
        Assert.Equal(25, c.FramesPerSecond, 6);
        Assert.Equal(Enumerable.Range(0, 12).Select(w => 8 * w), c.Windows.Select(w => w.StartFrame)); // starts up to 93 (the last frame is 99)
        Assert.All(c.Windows, w =>
        {
            Assert.Equal(w.StartFrame / 25.0, w.StartSeconds, 6);
            Assert.Equal((w.StartFrame + 7) / 25.0, w.EndSeconds, 6);
        });
        Assert.Equal(c.Windows.Count * c.Dim, c.Features.Length);

        // Variable frame rate: decoded frame k is original frame n (the n with n % 10 == 7 are gone), shown at n / 25 s;
        // a window ends one frame at the container's nominal rate after its last frame.
        int[] original = [.. Enumerable.Range(0, 100).Where(n => n % 10 != 7)];
        var v = embedder.ExtractWindows(vfr, new WindowOptions { Step = 8 });
        Assert.Equal(original.Length, v.Frames);
        Assert.All(v.Windows, w =>
        {
            Assert.Equal(original[w.StartFrame] / 25.0, w.StartSeconds, 6);
            Assert.Equal((original[w.StartFrame + 6] / 25.0) + (1 / v.FramesPerSecond), w.EndSeconds, 6);
        });

        // A step in seconds: a window starts at the first frame at or after each multiple of 0.5 s.
        var bySeconds = embedder.ExtractWindows(cfr, new WindowOptions { StepSeconds = 0.5 });
        Assert.Equal([0, 13, 25, 38, 50, 63, 75, 88], bySeconds.Windows.Select(w => w.StartFrame));
        var vfrSeconds = embedder.ExtractWindows(vfr, new WindowOptions { StepSeconds = 0.5 });
        Assert.All(vfrSeconds.Windows.Skip(1), w => Assert.True(w.StartSeconds >= 0.5 * Math.Round(w.StartSeconds / 0.5) - 1e-9));
    }

    [Fact]
    public void A_windows_feature_is_the_embedders_feature_of_the_same_clip_in_both_runtimes()
    {
        using var dir = new TempDirectory();
        var paths = VideoFolders.Create(dir.File("videos"), 2, frames: 30, width: 56, height: 40, seed: 3);
        using var encoder = OnnxEmbeddingTests.RandomEncoder(seed: 4);
        var views = Views with { Views = Views.Views! with { FramesPerClip = 8, Stride = 1 } }; // R3D-18 takes 8 frames at least
        var torchEmbedder = new VideoEmbedder(encoder, views);

        // The embedder's one clip of a video starts at frame 0: the first window, normalised, is that clip's embedding.
        var windows = torchEmbedder.ExtractWindows(paths[0], new WindowOptions { Step = 3, Normalize = true });
        float[] clip = torchEmbedder.Embed(paths[0]);
        Assert.Equal(0, windows.Windows[0].StartFrame);
        for (int d = 0; d < clip.Length; d++)
        {
            TorchAssert.Near(clip[d], windows[0][d], 1e-4, 1e-5); // batches of another size: the same sums in other orders
        }

        // ONNX Runtime computes the same raw features for every window.
        OnnxExporter.Export(encoder, dir.File("encoder.onnx"));
        using var onnx = OnnxEncoder.Load(dir.File("encoder.onnx"), new OnnxSessionOptions { IntraOpThreads = 1 });
        var onnxEmbedder = new OnnxVideoEmbedder(onnx, views);
        var inputs = paths.Select(p => new EmbeddingInput(p, Path.GetFileName(p))).ToList();
        var a = torchEmbedder.ExtractWindows(inputs, new WindowOptions { Step = 5, BatchSize = 3 }).ToList();
        var b = onnxEmbedder.ExtractWindows(inputs, new WindowOptions { Step = 5, BatchSize = 4, Workers = 1 }).ToList();
        Assert.Equal([0, 1], a.Select(x => x.Index));
        Assert.Equal([0, 1], b.Select(x => x.Index));
        for (int v = 0; v < 2; v++)
        {
            var x = a[v].Features!;
            var y = b[v].Features!;
            Assert.Equal(x.Windows, y.Windows);
            double scale = x.Features.Max(Math.Abs);
            for (int i = 0; i < x.Features.Length; i++)
            {
                TorchAssert.Near(x.Features[i], y.Features[i], 1e-4, 1e-4 * scale);
            }
        }
    }

    [Fact]
    public void Npy_files_load_in_numpy_with_the_same_values()
    {
        using var dir = new TempDirectory();
        var values = Enumerable.Range(0, 3 * 5).Select(i => (float)((i * 0.37) - 2.1)).ToArray();
        string path = dir.File("windows.npy");
        NpyFile.Write(path, values, 3, 5);
        var (back, rows, cols) = NpyFile.Read(path);
        Assert.Equal((3, 5), (rows, cols));
        Assert.Equal(values, back);

        // Debian's NumPy (scripts/setup.sh installs python3-numpy) reads the file as a float32 [3, 5] matrix.
        string output = WindowIndexTests.Python($"import numpy; a = numpy.load('{path}'); print(a.dtype, a.shape, repr(float(a[1, 2])), repr(float(a.sum(dtype=numpy.float64))))");
        double sum = values.Sum(v => (double)v);
        Assert.Equal(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"float32 (3, 5) {(double)values[7]:R} {sum:R}"), output);
    }

    [Fact]
    public void Adjacent_hits_of_one_moment_merge_and_weaker_overlapping_windows_are_suppressed()
    {
        var set = new EmbeddingSet(2, "test");
        void Add(string video, double start, double end, double angle) => set.Add(MomentKey.Format(video, start, end), [(float)Math.Cos(angle), (float)Math.Sin(angle)]);
        Add("a.mp4", 0.0, 1.0, 0.40);
        Add("a.mp4", 0.5, 1.5, 0.02);  // the best window
        Add("a.mp4", 1.0, 2.0, 0.05);  // adjacent, nearly as good: merges
        Add("a.mp4", 1.5, 2.5, 0.45);  // overlapping the moment, much weaker: suppressed
        Add("a.mp4", 8.0, 9.0, 0.10);  // far away in the same video: its own moment
        Add("b.mp4", 3.0, 4.0, 0.03);  // another video
        var moments = MomentSearch.Search(set, [1, 0], new MomentSearchOptions { Top = 5, MergeDrop = 0.01 });
        Assert.Equal(["a.mp4", "b.mp4", "a.mp4"], moments.Select(m => m.Video));
        Assert.Equal((0.5, 2.0, 2), (moments[0].StartSeconds, moments[0].EndSeconds, moments[0].Windows));
        Assert.Equal((8.0, 9.0), (moments[2].StartSeconds, moments[2].EndSeconds));
        Assert.Equal(3, moments.Count);

        // A set of whole videos gives whole-video moments; keys without a span parse as none.
        Assert.False(MomentKey.TryParse("clip@night.mp4", out _, out _, out _));
        Assert.True(MomentKey.TryParse("a@b.mp4@1.50-3.00", out string video, out double s, out double e));
        Assert.Equal(("a@b.mp4", 1.5, 3.0), (video, s, e));
    }

    /// <summary>
    /// A 3-second span of one generated video spliced into another at 12 s (MJPEG, so the copied frames decode to the
    /// same pixels): an aligned search with that span of the first video finds the second at 12.00 s, first, in a set of
    /// windows and in an index; the mean of the span's windows ranks a moment of the copy first; one window as the query
    /// finds its copy at 12.00 s.
    /// </summary>
    [Fact]
    public void A_planted_copy_is_ranked_first_and_found_where_it_was_planted()
    {
        using var dir = new TempDirectory();
        string videos = PlantedCopy.Create(dir.File("videos"));
        string source = Path.Combine(videos, "source.avi");
        using var encoder = TrainerTests.TinyEncoder(5);
        var embedder = new VideoEmbedder(encoder, Views);
        var set = embedder.EmbedWindows(Directory.GetFiles(videos), videos, new WindowOptions { Step = 5 });
        Assert.All(set.Keys, k => Assert.True(MomentKey.TryParse(k, out _, out _, out _), k));

        // The query: the source's windows inside 4.0-7.0 s (frames 100 to 175, copied to 300-375 of the host); its own
        // span is left out of the results.
        var q = embedder.ExtractWindows(source, new WindowOptions { Step = 5, Normalize = true });
        var span = SpanQuery.FromWindows(q, 4.0, 7.0);
        var own = new MomentSpan("source.avi", 4.0, 7.0);
        double step = 5 / 25.0;

        // Aligned: each of the span's windows against the window at its offset; the copy matches at exactly 12.00 s.
        var aligned = MomentSearch.SearchAligned(set, span, new MomentSearchOptions { Top = 3 }, own);
        Assert.Equal("host.avi", aligned[0].Video);
        Assert.True(Math.Abs(aligned[0].StartSeconds - 12.0) <= step, $"the copy was planted at 12.00 s; found {aligned[0].StartSeconds:0.00}-{aligned[0].EndSeconds:0.00}");
        Assert.Equal(12.0, aligned[0].StartSeconds, 6);
        Assert.True(aligned[0].Score > 0.9999f, $"score {aligned[0].Score}");
        Assert.True(aligned[1].Score < aligned[0].Score - 1e-4, $"the runner-up {aligned[1]} scores as the copy");

        // The same search over a window index (memory-mapped rows) finds the same moment with the same score.
        using (var index = embedder.IndexWindows(Directory.GetFiles(videos), dir.File("index"), videos, new WindowOptions { Step = 5 }))
        {
            var fromIndex = MomentSearch.SearchAligned(index, span, new MomentSearchOptions { Top = 3 }, own);
            Assert.Equal(aligned.Select(m => (m.Video, m.StartSeconds, m.EndSeconds)), fromIndex.Select(m => (m.Video, m.StartSeconds, m.EndSeconds)));
            TorchAssert.Near(aligned[0].Score, fromIndex[0].Score, 1e-5, 1e-5);
        }

        // The mean of the span's windows: a moment of the host ranks first, its best window inside the copy.
        var moments = MomentSearch.Search(set, span.Mean(), new MomentSearchOptions { Top = 3, MergeDrop = 0.002 }, own);
        var best = moments[0];
        Assert.Equal("host.avi", best.Video);
        Assert.True(MomentKey.TryParse(set.Keys[best.Index], out _, out double bestStart, out double bestEnd));
        Assert.True(bestStart >= 12.0 - 1e-9 && bestEnd <= 15.0 + 1e-9, $"the best window {bestStart:0.00}-{bestEnd:0.00} lies outside the copy at 12.00-15.00");
        Assert.DoesNotContain(moments.Skip(1), m => m.Video == "host.avi" && m.StartSeconds < 15.0 && m.EndSeconds > 12.0); // one moment, not several

        // One window as the query: the copy of that window (the same decoded pixels) is found where it was planted.
        int at4 = q.Windows.ToList().FindIndex(w => w.StartFrame == 100);
        var single = MomentSearch.Search(set, q[at4], new MomentSearchOptions { Top = 1, MergeDrop = 0 }, own)[0];
        Assert.True(MomentKey.TryParse(set.Keys[single.Index], out string singleVideo, out double singleStart, out _));
        Assert.Equal(("host.avi", 12.0), (singleVideo, singleStart));
        TorchAssert.Near(1.0, single.Score, 1e-5, 1e-5); // the same pixels in batches of other sizes
    }
}
