using Cvrl.Video;
using System.Diagnostics;
using Cvrl.Augment.Video;

namespace Cvrl.Testing;

/// <summary>The kinds of file <see cref="FfmpegVideos"/> makes: the codecs and containers real video collections hold.</summary>
public enum FfmpegKind
{
    /// <summary>H.264 in MP4, key frame every 250 frames, 3 B-frames.</summary>
    H264Mp4,

    /// <summary>MPEG-4 part 2 in AVI, key frame every 250 frames, 2 B-frames (the last frame comes without a timestamp).</summary>
    Mpeg4Avi,

    /// <summary>VP9 in WebM, key frame every 250 frames.</summary>
    Vp9Webm,

    /// <summary>Motion JPEG in AVI (every frame a key frame).</summary>
    MjpegAvi,

    /// <summary>H.264 in an MPEG transport stream (.ts), key frame every 250 frames, 3 B-frames.</summary>
    H264Ts,

    /// <summary>A raw H.264 elementary stream (.h264): no container, no timestamps, no frame count.</summary>
    H264Raw,

    /// <summary>A raw HEVC elementary stream (.hevc).</summary>
    HevcRaw,

    /// <summary>H.264 in MP4 with a variable frame rate: every tenth frame dropped, the others keep their times.</summary>
    VfrMp4,
}

/// <summary>
/// Re-encodes <see cref="TestVideos"/> frames (each shows its own index) with the ffmpeg command-line tool into the
/// codecs and containers OpenCV's own writer cannot make: long-GOP H.264 with B-frames, VP9, MPEG-TS, elementary
/// streams, variable frame rate. The test setup installs ffmpeg (scripts/setup.sh).
/// </summary>
public static class FfmpegVideos
{
    /// <summary>The file extension of each kind.</summary>
    public static string Extension(FfmpegKind kind) => kind switch
    {
        FfmpegKind.H264Mp4 or FfmpegKind.VfrMp4 => ".mp4",
        FfmpegKind.Mpeg4Avi or FfmpegKind.MjpegAvi => ".avi",
        FfmpegKind.Vp9Webm => ".webm",
        FfmpegKind.H264Ts => ".ts",
        FfmpegKind.H264Raw => ".h264",
        FfmpegKind.HevcRaw => ".hevc",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>Writes <paramref name="frames"/> frames of <paramref name="kind"/> (25 fps) into <paramref name="folder"/> and returns the path.</summary>
    public static string Create(string folder, FfmpegKind kind, int frames, int width = 160, int height = 120, string? name = null)
    {
        string lossless = Path.Combine(folder, $"source-{Guid.NewGuid():N}.mkv");
        TestVideos.Create(lossless, frames, width, height, VideoCodec.Ffv1);
        string output = Path.Combine(folder, (name ?? kind.ToString().ToLowerInvariant()) + Extension(kind));
        string gop = "-g 250 -keyint_min 250 -sc_threshold 0";
        string codec = kind switch
        {
            FfmpegKind.H264Mp4 or FfmpegKind.H264Ts or FfmpegKind.H264Raw => $"-c:v libx264 -preset veryfast {gop} -bf 3 -pix_fmt yuv420p",
            FfmpegKind.VfrMp4 => $"-vf select='not(eq(mod(n\\,10)\\,7))' -fps_mode vfr -c:v libx264 -preset veryfast {gop} -bf 3 -pix_fmt yuv420p",
            FfmpegKind.Mpeg4Avi => "-c:v mpeg4 -g 250 -bf 2 -q:v 3",
            FfmpegKind.Vp9Webm => "-c:v libvpx-vp9 -g 250 -deadline realtime -cpu-used 8 -b:v 400k",
            FfmpegKind.MjpegAvi => "-c:v mjpeg -q:v 3",
            FfmpegKind.HevcRaw => "-c:v libx265 -preset ultrafast -x265-params log-level=none:keyint=250:min-keyint=250:bframes=3",
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
        string format = kind switch { FfmpegKind.H264Raw => "-f h264", FfmpegKind.HevcRaw => "-f hevc", FfmpegKind.H264Ts => "-f mpegts", _ => string.Empty };
        Run($"-v error -y -i \"{lossless}\" -an {codec} {format} \"{output}\"");
        File.Delete(lossless);
        return output;
    }

    /// <summary>Runs ffmpeg with the given arguments; throws with its error output when it fails or is not installed.</summary>
    public static void Run(string arguments)
    {
        var start = new ProcessStartInfo("ffmpeg", arguments) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("ffmpeg is not installed; scripts/setup.sh installs it (apt-get install ffmpeg).", e);
        }

        using (process)
        {
            var stderr = process.StandardError.ReadToEndAsync();
            _ = process.StandardOutput.ReadToEndAsync();
            if (!process.WaitForExit(120_000))
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"ffmpeg {arguments} did not finish within 2 minutes.");
            }

            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException($"ffmpeg {arguments} failed ({process.ExitCode}): {stderr.Result}");
            }
        }
    }
}
