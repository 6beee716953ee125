using Cvrl.Testing;

namespace Cvrl.Cli.Tests;

/// <summary>Folders as users have them: links, loops, unreadable and broken files, each named once by every command.</summary>
public sealed class RobustnessTests
{
    private static readonly string[] TinyEncoder = ["--depth", "18", "--width", "0.0625", "--frames", "8", "--size", "32", "--clips", "2"];

    [Fact]
    public void A_symlink_loop_gives_each_real_file_once_and_every_skipped_file_is_named()
    {
        using var dir = new TempDirectory();
        string videos = dir.File("videos");
        VideoFolders.Create(videos, 2, frames: 20, seed: 4);
        Directory.CreateDirectory(Path.Combine(videos, "sub"));
        Directory.CreateSymbolicLink(Path.Combine(videos, "sub", "loop"), "..");
        File.CreateSymbolicLink(Path.Combine(videos, "copy.avi"), "video000.avi");
        VideoFolders.Corrupt(videos, "broken.avi");

        var index = CliRunner.Run(dir.Path, "index", videos);
        Assert.True(index.ExitCode == 0, index.All);
        Assert.Contains("3 videos: 2 ok", index.Text);
        Assert.Contains("left out: copy.avi: the same file as", index.Text);
        Assert.Contains("left out: sub/loop: a link to a folder searched already", index.Text);

        // embed writes each real video once and names the one it skipped, with the reason, once.
        string set = dir.File("set.cvrlemb");
        var embed = CliRunner.Run(dir.Path, ["embed", videos, "--out", set, .. TinyEncoder]);
        Assert.True(embed.ExitCode == 0, embed.All);
        Assert.Equal(["video000.avi", "video001.avi"], Cvrl.Embeddings.EmbeddingSet.Load(set).Keys);
        Assert.Contains("1 skipped", embed.Text);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(embed.All, "broken\\.avi"));
        Assert.Contains("skipped: broken.avi: OpenCV's FFmpeg backend could not open it", embed.Text);
    }

    /// <summary>
    /// A file that cannot be read is bad for now, not for good: once it is readable the next run indexes it. (Root reads
    /// any file, so when the tests run as root the tool runs as the unprivileged user nobody, through util-linux's setpriv.)
    /// </summary>
    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void An_unreadable_file_is_named_and_indexed_once_it_becomes_readable()
    {
        using var dir = new TempDirectory();
        string videos = dir.File("videos");
        var paths = VideoFolders.Create(videos, 2, frames: 20, seed: 6);
        string home = dir.File("home");
        Directory.CreateDirectory(home);
        foreach (string folder in new[] { dir.Path, videos, home })
        {
            File.SetUnixFileMode(folder, (UnixFileMode)0b111_111_111);
        }

        File.SetUnixFileMode(paths[1], UnixFileMode.None);
        bool root = Environment.UserName == "root";
        string[] launcher = root ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : [];
        var launch = new CliLaunch(dir.Path)
        {
            Launcher = launcher,
            Environment = new Dictionary<string, string> { ["HOME"] = home, ["DOTNET_CLI_HOME"] = home },
            Tool = root && !OthersCanReach(CliRunner.ToolPath) ? LinkTool(dir.File("cli")) : null,
        };

        var denied = CliRunner.Run(launch, "index", videos);
        Assert.True(denied.ExitCode == 0, denied.All);
        Assert.Contains("video001.avi", denied.Text);
        Assert.Contains("the file cannot be read (permission denied) (not cached: tried again on the next run)", denied.Text);
        Assert.Contains("1 bad (left out)", denied.Text);

        File.SetUnixFileMode(paths[1], (UnixFileMode)0b110_100_100);
        var readable = CliRunner.Run(launch, "index", videos);
        Assert.True(readable.ExitCode == 0, readable.All);
        Assert.Contains("2 videos: 2 ok", readable.Text);
        Assert.Contains("(1 of 2 from the cache)", readable.Text);
    }

    /// <summary>Whether a user other than the owner can open <paramref name="path"/>: every folder above it searchable by others.</summary>
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static bool OthersCanReach(string path)
    {
        for (var folder = new DirectoryInfo(Path.GetDirectoryName(path)!); folder is not null; folder = folder.Parent)
        {
            if ((File.GetUnixFileMode(folder.FullName) & UnixFileMode.OtherExecute) == 0)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// The tool's build output (its files and the linux-x64 natives) mirrored into <paramref name="folder"/>, hard-linked
    /// where the file system allows and copied otherwise, for a test clone in a folder only its owner may enter (such
    /// as /root). Returns the mirrored Cvrl.Cli.dll.
    /// </summary>
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static string LinkTool(string folder)
    {
        string source = Path.GetDirectoryName(CliRunner.ToolPath)!;
        var files = Directory.GetFiles(source).Concat(Directory.Exists(Path.Combine(source, "runtimes", "linux-x64"))
            ? Directory.GetFiles(Path.Combine(source, "runtimes", "linux-x64"), "*", SearchOption.AllDirectories)
            : []);
        foreach (string file in files)
        {
            string target = Path.Combine(folder, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            if (HardLink(file, target) != 0)
            {
                File.Copy(file, target);
            }
        }

        foreach (string sub in Directory.GetDirectories(folder, "*", SearchOption.AllDirectories).Append(folder))
        {
            File.SetUnixFileMode(sub, (UnixFileMode)0b111_101_101);
        }

        return Path.Combine(folder, Path.GetFileName(CliRunner.ToolPath));
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "link", SetLastError = true)]
    private static extern int HardLink([System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string existing, [System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string created);

    /// <summary>
    /// A flipped bit in a checkpoint is refused by every command that reads it, naming the file and the entry; a run
    /// folder whose checkpoints are all damaged is not restarted from step 0 on its own, and --fresh keeps the damaged
    /// files.
    /// </summary>
    [Fact]
    public void A_damaged_checkpoint_is_refused_by_name_and_a_run_with_none_intact_asks_for_fresh()
    {
        using var dir = new TempDirectory();
        string videos = dir.File("videos");
        VideoFolders.Create(videos, 4, frames: 24, seed: 8);
        string run = dir.File("run");
        string[] pretrain = ["pretrain", videos, "--out", run, "--depth", "18", "--width", "0.0625", "--frames", "8", "--size", "32", "--batch", "4", "--epochs", "2", "--workers", "2"];
        var first = CliRunner.Run(dir.Path, pretrain);
        Assert.True(first.ExitCode == 0, first.All);
        var checkpoints = Directory.GetFiles(Path.Combine(run, "checkpoints"), "*.cvrl");
        Assert.NotEmpty(checkpoints);
        foreach (string checkpoint in checkpoints)
        {
            FileDamage.FlipBit(checkpoint);
        }

        string newest = checkpoints.Order(StringComparer.Ordinal).Last();
        foreach (string[] command in new[] { ["embed", videos, "--checkpoint", newest, "--out", dir.File("e.cvrlemb")], new[] { "export", newest, "--out", dir.File("e.onnx") } })
        {
            var refused = CliRunner.Run(dir.Path, command);
            Assert.True(refused.ExitCode == 1, refused.All);
            // The flipped bit lands in a tensor's bytes or in an entry's name: either way the entry is named.
            Assert.Contains($"error: Checkpoint '{newest}' is damaged: entry '", refused.Text);
            Assert.Matches("is damaged: entry '[^']+' (does not match the checksum written with it|is missing|is not in the checksum record)", refused.Text);
        }

        var resume = CliRunner.Run(dir.Path, [.. pretrain, "--epochs", "3"]);
        Assert.True(resume.ExitCode == 1, resume.All);
        Assert.Contains("No intact checkpoint in", resume.Text);
        Assert.Contains("--fresh", resume.Text);
        Assert.Equal(checkpoints.Length, Directory.GetFiles(Path.Combine(run, "checkpoints"), "*.damaged").Length);

        var fresh = CliRunner.Run(dir.Path, [.. pretrain, "--fresh"]);
        Assert.True(fresh.ExitCode == 0, fresh.All);
        Assert.Equal(checkpoints.Length, Directory.GetFiles(Path.Combine(run, "checkpoints"), "*.damaged").Length);
    }

    /// <summary>Settings that cannot fit in memory and outputs that cannot be written fail at once, each in one line.</summary>
    [Fact]
    public void Oversize_options_and_wrong_outputs_fail_before_any_work_in_one_line()
    {
        using var dir = new TempDirectory();
        string videos = dir.File("videos");
        var paths = VideoFolders.Create(videos, 2, frames: 20, seed: 9);
        string bad = VideoFolders.Corrupt(dir.File("other"), "bad.avi");
        Directory.CreateDirectory(dir.File("a-folder"));
        File.WriteAllText(dir.File("a-file"), "x");

        void Fails(string expected, params string[] args)
        {
            var run = CliRunner.Run(dir.Path, args);
            Assert.True(run.ExitCode is 1 or 2, run.All);
            var errors = run.All.Split('\n').Where(l => l.StartsWith("error:", StringComparison.Ordinal)).ToList();
            Assert.True(errors.Count == 1, run.All);
            Assert.Contains(expected, run.Text);
            // Nothing but the run folder's lock (taken first, so that no other run starts meanwhile).
            Assert.False(Directory.Exists(dir.File("run")) && Directory.EnumerateFiles(dir.File("run"), "*", SearchOption.AllDirectories).Any(f => Path.GetFileName(f) != Cvrl.Video.FolderLock.FileName), "work was done: " + run.All);
        }

        Fails("needs 28 TiB of memory", "pretrain", videos, "--out", dir.File("run"), "--frames", "100000");
        Fails("TiB of memory", "pretrain", videos, "--out", dir.File("run"), "--size", "100000");
        Fails("would take 183.1 GiB, more than one buffer can hold", "embed", videos, "--frames", "100000", "--out", dir.File("e.cvrlemb"));
        Fails("is a folder; give the name of the file to write", "embed", videos, "--out", dir.File("a-folder"));
        Fails("is a file, not a folder", "embed", videos, "--out", dir.File("a-file/e.cvrlemb"));
        Fails("is a file; give a folder", "pretrain", videos, "--out", dir.File("a-file"));
        Fails("is a folder; give the name of the file to write", "preview", paths[0], "--out", dir.File("a-folder"));
        Fails($"Cannot decode video '{bad}': OpenCV's FFmpeg backend could not open it", "preview", bad, "--out", dir.File("p.png"));
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(CliRunner.Run(dir.Path, "preview", bad, "--out", dir.File("p.png")).All, "Cannot decode video"));
    }
}
