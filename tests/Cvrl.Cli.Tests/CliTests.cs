using System.Text.Json.Nodes;
using Cvrl.Testing;
using OpenCvSharp;

namespace Cvrl.Cli.Tests;

/// <summary>A tiny quickstart run shared by the tests: its data set, its outputs and what it printed.</summary>
public sealed class TinyQuickstart : IDisposable
{
    private readonly TempDirectory _temp = new();

    public TinyQuickstart()
    {
        Output = _temp.File("quickstart");
        Result = CliRunner.Run(_temp.Path, "quickstart", "--tiny", "--out", Output);
    }

    internal CliResult Result { get; }

    public string Output { get; }

    public string Data => Path.Combine(Output, "data");

    public string Temp => _temp.Path;

    public void Dispose() => _temp.Dispose();
}

public sealed class CliTests(TinyQuickstart quickstart) : IClassFixture<TinyQuickstart>
{
    // Small clips for the R3D-18 1/8x encoder: enough frames and pixels for its strides, seconds per command.
    private static readonly string[] Tiny = ["--depth", "18", "--width", "0.125", "--frames", "8", "--stride", "2", "--size", "32", "--test-size", "32", "--clips", "2", "--crops", "1"];

    [Fact]
    public void Quickstart_tiny_writes_the_table_the_pictures_and_the_results()
    {
        var run = quickstart.Result;
        Assert.True(run.ExitCode == 0, run.All);
        Assert.Contains("random initialisation", run.Text);
        Assert.Contains("CVRL pre-trained", run.Text);
        foreach (var (name, minWidth) in new[] { ("views.png", 300), ("loss.png", 300), ("accuracy.png", 300) })
        {
            using var png = Cv2.ImRead(Path.Combine(quickstart.Output, name));
            Assert.False(png.Empty(), $"{name} does not decode");
            Assert.True(png.Width >= minWidth && png.Height >= 100, $"{name} is {png.Width}x{png.Height}");
        }

        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(quickstart.Output, "summary.json")))!;
        foreach (var key in new[] { "randomProbeTop1", "randomKnnTop1", "cvrlProbeTop1", "cvrlKnnTop1" })
        {
            double top1 = summary[key]!.GetValue<double>();
            Assert.InRange(top1, 0, 1);
        }

        TorchAssert.Near(
            (summary["cvrlProbeTop1"]!.GetValue<double>() - summary["randomProbeTop1"]!.GetValue<double>()) * 100,
            summary["probeGainPoints"]!.GetValue<double>(),
            1e-12,
            1e-12); // the same double subtraction
        foreach (var name in new[] { "cvrl-probe.json", "cvrl-knn.json", "random-probe.json", "random-knn.json" })
        {
            var result = Evaluation.ClassificationResult.Load(Path.Combine(quickstart.Output, name));
            Assert.Equal(3, result.Classes.Count);
            Assert.Equal(6, result.TestVideos);
        }

        Assert.True(File.Exists(Path.Combine(quickstart.Data, "classInd.txt")));
    }

    [Theory]
    [InlineData("quickstart")]
    [InlineData("pretrain")]
    [InlineData("probe")]
    [InlineData("knn")]
    [InlineData("finetune")]
    [InlineData("embed")]
    [InlineData("search")]
    [InlineData("preview")]
    [InlineData("summary")]
    [InlineData("index")]
    [InlineData("export")]
    [InlineData("import")]
    [InlineData("prepare")]
    [InlineData("results")]
    public void Every_command_has_help(string command)
    {
        var run = CliRunner.Run(quickstart.Temp, command, "--help");
        Assert.True(run.ExitCode == 0, run.All);
        Assert.Contains("USAGE", run.Text);
        Assert.DoesNotContain("error:", run.Text); // a description Spectre cannot render ("[0, 1]" read as markup) ends the help early
        if (command is not ("summary" or "preview" or "index" or "import" or "prepare"))
        {
            Assert.Contains("--device", run.Text);
        }
    }

    [Fact]
    public void Pretrain_resumes_from_its_checkpoints_and_probe_and_knn_use_them()
    {
        string runFolder = Path.Combine(quickstart.Temp, "pretrain-resume");
        string[] pretrain = ["pretrain", Path.Combine(quickstart.Data, "move_up"), "--out", runFolder, "--depth", "18", "--width", "0.125", "--frames", "8", "--stride", "2", "--size", "32", "--batch", "4", "--workers", "2"];
        var first = CliRunner.Run(quickstart.Temp, [.. pretrain, "--epochs", "1"]);
        Assert.True(first.ExitCode == 0, first.All);
        Assert.Contains("done: step 1, 1 epochs", first.Text);
        var second = CliRunner.Run(quickstart.Temp, [.. pretrain, "--epochs", "2"]);
        Assert.True(second.ExitCode == 0, second.All);
        Assert.Contains("done: step 2 (resumed from step 1), 2 epochs", second.Text);
        Assert.True(File.Exists(Path.Combine(runFolder, "metrics.csv")));
        string checkpoint = Directory.GetFiles(Path.Combine(runFolder, "checkpoints"), "*.cvrl").Order(StringComparer.Ordinal).Last();

        string result = Path.Combine(quickstart.Temp, "probe.json");
        var probe = CliRunner.Run(quickstart.Temp, ["probe", quickstart.Data, "--checkpoint", checkpoint, .. Tiny[4..], "--epochs", "3", "--cached-views", "1", "--out", result]);
        Assert.True(probe.ExitCode == 0, probe.All);
        Assert.Contains("R3D-18 0.125x from checkpoint", probe.Text);
        var probeResult = Evaluation.ClassificationResult.Load(result);
        Assert.Equal("linear-probe (cached)", probeResult.Protocol);
        Assert.Equal(6, probeResult.TestVideos);

        var knn = CliRunner.Run(quickstart.Temp, ["knn", quickstart.Data, "--checkpoint", checkpoint, .. Tiny[4..], "--neighbours", "3"]);
        Assert.True(knn.ExitCode == 0, knn.All);
        Assert.Matches(@"knn: top-1 \d+\.\d %", knn.Text);

        // The checkpoint exports to ONNX with its head; the metadata records the clip geometry it was trained on
        // (ONNX Runtime parity is tested in Cvrl.Models.Tests).
        string onnx = Path.Combine(quickstart.Temp, "export", "encoder.onnx");
        var export = CliRunner.Run(quickstart.Temp, ["export", checkpoint, "--out", onnx, "--head"]);
        Assert.True(export.ExitCode == 0, export.All);
        Assert.Contains("R3D-18 0.125x from checkpoint", export.Text);
        Assert.Contains("outputs 'features', 'projection'", export.Text);
        Assert.True(new FileInfo(onnx).Length > 100_000);
        string metadata = System.Text.Encoding.UTF8.GetString(File.ReadAllBytes(onnx));
        Assert.Contains("cvrl.clip_frames", metadata);
        Assert.Contains("cvrl.crop_size", metadata);
    }

    [Fact]
    public void Ctrl_C_stops_pretraining_cleanly_with_a_checkpoint()
    {
        string runFolder = Path.Combine(quickstart.Temp, "pretrain-interrupted");
        // Enough epochs that it cannot finish before the interrupt; SIGINT as soon as the first epoch is reported.
        var run = CliRunner.Run(
            quickstart.Temp,
            output => output.Contains("pre-training epoch 1:", StringComparison.Ordinal),
            "pretrain", quickstart.Data, "--out", runFolder, "--depth", "18", "--width", "0.125", "--frames", "8", "--stride", "2", "--size", "32", "--batch", "4", "--epochs", "1000", "--workers", "2");
        Assert.True(run.ExitCode == 130, run.All);
        Assert.Contains("stopped: step", run.Text);
        var checkpoints = Directory.GetFiles(Path.Combine(runFolder, "checkpoints"), "*.cvrl");
        Assert.NotEmpty(checkpoints);
        Assert.Empty(Directory.GetFiles(Path.Combine(runFolder, "checkpoints"), "*.tmp*"));

        // The checkpoint is whole: the same command resumes from it (and is stopped the same way).
        var resumed = CliRunner.Run(
            quickstart.Temp,
            output => output.Contains("pre-training epoch", StringComparison.Ordinal),
            "pretrain", quickstart.Data, "--out", runFolder, "--depth", "18", "--width", "0.125", "--frames", "8", "--stride", "2", "--size", "32", "--batch", "4", "--epochs", "1000", "--workers", "2");
        Assert.True(resumed.ExitCode == 130, resumed.All);
        Assert.Matches(@"stopped: step \d+ \(resumed from step [1-9]\d*\)", resumed.Text);
    }

    [Fact]
    public void Finetune_changes_the_encoder_and_saves_it()
    {
        string weights = Path.Combine(quickstart.Temp, "finetuned.weights");
        var run = CliRunner.Run(quickstart.Temp, ["finetune", quickstart.Data, .. Tiny, "--epochs", "1", "--tune-batch", "4", "--save", weights]);
        Assert.True(run.ExitCode == 0, run.All);
        Assert.Contains("fine-tune: top-1", run.Text);
        Assert.True(new FileInfo(weights).Length > 10_000);

        // The saved weights load back as a plain weight file for the same architecture.
        var knn = CliRunner.Run(quickstart.Temp, ["knn", quickstart.Data, "--checkpoint", weights, .. Tiny, "--neighbours", "3"]);
        Assert.True(knn.ExitCode == 0, knn.All);
        Assert.Contains("from weights finetuned.weights", knn.Text);
    }

    [Fact]
    public void Embed_then_search_finds_the_query_video_first()
    {
        string file = Path.Combine(quickstart.Temp, "videos.cvrlemb");
        string[] encoder = ["--depth", "18", "--width", "0.125", "--frames", "8", "--stride", "2", "--size", "32", "--clips", "2"];
        var embed = CliRunner.Run(quickstart.Temp, ["embed", Path.Combine(quickstart.Data, "zoom_in"), "--out", file, .. encoder]);
        Assert.True(embed.ExitCode == 0, embed.All);
        Assert.Contains("6 videos x 64 dimensions", embed.Text);

        string query = Directory.GetFiles(Path.Combine(quickstart.Data, "zoom_in"), "*.avi").Order(StringComparer.Ordinal).First();
        var search = CliRunner.Run(quickstart.Temp, ["search", file, query, "--top", "3", .. encoder[..4]]);
        Assert.True(search.ExitCode == 0, search.All);
        var first = search.Output.Split('\n').First(l => l.Contains(".avi", StringComparison.Ordinal));
        Assert.Contains(Path.GetFileName(query), first);
    }

    [Fact]
    public void The_encoder_geometry_follows_it_to_embed_and_search_through_both_runtimes()
    {
        // The tiny quickstart trains on clips of 4 frames at stride 2, 32 x 32: embed uses that without being told, with
        // the checkpoint (TorchSharp) and with its ONNX export, and search finds the encoder from the set alone.
        string checkpoint = Directory.GetFiles(Path.Combine(quickstart.Output, "checkpoints"), "*.cvrl").Order(StringComparer.Ordinal).Last();
        string folder = Path.Combine(quickstart.Data, "move_up");
        string query = Directory.GetFiles(folder, "*.avi").Order(StringComparer.Ordinal).First();
        string work = Path.Combine(quickstart.Temp, "geometry");
        Directory.CreateDirectory(work);
        string onnx = Path.Combine(work, "encoder.onnx");
        Assert.Equal(0, CliRunner.Run(work, "export", checkpoint, "--out", onnx).ExitCode);
        foreach (var encoder in new[] { checkpoint, onnx })
        {
            string set = Path.Combine(work, Path.GetFileName(encoder) + ".cvrlemb");
            var embed = CliRunner.Run(work, "embed", folder, "--checkpoint", encoder, "--out", set);
            Assert.True(embed.ExitCode == 0, embed.All);
            Assert.Contains("views: 10 clip(s) x 1 crop(s) of 4 frames at stride 2, short side 32, crop 32 (the encoder's training clips)", embed.Text);
            var metadata = JsonNode.Parse(Cvrl.Embeddings.EmbeddingSet.Load(set).Metadata)!;
            Assert.Equal(4, (int)metadata["views"]!["FramesPerClip"]!);
            Assert.Equal(32, (int)metadata["views"]!["CropSize"]!);
            Assert.Equal(Path.GetFullPath(encoder), (string)metadata["source"]!["path"]!);

            var search = CliRunner.Run(work, "search", set, query, "--top", "2");
            Assert.True(search.ExitCode == 0, search.All);
            Assert.Contains($"encoder from the embedding file: {Path.GetFullPath(encoder)}", search.Text);
            var first = search.Output.Split('\n').First(l => l.Contains(".avi", StringComparison.Ordinal));
            Assert.Contains(Path.GetFileName(query), first);
            Assert.Contains("1.0000", first);
        }

        // The encoder's file is gone: search says which file it needs.
        string moved = Path.Combine(work, "moved.onnx");
        File.Move(onnx, moved);
        var missing = CliRunner.Run(work, "search", Path.Combine(work, "encoder.onnx.cvrlemb"), query);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains($"made by the encoder '{Path.GetFullPath(onnx)}', which no longer exists", missing.Text);
        File.Move(moved, onnx);

        // Explicit options still win, and probe reports the geometry it evaluates with.
        var explicitViews = CliRunner.Run(work, "embed", folder, "--checkpoint", checkpoint, "--frames", "6", "--out", Path.Combine(work, "six.cvrlemb"));
        Assert.Contains("of 6 frames at stride 2, short side 32, crop 32 (the encoder's training clips, with the options given)", explicitViews.Text);
        var knn = CliRunner.Run(work, "knn", quickstart.Data, "--checkpoint", checkpoint, "--clips", "2", "--crops", "1", "--neighbours", "3");
        Assert.True(knn.ExitCode == 0, knn.All);
        Assert.Contains("views: 4 frames at stride 2, training crop 32, test 2 clip(s) x 1 crop(s) at 32 (the encoder's training clips)", knn.Text);
    }

    [Fact]
    public void Preview_and_demo_write_and_report()
    {
        string sheet = Path.Combine(quickstart.Temp, "sheet.png");
        string video = Directory.GetFiles(Path.Combine(quickstart.Data, "move_down"), "*.avi").Order(StringComparer.Ordinal).First();
        var preview = CliRunner.Run(quickstart.Temp, "preview", video, "--out", sheet);
        Assert.True(preview.ExitCode == 0, preview.All);
        using (var png = Cv2.ImRead(sheet))
        {
            Assert.False(png.Empty());
            Assert.True(png.Width > 200 && png.Height > 100);
        }

        var demo = CliRunner.Run(quickstart.Temp, "demo");
        Assert.True(demo.ExitCode == 0, demo.All);
    }

    [Fact]
    public void Results_writes_a_table_a_chart_and_raw_json_and_re_renders_them()
    {
        string output = Path.Combine(quickstart.Temp, "results", "results.md");
        var run = CliRunner.Run(quickstart.Temp, "results", "--seeds", "1", "--classes", "2", "--train-per-class", "3", "--test-per-class", "1", "--epochs", "1", "--batch", "6", "--depth", "18", "--width", "0.125", "--out", output, "--work", Path.Combine(quickstart.Temp, "results-work"));
        Assert.True(run.ExitCode == 0, run.All);
        string table = File.ReadAllText(output);
        foreach (var row in new[] { "random initialisation", "CVRL: per-clip augmentation", "per-frame (inconsistent)", "uniform interval", "same start" })
        {
            Assert.Contains(row, table);
        }

        using (var png = Cv2.ImRead(Path.ChangeExtension(output, ".png")))
        {
            Assert.Equal((720, 420), (png.Width, png.Height));
        }

        // Notes written by hand are appended when the table is rendered again from the raw results.
        File.WriteAllText(Path.Combine(Path.GetDirectoryName(output)!, "results-notes.md"), "## What this shows\n");
        var render = CliRunner.Run(quickstart.Temp, "results", "--render", Path.ChangeExtension(output, ".json"), "--out", output);
        Assert.True(render.ExitCode == 0, render.All);
        string again = File.ReadAllText(output);
        Assert.StartsWith(table.TrimEnd(), again.Replace("## What this shows", string.Empty, StringComparison.Ordinal).TrimEnd(), StringComparison.Ordinal);
        Assert.EndsWith("## What this shows\n", again, StringComparison.Ordinal);
    }

    [Fact]
    public void Index_lists_the_real_frame_counts_and_names_bad_files()
    {
        string folder = Path.Combine(quickstart.Temp, "index-videos");
        Directory.CreateDirectory(folder);
        string honest = TestVideos.Create(Path.Combine(folder, "honest.avi"), 24, 64, 48);
        LyingVideos.ClaimFrames(honest, Path.Combine(folder, "claims_too_few.avi"), 7);
        LyingVideos.RawMjpeg(Path.Combine(folder, "no_claim.mjpeg"), 19, 64, 48);
        File.WriteAllText(Path.Combine(folder, "junk.mp4"), "not a video");

        var run = CliRunner.Run(quickstart.Temp, "index", folder, "--extensions", "avi,mjpeg,mp4");
        Assert.True(run.ExitCode == 0, run.All);
        string Row(string name) => run.Output.Split('\n').Single(l => l.Contains(name, StringComparison.Ordinal));
        Assert.Matches(@"claims_too_few\.avi\s*│\s*24\s*│\s*7\s*│", Row("claims_too_few.avi"));
        Assert.Matches(@"no_claim\.mjpeg\s*│\s*19\s*│\s*none\s*│", Row("no_claim.mjpeg"));
        Assert.Contains("bad:", Row("junk.mp4"));
        Assert.Contains("4 videos: 1 ok, 2 with a wrong container count (the verified count is used), 1 bad (left out)", run.Text);
        // Named once: in the table, not again as a warning (the per-video warnings show with --verbose).
        Assert.DoesNotContain("junk.mp4", run.Error);

        var again = CliRunner.Run(quickstart.Temp, "index", folder, "--extensions", "avi,mjpeg,mp4", "--bad-only");
        Assert.True(again.ExitCode == 0, again.All);
        Assert.Contains("(4 of 4 from the cache)", again.Text);
        Assert.DoesNotContain("honest.avi", again.Output);
    }

    [Fact]
    public void Pretrain_names_a_bad_video_on_the_console_and_trains_on_the_rest()
    {
        string folder = Path.Combine(quickstart.Temp, "pretrain-with-junk");
        Directory.CreateDirectory(folder);
        foreach (var video in Directory.GetFiles(Path.Combine(quickstart.Data, "zoom_in"), "*.avi").Take(4))
        {
            File.Copy(video, Path.Combine(folder, Path.GetFileName(video)));
        }

        File.WriteAllText(Path.Combine(folder, "broken.mp4"), "not a video");
        var run = CliRunner.Run(quickstart.Temp, "pretrain", folder, "--out", Path.Combine(quickstart.Temp, "pretrain-junk-run"), "--depth", "18", "--width", "0.125", "--frames", "8", "--stride", "1", "--size", "32", "--batch", "2", "--epochs", "1", "--verbose");
        Assert.True(run.ExitCode == 0, run.All);
        Assert.Contains("warning: Bad video", run.Error);
        Assert.Contains("broken.mp4", run.Error);
        Assert.Contains("info: Indexed 5 videos", run.Error);
    }

    [Fact]
    public void Summary_prints_the_paper_parameter_count()
    {
        var run = CliRunner.Run(quickstart.Temp, "summary", "--depth", "50", "--frames", "4", "--size", "64");
        Assert.True(run.ExitCode == 0, run.All);
        Assert.Contains("31,672,128", run.Text);
    }

    public static TheoryData<string[], int, string> BadInputs => new()
    {
        { ["pretrain", "no-such-folder"], 1, "neither a folder nor a video file exists at 'no-such-folder'" },
        { ["index", "no-such-folder"], 1, "neither a folder nor a video file exists at 'no-such-folder'" },
        { ["prepare", "no-such-folder", "--out", "x"], 1, "neither a folder nor a video file exists at 'no-such-folder'" },
        { ["prepare", "no-such-folder"], 2, "--out <FOLDER> is required" },
        { ["probe", "no-such-folder"], 1, "data folder 'no-such-folder' does not exist" },
        { ["knn", "no-such-folder"], 1, "data folder 'no-such-folder' does not exist" },
        { ["finetune", "no-such-folder"], 1, "data folder 'no-such-folder' does not exist" },
        { ["embed", "no-such-folder"], 1, "neither a folder nor a video file exists at 'no-such-folder'" },
        { ["preview", "no-such-video.mp4"], 1, "no-such-video.mp4" },
        { ["pretrain", "empty"], 1, "No video files" },
        { ["knn", "empty"], 1, "is not a labelled data folder" },
        { ["probe", "DATA", "--checkpoint", "corrupt.cvrl"], 1, "corrupt.cvrl" },
        { ["probe", "DATA", "--checkpoint", "missing.cvrl"], 1, "missing.cvrl" },
        { ["probe", "DATA", "--epochs", "0"], 2, "Epochs must be at least 1" },
        { ["pretrain", "DATA", "--batch", "1"], 2, "BatchSize must be at least 2" },
        { ["knn", "DATA", "--depth", "7"], 2, "--depth must be" },
        { ["quickstart", "--classes", "9"], 2, "--classes must lie in 2..6" },
        { ["pretrain", "DATA", "--no-such-option"], 2, "no-such-option" },
        { ["export", "missing.cvrl"], 1, "missing.cvrl" },
        { ["export", "--head", "--depth", "18"], 2, "--head needs a Cvrl checkpoint" },
        { ["export", "corrupt.cvrl", "--checkpoint", "corrupt.cvrl"], 2, "not both" },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Bad_input_ends_with_one_line_and_an_exit_code(string[] args, int exitCode, string message)
    {
        Directory.CreateDirectory(Path.Combine(quickstart.Temp, "empty"));
        File.WriteAllText(Path.Combine(quickstart.Temp, "corrupt.cvrl"), "not a checkpoint");
        string[] resolved = [.. args.Select(a => a == "DATA" ? quickstart.Data : a)];
        var run = CliRunner.Run(quickstart.Temp, resolved);
        Assert.True(run.ExitCode == exitCode, $"exit {run.ExitCode}, expected {exitCode}: {run.All}");
        Assert.Contains(message, run.Text);
        Assert.DoesNotContain("   at ", run.All);
        var errorLines = run.All.Split('\n').Where(l => l.Contains("error", StringComparison.OrdinalIgnoreCase)).ToList();
        Assert.True(errorLines.Count >= 1, run.All);
    }
}
