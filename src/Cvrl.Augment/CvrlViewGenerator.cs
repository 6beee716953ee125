using Cvrl.Augment.Sampling;
using Cvrl.Augment.Transforms;
using Cvrl.Augment.Video;
using Cvrl.Video;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Augment;

/// <summary>Options for <see cref="CvrlViewGenerator"/>; the defaults are CVRL's pre-training settings.</summary>
public sealed record CvrlViewOptions
{
    /// <summary>Temporal sampling (16 frames, stride 2, decreasing interval). </summary>
    public IntervalSamplerOptions Sampler { get; init; } = new();

    /// <summary>Output height and width of each view (224).</summary>
    public int CropSize { get; init; } = 224;

    /// <summary>Decoding options (stored resolution, sequential exact decoding).</summary>
    public VideoReaderOptions Reader { get; init; } = new();

    /// <summary>Per-clip (CVRL) or per-frame (ablation) augmentation.</summary>
    public TemporalConsistency Consistency { get; init; } = TemporalConsistency.PerClip;

    /// <summary>
    /// Colour jitter strength s (official 1.0): brightness, contrast and saturation factors within 1 +- 0.8 s, hue within
    /// +- 0.2 s turns. SimCLR used 0.5 for small images (CIFAR-10). At most 1.25.
    /// </summary>
    public double ColorJitterStrength { get; init; } = 1.0;

    /// <summary>Area of the random crop as a fraction of the frame (official 0.3 to 1).</summary>
    public ValueRange CropArea { get; init; } = new(0.3, 1.0);

    /// <summary>
    /// Aspect ratio (width / height) of the random crop, drawn uniformly (official 0.5 to 2). On very small frames a
    /// narrower range distorts shapes and speeds less (the quickstart uses 3/4 to 4/3; docs/fidelity.md).
    /// </summary>
    public ValueRange CropAspect { get; init; } = new(0.5, 2.0);

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        if (!(CropArea.Min > 0) || CropArea.Max > 1 || CropArea.Min > CropArea.Max)
        {
            throw new ArgumentOutOfRangeException(nameof(CropArea), CropArea, "CropArea must satisfy 0 < Min <= Max <= 1.");
        }

        if (!(CropAspect.Min > 0) || CropAspect.Min > CropAspect.Max || double.IsInfinity(CropAspect.Max))
        {
            throw new ArgumentOutOfRangeException(nameof(CropAspect), CropAspect, "CropAspect must satisfy 0 < Min <= Max (finite).");
        }

        ArgumentNullException.ThrowIfNull(Sampler, nameof(Sampler));
        ArgumentNullException.ThrowIfNull(Reader, nameof(Reader));
        Sampler.Validate();
        Reader.Validate();
        if (CropSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(CropSize), CropSize, "CropSize must be at least 1 pixel.");
        }

        if (!(ColorJitterStrength is >= 0 and <= 1.25))
        {
            throw new ArgumentOutOfRangeException(nameof(ColorJitterStrength), ColorJitterStrength, "ColorJitterStrength must lie in [0, 1.25] (saturation strength 0.8 s may not exceed 1).");
        }

        if (!Enum.IsDefined(Consistency))
        {
            throw new ArgumentOutOfRangeException(nameof(Consistency), Consistency, "Unknown consistency mode.");
        }
    }
}

/// <summary>The two augmented views of one video, with everything needed to reproduce them.</summary>
public sealed class CvrlViews : IDisposable
{
    internal CvrlViews(Tensor view1, Tensor view2, ClipPair clips, ClipPlan plan1, ClipPlan plan2, int frameCount)
    {
        View1 = view1;
        View2 = view2;
        Clips = clips;
        Plan1 = plan1;
        Plan2 = plan2;
        FrameCount = frameCount;
    }

    /// <summary>View 1, float32 <c>[3, T, S, S]</c> in [0, 1]. Owned by this object.</summary>
    public Tensor View1 { get; }

    /// <summary>View 2, float32 <c>[3, T, S, S]</c> in [0, 1]. Owned by this object.</summary>
    public Tensor View2 { get; }

    /// <summary>The clip windows (view 1's clip first) and the sampled gap.</summary>
    public ClipPair Clips { get; }

    /// <summary>View 1's augmentation parameters.</summary>
    public ClipPlan Plan1 { get; }

    /// <summary>View 2's augmentation parameters.</summary>
    public ClipPlan Plan2 { get; }

    /// <summary>The number of decodable frames the clips were drawn from.</summary>
    public int FrameCount { get; }

