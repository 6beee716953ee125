using Cvrl.Augment.Video;
using Cvrl.Testing;
using Cvrl.Video;
using TorchSharp;

namespace Cvrl.Augment.Tests;

[Collection("Torch")]
public sealed class VideoReaderTests
{
    [Theory]
    [InlineData(VideoCodec.Mjpeg)]
    [InlineData(VideoCodec.Mpeg4)]
    [InlineData(VideoCodec.Xvid)]
    [InlineData(VideoCodec.Ffv1)]
    [InlineData(VideoCodec.Huffyuv)]
    [InlineData(VideoCodec.Png)]
    public void ReadClip_AnyCodec_ReturnsExactlyTheRequestedFrames(VideoCodec codec)
    {
        using var dir = new TempDirectory();
        string path = TestVideos.Create(dir.File("v" + VideoFileWriter.DefaultExtension(codec)), 90, codec: codec);
        using var reader = VideoReader.Open(path);
        Assert.Equal(90, reader.FrameCount);
        Assert.Equal(160, reader.Info.Width);
        Assert.Equal(120, reader.Info.Height);
        TorchAssert.Near(25, reader.Info.FramesPerSecond, 1e-6, 0); // the container stores 25/1
        int[] wanted = [0, 1, 7, 7, 40, 3, 89, 64];
        using var clip = reader.ReadClip(wanted);
        Assert.Equal(new long[] { 3, wanted.Length, 120, 160 }, clip.shape);
        Assert.Equal(torch.ScalarType.Byte, clip.dtype);
        for (int t = 0; t < wanted.Length; t++)
        {
            Assert.Equal(wanted[t], TestVideos.ReadIndex(clip, t));
        }
    }

    [Fact]
    public void ReadClip_LosslessCodec_IsRgbAndPixelExact()
    {
        using var dir = new TempDirectory();
        string path = dir.File("exact.mkv");
        using (var frames = Clips.RandomBytes(3, 5, 32, 48, 3))
        {
            VideoWriterTensors.Write(path, frames, 25, VideoCodec.Png);
            using var reader = VideoReader.Open(path);
            using var back = reader.ReadClip([0, 1, 2, 3, 4]);
            Assert.True(back.eq(frames).all().item<bool>(), "PNG round trip must be exact, channels in RGB order");
        }
    }

    [Fact]
    public void ReadClips_DecodesSeveralClipsInOnePass()
    {
        using var dir = new TempDirectory();
        string path = TestVideos.Create(dir.File("v.avi"), 60);
        using var reader = VideoReader.Open(path);
        var clips = reader.ReadClips([[50, 52, 54], [3, 5, 50]]);
        Assert.Equal(new[] { 50, 52, 54 }, Enumerable.Range(0, 3).Select(t => TestVideos.ReadIndex(clips[0], t)));
        Assert.Equal(new[] { 3, 5, 50 }, Enumerable.Range(0, 3).Select(t => TestVideos.ReadIndex(clips[1], t)));
        Assert.True(clips.All(c => c.is_contiguous()));
        foreach (var c in clips)
        {
            c.Dispose();
        }
    }

    [Fact]
    public void KeyframeVerifiedSeek_GivesTheSameFramesAsSequential()
    {
        using var dir = new TempDirectory();
        string path = TestVideos.Create(dir.File("long.mp4"), 400, 96, 64, VideoCodec.Mpeg4);
        int[] wanted = [350, 352, 10, 399, 200, 201];
        using var seq = VideoReader.Open(path);
        using var seek = VideoReader.Open(path, new VideoReaderOptions { Seek = SeekMode.KeyframeVerified, SeekThreshold = 16 });
        using var a = seq.ReadClip(wanted);
        using var b = seek.ReadClip(wanted);
        Assert.True(a.eq(b).all().item<bool>());
        Assert.Equal(wanted, Enumerable.Range(0, wanted.Length).Select(t => TestVideos.ReadIndex(b, t)));
    }

    [Fact]
    public void ShortSide_ResizesAtDecodeTime()
    {
        using var dir = new TempDirectory();
        string path = TestVideos.Create(dir.File("v.avi"), 5, 160, 120);
        using var reader = VideoReader.Open(path, new VideoReaderOptions { ShortSide = 60 });
        Assert.Equal((60, 80), (reader.Info.OutputHeight, reader.Info.OutputWidth));
        using var clip = reader.ReadClip([0, 4]);
        Assert.Equal(new long[] { 3, 2, 60, 80 }, clip.shape);
    }

