using System.Text.Json.Nodes;
using Cvrl.Augment;
using Cvrl.Augment.Sampling;
using Cvrl.Augment.Video;
using Cvrl.Data;
using Cvrl.Testing;
using Cvrl.Video;
using TorchSharp;

namespace Cvrl.Tests;

/// <summary>
/// The verified video index: real frame counts whatever the container claims, bad videos named and left out, a cache
/// keyed by path, size and modification time, and clips planned over the whole real length.
/// </summary>
[Collection("Torch")]
public sealed class VideoIndexTests
{
    private const int Real = 30;

    /// <summary>A folder of videos that tell the truth, claim too many frames, too few, none, or are broken.</summary>
    private static string MakeFolder(TempDirectory dir)
    {
        string root = dir.File("videos");
        Directory.CreateDirectory(root);
        string honest = TestVideos.Create(Path.Combine(root, "honest.avi"), Real, 80, 64);
        LyingVideos.ClaimFrames(honest, Path.Combine(root, "claims_too_many.avi"), 90);
        LyingVideos.ClaimFrames(honest, Path.Combine(root, "claims_too_few.avi"), 10);
        LyingVideos.Truncate(honest, Path.Combine(root, "cut_short.avi"), 0.6);
        LyingVideos.RawMjpeg(Path.Combine(root, "no_claim.mjpeg"), Real, 80, 64);
        File.WriteAllText(Path.Combine(root, "not_a_video.mp4"), "this is text, not a video");
        File.WriteAllBytes(Path.Combine(root, "empty.avi"), []);
        return root;
    }

    private static VideoDataset Folder(string root) =>
        VideoDataset.FromFolder(root, extensions: [.. VideoDataset.DefaultExtensions, ".mjpeg"]);

    [Fact]
    public void Verify_CountsTheRealFrames_WhateverTheContainerClaims_AndLeavesOutBadVideos()
    {
        using var dir = new TempDirectory();
        string root = MakeFolder(dir);
        var logger = new LoaderTests.ListLogger();
        var verified = Folder(root).Verify(logger: logger);

        var frames = verified.Items.ToDictionary(i => Path.GetFileName(i.Path), i => i.Frames);
        Assert.Equal(Real, frames["honest.avi"]);
        Assert.Equal(Real, frames["claims_too_many.avi"]);
        Assert.Equal(Real, frames["claims_too_few.avi"]);
        Assert.Equal(Real, frames["no_claim.mjpeg"]);
        int cut = LyingVideos.DecodableFrames(Path.Combine(root, "cut_short.avi"));
        Assert.InRange(cut, 1, Real - 1);
        Assert.Equal(cut, frames["cut_short.avi"]);
        Assert.True(verified.IsVerified);

        Assert.Equal(["empty.avi", "not_a_video.mp4"], verified.Rejected.Select(r => Path.GetFileName(r.Path)).Order());
        Assert.All(verified.Rejected, r => Assert.Equal(VideoStatus.Bad, r.Status));
        Assert.Contains(logger.Messages, l => l.Contains("not_a_video.mp4", StringComparison.Ordinal) && l.StartsWith("Warning", StringComparison.Ordinal));
        Assert.Contains(logger.Messages, l => l.Contains("claims_too_few.avi", StringComparison.Ordinal) && l.Contains("claims 10", StringComparison.Ordinal));

        // The cache file lies in the data root and holds every video with its status.
        var cache = JsonNode.Parse(File.ReadAllText(Path.Combine(root, VideoIndex.DefaultFileName)))!;
        var entries = cache["Videos"]!.AsArray().ToDictionary(v => v!["Path"]!.GetValue<string>(), v => v!);
        Assert.Equal("CountCorrected", entries["claims_too_many.avi"]["Status"]!.GetValue<string>());
        Assert.Equal(90, entries["claims_too_many.avi"]["ClaimedFrames"]!.GetValue<long>());
        Assert.Equal("Ok", entries["honest.avi"]["Status"]!.GetValue<string>());
        Assert.Equal("Bad", entries["empty.avi"]["Status"]!.GetValue<string>());
    }

    [Fact]
    public void Cache_IsReused_AndAChangedFileIsIndexedAgain()
    {
        using var dir = new TempDirectory();
        string root = dir.File("videos");
        Directory.CreateDirectory(root);
        string a = TestVideos.Create(Path.Combine(root, "a.avi"), 12, 48, 32);
        TestVideos.Create(Path.Combine(root, "b.avi"), 14, 48, 32);
        var paths = Directory.GetFiles(root, "*.avi").Order().ToList();

        var first = VideoIndex.Build(paths, defaultFolder: root);
        Assert.Equal(0, first.FromCache);
        var second = VideoIndex.Build(paths, defaultFolder: root);
        Assert.Equal(2, second.FromCache);
        Assert.Equal(first.Videos, second.Videos);

        TestVideos.Create(a, 20, 48, 32);
        File.SetLastWriteTimeUtc(a, DateTime.UtcNow.AddMinutes(1));
        var third = VideoIndex.Build(paths, defaultFolder: root);
        Assert.Equal(1, third.FromCache);
        Assert.Equal(20, third.Find(a)!.Frames);

        var uncached = VideoIndex.Build(paths, new VideoIndexOptions { UseCache = false }, root);
        Assert.Equal(0, uncached.FromCache);
        Assert.Null(uncached.CachePath);
    }

