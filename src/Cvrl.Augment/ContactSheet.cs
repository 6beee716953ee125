using Cvrl.Augment.Functional;
using Cvrl.Video;
using OpenCvSharp;
using TorchSharp;
using Scalar = OpenCvSharp.Scalar;
using static TorchSharp.torch;

namespace Cvrl.Augment;

/// <summary>One row of a <see cref="ContactSheet"/>: a clip and the caption printed above it.</summary>
/// <param name="Caption">Text above the row (wrapped to the sheet's width), e.g. the augmentation parameters.</param>
/// <param name="Clip">A clip <c>[3, T, H, W]</c>: float in [0, 1] or uint8; any device.</param>
public sealed record ContactSheetRow(string Caption, Tensor Clip);

/// <summary>
/// Renders clips as a PNG contact sheet: frames across, one row per clip (for example view 1 and view 2), each row
/// under its caption. Users check augmentation settings by looking at it.
/// </summary>
public static class ContactSheet
{
    private const double FontScale = 0.4;
    private const int LineHeight = 14;

    /// <summary>Renders the rows and returns PNG bytes.</summary>
    /// <param name="rows">The rows, top to bottom.</param>
    /// <param name="maxFrames">At most this many frames per row, evenly spaced (default 8).</param>
    /// <param name="cellHeight">Height of each frame on the sheet in pixels (default 112).</param>
    /// <param name="title">Optional title line at the top.</param>
    /// <exception cref="ArgumentException">No rows, or a clip that is not <c>[3, T, H, W]</c>.</exception>
    public static byte[] RenderPng(IReadOnlyList<ContactSheetRow> rows, int maxFrames = 8, int cellHeight = 112, string? title = null)
    {
        using var sheet = Render(rows, maxFrames, cellHeight, title);
        Cv2.ImEncode(".png", sheet, out byte[] png);
        return png;
    }

    /// <summary>Renders the rows and writes a PNG file; returns the sheet's width and height.</summary>
    /// <inheritdoc cref="RenderPng"/>
    public static (int Width, int Height) Write(string path, IReadOnlyList<ContactSheetRow> rows, int maxFrames = 8, int cellHeight = 112, string? title = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        using var sheet = Render(rows, maxFrames, cellHeight, title);
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        Cv2.ImEncode(".png", sheet, out byte[] png);
        File.WriteAllBytes(full, png);
        return (sheet.Cols, sheet.Rows);
    }

    /// <summary>Writes a contact sheet of both views of a <see cref="CvrlViews"/>, captioned with clips and parameters.</summary>
    public static (int Width, int Height) Write(string path, CvrlViews views, string? title = null, int maxFrames = 8, int cellHeight = 112)
    {
        ArgumentNullException.ThrowIfNull(views);
        return Write(path, Rows(views), maxFrames, cellHeight, title);
    }

    /// <summary>The two rows (view 1, view 2) describing a <see cref="CvrlViews"/>.</summary>
    public static IReadOnlyList<ContactSheetRow> Rows(CvrlViews views)
    {
        ArgumentNullException.ThrowIfNull(views);
        return
        [
            new($"view 1: {views.Clips.First} | {views.Plan1}", views.View1),
            new($"view 2: {views.Clips.Second} | {views.Plan2}", views.View2),
        ];
    }

