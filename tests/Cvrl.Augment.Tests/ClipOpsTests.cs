using Cvrl.Augment.Functional;
using Cvrl.Testing;
using Cvrl.Video;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Augment.Tests;

[Collection("Torch")]
public sealed class ClipOpsTests
{
    private static Tensor Pixel(float r, float g, float b) => torch.tensor(new[] { r, g, b }).reshape(3, 1, 1, 1);

    private static float[] Rgb(Tensor t) => t.reshape(3).data<float>().ToArray();

    [Fact]
    public void Brightness_MultipliesAndClamps()
    {
        using var x = torch.tensor(new[] { 0.1f, 0.5f, 0.9f }).reshape(3, 1, 1, 1);
        using var y = ClipOps.AdjustBrightness(x, 1.5f);
        Assert.Equal(new[] { 0.15f, 0.75f, 1f }, Rgb(y), new FloatTolerance(1e-6f));
    }

    [Fact]
    public void Contrast_UsesTheMeanOverAllFrames()
    {
        // Channel 0 holds 0.2 in frame 0 and 0.6 in frame 1: mean 0.4 over the clip, not per frame.
        using var x = torch.tensor(new[] { 0.2f, 0.6f, 0.5f, 0.5f, 0.0f, 1.0f }).reshape(3, 2, 1, 1);
        using var y = ClipOps.AdjustContrast(x, 2f);
        Assert.Equal(new[] { 0.0f, 0.8f, 0.5f, 0.5f, 0.0f, 1.0f }, y.reshape(6).data<float>().ToArray(), new FloatTolerance(1e-6f));
    }

    [Fact]
    public void Saturation_HandComputed()
    {
        // (0.8, 0.4, 0.2): V 0.8, S 0.75, hue 1/3 of the red-yellow sextant. S x 0.5 = 0.375 gives min 0.5, mid 0.6.
        using var x = Pixel(0.8f, 0.4f, 0.2f);
        using var y = ClipOps.AdjustSaturation(x, 0.5f);
        Assert.Equal(new[] { 0.8f, 0.6f, 0.5f }, Rgb(y), new FloatTolerance(1e-6f));
        using var grey = ClipOps.AdjustSaturation(x, 0f);
        Assert.Equal(new[] { 0.8f, 0.8f, 0.8f }, Rgb(grey), new FloatTolerance(1e-6f));
        using var sat = ClipOps.AdjustSaturation(x, 10f);
        Assert.Equal(new[] { 0.8f, 0.26666668f, 0f }, Rgb(sat), new FloatTolerance(1e-6f));
    }

    [Fact]
    public void Hue_HandComputed()
    {
        // Rotating (0.8, 0.4, 0.2) by 1/6 turn keeps max 0.8 and min 0.2 and moves into the yellow-green sextant.
        using var x = Pixel(0.8f, 0.4f, 0.2f);
        using var y = ClipOps.AdjustHue(x, 1f / 6f);
        Assert.Equal(new[] { 0.6f, 0.8f, 0.2f }, Rgb(y), new FloatTolerance(1e-6f));
        using var back = ClipOps.AdjustHue(x, -1f);
        Assert.Equal(new[] { 0.8f, 0.4f, 0.2f }, Rgb(back), new FloatTolerance(1e-6f));
        using var half = ClipOps.AdjustHue(x, 0.5f);
        Assert.Equal(new[] { 0.2f, 0.6f, 0.8f }, Rgb(half), new FloatTolerance(1e-6f));
    }

    [Fact]
    public void Grayscale_UsesTensorFlowWeights()
    {
        using var x = Pixel(0.8f, 0.4f, 0.2f);
        using var y = ClipOps.Grayscale(x);
        float luma = (0.2989f * 0.8f) + (0.5870f * 0.4f) + (0.1140f * 0.2f);
        Assert.Equal(new[] { luma, luma, luma }, Rgb(y), new FloatTolerance(1e-6f));
    }

    [Fact]
    public void Solarize_InvertsAboveThreshold()
    {
        using var x = torch.tensor(new[] { 0.3f, 0.5f, 0.7f }).reshape(3, 1, 1, 1);
        using var y = ClipOps.Solarize(x);
        Assert.Equal(new[] { 0.3f, 0.5f, 0.3f }, Rgb(y), new FloatTolerance(1e-6f));
    }

