using Cvrl.Augment.Transforms;
using OpenCvSharp;

namespace Cvrl.Augment.Tests;

public sealed class ChartsTests
{
    [Fact]
    public void Bars_are_drawn_in_proportion_to_their_values()
    {
        byte[] png = Charts.Bars("title", "top-1", ["series"], [new BarGroup("low", [0.2]), new BarGroup("high", [0.8])], yMax: 1);
        using var image = Cv2.ImDecode(png, ImreadModes.Color);
        Assert.Equal((720, 420), (image.Width, image.Height));

        // Coloured (saturated) pixels per half of the plot: the bar of 0.8 covers about four times the bar of 0.2.
        long low = Saturated(image, 0, image.Width / 2), high = Saturated(image, image.Width / 2, image.Width);
        Assert.True(low > 500, $"low bar has {low} coloured pixels");
        Assert.InRange(high / (double)low, 3.0, 5.0);
    }

    [Fact]
    public void A_rising_line_ends_higher_than_it_starts()
    {
        double[] values = [.. Enumerable.Range(0, 50).Select(i => (double)i)];
        byte[] png = Charts.Line("title", "step", "loss", [new ChartSeries("loss", values)]);
        using var image = Cv2.ImDecode(png, ImreadModes.Color);
        Assert.Equal((720, 420), (image.Width, image.Height));
        Assert.True(TopmostSaturatedRow(image, 80, 200) > TopmostSaturatedRow(image, 560, 690), "the right end of the line should be higher (a smaller row)");
    }

    [Fact]
    public void Bad_input_is_rejected()
    {
        Assert.Throws<ArgumentException>(() => Charts.Line("t", "x", "y", [new ChartSeries("empty", [double.NaN])]));
        Assert.Throws<ArgumentException>(() => Charts.Bars("t", "y", ["a", "b"], [new BarGroup("g", [0.5])]));
    }

    [Fact]
    public void Colour_jitter_strength_scales_every_factor_and_is_validated()
    {
        var half = ColorJitter.WithStrength(0.5);
        Assert.Equal((0.4, 0.4, 0.4, 0.1), (half.BrightnessStrength, half.ContrastStrength, half.SaturationStrength, half.HueStrength), new ToleranceComparer());
        Assert.Equal(0.8, half.Probability);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new CvrlViewOptions { ColorJitterStrength = 1.5 }.Validate());
        Assert.Equal("ColorJitterStrength", e.ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => new CvrlViewOptions { ColorJitterStrength = double.NaN }.Validate());
        new CvrlViewOptions { ColorJitterStrength = 0 }.Validate();
    }

    private sealed class ToleranceComparer : IEqualityComparer<(double, double, double, double)>
    {
        public bool Equals((double, double, double, double) a, (double, double, double, double) b) =>
            Math.Abs(a.Item1 - b.Item1) < 1e-12 && Math.Abs(a.Item2 - b.Item2) < 1e-12 && Math.Abs(a.Item3 - b.Item3) < 1e-12 && Math.Abs(a.Item4 - b.Item4) < 1e-12;

        public int GetHashCode((double, double, double, double) obj) => 0;
    }

    private static bool IsSaturated(Vec3b p) => Math.Max(p.Item0, Math.Max(p.Item1, p.Item2)) - Math.Min(p.Item0, Math.Min(p.Item1, p.Item2)) > 60;

    private static long Saturated(Mat image, int x0, int x1)
    {
        long count = 0;
        int height = image.Height;
        for (int y = 0; y < height; y++)
        {
            for (int x = x0; x < x1; x++)
            {
                count += IsSaturated(image.At<Vec3b>(y, x)) ? 1 : 0;
            }
        }

        return count;
    }

    private static int TopmostSaturatedRow(Mat image, int x0, int x1)
    {
        int height = image.Height;
        for (int y = 40; y < height - 64; y++)
        {
            for (int x = x0; x < x1; x++)
            {
                if (IsSaturated(image.At<Vec3b>(y, x)))
                {
                    return y;
                }
            }
        }

        return int.MaxValue;
    }
}
