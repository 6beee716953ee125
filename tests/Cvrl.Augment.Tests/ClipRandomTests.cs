namespace Cvrl.Augment.Tests;

public sealed class ClipRandomTests
{
    [Fact]
    public void For_SameKey_SameSequence_DifferentKeysDiffer()
    {
        var a = ClipRandom.For(7, 1, 42, 0);
        var b = ClipRandom.For(7, 1, 42, 0);
        ulong[] sa = [.. Enumerable.Range(0, 8).Select(_ => a.NextUInt64())];
        ulong[] sb = [.. Enumerable.Range(0, 8).Select(_ => b.NextUInt64())];
        Assert.Equal(sa, sb);

        foreach (var other in new[] { ClipRandom.For(8, 1, 42, 0), ClipRandom.For(7, 2, 42, 0), ClipRandom.For(7, 1, 43, 0), ClipRandom.For(7, 1, 42, 1) })
        {
            Assert.NotEqual(sa[0], other.NextUInt64());
        }
    }

    [Fact]
    public void NextInt_IsUniform_ChiSquare()
    {
        // 10 categories, 100,000 draws: chi-square with 9 degrees of freedom; 27.88 is the 0.999 quantile.
        var rng = new ClipRandom(123);
        var counts = new int[10];
        const int draws = 100_000;
        for (int i = 0; i < draws; i++)
        {
            counts[rng.NextInt(10)]++;
        }

        double expected = draws / 10.0;
        double chi2 = counts.Sum(c => (c - expected) * (c - expected) / expected);
        Assert.True(chi2 < 27.88, $"chi2 = {chi2}");
    }

    [Fact]
    public void NextDouble_MeanAndRange()
    {
        var rng = new ClipRandom(5);
        double sum = 0;
        for (int i = 0; i < 100_000; i++)
        {
            double d = rng.NextDouble();
            Assert.InRange(d, 0.0, 1.0 - double.Epsilon);
            sum += d;
        }

        // Standard error of the mean of U(0,1) over 1e5 draws is 0.00091; allow 5 of them.
        Assert.InRange(sum / 100_000, 0.5 - 0.0046, 0.5 + 0.0046);
    }

    [Fact]
    public void State_RoundTrip_ContinuesTheSequence()
    {
        var rng = new ClipRandom(99);
        rng.NextUInt64();
        var copy = ClipRandom.FromState(rng.State);
        Assert.Equal(rng.NextUInt64(), copy.NextUInt64());
        Assert.Throws<ArgumentException>(() => ClipRandom.FromState(default));
    }

    [Fact]
    public void NextInt_RejectsEmptyRanges()
    {
        var rng = new ClipRandom(1);
        Assert.Throws<ArgumentOutOfRangeException>(() => rng.NextInt(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => rng.NextInt(3, 3));
        Assert.Equal(0, rng.NextInt(1));
    }
}
