using System.Globalization;
using Cvrl.Augment;
using Cvrl.Augment.Video;
using OpenCvSharp;

namespace Cvrl.Data;

/// <summary>
/// Options for <see cref="SyntheticMotion"/>. The defaults make a small set that trains in minutes on a CPU: 6
/// classes, 32 training and 16 test videos per class, 48 frames of 80 x 64 pixels.
/// </summary>
public sealed record SyntheticMotionOptions
{
    /// <summary>Classes to generate, from the front of <see cref="SyntheticMotion.ClassNames"/> (2 to 6). Default 6.</summary>
    public int Classes { get; init; } = 6;

    /// <summary>Training videos per class. Default 32.</summary>
    public int TrainPerClass { get; init; } = 32;

    /// <summary>Test videos per class. Default 16.</summary>
    public int TestPerClass { get; init; } = 16;

    /// <summary>Frames per video. Default 48.</summary>
    public int Frames { get; init; } = 48;

    /// <summary>Frame width in pixels. Default 80.</summary>
    public int Width { get; init; } = 80;

    /// <summary>Frame height in pixels. Default 64.</summary>
    public int Height { get; init; } = 64;

    /// <summary>Frames per second written to the files. Default 25.</summary>
    public double FramesPerSecond { get; init; } = 25;

    /// <summary>Seed: the same seed gives the same frames.</summary>
    public long Seed { get; init; }

    /// <summary>Static clutter shapes drawn on each video's background. Default 6.</summary>
    public int Clutter { get; init; } = 6;

    /// <summary>Largest standard deviation of the per-pixel noise added to every frame (grey levels; each video draws its own up to this). Default 8.</summary>
    public double MaxNoise { get; init; } = 8;

    /// <summary>Codec of the files. Default Motion-JPEG (.avi).</summary>
    public VideoCodec Codec { get; init; } = VideoCodec.Mjpeg;

    /// <summary>Videos written in parallel. Default: one per core.</summary>
    public int Workers { get; init; } = Environment.ProcessorCount;

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        Check(Classes is >= 2 and <= 6, nameof(Classes), Classes, $"Classes must lie in [2, {SyntheticMotion.ClassNames.Count}].");
        Check(TrainPerClass >= 1, nameof(TrainPerClass), TrainPerClass, "TrainPerClass must be at least 1.");
        Check(TestPerClass >= 0, nameof(TestPerClass), TestPerClass, "TestPerClass must be 0 or more.");
        Check(Frames >= 8, nameof(Frames), Frames, "Frames must be at least 8.");
        Check(Width >= 32 && Width % 2 == 0, nameof(Width), Width, "Width must be an even number of at least 32 pixels.");
        Check(Height >= 32 && Height % 2 == 0, nameof(Height), Height, "Height must be an even number of at least 32 pixels.");
        Check(FramesPerSecond > 0 && double.IsFinite(FramesPerSecond), nameof(FramesPerSecond), FramesPerSecond, "FramesPerSecond must be positive.");
        Check(Clutter >= 0, nameof(Clutter), Clutter, "Clutter must be 0 or more.");
        Check(MaxNoise >= 0 && double.IsFinite(MaxNoise), nameof(MaxNoise), MaxNoise, "MaxNoise must be 0 or more.");
        Check(Workers >= 1, nameof(Workers), Workers, "Workers must be at least 1.");
        Check(Enum.IsDefined(Codec), nameof(Codec), Codec, "Unknown codec.");
    }

    private static void Check(bool ok, string name, object value, string message)
    {
        if (!ok)
        {
            throw new ArgumentOutOfRangeException(name, value, message);
        }
    }
}

/// <summary>Where <see cref="SyntheticMotion.Generate"/> wrote a data set, and its splits.</summary>
/// <param name="Root">The data set's folder (videos in one folder per class).</param>
/// <param name="ClassIndexPath">UCF101-style <c>classInd.txt</c>.</param>
/// <param name="TrainListPath">UCF101-style <c>trainlist01.txt</c> (with class indices).</param>
/// <param name="TestListPath">UCF101-style <c>testlist01.txt</c> (without).</param>
public sealed record SyntheticMotionSet(string Root, string ClassIndexPath, string TrainListPath, string TestListPath)
{
    /// <summary>The training split, read back through <see cref="VideoDataset.FromSplitList"/>.</summary>
    public VideoDataset Train() => VideoDataset.FromSplitList(Root, ClassIndexPath, TrainListPath);

