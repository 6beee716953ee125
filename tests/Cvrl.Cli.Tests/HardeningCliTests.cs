using System.IO.Compression;
using System.Text;
using Cvrl.Testing;
using Cvrl.Video;

namespace Cvrl.Cli.Tests;

/// <summary>
/// The second hardening round through the tool, as the hostile run drove it: a small file built to exhaust the stack,
/// outputs that name an input, a run folder another process holds, <c>--</c> before a name that starts with a dash, and
/// <c>--version</c>. Each ends in one line and the documented exit code, and no input is changed.
/// </summary>
public sealed class HardeningCliTests
{
    private static readonly string[] TinyEncoder = ["--depth", "18", "--width", "0.0625", "--frames", "8", "--size", "32", "--clips", "2"];

    [Fact]
    public void A_20_KB_file_of_nested_tuples_is_refused_in_one_line_by_import_and_embed()
    {
        using var dir = new TempDirectory();
        string deep = dir.File("deep.pt");
        using (var zip = new ZipArchive(File.Create(deep), ZipArchiveMode.Create))
        {
            using var entry = zip.CreateEntry("deep/data.pkl").Open();
            entry.Write([0x80, 0x02, .. Encoding.Latin1.GetBytes("})" + new string('\x85', 20000) + "Ns.")]);
        }

        var import = CliRunner.Run(dir.Path, "import", deep, "--out", dir.File("x.cvrl"));
        Assert.True(import.ExitCode == 1, import.All);
        Assert.Contains("nests tuples more than 100 deep", import.Text);
        Assert.Contains(deep, import.Text);
        Assert.False(File.Exists(dir.File("x.cvrl")));

        VideoFolders.Create(dir.File("videos"), 1, frames: 12);
        var embed = CliRunner.Run(dir.Path, ["embed", dir.File("videos"), "--out", dir.File("set.cvrlemb"), "--checkpoint", deep, .. TinyEncoder[4..]]);
        Assert.True(embed.ExitCode is 1 or 2, embed.All);
        Assert.Contains(deep, embed.Text);
        Assert.Single(embed.All.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("error:", StringComparison.Ordinal));
    }

    [Fact]
    public void An_output_that_names_an_input_is_refused_and_the_input_is_left_as_it_was()
    {
        using var dir = new TempDirectory();
        string videos = dir.File("vids");
        var paths = VideoFolders.Create(videos, 2, frames: 12);
        string video = Path.Combine(videos, "a.mp4");
        File.Copy(paths[0], video);
        byte[] before = File.ReadAllBytes(video);

        // cvrl embed vids/ --out vids/a.mp4 once replaced a video with the embedding file.
        var intoVideo = CliRunner.Run(dir.Path, ["embed", videos, "--out", video, .. TinyEncoder]);
        Assert.True(intoVideo.ExitCode == 2, intoVideo.All);
        Assert.Contains("video file inside the videos", intoVideo.Text);
        Assert.Equal(before, File.ReadAllBytes(video));

        // A checkpoint, reached by another name (a hard link), as --out: refused, unchanged.
        string set = dir.File("set.cvrlemb");
        Assert.Equal(0, CliRunner.Run(dir.Path, ["embed", videos, "--out", set, .. TinyEncoder]).ExitCode);
        string pretrained = dir.File("run");
        var pretrain = CliRunner.Run(dir.Path, "pretrain", videos, "--out", pretrained, "--depth", "18", "--width", "0.0625", "--frames", "8", "--size", "32", "--batch", "2", "--epochs", "1");
        Assert.True(pretrain.ExitCode == 0, pretrain.All);
        string checkpoint = Directory.GetFiles(Path.Combine(pretrained, "checkpoints"), "*.cvrl").Single();
        string alias = dir.File("alias.cvrl");
        FileLinks.Hard(checkpoint, alias);
        byte[] checkpointBytes = File.ReadAllBytes(checkpoint);
        var intoCheckpoint = CliRunner.Run(dir.Path, "embed", videos, "--out", alias, "--checkpoint", checkpoint, "--clips", "2");
        Assert.True(intoCheckpoint.ExitCode == 2, intoCheckpoint.All);
        Assert.Contains("is the encoder", intoCheckpoint.Text);
        Assert.Equal(checkpointBytes, File.ReadAllBytes(checkpoint));

        // cvrl import z.pyth --out z.pyth once replaced the zoo file.
        string zoo = dir.File("z.pyth");
        File.Copy(Path.Combine(AppContext.BaseDirectory, "Fixtures", "zoo_pytorchvideo_slow_r50_w32.pyth"), zoo);
        byte[] zooBytes = File.ReadAllBytes(zoo);
        var intoZoo = CliRunner.Run(dir.Path, "import", zoo, "--out", Path.Combine(".", "z.pyth"));
        Assert.True(intoZoo.ExitCode == 2, intoZoo.All);
        Assert.Contains("is the file to import", intoZoo.Text);
        Assert.Equal(zooBytes, File.ReadAllBytes(zoo));

        // export over its own checkpoint, and probe's --out over the checkpoint: refused the same way.
        var export = CliRunner.Run(dir.Path, "export", checkpoint, "--out", checkpoint);
        Assert.True(export.ExitCode == 2, export.All);
        Assert.Equal(checkpointBytes, File.ReadAllBytes(checkpoint));
    }

