using System.Globalization;

namespace Cvrl.Cli.Tests;

/// <summary>
/// The way real jobs end: a scheduler's SIGTERM (Docker, Kubernetes, systemd, Slurm) stops pre-training at the next step
/// with a checkpoint, exactly as Ctrl+C does, and the run resumed from it computes the losses an uninterrupted run
/// computes, bit for bit (one intra-op thread per process; the data order and augmentations are keyed by seed, epoch and
/// video).
/// </summary>
public sealed class StopTests(SixteenVideos videos) : IClassFixture<SixteenVideos>
{
    internal static readonly Dictionary<string, string> OneThread = new() { ["OMP_NUM_THREADS"] = "1", ["MKL_NUM_THREADS"] = "1" };

    /// <summary>
    /// A tiny pre-training run with a metrics row per step; 20 epochs of 4 steps (batch 4 of 16 videos): a signal sent when
    /// epoch 1 is reported is handled at the next step, 76 steps before the end, however fast or slow the machine.
    /// </summary>
    internal static string[] Pretrain(string data, string output, int batch = 4, int epochs = 20) =>
    [
        "pretrain", data, "--out", output, "--depth", "18", "--width", "0.125", "--frames", "8", "--stride", "2",
        "--size", "32", "--batch", batch.ToString(CultureInfo.InvariantCulture), "--epochs", epochs.ToString(CultureInfo.InvariantCulture),
        "--workers", "1", "--log-every", "1", "--seed", "7",
    ];

    [Fact]
    public void SIGTERM_stops_pretraining_with_a_checkpoint_that_resumes_to_the_same_losses()
    {
        string whole = Path.Combine(videos.Temp, "term-whole");
        var uninterrupted = CliRunner.Run(new CliLaunch(videos.Temp) { Environment = OneThread }, Pretrain(videos.Data, whole));
        Assert.True(uninterrupted.ExitCode == 0, uninterrupted.All);

        string stopped = Path.Combine(videos.Temp, "term-stopped");
        var launch = new CliLaunch(videos.Temp)
        {
            Environment = OneThread,
            Signal = "TERM",
            Interrupt = output => output.Contains("pre-training epoch 1:", StringComparison.Ordinal),
        };
        var run = CliRunner.Run(launch, Pretrain(videos.Data, stopped));
        Assert.True(run.ExitCode == 143, run.All);
        Assert.Contains("SIGTERM received: stopping at the next safe point", run.Text);
        Assert.Matches(@"stopped: step \d+", run.Text);
        var checkpoints = Directory.GetFiles(Path.Combine(stopped, "checkpoints"), "*.cvrl");
        Assert.NotEmpty(checkpoints);
        Assert.True(Losses(stopped).Length < 80, "the run was not stopped before its end");

        var resumed = CliRunner.Run(new CliLaunch(videos.Temp) { Environment = OneThread }, Pretrain(videos.Data, stopped));
        Assert.True(resumed.ExitCode == 0, resumed.All);
        Assert.Matches(@"resumed from step [1-9]\d*", resumed.Text);
        Assert.Equal(Losses(whole), Losses(stopped));
    }

    /// <summary>Each step's loss from a run folder's metrics.csv, steps 1 to N in order with no gap or repeat.</summary>
    internal static double[] Losses(string folder)
    {
        var rows = File.ReadAllLines(Path.Combine(folder, "metrics.csv"))[1..].Select(l => l.Split(',')).ToList();
        Assert.Equal(Enumerable.Range(1, rows.Count).Select(i => i.ToString(CultureInfo.InvariantCulture)), rows.Select(r => r[0]));
        return [.. rows.Select(r => double.Parse(r[2], CultureInfo.InvariantCulture))];
    }
}