    [Fact]
    public void GaussianTaps_AreNormalisedGaussian()
    {
        float[] taps = ClipOps.GaussianTaps(1f, 5);
        double[] raw = [Math.Exp(-2), Math.Exp(-0.5), 1, Math.Exp(-0.5), Math.Exp(-2)];
        double sum = raw.Sum();
        Assert.Equal(raw.Select(r => (float)(r / sum)).ToArray(), taps, new FloatTolerance(1e-6f));
        Assert.Equal(23, ClipOps.BlurKernelSize(224));
        Assert.Equal(1, ClipOps.BlurKernelSize(16));
        Assert.Equal(3, ClipOps.BlurKernelSize(32));
    }

    [Fact]
    public void GaussianBlur_ImpulseGivesOuterProductAndBordersSeeZeros()
    {
        using var impulse = torch.zeros(3, 2, 9, 9);
        impulse[.., .., 4, 4] = torch.tensor(1f);
        using var y = ClipOps.GaussianBlur(impulse, 1f, 5);
        float[] taps = ClipOps.GaussianTaps(1f, 5);
        for (int dy = -2; dy <= 2; dy++)
        {
            for (int dx = -2; dx <= 2; dx++)
            {
                Assert.Equal(taps[dy + 2] * taps[dx + 2], y[1, 1, 4 + dy, 4 + dx].item<float>(), 1e-6f);
            }
        }

        // A constant image darkens at the border because the padding is zero ('SAME'), exactly by the missing taps.
        using var ones = torch.ones(3, 1, 9, 9);
        using var z = ClipOps.GaussianBlur(ones, 1f, 5);
        float edge = taps[2] + taps[3] + taps[4];
        Assert.Equal(edge * edge, z[0, 0, 0, 0].item<float>(), 1e-6f);
        Assert.Equal(1f, z[0, 0, 4, 4].item<float>(), 1e-6f);
    }

    [Fact]
    public void ResizedCrop_WithoutResize_IsSlicing_AndKeepsDtype()
    {
        using var x = Clips.RandomBytes(3, 4, 20, 30, 1);
        var box = new CropBox(3, 5, 10, 12);
        using var y = ClipOps.ResizedCrop(x, box, 10, 12);
        using var expected = x[.., .., 3..13, 5..17];
        Assert.Equal(ScalarType.Byte, y.dtype);
        Assert.True(y.eq(expected).all().item<bool>());
        Assert.Throws<ArgumentException>(() => ClipOps.ResizedCrop(x, new CropBox(15, 0, 10, 10), 5, 5));
    }

    [Fact]
    public void ResizedCrop_UpscalesBilinearWithHalfPixelCentres()
    {
        // A 1x2 row [0, 1] resized to 1x4 with half-pixel centres: [0, 0.25, 0.75, 1].
        using var x = torch.tensor(new[] { 0f, 1f }).reshape(1, 1, 1, 2);
        using var y = ClipOps.ResizedCrop(x, CropBox.Full(1, 2), 1, 4);
        Assert.Equal(new[] { 0f, 0.25f, 0.75f, 1f }, y.reshape(4).data<float>().ToArray(), new FloatTolerance(1e-6f));
    }

    [Fact]
    public void ThreeCrops_FollowTheOfficialOffsets()
    {
        var boxes = ClipOps.ThreeCropBoxes(256, 340, 256);
        Assert.Equal(new[] { new CropBox(0, 0, 256, 256), new CropBox(0, 42, 256, 256), new CropBox(0, 84, 256, 256) }, boxes);
        var tall = ClipOps.ThreeCropBoxes(300, 256, 256);
        Assert.Equal(new[] { 0, 22, 44 }, tall.Select(b => b.Top));
    }

    [Fact]
    public void ResizeShortSide_KeepsAspectLikeResizeSmallest()
    {
        using var x = Clips.RandomBytes(3, 2, 120, 160, 3);
        using var y = ClipOps.ResizeShortSide(x, 64);
        Assert.Equal(new long[] { 3, 2, 64, 85 }, y.shape);
    }

