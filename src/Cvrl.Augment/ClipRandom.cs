using System.Numerics;

namespace Cvrl.Augment;

/// <summary>
/// A small, fast, seedable random generator (xoshiro256** seeded through SplitMix64) that Cvrl owns, so that a
/// recorded seed reproduces the same augmentations on every .NET version and machine.
/// </summary>
/// <remarks>
/// <para>
/// Use <see cref="For(long, int, long, int)"/> to key a generator by (seed, epoch, sample index, stream). Every
/// sample then draws from its own stream, so results do not depend on which worker thread processes it or in which
/// order. Cvrl uses stream <see cref="TemporalStream"/> for the temporal sampler and streams 0 and 1 for the spatial
/// parameters of view 1 and view 2 of a video, which makes the two views independent while each view stays
/// temporally consistent (one parameter set per clip).
/// </para>
/// <para>The class is not thread-safe; give each thread (each sample) its own instance.</para>
/// </remarks>
public sealed class ClipRandom
{
    /// <summary>The stream used for temporal sampling (clip offsets), separate from the views' spatial streams.</summary>
    public const int TemporalStream = -1;

    private ulong _s0;
    private ulong _s1;
    private ulong _s2;
    private ulong _s3;

    /// <summary>Creates a generator from a 64-bit seed.</summary>
    /// <param name="seed">Any value; equal seeds give equal sequences.</param>
    public ClipRandom(ulong seed)
    {
        ulong x = seed;
        _s0 = SplitMix64(ref x);
        _s1 = SplitMix64(ref x);
        _s2 = SplitMix64(ref x);
        _s3 = SplitMix64(ref x);
    }

    private ClipRandom(ulong s0, ulong s1, ulong s2, ulong s3)
    {
        _s0 = s0;
        _s1 = s1;
        _s2 = s2;
        _s3 = s3;
    }

    /// <summary>
    /// The generator for one (seed, epoch, sample, stream) key. Distinct keys give statistically independent streams.
    /// </summary>
    /// <param name="seed">The experiment seed.</param>
    /// <param name="epoch">The epoch (0-based).</param>
    /// <param name="sampleIndex">The sample's index in the data set (not its position in a shuffled batch).</param>
    /// <param name="stream">The stream: 0 and 1 for the two views, <see cref="TemporalStream"/> for clip sampling.</param>
    /// <returns>A fresh generator owned by the caller.</returns>
    public static ClipRandom For(long seed, int epoch, long sampleIndex, int stream)
    {
        ulong h = Mix((ulong)seed ^ 0x43_56_52_4C_53_45_45_44UL); // "CVRLSEED"
        h = Mix(h ^ (ulong)(uint)epoch ^ 0x9E3779B97F4A7C15UL);
        h = Mix(h ^ (ulong)sampleIndex ^ 0xD1B54A32D192ED03UL);
        h = Mix(h ^ (ulong)(long)stream ^ 0x8CB92BA72F3D8DD7UL);
        return new ClipRandom(h);
    }

    /// <summary>The generator's full state, for checkpoints (see <see cref="FromState"/>).</summary>
    public ClipRandomState State => new(_s0, _s1, _s2, _s3);

    /// <summary>Recreates a generator from a saved <see cref="State"/>; it continues the same sequence.</summary>
    /// <exception cref="ArgumentException">The state is all zeros (not a state any generator can reach).</exception>
    public static ClipRandom FromState(ClipRandomState state)
    {
        if ((state.S0 | state.S1 | state.S2 | state.S3) == 0)
        {
            throw new ArgumentException("An all-zero state is not a valid xoshiro256** state.", nameof(state));
        }

        return new ClipRandom(state.S0, state.S1, state.S2, state.S3);
    }

    /// <summary>Returns the next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        ulong result = BitOperations.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = BitOperations.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>A uniform double in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>A uniform float in [0, 1) with 24 random bits.</summary>
    public float NextSingle() => (NextUInt64() >> 40) * (1.0f / (1 << 24));

    /// <summary>A uniform integer in [0, <paramref name="maxExclusive"/>), without modulo bias.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxExclusive"/> is not positive.</exception>
    public int NextInt(int maxExclusive)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxExclusive);

        // Lemire's multiply-shift with rejection.
        ulong range = (ulong)maxExclusive;
        UInt128 m = (UInt128)NextUInt64() * range;
        ulong low = (ulong)m;
        if (low < range)
        {
            ulong threshold = (0UL - range) % range;
            while (low < threshold)
            {
                m = (UInt128)NextUInt64() * range;
                low = (ulong)m;
            }
        }

        return (int)(m >> 64);
    }

    /// <summary>A uniform integer in [<paramref name="minInclusive"/>, <paramref name="maxExclusive"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The range is empty.</exception>
    public int NextInt(int minInclusive, int maxExclusive)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(minInclusive, maxExclusive);
        return minInclusive + NextInt(maxExclusive - minInclusive);
    }

    /// <summary>A uniform double in [<paramref name="low"/>, <paramref name="high"/>).</summary>
    public double Uniform(double low, double high) => low + ((high - low) * NextDouble());

    /// <summary>True with probability <paramref name="p"/> (always false for p = 0, always true for p = 1).</summary>
    public bool Bernoulli(double p) => NextDouble() < p;

    /// <summary>Shuffles <paramref name="items"/> in place (Fisher-Yates).</summary>
    public void Shuffle<T>(Span<T> items)
    {
        for (int i = items.Length - 1; i > 0; i--)
        {
            int j = NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    private static ulong SplitMix64(ref ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        return Mix(x);
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}

/// <summary>The four 64-bit words of a <see cref="ClipRandom"/> state.</summary>
/// <param name="S0">Word 0.</param>
/// <param name="S1">Word 1.</param>
/// <param name="S2">Word 2.</param>
/// <param name="S3">Word 3.</param>
public readonly record struct ClipRandomState(ulong S0, ulong S1, ulong S2, ulong S3);
