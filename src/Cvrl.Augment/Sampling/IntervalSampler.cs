using Cvrl.Video;

namespace Cvrl.Augment.Sampling;

/// <summary>How <see cref="IntervalSampler"/> draws the start-to-start gap between CVRL's two clips.</summary>
public enum IntervalDistribution
{
    /// <summary>
    /// CVRL's monotonically decreasing distribution (the official code): density <c>(2/T)(1 - d/T)</c> on [0, T] for
    /// power 1, drawn by the official bisection, so short gaps are more likely than long ones.
    /// </summary>
    Decreasing,

    /// <summary>Every gap in {0, ..., T-1} equally likely (an ablation).</summary>
    Uniform,

    /// <summary>Gap 0: both clips start at the same frame and differ only in their spatial augmentation (an ablation).</summary>
    SameStart,
}

/// <summary>Options for <see cref="IntervalSampler"/>; the defaults are CVRL's pre-training settings (16 frames, stride 2).</summary>
public sealed record IntervalSamplerOptions
{
    /// <summary>Frames per clip. Default 16.</summary>
    public int FramesPerClip { get; init; } = 16;

    /// <summary>Temporal stride in stored frames. Default 2.</summary>
    public int Stride { get; init; } = 2;

    /// <summary>The gap distribution. Default <see cref="IntervalDistribution.Decreasing"/>.</summary>
    public IntervalDistribution Distribution { get; init; } = IntervalDistribution.Decreasing;

    /// <summary>
    /// The official code's <c>power</c> for the decreasing distribution, whose cdf is
    /// <c>-k^(p+1) / (p T^(p+1)) + k (p+1) / (p T)</c>. The official code uses 1. Default 1.
    /// </summary>
    public double Power { get; init; } = 1.0;

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        if (FramesPerClip < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(FramesPerClip), FramesPerClip, "FramesPerClip must be at least 1.");
        }

        if (Stride < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(Stride), Stride, "Stride must be at least 1.");
        }

        if (!Enum.IsDefined(Distribution))
        {
            throw new ArgumentOutOfRangeException(nameof(Distribution), Distribution, "Unknown interval distribution.");
        }

        if (!(Power > 0) || double.IsInfinity(Power))
        {
            throw new ArgumentOutOfRangeException(nameof(Power), Power, "Power must be a positive finite number.");
        }
    }
}

/// <summary>
/// CVRL's temporal interval sampler: draws two clips from one video whose start frames are a random gap apart,
/// exactly as the official <c>sample_ssl_sequence</c> does (docs/method.md section 1).
/// </summary>
/// <remarks>
/// With <c>L</c> stored frames, <c>n</c> frames per clip and stride <c>s</c>, let <c>T = L - (n-1)s</c> when
/// <c>L &gt; (n-1)s</c>, else <c>T = L</c>. The gap <c>d</c> is drawn by bisection on the cdf
/// <c>2k/T - k^2/T^2</c> (power 1), giving <c>P(d) ∝ T - d</c> on {0, ..., T-1}. For a long enough video the first
/// start is uniform on {0, ..., T-d-1} and the second is first + d; for a short video (T = L) both starts are
/// independent and uniform on {0, ..., L-1}. The two starts are then shuffled, so the clip that receives view 1's
/// recipe is the earlier one with probability 1/2. Frame indices wrap modulo L (see <see cref="ClipWindow"/>).
/// Arithmetic follows the official float32 code.
/// </remarks>
public sealed class IntervalSampler
{
    /// <summary>Creates a sampler.</summary>
    /// <param name="options">Options (validated); null for CVRL's defaults.</param>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public IntervalSampler(IntervalSamplerOptions? options = null)
    {
        Options = options ?? new IntervalSamplerOptions();
        Options.Validate();
    }

    /// <summary>The options.</summary>
    public IntervalSamplerOptions Options { get; }

    /// <summary>Draws the two clips for a video of <paramref name="frameCount"/> stored frames.</summary>
    /// <param name="frameCount">Number of stored (decodable) frames, at least 1.</param>
    /// <param name="random">The generator (use the sample's <see cref="ClipRandom.TemporalStream"/>).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="frameCount"/> is not positive.</exception>
    public ClipPair Sample(int frameCount, ClipRandom random)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(frameCount);
        ArgumentNullException.ThrowIfNull(random);
        int n = Options.FramesPerClip;
        int s = Options.Stride;
        long needed = (long)(n - 1) * s;
        int maxOffset = frameCount > needed ? (int)(frameCount - needed) : frameCount;

        int gap = Options.Distribution switch
        {
            IntervalDistribution.Decreasing => DecreasingGap(maxOffset, random.NextSingle(), Options.Power),
            IntervalDistribution.Uniform => random.NextInt(maxOffset),
            _ => 0,
        };

        int first;
        int second;
        if (maxOffset == frameCount)
        {
            // Short video (the official "max_offset == sequence_length" branch): independent uniform starts.
            first = random.NextInt(maxOffset);
            second = Options.Distribution == IntervalDistribution.SameStart ? first : random.NextInt(maxOffset);
            gap = 0;
        }
        else
        {
            first = random.NextInt(maxOffset - gap);
            second = first + gap;
        }

        if (random.NextInt(2) == 1)
        {
            (first, second) = (second, first);
        }

        return new ClipPair(new ClipWindow(first, n, s), new ClipWindow(second, n, s), gap);
    }

    /// <summary>
    /// The official bisection for the gap: the largest integer k in [0, T) whose cdf does not exceed <paramref name="u"/>,
    /// computed in float32 as the official code does.
    /// </summary>
    /// <param name="maxOffset">T, at least 1.</param>
    /// <param name="u">A uniform number in [0, 1).</param>
    /// <param name="power">The distribution's power (1 in the official code).</param>
    /// <returns>The gap d in {0, ..., T-1}.</returns>
    public static int DecreasingGap(int maxOffset, float u, double power = 1.0)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxOffset);
        float t = maxOffset;
        float p = (float)power;
        float kLow = 0f;
        float kUp = t;
        float k = MathF.Floor(t / 2f);
        while (MathF.Abs(kUp - kLow) > 1f)
        {
            if (Cdf(k, t, p) > u)
            {
                kUp = k;
                k = MathF.Floor((k + kLow) / 2f);
            }
            else
            {
                kLow = k;
                k = MathF.Floor((kUp + k) / 2f);
            }
        }

        return (int)k;
    }

    private static float Cdf(float k, float t, float p) =>
        (-MathF.Pow(k, p + 1f) / (p * MathF.Pow(t, p + 1f))) + (k * (p + 1f) / (p * t));
}
