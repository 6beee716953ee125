using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Cvrl.Embeddings;
using Cvrl.Testing;
using OpenCvSharp;
using PuppeteerSharp;

namespace Cvrl.Cli.Tests;

/// <summary>
/// The explore report in a real browser (Debian's Chromium, installed by scripts/setup.sh, driven over the DevTools
/// protocol by PuppeteerSharp): it loads from file:// without errors, draws one point per video, and a click lists the
/// neighbours <c>cvrl search</c> lists for that video, in the same order with the same scores.
/// </summary>
public sealed partial class ExploreTests(TinyQuickstart quickstart) : IClassFixture<TinyQuickstart>
{
    private static readonly string[] Encoder = ["--depth", "18", "--width", "0.125", "--frames", "8", "--stride", "2", "--size", "32", "--clips", "2"];

    [Fact]
    public async Task The_report_opens_in_a_browser_and_a_click_lists_what_cvrl_search_finds()
    {
        using var dir = new TempDirectory();
        string set = dir.File("all.cvrlemb");
        var embed = CliRunner.Run(dir.Path, ["embed", quickstart.Data, "--out", set, .. Encoder]);
        Assert.True(embed.ExitCode == 0, embed.All);
        var embeddings = EmbeddingSet.Load(set);
        Assert.Equal(18, embeddings.Count);

        string report = dir.File("report");
        var explore = CliRunner.Run(dir.Path, "explore", set, "--out", report, "--top", "5", "--projector");
        Assert.True(explore.ExitCode == 0, explore.All);
        Assert.Contains("thumbnails: 18 of 18 videos", explore.Text);
        var accuracy = AccuracyLine().Match(explore.Text);
        Assert.True(accuracy.Success, explore.All);

        await using var browser = await LaunchAsync();
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
        page.RequestFailed += (_, e) => problems.Add($"request failed: {e.Request.Url}");
        await page.SetViewportAsync(new ViewPortOptions { Width = 1400, Height = 900 });
        await page.GoToAsync(new Uri(Path.Combine(report, "index.html")).AbsoluteUri, WaitUntilNavigation.Load);
        await page.WaitForFunctionAsync("() => document.getElementById('map').dataset.points !== undefined");

        // One point per video; the legend and the kNN panel say what the tool printed.
        Assert.Equal("18", await page.EvaluateExpressionAsync<string>("document.getElementById('map').dataset.points"));
        Assert.Equal(3, await page.EvaluateExpressionAsync<int>("document.querySelectorAll('#legend div').length"));
        Assert.Equal(accuracy.Groups[1].Value + "%", await page.EvaluateExpressionAsync<string>("document.getElementById('knnAccuracy').textContent"));

        // Click two well-separated points with the mouse; each lists the neighbours cvrl search ranks for that video.
        var positions = await page.EvaluateExpressionAsync<JsonElement>("[...Array(18).keys()].map(i => window.cvrlExplore.screenPosition(i))");
        var points = positions.EnumerateArray().Select(p => (X: p.GetProperty("x").GetDouble(), Y: p.GetProperty("y").GetDouble())).ToArray();
        var isolated = Enumerable.Range(0, 18).Where(i => Enumerable.Range(0, 18).All(j => j == i || Math.Abs(points[i].X - points[j].X) + Math.Abs(points[i].Y - points[j].Y) > 12)).Take(2).ToList();
        Assert.True(isolated.Count == 2, "fewer than two points stand apart on the map");
        foreach (int i in isolated)
        {
            await page.Mouse.ClickAsync((decimal)points[i].X, (decimal)points[i].Y);
            Assert.Equal(i, await page.EvaluateExpressionAsync<int>("window.cvrlExplore.selected"));
            Assert.Equal(embeddings.Keys[i], await page.EvaluateExpressionAsync<string>("document.getElementById('selectedKey').textContent"));
            var listed = (await page.EvaluateExpressionAsync<string[]>("[...document.querySelectorAll('#neighbours li')].map(li => li.dataset.key + '|' + li.querySelector('.score').textContent)"))
                .Select(s => (Key: s.Split('|')[0], Score: double.Parse(s.Split('|')[1], CultureInfo.InvariantCulture))).ToList();
            Assert.Equal(5, listed.Count);

            var search = CliRunner.Run(dir.Path, "search", set, Path.Combine(quickstart.Data, embeddings.Keys[i]), "--top", "6");
            Assert.True(search.ExitCode == 0, search.All);
            var found = SearchRow().Matches(search.Output).Select(m => (Key: m.Groups[3].Value, Score: double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture))).ToList();
            Assert.Equal(embeddings.Keys[i], found[0].Key); // the query video itself comes first
            AssertSameRanking(found.Skip(1).ToList(), listed);
        }

