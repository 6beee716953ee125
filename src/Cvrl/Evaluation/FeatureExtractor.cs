using Cvrl.Data;
using Cvrl.Embeddings;
using Cvrl.Models;
using Cvrl.Video;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Evaluation;

/// <summary>Options for <see cref="FeatureExtractor"/>: the views, plus batch size, workers and the bad-video policy.</summary>
public sealed record FeatureExtractorOptions : ViewRunOptions
{
    /// <summary>Which views to make (official evaluation views by default).</summary>
    public EvaluationViewOptions Views { get; init; } = new();

    /// <summary>L2-normalise each view's pooled feature (as the official linear evaluation does). Default true.</summary>
    public bool Normalize { get; init; } = true;

    /// <summary>
    /// The encoder's arithmetic while features are extracted (and while fine-tuning trains it): float32, bfloat16 or
    /// Auto (<see cref="Models.Precision"/>); only a <see cref="ResNet3d"/> computes in bfloat16. Default Float32.
    /// </summary>
    public Precision Precision { get; init; } = Precision.Float32;

    /// <inheritdoc/>
    public override void Validate()
    {
        ArgumentNullException.ThrowIfNull(Views, nameof(Views));
        Views.Validate();
        base.Validate();
        if (!Enum.IsDefined(Precision))
        {
            throw new ArgumentOutOfRangeException(nameof(Precision), Precision, "Unknown precision.");
        }
    }
}

/// <summary>
/// Runs a frozen encoder over evaluation views: videos are decoded and augmented on worker threads, views of consecutive
/// videos are batched, the encoder runs in inference mode (BatchNorm uses its running statistics; no gradients), and
/// each view's pooled feature is optionally L2-normalised. Results are in data-set order and do not depend on the
/// number of workers.
/// </summary>
/// <remarks>
/// The encoder is any module mapping a float batch <c>[N, 3, T, H, W]</c> to features <c>[N, D]</c>; for a
/// <see cref="ResNet3d"/> (backbone or classifier) its pooled features are used. The encoder's training flag is
/// restored afterwards. It runs on the device of its first parameter (CPU when it has none).
/// </remarks>
public sealed class FeatureExtractor
{
    private readonly nn.Module<Tensor, Tensor> _encoder;
    private readonly ILogger _logger;
    private readonly Device _device;

    /// <summary>Creates an extractor.</summary>
    /// <param name="encoder">The encoder (not owned).</param>
    /// <param name="options">Options (validated); null for the defaults.</param>
    /// <param name="logger">Optional logging (skipped videos).</param>
    /// <exception cref="ArgumentException">The views are smaller than the encoder accepts.</exception>
    public FeatureExtractor(nn.Module<Tensor, Tensor> encoder, FeatureExtractorOptions? options = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        Options = options ?? new FeatureExtractorOptions();
        Options.Validate();
        _encoder = encoder;
        _logger = logger ?? NullLogger.Instance;
        _device = DeviceOf(encoder);
        ComputeType = ComputeTypeFor(encoder, Options.Precision, _device, _logger);
        Views = new EvaluationViews(Options.Views);
        Embedder.RequireViewMemory(new TestViews(Options.Views.Test), Options.Workers, Options.BatchSize, "Extracting features", "options");
        CheckViewSize(encoder, Views.TrainViewShape, "training");
        CheckViewSize(encoder, Views.TestViewShape, "test");
    }

    /// <summary>The options.</summary>
    public FeatureExtractorOptions Options { get; }

    /// <summary>The view maker.</summary>
    public EvaluationViews Views { get; }

    /// <summary>The element type the encoder computes in while this extractor runs it (<see cref="FeatureExtractorOptions.Precision"/> resolved).</summary>
    public ScalarType ComputeType { get; }

    /// <summary>The features of every test view (<see cref="TestViewOptions.ViewsPerVideo"/> of <see cref="EvaluationViewOptions.Test"/> per video).</summary>
    /// <param name="data">The videos.</param>
    /// <param name="progress">Reports videos done.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    /// <exception cref="DatasetException">The data set is empty.</exception>
    /// <exception cref="VideoDecodeException">With <see cref="BadVideoPolicy.Fail"/>, the first bad video.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public VideoFeatures TestFeatures(VideoDataset data, IProgress<StageProgress>? progress = null, CancellationToken cancellationToken = default) =>
        TestFeatures(data, "test features", progress, cancellationToken);

    internal VideoFeatures TestFeatures(VideoDataset data, string stage, IProgress<StageProgress>? progress, CancellationToken cancellationToken) =>
        Extract(data, Options.Views.Test.ViewsPerVideo, (item, _) => Views.TestViews(item.Path, item.Frames), stage, progress, cancellationToken);

