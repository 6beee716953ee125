using System.Diagnostics;
using Cvrl.Testing;
using Cvrl.Video;

namespace Cvrl.Cli.Tests;

/// <summary>
/// <c>cvrl prepare</c> as a user runs it: killed with SIGKILL in the middle and run again, then the prepared folder used
/// by <c>index</c> and <c>pretrain</c>; <c>index</c> on a single transport-stream file.
/// </summary>
public sealed class PrepareCliTests
{
    [Fact]
    public void Prepare_killed_midway_then_rerun_completes_without_redoing_finished_videos()
    {
        using var dir = new TempDirectory();
        string source = dir.File("videos");
        for (int i = 0; i < 8; i++)
        {
            TestVideos.Create(Path.Combine(source, i % 2 == 0 ? "even" : "odd", $"v{i}.avi"), 240, 160, 120);
        }

        string output = dir.File("prepared");
        var killed = new ManualResetEventSlim();
        var first = CliRunner.Run(
            new CliLaunch(dir.Path)
            {
                Started = process => new Thread(() =>
                {
                    // SIGKILL as soon as the first video is complete (or give up once the run has ended).
                    while (!process.HasExited)
                    {
                        if (Directory.Exists(output) && Directory.EnumerateFiles(output, "*" + PreparedVideo.Extension, SearchOption.AllDirectories).Any())
                        {
                            process.Kill();
                            killed.Set();
                            return;
                        }

                        Thread.Sleep(5);
                    }
                }) { IsBackground = true }.Start(),
            },
            "prepare", source, "--out", output, "--short-side", "64", "--workers", "1");

        // Every prepared file the killed run left is complete; whatever it was writing is only a ".partial" file.
        var complete = Directory.EnumerateFiles(output, "*" + PreparedVideo.Extension, SearchOption.AllDirectories).ToList();
        Assert.NotEmpty(complete);
        Assert.All(complete, f => Assert.Equal(240, PreparedVideo.ReadHeader(f).Frames));
        if (killed.IsSet)
        {
            Assert.NotEqual(0, first.ExitCode);
        }

        var second = CliRunner.Run(dir.Path, "prepare", source, "--out", output, "--short-side", "64");
        Assert.True(second.ExitCode == 0, second.All);
        Assert.Contains($"8 videos: {8 - complete.Count} prepared now, {complete.Count} up to date, 0 bad", second.Text);
        Assert.Empty(Directory.EnumerateFiles(output, "*.partial", SearchOption.AllDirectories));

        var index = CliRunner.Run(dir.Path, "index", output);
        Assert.True(index.ExitCode == 0, index.All);
        Assert.Contains("8 videos: 8 ok", index.Text);
        Assert.Contains("directly 8", index.Text);
        Assert.Contains("(8 of 8 from the cache)", index.Text);

        var train = CliRunner.Run(dir.Path, "pretrain", output, "--out", dir.File("run"), "--depth", "18", "--width", "0.125", "--frames", "8", "--stride", "2", "--size", "32", "--batch", "4", "--epochs", "1");
        Assert.True(train.ExitCode == 0, train.All);
    }

    [Fact]
    public void Index_takes_a_single_transport_stream_and_an_elementary_stream()
    {
        using var dir = new TempDirectory();
        string ts = FfmpegVideos.Create(dir.Path, FfmpegKind.H264Ts, 75, 64, 48, "camera");
        FfmpegVideos.Create(dir.Path, FfmpegKind.H264Raw, 60, 64, 48, "stream");
        var one = CliRunner.Run(dir.Path, "index", ts);
        Assert.True(one.ExitCode == 0, one.All);
        Assert.Contains("camera.ts", one.Text);
        Assert.Contains("75 frames in all", one.Text);
        var folder = CliRunner.Run(dir.Path, "index", dir.Path, "--no-cache");
        Assert.True(folder.ExitCode == 0, folder.All);
        Assert.Contains("stream.h264", folder.Text);
        Assert.Contains("135 frames in all", folder.Text);
        Assert.Contains("sequential", folder.Text);
    }
}
