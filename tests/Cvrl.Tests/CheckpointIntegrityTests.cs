using Cvrl.Data;
using Cvrl.Models.Weights;
using Cvrl.Testing;
using Cvrl.Training;
using TorchSharp;

namespace Cvrl.Tests;

/// <summary>
/// Checkpoints prove they are whole: a flipped bit anywhere is found and named on every read, resuming passes over a
/// damaged checkpoint to the newest intact one (and repeats the losses of a run that never saw the damage), refuses to
/// start over when none is intact, and never deletes a damaged file; a checkpoint from before checksums still loads.
/// </summary>
[Collection("Torch")]
public sealed class CheckpointIntegrityTests
{
    [Fact]
    public void A_flipped_bit_is_refused_by_name_and_resuming_falls_back_to_the_newest_intact_checkpoint()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.File("videos"), 8);
        var data = VideoDataset.FromFolder(dir.File("videos"));
        string run = dir.File("run");
        var options = TrainerTests.Tiny(run) with { KeepCheckpoints = 10 };

        List<double> straight;
        using (var encoder = TrainerTests.TinyEncoder(1))
        using (var trainer = new CvrlTrainer(encoder, options with { CheckpointDirectory = dir.File("straight") }))
        {
            straight = [.. trainer.Fit(data).Losses];
        }

        // The same run, stopped after step 4.
        using (var encoder = TrainerTests.TinyEncoder(1))
        using (var trainer = new CvrlTrainer(encoder, options))
        using (var cts = new CancellationTokenSource())
        {
            Assert.True(trainer.Fit(data, new SyncProgress(p => { if (p.Step == 4) { cts.Cancel(); } }), cts.Token).Cancelled);
        }

        var files = Directory.GetFiles(run, "*.cvrl").Order(StringComparer.Ordinal).ToList();
        Assert.Equal(4, files.Count); // steps 1 to 4
        Assert.True(CvrlCheckpoint.ReadState(files[^1]).IsVerified);

        // One flipped bit in step 4's file: every read refuses it and names the entry.
        FileDamage.FlipBit(files[^1]);
        var e = Assert.Throws<CheckpointCorruptException>(() => CvrlCheckpoint.ReadState(files[^1]));
        Assert.Equal(files[^1], e.Path);
        Assert.NotNull(e.Entry);
        Assert.Matches($"entry '{System.Text.RegularExpressions.Regex.Escape(e.Entry!)}' (does not match the checksum|is missing|is not in the checksum record)", e.Message); // the bit lands in a tensor's bytes or in a name
        Assert.Throws<CheckpointCorruptException>(() => CvrlCheckpoint.LoadEncoder(files[^1]));

        // Resuming passes over it (kept as .damaged) to step 3, and the run repeats the losses of a run never damaged.
        var logger = new LoaderTests.ListLogger();
        using (var encoder = TrainerTests.TinyEncoder(7))
        using (var trainer = new CvrlTrainer(encoder, options, logger))
        {
            var summary = trainer.Fit(data);
            Assert.Equal(3, summary.ResumedFromStep);
            Assert.Equal(6, summary.Steps);
            Assert.Equal(straight[3..], summary.Losses);
        }

        Assert.True(File.Exists(files[^1] + ".damaged"));
        Assert.Contains(logger.Messages, m => m.Contains("newest intact checkpoint", StringComparison.Ordinal));

        // Every checkpoint damaged: no silent restart from step 0, nothing deleted.
        var intact = Directory.GetFiles(run, "*.cvrl");
        foreach (string file in intact)
        {
            FileDamage.FlipBit(file);
        }

        using (var encoder = TrainerTests.TinyEncoder(7))
        using (var trainer = new CvrlTrainer(encoder, options with { Epochs = 4 }))
        {
            var none = Assert.Throws<NoIntactCheckpointException>(() => trainer.Fit(data));
            Assert.Equal(intact.Length, none.Damaged.Count);
            Assert.Contains("--fresh", none.Message, StringComparison.Ordinal);
        }

        Assert.Equal(intact.Length + 1, Directory.GetFiles(run, "*.damaged*").Length); // step 4's first damaged copy kept too
        Assert.Empty(Directory.GetFiles(run, "*.cvrl"));
    }

    [Fact]
    public void Damaged_metadata_is_named_and_a_checkpoint_without_a_checksum_still_loads()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.File("videos"), 8);
        using (var encoder = TrainerTests.TinyEncoder(1))
        using (var trainer = new CvrlTrainer(encoder, TrainerTests.Tiny(dir.File("run")) with { Epochs = 1 }))
        {
            trainer.Fit(VideoDataset.FromFolder(dir.File("videos")));
        }

        string checkpoint = Directory.GetFiles(dir.File("run"), "*.cvrl").Order(StringComparer.Ordinal).Last();
        Dictionary<string, torch.Tensor> entries;
        using (var file = StateDictFile.Read(checkpoint))
        {
            entries = file.ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        }

        // Written before checksums: loads, and says it is unverified.
        string old = dir.File("old.cvrl");
        StateDictFile.Write(old, entries.Where(kv => kv.Key != "__checksum__").ToDictionary(), WeightFormat.TorchSharp);
        Assert.False(CvrlCheckpoint.ReadState(old).IsVerified);
        using (var loaded = CvrlCheckpoint.LoadEncoder(old))
        {
            Assert.Equal(new Cvrl.Models.ClipGeometry(4, 2, 32), loaded.TrainedClips);
        }

        // The metadata entry lost (its name damaged): a damaged checkpoint, not a plain weight file.
        string renamed = dir.File("renamed.cvrl");
        StateDictFile.Write(renamed, entries.ToDictionary(kv => kv.Key == "__meta__" ? "__meta_" : kv.Key, kv => kv.Value), WeightFormat.TorchSharp);
        var e = Assert.Throws<CheckpointCorruptException>(() => CvrlCheckpoint.ReadState(renamed));
        Assert.Equal("__meta__", e.Entry);
        foreach (var tensor in entries.Values)
        {
            tensor.Dispose();
        }
    }
}
