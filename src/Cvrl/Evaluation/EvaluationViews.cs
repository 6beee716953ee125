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
/// The clips an evaluation looks at (docs/method.md sections 5 and 6). Test views: <see cref="Test"/>, the one
/// test-view record of Cvrl (evenly spaced clips, short-side resize, 1 or 3 crops). Training views: one random clip with
/// the test views' clip length and stride (<see cref="TestViewOptions.FramesPerClip"/>, <see cref="TestViewOptions.Stride"/>),
/// random resized crop to <see cref="TrainCropSize"/> and flip. The defaults are the official ones: 32 x 2 frames, 224
/// training crops, 10 clips x 3 crops of 256 = 30 test views.
/// </summary>
public sealed record EvaluationViewOptions
{
    /// <summary>The official test views: the <see cref="TestViewOptions"/> defaults with 3 crops per clip.</summary>
    public static TestViewOptions OfficialTestViews { get; } = new() { Crops = 3 };

    /// <summary>The test views; their clip length, stride and decoding options apply to training views too. Default <see cref="OfficialTestViews"/>.</summary>
    public TestViewOptions Test { get; init; } = OfficialTestViews;

    /// <summary>Training crop size (official 224).</summary>
    public int TrainCropSize { get; init; } = 224;

    /// <summary>
    /// Colour jitter strength for training views (with grayscale, as in pre-training); 0 for none, the official recipe.
    /// Fine-tuning a small network from scratch on few videos needs it to generalise (docs/results.md). Default 0.
    /// </summary>
    public double TrainColorJitterStrength { get; init; }

    /// <summary>Small views for quick runs: <paramref name="frames"/> x <paramref name="stride"/> frames, crops of <paramref name="size"/>, short side <paramref name="size"/>.</summary>
    public static EvaluationViewOptions Small(int frames, int stride, int size, int testClips = 10, int testCrops = 3) => new()
    {
        Test = TestViewOptions.ForClips(frames, stride, size) with { Clips = testClips, Crops = testCrops },
        TrainCropSize = size,
    };

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Test, nameof(Test));
        Test.Validate();
        if (TrainCropSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(TrainCropSize), TrainCropSize, $"{nameof(TrainCropSize)} must be at least 1.");
        }

        if (!(TrainColorJitterStrength is >= 0 and <= 1.25))
        {
            throw new ArgumentOutOfRangeException(nameof(TrainColorJitterStrength), TrainColorJitterStrength, "TrainColorJitterStrength must lie in [0, 1.25].");
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
        _trainSampler = new RandomClipSampler(Options.Test.FramesPerClip, Options.Test.Stride);
        _train = CvrlPresets.LinearEvalTrain(Options.TrainCropSize, Options.TrainColorJitterStrength);
        _test = new TestViews(Options.Test);
    }

    /// <summary>The options.</summary>
    public EvaluationViewOptions Options { get; }

    /// <summary>The shape of one training view: <c>[3, T, S, S]</c>.</summary>
    public long[] TrainViewShape => [3, Options.Test.FramesPerClip, Options.TrainCropSize, Options.TrainCropSize];

    /// <summary>The shape of one test view: <c>[3, T, S, S]</c>.</summary>
    public long[] TestViewShape => [3, Options.Test.FramesPerClip, Options.Test.CropSize, Options.Test.CropSize];

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
        using var reader = VideoReader.Open(path, Options.Test.Reader);
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
    /// V = <see cref="TestViewOptions.ViewsPerVideo"/> of <see cref="EvaluationViewOptions.Test"/>.
    /// </summary>
    /// <param name="path">The video.</param>
    /// <param name="knownFrameCount">The video's verified frame count, or null.</param>
    /// <returns>A new tensor, owned by the caller.</returns>
    /// <exception cref="VideoDecodeException">The video cannot be decoded.</exception>
    public Tensor TestViews(string path, int? knownFrameCount = null)
    {
        Models.TorchNative.EnsureLoaded();
        var test = Options.Test;
        using var bytes = torch.empty([test.ViewsPerVideo, 3, test.FramesPerClip, test.CropSize, test.CropSize], ScalarType.Byte);
        _test.ReadInto(path, bytes.bytes, knownFrameCount);
        using var floats = bytes.to_type(ScalarType.Float32);
        return floats.div_(TorchScalars.Byte255).contiguous();
    }
}
