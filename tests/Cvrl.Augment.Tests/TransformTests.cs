using Cvrl.Augment.Functional;
using Cvrl.Augment.Transforms;
using Cvrl.Testing;
using Cvrl.Video;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Augment.Tests;

[Collection("Torch")]
public sealed class TransformTests
{
    // The last shape cannot hold any box of area >= 0.3 with aspect <= 2, so every draw falls back to the full frame.
    public static TheoryData<int, int, bool> Shapes => new() { { 480, 640, false }, { 240, 320, false }, { 224, 224, false }, { 120, 90, false }, { 37, 500, true } };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void RandomResizedCrop_BoxesRespectAreaAspectAndBounds(int h, int w, bool alwaysFallback)
    {
        var crop = new RandomResizedCrop(224);
        var shape = new ClipShape(3, 16, h, w);
        int fallbacks = 0;
        for (int seed = 0; seed < 2000; seed++)
        {
            var p = crop.Sample(shape, ClipRandom.For(seed, 0, 0, 0));
            Assert.True(p.Box.FitsIn(h, w), $"{p.Box} outside {w}x{h}");
            Assert.Equal(224, p.OutputHeight);
            if (p.Fallback)
            {
                fallbacks++;
                Assert.Equal(CropBox.Full(h, w), p.Box);
                continue;
            }

            double area = (double)p.Box.Width * p.Box.Height / (w * (double)h);
            Assert.InRange(area, 0.3 - 1e-6, 1.0 + 1e-6);
            // width = round(height * aspect) with aspect in [0.5, 2]: allow the rounding of one pixel.
            Assert.InRange(p.Box.Width, (0.5 * p.Box.Height) - 0.5, (2.0 * p.Box.Height) + 0.5);
            // TensorFlow never lets a smaller box touch the last row or column.
            if (p.Box.Height < h)
            {
                Assert.True(p.Box.Top + p.Box.Height < h);
            }
        }

        Assert.True(alwaysFallback ? fallbacks == 2000 : fallbacks < 20, $"{fallbacks} fallbacks");
    }

    [Fact]
    public void RandomResizedCrop_ImpossibleConstraintsFallBackToTheWholeFrame()
    {
        var p = new RandomResizedCrop(8).Sample(new ClipShape(3, 1, 1, 1000), new ClipRandom(1));
        Assert.True(p.Fallback);
        Assert.Equal(CropBox.Full(1, 1000), p.Box);
    }

    [Fact]
    public void RandomResizedCrop_AreaIsSpreadOverItsRange()
    {
        var crop = new RandomResizedCrop(224);
        var areas = Enumerable.Range(0, 4000)
            .Select(s => crop.Sample(new ClipShape(3, 1, 480, 640), ClipRandom.For(s, 0, 0, 0)))
            .Select(p => p.Box.Width * p.Box.Height / (480.0 * 640.0)).ToArray();
        // TensorFlow draws the height uniformly, so small areas dominate (about 45% below 0.45, about 2% above 0.85).
        Assert.InRange(areas.Count(a => a < 0.45), 1600, 2000);
        Assert.InRange(areas.Count(a => a > 0.85), 40, 160);
    }

    [Fact]
    public void Flip_MirrorsColumns_WithProbabilityHalf()
    {
        var flip = new RandomHorizontalFlip();
        using var clip = Clips.RandomBytes(3, 2, 4, 5, 1);
        using var flipped = flip.Apply(clip, new FlipParams(true));
        using var expected = clip.flip(3);
        Assert.True(flipped.eq(expected).all().item<bool>());
        int count = Enumerable.Range(0, 4000).Count(s => flip.Sample(ClipShape.Of(clip), ClipRandom.For(s, 0, 0, 0)).Flipped);
        Assert.InRange(count, 2000 - 160, 2000 + 160); // binomial sd 31.6, 5 sd
    }

    [Fact]
    public void ColorJitter_FactorRangesProbabilityAndOrders()
    {
        var jitter = new ColorJitter();
        var shape = new ClipShape(3, 1, 8, 8);
        var orders = new HashSet<string>();
        int applied = 0;
        for (int s = 0; s < 5000; s++)
        {
            var p = jitter.Sample(shape, ClipRandom.For(s, 0, 0, 0));
            Assert.InRange(p.Brightness, 0.2f, 1.8f);
            Assert.InRange(p.Contrast, 0.2f, 1.8f);
            Assert.InRange(p.Saturation, 0.2f, 1.8f);
            Assert.InRange(p.Hue, -0.2f, 0.2f);
            orders.Add(p.Order.ToString());
            applied += p.Applied ? 1 : 0;
        }

        Assert.Equal(24, orders.Count);
        Assert.InRange(applied, 4000 - 142, 4000 + 142); // p 0.8: sd 28.3
    }

