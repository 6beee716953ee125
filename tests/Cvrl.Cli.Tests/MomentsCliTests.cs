using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Cvrl.Embeddings;
using Cvrl.Testing;
using PuppeteerSharp;

namespace Cvrl.Cli.Tests;

/// <summary>
/// Dense features and moment search through the tool, on three generated videos with a planted copy (a 3-second span of
/// source.avi at 12 s of host.avi): cvrl features writes a .npy per video and a manifest, resumes, and writes an index;
/// cvrl search finds the copy from a span query in the index (exact and int8) and in a set of windows (aligned and
/// mean); cvrl explore of the windows shows, for a clicked window, the copy on host.avi's timeline.
/// </summary>
public sealed partial class MomentsCliTests
{
    private static readonly string[] Encoder = ["--depth", "18", "--width", "0.125", "--stride", "1", "--size", "32"];

    [Fact]
    public void Features_are_written_per_video_resumed_and_indexed_and_the_index_finds_the_copy()
    {
        using var dir = new TempDirectory();
        string videos = PlantedCopy.Create(dir.File("videos"));
        string features = dir.File("features"), index = dir.File("index");
        var run = CliRunner.Run(dir.Path, ["features", videos, "--out", features, "--window", "8", "--step", "5", "--index", index, .. Encoder]);
        Assert.True(run.ExitCode == 0, run.All);
        Assert.Contains("wrote 3 video(s)", run.Text);

        // The manifest gives each video's windows; each .npy holds one row per window.
        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(features, "features.json")))!;
        foreach (var (name, frames) in new[] { ("source.avi", 250), ("host.avi", 500), ("other.avi", 250) })
        {
            var entry = manifest["videos"]![name]!;
            var windows = entry["windows"]!.AsArray();
            Assert.Equal(((frames - 8) / 5) + 1, windows.Count);
            Assert.Equal(25.0, entry["fps"]!.GetValue<double>(), 6);
            Assert.Equal(5 / 25.0, windows[1]![1]!.GetValue<double>(), 6);
            var (_, rows, cols) = NpyFile.Read(Path.Combine(features, name + ".npy"));
            Assert.Equal((windows.Count, entry["dim"]!.GetValue<int>()), (rows, cols));
        }

        // Again: nothing left to do.
        var again = CliRunner.Run(dir.Path, ["features", videos, "--out", features, "--window", "8", "--step", "5", .. Encoder]);
        Assert.True(again.ExitCode == 0, again.All);
        Assert.Contains("wrote 0 video(s)", again.Text);
        Assert.Contains("3 done earlier", again.Text);

        // The index finds the copy from the span, exactly and through the int8 pass.
        foreach (string scan in new[] { "float32", "int8" })
        {
            var search = CliRunner.Run(dir.Path, "search", index, Path.Combine(videos, "source.avi") + "@4.0-7.0", "--top", "3", "--scan", scan);
            Assert.True(search.ExitCode == 0, search.All);
            var first = MomentRows(search.Output)[0];
            Assert.Equal(("host.avi", 12.0), (first.Video, first.From));
            Assert.True(first.Score > 0.999, search.Output);
        }
    }

    [Fact]
    public async Task A_set_of_windows_finds_the_copy_and_its_report_shows_it_on_the_hosts_timeline()
    {
        using var dir = new TempDirectory();
        string videos = PlantedCopy.Create(dir.File("videos"));
        string set = dir.File("windows.cvrlemb");
        var embed = CliRunner.Run(dir.Path, ["embed", videos, "--windows", "--window", "8", "--step", "5", "--out", set, .. Encoder]);
        Assert.True(embed.ExitCode == 0, embed.All);
        var windows = EmbeddingSet.Load(set);
        Assert.Contains($"{windows.Count} windows of 3 videos", embed.Text);

        string query = Path.Combine(videos, "source.avi") + "@4.0-7.0";
        var aligned = CliRunner.Run(dir.Path, "search", set, query, "--moments", "--top", "3");
        Assert.True(aligned.ExitCode == 0, aligned.All);
        Assert.Equal(("host.avi", 12.0), (MomentRows(aligned.Output)[0].Video, MomentRows(aligned.Output)[0].From));
        var mean = CliRunner.Run(dir.Path, "search", set, query, "--moments", "--match", "mean", "--top", "3");
        Assert.True(mean.ExitCode == 0, mean.All);
        // The mean of the span's 14 windows (a random encoder's features are too alike for its ranking to mean much:
        // the unit tests check it with the same pixels); the span itself is never a result.
        Assert.Contains("the mean of its 14 windows", mean.Output);
        var moments = MomentRows(mean.Output);
        Assert.Equal(3, moments.Count);
        Assert.DoesNotContain(moments, m => m.Video == "source.avi" && m.From < 7.0 && m.To > 4.0);
        Assert.All(moments, m => Assert.DoesNotContain(moments, o => o != m && o.Video == m.Video && o.From < m.To && o.To > m.From)); // moments do not overlap

        // The report of the windows: a click on the source's window at 4.00 s shows host.avi's timeline peaking at 12.00 s.
        string report = dir.File("report");
        var explore = CliRunner.Run(dir.Path, "explore", set, "--out", report, "--top", "5");
        Assert.True(explore.ExitCode == 0, explore.All);
        Assert.Contains($"thumbnails: {windows.Count} of {windows.Count}", explore.Text);
        int clicked = windows.IndexOf(MomentKey.Format("source.avi", 4.0, 4.32));
        Assert.True(clicked >= 0, string.Join(", ", windows.Keys.Take(30)));

        await using var browser = await ExploreTests.LaunchAsync();
        await using var page = await browser.NewPageAsync();
        var problems = new List<string>();
        page.Console += (_, e) =>
        {
            if (e.Message.Type is ConsoleType.Error or ConsoleType.Warning)
            {
                problems.Add($"console {e.Message.Type}: {e.Message.Text}");
            }
        };
        page.PageError += (_, e) => problems.Add($"page error: {e.Message}");
        await page.SetViewportAsync(new ViewPortOptions { Width = 1400, Height = 900 });
        await page.GoToAsync(new Uri(Path.Combine(report, "index.html")).AbsoluteUri, WaitUntilNavigation.Load);
        await page.WaitForFunctionAsync("() => document.getElementById('map').dataset.points !== undefined");
        await page.EvaluateExpressionAsync($"window.cvrlExplore.select({clicked})");
        var rows = (await page.EvaluateExpressionAsync<System.Text.Json.JsonElement>("window.cvrlExplore.timelines")).EnumerateArray()
            .Select(r => new TimelineRow(r.GetProperty("video").GetString()!, r.GetProperty("bestScore").GetDouble(), r.GetProperty("bestStart").GetDouble())).ToArray();
        Assert.Equal("source.avi", rows[0].Video); // the clicked window's own video first
        var host = Assert.Single(rows, r => r.Video == "host.avi");
        Assert.Equal(12.0, host.BestStart, 6);
        Assert.True(host.BestScore > 0.98, $"host.avi's best window scores {host.BestScore} (int8 vectors in the page)");
        Assert.Equal(rows.Length, await page.EvaluateExpressionAsync<int>("document.querySelectorAll('#timelines canvas').length"));
        Assert.Empty(problems);
    }

    private static List<(string Video, double From, double To, double Score)> MomentRows(string output) =>
        [.. MomentRow().Matches(output).Select(m => (m.Groups[3].Value, Parse(m.Groups[4].Value), Parse(m.Groups[5].Value), Parse(m.Groups[2].Value)))];

    private static double Parse(string text) => double.Parse(text, CultureInfo.InvariantCulture);

    /// <summary>A row of the moments table: rank, similarity, video, from, to, windows.</summary>
    [GeneratedRegex(@"│\s*(\d+)\s*│\s*(-?[\d.]+)\s*│\s*(\S+)\s*│\s*([\d.]+)\s*│\s*([\d.]+)\s*│\s*\d+\s*│")]
    private static partial Regex MomentRow();

    /// <summary>One timeline strip as the page exposes it.</summary>
    private sealed record TimelineRow(string Video, double BestScore, double BestStart);
}