    [Fact]
    public void LyingFrameCount_IsCorrected_AndNoFrameIsInvented()
    {
        using var dir = new TempDirectory();
        string path = TruncatedAvi(dir, 60);
        using var reader = VideoReader.Open(path);
        Assert.Equal(60, reader.Info.ReportedFrameCount);
        Assert.False(reader.IsFrameCountVerified);
        var e = Assert.Throws<VideoDecodeException>(() => reader.ReadClip([55]));
        Assert.Equal(VideoDecodeFailure.FrameOutOfRange, e.Failure);
        Assert.True(e.DecodableFrames is > 0 and < 60);
        Assert.True(reader.IsFrameCountVerified);
        Assert.Equal(e.DecodableFrames, reader.FrameCount);

        // The cut can leave a last packet that demuxes but does not decode into a picture: reading it lowers the
        // count by one more, and the frame before it is real.
        TorchSharp.torch.Tensor last;
        try
        {
            last = reader.ReadClip([reader.FrameCount - 1]);
        }
        catch (VideoDecodeException again) when (again.Failure == VideoDecodeFailure.FrameOutOfRange)
        {
            Assert.Equal(e.DecodableFrames - 1, reader.FrameCount);
            last = reader.ReadClip([reader.FrameCount - 1]);
        }

        using (last)
        {
            Assert.Equal(reader.FrameCount - 1, TestVideos.ReadIndex(last, 0));
        }

        using var counted = VideoReader.Open(path, new VideoReaderOptions { CountFramesOnOpen = true });
        Assert.True(counted.IsFrameCountVerified);
        Assert.InRange(counted.FrameCount, reader.FrameCount, reader.FrameCount + 1);
    }

    [Fact]
    public void ViewGenerator_RedrawsFromTheRealFrameCount()
    {
        using var dir = new TempDirectory();
        string path = TruncatedAvi(dir, 80);
        var generator = new CvrlViewGenerator(new CvrlViewOptions { CropSize = 32 });
        for (int i = 0; i < 8; i++)
        {
            using var views = generator.Generate(path, 1, 0, i);
            Assert.True(views.FrameCount < 80);
            Assert.All(views.Clips.First.Indices(views.FrameCount).Concat(views.Clips.Second.Indices(views.FrameCount)),
                x => Assert.InRange(x, 0, views.FrameCount - 1));
            using var again = generator.Generate(path, 1, 0, i, views.FrameCount);
            Assert.Equal(views.Clips, again.Clips);
            Assert.Equal(0, TorchAssert.MaxDiff(views.View1, again.View1));
        }
    }

    [Fact]
    public void ViewGenerator_ProducesTwoDifferentConsistentViews()
    {
        using var dir = new TempDirectory();
        string path = TestVideos.Create(dir.File("v.avi"), 70, 96, 72);
        var generator = new CvrlViewGenerator(new CvrlViewOptions { CropSize = 48, Sampler = new() { FramesPerClip = 4, Stride = 2 } });
        using var views = generator.Generate(path, 11, 2, 5);
        Assert.Equal(new long[] { 3, 4, 48, 48 }, views.View1.shape);
        Assert.Equal(new long[] { 3, 4, 48, 48 }, views.View2.shape);
        Assert.Equal(70, views.FrameCount);
        Assert.True(TorchAssert.MaxDiff(views.View1, views.View2) > 0.01);
        Assert.NotEqual(views.Plan1.ToString(), views.Plan2.ToString());
    }

    [Fact]
    public void ShortVideo_ClipsWrapAround()
    {
        using var dir = new TempDirectory();
        string path = TestVideos.Create(dir.File("short.avi"), 9);
        var generator = new CvrlViewGenerator(new CvrlViewOptions { CropSize = 32 });
        using var views = generator.Generate(path, 1, 0, 0);
        Assert.Equal(16, views.View1.shape[1]);
        Assert.All(views.Clips.First.Indices(9), x => Assert.InRange(x, 0, 8));
    }

    [Fact]
    public void FramesSmallerThanTheCrop_AreUpsampled()
    {
        using var dir = new TempDirectory();
        string path = TestVideos.Create(dir.File("tiny.avi"), 40, 32, 24);
        var generator = new CvrlViewGenerator(new CvrlViewOptions { CropSize = 64 });
        using var views = generator.Generate(path, 1, 0, 0);
        Assert.Equal(new long[] { 3, 16, 64, 64 }, views.View1.shape);
    }

