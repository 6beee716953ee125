using System.Diagnostics;
using Cvrl.Embeddings;
using Cvrl.Video;
using Microsoft.Extensions.Logging;
using OpenCvSharp;

namespace Cvrl.Explore;

/// <summary>
/// The thumbnail pass of an explore report: one extra decoding pass that reads a few frames evenly spread over each
/// video at thumbnail size (the decoder scales them), writes each video's strip as <c>{thumbsFolder}/{index}.jpg</c> (a
/// folder of this report's own, named for the run, so an earlier report's strips are never overwritten), and keeps a
/// square tile of the middle frame for the projector's sprite when one is wanted.
/// </summary>
internal sealed class Thumbnails(EmbeddingSet set, string? root, ExploreOptions options, string folder, string thumbsFolder)
{
    /// <summary>Sprite tiles are at most this many pixels square; smaller for large sets so the sprite stays within 8192 pixels.</summary>
    public const int MaxTile = 64;

    private readonly byte[]?[] _tiles = new byte[set.Count][];
    private readonly bool[] _made = new bool[set.Count];
    private readonly List<SkippedVideo> _failures = [];

    /// <summary>Edge of a sprite tile for this set.</summary>
    public int Tile { get; } = Math.Min(MaxTile, 8192 / (int)Math.Ceiling(Math.Sqrt(set.Count)));

    /// <summary>Videos with a strip.</summary>
    public int Made => _made.Count(m => m);

    /// <summary>Videos without one, and why.</summary>
    public IReadOnlyList<SkippedVideo> Failures => _failures;

    /// <summary>The strip's file relative to the report, or null.</summary>
    public string? FileOf(int index) => _made[index] ? $"{thumbsFolder}/{index}.jpg" : null;

    /// <summary>The sprite tile (BGR, <see cref="Tile"/> square) of a video, or null.</summary>
    public byte[]? TileOf(int index) => _tiles[index];

    public void Make(ILogger logger, IProgress<StageProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(root);
        var watch = Stopwatch.StartNew();
        string thumbs = Path.Combine(folder, thumbsFolder);
        Directory.CreateDirectory(thumbs);

        // Items grouped by video, each video decoded once: a set of videos has one item per video, a set of windows
        // (keys video@start-end) one per window, whose strip spreads its frames over the window's span.
        var groups = new List<(string Video, List<(int Index, double Start, double End)> Items)>();
        var byVideo = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < set.Count; i++)
        {
            bool window = MomentKey.TryParse(set.Keys[i], out string video, out double start, out double end) && !File.Exists(Path.Combine(root, set.Keys[i]));
            string key = window ? video : set.Keys[i];
            if (!byVideo.TryGetValue(key, out int g))
            {
                byVideo[key] = g = groups.Count;
                groups.Add((key, []));
            }

            groups[g].Items.Add((i, window ? start : double.NaN, window ? end : double.NaN));
        }

        int done = 0;
        var results = OrderedParallel.Map(groups, (group, _) => Strips(Path.Combine(root, group.Video), group.Items), options.Workers, 2 * options.Workers, null, cancellationToken);
        foreach (var strips in results)
        {
            foreach (var (index, jpeg, tile, failure) in strips)
            {
                if (jpeg is not null)
                {
                    File.WriteAllBytes(Path.Combine(thumbs, $"{index}.jpg"), jpeg);
                    _made[index] = true;
                    _tiles[index] = tile;
                }
                else
                {
                    _failures.Add(failure!);
                    ExploreLog.NoThumbnail(logger, failure!.Path, failure.Reason);
                }

                progress?.Report(new StageProgress("thumbnails", ++done, set.Count, watch.Elapsed));
            }
        }

