using System.Text.Json.Nodes;
using Cvrl.Testing;

namespace Cvrl.Cli.Tests;

/// <summary>
/// Holds the quickstart's claim in CI: CVRL pre-training beats the same network's random initialisation on the linear
/// probe, clearly, in a configuration small enough for the test command (about two minutes on 2 cores).
/// </summary>
public sealed class QuickstartBandTests
{
    /// <summary>
    /// The quickstart's recipe on a third of its data (6 classes, 32 training and 16 test videos per class) for 50 epochs
    /// (300 steps), seed 0. Measured on this configuration with seeds 0 to 4 (2-core machine, docs/results-notes.md):
    /// probe gains of 11.5, 14.6, 12.5, 19.8 and 26.0 points over random weights, mean 16.9, standard deviation 6.0;
    /// seeds 0 and 1 with generic CPU kernels (no AVX, SSE4.1 oneDNN) gained 9.4 and 18.8, seeds 0 to 2 in bfloat16 13.5
    /// to 17.7. The bound, 5 points, lies 2 standard deviations below the mean and 4.4 points below the lowest run, while a pipeline
    /// that stops learning (no gain, seed-to-seed noise of about 3 points on 96 test videos) fails it. (At 25 epochs, the
    /// earlier setting, the gains on the current data set were 6.3, 0.0 and 7.3 points for seeds 0 to 2: too close to the
    /// bound for a change of CPU kernels to be safe.)
    /// </summary>
    [Fact]
    public void Cvrl_beats_random_weights_by_a_clear_margin()
    {
        using var temp = new TempDirectory();
        string output = temp.File("band");
        var run = CliRunner.Run(
            temp.Path,
            "quickstart", "--classes", "6", "--train-per-class", "32", "--test-per-class", "16", "--epochs", "50", "--seed", "0", "--out", output);
        Assert.True(run.ExitCode == 0, $"after {run.Elapsed.TotalMinutes:F1} min:\n{run.All}");
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "summary.json")))!;
        double random = summary["randomProbeTop1"]!.GetValue<double>();
        double cvrl = summary["cvrlProbeTop1"]!.GetValue<double>();
        Assert.True(cvrl - random >= 0.05, $"linear probe: CVRL {cvrl:P1}, random weights {random:P1}; expected CVRL at least 5 points above");
        Assert.True(summary["finalLoss"]!.GetValue<double>() < 2 * Math.Log(63), "the contrastive loss fell below chance (2 ln 63)");
    }
}