    /// <summary>The test split, read back through <see cref="VideoDataset.FromSplitList"/>.</summary>
    public VideoDataset Test() => VideoDataset.FromSplitList(Root, ClassIndexPath, TestListPath);
}

/// <summary>
/// A synthetic video data set whose classes differ only in motion: one textured object over a cluttered, noisy,
/// static background moves up, moves down, grows (zoom in), shrinks (zoom out), spins or swings from side to side.
/// Appearance (shape, colours, object texture, background texture and clutter, noise) and the speed of the motion vary
/// at random within every class, and each class's positions, sizes and angles are spread so that a single frame has the
/// same distribution in every class: only the change between frames tells the class.
/// </summary>
/// <remarks>
/// <para>
/// The classes are chosen to survive CVRL's augmentations: a horizontal flip (used in pre-training and in the linear
/// probe) maps every class to itself (spinning includes both senses; the swing is horizontal), and no class depends on
/// colour. Left/right motion or a fixed spin sense would be turned into each other by the flip.
/// </para>
/// <para>
/// Deterministic from the seed: every video has its own random stream keyed by (seed, split, index), so files do not
/// depend on the number of workers. Writes UCF101-style split lists, so <see cref="VideoDataset.FromSplitList"/> reads it.
/// </para>
/// </remarks>
public static class SyntheticMotion
{
    /// <summary>The class names, in class-index order.</summary>
    public static IReadOnlyList<string> ClassNames { get; } = ["move_up", "move_down", "zoom_in", "zoom_out", "spin", "swing"];

    /// <summary>Writes the data set under <paramref name="root"/> (created if needed; existing files are replaced).</summary>
    /// <param name="root">The folder.</param>
    /// <param name="options">Options (validated); null for the defaults.</param>
    /// <param name="progress">Reports videos written.</param>
    /// <param name="cancellationToken">Stops between videos.</param>
    /// <returns>The paths of the lists.</returns>
    public static SyntheticMotionSet Generate(string root, SyntheticMotionOptions? options = null, IProgress<int>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(root);
        options ??= new SyntheticMotionOptions();
        options.Validate();
        OpenCvNative.EnsureLoaded();
        string full = Path.GetFullPath(root);
        var jobs = new List<(string Relative, int Class, int Split, int Index)>();
        for (int c = 0; c < options.Classes; c++)
        {
            string name = ClassNames[c];
            Directory.CreateDirectory(Path.Combine(full, name));
            for (int i = 0; i < options.TrainPerClass; i++)
            {
                jobs.Add(($"{name}/{name}_train{i:D3}{Extension(options.Codec)}", c, 0, i));
            }

            for (int i = 0; i < options.TestPerClass; i++)
            {
                jobs.Add(($"{name}/{name}_test{i:D3}{Extension(options.Codec)}", c, 1, i));
            }
        }

        int done = 0;
        Parallel.ForEach(
            jobs,
            new ParallelOptions { MaxDegreeOfParallelism = options.Workers, CancellationToken = cancellationToken },
            job =>
            {
                var random = ClipRandom.For(options.Seed, job.Split, (job.Class * 1_000_000L) + job.Index, 7);
                WriteVideo(Path.Combine(full, job.Relative), (Motion)job.Class, options, random);
                progress?.Report(Interlocked.Increment(ref done));
            });

        string classInd = Path.Combine(full, "classInd.txt");
        string trainList = Path.Combine(full, "trainlist01.txt");
        string testList = Path.Combine(full, "testlist01.txt");
        File.WriteAllLines(classInd, Enumerable.Range(0, options.Classes).Select(c => string.Create(CultureInfo.InvariantCulture, $"{c + 1} {ClassNames[c]}")));
        File.WriteAllLines(trainList, jobs.Where(j => j.Split == 0).Select(j => string.Create(CultureInfo.InvariantCulture, $"{j.Relative} {j.Class + 1}")));
        File.WriteAllLines(testList, jobs.Where(j => j.Split == 1).Select(j => j.Relative));
        return new SyntheticMotionSet(full, classInd, trainList, testList);
    }

