using System.Globalization;
using OpenCvSharp;

namespace Cvrl.Augment;

/// <summary>One line of a <see cref="Charts.Line"/> chart.</summary>
/// <param name="Name">Legend text.</param>
/// <param name="Values">Y values at x = 1, 2, ... (non-finite values leave gaps).</param>
public sealed record ChartSeries(string Name, IReadOnlyList<double> Values);

/// <summary>One group of bars in a <see cref="Charts.Bars"/> chart: one bar per series.</summary>
/// <param name="Label">Group label under the bars.</param>
/// <param name="Values">One value per series.</param>
/// <param name="Errors">Optional half-widths of error bars (for example a standard deviation), one per series.</param>
public sealed record BarGroup(string Label, IReadOnlyList<double> Values, IReadOnlyList<double>? Errors = null);

/// <summary>
/// Small PNG charts drawn with OpenCV (no plotting dependency): a line chart for training curves and a grouped bar
/// chart for accuracy comparisons. Meant for reports, notebooks and the quickstart, not for publication.
/// </summary>
public static class Charts
{
    private const int Width = 720;
    private const int Height = 420;
    private const int Left = 70;
    private const int Right = 20;
    private const int Top = 44;
    private const int Bottom = 64;
    private const double Font = 0.45;

    private static readonly Scalar[] Palette =
    [
        new(180, 119, 31), new(14, 127, 255), new(44, 160, 44), new(40, 39, 214), new(189, 103, 148), new(75, 86, 140),
    ];

    /// <summary>Renders a line chart as PNG bytes.</summary>
    /// <param name="title">Title above the plot.</param>
    /// <param name="xLabel">X-axis label.</param>
    /// <param name="yLabel">Y-axis label.</param>
    /// <param name="series">One or more lines.</param>
    /// <param name="smoothing">Also draw a moving average over this many points (1 for none).</param>
    /// <exception cref="ArgumentException">No series, or no finite value.</exception>
    public static byte[] Line(string title, string xLabel, string yLabel, IReadOnlyList<ChartSeries> series, int smoothing = 1)
    {
        ArgumentNullException.ThrowIfNull(series);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(smoothing);
        var finite = series.SelectMany(s => s.Values).Where(double.IsFinite).ToList();
        if (series.Count == 0 || finite.Count == 0)
        {
            throw new ArgumentException("A line chart needs at least one finite value.", nameof(series));
        }

        int count = series.Max(s => s.Values.Count);
        var (lo, hi) = Range(finite.Min(), finite.Max());
        using var canvas = Canvas(title);
        Axes(canvas, xLabel, yLabel, lo, hi, 1, Math.Max(2, count));
        for (int k = 0; k < series.Count; k++)
        {
            var colour = Palette[k % Palette.Length];
            var values = series[k].Values;
            if (smoothing > 1)
            {
                DrawPolyline(canvas, values, count, lo, hi, Lighten(colour), 1);
                values = MovingAverage(values, smoothing);
            }

            DrawPolyline(canvas, values, count, lo, hi, colour, 2);
            Legend(canvas, k, series[k].Name + (smoothing > 1 ? string.Create(CultureInfo.InvariantCulture, $" (mean of {smoothing})") : string.Empty), colour);
        }

        return Encode(canvas);
    }

