using System.Text.Json.Nodes;
using Cvrl.Testing;

namespace Cvrl.Cli.Tests;

/// <summary>
/// cvrl compare runs every row on a labelled folder, writes its table, chart and raw results, and a rerun takes
/// every finished (row, seed) from the results instead of measuring it again.
/// </summary>
public sealed class CompareCliTests
{
    [Fact]
    public void Compare_measures_every_row_writes_its_reports_and_resumes_from_its_results()
    {
        using var dir = new TempDirectory();
        string data = dir.File("data");
        ColourClasses.Create(Path.Combine(data, "train"), classes: 2, perClass: 4, seed: 1);
        ColourClasses.Create(Path.Combine(data, "test"), classes: 2, perClass: 2, seed: 2);

        // A small starting encoder: one epoch of CVRL, as any checkpoint the compare takes.
        string startRun = dir.File("start");
        var pretrain = CliRunner.Run(dir.Path, "pretrain", Path.Combine(data, "train"), "--out", startRun, "--depth", "18", "--width", "0.25", "--epochs", "1", "--batch", "4", "--frames", "8", "--stride", "1", "--size", "32", "--workers", "2");
        Assert.True(pretrain.ExitCode == 0, pretrain.All);
        string start = dir.File("mine.cvrl");
        File.Copy(Directory.GetFiles(Path.Combine(startRun, "checkpoints"), "*.cvrl").Single(), start);

        string output = dir.File("compare");
        string[] arguments = ["compare", data, "--init", start, "--out", output, "--seeds", "1", "--epochs", "1", "--batch", "4", "--supervised-epochs", "1", "--frames", "8", "--stride", "1", "--size", "32", "--test-clips", "1", "--cached-views", "1", "--workers", "2"];
        var first = CliRunner.Run(dir.Path, arguments);
        Assert.True(first.ExitCode == 0, first.All);

        var report = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "compare.json")))!.AsObject();
        Assert.Equal(8, report["train"]!.GetValue<int>());
        Assert.Equal(4, report["test"]!.GetValue<int>());
        var outcomes = report["outcomes"]!.AsArray().Select(o => o!.AsObject()).ToList();
        Assert.Equal(["random", "start-mine", "adapted-mine", "scratch", "supervised-mine", "supervised-scratch"], outcomes.Select(o => o["Row"]!.GetValue<string>()));
        foreach (var outcome in outcomes)
        {
            string row = outcome["Row"]!.GetValue<string>();
            double probe = outcome["Probe"]!.GetValue<double>();
            Assert.True(probe is >= 0 and <= 1 && Math.Round(probe * 4) == probe * 4, $"{row}: probe {probe} is not a count of 4 test videos");
            bool supervised = row.StartsWith("supervised", StringComparison.Ordinal);
            Assert.Equal(supervised, outcome["Knn"]!.ToJsonString() == "\"NaN\""); // supervised rows have no kNN
            Assert.Equal(row is "adapted-mine" or "scratch" or "supervised-mine" or "supervised-scratch", outcome["FinalLoss"] is not null);
        }

        string table = File.ReadAllText(Path.Combine(output, "compare.md"));
        foreach (string label in outcomes.Select(o => o["Label"]!.GetValue<string>()))
        {
            Assert.Contains($"| {label} |", table, StringComparison.Ordinal);
        }

        byte[] png = File.ReadAllBytes(Path.Combine(output, "compare.png"));
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png[..4]);
        Assert.Equal(6, Directory.GetFiles(Path.Combine(output, "results"), "*-seed0.json").Length);
        Assert.True(File.Exists(Path.Combine(output, "explore-scratch", "index.html")), "CVRL from scratch is always mapped");

        // The rerun measures nothing: every row is read back, and the table is the same. A trained encoder that is gone
        // is not mapped (never drawn with other weights) and the rerun says so.
        Directory.Delete(Path.Combine(output, "runs", "scratch-seed0"), recursive: true);
        var second = CliRunner.Run(dir.Path, arguments);
        Assert.True(second.ExitCode == 0, second.All);
        Assert.Contains("no map of CVRL from scratch", second.Text, StringComparison.Ordinal);
        Assert.Equal(6, System.Text.RegularExpressions.Regex.Matches(second.Text, ": done earlier").Count);
        Assert.DoesNotContain("pre-training epoch", second.Text, StringComparison.Ordinal);
        Assert.Equal(table, File.ReadAllText(Path.Combine(output, "compare.md")));
    }
}
