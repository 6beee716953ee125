using System.Globalization;
using Cvrl.Augment;
using Cvrl.Augment.Video;
using Cvrl.Video;
using OpenCvSharp;

namespace Cvrl.Data;

/// <summary>
/// Options for <see cref="SyntheticMotion"/>. The defaults make the quickstart's data set: 6 classes, 64 training and
/// 16 test videos per class, 48 frames of 32 x 32 pixels, objects and background in 3 grey levels.
/// </summary>
public sealed record SyntheticMotionOptions
{
    /// <summary>Classes to generate, from the front of <see cref="SyntheticMotion.ClassNames"/> (2 to 6). Default 6.</summary>
    public int Classes { get; init; } = 6;

    /// <summary>Training videos per class. Default 64.</summary>
    public int TrainPerClass { get; init; } = 64;

    /// <summary>Test videos per class. Default 16.</summary>
    public int TestPerClass { get; init; } = 16;

    /// <summary>Frames per video. Default 48.</summary>
    public int Frames { get; init; } = 48;

    /// <summary>Frame width in pixels. Default 32.</summary>
    public int Width { get; init; } = 32;

    /// <summary>Frame height in pixels. Default 32.</summary>
    public int Height { get; init; } = 32;

    /// <summary>Frames per second written to the files. Default 25.</summary>
    public double FramesPerSecond { get; init; } = 25;

    /// <summary>Seed: the same seed gives the same frames.</summary>
    public long Seed { get; init; }

    /// <summary>
    /// Grey levels the object's two halves and the background are drawn from (evenly spaced from black to white; the
    /// three are always different levels). More levels make appearance more varied, and the contrastive task easier to
    /// solve by appearance instead of motion (docs/results.md). 3 to 16; default 3.
    /// </summary>
    public int GreyLevels { get; init; } = 3;