    /// <summary>Renders a grouped bar chart as PNG bytes; values are labelled on the bars.</summary>
    /// <param name="title">Title above the plot.</param>
    /// <param name="yLabel">Y-axis label.</param>
    /// <param name="seriesNames">Names of the bars within each group (the legend).</param>
    /// <param name="groups">The groups.</param>
    /// <param name="yMax">Top of the y axis (for example 1 for accuracies); null to fit the data.</param>
    /// <param name="format">Format of the value labels.</param>
    /// <exception cref="ArgumentException">No groups, or a group with the wrong number of values.</exception>
    public static byte[] Bars(string title, string yLabel, IReadOnlyList<string> seriesNames, IReadOnlyList<BarGroup> groups, double? yMax = null, string format = "0.00")
    {
        ArgumentNullException.ThrowIfNull(seriesNames);
        ArgumentNullException.ThrowIfNull(groups);
        if (groups.Count == 0 || seriesNames.Count == 0 || groups.Any(g => g.Values.Count != seriesNames.Count || (g.Errors is not null && g.Errors.Count != seriesNames.Count)))
        {
            throw new ArgumentException("A bar chart needs at least one group, and one value per series in every group.", nameof(groups));
        }

        double top = yMax ?? Range(0, groups.Max(g => g.Values.Select((v, i) => v + (g.Errors?[i] ?? 0)).Max())).Hi;
        using var canvas = Canvas(title);
        Axes(canvas, string.Empty, yLabel, 0, top, 0, 0);
        int plotWidth = Width - Left - Right;
        double groupWidth = plotWidth / (double)groups.Count;
        double barWidth = groupWidth * 0.8 / seriesNames.Count;
        for (int g = 0; g < groups.Count; g++)
        {
            double x0 = Left + (g * groupWidth) + (groupWidth * 0.1);
            for (int k = 0; k < seriesNames.Count; k++)
            {
                double v = groups[g].Values[k];
                int xa = (int)(x0 + (k * barWidth)), xb = (int)(x0 + ((k + 1) * barWidth)) - 2;
                int y = Y(Math.Clamp(v, 0, top), 0, top);
                Cv2.Rectangle(canvas, new Point(xa, y), new Point(xb, Y(0, 0, top)), Palette[k % Palette.Length], -1);
                if (groups[g].Errors is { } errors && errors[k] > 0)
                {
                    int xm = (xa + xb) / 2;
                    int ya = Y(Math.Clamp(v - errors[k], 0, top), 0, top), yb = Y(Math.Clamp(v + errors[k], 0, top), 0, top);
                    Cv2.Line(canvas, new Point(xm, ya), new Point(xm, yb), Scalar.Black, 1, LineTypes.AntiAlias);
                    Cv2.Line(canvas, new Point(xm - 4, yb), new Point(xm + 4, yb), Scalar.Black, 1, LineTypes.AntiAlias);
                }

                Text(canvas, v.ToString(format, CultureInfo.InvariantCulture), new Point(xa, Math.Max(Top + 12, y - 4)), Scalar.Black);
            }

            Text(canvas, groups[g].Label, new Point((int)x0, Height - Bottom + 18), Scalar.Black);
        }

        for (int k = 0; k < seriesNames.Count; k++)
        {
            Legend(canvas, k, seriesNames[k], Palette[k % Palette.Length]);
        }

        return Encode(canvas);
    }

