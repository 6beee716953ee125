using System.Text.Json.Nodes;
using Cvrl.Embeddings;
using Cvrl.Video;
using Microsoft.Extensions.Logging;

namespace Cvrl.Onnx;

/// <summary>
/// Embeds and searches videos with an exported encoder on ONNX Runtime, without TorchSharp: a video's embedding is the
/// mean of the L2-normalised features of its test views (<see cref="TestViews"/>). Everything but running the encoder is
/// <see cref="Embedder"/>'s, shared with Cvrl's <c>VideoEmbedder</c>, so both give the same vectors for the same encoder
/// and views; sets carry the encoder's fingerprint and can be searched by either. Without views in the options, the
/// views match the clips recorded in the model's metadata (<c>cvrl export</c> records the checkpoint's).
/// </summary>
/// <example>
/// <code>
/// using var encoder = OnnxEncoder.Load("encoder.onnx");
/// var embedder = new OnnxVideoEmbedder(encoder);
/// EmbeddingSet library = embedder.EmbedFolder("videos/");
/// foreach (var hit in embedder.Search(library, "query.mp4", k: 5))
///     Console.WriteLine($"{hit.Score:F3} {hit.Key}");
/// </code>
/// </example>
public sealed class OnnxVideoEmbedder : Embedder
{
    private readonly OnnxEncoder _encoder;

    /// <summary>Creates an embedder.</summary>
    /// <param name="encoder">The encoder (not owned).</param>
    /// <param name="options">Options (validated); null for the defaults.</param>
    /// <param name="logger">Optional logging (skipped videos are warnings).</param>
    /// <exception cref="ArgumentException">The views are smaller than the encoder accepts.</exception>
    public OnnxVideoEmbedder(OnnxEncoder encoder, EmbeddingOptions? options = null, ILogger? logger = null)
        : base(options, MatchingViews(encoder ?? throw new ArgumentNullException(nameof(encoder))), logger)
    {
        _encoder = encoder;
        var (t, h, w) = encoder.MinimumInput;
        if (Views.FramesPerClip < t || Views.CropSize < h || Views.CropSize < w)
        {
            throw new ArgumentException($"Views of {Views.FramesPerClip} x {Views.CropSize} x {Views.CropSize} are smaller than {encoder.Architecture} accepts ({t} x {h} x {w}).", nameof(options));
        }
    }

    /// <summary>The encoder's fingerprint, recorded in every set this embedder makes.</summary>
    public override string Fingerprint => _encoder.Fingerprint;

    /// <inheritdoc/>
    protected override string Runtime => "onnxruntime";

    /// <summary>The views that match the clips an exported model records (frames, stride, crop), or null when it records none.</summary>
    /// <param name="encoder">The encoder.</param>
    /// <returns>The views, or null.</returns>
    public static TestViewOptions? MatchingViews(OnnxEncoder encoder)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        if (encoder.ClipFrames is null && encoder.ClipStride is null && encoder.CropSize is null)
        {
            return null;
        }

        var defaults = new TestViewOptions();
        var views = TestViewOptions.ForClips(encoder.ClipFrames ?? defaults.FramesPerClip, encoder.ClipStride ?? defaults.Stride, encoder.CropSize ?? defaults.CropSize);
        return views with { ShortSide = encoder.ShortSide ?? views.ShortSide };
    }

    /// <inheritdoc/>
    protected override JsonNode? DescribeEncoder() => $"{_encoder.Architecture} (ONNX, {Path.GetFileName(_encoder.Path)})";

    /// <inheritdoc/>
    protected override float[] EncodeViews(ReadOnlySpan<byte> views, int count, bool normalize)
    {
        var batch = new float[views.Length];
        for (int p = 0; p < views.Length; p++)
        {
            batch[p] = views[p] / 255f;
        }

        int s = Views.CropSize;
        var features = _encoder.Features(batch, count, Views.FramesPerClip, s, s);
        if (!normalize)
        {
            return features;
        }

        int dim = features.Length / count;
        for (int j = 0; j < count; j++)
        {
            var row = features.AsSpan(j * dim, dim);
            double norm = 0;
            foreach (float x in row)
            {
                norm += (double)x * x;
            }

            float scale = (float)(1 / Math.Max(Math.Sqrt(norm), 1e-12));
            for (int d = 0; d < dim; d++)
            {
                row[d] *= scale;
            }
        }

        return features;
    }
}
