using Cvrl.Augment.Video;
using Cvrl.Video;
using OpenCvSharp;

namespace Cvrl.Testing;

/// <summary>Folders of small generated videos for data-set, loader and trainer tests.</summary>
public static class VideoFolders
{
    /// <summary>
    /// Writes <paramref name="count"/> videos (MJPG .avi) into <paramref name="folder"/>: each a coloured disc moving over
    /// a background whose colour depends on the video, so that different videos look different.
    /// </summary>
    public static IReadOnlyList<string> Create(string folder, int count, int frames = 24, int width = 48, int height = 40, int seed = 0, string prefix = "video")
    {
        Directory.CreateDirectory(folder);
        var paths = new List<string>();
        var rng = new Random(seed);
        for (int i = 0; i < count; i++)
        {
            string path = Path.Combine(folder, $"{prefix}{i:D3}.avi");
            var background = new Scalar(rng.Next(256), rng.Next(256), rng.Next(256));
            var disc = new Scalar(rng.Next(256), rng.Next(256), rng.Next(256));
            int dx = rng.Next(-3, 4), dy = rng.Next(-2, 3);
            int x0 = rng.Next(width), y0 = rng.Next(height), r = rng.Next(4, 12);
            using var writer = new VideoFileWriter(path, width, height, 25, VideoCodec.Mjpeg);
            using var frame = new Mat(height, width, MatType.CV_8UC3);
            for (int t = 0; t < frames; t++)
            {
                frame.SetTo(background);
                Cv2.Circle(frame, new Point(((x0 + (dx * t)) % width + width) % width, ((y0 + (dy * t)) % height + height) % height), r, disc, -1);
                writer.WriteFrame(frame);
            }

            paths.Add(path);
        }

        return paths;
    }

    /// <summary>Writes a file that is not a video, named like one.</summary>
    public static string Corrupt(string folder, string name = "broken.avi")
    {
        Directory.CreateDirectory(folder);
        string path = Path.Combine(folder, name);
        File.WriteAllText(path, "not a video");
        return path;
    }
}