    [Fact]
    public void A_second_pretrain_on_a_run_folder_in_use_is_refused_with_the_holders_pid()
    {
        using var dir = new TempDirectory();
        string videos = dir.File("vids");
        VideoFolders.Create(videos, 2, frames: 12);
        string run = dir.File("run");
        using (FolderLock.Acquire(run, "a test's run"))
        {
            var second = CliRunner.Run(dir.Path, "pretrain", videos, "--out", run, "--depth", "18", "--width", "0.0625", "--frames", "8", "--size", "32", "--batch", "2", "--epochs", "1", "--seed", "2");
            Assert.True(second.ExitCode == 1, second.All);
            Assert.Contains($"is in use by process {Environment.ProcessId}", second.Text);
            Assert.Contains("a test's run", second.Text);
            Assert.False(Directory.Exists(Path.Combine(run, "checkpoints")));
            Assert.False(File.Exists(Path.Combine(run, "metrics.csv")));
        }

        // Released: the same command runs.
        var free = CliRunner.Run(dir.Path, "pretrain", videos, "--out", run, "--depth", "18", "--width", "0.0625", "--frames", "8", "--size", "32", "--batch", "2", "--epochs", "1");
        Assert.True(free.ExitCode == 0, free.All);
    }

    [Fact]
    public void Double_dash_ends_the_options_and_version_says_what_the_tool_runs_on()
    {
        using var dir = new TempDirectory();
        var paths = VideoFolders.Create(dir.File("vids"), 1, frames: 12);
        File.Copy(paths[0], dir.File("-dash.avi"));
        var embed = CliRunner.Run(dir.Path, ["embed", "--out", "dash.cvrlemb", .. TinyEncoder, "--", "-dash.avi"]);
        Assert.True(embed.ExitCode == 0, embed.All);
        Assert.Equal(["-dash.avi"], Cvrl.Embeddings.EmbeddingSet.Load(dir.File("dash.cvrlemb")).Keys);

        foreach (string flag in new[] { "--version", "-V", "version" })
        {
            var version = CliRunner.Run(dir.Path, flag);
            Assert.True(version.ExitCode == 0, version.All);
            foreach (string line in new[] { "cvrl: ", "TorchSharp: 0.107", "libtorch: 2.", "OpenCV: 4.", ".NET: ", "CPU: ", "CUDA: ", "precision auto: " })
            {
                Assert.Contains(line, version.Text);
            }
        }
    }
}
