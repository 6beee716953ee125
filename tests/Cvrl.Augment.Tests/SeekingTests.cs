using System.Collections.Concurrent;
using Cvrl.Augment.Video;
using Cvrl.Testing;
using Cvrl.Video;

namespace Cvrl.Augment.Tests;

/// <summary>One long-GOP file of each kind, made once for the seeking tests.</summary>
public sealed class FfmpegFixture : IDisposable
{
    public const int Frames = 600;

    private readonly TempDirectory _dir = new();
    private readonly ConcurrentDictionary<FfmpegKind, Lazy<string>> _files = new();

    public string Folder => _dir.Path;

    public string Get(FfmpegKind kind) =>
        _files.GetOrAdd(kind, k => new Lazy<string>(() => FfmpegVideos.Create(_dir.Path, k, Frames))).Value;

    public void Dispose() => _dir.Dispose();
}

[Collection("Torch")]
public sealed class SeekingTests(FfmpegFixture videos) : IClassFixture<FfmpegFixture>
{
    // Far apart and out of order, with repeats: clips as CVRL's sampler and the test views ask for them.
    private static readonly int[][] Clips =
    [
        [.. Enumerable.Range(0, 16).Select(i => 470 + (2 * i))],
        [.. Enumerable.Range(0, 16).Select(i => 20 + (2 * i))],
        [300, 301, 302, 302, 303, 420, 421],
        [530, 531, 532, 533],
    ];

    public static TheoryData<FfmpegKind, FrameAccess> Kinds => new()
    {
        { FfmpegKind.H264Mp4, FrameAccess.Seek },
        { FfmpegKind.Mpeg4Avi, FrameAccess.Seek },
        { FfmpegKind.Vp9Webm, FrameAccess.Seek },
        { FfmpegKind.MjpegAvi, FrameAccess.Seek },
        { FfmpegKind.H264Ts, FrameAccess.Seek },
        { FfmpegKind.H264Raw, FrameAccess.Sequential },
        { FfmpegKind.HevcRaw, FrameAccess.Sequential },
        { FfmpegKind.VfrMp4, FrameAccess.Sequential },
    };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Measure_TellsWhichFilesSeekExactly(FfmpegKind kind, FrameAccess expected)
    {
        string path = videos.Get(kind);
        using var reader = VideoReader.Open(path, new VideoReaderOptions { Seek = SeekMode.Sequential });
        var timeline = reader.Measure();
        Assert.Equal(kind == FfmpegKind.VfrMp4 ? FfmpegFixture.Frames - (FfmpegFixture.Frames / 10) : FfmpegFixture.Frames, timeline.FrameCount);
        Assert.Equal(expected, timeline.Access);
        Assert.Equal(expected == FrameAccess.Sequential, timeline.Note is not null);
        if (kind != FfmpegKind.MjpegAvi)
        {
            // Key frames every 250 frames: the counted interval is near that (the flag is read per packet, so approximate).
            Assert.InRange(timeline.KeyFrameInterval, 150, 600);
        }
    }

