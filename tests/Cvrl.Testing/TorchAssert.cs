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
}
