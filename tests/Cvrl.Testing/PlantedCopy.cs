using Cvrl.Augment.Video;
using Cvrl.Video;
using OpenCvSharp;

namespace Cvrl.Testing;

/// <summary>
/// Three generated MJPEG videos at 25 fps, 64x48, for moment search: <c>source.avi</c> (10 s), <c>host.avi</c> (20 s)
/// holding a copy of the source's 4.00-7.00 s at 12.00-15.00 s (MJPEG encodes each frame alone, so the copied frames
/// decode to the source's pixels), and <c>other.avi</c> (10 s), each of moving coloured shapes of its own.
/// </summary>
public static class PlantedCopy
{
    /// <summary>Where the copy starts in the host.</summary>
    public const double HostStart = 12.0;

    /// <summary>Where the copied span starts in the source.</summary>
    public const double SourceStart = 4.0;

    /// <summary>The copy's length.</summary>
    public const double Length = 3.0;

    /// <summary>Writes the three videos into <paramref name="folder"/> (created) and returns it.</summary>
    public static string Create(string folder)
    {
        Directory.CreateDirectory(folder);
        Write(Path.Combine(folder, "source.avi"), 250, i => Frame(1, i));
        Write(Path.Combine(folder, "host.avi"), 500, i => i is >= 300 and < 375 ? Frame(1, i - 200) : Frame(2, i));
        Write(Path.Combine(folder, "other.avi"), 250, i => Frame(3, i));
        return folder;
    }

    /// <summary>A generated frame: coloured shapes moving on a background, different for each seed and changing every frame.</summary>
    public static Mat Frame(int seed, int index)
    {
        var rng = new Random(seed);
        var frame = new Mat(48, 64, MatType.CV_8UC3, new Scalar(rng.Next(256), rng.Next(256), rng.Next(256)));
        for (int k = 0; k < 4; k++)
        {
            double phase = rng.NextDouble() * 6.28, speed = 0.05 + (rng.NextDouble() * 0.2);
            var colour = new Scalar(rng.Next(256), rng.Next(256), rng.Next(256));
            int x = (int)(32 + (26 * Math.Sin(phase + (speed * index)))), y = (int)(24 + (18 * Math.Cos((phase * 1.3) + (speed * index * 0.7))));
            Cv2.Rectangle(frame, new Rect(x - 5, y - 4, 10 + k, 8 + k), colour, -1);
        }

        return frame;
    }

    private static void Write(string path, int frames, Func<int, Mat> frame)
    {
        using var writer = new VideoFileWriter(path, 64, 48, 25, VideoCodec.Mjpeg);
        for (int i = 0; i < frames; i++)
        {
            using var f = frame(i);
            writer.WriteFrame(f);
        }
    }
}