    [Fact]
    public void ColourOps_RejectWrongInputs()
    {
        using var bytes = Clips.RandomBytes(3, 2, 4, 4, 4);
        using var four = Clips.RandomFloat(4, 2, 4, 4, 4);
        using var rank3 = torch.rand(3, 4, 4);
        Assert.Throws<ArgumentException>(() => ClipOps.AdjustBrightness(bytes, 1.1f));
        Assert.Throws<ArgumentException>(() => ClipOps.AdjustHue(four, 0.1f));
        Assert.Throws<ArgumentException>(() => ClipOps.Grayscale(rank3));
        // Geometry works for any channel count.
        using var cropped = ClipOps.ResizedCrop(four, CropBox.Full(4, 4), 2, 2);
        Assert.Equal(new long[] { 4, 2, 2, 2 }, cropped.shape);
    }

    [Theory]
    [InlineData("brightness")]
    [InlineData("contrast")]
    [InlineData("saturation")]
    [InlineData("hue")]
    [InlineData("gray")]
    [InlineData("blur")]
    [InlineData("solarize")]
    [InlineData("crop")]
    public void CpuKernels_MatchTorchKernels(string op)
    {
        using var clip = Clips.RandomFloat(3, 3, 17, 23, 11);
        Tensor Run() => op switch
        {
            "brightness" => ClipOps.AdjustBrightness(clip, 1.37f),
            "contrast" => ClipOps.AdjustContrast(clip, 0.61f),
            "saturation" => ClipOps.AdjustSaturation(clip, 1.6f),
            "hue" => ClipOps.AdjustHue(clip, -0.17f),
            "gray" => ClipOps.Grayscale(clip),
            "blur" => ClipOps.GaussianBlur(clip, 1.3f, 7),
            "solarize" => ClipOps.Solarize(clip),
            _ => ClipOps.ResizedCrop(clip, new CropBox(2, 3, 11, 15), 13, 9),
        };

        using var fast = Run();
        CpuKernels.Disabled = true;
        try
        {
            using var reference = Run();
            TorchAssert.AllClose(reference, fast, 1e-5, 1e-5);
        }
        finally
        {
            CpuKernels.Disabled = false;
        }
    }

    [Fact]
    public void UInt8Crop_CpuAndTorchPathsAgreeWithinOneLevel()
    {
        using var clip = Clips.RandomBytes(3, 2, 40, 50, 5);
        var box = new CropBox(4, 6, 30, 33);
        using var fast = ClipOps.ResizedCrop(clip, box, 17, 19);
        CpuKernels.Disabled = true;
        try
        {
            using var reference = ClipOps.ResizedCrop(clip, box, 17, 19);
            Assert.True(TorchAssert.MaxDiff(fast, reference) <= 1, "uint8 resize paths differ by more than one level");
        }
        finally
        {
            CpuKernels.Disabled = false;
        }
    }

    [Fact]
    public void Ops_DoNotModifyTheirInputAndDoNotLeak()
    {
        using var clip = Clips.RandomFloat(3, 2, 16, 16, 6);
        using var before = clip.clone();
        long live = LiveTensors.Settled();
        foreach (var result in new[]
        {
            ClipOps.AdjustBrightness(clip, 1.2f), ClipOps.AdjustContrast(clip, 1.2f), ClipOps.AdjustSaturation(clip, 1.2f),
            ClipOps.AdjustHue(clip, 0.1f), ClipOps.Grayscale(clip), ClipOps.GaussianBlur(clip, 1f, 3), ClipOps.Solarize(clip),
            ClipOps.HorizontalFlip(clip), ClipOps.ResizedCrop(clip, new CropBox(1, 1, 8, 8), 4, 4),
        })
        {
            result.Dispose();
        }

        Assert.Equal(live, LiveTensors.Count);
        Assert.True(clip.eq(before).all().item<bool>());
    }
}

/// <summary>Compares floats within an absolute tolerance.</summary>
internal sealed class FloatTolerance(float tolerance) : IEqualityComparer<float>
{
    public bool Equals(float x, float y) => Math.Abs(x - y) <= tolerance;

    public int GetHashCode(float obj) => 0;
}