        // Hovering shows the video's thumbnail strip, decoded by the browser.
        int hover = isolated[0];
        await page.Mouse.MoveAsync((decimal)points[hover].X + 1, (decimal)points[hover].Y);
        await page.WaitForFunctionAsync("() => { const img = document.querySelector('#tooltip img'); return !document.getElementById('tooltip').hidden && img && img.complete && img.naturalWidth > 0; }");
        Assert.Contains(embeddings.Keys[hover], await page.EvaluateExpressionAsync<string>("document.querySelector('#tooltip .key').textContent"));

        // The file-name filter.
        await page.TypeAsync("#filter", "move_up");
        Assert.Equal("6 of 18 videos match", await page.EvaluateExpressionAsync<string>("document.getElementById('filterCount').textContent"));
        await page.EvaluateExpressionAsync("(() => { const f = document.getElementById('filter'); f.value = ''; f.dispatchEvent(new Event('input')); })()");

        await page.Mouse.ClickAsync((decimal)points[isolated[1]].X, (decimal)points[isolated[1]].Y);
        await page.Mouse.MoveAsync((decimal)points[isolated[0]].X + 1, (decimal)points[isolated[0]].Y);
        await page.WaitForFunctionAsync("() => !document.getElementById('tooltip').hidden");
        string shot = Screenshots("explore.png");
        await page.ScreenshotAsync(shot);
        using (var png = Cv2.ImRead(shot))
        {
            Assert.Equal((1400, 900), (png.Width, png.Height));
        }

        Assert.True(problems.Count == 0, string.Join("\n", problems));

        // The TensorBoard projector files: one row of numbers per video (the set's own floats), one metadata row each under
        // a header, a sprite of one square tile per video, and the config naming them.
        string projector = Path.Combine(report, "projector");
        var rows = File.ReadAllLines(Path.Combine(projector, "tensors.tsv"));
        Assert.Equal(18, rows.Length);
        for (int i = 0; i < rows.Length; i++)
        {
            var values = rows[i].Split('\t').Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray();
            Assert.Equal(embeddings[i].ToArray(), values);
        }

        var metadata = File.ReadAllLines(Path.Combine(projector, "metadata.tsv"));
        Assert.Equal("video\tclass", metadata[0]);
        Assert.Equal(embeddings.Keys.Select(k => $"{k}\t{k.Split('/')[0]}"), metadata.Skip(1));
        using (var sprite = Cv2.ImRead(Path.Combine(projector, "sprite.png")))
        {
            Assert.Equal((5 * 64, 4 * 64), (sprite.Width, sprite.Height)); // 18 tiles, 5 across
        }