    /// <summary>
    /// The features of <paramref name="viewsPerVideo"/> random training views per video: view k of video i is
    /// <see cref="EvaluationViews.TrainView"/> of (seed, <paramref name="firstEpoch"/> + k, i).
    /// </summary>
    /// <inheritdoc cref="TestFeatures(VideoDataset, IProgress{StageProgress}?, CancellationToken)"/>
    /// <param name="data">The videos.</param>
    /// <param name="seed">Experiment seed.</param>
    /// <param name="firstEpoch">The epoch key of the first view.</param>
    /// <param name="viewsPerVideo">Views per video.</param>
    /// <param name="progress">Reports videos done.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    public VideoFeatures TrainFeatures(VideoDataset data, long seed, int firstEpoch, int viewsPerVideo, IProgress<StageProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(viewsPerVideo);
        return Extract(data, viewsPerVideo, (item, i) => Views.TrainViews(item.Path, seed, firstEpoch, viewsPerVideo, i, item.Frames), "train features", progress, cancellationToken);
    }

    /// <summary>
    /// Recomputes the statistics of the encoder's <see cref="CvrlBatchNorm"/> layers (every BatchNorm of Cvrl's networks;
    /// others are left alone) ("precise BN", as in PySlowFast) on the test views of
    /// <paramref name="data"/>: running means and variances are reset and replaced by their average over every batch of
    /// views, with the encoder in training mode and no gradients; weights are not touched. Use it before extracting
    /// features from an encoder whose statistics do not describe un-augmented clips: a network at its random
    /// initialisation (statistics 0 and 1) or one pre-trained on heavily colour-augmented views. Not part of the official
    /// protocol, which keeps the pre-trained statistics; apply it to every encoder you compare.
    /// </summary>
    /// <param name="data">The videos (usually the training split; labels are not used).</param>
    /// <param name="progress">Reports videos done.</param>
    /// <param name="cancellationToken">Stops the run (the statistics are then partial).</param>
    /// <returns>How many BatchNorm layers were recomputed.</returns>
    /// <exception cref="DatasetException">The data set is empty or none of its videos decodes.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public int RecomputeBatchNormStatistics(VideoDataset data, IProgress<StageProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var norms = _encoder.modules().OfType<CvrlBatchNorm>().ToList();
        var momenta = norms.Select(n => n.Momentum).ToList();
        try
        {
            foreach (var norm in norms)
            {
                norm.ResetRunningStatistics();
                norm.Momentum = null; // a cumulative average over all batches
            }

            Extract(data, Options.Views.Test.ViewsPerVideo, (item, _) => Views.TestViews(item.Path, item.Frames), "batch-norm statistics", progress, cancellationToken, trainingMode: true);
        }
        finally
        {
            for (int i = 0; i < norms.Count; i++)
            {
                norms[i].Momentum = momenta[i];
            }
        }

        return norms.Count;
    }

    /// <summary>
    /// The element type <paramref name="precision"/> means for <paramref name="encoder"/> on <paramref name="device"/>
    /// (logged); bfloat16 only for a <see cref="ResNet3d"/>.
    /// </summary>
    /// <exception cref="ArgumentException">bfloat16 asked for an encoder that is not a ResNet3d.</exception>
    internal static ScalarType ComputeTypeFor(nn.Module<Tensor, Tensor> encoder, Precision precision, Device device, ILogger logger)
    {
        var (type, why) = PrecisionPolicy.Resolve(precision, device);
        if (type != ScalarType.Float32 && encoder is not ResNet3d)
        {
            if (precision == Precision.Auto)
            {
                return ScalarType.Float32;
            }

            throw new ArgumentException($"Precision {precision} applies to Cvrl's ResNet3d encoders; {encoder.GetType().Name} computes in its own types.", nameof(precision));
        }

        Log.Precision(logger, why);
        return type;
    }

    /// <summary>Runs <paramref name="work"/> with the encoder computing in <paramref name="type"/> (a ResNet3d), then puts its compute type back.</summary>
    internal static T WithComputeType<T>(nn.Module<Tensor, Tensor> encoder, ScalarType type, Func<T> work)
    {
        if (encoder is not ResNet3d r || r.ComputeType == type)
        {
            return work();
        }

        var before = r.ComputeType;
        r.ComputeType = type;
        try
        {
            return work();
        }
        finally
        {
            r.ComputeType = before;
        }
    }

    /// <summary>The device the encoder runs on: that of its first parameter, or the CPU.</summary>
    internal static Device DeviceOf(nn.Module module) =>
        module.parameters().FirstOrDefault()?.device ?? torch.CPU;

    /// <summary>Pooled features of a batch: <see cref="ResNet3d.Features"/> for a ResNet3d, the module's output otherwise.</summary>
    internal static Tensor Encode(nn.Module<Tensor, Tensor> encoder, Tensor batch)
    {
        var features = encoder is ResNet3d r ? r.Features(batch) : encoder.call(batch);
        if (features.dim() != 2 || features.shape[0] != batch.shape[0])
        {
            var shape = string.Join(", ", features.shape);
            features.Dispose();
            throw new InvalidOperationException($"The encoder must map [N, C, T, H, W] to features [N, D]; it returned [{shape}] for a batch of {batch.shape[0]}.");
        }

        return features;
    }

    /// <summary>
    /// Runs the encoder on a float batch <c>[N, 3, T, H, W]</c> (moved to <paramref name="device"/>) without gradients
    /// and returns the pooled features, optionally L2-normalised, as N rows of float32 on the host.
    /// </summary>
    internal static float[] EncodeBatch(nn.Module<Tensor, Tensor> encoder, Tensor batch, Device device, bool normalize)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var features = Encode(encoder, batch.to(device));
        if (normalize)
        {
            features = nn.functional.normalize(features, p: 2, dim: 1);
        }

        return features.to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
    }

    internal static void CheckViewSize(nn.Module<Tensor, Tensor> encoder, long[] shape, string kind)
    {
        if (encoder is ResNet3d r)
        {
            var (t, h, w) = r.MinimumInput;
            if (shape[1] < t || shape[2] < h || shape[3] < w)
            {
                throw new ArgumentException($"The {kind} views ({shape[1]} x {shape[2]} x {shape[3]}, T x H x W) are smaller than the encoder accepts ({t} x {h} x {w}); use more frames or larger crops.", nameof(encoder));
            }
        }
    }

    /// <summary>
    /// <paramref name="data"/> with verified frame counts (<see cref="VideoDataset.Verify"/>; a no-op for a verified
    /// set), indexed with these decoding options. With <see cref="BadVideoPolicy.Fail"/> a rejected video throws.
    /// </summary>
    internal static VideoDataset Verified(VideoDataset data, int workers, VideoReaderOptions reader, BadVideoPolicy policy, ILogger logger, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Count == 0)
        {
            throw new DatasetException($"The data set at '{data.Root}' holds no videos.");
        }

        var verified = data.Verify(new VideoIndexOptions { Workers = workers, Reader = reader, UseCache = data.HasDataRoot }, null, logger, cancellationToken);
        if (policy == BadVideoPolicy.Fail && verified.Rejected.Count > 0)
        {
            var bad = verified.Rejected[0];
            throw new VideoDecodeException(bad.Path, bad.Failure ?? VideoDecodeFailure.NoDecodableFrames, bad.Problem ?? "no frame decodes");
        }

        return verified;
    }

    /// <summary>The videos a verified data set left out, as skipped videos.</summary>
    internal static IReadOnlyList<SkippedVideo> Rejected(VideoDataset verified) =>
        [.. verified.Rejected.Select(r => new SkippedVideo(r.Path, r.Problem ?? "no frame decodes"))];

    /// <summary><paramref name="data"/> verified with this extractor's options.</summary>
    internal VideoDataset Verified(VideoDataset data, CancellationToken cancellationToken) =>
        Verified(data, Options.Workers, Options.Views.Test.Reader, Options.BadVideos, _logger, cancellationToken);

    /// <summary>
    /// Runs the encoder over <paramref name="viewsPerVideo"/> views of every video of <paramref name="data"/> (made on
    /// worker threads by <paramref name="makeViews"/>, batched across videos) in inference or, for precise BN, training
    /// mode, and collects each video's feature rows.
    /// </summary>
    private VideoFeatures Extract(VideoDataset data, int viewsPerVideo, Func<VideoItem, int, Tensor> makeViews, string stage, IProgress<StageProgress>? progress, CancellationToken cancellationToken, bool trainingMode = false)
    {
        data = Verified(data, cancellationToken);
        var run = new ViewRun<Tensor>
        {
            Videos = [.. data.Items.Select(i => i.Path)],
            ViewsPerVideo = viewsPerVideo,
            Decode = i => CheckedViews(makeViews(data[i], i), viewsPerVideo, data[i].Path),
            Release = views => views.Dispose(),
            BatchSize = Options.BatchSize,
            Workers = Options.Workers,
            BadVideos = Options.BadVideos,
            Logger = _logger,
        };
        bool wasTraining = _encoder.training;
        _encoder.train(trainingMode);
        EncodedVideos encoded;
        try
        {
            encoded = WithComputeType(_encoder, ComputeType, () => run.Encode(EncodeViews, stage, $"'{data.Root}'", Rejected(data), progress, cancellationToken));
        }
        finally
        {
            _encoder.train(wasTraining);
        }

        return new VideoFeatures(
            [.. encoded.Kept.Select(i => data[i].Path)],
            [.. encoded.Kept.Select(i => data[i].Label)],
            data.Classes,
            viewsPerVideo,
            encoded.Dim,
            [.. Enumerable.Range(0, encoded.Kept.Count).Select(encoded.Values)],
            Options.Normalize,
            encoded.Skipped);
    }

    /// <summary>Encodes one batch of views: the selected views of their videos, stacked.</summary>
    private float[] EncodeViews(IReadOnlyList<BatchedView<Tensor>> batch)
    {
        using var scope = torch.NewDisposeScope();
        var stacked = torch.stack(batch.Select(b => b.Views[b.View]));
        return EncodeBatch(_encoder, stacked, _device, Options.Normalize);
    }

    private static Tensor CheckedViews(Tensor views, int viewsPerVideo, string path)
    {
        if (views.dim() != 5 || views.shape[0] != viewsPerVideo)
        {
            views.Dispose();
            throw new InvalidOperationException($"Expected {viewsPerVideo} views for '{path}'.");
        }

        return views;
    }
}
