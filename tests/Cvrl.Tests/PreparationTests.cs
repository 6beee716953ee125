using Cvrl.Augment.Video;
using Cvrl.Data;
using Cvrl.Testing;
using Cvrl.Video;
using OpenCvSharp;

namespace Cvrl.Tests;

/// <summary>
/// <c>cvrl prepare</c>'s library side: prepared frames equal the resized original frames (exactly when raw, within a
/// stated PSNR as JPEG), class folders and split lists carry over, and a run resumes, re-prepares changed files, names
/// bad ones and removes prepared files whose original is gone.
/// </summary>
[Collection("Torch")]
public sealed class PreparationTests
{
    /// <summary>
    /// The least mean PSNR (dB) a JPEG-prepared frame keeps against the original at the defaults (quality 90, 4:4:4) on
    /// <see cref="TestVideos"/> content (sharp black and white blocks, thin coloured lines): measured 42.9 dB here; 38
    /// leaves about 5 dB for other libjpeg builds and SIMD paths (docs/data.md gives the numbers for other content).
    /// </summary>
    private const double MinJpegPsnr = 38;

    private static string Source(TempDirectory dir)
    {
        string root = dir.File("originals");
        TestVideos.Create(Path.Combine(root, "walk", "a.avi"), 40, 96, 72);
        TestVideos.Create(Path.Combine(root, "walk", "b.avi"), 30, 96, 72);
        TestVideos.Create(Path.Combine(root, "run", "c.avi"), 50, 96, 72);
        File.WriteAllText(Path.Combine(root, "classInd.txt"), "1 run\n2 walk\n");
        File.WriteAllText(Path.Combine(root, "trainlist01.txt"), "walk/a.avi 2\nrun/c.avi 1\n");
        File.WriteAllText(Path.Combine(root, "testlist01.txt"), "walk/b.avi\n");
        File.WriteAllText(Path.Combine(root, "README.md"), "not a list file, not a video");
        return root;
    }

    [Fact]
    public void RawPreparedFrames_AreExactlyTheResizedOriginalFrames()
    {
        using var dir = new TempDirectory();
        string original = TestVideos.Create(dir.File("v.avi"), 45, 160, 120);
        string prepared = dir.File("v.avi.cvrlvid");
        var header = PreparedVideo.Write(original, prepared, new PreparedVideoOptions { ShortSide = 64, Encoding = FrameEncoding.Raw });
        Assert.Equal((45, 85, 64), (header.Frames, header.Width, header.Height)); // 160 * 64 / 120 = 85.3, rounded down
        int[][] clips = [[44, 0, 7, 7], [.. Enumerable.Range(10, 16)]];
        using var reference = VideoReader.Open(original, new VideoReaderOptions { ShortSide = 64, Seek = SeekMode.Sequential });
        using var direct = VideoReader.Open(prepared);
        Assert.Equal(FrameAccess.Direct, direct.Access);
        Assert.Equal(45, direct.FrameCount);
        Assert.True(direct.IsFrameCountVerified);
        var a = reference.ReadClipBytes(clips);
        var b = direct.ReadClipBytes(clips);
        for (int k = 0; k < clips.Length; k++)
        {
            Assert.True(a[k].AsSpan().SequenceEqual(b[k]), $"clip {k} differs");
        }

        // Reading a prepared file at another short side resizes its frames like any video's.
        using var smaller = VideoReader.Open(prepared, new VideoReaderOptions { ShortSide = 32 });
        Assert.Equal((32, 42), (smaller.Info.OutputHeight, smaller.Info.OutputWidth));
    }

    [Fact]
    public void JpegPreparedFrames_StayWithinTheStatedPsnr_AndKeepTheirIndex()
    {
        using var dir = new TempDirectory();
        string original = TestVideos.Create(dir.File("v.avi"), 30, 160, 120);
        string prepared = dir.File("v.cvrlvid");
        var header = PreparedVideo.Write(original, prepared, new PreparedVideoOptions { ShortSide = null });
        Assert.Equal(FrameEncoding.Jpeg, header.Encoding);
        Assert.Equal(90, header.JpegQuality);
        int[] all = [.. Enumerable.Range(0, 30)];
        using var reference = VideoReader.Open(original);
        using var direct = VideoReader.Open(prepared);
        using var a = reference.ReadClip(all);
        using var b = direct.ReadClip(all);
        Assert.Equal(all, Enumerable.Range(0, 30).Select(t => TestVideos.ReadIndex(b, t)));
        using var diff = (a.to_type(TorchSharp.torch.ScalarType.Float64) - b.to_type(TorchSharp.torch.ScalarType.Float64)).pow(2).mean([0, 2, 3]);
        double[] mse = diff.data<double>().ToArray();
        double psnr = mse.Select(m => 10 * Math.Log10(255.0 * 255.0 / Math.Max(m, 1e-12))).Average();
        Assert.True(psnr >= MinJpegPsnr, $"mean PSNR {psnr:F1} dB below {MinJpegPsnr} dB");
        Assert.True(mse.Max() > 0, "JPEG is lossy; identical frames would mean the test compares the wrong thing");
    }

