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

        int done = 0;
        var results = OrderedParallel.Map(set.Keys, (key, i) => Strip(Path.Combine(root, key), i), options.Workers, 2 * options.Workers, null, cancellationToken);
        foreach (var (index, jpeg, tile, failure) in results)
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

        ExploreLog.Thumbnails(logger, Made, _failures.Count, watch.Elapsed);
    }

    private (int Index, byte[]? Jpeg, byte[]? Tile, SkippedVideo? Failure) Strip(string path, int index)
    {
        try
        {
            if (!File.Exists(path))
            {
                return (index, null, null, new SkippedVideo(path, "the file does not exist"));
            }

            int frames = options.ThumbnailFrames;
            using var reader = VideoReader.Open(path, new VideoReaderOptions { ShortSide = options.ThumbnailHeight });
            var (clips, _) = reader.ReadPlanned(count => [Spread(count, frames)], reader.ReadClipBytes);
            int h = reader.Info.OutputHeight, w = reader.Info.OutputWidth;
            int cellWidth = Math.Min(w, (h * 16 / 9) + 1); // very wide frames are cropped to 16:9 around their centre
            int x0 = (w - cellWidth) / 2;
            using var strip = new Mat(h, cellWidth * frames, MatType.CV_8UC3);
            using var frame = new Mat();
            for (int f = 0; f < frames; f++)
            {
                PlanarRgb.FrameToBgr(clips[0], frames, f, h, w, frame);
                using var centre = new Mat(frame, new Rect(x0, 0, cellWidth, h));
                using var cell = new Mat(strip, new Rect(f * cellWidth, 0, cellWidth, h));
                centre.CopyTo(cell);
            }

            Cv2.ImEncode(".jpg", strip, out byte[] jpeg, new ImageEncodingParam(ImwriteFlags.JpegQuality, 85));
            byte[]? tile = options.Projector ? MakeTile(strip, frames / 2, cellWidth, h) : null;
            return (index, jpeg, tile, null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or OpenCVException or ArgumentException)
        {
            return (index, null, null, new SkippedVideo(path, e.Message));
        }
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
