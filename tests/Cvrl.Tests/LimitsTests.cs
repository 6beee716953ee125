using Cvrl.Augment;
using Cvrl.Embeddings;
using Cvrl.Testing;
using Cvrl.Training;
using Cvrl.Video;

namespace Cvrl.Tests;

/// <summary>Limits checked before any allocation: input memory (<see cref="MemoryBudget"/>) and decoded frame size.</summary>
[Collection("Torch")]
public sealed class LimitsTests
{
    [Fact]
    public void Settings_whose_inputs_cannot_fit_are_refused_before_any_allocation()
    {
        // 64 videos x 2 clips x 3 x 100000 x 224 x 224 float32, 4 batches in flight: 28 TiB, beyond any budget.
        using var encoder = TrainerTests.TinyEncoder();
        var options = TrainerTests.Tiny() with { BatchSize = 64, Views = new CvrlViewOptions { CropSize = 224, Sampler = new() { FramesPerClip = 100_000 } } };
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new CvrlTrainer(encoder, options));
        Assert.Contains("needs 28 TiB of memory", e.Message, StringComparison.Ordinal);
        Assert.Contains("100000 frames at 224x224", e.Message, StringComparison.Ordinal);

        // Views that one buffer cannot hold, and views that fit one buffer but not the budget with many workers ahead.
        Assert.Equal("FramesPerClip", Assert.Throws<ArgumentOutOfRangeException>(() => new TestViews(new TestViewOptions { FramesPerClip = 100_000 })).ParamName);
        var ahead = Assert.Throws<ArgumentOutOfRangeException>(() => new VideoEmbedder(encoder, new EmbeddingOptions { Views = new TestViewOptions { Clips = 10, FramesPerClip = 1000, ShortSide = 256, CropSize = 256 }, Workers = 100_000 }));
        Assert.Contains("videos decoded ahead", ahead.Message, StringComparison.Ordinal);
        Assert.Equal(-1, MemoryBudget.Product(1L << 40, 1L << 40));
        Assert.Equal("1.5 GiB", MemoryBudget.Describe(3L << 29));
    }

    [Fact]
    public void Frames_larger_than_allowed_and_clips_beyond_the_budget_are_refused_before_decoding()
    {
        using var dir = new TempDirectory();
        string video = TestVideos.Create(dir.File("a.avi"), 10, 64, 48);
        var small = Assert.Throws<VideoDecodeException>(() => VideoReader.Open(video, new VideoReaderOptions { MaxFramePixels = 64 * 47 }));
        Assert.Equal(VideoDecodeFailure.TooLarge, small.Failure);
        Assert.Contains("64x48", small.Message, StringComparison.Ordinal);
        using var reader = VideoReader.Open(video, new VideoReaderOptions { MaxFramePixels = 64 * 48 });

        // 100,000 clips of 100,000 frames (one index array shared: nothing large is allocated here) cannot be held.
        int[] clip = new int[100_000];
        var tooMany = Assert.Throws<VideoDecodeException>(() => reader.RequireMemoryFor([.. Enumerable.Repeat(clip, 100_000)]));
        Assert.Equal(VideoDecodeFailure.TooLarge, tooMany.Failure);
        reader.RequireMemoryFor([new int[1000]]); // 1,000 frames of 64 x 48: 9 MB fits
    }
}