    /// <summary>
    /// Frames decoded to make the views (<see cref="VideoReader.FramesDecoded"/> of the read): the clips' own frames when
    /// the reader seeks or reads a prepared video, up to the whole video's start when it decodes forward.
    /// </summary>
    public long FramesDecoded { get; init; }

    /// <summary>Seeks the read made (<see cref="VideoReader.Seeks"/>).</summary>
    public int Seeks { get; init; }

    /// <summary>Releases both views.</summary>
    public void Dispose()
    {
        View1.Dispose();
        View2.Dispose();
    }
}

/// <summary>
/// From a video file to CVRL's two temporally consistent views: samples two clips with the interval sampler, decodes
/// exactly those frames once, and augments each clip with its own recipe (view 1: blur always; view 2: blur rarely,
/// solarize sometimes). Randomness is keyed by (seed, epoch, sample index): stream <see cref="ClipRandom.TemporalStream"/>
/// for the clips, 0 and 1 for the two views, so results do not depend on thread or worker order.
/// </summary>
/// <remarks>Thread-safe: one generator can serve many worker threads.</remarks>
public sealed class CvrlViewGenerator
{
    private readonly IntervalSampler _sampler;

    /// <summary>Creates a generator.</summary>
    /// <param name="options">Options (validated); null for CVRL's defaults.</param>
    /// <param name="view1">View 1's pipeline; null for <see cref="CvrlPresets.PretrainView1"/>.</param>
    /// <param name="view2">View 2's pipeline; null for <see cref="CvrlPresets.PretrainView2"/>.</param>
    public CvrlViewGenerator(CvrlViewOptions? options = null, ClipPipeline? view1 = null, ClipPipeline? view2 = null)
    {
        Options = options ?? new CvrlViewOptions();
        Options.Validate();
        _sampler = new IntervalSampler(Options.Sampler);
        View1 = view1 ?? CvrlPresets.PretrainView1(Options.CropSize, Options.Consistency, Options.ColorJitterStrength, Options.CropArea, Options.CropAspect);
        View2 = view2 ?? CvrlPresets.PretrainView2(Options.CropSize, Options.Consistency, Options.ColorJitterStrength, Options.CropArea, Options.CropAspect);
    }

    /// <summary>The options.</summary>
    public CvrlViewOptions Options { get; }

    /// <summary>View 1's pipeline.</summary>
    public ClipPipeline View1 { get; }

    /// <summary>View 2's pipeline.</summary>
    public ClipPipeline View2 { get; }

    /// <summary>Opens <paramref name="path"/> and produces the two views of sample (<paramref name="seed"/>, <paramref name="epoch"/>, <paramref name="sampleIndex"/>).</summary>
    /// <param name="path">The video file.</param>
    /// <param name="seed">The experiment seed.</param>
    /// <param name="epoch">The epoch.</param>
    /// <param name="sampleIndex">The video's index in its data set.</param>
    /// <param name="knownFrameCount">A frame count established earlier (for example on a previous epoch), or null.</param>
    /// <returns>The views, owned by the caller.</returns>
    /// <exception cref="VideoDecodeException">The video cannot be decoded.</exception>
    public CvrlViews Generate(string path, long seed, int epoch, long sampleIndex, int? knownFrameCount = null)
    {
        using var reader = VideoReader.Open(path, Options.Reader);
        return Generate(reader, seed, epoch, sampleIndex, knownFrameCount);
    }

    /// <summary>Produces the two views from an open reader.</summary>
    /// <inheritdoc cref="Generate(string, long, int, long, int?)"/>
    public CvrlViews Generate(VideoReader reader, long seed, int epoch, long sampleIndex, int? knownFrameCount = null)
    {
        ArgumentNullException.ThrowIfNull(reader);
        using var scope = torch.NewDisposeScope();
        ClipPair pair = default;
        var (decoded, frames) = reader.ReadPlannedClips(
            count =>
            {
                // Keyed by the count only, so a corrected count gives the same clips on every epoch.
                pair = _sampler.Sample(count, ClipRandom.For(seed, epoch, sampleIndex, ClipRandom.TemporalStream));
                return [pair.First.Indices(count), pair.Second.Indices(count)];
            },
            knownFrameCount);
        var (view1, plan1) = View1.Run(decoded[0], ClipRandom.For(seed, epoch, sampleIndex, 0));
        var (view2, plan2) = View2.Run(decoded[1], ClipRandom.For(seed, epoch, sampleIndex, 1));
        view1.MoveToOuterDisposeScope();
        view2.MoveToOuterDisposeScope();
        return new CvrlViews(view1, view2, pair, plan1, plan2, frames) { FramesDecoded = reader.FramesDecoded, Seeks = reader.Seeks };
    }
}