    /// <summary>Writes PNG bytes from <see cref="Line"/> or <see cref="Bars"/> to a file (creating its folder).</summary>
    public static void Save(string path, byte[] png)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(png);
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllBytes(full, png);
    }

    private static Mat Canvas(string title)
    {
        OpenCvNative.EnsureLoaded();
        var canvas = new Mat(Height, Width, MatType.CV_8UC3, Scalar.White);
        if (!string.IsNullOrEmpty(title))
        {
            Cv2.PutText(canvas, title, new Point(Left, 24), HersheyFonts.HersheySimplex, 0.6, Scalar.Black, 1, LineTypes.AntiAlias);
        }
        return canvas;
    }

    private static void Axes(Mat canvas, string xLabel, string yLabel, double lo, double hi, int xFirst, int xLast)
    {
        var grey = new Scalar(200, 200, 200);
        for (int i = 0; i <= 5; i++)
        {
            double v = lo + ((hi - lo) * i / 5);
            int y = Y(v, lo, hi);
            Cv2.Line(canvas, new Point(Left, y), new Point(Width - Right, y), grey, 1);
            Text(canvas, Tick(v, hi - lo), new Point(4, y + 4), Scalar.Black);
        }

        Cv2.Line(canvas, new Point(Left, Top), new Point(Left, Height - Bottom), Scalar.Black, 1);
        Cv2.Line(canvas, new Point(Left, Height - Bottom), new Point(Width - Right, Height - Bottom), Scalar.Black, 1);
        if (xLast > xFirst)
        {
            for (int i = 0; i <= 5; i++)
            {
                double x = xFirst + ((xLast - xFirst) * i / 5.0);
                int px = X(x, xFirst, xLast);
                Cv2.Line(canvas, new Point(px, Height - Bottom), new Point(px, Height - Bottom + 4), Scalar.Black, 1);
                Text(canvas, Math.Round(x).ToString(CultureInfo.InvariantCulture), new Point(px - 8, Height - Bottom + 18), Scalar.Black);
            }
        }

        Text(canvas, xLabel, new Point(Left + ((Width - Left - Right) / 2) - 30, Height - 12), Scalar.Black);
        Text(canvas, yLabel, new Point(4, Top - 8), Scalar.Black);
    }

    private static void DrawPolyline(Mat canvas, IReadOnlyList<double> values, int count, double lo, double hi, Scalar colour, int thickness)
    {
        Point? previous = null;
        for (int i = 0; i < values.Count; i++)
        {
            if (!double.IsFinite(values[i]))
            {
                previous = null;
                continue;
            }

            var p = new Point(X(i + 1, 1, Math.Max(2, count)), Y(values[i], lo, hi));
            if (previous is Point q)
            {
                Cv2.Line(canvas, q, p, colour, thickness, LineTypes.AntiAlias);
            }
            else if (values.Count == 1)
            {
                Cv2.Circle(canvas, p, 3, colour, -1, LineTypes.AntiAlias);
            }

            previous = p;
        }
    }

    private static void Legend(Mat canvas, int index, string name, Scalar colour)
    {
        int y = Top + 8 + (index * 18);
        int x = Width - Right - 230;
        Cv2.Rectangle(canvas, new Rect(x, y - 8, 14, 10), colour, -1);
        Text(canvas, name, new Point(x + 20, y + 2), Scalar.Black);
    }

    private static void Text(Mat canvas, string text, Point at, Scalar colour)
    {
        if (!string.IsNullOrEmpty(text))
        {
            Cv2.PutText(canvas, text, at, HersheyFonts.HersheySimplex, Font, colour, 1, LineTypes.AntiAlias);
        }
    }

    private static int X(double x, double first, double last) => Left + (int)Math.Round((x - first) / (last - first) * (Width - Left - Right));

    private static int Y(double v, double lo, double hi) => Height - Bottom - (int)Math.Round((v - lo) / (hi - lo) * (Height - Top - Bottom));

    private static (double Lo, double Hi) Range(double min, double max)
    {
        if (max - min < 1e-9)
        {
            return (min - 0.5, max + 0.5);
        }

        double pad = (max - min) * 0.05;
        return (min - pad, max + pad);
    }

    private static string Tick(double v, double span) =>
        v.ToString(span >= 10 ? "0" : span >= 1 ? "0.0" : span >= 0.1 ? "0.00" : "0.000", CultureInfo.InvariantCulture);

    private static IReadOnlyList<double> MovingAverage(IReadOnlyList<double> values, int window)
    {
        var result = new double[values.Count];
        for (int i = 0; i < values.Count; i++)
        {
            var span = Enumerable.Range(Math.Max(0, i - window + 1), Math.Min(window, i + 1)).Select(j => values[j]).Where(double.IsFinite).ToList();
            result[i] = span.Count == 0 ? double.NaN : span.Average();
        }

        return result;
    }

    private static Scalar Lighten(Scalar c) => new(255 - ((255 - c.Val0) * 0.35), 255 - ((255 - c.Val1) * 0.35), 255 - ((255 - c.Val2) * 0.35));

    private static byte[] Encode(Mat canvas)
    {
        Cv2.ImEncode(".png", canvas, out byte[] png);
        return png;
    }
}
