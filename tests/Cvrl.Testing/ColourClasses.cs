using Cvrl.Augment.Video;
using Cvrl.Video;
using OpenCvSharp;

namespace Cvrl.Testing;

/// <summary>
/// Class folders of small videos whose class is their dominant colour: every video of class c has a background near
/// colour c (with random brightness), a small disc of random colour moving over it and a left-right brightness ramp,
/// so that crops and clips differ from each other but the class stays obvious from colour alone.
/// </summary>
public static class ColourClasses
{
    /// <summary>Base colours (BGR) of up to six classes.</summary>
    public static readonly Scalar[] Colours =
    [
        new(40, 40, 220), new(40, 200, 40), new(220, 60, 40), new(40, 220, 220), new(220, 40, 220), new(220, 220, 40),
    ];

    /// <summary>Writes <paramref name="perClass"/> videos for each of <paramref name="classes"/> classes under <paramref name="root"/>/class{c}/.</summary>
    public static string Create(string root, int classes, int perClass, int seed, int frames = 12, int width = 40, int height = 32)
    {
        var rng = new Random(seed);
        for (int c = 0; c < classes; c++)
        {
            string folder = Path.Combine(root, $"class{c}");
            Directory.CreateDirectory(folder);
            for (int v = 0; v < perClass; v++)
            {
                double gain = 0.7 + (0.3 * rng.NextDouble());
                var background = new Scalar(Colours[c].Val0 * gain, Colours[c].Val1 * gain, Colours[c].Val2 * gain);
                var disc = new Scalar(rng.Next(256), rng.Next(256), rng.Next(256));
                int x0 = rng.Next(width), y0 = rng.Next(height), dx = rng.Next(-2, 3), dy = rng.Next(-2, 3);
                using var writer = new VideoFileWriter(Path.Combine(folder, $"v{v:D2}.avi"), width, height, 25, VideoCodec.Mjpeg);
                using var frame = new Mat(height, width, MatType.CV_8UC3);
                for (int t = 0; t < frames; t++)
                {
                    frame.SetTo(background);
                    for (int x = 0; x < width; x += 4)
                    {
                        // A ramp so that the left, middle and right crops differ.
                        Cv2.Rectangle(frame, new Rect(x, 0, 4, height / 4), new Scalar(x * 255.0 / width, x * 255.0 / width, x * 255.0 / width), -1);
                    }

                    Cv2.Circle(frame, new Point(((x0 + (dx * t)) % width + width) % width, ((y0 + (dy * t)) % height + height) % height), 4, disc, -1);
                    writer.WriteFrame(frame);
                }
            }
        }

        return root;
    }
}
