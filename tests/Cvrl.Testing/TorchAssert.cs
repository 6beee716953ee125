using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Cvrl.Testing;

/// <summary>Tensor assertions.</summary>
public static class TorchAssert
{
    /// <summary>Asserts equal shapes and max |a - b| &lt;= tolerance.</summary>
    public static void Close(Tensor expected, Tensor actual, double tolerance)
    {
        Assert.Equal(expected.shape, actual.shape);
        using var e = expected.to_type(ScalarType.Float64).cpu();
        using var a = actual.to_type(ScalarType.Float64).cpu();
        using var diff = (e - a).abs();
        double max = diff.numel() == 0 ? 0 : diff.max().item<double>();
        Assert.True(max <= tolerance, $"max |expected - actual| = {max:G6} exceeds {tolerance:G3}");
    }

    /// <summary>
    /// Asserts equal shapes and, element by element, |actual - expected| &lt;= <paramref name="absolute"/> +
    /// <paramref name="relative"/> x |expected| (numpy's and torch's <c>allclose</c> rule). Choose the relative part from
    /// the float32 accumulation behind the values (about sqrt(terms) x 1.2e-7 for a sum of that many terms, with a
    /// safety factor) and the absolute part from the scale of values that may cancel to near zero.
    /// </summary>
    public static void AllClose(Tensor expected, Tensor actual, double relative, double absolute)
    {
        Assert.Equal(expected.shape, actual.shape);
        using var e = expected.to_type(ScalarType.Float64).cpu();
        using var a = actual.to_type(ScalarType.Float64).cpu();
        using var excess = (e - a).abs() - (e.abs() * relative);
        if (excess.numel() == 0)
        {
            return;
        }

        using var worst = excess.flatten().argmax();
        long i = worst.item<long>();
        double over = excess.flatten()[i].item<double>();
        Assert.True(
            over <= absolute,
            $"element {i}: expected {e.flatten()[i].item<double>():G9}, actual {a.flatten()[i].item<double>():G9}, beyond {absolute:G3} + {relative:G3} x |expected|");
    }

    /// <summary>
    /// Asserts |actual - expected| &lt;= <paramref name="absolute"/> + <paramref name="relative"/> x |expected| for
    /// scalars, instead of rounding both to decimal places (two values a hair apart can round to different digits).
    /// </summary>
    public static void Near(double expected, double actual, double relative, double absolute)
    {
        double bound = absolute + (relative * Math.Abs(expected));
        Assert.True(
            Math.Abs(actual - expected) <= bound,
            $"expected {expected:G9}, actual {actual:G9}: |difference| {Math.Abs(actual - expected):G3} exceeds {bound:G3}");
    }

    /// <summary>The largest |a - b|.</summary>
    public static double MaxDiff(Tensor a, Tensor b)
    {
        using var x = a.to_type(ScalarType.Float64).cpu();
        using var y = b.to_type(ScalarType.Float64).cpu();
        using var d = (x - y).abs();
        return d.max().item<double>();
    }

    /// <summary>Asserts that all frames (dimension 1) of a [C, T, H, W] clip are identical.</summary>
    public static void FramesIdentical(Tensor clip)
    {
        using var first = clip.narrow(1, 0, 1);
        using var diff = (clip.to_type(ScalarType.Float64) - first.to_type(ScalarType.Float64)).abs();
        Assert.True(diff.max().item<double>() == 0, "frames differ");
    }
}

/// <summary>Counts live TorchSharp tensors, for leak tests.</summary>
public static class LiveTensors
{
    /// <summary>
    /// Tensors created and not yet disposed in the whole process (<c>Tensor.TotalCount</c>; the per-thread statistics
    /// would miss tensors made on loader threads and disposed on the training thread).
    /// </summary>
    public static long Count => torch.Tensor.TotalCount;

    /// <summary>
    /// Handle-less tensor objects TorchSharp 0.107 leaves counted per linear layer it builds: its Parameter constructor
    /// moves the handle out of the source tensor, whose later disposal no longer decrements the count. They hold no
    /// native memory.
    /// </summary>
    public const int HusksPerLinearLayer = 2;

    /// <summary>
    /// <see cref="Count"/> after finalising unreachable tensor handles (the test's own garbage), for a baseline taken
    /// after test set-up. Compare it with a later <see cref="Count"/>, so that the code under test is held to not
    /// leaving handles for the finaliser.
    /// </summary>
    public static long Settled()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return Count;
    }
}
