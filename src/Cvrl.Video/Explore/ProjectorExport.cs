using System.Globalization;
using System.Text;
using Cvrl.Embeddings;
using OpenCvSharp;

namespace Cvrl.Explore;

/// <summary>
/// The files TensorBoard's embedding projector reads from a log folder: <c>tensors.tsv</c> (one vector per line, tab
/// separated), <c>metadata.tsv</c> (a header and one row per vector; a single column has no header), <c>sprite.png</c>
/// (one square thumbnail per vector, row by row) and <c>projector_config.pbtxt</c> naming them.
/// </summary>
internal static class ProjectorExport
{
    public static void Write(EmbeddingSet set, string folder, IReadOnlyList<string> classes, IReadOnlyList<int> labels, Thumbnails thumbs)
    {
        Directory.CreateDirectory(folder);
        AtomicFile.Write(Path.Combine(folder, "tensors.tsv"), stream =>
        {
            using var writer = new StreamWriter(stream, new UTF8Encoding(false), 1 << 16, leaveOpen: true);
            for (int i = 0; i < set.Count; i++)
            {
                var v = set[i];
                for (int d = 0; d < v.Length; d++)
                {
                    if (d > 0)
                    {
                        writer.Write('\t');
                    }

                    writer.Write(v[d].ToString("R", CultureInfo.InvariantCulture));
                }

                writer.Write('\n');
            }
        });

        AtomicFile.Write(Path.Combine(folder, "metadata.tsv"), stream =>
        {
            using var writer = new StreamWriter(stream, new UTF8Encoding(false), 1 << 16, leaveOpen: true);
            bool labelled = classes.Count > 0;
            if (labelled)
            {
                writer.Write("video\tclass\n");
            }

            for (int i = 0; i < set.Count; i++)
            {
                writer.Write(Clean(set.Keys[i]));
                if (labelled)
                {
                    writer.Write('\t');
                    writer.Write(labels[i] >= 0 ? Clean(classes[labels[i]]) : "(none)");
                }

                writer.Write('\n');
            }
        });

        bool sprite = Enumerable.Range(0, set.Count).Any(i => thumbs.TileOf(i) is not null);
        if (sprite)
        {
            int tile = thumbs.Tile;
            int across = (int)Math.Ceiling(Math.Sqrt(set.Count));
            int down = (int)Math.Ceiling(set.Count / (double)across);
            using var image = new Mat(down * tile, across * tile, MatType.CV_8UC3, new Scalar(255, 255, 255));
            for (int i = 0; i < set.Count; i++)
            {
                if (thumbs.TileOf(i) is not { } bytes)
                {
                    continue;
                }

                using var cell = Mat.FromPixelData(tile, tile, MatType.CV_8UC3, bytes);
                using var target = new Mat(image, new Rect(i % across * tile, i / across * tile, tile, tile));
                cell.CopyTo(target);
            }

            Cv2.ImEncode(".png", image, out byte[] png);
            AtomicFile.Write(Path.Combine(folder, "sprite.png"), s => s.Write(png));
        }

        var config = new StringBuilder()
            .Append("embeddings {\n")
            .Append("  tensor_name: \"cvrl\"\n")
            .Append("  tensor_path: \"tensors.tsv\"\n")
            .Append("  metadata_path: \"metadata.tsv\"\n");
        if (sprite)
        {
            config.Append("  sprite {\n")
                .Append("    image_path: \"sprite.png\"\n")
                .Append(CultureInfo.InvariantCulture, $"    single_image_dim: {thumbs.Tile}\n")
                .Append(CultureInfo.InvariantCulture, $"    single_image_dim: {thumbs.Tile}\n")
                .Append("  }\n");
        }

        config.Append("}\n");
        AtomicFile.Write(Path.Combine(folder, "projector_config.pbtxt"), s => s.Write(Encoding.UTF8.GetBytes(config.ToString())));
    }

    // Tabs and line breaks would shift the projector's columns and rows.
    private static string Clean(string text) => text.Replace('\t', ' ').Replace('\n', ' ').Replace('\r', ' ');
}