    [Fact]
    public void BadInputs_GetTypedExceptionsNamingTheFile()
    {
        using var dir = new TempDirectory();
        var missing = Assert.Throws<VideoDecodeException>(() => VideoReader.Open(dir.File("nope.mp4")));
        Assert.Equal(VideoDecodeFailure.FileNotFound, missing.Failure);
        Assert.Contains("nope.mp4", missing.Message, StringComparison.Ordinal);

        File.WriteAllBytes(dir.File("empty.mp4"), []);
        Assert.Equal(VideoDecodeFailure.EmptyFile, Assert.Throws<VideoDecodeException>(() => VideoReader.Open(dir.File("empty.mp4"))).Failure);

        var random = new byte[50_000];
        new Random(1).NextBytes(random);
        File.WriteAllBytes(dir.File("random.avi"), random);
        AssertUnreadable(dir.File("random.avi"));

        File.WriteAllText(dir.File("text.mp4"), "this is not a video\n");
        AssertUnreadable(dir.File("text.mp4"));

        using (new VideoFileWriter(dir.File("zero.avi"), 64, 48))
        {
        }

        AssertUnreadable(dir.File("zero.avi"));

        string good = TestVideos.Create(dir.File("good.mp4"), 30, codec: VideoCodec.Mpeg4);
        byte[] bytes = File.ReadAllBytes(good);
        File.WriteAllBytes(dir.File("cut.mp4"), bytes[..(bytes.Length / 3)]);
        AssertUnreadable(dir.File("cut.mp4")); // the mp4 index ('moov') is written last, so a cut mp4 does not open

        Assert.Throws<ArgumentException>(() => VideoReader.Open(" "));
        Assert.Throws<ArgumentOutOfRangeException>(() => VideoReader.Open(good, new VideoReaderOptions { MaxFrames = 0 }));
        using var reader = VideoReader.Open(good);
        Assert.Throws<ArgumentOutOfRangeException>(() => reader.ReadClip([-1]));
        Assert.Throws<ArgumentException>(() => reader.ReadClip(Array.Empty<int>()));
    }

    [Fact]
    public void BitFlippedVideo_DecodesOrFailsTyped_NeverCrashes()
    {
        using var dir = new TempDirectory();
        foreach (var codec in new[] { VideoCodec.Mjpeg, VideoCodec.Mpeg4, VideoCodec.Xvid })
        {
            string good = TestVideos.Create(dir.File("g" + VideoFileWriter.DefaultExtension(codec)), 40, codec: codec);
            byte[] bytes = File.ReadAllBytes(good);
            var rng = new Random(7);
            for (int i = 0; i < 200; i++)
            {
                int at = 512 + rng.Next(bytes.Length - 512);
                bytes[at] ^= (byte)(1 << rng.Next(8));
            }

            string bad = dir.File("flipped" + VideoFileWriter.DefaultExtension(codec));
            File.WriteAllBytes(bad, bytes);
            try
            {
                using var reader = VideoReader.Open(bad);
                int n = reader.CountFrames();
                using var clip = reader.ReadClip([0, n - 1]);
                Assert.Equal(2, clip.shape[1]);
            }
            catch (VideoDecodeException)
            {
                // A typed failure is an acceptable outcome for a corrupt file.
            }
        }
    }

    [Fact]
    public void Limits_StopRunawayDecoding()
    {
        using var dir = new TempDirectory();
        string path = TestVideos.Create(dir.File("v.avi"), 50);
        // The container claims 50 frames, more than the limit: the reader counts on open and stops at the limit there,
        // before any clip is planned from a count it cannot trust.
        var e = Assert.Throws<VideoDecodeException>(() => VideoReader.Open(path, new VideoReaderOptions { MaxFrames = 20 }));
        Assert.Equal(VideoDecodeFailure.TooManyFrames, e.Failure);
        Assert.Equal(Path.GetFullPath(path), e.Path);

        // Under the limit the same file opens and reads to its last frame.
        using var reader = VideoReader.Open(path, new VideoReaderOptions { MaxFrames = 60 });
        using var clip = reader.ReadClip([49]);
        Assert.Equal(1, clip.shape[1]);
    }

    private static void AssertUnreadable(string path)
    {
        var e = Assert.Throws<VideoDecodeException>(() => VideoReader.Open(path));
        Assert.Contains(e.Failure, new[] { VideoDecodeFailure.CannotOpen, VideoDecodeFailure.NoDecodableFrames });
        Assert.Equal(Path.GetFullPath(path), e.Path);
    }

    /// <summary>An MJPG AVI cut in half: the header still claims every frame, only about half decode.</summary>
    private static string TruncatedAvi(TempDirectory dir, int frames)
    {
        string full = TestVideos.Create(dir.File("full.avi"), frames);
        byte[] bytes = File.ReadAllBytes(full);
        string cut = dir.File("cut.avi");
        File.WriteAllBytes(cut, bytes[..(bytes.Length / 2)]);
        return cut;
    }
}