        string config = File.ReadAllText(Path.Combine(projector, "projector_config.pbtxt"));
        foreach (var line in new[] { "tensor_path: \"tensors.tsv\"", "metadata_path: \"metadata.tsv\"", "image_path: \"sprite.png\"", "single_image_dim: 64" })
        {
            Assert.Contains(line, config);
        }
    }

    [Fact]
    public void A_set_embedded_through_ONNX_is_explored_and_says_so()
    {
        using var dir = new TempDirectory();
        string checkpoint = Directory.GetFiles(Path.Combine(quickstart.Output, "checkpoints"), "*.cvrl").Order(StringComparer.Ordinal).Last();
        string onnx = dir.File("encoder.onnx");
        var export = CliRunner.Run(dir.Path, "export", checkpoint, "--out", onnx);
        Assert.True(export.ExitCode == 0, export.All);
        string set = dir.File("onnx.cvrlemb");
        var embed = CliRunner.Run(dir.Path, "embed", quickstart.Data, "--checkpoint", onnx, "--out", set, "--clips", "2");
        Assert.True(embed.ExitCode == 0, embed.All);

        string report = dir.File("report");
        var explore = CliRunner.Run(dir.Path, "explore", set, "--out", report, "--map", "tsne", "--perplexity", "4", "--iterations", "300", "--no-thumbnails");
        Assert.True(explore.ExitCode == 0, explore.All);
        Assert.Contains("t-SNE map", explore.Text);
        var data = ReadData(report);
        Assert.Equal("onnxruntime", data["runtime"]!.GetValue<string>());
        Assert.Contains("encoder.onnx", data["encoder"]!.GetValue<string>());
        Assert.Contains("frames at stride", data["views"]!.GetValue<string>());
        Assert.Equal(EmbeddingSet.Load(set).ModelFingerprint, data["fingerprint"]!.GetValue<string>());
        Assert.Equal("t-SNE", data["map"]!["method"]!.GetValue<string>());
        Assert.All(data["thumbs"]!.AsArray(), t => Assert.Null(t));
        Assert.False(Directory.Exists(Path.Combine(report, "thumbs")));

        // Bad input is named before any work.
        var missing = CliRunner.Run(dir.Path, "explore", dir.File("nothing.cvrlemb"));
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("File not found: ", missing.Text);
        Assert.Contains("nothing.cvrlemb", missing.Text);
        var badMap = CliRunner.Run(dir.Path, "explore", set, "--map", "umap");
        Assert.Equal(2, badMap.ExitCode);
        Assert.Contains("--map must be pca or tsne", badMap.Text);
        var badTop = CliRunner.Run(dir.Path, "explore", set, "--top", "0");
        Assert.Equal(2, badTop.ExitCode);
        Assert.Contains("Neighbours must be between 1 and 100", badTop.Text); // the library's bound, through the CLI
        var noVideos = CliRunner.Run(dir.Path, "explore", set, "--out", dir.File("r2"), "--videos", dir.File("gone"));
        Assert.Equal(1, noVideos.ExitCode);
        Assert.Contains("gone' does not exist", noVideos.Text);
    }

    [Fact]
    public void The_quickstart_writes_a_report_for_random_and_for_pre_trained_weights()
    {
        Assert.True(quickstart.Result.ExitCode == 0, quickstart.Result.All);
        foreach (string name in new[] { "random", "cvrl" })
        {
            var data = ReadData(Path.Combine(quickstart.Output, $"explore-{name}"));
            Assert.Equal(6, data["count"]!.GetValue<int>()); // the test split
            // The classes the data set records (its classInd.txt order).
            Assert.Equal(["move_up", "move_down", "zoom_in"], data["classes"]!.AsArray().Select(c => c!.GetValue<string>()));
            Assert.Equal(6, data["knn"]!["total"]!.GetValue<int>());
            Assert.All(data["thumbs"]!.AsArray(), t => Assert.True(File.Exists(Path.Combine(quickstart.Output, $"explore-{name}", t!.GetValue<string>()))));
            Assert.Equal(EmbeddingSet.Load(Path.Combine(quickstart.Output, $"{name}-test.cvrlemb")).ModelFingerprint, data["fingerprint"]!.GetValue<string>());
        }

        Assert.Contains("explore-cvrl/index.html", quickstart.Result.Text);
    }

    internal static JsonNode ReadData(string report)
    {
        string script = File.ReadAllText(Path.Combine(report, "data.js"));
        const string prefix = "window.CVRL_EXPLORE = ";
        Assert.StartsWith(prefix, script, StringComparison.Ordinal);
        return JsonNode.Parse(script[prefix.Length..].TrimEnd().TrimEnd(';'))!;
    }

    /// <summary>
    /// The same videos in the same order with scores within 1e-4 (cvrl search embeds the query again, so its scores may
    /// differ from the stored vector's in the last float bits, and both print four decimals); two videos may only trade
    /// places when their scores are that close.
    /// </summary>
    private static void AssertSameRanking(IReadOnlyList<(string Key, double Score)> search, IReadOnlyList<(string Key, double Score)> page)
    {
        Assert.True(search.Count >= page.Count, $"search listed {search.Count}, the page {page.Count}");
        for (int r = 0; r < page.Count; r++)
        {
            Assert.True(Math.Abs(search[r].Score - page[r].Score) <= 1.01e-4, $"rank {r + 1}: search {search[r].Score}, page {page[r].Score}");
            if (search[r].Key != page[r].Key)
            {
                int other = search.ToList().FindIndex(h => h.Key == page[r].Key);
                Assert.True(other >= 0 && Math.Abs(search[other].Score - page[r].Score) <= 1.01e-4, $"rank {r + 1}: search lists {search[r].Key}, the page {page[r].Key}");
            }
        }
    }

    internal static async Task<IBrowser> LaunchAsync()
    {
        string chromium = Environment.GetEnvironmentVariable("CVRL_CHROMIUM") ?? "/usr/bin/chromium";
        Assert.True(File.Exists(chromium), $"Chromium is not at '{chromium}': run scripts/setup.sh (it installs Debian's chromium) or set CVRL_CHROMIUM");
        return await Puppeteer.LaunchAsync(new LaunchOptions
        {
            ExecutablePath = chromium,
            Headless = true,
            // No sandbox: CI runs as root, where Chromium's sandbox cannot start; the page is a local file the test wrote.
            Args = ["--no-sandbox", "--disable-gpu", "--allow-file-access-from-files"],
        });
    }

    /// <summary>A path under artifacts/screenshots of the repository (kept after the run, to be looked at).</summary>
    private static string Screenshots(string name)
    {
        var folder = new DirectoryInfo(AppContext.BaseDirectory);
        while (folder is not null && !File.Exists(Path.Combine(folder.FullName, "Cvrl.sln")))
        {
            folder = folder.Parent;
        }

        string root = Path.Combine(folder?.FullName ?? Path.GetTempPath(), "artifacts", "screenshots");
        Directory.CreateDirectory(root);
        return Path.Combine(root, name);
    }

    [GeneratedRegex(@"leave-one-out kNN accuracy: (\d+\.\d)%")]
    private static partial Regex AccuracyLine();

    [GeneratedRegex(@"(\d+)\s*\S\s*(-?\d\.\d{4})\s*\S\s*(\S+\.avi)")]
    private static partial Regex SearchRow();
}
