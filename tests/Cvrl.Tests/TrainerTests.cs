using Cvrl.Augment;
using Cvrl.Data;
using Cvrl.Losses;
using Cvrl.Models;
using Cvrl.Models.Weights;
using Cvrl.Testing;
using Cvrl.Training;
using TorchSharp;

namespace Cvrl.Tests;

[Collection("Torch")]
public sealed class TrainerTests
{
    internal static CvrlTrainerOptions Tiny(string? checkpoints = null) => new()
    {
        Epochs = 3,
        BatchSize = 4,
        LearningRate = 0.05,
        WarmupFraction = 0,
        Head = new ProjectionHeadOptions { HiddenDim = 32, OutputDim = 16 },
        Views = new CvrlViewOptions { CropSize = 32, Sampler = new() { FramesPerClip = 4, Stride = 2 } },
        Workers = 2,
        LogEverySteps = 1,
        CheckpointDirectory = checkpoints,
        CheckpointEverySteps = 1,
        Seed = 3,
    };

    internal static ResNet3d TinyEncoder(int seed = 0)
    {
        torch.manual_seed(seed);
        return ResNet3d.R3d50(1.0 / 16);
    }

    [Fact]
    public void AFewSteps_LowerTheLossOnAFixedBatch()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.File("videos"), 8);
        var data = VideoDataset.FromFolder(dir.File("videos"));
        using var encoder = TinyEncoder();
        using var trainer = new CvrlTrainer(encoder, Tiny() with { Epochs = 6, LearningRate = 0.2 });
        var loader = new PretrainLoader(data, trainer.Generator, new LoaderOptions { BatchSize = 8, Workers = 2, Seed = 99 });
        using var fixedBatch = loader.ReadEpoch(0).First();
        double before = BatchLoss(trainer, fixedBatch);
        var summary = trainer.Fit(data);
        double after = BatchLoss(trainer, fixedBatch);
        Assert.Equal(12, summary.Steps);
        Assert.Equal(TrainingOutcome.Completed, summary.Outcome);
        Assert.True(after < before - 0.05, $"loss on a fixed batch went from {before:F4} to {after:F4}");
    }

    [Fact]
    public void FrozenStagesAndFrozenBatchNorm_KeepTheirWeightsAndStatistics_WhileTheRestTrains()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.File("videos"), 8);
        var data = VideoDataset.FromFolder(dir.File("videos"));
        using var encoder = TinyEncoder();
        var before = encoder.state_dict().ToDictionary(p => p.Key, p => p.Value.clone());
        using (var trainer = new CvrlTrainer(encoder, Tiny() with { Epochs = 2, FrozenStages = 2, FreezeBatchNorm = true }))
        {
            trainer.Fit(data);
        }

        var after = encoder.state_dict();
        bool Same(string name)
        {
            using var equal = before[name].eq(after[name]).all();
            return equal.item<bool>();
        }
        var frozen = before.Keys.Where(k => k.StartsWith("stem.", StringComparison.Ordinal) || k.StartsWith("layer1.", StringComparison.Ordinal)).ToList();
        var norms = encoder.named_modules().Where(m => m.module is CvrlBatchNorm).Select(m => m.name).ToList();
        Assert.NotEmpty(frozen);
        Assert.All(frozen, k => Assert.True(Same(k), $"{k} changed in a frozen stage"));
        foreach (string bn in norms)
        {
            foreach (string part in new[] { "weight", "bias", "running_mean", "running_var", "num_batches_tracked" })
            {
                Assert.True(Same($"{bn}.{part}"), $"{bn}.{part} changed with batch normalisation frozen");
            }
        }

        // The convolutions of layer2 to layer4 trained.
        var trained = before.Keys.Where(k => k.StartsWith("layer", StringComparison.Ordinal) && !k.StartsWith("layer1.", StringComparison.Ordinal) && !norms.Any(n => k.StartsWith(n + ".", StringComparison.Ordinal))).ToList();
        Assert.NotEmpty(trained);
        Assert.All(trained, k => Assert.False(Same(k), $"{k} did not train"));
        foreach (var t in before.Values)
        {
            t.Dispose();
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => (Tiny() with { FrozenStages = 6 }).Validate());
    }

    [Fact]
    public void TwoRunsWithTheSameSeed_GiveBitIdenticalLosses_AndAnotherSeedDoesNot()
    {
        // Determinism as documented (docs/training.md): same seed, same thread count, same machine kind, same data ->
        // the same losses to the last bit, whatever the loader's worker timing.
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.File("videos"), 8);
        var data = VideoDataset.FromFolder(dir.File("videos"));
        List<double> Run(long seed, int workers)
        {
            using var encoder = TinyEncoder(2);
            using var trainer = new CvrlTrainer(encoder, Tiny() with { Seed = seed, Workers = workers });
            return [.. trainer.Fit(data).Losses];
        }

        var first = Run(3, 2);
        Assert.Equal(first, Run(3, 2));
        Assert.Equal(first, Run(3, 1));
        Assert.NotEqual(first, Run(4, 2));
    }

    [Fact]
    public void Resume_RefusesACheckpointOfAnotherExperiment_NamingWhatDiffers()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.File("videos"), 8);
        var data = VideoDataset.FromFolder(dir.File("videos"));
        string checkpoints = dir.File("run");
        using (var encoder = TinyEncoder())
        using (var trainer = new CvrlTrainer(encoder, Tiny(checkpoints) with { Epochs = 1 }))
        {
            trainer.Fit(data);
        }

        using (var encoder = TinyEncoder())
        using (var trainer = new CvrlTrainer(encoder, Tiny(checkpoints) with { Epochs = 1, Seed = 9, Workers = 1, LogEverySteps = 5 }))
        {
            var e = Assert.Throws<ExperimentMismatchException>(() => trainer.Fit(data));
            Assert.Equal(["Seed: 3 in the checkpoint, 9 now"], e.Differences); // Workers and LogEverySteps do not count
            Assert.Contains("--fresh", e.Message, StringComparison.Ordinal);
        }

        using (var encoder = TinyEncoder())
        using (var trainer = new CvrlTrainer(encoder, Tiny(checkpoints) with { Epochs = 1, Views = Tiny().Views with { Sampler = new() { FramesPerClip = 4, Stride = 3 } } }))
        {
            var e = Assert.Throws<ExperimentMismatchException>(() => trainer.Fit(data));
            Assert.Equal(["Views.Sampler.Stride: 2 in the checkpoint, 3 now"], e.Differences);
        }

        using (var encoder = TinyEncoder())
        using (var trainer = new CvrlTrainer(encoder, Tiny(checkpoints) with { Epochs = 1 }))
        {
            var e = Assert.Throws<ExperimentMismatchException>(() => trainer.Fit(data.Subset([0, 1, 2, 3, 4, 5])));
            Assert.Single(e.Differences);
            Assert.StartsWith("data set: 8 videos", e.Differences[0], StringComparison.Ordinal);
        }

        // More epochs extend the same experiment.
        using (var encoder = TinyEncoder())
        using (var trainer = new CvrlTrainer(encoder, Tiny(checkpoints) with { Epochs = 2 }))
        {
            var summary = trainer.Fit(data);
            Assert.Equal(2, summary.ResumedFromStep);
            Assert.Equal(4, summary.Steps);
        }
    }

    [Fact]
    public void ResumeAfterThreeOfSixSteps_GivesTheSameLossesAsSixStraightSteps()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.File("videos"), 8);
        var data = VideoDataset.FromFolder(dir.File("videos"));

        List<double> straight;
        using (var encoder = TinyEncoder(1))
        using (var trainer = new CvrlTrainer(encoder, Tiny(dir.File("straight"))))
        {
            straight = [.. trainer.Fit(data).Losses];
        }

        Assert.Equal(6, straight.Count);
        var firstPart = new List<double>();
        using (var encoder = TinyEncoder(1))
        using (var trainer = new CvrlTrainer(encoder, Tiny(dir.File("resumed"))))
        using (var cts = new CancellationTokenSource())
        {
            var summary = trainer.Fit(data, new SyncProgress(p =>
            {
                if (p.Step == 3)
                {
                    cts.Cancel();
                }
            }), cts.Token);
            Assert.True(summary.Cancelled);
            Assert.Equal(3, summary.Steps);
            firstPart.AddRange(summary.Losses);
        }

        using (var encoder = TinyEncoder(7)) // different initial weights: everything must come from the checkpoint
        using (var trainer = new CvrlTrainer(encoder, Tiny(dir.File("resumed"))))
        {
            var summary = trainer.Fit(data);
            Assert.Equal(3, summary.ResumedFromStep);
            Assert.Equal(6, summary.Steps);
            var resumed = firstPart.Concat(summary.Losses).ToList();
            Assert.Equal(6, resumed.Count);
            for (int i = 0; i < 6; i++)
            {
                Assert.True(Math.Abs(straight[i] - resumed[i]) < 1e-4, $"step {i + 1}: {straight[i]} vs {resumed[i]}");
            }
        }
    }

    [Fact]
    public void ACrashDuringACheckpointWrite_LeavesThePreviousOneLoadable()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.File("videos"), 8);
        var data = VideoDataset.FromFolder(dir.File("videos"));
        int writes = 0;
        StateDictFile.FaultInjection = tmp =>
        {
            if (tmp.Contains("checkpoint-", StringComparison.Ordinal) && ++writes == 3)
            {
                throw new IOException("simulated crash while writing a checkpoint");
            }
        };
        try
        {
            using var encoder = TinyEncoder();
            using var trainer = new CvrlTrainer(encoder, Tiny(dir.File("ckpt")));
            Assert.Throws<IOException>(() => trainer.Fit(data));
        }
        finally
        {
            StateDictFile.FaultInjection = null;
        }

        var files = Directory.GetFiles(dir.File("ckpt"));
        Assert.DoesNotContain(files, f => f.EndsWith(".tmp", StringComparison.Ordinal)); // the interrupted write is gone
        string newest = files.Order(StringComparer.Ordinal).Last();
        var state = CvrlCheckpoint.ReadState(newest);
        Assert.Equal(2, state.Step);
        using var loaded = CvrlCheckpoint.LoadEncoder(newest);
        using var head = CvrlCheckpoint.LoadHead(newest);
        Assert.Equal(16, head.Options.OutputDim);

        // A new run resumes from it.
        using var encoder2 = TinyEncoder();
        using var trainer2 = new CvrlTrainer(encoder2, Tiny(dir.File("ckpt")));
        var summary = trainer2.Fit(data);
        Assert.Equal(2, summary.ResumedFromStep);
        Assert.Equal(6, summary.Steps);
    }

    [Fact]
    public void ANonFiniteLoss_StopsWithAClearError_AndKeepsTheLastGoodCheckpoint()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.File("videos"), 8);
        var data = VideoDataset.FromFolder(dir.File("videos"));
        using var encoder = TinyEncoder();
        using var trainer = new CvrlTrainer(encoder, Tiny(dir.File("ckpt")) with { LearningRate = 1e30 });
        var e = Assert.Throws<TrainingDivergedException>(() => trainer.Fit(data));
        Assert.Contains("diverged", e.Message, StringComparison.Ordinal);
        Assert.NotNull(e.LastCheckpoint);
        var state = CvrlCheckpoint.ReadState(e.LastCheckpoint!);
        Assert.True(state.Step < e.Step + 1);
        using var good = CvrlCheckpoint.LoadEncoder(e.LastCheckpoint!);
        Assert.All(good.parameters(), p => Assert.True(torch.isfinite(p).all().item<bool>()));
    }

    [Fact]
    public void Options_AreValidatedBeforeWorkStarts_NamingTheOption()
    {
        using var encoder = TinyEncoder();
        void Bad(CvrlTrainerOptions o, string name)
        {
            var e = Assert.ThrowsAny<ArgumentException>(() => new CvrlTrainer(encoder, o));
            Assert.Contains(name, e.Message, StringComparison.Ordinal);
        }

        Bad(Tiny() with { Epochs = 0 }, "Epochs");
        Bad(Tiny() with { BatchSize = 1 }, "BatchSize");
        Bad(Tiny() with { LearningRate = -1 }, "LearningRate");
        Bad(Tiny() with { Temperature = 0 }, "Temperature");
        Bad(Tiny() with { WarmupFraction = 1 }, "WarmupFraction");
        Bad(Tiny() with { Device = "tpu" }, "tpu");
        Bad(Tiny() with { MetricsFile = "metrics.xlsx" }, "MetricsFile");
        Bad(Tiny() with { GradientCacheChunk = 0 }, "GradientCacheChunk");
        Bad(Tiny() with { Optimizer = new() { Momentum = 2 } }, "Momentum");
        using var classifier = ResNet3d.R3d18(0.125, numClasses: 3);
        Assert.Throws<ArgumentException>(() => new CvrlTrainer(classifier, Tiny()));
        Assert.Throws<InvalidOperationException>(() => new CvrlTrainer(encoder, Tiny() with { Device = "cuda" }));
    }

    [Fact]
    public void Steps_DoNotLeakTensors_AndMetricsAreWritten()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.File("videos"), 8);
        var data = VideoDataset.FromFolder(dir.File("videos"));
        using var encoder = TinyEncoder();
        using var trainer = new CvrlTrainer(encoder, Tiny() with { Epochs = 4, MetricsFile = dir.File("m.csv"), TensorBoardDirectory = dir.File("tb") });
        var live = new List<long>();
        var reports = new List<TrainingProgress>();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long before = LiveTensors.Count;
        var summary = trainer.Fit(data, new SyncProgress(p =>
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            live.Add(LiveTensors.Count);
            reports.Add(p);
        }));
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long after = LiveTensors.Count;
        Assert.Equal(8, live.Count);
        // During the run only the loader's in-flight samples and batches come and go; nothing accumulates over steps,
        // and once Fit returns (loader threads joined) exactly the tensors that existed before it remain.
        string trace = $"live tensors per step: {string.Join(", ", live)}; before {before}, after {after}";
        var o = trainer.Options;
        int inFlight = 2 * ((((o.PrefetchBatches + 1) * o.BatchSize) + (o.Workers ?? Environment.ProcessorCount)) + ((o.PrefetchBatches + 2) * o.BatchSize));
        Assert.True(live.Max() - live.Min() <= inFlight, trace);
        Assert.True(live[^1] <= live[1] + 2, trace);
        Assert.True(after == before, trace);
        Assert.All(reports, p => Assert.True(p.ClipsPerSecond > 0 && p.DataWaitShare is >= 0 and <= 1 && p.LearningRate > 0));
        Assert.Equal(8, reports[^1].TotalSteps);
        string[] lines = File.ReadAllLines(dir.File("m.csv"));
        Assert.StartsWith("step,epoch,loss,accuracy", lines[0], StringComparison.Ordinal);
        Assert.Equal(9, lines.Length);
        Assert.NotEmpty(Directory.GetFiles(dir.File("tb"), "*tfevents*", SearchOption.AllDirectories));
        Assert.Equal(8, summary.Losses.Count);
    }

    [Fact]
    public void GradientCachedTraining_Runs_AndJsonMetricsAreWritten()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.File("videos"), 8);
        var data = VideoDataset.FromFolder(dir.File("videos"));
        using var encoder = TinyEncoder();
        using var trainer = new CvrlTrainer(encoder, Tiny() with { Epochs = 1, GradientCacheChunk = 2, MetricsFile = dir.File("m.jsonl") });
        var summary = trainer.Fit(data);
        Assert.Equal(2, summary.Steps);
        Assert.All(summary.Losses, l => Assert.True(double.IsFinite(l)));
        Assert.Equal(2, File.ReadAllLines(dir.File("m.jsonl")).Length);
        Assert.Contains("\"loss\":", File.ReadAllText(dir.File("m.jsonl")), StringComparison.Ordinal);
    }

    private static double BatchLoss(CvrlTrainer trainer, ViewBatch batch)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        long n = batch.View1.shape[0];
        var z = trainer.Head.call(trainer.Encoder.call(torch.cat([batch.View1, batch.View2], 0)));
        return new NtXentLoss().Compute(z.narrow(0, 0, n), z.narrow(0, n, n)).Loss.item<float>();
    }
}

/// <summary>Reports progress synchronously on the training thread (Progress&lt;T&gt; posts to the thread pool).</summary>
internal sealed class SyncProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress value) => report(value);
}
