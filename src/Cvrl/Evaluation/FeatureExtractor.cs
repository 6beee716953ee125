using System.Diagnostics;
using Cvrl.Augment.Video;
using Cvrl.Data;
using Cvrl.Models;
using Cvrl.Video;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Evaluation;

/// <summary>Options for <see cref="FeatureExtractor"/>.</summary>
public sealed record FeatureExtractorOptions
{
    /// <summary>Which views to make (official evaluation views by default).</summary>
    public EvaluationViewOptions Views { get; init; } = new();

    /// <summary>Views per forward pass (views of consecutive videos are batched together). Default 8.</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>Decoding and augmentation threads. Default: one per core.</summary>
    public int Workers { get; init; } = Environment.ProcessorCount;

    /// <summary>L2-normalise each view's pooled feature (as the official linear evaluation does). Default true.</summary>
    public bool Normalize { get; init; } = true;

    /// <summary>Undecodable videos: leave out with a warning (listed in the results; default) or stop.</summary>
    public BadVideoPolicy BadVideos { get; init; } = BadVideoPolicy.Skip;

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Views, nameof(Views));
        Views.Validate();
        if (BatchSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchSize must be at least 1 view.");
        }

        if (Workers < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(Workers), Workers, "Workers must be at least 1.");
        }

        if (!Enum.IsDefined(BadVideos))
        {
            throw new ArgumentOutOfRangeException(nameof(BadVideos), BadVideos, "Unknown policy.");
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
        Views = new EvaluationViews(Options.Views);
        CheckViewSize(encoder, Views.TrainViewShape, "training");
        CheckViewSize(encoder, Views.TestViewShape, "test");
    }

    /// <summary>The options.</summary>
    public FeatureExtractorOptions Options { get; }

    /// <summary>The view maker.</summary>
    public EvaluationViews Views { get; }

    /// <summary>The features of every test view (<see cref="EvaluationViewOptions.TestViewsPerVideo"/> per video).</summary>
    /// <param name="data">The videos.</param>
    /// <param name="progress">Reports videos done.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    /// <exception cref="DatasetException">The data set is empty.</exception>
    /// <exception cref="VideoDecodeException">With <see cref="BadVideoPolicy.Fail"/>, the first bad video.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public VideoFeatures TestFeatures(VideoDataset data, IProgress<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default) =>
        TestFeatures(data, "test features", progress, cancellationToken);

    internal VideoFeatures TestFeatures(VideoDataset data, string stage, IProgress<EvaluationProgress>? progress, CancellationToken cancellationToken) =>
        Extract(data, Options.Views.TestViewsPerVideo, (item, _) => Views.TestViews(item.Path, item.Frames), stage, progress, cancellationToken);

    /// <summary>
    /// The features of <paramref name="viewsPerVideo"/> random training views per video: view k of video i is
    /// <see cref="EvaluationViews.TrainView"/> of (seed, <paramref name="firstEpoch"/> + k, i).
    /// </summary>
    /// <inheritdoc cref="TestFeatures(VideoDataset, IProgress{EvaluationProgress}?, CancellationToken)"/>
    /// <param name="data">The videos.</param>
    /// <param name="seed">Experiment seed.</param>
    /// <param name="firstEpoch">The epoch key of the first view.</param>
    /// <param name="viewsPerVideo">Views per video.</param>
    /// <param name="progress">Reports videos done.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    public VideoFeatures TrainFeatures(VideoDataset data, long seed, int firstEpoch, int viewsPerVideo, IProgress<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default)
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
    public int RecomputeBatchNormStatistics(VideoDataset data, IProgress<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default)
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

            Extract(data, Options.Views.TestViewsPerVideo, (item, _) => Views.TestViews(item.Path, item.Frames), "batch-norm statistics", progress, cancellationToken, trainingMode: true);
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
    /// set), indexed with this extractor's decoding options. With <see cref="BadVideoPolicy.Fail"/> a rejected video
    /// throws.
    /// </summary>
    internal VideoDataset Verified(VideoDataset data, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Count == 0)
        {
            throw new DatasetException($"The data set at '{data.Root}' holds no videos.");
        }

        var verified = data.Verify(new VideoIndexOptions { Workers = Options.Workers, Reader = Options.Views.Reader, UseCache = data.HasDataRoot }, null, _logger, cancellationToken);
        if (Options.BadVideos == BadVideoPolicy.Fail && verified.Rejected.Count > 0)
        {
            var bad = verified.Rejected[0];
            throw new VideoDecodeException(bad.Path, VideoDecodeFailure.NoDecodableFrames, bad.Problem ?? "no frame decodes");
        }

        return verified;
    }

    private VideoFeatures Extract(VideoDataset data, int viewsPerVideo, Func<VideoItem, int, Tensor> makeViews, string stage, IProgress<EvaluationProgress>? progress, CancellationToken cancellationToken, bool trainingMode = false)
    {
        data = Verified(data, cancellationToken);
        var watch = Stopwatch.StartNew();
        int n = data.Count;
        var values = new float[n][];
        var remaining = new int[n];
        var skipped = data.Rejected.Select(r => new SkippedVideo(r.Path, r.Problem ?? "no frame decodes")).ToList();
        var bad = new bool[n];
        var queue = new Queue<(int Video, int View, Tensor Tensor)>();
        int dim = 0;
        int done = 0;
        bool wasTraining = _encoder.training;
        _encoder.train(trainingMode);
        try
        {
            (Tensor? Views, Exception? Error) Make(VideoItem item, int index)
            {
                try
                {
                    return (makeViews(item, index), null);
                }
                catch (VideoDecodeException e) when (Options.BadVideos == BadVideoPolicy.Skip)
                {
                    return (null, e);
                }
            }

            void Flush(int count)
            {
                var taken = new List<(int Video, int View, Tensor Tensor)>(count);
                while (taken.Count < count && queue.Count > 0)
                {
                    taken.Add(queue.Dequeue());
                }

                using var scope = torch.NewDisposeScope();
                using var noGrad = torch.no_grad();
                var batch = torch.stack(taken.Select(t => t.Tensor)).to(_device);
                var features = Encode(_encoder, batch);
                if (Options.Normalize)
                {
                    features = nn.functional.normalize(features, p: 2, dim: 1);
                }

                var host = features.to(ScalarType.Float32).cpu().contiguous();
                int d = (int)host.shape[1];
                var flat = host.data<float>().ToArray();
                for (int k = 0; k < taken.Count; k++)
                {
                    var (video, view, tensor) = taken[k];
                    tensor.Dispose();
                    if (dim == 0)
                    {
                        dim = d;
                    }

                    values[video] ??= new float[viewsPerVideo * dim];
                    Array.Copy(flat, k * d, values[video], view * dim, dim);
                    if (--remaining[video] == 0)
                    {
                        done++;
                        progress?.Report(new EvaluationProgress(stage, done, n, watch.Elapsed));
                    }
                }
            }

            try
            {
                var results = OrderedParallel.Map(data.Items, Make, Options.Workers, Math.Max(2, 2 * Options.Workers), r => r.Views?.Dispose(), cancellationToken);
                int index = 0;
                foreach (var (views, error) in results)
                {
                    int i = index++;
                    if (views is null)
                    {
                        bad[i] = true;
                        skipped.Add(new SkippedVideo(data[i].Path, error!.Message));
                        Log.SkippedVideo(_logger, data[i].Path, error.Message);
                        done++;
                        progress?.Report(new EvaluationProgress(stage, done, n, watch.Elapsed));
                        continue;
                    }

                    if (views.dim() != 5 || views.shape[0] != viewsPerVideo)
                    {
                        views.Dispose();
                        throw new InvalidOperationException($"Expected {viewsPerVideo} views for '{data[i].Path}'.");
                    }

                    remaining[i] = viewsPerVideo;
                    for (int v = 0; v < viewsPerVideo; v++)
                    {
                        queue.Enqueue((i, v, views[v]));
                    }

                    views.Dispose();
                    while (queue.Count >= Options.BatchSize)
                    {
                        Flush(Options.BatchSize);
                    }
                }

                while (queue.Count > 0)
                {
                    Flush(Options.BatchSize);
                }
            }
            finally
            {
                while (queue.Count > 0)
                {
                    queue.Dequeue().Tensor.Dispose();
                }
            }
        }
        finally
        {
            _encoder.train(wasTraining);
        }

        if (bad.All(b => b))
        {
            throw new DatasetException($"None of the {n} videos at '{data.Root}' could be decoded (first: {skipped[0].Path}: {skipped[0].Reason}).");
        }

        var keep = Enumerable.Range(0, n).Where(i => !bad[i]).ToArray();
        return new VideoFeatures(
            [.. keep.Select(i => data[i].Path)],
            [.. keep.Select(i => data[i].Label)],
            data.Classes,
            viewsPerVideo,
            dim,
            [.. keep.Select(i => values[i])],
            Options.Normalize,
            skipped);
    }
}