    private enum Motion
    {
        Up,
        Down,
        ZoomIn,
        ZoomOut,
        Spin,
        Swing,
    }

    private static string Extension(VideoCodec codec) => codec switch
    {
        VideoCodec.Mpeg4 => ".mp4",
        VideoCodec.Ffv1 => ".mkv",
        _ => ".avi",
    };

    private static void WriteVideo(string path, Motion motion, SyntheticMotionOptions o, ClipRandom rng)
    {
        int w = o.Width, h = o.Height, frames = o.Frames;
        using var background = Background(w, h, o.Clutter, rng);

        // The object: a polygon (3 to 6 sides, or a 16-gon "disc") with a stripe so that spinning is visible.
        int sides = rng.NextInt(3, 8);
        sides = sides == 7 ? 16 : sides;
        var colour = RandomColour(rng);
        var stripe = Contrast(colour);
        double minSide = Math.Min(w, h);

        // Size (radius), position, angle and their motion. Ranges are spread so that a single frame's distribution is
        // the same in every class: only the change between frames tells the class.
        // Motions are large (the object crosses most of the frame, doubles its size, turns by a quarter to a half turn)
        // so that they survive the small crops of a CPU-sized run; objects may touch the border.
        double rMin = 0.12 * minSide, rMax = 0.26 * minSide;
        double radius = Uniform(rng, rMin, rMax);
        double angle = Uniform(rng, 0, 2 * Math.PI);
        double margin = 0.5 * rMax;
        double cx = Uniform(rng, margin, w - margin);
        double cy = Uniform(rng, margin, h - margin);
        double travel = Uniform(rng, 0.5, 0.8) * (h - (2 * margin));
        double zoom = Uniform(rng, 1.8, 2.4);
        double spin = Uniform(rng, 4.0, 8.0) * Math.PI / 180 * (rng.Bernoulli(0.5) ? 1 : -1);
        double swingAmplitude = Uniform(rng, 0.3, 0.45) * (w - (2 * margin));
        double swingPeriod = Uniform(rng, 16, 28);
        double swingPhase = Uniform(rng, 0, 2 * Math.PI);
        double drift = Uniform(rng, -0.5, 0.5) * Math.PI / 180; // a slow turn every class has
        switch (motion)
        {
            case Motion.Up:
                cy = Uniform(rng, margin + travel, h - margin);
                break;
            case Motion.Down:
                cy = Uniform(rng, margin, h - margin - travel);
                break;
            case Motion.ZoomIn:
                // Grows from r to r x zoom; zoom out shrinks from r x zoom to r: the same sizes, in reverse order.
                radius = Math.Exp(Uniform(rng, Math.Log(0.75 * rMin), Math.Log(rMax / zoom)));
                break;
            case Motion.ZoomOut:
                radius = Math.Exp(Uniform(rng, Math.Log(0.75 * rMin * zoom), Math.Log(rMax)));
                break;
            case Motion.Swing:
                cx = Uniform(rng, margin + swingAmplitude, w - margin - swingAmplitude);
                break;
        }

        double noise = Uniform(rng, 0, o.MaxNoise);
        using var writer = new VideoFileWriter(path, w, h, o.FramesPerSecond, o.Codec);
        using var frame = new Mat(h, w, MatType.CV_8UC3);
        var noiseBuffer = new byte[w * h * 3];
        for (int t = 0; t < frames; t++)
        {
            double p = (double)t / (frames - 1);
            double x = cx, y = cy, r = radius, a = angle + (drift * t);
            switch (motion)
            {
                case Motion.Up:
                    y = cy - (travel * p);
                    break;
                case Motion.Down:
                    y = cy + (travel * p);
                    break;
                case Motion.ZoomIn:
                    r = radius * Math.Pow(zoom, p);
                    break;
                case Motion.ZoomOut:
                    r = radius / Math.Pow(zoom, p);
                    break;
                case Motion.Spin:
                    a = angle + (spin * t);
                    break;
                case Motion.Swing:
                    x = cx + (swingAmplitude * Math.Sin((2 * Math.PI * t / swingPeriod) + swingPhase));
                    break;
            }

            background.CopyTo(frame);
            DrawObject(frame, sides, x, y, r, a, colour, stripe);
            AddNoise(frame, noise, rng, noiseBuffer);
            writer.WriteFrame(frame);
        }
    }

