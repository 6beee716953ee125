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
        string[] launcher = Environment.UserName == "root" ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : [];
        var launch = new CliLaunch(dir.Path, TimeSpan.FromMinutes(2)) { Launcher = launcher, Environment = new Dictionary<string, string> { ["HOME"] = home, ["DOTNET_CLI_HOME"] = home } };

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
}