    [Fact]
    public void ColorJitter_AppliesOpsInTheDrawnOrder()
    {
        using var clip = Clips.RandomFloat(3, 2, 6, 6, 8);
        var p = new ColorJitterParams(true, 1.3f, 0.7f, 1.4f, 0.1f, new JitterOrder(ColorOp.Hue, ColorOp.Contrast, ColorOp.Brightness, ColorOp.Saturation));
        using var actual = new ColorJitter().Apply(clip, p);
        using var a = ClipOps.AdjustHue(clip, 0.1f);
        using var b = ClipOps.AdjustContrast(a, 0.7f);
        using var c = ClipOps.AdjustBrightness(b, 1.3f);
        using var expected = ClipOps.AdjustSaturation(c, 1.4f);
        TorchAssert.AllClose(expected, actual, 1e-5, 1e-6);
        using var off = new ColorJitter().Apply(clip, p with { Applied = false });
        TorchAssert.Close(clip, off, 0);
    }

    [Fact]
    public void Presets_AreTemporallyConsistent()
    {
        using var clip = Clips.StaticFrames(8, 60, 80, 3);
        foreach (var pipeline in new[] { CvrlPresets.PretrainView1(32), CvrlPresets.PretrainView2(32), CvrlPresets.LinearEvalTrain(32) })
        {
            for (int seed = 0; seed < 10; seed++)
            {
                using var y = pipeline.Apply(clip, ClipRandom.For(seed, 0, 0, 0));
                TorchAssert.FramesIdentical(y);
            }
        }
    }

    [Fact]
    public void PerFramePipeline_IsNotTemporallyConsistent()
    {
        using var clip = Clips.StaticFrames(6, 60, 80, 3);
        var pipeline = CvrlPresets.PretrainView1(32, TemporalConsistency.PerFrame);
        var (y, plan) = pipeline.Run(clip, new ClipRandom(4));
        using (y)
        {
            Assert.Equal(new long[] { 3, 6, 32, 32 }, y.shape);
            Assert.NotNull(plan.Frames);
            Assert.Equal(6, plan.Frames!.Count);
            using var first = y.narrow(1, 0, 1);
            using var second = y.narrow(1, 1, 1);
            Assert.True(TorchAssert.MaxDiff(first, second) > 0.01);
        }
    }

    [Fact]
    public void Pipeline_IsDeterministicPerKey_AndViewsDiffer()
    {
        using var clip = Clips.RandomBytes(3, 4, 60, 80, 9);
        var pipeline = CvrlPresets.PretrainView1(32);
        using var a = pipeline.Apply(clip, ClipRandom.For(1, 2, 3, 0));
        using var b = pipeline.Apply(clip, ClipRandom.For(1, 2, 3, 0));
        using var c = pipeline.Apply(clip, ClipRandom.For(1, 2, 3, 1));
        Assert.Equal(0, TorchAssert.MaxDiff(a, b));
        Assert.True(TorchAssert.MaxDiff(a, c) > 0.01);
    }

    [Fact]
    public void Plan_ReplaysExactly_AndDescribesItself()
    {
        using var clip = Clips.RandomBytes(3, 4, 60, 80, 10);
        var pipeline = CvrlPresets.PretrainView2(32);
        var (y, plan) = pipeline.Run(clip, ClipRandom.For(5, 0, 1, 1));
        using (y)
        using (var replay = pipeline.Apply(clip, plan))
        {
            Assert.Equal(0, TorchAssert.MaxDiff(y, replay));
        }

        Assert.Equal(7, plan.Steps.Count);
        Assert.NotNull(plan.Find<ResizedCropParams>());
        Assert.Contains("crop", plan.ToString(), StringComparison.Ordinal);
        Assert.Contains("solarize", plan.ToString(), StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => CvrlPresets.PretrainView1(32).Apply(clip, plan));
        using var other = Clips.RandomBytes(3, 4, 61, 80, 10);
        Assert.Throws<ArgumentException>(() => pipeline.Apply(other, plan));
    }

    [Fact]
    public void Pipeline_OutputShapeAndInputUntouched()
    {
        using var clip = Clips.RandomBytes(3, 5, 70, 90, 12);
        using var copy = clip.clone();
        var pipeline = CvrlPresets.PretrainView1(40);
        Assert.Equal(new ClipShape(3, 5, 40, 40), pipeline.OutputShape(ClipShape.Of(clip)));
        using var y = pipeline.Apply(clip, new ClipRandom(3));
        Assert.Equal(ScalarType.Float32, y.dtype);
        Assert.Equal(new long[] { 3, 5, 40, 40 }, y.shape);
        Assert.True(y.min().item<float>() >= 0 && y.max().item<float>() <= 1);
        Assert.True(clip.eq(copy).all().item<bool>());
    }