    /// <summary>Standard deviation of the Gaussian noise added to every pixel of every frame, in grey levels (0-255). Default 5.</summary>
    public double Noise { get; init; } = 5;

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
        Check(Width >= 16 && Width % 2 == 0, nameof(Width), Width, "Width must be an even number of at least 16 pixels.");
        Check(Height >= 16 && Height % 2 == 0, nameof(Height), Height, "Height must be an even number of at least 16 pixels.");
        Check(FramesPerSecond > 0 && double.IsFinite(FramesPerSecond), nameof(FramesPerSecond), FramesPerSecond, "FramesPerSecond must be positive.");
        Check(GreyLevels is >= 3 and <= 16, nameof(GreyLevels), GreyLevels, "GreyLevels must lie in [3, 16] (object halves and background need three different levels).");
        Check(Noise >= 0 && double.IsFinite(Noise), nameof(Noise), Noise, "Noise must be 0 or more.");
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
/// A synthetic video data set whose classes differ only in motion: one disc, split into two grey halves by a line
/// through its centre, over a plain background with a faint gradient and pixel noise, moves up, moves down, grows (zoom
/// in), shrinks (zoom out), spins or swings from side to side. The disc's grey levels, the angle of its dividing line,
/// its position, size and orientation, the background's level and gradient, and the speed of the motion all vary at
/// random within every class, drawn from the same distributions in every class, so a single frame does not tell the
/// class: only the change between frames does.
/// </summary>
/// <remarks>
/// <para>
/// Designed so that CVRL can learn it on a CPU in minutes (docs/results.md tells the story). Appearance varies, but
/// from a small set (a few grey levels, one shape, no clutter): where appearance is rich, the contrastive objective is
/// met by matching appearance between the two clips of a video and the encoder never needs motion. The disc is large
/// (a quarter to two thirds of the frame across) and the motions cover many pixels per clip, so they survive the
/// random crops of pre-training.
/// </para>
/// <para>
/// The frame is a torus: what leaves one edge comes back at the opposite one, so positions are uniform in every class
/// and moving objects never pile up at a border. Every class survives a horizontal flip (used in pre-training and the
/// probe): vertical motion and zoom are unchanged, spinning includes both senses, and the swing is symmetric.
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
                jobs.Add(($"{name}/{name}_train{i:D3}{VideoFileWriter.DefaultExtension(options.Codec)}", c, 0, i));
            }

            for (int i = 0; i < options.TestPerClass; i++)
            {
                jobs.Add(($"{name}/{name}_test{i:D3}{VideoFileWriter.DefaultExtension(options.Codec)}", c, 1, i));
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

    /// <summary>One video's appearance and motion, drawn from its own random stream.</summary>
    private sealed class Scene
    {
        // The disc's radius is 0.22 x the shorter side x exp(log-scale); the log-scale lies in [ln 0.55, ln 1.6], so the
        // radius stays below 0.36 of the shorter side and the nearest periodic copy is the only one that can cover a pixel.
        private const double RadiusFraction = 0.22;
        private static readonly double MinLogScale = Math.Log(0.55);
        private static readonly double MaxLogScale = Math.Log(1.6);

        public Scene(Motion motion, SyntheticMotionOptions o, ClipRandom rng)
        {
            (Width, Height, Frames) = (o.Width, o.Height, o.Frames);
            double shorter = Math.Min(o.Width, o.Height);
            double k = shorter / 32; // speeds are stated for a 32-pixel frame
            BaseRadius = RadiusFraction * shorter;

            // Three different grey levels: the disc's two halves and the background.
            int[] levels = [.. Enumerable.Range(0, o.GreyLevels)];
            rng.Shuffle(levels.AsSpan());
            (HalfA, HalfB, Background) = (Grey(levels[0], o.GreyLevels), Grey(levels[1], o.GreyLevels), Grey(levels[2], o.GreyLevels));
            Split = rng.Uniform(0, 2 * Math.PI);
            GradientAngle = rng.Uniform(0, 2 * Math.PI);
            GradientAmplitude = 0.05 * 255;

            // Every class draws position, orientation and size from the same distributions.
            X0 = rng.Uniform(0, o.Width);
            Y0 = rng.Uniform(0, o.Height);
            Angle0 = rng.Uniform(0, 2 * Math.PI);
            double span = rng.Uniform(0.7, 1.0);
            double start = rng.Uniform(MinLogScale, MaxLogScale - span);
            double fixedScale = start + (span * rng.NextDouble());
            double speed = rng.Uniform(0.5, 1.0) * k;
            double spin = rng.Uniform(0.12, 0.2) * (rng.Bernoulli(0.5) ? 1 : -1);
            double amplitude = rng.Uniform(4, 7) * k;
            double period = rng.Uniform(16, 24);
            double phase = rng.Uniform(0, 2 * Math.PI);
            Position = motion switch
            {
                Motion.Up => t => (X0, Y0 - (speed * t)),
                Motion.Down => t => (X0, Y0 + (speed * t)),
                Motion.Swing => t => (X0 + (amplitude * Math.Sin((2 * Math.PI * t / period) + phase)), Y0),
                _ => _ => (X0, Y0),
            };
            LogScale = motion switch
            {
                Motion.ZoomIn => t => start + (span * t / (o.Frames - 1)),
                Motion.ZoomOut => t => start + (span * (1 - (t / (o.Frames - 1.0)))),
                _ => _ => fixedScale,
            };
            Angle = motion == Motion.Spin ? t => Angle0 + (spin * t) : _ => Angle0;
        }

        public int Width { get; }

        public int Height { get; }

        public int Frames { get; }

        public double BaseRadius { get; }

        public double HalfA { get; }

        public double HalfB { get; }

        public double Background { get; }

        public double Split { get; }

        public double GradientAngle { get; }

        public double GradientAmplitude { get; }

        public double X0 { get; }

        public double Y0 { get; }

        public double Angle0 { get; }

        public Func<double, (double X, double Y)> Position { get; }

        public Func<double, double> LogScale { get; }

        public Func<double, double> Angle { get; }

        /// <summary>Renders frame <paramref name="t"/> as grey values (row-major, anti-aliased edges).</summary>
        public void Render(int t, double[] grey)
        {
            var (cx, cy) = Position(t);
            double r = BaseRadius * Math.Exp(LogScale(t));
            double a = Angle(t) + Split;
            var (cosA, sinA) = (Math.Cos(a), Math.Sin(a));
            var (cosG, sinG) = (Math.Cos(GradientAngle), Math.Sin(GradientAngle));
            for (int y = 0; y < Height; y++)
            {
                for (int x = 0; x < Width; x++)
                {
                    double px = x + 0.5, py = y + 0.5;
                    double back = Background + (2 * GradientAmplitude * ((((px / Width) - 0.5) * cosG) + (((py / Height) - 0.5) * sinG)));
                    double dx = Wrap(px - cx, Width), dy = Wrap(py - cy, Height);
                    double cover = Math.Clamp(r - Math.Sqrt((dx * dx) + (dy * dy)) + 0.5, 0, 1);
                    double side = Math.Clamp((dx * cosA) + (dy * sinA) + 0.5, 0, 1);
                    double disc = (HalfA * side) + (HalfB * (1 - side));
                    grey[(y * Width) + x] = (back * (1 - cover)) + (disc * cover);
                }
            }
        }

        private static double Grey(int level, int levels) => 255.0 * level / (levels - 1);

        /// <summary>The periodic difference in [-size / 2, size / 2).</summary>
        private static double Wrap(double d, double size) => d - (size * Math.Floor((d / size) + 0.5));
    }

    private static void WriteVideo(string path, Motion motion, SyntheticMotionOptions o, ClipRandom rng)
    {
        var scene = new Scene(motion, o, rng);
        int w = o.Width, h = o.Height;
        var grey = new double[w * h];
        var pixels = new byte[w * h * 3];
        using var writer = new VideoFileWriter(path, w, h, o.FramesPerSecond, o.Codec);
        using var frame = new Mat(h, w, MatType.CV_8UC3);
        for (int t = 0; t < o.Frames; t++)
        {
            scene.Render(t, grey);
            for (int i = 0; i < pixels.Length; i += 2)
            {
                // Box-Muller: two independent normal values per pair of uniforms, one per channel value.
                double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
                double magnitude = o.Noise * Math.Sqrt(-2 * Math.Log(u1));
                pixels[i] = Clamp(grey[i / 3] + (magnitude * Math.Cos(2 * Math.PI * u2)));
                pixels[i + 1] = Clamp(grey[(i + 1) / 3] + (magnitude * Math.Sin(2 * Math.PI * u2)));
            }

            System.Runtime.InteropServices.Marshal.Copy(pixels, 0, frame.Data, pixels.Length);
            writer.WriteFrame(frame);
        }
    }

    private static byte Clamp(double v) => (byte)Math.Clamp((int)Math.Round(v), 0, 255);
}
