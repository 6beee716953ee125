using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Testing;

/// <summary>Small clips for tests.</summary>
public static class Clips
{
    /// <summary>A seeded random float clip in [0, 1].</summary>
    public static Tensor RandomFloat(int c, int t, int h, int w, int seed)
    {
        using var g = new torch.Generator((ulong)seed);
        return torch.rand([c, t, h, w], generator: g);
    }

    /// <summary>A seeded random uint8 clip.</summary>
    public static Tensor RandomBytes(int c, int t, int h, int w, int seed)
    {
        using var g = new torch.Generator((ulong)seed);
        return torch.randint(0, 256, [c, t, h, w], generator: g, dtype: ScalarType.Byte);
    }

    /// <summary>A clip whose T frames are all copies of one random frame.</summary>
    public static Tensor StaticFrames(int t, int h, int w, int seed, ScalarType dtype = ScalarType.Byte)
    {
        using var frame = dtype == ScalarType.Byte ? RandomBytes(3, 1, h, w, seed) : RandomFloat(3, 1, h, w, seed);
        return frame.expand(3, t, h, w).contiguous();
    }
}
