using Cvrl.Augment;
using Cvrl.Augment.Functional;
using Cvrl.Augment.Sampling;
using Cvrl.Augment.Transforms;
using Cvrl.Augment.Video;
using Cvrl.Video;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Evaluation;

/// <summary>
/// The clips an evaluation looks at (docs/method.md sections 5 and 6). Training views: one random clip of
/// <see cref="FramesPerClip"/> frames at <see cref="Stride"/>, random resized crop to <see cref="TrainCropSize"/> and
/// flip. Test views: <see cref="TestClips"/> evenly spaced clips, short side resized to <see cref="TestShortSide"/>,
/// <see cref="TestCrops"/> crops of <see cref="TestCropSize"/> (3: along the long side; 1: centred). The defaults are
/// the official ones: 32 x 2 frames, 224 training crops, 10 clips x 3 crops of 256 = 30 test views.
/// </summary>
public sealed record EvaluationViewOptions
{
    /// <summary>Frames per clip (official 32).</summary>
    public int FramesPerClip { get; init; } = 32;

    /// <summary>Stride between sampled frames, in stored frames (official 2).</summary>
    public int Stride { get; init; } = 2;

    /// <summary>Training crop size (official 224).</summary>
    public int TrainCropSize { get; init; } = 224;

    /// <summary>Evenly spaced test clips per video (official 10).</summary>
    public int TestClips { get; init; } = 10;

    /// <summary>Crops per test clip: 3 (official: start, middle and end of the long side) or 1 (centre).</summary>
    public int TestCrops { get; init; } = 3;

    /// <summary>Shorter side after resizing, for test views (official 256).</summary>
    public int TestShortSide { get; init; } = 256;

    /// <summary>Test crop size (official 256, equal to the short side, so crops slide along the long side only).</summary>
    public int TestCropSize { get; init; } = 256;

    /// <summary>
    /// Colour jitter strength for training views (with grayscale, as in pre-training); 0 for none, the official recipe.
    /// Fine-tuning a small network from scratch on few videos needs it to generalise (docs/results.md). Default 0.
    /// </summary>
    public double TrainColorJitterStrength { get; init; }

    /// <summary>Decoding options.</summary>
    public VideoReaderOptions Reader { get; init; } = new();

    /// <summary>The test-view part of these options (the geometry Cvrl.Video implements once for every runtime).</summary>
    public TestViewOptions ToTestViewOptions() => new()
    {
        Clips = TestClips,
        Crops = TestCrops,
        FramesPerClip = FramesPerClip,
        Stride = Stride,
        ShortSide = TestShortSide,
        CropSize = TestCropSize,
        Reader = Reader,
    };

    /// <summary>Test views per video: <see cref="TestClips"/> x <see cref="TestCrops"/>.</summary>
    public int TestViewsPerVideo => TestClips * TestCrops;

    /// <summary>Small views for quick runs: <paramref name="frames"/> x <paramref name="stride"/> frames, crops of <paramref name="size"/>, short side <paramref name="size"/>.</summary>
    public static EvaluationViewOptions Small(int frames, int stride, int size, int testClips = 10, int testCrops = 3) => new()
    {
        FramesPerClip = frames,
        Stride = stride,
        TrainCropSize = size,
        TestShortSide = size,
        TestCropSize = size,
        TestClips = testClips,
        TestCrops = testCrops,
    };

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        Positive(FramesPerClip, nameof(FramesPerClip));
        Positive(Stride, nameof(Stride));
        Positive(TrainCropSize, nameof(TrainCropSize));
        Positive(TestClips, nameof(TestClips));
        Positive(TestShortSide, nameof(TestShortSide));
        Positive(TestCropSize, nameof(TestCropSize));
        if (TestCrops is not (1 or 3))
        {
            throw new ArgumentOutOfRangeException(nameof(TestCrops), TestCrops, "TestCrops must be 1 (centre) or 3 (along the long side).");
        }

        if (TestCropSize > TestShortSide)
        {
            throw new ArgumentOutOfRangeException(nameof(TestCropSize), TestCropSize, $"TestCropSize must not exceed TestShortSide ({TestShortSide}).");
        }

        if (!(TrainColorJitterStrength is >= 0 and <= 1.25))
        {
            throw new ArgumentOutOfRangeException(nameof(TrainColorJitterStrength), TrainColorJitterStrength, "TrainColorJitterStrength must lie in [0, 1.25].");
        }

        ArgumentNullException.ThrowIfNull(Reader, nameof(Reader));
        Reader.Validate();
    }

    private static void Positive(int value, string name)
    {
        if (value < 1)
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be at least 1.");
        }
    }
}

/// <summary>
/// Makes evaluation views from video files: random training views keyed by (seed, epoch, video) and the deterministic
/// test views. Thread-safe.
/// </summary>
public sealed class EvaluationViews
{
    private readonly RandomClipSampler _trainSampler;
    private readonly ClipPipeline _train;
    private readonly TestViews _test;