    private static Mat Render(IReadOnlyList<ContactSheetRow> rows, int maxFrames, int cellHeight, string? title)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (rows.Count == 0)
        {
            throw new ArgumentException("A contact sheet needs at least one row.", nameof(rows));
        }

        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxFrames);
        ArgumentOutOfRangeException.ThrowIfLessThan(cellHeight, 8);
        OpenCvNative.EnsureLoaded();

        var frameSets = new List<Mat[]>();
        try
        {
            int width = 0;
            foreach (var row in rows)
            {
                var frames = ToBgrFrames(row.Clip, maxFrames, cellHeight);
                frameSets.Add(frames);
                width = Math.Max(width, frames.Sum(f => f.Cols + 2));
            }

            width = Math.Max(width, 320);
            int maxChars = Math.Max(20, (int)(width / 7.6));
            var captions = rows.Select(r => Wrap(r.Caption, maxChars)).ToList();
            var titleLines = title is null ? [] : Wrap(title, maxChars);
            int height = 4 + (titleLines.Count * LineHeight) + captions.Sum(c => (c.Count * LineHeight) + cellHeight + 6);

            var sheet = new Mat(height, width, MatType.CV_8UC3, Scalar.White);
            int y = 4;
            foreach (string line in titleLines)
            {
                y += LineHeight;
                Cv2.PutText(sheet, line, new OpenCvSharp.Point(4, y - 3), HersheyFonts.HersheySimplex, FontScale, Scalar.Black, 1, LineTypes.AntiAlias);
            }

            for (int r = 0; r < rows.Count; r++)
            {
                foreach (string line in captions[r])
                {
                    y += LineHeight;
                    Cv2.PutText(sheet, line, new OpenCvSharp.Point(4, y - 3), HersheyFonts.HersheySimplex, FontScale, new Scalar(60, 30, 10), 1, LineTypes.AntiAlias);
                }

                int x = 0;
                foreach (var frame in frameSets[r])
                {
                    using var cell = new Mat(sheet, new Rect(x, y + 2, frame.Cols, frame.Rows));
                    frame.CopyTo(cell);
                    x += frame.Cols + 2;
                }

                y += cellHeight + 6;
            }

            return sheet;
        }
        finally
        {
            foreach (var set in frameSets)
            {
                foreach (var m in set)
                {
                    m.Dispose();
                }
            }
        }
    }

    private static unsafe Mat[] ToBgrFrames(Tensor clip, int maxFrames, int cellHeight)
    {
        var shape = ClipShape.Of(clip);
        if (shape.Channels != 3)
        {
            throw new ArgumentException($"Contact sheets show RGB clips [3, T, H, W]; got {shape}.", nameof(clip));
        }

        using var scope = torch.NewDisposeScope();
        var bytes = (clip.dtype == ScalarType.Byte ? clip : ClipOps.ToByte(clip)).cpu().permute(1, 2, 3, 0).contiguous(); // [T, H, W, 3] RGB
        int count = Math.Min(maxFrames, shape.Frames);
        int cellWidth = Math.Max(1, (int)Math.Round(cellHeight * (double)shape.Width / shape.Height));
        var result = new Mat[count];
        long frameBytes = (long)shape.Height * shape.Width * 3;
        fixed (byte* p = bytes.bytes)
        {
            for (int i = 0; i < count; i++)
            {
                int t = count == 1 ? 0 : (int)Math.Round(i * (shape.Frames - 1) / (double)(count - 1));
                using var rgb = Mat.FromPixelData(shape.Height, shape.Width, MatType.CV_8UC3, (IntPtr)(p + (t * frameBytes)));
                using var bgr = new Mat();
                Cv2.CvtColor(rgb, bgr, ColorConversionCodes.RGB2BGR);
                var cell = new Mat();
                Cv2.Resize(bgr, cell, new OpenCvSharp.Size(cellWidth, cellHeight), 0, 0, InterpolationFlags.Area);
                result[i] = cell;
            }
        }

        return result;
    }

    private static List<string> Wrap(string text, int maxChars)
    {
        var lines = new List<string>();
        var line = new System.Text.StringBuilder();
        foreach (string word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.Length > 0 && line.Length + 1 + word.Length > maxChars)
            {
                lines.Add(line.ToString());
                line.Clear();
            }

            if (line.Length > 0)
            {
                line.Append(' ');
            }

            line.Append(word);
        }

        if (line.Length > 0 || lines.Count == 0)
        {
            lines.Add(line.ToString());
        }

        return lines;
    }
}