    [Fact]
    public void Prepare_KeepsFoldersAndSplits_WritesTheIndex_AndTheCopyTrainsLikeTheOriginal()
    {
        using var dir = new TempDirectory();
        string root = Source(dir);
        VideoFolders.Corrupt(Path.Combine(root, "run"), "broken.avi");
        string output = dir.File("prepared");
        var report = VideoPreparation.Prepare(root, output, new PreparationOptions { Video = new() { ShortSide = 48 }, Workers = 2 });
        Assert.Equal(4, report.Videos);
        Assert.Equal(3, report.Prepared);
        var bad = Assert.Single(report.Bad);
        Assert.EndsWith("broken.avi", bad.Path, StringComparison.Ordinal);
        Assert.Contains("could not open", bad.Reason, StringComparison.Ordinal);
        Assert.Equal(["README.md"], report.LeftOut.Select(Path.GetFileName));
        Assert.Equal(["classInd.txt", "testlist01.txt", "trainlist01.txt"], report.CopiedListFiles.Order(StringComparer.Ordinal));
        Assert.Equal(120, report.Frames);
        Assert.True(File.Exists(Path.Combine(output, "walk", "a.avi.cvrlvid")));
        Assert.False(File.Exists(Path.Combine(output, "run", "broken.avi.cvrlvid")));

        // Class folders: the same classes and labels.
        var classes = VideoDataset.FromClassFolders(output);
        Assert.Equal(["run", "walk"], classes.Classes);
        Assert.Equal([0, 1, 1], classes.Items.Select(i => i.Label));

        // Split lists name the originals; they resolve to the prepared copies.
        var train = VideoDataset.FromSplitList(output, Path.Combine(output, "classInd.txt"), Path.Combine(output, "trainlist01.txt"));
        Assert.Equal(["a.avi.cvrlvid", "c.avi.cvrlvid"], train.Items.Select(i => Path.GetFileName(i.Path)));
        Assert.Equal([1, 0], train.Items.Select(i => i.Label));

        // The index came with the copy: verifying decodes nothing, and every video is read directly.
        var index = VideoIndex.Build(classes.Items.Select(i => i.Path), null, output);
        Assert.Equal(3, index.FromCache);
        Assert.All(index.Videos, v => Assert.Equal((FrameAccess.Direct, VideoStatus.Ok), (v.Access, v.Status)));
        Assert.Equal([50, 40, 30], VideoDataset.FromFolder(output).Verify().Items.Select(i => i.Frames!.Value));
    }

    [Fact]
    public void Prepare_Resumes_SkipsWhatIsDone_RepreparesChangedFiles_AndRemovesOrphans()
    {
        using var dir = new TempDirectory();
        string root = Source(dir);
        string output = dir.File("prepared");
        var options = new PreparationOptions { Video = new() { ShortSide = 48 }, Workers = 1 };

        // Stopped after the first video: what was complete stays complete, nothing half-written remains.
        using (var cts = new CancellationTokenSource())
        {
            var progress = new SyncProgress<PreparationProgress>(p =>
            {
                if (p.Prepared >= 1)
                {
                    cts.Cancel();
                }
            });
            Assert.ThrowsAny<OperationCanceledException>(() => VideoPreparation.Prepare(root, output, options, progress, null, cts.Token));
        }

        var after = Directory.GetFiles(output, "*", SearchOption.AllDirectories);
        Assert.DoesNotContain(after, f => f.EndsWith(".partial", StringComparison.Ordinal));
        var complete = after.Where(PreparedVideo.IsPrepared).ToList();
        Assert.NotEmpty(complete);
        Assert.All(complete, f => Assert.True(PreparedVideo.ReadHeader(f).Frames > 0));

        // A leftover of a killed run (no trailer) is removed and its video prepared again.
        File.WriteAllBytes(PreparedVideo.PartialPath(Path.Combine(output, "run", "c.avi.cvrlvid")), [1, 2, 3]);
        var resumed = VideoPreparation.Prepare(root, output, options);
        Assert.Equal(complete.Count, resumed.UpToDate);
        Assert.Equal(3 - complete.Count, resumed.Prepared);
        Assert.Empty(Directory.GetFiles(output, "*.partial", SearchOption.AllDirectories));

        var again = VideoPreparation.Prepare(root, output, options);
        Assert.Equal((3, 0), (again.UpToDate, again.Prepared));

        // A changed original is prepared again; other options prepare everything again.
        string changed = Path.Combine(root, "walk", "b.avi");
        TestVideos.Create(changed, 20, 96, 72);
        var afterChange = VideoPreparation.Prepare(root, output, options);
        Assert.Equal((2, 1), (afterChange.UpToDate, afterChange.Prepared));
        Assert.Equal(20, PreparedVideo.ReadHeader(Path.Combine(output, "walk", "b.avi.cvrlvid")).Frames);
        var otherSize = VideoPreparation.Prepare(root, output, options with { Video = new() { ShortSide = 40 } });
        Assert.Equal(3, otherSize.Prepared);

        // An original that is gone takes its prepared copy with it.
        File.Delete(Path.Combine(root, "run", "c.avi"));
        var removed = VideoPreparation.Prepare(root, output, options with { Video = new() { ShortSide = 40 } });
        Assert.Equal(["run/c.avi.cvrlvid"], removed.Removed);
        Assert.False(File.Exists(Path.Combine(output, "run", "c.avi.cvrlvid")));
    }