    private static Mat Background(int w, int h, int clutter, ClipRandom rng)
    {
        var bg = new Mat(h, w, MatType.CV_8UC3);
        var a = RandomColour(rng);
        var b = RandomColour(rng);
        double fx = Uniform(rng, 0.05, 0.4), fy = Uniform(rng, 0.05, 0.4), phase = Uniform(rng, 0, 6.3);
        var pixels = new byte[w * h * 3];
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                double m = 0.5 + (0.5 * Math.Sin((fx * x) + (fy * y) + phase));
                int i = ((y * w) + x) * 3;
                pixels[i] = Mix(a.Val0, b.Val0, m);
                pixels[i + 1] = Mix(a.Val1, b.Val1, m);
                pixels[i + 2] = Mix(a.Val2, b.Val2, m);
            }
        }

        System.Runtime.InteropServices.Marshal.Copy(pixels, 0, bg.Data, pixels.Length);

        for (int i = 0; i < clutter; i++)
        {
            var c = RandomColour(rng);
            var centre = new Point(rng.NextInt(w), rng.NextInt(h));
            int size = rng.NextInt(2, Math.Max(3, Math.Min(w, h) / 6));
            if (rng.Bernoulli(0.5))
            {
                Cv2.Circle(bg, centre, size, c, -1, LineTypes.AntiAlias);
            }
            else
            {
                Cv2.Rectangle(bg, new Rect(centre.X - size, centre.Y - (size / 2), 2 * size, size), c, -1);
            }
        }

        return bg;
    }

    private static void DrawObject(Mat frame, int sides, double x, double y, double r, double angle, Scalar colour, Scalar stripe)
    {
        const int Shift = 4; // sub-pixel precision: coordinates in 1/16 pixel
        const double Scale = 1 << Shift;
        var points = new Point[sides];
        for (int k = 0; k < sides; k++)
        {
            double theta = angle + (2 * Math.PI * k / sides);
            points[k] = new Point((int)Math.Round((x + (r * Math.Cos(theta))) * Scale), (int)Math.Round((y + (r * Math.Sin(theta))) * Scale));
        }

        Cv2.FillPoly(frame, [points], colour, LineTypes.AntiAlias, Shift);
        var from = new Point((int)Math.Round((x - (0.8 * r * Math.Cos(angle))) * Scale), (int)Math.Round((y - (0.8 * r * Math.Sin(angle))) * Scale));
        var to = new Point((int)Math.Round((x + (0.8 * r * Math.Cos(angle))) * Scale), (int)Math.Round((y + (0.8 * r * Math.Sin(angle))) * Scale));
        Cv2.Line(frame, from, to, stripe, Math.Max(1, (int)(r / 4)), LineTypes.AntiAlias, Shift);
    }

    private static void AddNoise(Mat frame, double sigma, ClipRandom rng, byte[] buffer)
    {
        if (sigma <= 0)
        {
            return;
        }

        int n = buffer.Length;
        System.Runtime.InteropServices.Marshal.Copy(frame.Data, buffer, 0, n);
        for (int i = 0; i < n; i += 2)
        {
            // Box-Muller: two normal values per pair of uniforms.
            double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
            double mag = sigma * Math.Sqrt(-2 * Math.Log(u1));
            buffer[i] = Clamp(buffer[i] + (mag * Math.Cos(2 * Math.PI * u2)));
            if (i + 1 < n)
            {
                buffer[i + 1] = Clamp(buffer[i + 1] + (mag * Math.Sin(2 * Math.PI * u2)));
            }
        }

        System.Runtime.InteropServices.Marshal.Copy(buffer, 0, frame.Data, n);
    }

    private static byte Clamp(double v) => (byte)Math.Clamp((int)Math.Round(v), 0, 255);

    private static byte Mix(double a, double b, double m) => (byte)Math.Round((a * (1 - m)) + (b * m));

    private static Scalar RandomColour(ClipRandom rng) => new(rng.NextInt(256), rng.NextInt(256), rng.NextInt(256));

    private static Scalar Contrast(Scalar c) => new(255 - c.Val0, 255 - c.Val1, 255 - c.Val2);

    private static double Uniform(ClipRandom rng, double low, double high) => rng.Uniform(low, high);
}