        ExploreLog.Thumbnails(logger, Made, _failures.Count, watch.Elapsed);
    }

    /// <summary>
    /// The strips of one video's items: a whole video's frames spread over its length, a window's over its span (NaN
    /// start: the whole video); windows are read in chunks of clips, each chunk in one forward pass of the decoder.
    /// </summary>
    private List<(int Index, byte[]? Jpeg, byte[]? Tile, SkippedVideo? Failure)> Strips(string path, List<(int Index, double Start, double End)> items)
    {
        const int chunk = 64;
        var strips = new List<(int, byte[]?, byte[]?, SkippedVideo?)>();
        try
        {
            if (!File.Exists(path))
            {
                return [.. items.Select(x => (x.Index, (byte[]?)null, (byte[]?)null, (SkippedVideo?)new SkippedVideo(path, "the file does not exist")))];
            }

            int frames = options.ThumbnailFrames;
            using var reader = VideoReader.Open(path, new VideoReaderOptions { ShortSide = options.ThumbnailHeight });
            double fps = double.IsFinite(reader.Info.FramesPerSecond) && reader.Info.FramesPerSecond > 0 ? reader.Info.FramesPerSecond : 25;
            for (int from = 0; from < items.Count; from += chunk)
            {
                var part = items.Skip(from).Take(chunk).ToList();
                var (clips, _) = reader.ReadPlanned(count => [.. part.Select(x => SpreadIn(count, frames, x.Start, x.End, fps))], reader.ReadClipBytes);
                for (int k = 0; k < part.Count; k++)
                {
                    strips.Add(Strip(clips[k], frames, reader.Info.OutputHeight, reader.Info.OutputWidth, part[k].Index));
                }
            }

            return strips;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or OpenCVException or ArgumentException)
        {
            var done = strips.Select(s => s.Item1).ToHashSet();
            return [.. strips, .. items.Where(x => !done.Contains(x.Index)).Select(x => (x.Index, (byte[]?)null, (byte[]?)null, (SkippedVideo?)new SkippedVideo(path, e.Message)))];
        }
    }

    private (int Index, byte[]? Jpeg, byte[]? Tile, SkippedVideo? Failure) Strip(byte[] clip, int frames, int h, int w, int index)
    {
        int cellWidth = Math.Min(w, (h * 16 / 9) + 1); // very wide frames are cropped to 16:9 around their centre
        int x0 = (w - cellWidth) / 2;
        using var strip = new Mat(h, cellWidth * frames, MatType.CV_8UC3);
        using var frame = new Mat();
        for (int f = 0; f < frames; f++)
        {
            PlanarRgb.FrameToBgr(clip, frames, f, h, w, frame);
            using var centre = new Mat(frame, new Rect(x0, 0, cellWidth, h));
            using var cell = new Mat(strip, new Rect(f * cellWidth, 0, cellWidth, h));
            centre.CopyTo(cell);
        }

        Cv2.ImEncode(".jpg", strip, out byte[] jpeg, new ImageEncodingParam(ImwriteFlags.JpegQuality, 85));
        byte[]? tile = options.Projector ? MakeTile(strip, frames / 2, cellWidth, h) : null;
        return (index, jpeg, tile, null);
    }

    /// <summary>Frames spread over a span in seconds (the whole video when <paramref name="start"/> is NaN), within the frame count.</summary>
    private static int[] SpreadIn(int count, int frames, double start, double end, double fps)
    {
        if (double.IsNaN(start))
        {
            return Spread(count, frames);
        }

        int first = Math.Clamp((int)Math.Round(start * fps), 0, count - 1);
        int last = Math.Clamp((int)Math.Round(end * fps), first + 1, count);
        return [.. Spread(last - first, frames).Select(f => Math.Min(count - 1, first + f))];
    }

    private byte[] MakeTile(Mat strip, int frame, int cellWidth, int height)
    {
        int side = Math.Min(cellWidth, height);
        using var cell = new Mat(strip, new Rect((frame * cellWidth) + ((cellWidth - side) / 2), (height - side) / 2, side, side));
        using var resized = new Mat();
        Cv2.Resize(cell, resized, new Size(Tile, Tile), 0, 0, InterpolationFlags.Area);
        resized.GetArray(out Vec3b[] pixels);
        var bytes = new byte[pixels.Length * 3];
        for (int i = 0; i < pixels.Length; i++)
        {
            bytes[3 * i] = pixels[i].Item0;
            bytes[(3 * i) + 1] = pixels[i].Item1;
            bytes[(3 * i) + 2] = pixels[i].Item2;
        }

        return bytes;
    }

    /// <summary>Frame indices at the centres of <paramref name="frames"/> equal parts of the video.</summary>
    internal static int[] Spread(int count, int frames) =>
        [.. Enumerable.Range(0, frames).Select(f => Math.Min(count - 1, (int)(((f + 0.5) * count) / frames)))];
}