    /// <summary>Creates the view maker.</summary>
    /// <param name="options">Options (validated); null for the official ones.</param>
    public EvaluationViews(EvaluationViewOptions? options = null)
    {
        Options = options ?? new EvaluationViewOptions();
        Options.Validate();
        _trainSampler = new RandomClipSampler(Options.FramesPerClip, Options.Stride);
        _train = CvrlPresets.LinearEvalTrain(Options.TrainCropSize, Options.TrainColorJitterStrength);
        _test = new TestViews(Options.ToTestViewOptions());
    }

    /// <summary>The options.</summary>
    public EvaluationViewOptions Options { get; }

    /// <summary>The shape of one training view: <c>[3, T, S, S]</c>.</summary>
    public long[] TrainViewShape => [3, Options.FramesPerClip, Options.TrainCropSize, Options.TrainCropSize];

    /// <summary>The shape of one test view: <c>[3, T, S, S]</c>.</summary>
    public long[] TestViewShape => [3, Options.FramesPerClip, Options.TestCropSize, Options.TestCropSize];

    /// <summary>
    /// One random training view of a video: a random clip (stream <see cref="ClipRandom.TemporalStream"/>), random
    /// resized crop and flip (and colour, when <see cref="EvaluationViewOptions.TrainColorJitterStrength"/> asks for it;
    /// stream 0), as float32 <c>[3, T, S, S]</c> in [0, 1].
    /// </summary>
    /// <param name="path">The video.</param>
    /// <param name="seed">Experiment seed.</param>
    /// <param name="epoch">Epoch (or view number).</param>
    /// <param name="index">The video's index in its data set.</param>
    /// <param name="knownFrameCount">The video's verified frame count (<see cref="Data.VideoItem.Frames"/>), or null to trust the container until decoding proves it wrong.</param>
    /// <returns>A new tensor, owned by the caller.</returns>
    /// <exception cref="VideoDecodeException">The video cannot be decoded.</exception>
    public Tensor TrainView(string path, long seed, int epoch, long index, int? knownFrameCount = null)
    {
        using var scope = torch.NewDisposeScope();
        return TrainViews(path, seed, epoch, 1, index, knownFrameCount)[0].MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <paramref name="count"/> training views of a video in one decoding pass: view k is the view of epoch
    /// <paramref name="firstEpoch"/> + k (as <see cref="TrainView"/> makes it), stacked to <c>[count, 3, T, S, S]</c>.
    /// </summary>
    /// <param name="path">The video.</param>
    /// <param name="seed">Experiment seed.</param>
    /// <param name="firstEpoch">The epoch of the first view.</param>
    /// <param name="count">Views to make (one per epoch).</param>
    /// <param name="index">The video's index in its data set.</param>
    /// <param name="knownFrameCount">The video's verified frame count, or null.</param>
    /// <returns>A new tensor, owned by the caller.</returns>
    /// <exception cref="VideoDecodeException">The video cannot be decoded.</exception>
    public Tensor TrainViews(string path, long seed, int firstEpoch, int count, long index, int? knownFrameCount = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        using var reader = VideoReader.Open(path, Options.Reader);
        using var scope = torch.NewDisposeScope();
        var (clips, _) = reader.ReadPlannedClips(
            frames => [.. Enumerable.Range(firstEpoch, count)
                .Select(e => _trainSampler.Sample(frames, ClipRandom.For(seed, e, index, ClipRandom.TemporalStream)).Indices(frames))],
            knownFrameCount);
        var views = clips.Select((clip, k) => _train.Apply(clip, ClipRandom.For(seed, firstEpoch + k, index, 0))).ToArray();
        return torch.stack(views).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The test views of a video, clip by clip (crops of one clip adjacent): float32 <c>[V, 3, T, S, S]</c> in [0, 1],
    /// V = <see cref="EvaluationViewOptions.TestViewsPerVideo"/>.
    /// </summary>
    /// <param name="path">The video.</param>
    /// <param name="knownFrameCount">The video's verified frame count, or null.</param>
    /// <returns>A new tensor, owned by the caller.</returns>
    /// <exception cref="VideoDecodeException">The video cannot be decoded.</exception>
    public Tensor TestViews(string path, int? knownFrameCount = null)
    {
        Models.TorchNative.EnsureLoaded();
        using var bytes = torch.empty([Options.TestViewsPerVideo, 3, Options.FramesPerClip, Options.TestCropSize, Options.TestCropSize], ScalarType.Byte);
        _test.ReadInto(path, bytes.bytes, knownFrameCount);
        using var floats = bytes.to_type(ScalarType.Float32);
        return floats.div_(TorchScalars.Byte255).contiguous();
    }
}
