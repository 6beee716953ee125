using ScottPlot;

namespace Cvrl.Cli.Infrastructure;

/// <summary>One line of a <see cref="Charts.Line"/> chart: y values at x = 1, 2, ... (non-finite values are left out).</summary>
internal sealed record ChartSeries(string Name, IReadOnlyList<double> Values);

/// <summary>One group of bars in a <see cref="Charts.Bars"/> chart: one bar per series, with optional error half-widths.</summary>
internal sealed record BarGroup(string Label, IReadOnlyList<double> Values, IReadOnlyList<double>? Errors = null);

/// <summary>The tool's PNG charts (training curves, accuracy comparisons), drawn with ScottPlot.</summary>
internal static class Charts
{
    public const int Width = 720;
    public const int Height = 420;

    /// <summary>A line chart; with <paramref name="smoothing"/> above 1 each series also gets its moving average.</summary>
    /// <exception cref="ArgumentException">No series, or no finite value.</exception>
    public static byte[] Line(string title, string xLabel, string yLabel, IReadOnlyList<ChartSeries> series, int smoothing = 1)
    {
        ArgumentNullException.ThrowIfNull(series);
        if (series.Count == 0 || !series.Any(s => s.Values.Any(double.IsFinite)))
        {
            throw new ArgumentException("A line chart needs at least one finite value.", nameof(series));
        }

        using var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        for (int i = 0; i < series.Count; i++)
        {
            var (xs, ys) = Points(series[i].Values);
            var color = palette.GetColor(i);
            var raw = plot.Add.ScatterLine(xs, ys, smoothing > 1 ? color.WithAlpha(0.35) : color);
            raw.LegendText = series[i].Name;
            if (smoothing > 1)
            {
                var (mx, my) = Points(MovingAverage(series[i].Values, smoothing));
                var mean = plot.Add.ScatterLine(mx, my, color);
                mean.LineWidth = 2.5f;
                mean.LegendText = $"{series[i].Name} (mean of {smoothing})";
            }
        }

        Decorate(plot, title, xLabel, yLabel);
        plot.ShowLegend(Alignment.UpperRight);
        return plot.GetImageBytes(Width, Height, ImageFormat.Png);
    }

    /// <summary>A grouped bar chart: one group per <paramref name="groups"/> entry, one bar per series.</summary>
    /// <exception cref="ArgumentException">No groups, or a group with another number of values than series.</exception>
    public static byte[] Bars(string title, string yLabel, IReadOnlyList<string> seriesNames, IReadOnlyList<BarGroup> groups, double? yMax = null, string format = "0.00", bool legendOutside = false)
    {
        ArgumentNullException.ThrowIfNull(seriesNames);
        ArgumentNullException.ThrowIfNull(groups);
        if (groups.Count == 0 || groups.Any(g => g.Values.Count != seriesNames.Count || (g.Errors is not null && g.Errors.Count != seriesNames.Count)))
        {
            throw new ArgumentException($"Every group needs {seriesNames.Count} value(s) (and as many errors, if any).", nameof(groups));
        }

        using var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int n = seriesNames.Count;
        double width = 0.8 / n;
        var ticks = new List<Tick>();
        for (int g = 0; g < groups.Count; g++)
        {
            for (int s = 0; s < n; s++)
            {
                double value = groups[g].Values[s];
                if (double.IsNaN(value))
                {
                    continue; // no value for this series in this group: no bar, rather than a bar at zero
                }

                double x = g + ((s - ((n - 1) / 2.0)) * width);
                var bar = new Bar
                {
                    Position = x,
                    Value = value,
                    Size = width * 0.9,
                    FillColor = palette.GetColor(s),
                    Label = value.ToString(format, System.Globalization.CultureInfo.InvariantCulture),
                    Error = groups[g].Errors?[s] ?? 0,
                };
                plot.Add.Bar(bar);
            }

            ticks.Add(new Tick(g, groups[g].Label));
        }

        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual([.. ticks]);
        plot.Axes.Bottom.MajorTickStyle.Length = 0;
        for (int s = 0; s < n; s++)
        {
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = seriesNames[s], FillColor = palette.GetColor(s) });
        }

        double top = yMax ?? (groups.SelectMany(g => g.Values.Zip(g.Errors ?? g.Values.Select(_ => 0.0), (v, e) => v + e)).Where(v => !double.IsNaN(v)).DefaultIfEmpty(1).Max() * 1.15);
        plot.Axes.SetLimits(-0.6, groups.Count - 0.4, 0, Math.Max(top, 1e-9));
        Decorate(plot, title, string.Empty, yLabel);
        if (legendOutside)
        {
            plot.ShowLegend(Edge.Bottom); // many or long series names: below the plot, never over a bar
        }
        else
        {
            plot.ShowLegend(Alignment.UpperLeft);
        }

        return plot.GetImageBytes(Width, Height, ImageFormat.Png);
    }

    /// <summary>Writes PNG bytes to a file, creating its folder.</summary>
    public static void Save(string path, byte[] png)
    {
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllBytes(full, png);
    }

    private static void Decorate(Plot plot, string title, string xLabel, string yLabel)
    {
        plot.Title(title, size: 15);
        plot.XLabel(xLabel, size: 13);
        plot.YLabel(yLabel, size: 13);
    }

    private static (double[] X, double[] Y) Points(IReadOnlyList<double> values)
    {
        var kept = values.Select((v, i) => (X: i + 1.0, Y: v)).Where(p => double.IsFinite(p.Y)).ToList();
        return ([.. kept.Select(p => p.X)], [.. kept.Select(p => p.Y)]);
    }

    private static double[] MovingAverage(IReadOnlyList<double> values, int window)
    {
        var result = new double[values.Count];
        for (int i = 0; i < values.Count; i++)
        {
            var span = Enumerable.Range(Math.Max(0, i - window + 1), Math.Min(window, i + 1)).Select(j => values[j]).Where(double.IsFinite).ToList();
            result[i] = span.Count > 0 ? span.Average() : double.NaN;
        }

        return result;
    }
}