    [Fact]
    public void Pipeline_DoesNotLeak()
    {
        using var clip = Clips.RandomBytes(3, 4, 60, 80, 13);
        var v1 = CvrlPresets.PretrainView1(32);
        var v2 = CvrlPresets.PretrainView2(32);
        long live = LiveTensors.Settled();
        for (int i = 0; i < 20; i++)
        {
            using var scope = torch.NewDisposeScope();
            v1.Apply(clip, ClipRandom.For(i, 0, 0, 0)).Dispose();
            var y = v2.Apply(clip, ClipRandom.For(i, 0, 0, 1));
            Assert.Equal(1, scope.DisposablesCount);
        }

        Assert.Equal(live, LiveTensors.Count);
    }

    [Fact]
    public void ApplyBatch_EqualsPerClip()
    {
        var pipeline = CvrlPresets.PretrainView2(24);
        var jitterOnly = ClipPipeline.Create(b => b.ColorJitter().RandomGrayscale(0.5).RandomGaussianBlur(0.5).RandomSolarize(0.5));
        using var batch = torch.stack(Enumerable.Range(0, 6).Select(i => Clips.RandomBytes(3, 3, 40, 50, 20 + i)).ToArray());
        using var floats = batch.to_type(ScalarType.Float32).div(255f);
        foreach (var (p, input) in new[] { (pipeline, batch), (jitterOnly, floats) })
        {
            var plans = Enumerable.Range(0, 6).Select(i => p.Sample(new ClipShape(3, 3, 40, 50), ClipRandom.For(7, 0, i, 1))).ToList();
            using var batched = p.ApplyBatch(input, plans);
            using var single = torch.stack(Enumerable.Range(0, 6).Select(i => p.Apply(input[i], plans[i])).ToArray());
            TorchAssert.AllClose(single, batched, 1e-5, 2e-5);
        }
    }

    [Fact]
    public void BatchOps_EqualPerClipOps()
    {
        using var batch = torch.stack(Enumerable.Range(0, 4).Select(i => Clips.RandomFloat(3, 2, 12, 14, 40 + i)).ToArray());
        var jitter = new[]
        {
            new ColorJitterParams(true, 1.2f, 0.8f, 1.5f, 0.05f, JitterOrder.Canonical),
            new ColorJitterParams(false, 1.2f, 0.8f, 1.5f, 0.05f, JitterOrder.Canonical),
            new ColorJitterParams(true, 0.6f, 1.7f, 0.3f, -0.15f, new JitterOrder(ColorOp.Hue, ColorOp.Saturation, ColorOp.Contrast, ColorOp.Brightness)),
            new ColorJitterParams(true, 1.0f, 1.1f, 0.9f, 0.2f, new JitterOrder(ColorOp.Contrast, ColorOp.Hue, ColorOp.Brightness, ColorOp.Saturation)),
        };
        var blur = new[] { new BlurParams(true, 0.5f, 5), new BlurParams(true, 1.9f, 5), new BlurParams(false, 1f, 5), new BlurParams(true, 1f, 3) };
        var gray = new[] { new GrayscaleParams(true), new GrayscaleParams(false), new GrayscaleParams(false), new GrayscaleParams(true) };
        var solar = new[] { new SolarizeParams(false), new SolarizeParams(true), new SolarizeParams(true), new SolarizeParams(false) };

        using var j = BatchOps.ColorJitter(batch, jitter);
        using var b = BatchOps.GaussianBlur(batch, blur);
        using var g = BatchOps.Grayscale(batch, gray);
        using var s = BatchOps.Solarize(batch, solar);
        for (int i = 0; i < 4; i++)
        {
            using var ji = new ColorJitter().Apply(batch[i], jitter[i]);
            using var bi = new RandomGaussianBlur(1).Apply(batch[i], blur[i]);
            using var gi = new RandomGrayscale().Apply(batch[i], gray[i]);
            using var si = new RandomSolarize().Apply(batch[i], solar[i]);
            TorchAssert.AllClose(ji, j[i], 1e-5, 2e-5);
            TorchAssert.AllClose(bi, b[i], 1e-5, 2e-5);
            TorchAssert.AllClose(gi, g[i], 1e-5, 1e-6);
            TorchAssert.Close(si, s[i], 0);
        }

        Assert.Throws<ArgumentException>(() => BatchOps.Grayscale(batch, gray.Take(3).ToArray()));
    }

    [Fact]
    public void Transforms_ValidateArguments()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new RandomResizedCrop(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RandomResizedCrop(224, (0, 1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RandomResizedCrop(224, (0.5, 1.2)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RandomResizedCrop(224, null, (2, 1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RandomHorizontalFlip(1.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ColorJitter(hue: 0.7));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RandomGaussianBlur(0.5, (0, 1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RandomGaussianBlur(0.5, null, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RandomSolarize(-0.1));
    }
}