    /// <summary>
    /// What a seek costs, in frames decoded in the same time, is at most a few key-frame intervals: OpenCV seeks to the
    /// key frame before the target and decodes forward from there. (A measure that divided by the time since the last
    /// frame instead of the time per frame once gave costs of a hundred million frames, and no reader ever sought.) The
    /// bound, four intervals, leaves room for a loaded machine; the trial seeks are timed twice each and the faster kept.
    /// </summary>
    [Theory]
    [InlineData(FfmpegKind.H264Mp4)]
    [InlineData(FfmpegKind.Vp9Webm)]
    [InlineData(FfmpegKind.Mpeg4Avi)]
    public void Measured_seek_cost_is_a_few_key_frame_intervals_at_most(FfmpegKind kind)
    {
        var timeline = Measure(videos.Get(kind));
        Assert.Equal(FrameAccess.Seek, timeline.Access);
        Assert.InRange(timeline.SeekCostFrames, 16, 4 * timeline.KeyFrameInterval);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void SeekingReader_ReturnsExactlyWhatSequentialDecodingReturns(FfmpegKind kind, FrameAccess expected)
    {
        string path = videos.Get(kind);
        var timeline = Measure(path);
        int frames = timeline.FrameCount;
        int[][] clips = [.. Clips.Select(c => c.Select(i => Math.Min(i, frames - 1)).ToArray())];
        using var sequential = VideoReader.Open(path, new VideoReaderOptions { Seek = SeekMode.Sequential });
        using var seeking = VideoReader.Open(path, new VideoReaderOptions { SeekThreshold = 16 }, timeline);
        var a = sequential.ReadClipBytes(clips);
        var b = seeking.ReadClipBytes(clips);
        for (int k = 0; k < clips.Length; k++)
        {
            Assert.True(a[k].AsSpan().SequenceEqual(b[k]), $"{kind}: clip {k} differs from sequential decoding");
        }

        Assert.Equal(0, sequential.Seeks);
        if (expected == FrameAccess.Sequential)
        {
            Assert.Equal(0, seeking.Seeks + seeking.SeekFallbacks);
        }

        if (expected == FrameAccess.Seek && kind != FfmpegKind.H264Ts)
        {
            // The MPEG-TS demuxer may land past a target, which is retried or abandoned: exact either way, not always faster.
            Assert.True(seeking.Seeks >= 1, $"{kind}: expected the reader to seek");
            Assert.True(seeking.FramesDecoded < sequential.FramesDecoded / 2, $"{kind}: seeking decoded {seeking.FramesDecoded} frames, sequential {sequential.FramesDecoded}");
        }
    }

    [Theory]
    [InlineData(FfmpegKind.H264Mp4)]
    [InlineData(FfmpegKind.Vp9Webm)]
    public void SeekingReader_FramesAreTheRequestedOnes(FfmpegKind kind)
    {
        string path = videos.Get(kind);
        var timeline = Measure(path);
        using var reader = VideoReader.Open(path, new VideoReaderOptions { SeekThreshold = 16 }, timeline);
        int[] wanted = [555, 556, 100, 599, 350];
        using var clip = reader.ReadClip(wanted);
        Assert.Equal(wanted, Enumerable.Range(0, wanted.Length).Select(t => TestVideos.ReadIndex(clip, t)));
        Assert.True(reader.Seeks >= 2);
    }

    [Fact]
    public void AutoWithoutTimeline_DecodesForward_AndRegisteredTimelineIsUsedUntilTheFileChanges()
    {
        string path = Path.Combine(videos.Folder, "registered.mp4");
        File.Copy(videos.Get(FfmpegKind.H264Mp4), path, overwrite: true);
        using (var plain = VideoReader.Open(path))
        {
            Assert.Null(plain.Timeline);
            Assert.Equal(FrameAccess.Sequential, plain.Access);
            plain.ReadClipBytes([[580]]);
            Assert.Equal(0, plain.Seeks);
        }

        var timeline = Measure(path);
        var file = new FileInfo(path);
        VideoTimeline.Register(path, file.Length, file.LastWriteTimeUtc, timeline);
        using (var known = VideoReader.Open(path, new VideoReaderOptions { SeekThreshold = 16 }))
        {
            Assert.Equal(timeline, known.Timeline);
            Assert.Equal(FrameAccess.Seek, known.Access);
            known.ReadClipBytes([[580]]);
            Assert.Equal(1, known.Seeks);
        }

        File.SetLastWriteTimeUtc(path, file.LastWriteTimeUtc.AddSeconds(5));
        Assert.Null(VideoTimeline.Find(path));
        using var changed = VideoReader.Open(path);
        Assert.Null(changed.Timeline);
    }

    private static VideoTimeline Measure(string path)
    {
        using var reader = VideoReader.Open(path, new VideoReaderOptions { Seek = SeekMode.Sequential });
        return reader.Measure();
    }

    [Fact]
    public void RawStream_WithTimeline_IsNotCountedAgainOnOpen()
    {
        string path = videos.Get(FfmpegKind.H264Raw);
        using (var counting = VideoReader.Open(path))
        {
            // No container count: the reader counts on open, decoding the whole stream.
            Assert.Equal(FfmpegFixture.Frames, counting.FrameCount);
            Assert.Equal(FfmpegFixture.Frames, counting.FramesDecoded);
        }

        var timeline = Measure(path);
        using var known = VideoReader.Open(path, null, timeline);
        Assert.Equal(FfmpegFixture.Frames, known.FrameCount);
        Assert.True(known.IsFrameCountVerified);
        Assert.Equal(1, known.FramesDecoded);
    }
}
