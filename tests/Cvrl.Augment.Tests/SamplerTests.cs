using Cvrl.Augment.Sampling;
using Cvrl.Video;

namespace Cvrl.Augment.Tests;

public sealed class SamplerTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(7)]
    [InlineData(30)]
    [InlineData(70)]
    [InlineData(220)]
    [InlineData(271)]
    public void DecreasingGap_MatchesClosedForm(int t)
    {
        // docs/method.md section 1 (derived): the bisection equals min(floor(T (1 - sqrt(1 - u))), T - 1).
        var rng = new ClipRandom((ulong)t);
        for (int i = 0; i < 20_000; i++)
        {
            float u = rng.NextSingle();
            int expected = Math.Min((int)Math.Floor(t * (1 - Math.Sqrt(1 - (double)u))), t - 1);
            int actual = IntervalSampler.DecreasingGap(t, u);
            Assert.InRange(actual - expected, -1, 1); // float32 rounding at bin edges
            Assert.InRange(actual, 0, t - 1);
        }
    }

    [Fact]
    public void DecreasingGap_FitsItsDensity_ChiSquare()
    {
        // P(d) = (2T - 2d - 1) / T^2 for d in {0..T-1} (the density (2/T)(1 - d/T) on integer bins).
        const int t = 220;
        const int draws = 200_000;
        var rng = new ClipRandom(2024);
        var counts = new int[10];
        double sum = 0;
        for (int i = 0; i < draws; i++)
        {
            int d = IntervalSampler.DecreasingGap(t, rng.NextSingle());
            counts[d * 10 / t]++;
            sum += d;
        }

        double chi2 = 0;
        for (int bin = 0; bin < 10; bin++)
        {
            int lo = (bin * t + 9) / 10, hi = ((bin + 1) * t + 9) / 10;
            double p = Enumerable.Range(lo, hi - lo).Sum(d => (2.0 * t - 2.0 * d - 1) / (t * (double)t));
            double expected = p * draws;
            chi2 += (counts[bin] - expected) * (counts[bin] - expected) / expected;
        }

        Assert.True(chi2 < 27.88, $"chi2 = {chi2} (9 d.o.f., 0.999 quantile 27.88)");
        // E[d] = (T^2 - 1) / (3T) ~ T/3; the spec quotes 72.8 for T = 220.
        Assert.InRange(sum / draws, 72.8 - 0.5, 72.8 + 0.5);
    }

    [Fact]
    public void Sample_LongVideo_StartsAreGapApartAndClipsFitInside()
    {
        var sampler = new IntervalSampler();
        int earlierFirst = 0;
        const int runs = 4000;
        for (int i = 0; i < runs; i++)
        {
            var pair = sampler.Sample(250, ClipRandom.For(1, 0, i, ClipRandom.TemporalStream));
            Assert.Equal(16, pair.First.Length);
            Assert.Equal(2, pair.First.Stride);
            Assert.Equal(pair.Gap, Math.Abs(pair.First.Start - pair.Second.Start));
            Assert.InRange(pair.First.Start, 0, 219);
            Assert.InRange(pair.Second.Start, 0, 219);
            Assert.True(pair.First.Indices(250).Max() <= 249);
            Assert.True(pair.Second.Indices(250).SequenceEqual(Enumerable.Range(0, 16).Select(j => pair.Second.Start + 2 * j)));
            if (pair.First.Start <= pair.Second.Start)
            {
                earlierFirst++;
            }
        }

        // The shuffle puts the earlier clip first with probability 1/2 (plus ties at gap 0): binomial sd ~ 32.
        Assert.InRange(earlierFirst, runs / 2 - 160, runs / 2 + 220);
    }

    [Fact]
    public void Sample_ShortVideo_IndependentStartsAndWrappedIndices()
    {
        var sampler = new IntervalSampler();
        var starts = new HashSet<(int, int)>();
        for (int i = 0; i < 300; i++)
        {
            var pair = sampler.Sample(20, ClipRandom.For(3, 0, i, ClipRandom.TemporalStream));
            Assert.Equal(0, pair.Gap);
            Assert.InRange(pair.First.Start, 0, 19);
            Assert.InRange(pair.Second.Start, 0, 19);
            int[] idx = pair.First.Indices(20);
            Assert.All(idx, x => Assert.InRange(x, 0, 19));
            Assert.Equal((pair.First.Start + 30) % 20, idx[15]);
            starts.Add((pair.First.Start, pair.Second.Start));
        }

        Assert.True(starts.Count > 150, "starts should be independent");
    }

    [Fact]
    public void Sample_ExactlyOneClipLong_GivesIdenticalStarts()
    {
        // L = 31 gives T = 1, so the gap is 0 and both clips start at frame 0.
        var pair = new IntervalSampler().Sample(31, new ClipRandom(1));
        Assert.Equal(0, pair.First.Start);
        Assert.Equal(0, pair.Second.Start);
    }

    [Fact]
    public void Sample_AblationDistributions()
    {
        var uniform = new IntervalSampler(new IntervalSamplerOptions { Distribution = IntervalDistribution.Uniform });
        var same = new IntervalSampler(new IntervalSamplerOptions { Distribution = IntervalDistribution.SameStart });
        double sum = 0;
        for (int i = 0; i < 20_000; i++)
        {
            var u = uniform.Sample(250, ClipRandom.For(1, 0, i, ClipRandom.TemporalStream));
            sum += u.Gap;
            var s = same.Sample(250, ClipRandom.For(1, 0, i, ClipRandom.TemporalStream));
            Assert.Equal(s.First, s.Second);
        }

        // Uniform on {0..219}: mean 109.5, sd 63.5, standard error 0.45.
        Assert.InRange(sum / 20_000, 109.5 - 2.5, 109.5 + 2.5);
    }

    [Fact]
    public void RandomClipSampler_OffsetRange()
    {
        var sampler = new RandomClipSampler();
        var seen = new HashSet<int>();
        for (int i = 0; i < 5000; i++)
        {
            var w = sampler.Sample(100, ClipRandom.For(1, 0, i, 0));
            Assert.InRange(w.Start, 0, 100 - 62 - 1);
            seen.Add(w.Start);
        }

        Assert.Equal(38, seen.Count);
        Assert.InRange(sampler.Sample(10, new ClipRandom(4)).Start, 0, 9);
    }

    [Fact]
    public void UniformClipSampler_MatchesLinspace()
    {
        var starts = new UniformClipSampler().Sample(250).Select(w => w.Start).ToArray();
        Assert.Equal(new[] { 0, 20, 41, 62, 82, 103, 124, 144, 165, 186 }, starts);
        Assert.All(new UniformClipSampler().Sample(40), w => Assert.Equal(0, w.Start));
        Assert.Equal(new[] { 0 }, new UniformClipSampler(clips: 1).Sample(500).Select(w => w.Start));
    }

    [Fact]
    public void Options_AreValidated()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new IntervalSampler(new IntervalSamplerOptions { FramesPerClip = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new IntervalSampler(new IntervalSamplerOptions { Stride = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new IntervalSampler(new IntervalSamplerOptions { Power = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new IntervalSampler().Sample(0, new ClipRandom(1)));
    }
}
