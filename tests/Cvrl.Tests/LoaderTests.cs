using Cvrl.Augment;
using Cvrl.Augment.Video;
using Cvrl.Data;
using Cvrl.Testing;
using Cvrl.Video;
using Microsoft.Extensions.Logging;
using TorchSharp;

namespace Cvrl.Tests;

[Collection("Torch")]
public sealed class LoaderTests
{
    private static CvrlViewGenerator SmallViews() => new(new CvrlViewOptions { CropSize = 24, Sampler = new() { FramesPerClip = 4, Stride = 2 } });

    [Fact]
    public void Batches_DoNotDependOnTheNumberOfWorkers()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.Path, 10);
        var data = VideoDataset.FromFolder(dir.Path);
        var one = new PretrainLoader(data, SmallViews(), new LoaderOptions { BatchSize = 3, Workers = 1, Seed = 5 });
        var three = new PretrainLoader(data, SmallViews(), new LoaderOptions { BatchSize = 3, Workers = 3, PrefetchBatches = 1, Seed = 5 });
        var a = one.ReadEpoch(1).ToList();
        var b = three.ReadEpoch(1).ToList();
        Assert.Equal(3, a.Count); // 10 videos, batches of 3, last one dropped
        for (int i = 0; i < a.Count; i++)
        {
            Assert.Equal(a[i].Indices, b[i].Indices);
            Assert.Equal(new long[] { 3, 3, 4, 24, 24 }, a[i].View1.shape);
            Assert.Equal(0, TorchAssert.MaxDiff(a[i].View1, b[i].View1));
            Assert.Equal(0, TorchAssert.MaxDiff(a[i].View2, b[i].View2));
        }

        Assert.Equal(one.EpochOrder(1).Take(9), a.SelectMany(x => x.Indices));
        Assert.NotEqual(one.EpochOrder(1), one.EpochOrder(2));
        foreach (var batch in a.Concat(b))
        {
            batch.Dispose();
        }
    }

    [Fact]
    public void Shards_ReadTheirSliceOfTheSameGlobalBatches()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.Path, 10);
        var data = VideoDataset.FromFolder(dir.Path);
        LoaderOptions Options(int count, int index) => new() { BatchSize = 4, Workers = 2, Seed = 7, ShardCount = count, ShardIndex = index, BadVideos = BadVideoPolicy.Fail };
        var whole = new PretrainLoader(data, SmallViews(), Options(1, 0)).ReadEpoch(1).ToList();
        var shards = Enumerable.Range(0, 2).Select(r => new PretrainLoader(data, SmallViews(), Options(2, r)).ReadEpoch(1).ToList()).ToList();
        Assert.Equal(2, whole.Count); // 10 videos, global batches of 4, the last 2 dropped
        for (int i = 0; i < whole.Count; i++)
        {
            Assert.Equal(whole[i].Indices, shards[0][i].Indices.Concat(shards[1][i].Indices));
            Assert.Equal(new long[] { 2, 3, 4, 24, 24 }, shards[1][i].View1.shape);
            using var joined1 = torch.cat([shards[0][i].View1, shards[1][i].View1], 0);
            using var joined2 = torch.cat([shards[0][i].View2, shards[1][i].View2], 0);
            Assert.Equal(0, TorchAssert.MaxDiff(whole[i].View1, joined1));
            Assert.Equal(0, TorchAssert.MaxDiff(whole[i].View2, joined2));
            Assert.Equal(whole[i].EndPosition, shards[1][i].EndPosition);
        }

        foreach (var batch in whole.Concat(shards.SelectMany(x => x)))
        {
            batch.Dispose();
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => new PretrainLoader(data, SmallViews(), Options(3, 0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PretrainLoader(data, SmallViews(), Options(2, 2)));
        Assert.Throws<ArgumentException>(() => new PretrainLoader(data, SmallViews(), Options(2, 0) with { BadVideos = BadVideoPolicy.Skip }));
    }

    [Fact]
    public void ResumingAtABatch_GivesTheSameRemainingBatches()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.Path, 9);
        var data = VideoDataset.FromFolder(dir.Path);
        var loader = new PretrainLoader(data, SmallViews(), new LoaderOptions { BatchSize = 2, Workers = 2 });
        var all = loader.ReadEpoch(0).ToList();
        var rest = loader.ReadEpoch(0, all[1].EndPosition, all[1].BatchIndex + 1).ToList();
        Assert.Equal(all.Skip(2).Select(x => x.Indices), rest.Select(x => x.Indices));
        Assert.Equal(0, TorchAssert.MaxDiff(all[2].View2, rest[0].View2));
        foreach (var batch in all.Concat(rest))
        {
            batch.Dispose();
        }
    }

    [Fact]
    public void BadVideos_AreSkippedWithAWarning_AndBatchesStayFull()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.Path, 6);
        VideoFolders.Corrupt(dir.Path, "video_broken.avi");
        var data = VideoDataset.FromFolder(dir.Path);
        var logger = new ListLogger();
        var loader = new PretrainLoader(data, SmallViews(), new LoaderOptions { BatchSize = 2, Workers = 2, Shuffle = false }, logger);
        var batches = loader.ReadEpoch(0).ToList();
        Assert.Equal(3, batches.Count);
        Assert.All(batches, b => Assert.Equal(2, b.Count));
        Assert.Single(loader.BadVideos);
        Assert.Contains(logger.Messages, m => m.Contains("video_broken.avi", StringComparison.Ordinal) && m.StartsWith("Warning", StringComparison.Ordinal));
        int broken = data.Items.ToList().FindIndex(i => i.Path.EndsWith("video_broken.avi", StringComparison.Ordinal));
        Assert.DoesNotContain(broken, batches.SelectMany(b => b.Indices));

        // The next epoch skips it without decoding it again, and warns only once.
        foreach (var batch in batches.Concat(loader.ReadEpoch(1)))
        {
            batch.Dispose();
        }

        Assert.Single(logger.Messages, m => m.Contains("video_broken.avi", StringComparison.Ordinal));
    }

    [Fact]
    public void FailPolicy_StopsWithTheDecodeError()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.Path, 4);
        VideoFolders.Corrupt(dir.Path, "video_broken.avi");
        var loader = new PretrainLoader(VideoDataset.FromFolder(dir.Path), SmallViews(), new LoaderOptions { BatchSize = 2, Workers = 2, BadVideos = BadVideoPolicy.Fail, Shuffle = false });
        var e = Assert.Throws<VideoDecodeException>(() => loader.ReadEpoch(0).ToList().ForEach(b => b.Dispose()));
        Assert.EndsWith("video_broken.avi", e.Path, StringComparison.Ordinal);
    }

    [Fact]
    public void WorkerExceptions_ReachTheCaller()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.Path, 6);
        var data = VideoDataset.FromFolder(dir.Path);
        var generator = SmallViews();
        int calls = 0;
        var loader = new PretrainLoader(data, (path, seed, epoch, index, known) =>
        {
            if (Interlocked.Increment(ref calls) == 4)
            {
                throw new InvalidOperationException("boom in a worker");
            }

            return generator.Generate(path, seed, epoch, index, known);
        }, new LoaderOptions { BatchSize = 2, Workers = 2 });
        var e = Assert.Throws<InvalidOperationException>(() => loader.ReadEpoch(0).ToList().ForEach(b => b.Dispose()));
        Assert.Equal("boom in a worker", e.Message);
    }

    [Fact]
    public void Cancellation_StopsPromptly()
    {
        // Counted in samples, not seconds: a cancelled epoch starts no more than the loader's read-ahead allows.
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.Path, 48);
        var data = VideoDataset.FromFolder(dir.Path);
        var generator = SmallViews();
        using var cts = new CancellationTokenSource();
        int started = 0;
        int startedAtCancel = -1;
        var options = new LoaderOptions { BatchSize = 2, Workers = 2 };
        var loader = new PretrainLoader(data, (path, seed, epoch, index, known) =>
        {
            Interlocked.Increment(ref started);
            return generator.Generate(path, seed, epoch, index, known);
        }, options);
        Assert.ThrowsAny<OperationCanceledException>(() =>
        {
            foreach (var batch in loader.ReadEpoch(0, cancellationToken: cts.Token))
            {
                batch.Dispose();
                startedAtCancel = Volatile.Read(ref started);
                cts.Cancel();
            }
        });
        // The loader keeps at most its window of samples ahead of what it has collated, and collates at most the batches
        // it may hold ready plus one: twice the window and a batch bound what can have started, far below the epoch.
        int window = ((options.PrefetchBatches + 1) * options.BatchSize) + options.Workers;
        int bound = (2 * window) + options.BatchSize;
        int total = Volatile.Read(ref started);
        Assert.True(startedAtCancel >= options.BatchSize && total <= bound, $"{total} samples started in all ({startedAtCancel} when cancelled); at most {bound} of the epoch's 48 expected");
    }

    [Fact]
    public void EarlyExit_JoinsWorkersAndDoesNotLeak()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.Path, 8);
        var loader = new PretrainLoader(VideoDataset.FromFolder(dir.Path), SmallViews(), new LoaderOptions { BatchSize = 2, Workers = 2 });
        GC.Collect();
        long before = Environment.TickCount64;
        foreach (var batch in loader.ReadEpoch(0))
        {
            batch.Dispose();
            break;
        }

        Assert.True(Environment.TickCount64 - before < 10_000);
        Assert.Throws<ArgumentException>(() => new PretrainLoader(VideoDataset.FromFolder(dir.Path), SmallViews(), new LoaderOptions { BatchSize = 20 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PretrainLoader(VideoDataset.FromFolder(dir.Path), SmallViews(), new LoaderOptions { Workers = 0 }));
    }

    /// <summary>Collects log lines as "Level: message".</summary>
    internal sealed class ListLogger : ILogger
    {
        public List<string> Messages { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (Messages)
            {
                Messages.Add($"{logLevel}: {formatter(state, exception)}");
            }
        }
    }
}