    /// <summary>
    /// A file that could not be read (permission, I/O) may be readable next time, so such a verdict never enters the cache;
    /// a bad verdict from an older cache that does not say what failed is tried again once. A video that is really not a
    /// video stays cached as bad. (As root no permission is denied, so the unreadable verdict is written into the cache
    /// here as an index that met it would have kept it before; the CLI test reads a mode-000 file as an unprivileged user.)
    /// </summary>
    [Fact]
    public void Failures_that_may_pass_are_tried_again_and_lasting_ones_are_cached()
    {
        using var dir = new TempDirectory();
        string root = dir.File("videos");
        Directory.CreateDirectory(root);
        string good = TestVideos.Create(Path.Combine(root, "good.avi"), 12, 48, 32);
        string text = Path.Combine(root, "text.mp4");
        File.WriteAllText(text, "not a video");
        string[] paths = [good, text];

        var first = VideoIndex.Build(paths, defaultFolder: root);
        Assert.Equal(VideoDecodeFailure.CannotOpen, first.Find(text)!.Failure);
        Assert.False(first.Find(text)!.IsTransient);
        Assert.Null(first.Find(good)!.Failure);

        // Turn good.avi's cached entry into an unreadable verdict, and text.mp4's into an old one without a failure kind.
        string cacheFile = Path.Combine(root, VideoIndex.DefaultFileName);
        var cache = JsonNode.Parse(File.ReadAllText(cacheFile))!;
        foreach (var entry in cache["Videos"]!.AsArray())
        {
            if (entry!["Path"]!.GetValue<string>() == "good.avi")
            {
                entry["Status"] = "Bad";
                entry["Frames"] = 0;
                entry["Failure"] = "Unreadable";
                entry["Problem"] = "the file cannot be read (permission denied)";
            }
            else
            {
                entry.AsObject().Remove("Failure");
            }
        }

        File.WriteAllText(cacheFile, cache.ToJsonString());
        var second = VideoIndex.Build(paths, defaultFolder: root);
        Assert.Equal(0, second.FromCache);
        Assert.Equal(VideoStatus.Ok, second.Find(good)!.Status);
        Assert.Equal(12, second.Find(good)!.Frames);
        Assert.Equal(VideoDecodeFailure.CannotOpen, second.Find(text)!.Failure);

        // Now both verdicts last, and come from the cache.
        Assert.Equal(2, VideoIndex.Build(paths, defaultFolder: root).FromCache);
    }

    [Fact]
    public void PlannedClips_CoverTheWholeRealLength_AndDecodeTheFramesPlanned()
    {
        using var dir = new TempDirectory();
        string root = MakeFolder(dir);
        var verified = Folder(root).Verify();
        var sampler = new IntervalSampler(new IntervalSamplerOptions { FramesPerClip = 8, Stride = 2 });
        foreach (var item in verified.Items)
        {
            int frames = item.Frames!.Value;
            int highest = 0;
            for (int sample = 0; sample < 60; sample++)
            {
                using var reader = VideoReader.Open(item.Path);
                var (clips, planned) = reader.ReadPlannedClips(
                    count =>
                    {
                        var pair = sampler.Sample(count, ClipRandom.For(3, 0, sample, ClipRandom.TemporalStream));
                        return [pair.First.Indices(count), pair.Second.Indices(count)];
                    },
                    item.Frames);
                Assert.Equal(frames, planned);
                var pair = sampler.Sample(frames, ClipRandom.For(3, 0, sample, ClipRandom.TemporalStream));
                foreach (var (window, clip) in new[] { (pair.First, clips[0]), (pair.Second, clips[1]) })
                {
                    int[] indices = window.Indices(frames);
                    Assert.Equal(indices.Length, indices.Distinct().Count()); // no frame repeated: every clip fits
                    for (int t = 0; t < indices.Length; t++)
                    {
                        Assert.Equal(indices[t], TestVideos.ReadIndex(clip, t)); // the decoded frame is the planned one
                    }

                    highest = Math.Max(highest, indices.Max());
                    clip.Dispose();
                }
            }

            // Over 60 samples the clips reach the last frames of the real length, not only the claimed one.
            Assert.True(highest >= frames - 3, $"{Path.GetFileName(item.Path)}: highest planned frame {highest} of {frames}");
        }
    }

    [Fact]
    public void Reader_CountsAContainerWithoutAFrameCount_WhenItOpens()
    {
        using var dir = new TempDirectory();
        string raw = LyingVideos.RawMjpeg(dir.File("raw.mjpeg"), 17, 80, 64);
        using var reader = VideoReader.Open(raw);
        Assert.True(reader.Info.ReportedFrameCount <= 0, $"the container claims {reader.Info.ReportedFrameCount}");
        Assert.True(reader.IsFrameCountVerified);
        Assert.Equal(17, reader.FrameCount);
    }

    [Fact]
    public void Verify_OfOnlyBadVideos_Throws_NamingOne()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("a.mp4"), "no video");
        var e = Assert.Throws<DatasetException>(() => VideoDataset.FromFolder(dir.Path).Verify());
        Assert.Contains("a.mp4", e.Message, StringComparison.Ordinal);
    }
}