    [Fact]
    public void Prepare_RemembersBadOriginals_UntilTheyChange()
    {
        using var dir = new TempDirectory();
        string root = dir.File("originals");
        TestVideos.Create(Path.Combine(root, "good.avi"), 20, 64, 48);
        string broken = VideoFolders.Corrupt(root, "broken.mp4");
        string output = dir.File("prepared");
        var first = VideoPreparation.Prepare(root, output);
        Assert.Equal(broken, Assert.Single(first.Bad).Path);
        var second = VideoPreparation.Prepare(root, output);
        Assert.Equal((1, 0), (second.UpToDate, second.Prepared));
        Assert.Equal(first.Bad, second.Bad);

        // Repaired: now it is prepared.
        File.Delete(broken);
        TestVideos.Create(Path.Combine(root, "broken.mp4"), 12, 64, 48, VideoCodec.Mpeg4);
        var third = VideoPreparation.Prepare(root, output);
        Assert.Empty(third.Bad);
        Assert.Equal(1, third.Prepared);
    }

    [Fact]
    public void Prepare_RejectsTheSourceAsDestination_AndAFileAsDestination()
    {
        using var dir = new TempDirectory();
        string root = Source(dir);
        Assert.Throws<ArgumentException>(() => VideoPreparation.Prepare(root, root));
        string file = dir.File("a-file");
        File.WriteAllText(file, "x");
        Assert.Throws<ArgumentException>(() => VideoPreparation.Prepare(root, file));
        Assert.Throws<DirectoryNotFoundException>(() => VideoPreparation.Prepare(dir.File("missing"), dir.File("out")));
        Assert.Throws<ArgumentOutOfRangeException>(() => VideoPreparation.Prepare(root, dir.File("out"), new PreparationOptions { Video = new() { JpegQuality = 0 } }));
    }

    [Fact]
    public void DamagedPreparedFiles_AreNamedAsSuch()
    {
        using var dir = new TempDirectory();
        string original = TestVideos.Create(dir.File("v.avi"), 10, 64, 48);
        string prepared = dir.File("v.cvrlvid");
        PreparedVideo.Write(original, prepared);
        byte[] bytes = File.ReadAllBytes(prepared);
        string cut = dir.File("cut.cvrlvid");
        File.WriteAllBytes(cut, bytes.AsSpan(0, bytes.Length / 2).ToArray());
        var e = Assert.Throws<VideoDecodeException>(() => VideoReader.Open(cut));
        Assert.Contains("no trailer", e.Message, StringComparison.Ordinal);
        Assert.Equal(VideoDecodeFailure.CannotOpen, e.Failure);
        string text = dir.File("text.cvrlvid");
        File.WriteAllText(text, new string('x', 100));
        Assert.Throws<VideoDecodeException>(() => VideoReader.Open(text));
    }

    [Fact]
    public void Folders_PickUpStreamsAndTransportFiles_WithRealCounts_AndNameWhatTheyLeaveOut()
    {
        using var dir = new TempDirectory();
        string root = dir.File("mixed");
        Directory.CreateDirectory(root);
        FfmpegVideos.Create(root, FfmpegKind.H264Ts, 90, 64, 48, "camera");
        FfmpegVideos.Create(root, FfmpegKind.H264Raw, 80, 64, 48, "stream");
        TestVideos.Create(Path.Combine(root, "clip.avi"), 70, 64, 48);
        File.WriteAllText(Path.Combine(root, "subtitles.srt"), "1\n00:00:00,000 --> 00:00:01,000\nhello\n");
        var data = VideoDataset.FromFolder(root);
        Assert.Equal(["camera.ts", "clip.avi", "stream.h264"], data.Items.Select(i => Path.GetFileName(i.Path)));
        Assert.Equal(["subtitles.srt"], data.LeftOut.Select(Path.GetFileName));
        var verified = data.Verify(new VideoIndexOptions { UseCache = false });
        Assert.Equal([90, 70, 80], verified.Items.Select(i => i.Frames!.Value));

        // A single file is a data set of one, rooted at its folder.
        var one = VideoDataset.FromPath(Path.Combine(root, "camera.ts"));
        Assert.Equal(root, one.Root);
        Assert.Single(one.Items);
        Assert.Throws<DirectoryNotFoundException>(() => VideoDataset.FromPath(Path.Combine(root, "nothing-here")));
    }

    /// <summary>Reports on the calling thread (Progress{T} posts to the thread pool, too late to cancel precisely).</summary>
    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
