using System.Text.Json.Nodes;
using Cvrl.Data;
using Cvrl.Evaluation;
using Cvrl.Models;
using Cvrl.Video;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Embeddings;

/// <summary>
/// Turns videos into embeddings with a (pre-trained or any) encoder on TorchSharp and searches them: what most
/// applications call after pre-training. A video's embedding is the mean of the L2-normalised pooled features of its
/// test views; without views in the options they match the clips the encoder was trained on
/// (<see cref="ResNet3d.TrainedClips"/>, set by training and by loading a checkpoint), else the
/// <see cref="TestViewOptions"/> defaults. Embeds one video, a list, a folder or a data set (decoding in parallel,
/// results in input order and independent of the number of workers), through the same <see cref="Embedder"/> as the
/// ONNX Runtime embedder; videos are verified with the video index first (real frame counts, exact seeking).
/// </summary>
/// <example>
/// <code>
/// using var encoder = CvrlCheckpoint.LoadEncoder("runs/a/checkpoints/checkpoint-0000000500.cvrl");
/// var embedder = new VideoEmbedder(encoder);             // views: the checkpoint's training clips
/// EmbeddingSet library = embedder.EmbedFolder("videos/");
/// library.Save("videos.cvrlemb");
/// foreach (var hit in embedder.Search(library, "query.mp4", k: 5))
///     Console.WriteLine($"{hit.Score:F3} {hit.Key}");
/// </code>
/// </example>
public sealed class VideoEmbedder : Embedder
{
    private readonly nn.Module<Tensor, Tensor> _encoder;
    private readonly Device _device;
    private string? _fingerprint;

    /// <summary>Creates an embedder.</summary>
    /// <param name="encoder">The encoder (not owned, not modified; run in inference mode on its own device).</param>
    /// <param name="options">Options (validated); null for the defaults.</param>
    /// <param name="logger">Optional logging.</param>
    /// <param name="precision">
    /// The encoder's arithmetic while embedding (<see cref="Precision"/>; bfloat16 only for a <see cref="ResNet3d"/>).
    /// bfloat16 embeddings agree with float32's to a cosine of 0.999 or more; compare sets made in one precision.
    /// </param>
    /// <exception cref="ArgumentException">The views are smaller than the encoder accepts, or bfloat16 was asked for an encoder that is not a ResNet3d.</exception>
    public VideoEmbedder(nn.Module<Tensor, Tensor> encoder, EmbeddingOptions? options = null, ILogger? logger = null, Precision precision = Precision.Float32)
        : base(options, (encoder ?? throw new ArgumentNullException(nameof(encoder))) is ResNet3d { TrainedClips: { } clips } ? clips.MatchingTestViews() : null, logger)
    {
        _encoder = encoder;
        _device = FeatureExtractor.DeviceOf(encoder);
        FeatureExtractor.CheckViewSize(encoder, [3, Views.FramesPerClip, Views.CropSize, Views.CropSize], "test");
        ComputeType = FeatureExtractor.ComputeTypeFor(encoder, precision, _device, Logger);
    }

    /// <summary>The element type the encoder computes in while embedding (the precision asked for, resolved for the device).</summary>
    public ScalarType ComputeType { get; }

    /// <summary>
    /// Identifies the encoder: "sha256:" and the first 16 hex digits of a hash over its state (parameter and buffer
    /// names, shapes, types and values). Two encoders with the same fingerprint give the same embeddings.
    /// </summary>
    public override string Fingerprint => _fingerprint ??= Cvrl.Models.Weights.ModelWeights.Fingerprint(_encoder);

    /// <inheritdoc/>
    protected override string Runtime => "torchsharp";

    /// <summary>Embeds every video found in <paramref name="folder"/> (as <see cref="VideoDataset.FromFolder"/> finds them, class folders recorded); keys are paths relative to it.</summary>
    /// <inheritdoc/>
    public override EmbeddingSet EmbedFolder(string folder, bool recursive = true, IProgress<StageProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        var data = File.Exists(folder) ? VideoDataset.FromPath(folder) : VideoDataset.FromFolder(folder, recursive: recursive);
        return Embed(data, progress, cancellationToken);
    }

    /// <summary>Embeds the videos of a data set (its classes are recorded in the metadata); keys are paths relative to its root.</summary>
    /// <param name="data">The videos.</param>
    /// <param name="progress">Reports videos done.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    /// <returns>The set.</returns>
    /// <exception cref="DatasetException">It holds no videos, or none could be decoded.</exception>
    /// <exception cref="VideoDecodeException">A video cannot be decoded and <see cref="ViewRunOptions.BadVideos"/> is <see cref="BadVideoPolicy.Fail"/>.</exception>
    public EmbeddingSet Embed(VideoDataset data, IProgress<StageProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        var verified = FeatureExtractor.Verified(data, Options.Workers, Views.Reader, Options.BadVideos, Logger, cancellationToken);
        var inputs = verified.Items.Select(item => new EmbeddingInput(item.Path, VideoFiles.RelativeKey(verified.Root, item.Path), item.Frames)).ToList();
        return EmbedVerified(inputs, FeatureExtractor.Rejected(verified), data.Classes, $"'{data.Root}'", progress, cancellationToken, verified.Root);
    }

    /// <inheritdoc/>
    protected override (IReadOnlyList<EmbeddingInput> Kept, IReadOnlyList<SkippedVideo> Rejected) Verify(IReadOnlyList<EmbeddingInput> videos, string? root, CancellationToken cancellationToken)
    {
        var index = VideoIndex.Build(videos.Select(v => v.Path), new VideoIndexOptions { Workers = Options.Workers, Reader = Views.Reader, UseCache = root is not null }, root, null, Logger, cancellationToken);
        var kept = new List<EmbeddingInput>(videos.Count);
        var rejected = new List<SkippedVideo>();
        for (int i = 0; i < videos.Count; i++)
        {
            var entry = index.Videos[i];
            if (entry.IsUsable)
            {
                kept.Add(videos[i] with { Frames = entry.Frames });
            }
            else
            {
                rejected.Add(new SkippedVideo(entry.Path, entry.Problem ?? "no frame decodes"));
            }
        }

        return (kept, rejected);
    }

    /// <inheritdoc/>
    protected override JsonNode? DescribeEncoder()
    {
        var node = EvaluationData.Describe(_encoder);
        node["computeType"] = ComputeType.ToString();
        return node;
    }

    /// <inheritdoc/>
    protected override float[] EncodeViews(ReadOnlySpan<byte> views, int count, bool normalize)
    {
        using var scope = torch.NewDisposeScope();
        using var bytes = torch.empty([count, 3, Views.FramesPerClip, Views.CropSize, Views.CropSize], ScalarType.Byte);
        views.CopyTo(bytes.bytes);
        var batch = bytes.to_type(ScalarType.Float32).div_(TorchScalars.Byte255);
        bool wasTraining = _encoder.training;
        _encoder.eval();
        try
        {
            return FeatureExtractor.WithComputeType(_encoder, ComputeType, () => FeatureExtractor.EncodeBatch(_encoder, batch, _device, normalize));
        }
        finally
        {
            _encoder.train(wasTraining);
        }
    }
}
