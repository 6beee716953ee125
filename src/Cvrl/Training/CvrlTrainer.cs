using System.Diagnostics;
using Cvrl.Augment;
using Cvrl.Data;
using Cvrl.Losses;
using Cvrl.Models;
using Cvrl.Optim;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Cvrl.Training;

/// <summary>
/// CVRL pre-training: an encoder (<see cref="ResNet3d"/> in backbone mode), CVRL's projection head, the NT-Xent loss,
/// SGD (or LARS) with warm-up and cosine decay, a parallel loader, checkpoints with exact resume, metrics and logging,
/// behind one options record.
/// </summary>
/// <remarks>
/// <para>
/// Each step: two views of every video in the batch (decoded and augmented on worker threads), the encoder and head
/// run on <c>[view 1; view 2]</c> together (so BatchNorm sees both views, as in the official code), NT-Xent over the
/// 2N clips, backward, one optimizer step. One dispose scope per step; only scalars leave it.
/// </para>
/// <para>
/// <see cref="Fit"/> is synchronous (compute-bound; TorchSharp's dispose scopes are per thread): call
/// <see cref="FitAsync"/> or wrap it in <c>Task.Run</c> to keep a UI responsive. Cancellation finishes the current step,
/// writes a checkpoint and returns a summary saying so. The encoder is not owned by the trainer; the head is.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// var videos = VideoDataset.FromFolder("clips/");
/// using var encoder = ResNet3d.R3d50();
/// using var trainer = new CvrlTrainer(encoder, new CvrlTrainerOptions { Epochs = 100, BatchSize = 64, CheckpointDirectory = "runs/a" });
/// TrainingSummary run = trainer.Fit(videos, new Progress&lt;TrainingProgress&gt;(p => Console.WriteLine(p.Loss)));
/// </code>
/// </example>
public sealed class CvrlTrainer : IDisposable
{
    private readonly ResNet3d _encoder;
    private readonly ILogger _logger;
    private readonly NtXentLoss _loss;
    private readonly CvrlOptimizer _optimizer;
    private readonly Device _device;
    private (string Fingerprint, int Videos)? _dataFingerprint;
    private bool _disposed;

    /// <summary>Creates a trainer. Validates the options and the device before allocating anything else.</summary>
    /// <param name="encoder">The encoder, in backbone mode (no classifier). Moved to the options' device.</param>
    /// <param name="options">The options.</param>
    /// <param name="logger">Optional structured logging.</param>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    /// <exception cref="ArgumentException">The encoder is a classifier, or an option is malformed.</exception>
    /// <exception cref="InvalidOperationException">CUDA was asked for and is not available.</exception>
    public CvrlTrainer(ResNet3d encoder, CvrlTrainerOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (encoder.IsClassifier)
        {
            throw new ArgumentException("Pre-train the encoder in backbone mode (ResNet3dOptions.NumClasses = null); add a classifier afterwards.", nameof(encoder));
        }

        Options = options;
        _logger = logger ?? NullLogger.Instance;
        _device = DeviceSpec.Resolve(options.Device);
        _encoder = encoder;
        _encoder.to(_device);
        torch.manual_seed(options.Seed);
        Head = new ProjectionHead(encoder.FeatureDim, options.Head);
        Head.to(_device);
        _loss = new NtXentLoss(options.Temperature, options.LossReduction);
        var parameters = _encoder.named_parameters().Select(p => ("encoder." + p.name, p.parameter))
            .Concat(Head.named_parameters().Select(p => ("head." + p.name, p.parameter)));
        _optimizer = CvrlOptimizer.Create(parameters, options.Optimizer);
        Generator = new CvrlViewGenerator(options.Views);
    }

    /// <summary>The options.</summary>
    public CvrlTrainerOptions Options { get; }

    /// <summary>The encoder being trained.</summary>
    public ResNet3d Encoder => _encoder;

    /// <summary>The projection head (owned by the trainer; saved in checkpoints).</summary>
    public ProjectionHead Head { get; }

    /// <summary>Produces the two views of each video.</summary>
    public CvrlViewGenerator Generator { get; }

    /// <summary>Global steps done so far (including steps restored from a checkpoint).</summary>
    public long Step { get; private set; }

    /// <summary>Runs <see cref="Fit"/> on a worker thread.</summary>
    public Task<TrainingSummary> FitAsync(VideoDataset data, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default) =>
        Task.Run(() => Fit(data, progress, cancellationToken), CancellationToken.None);

    /// <summary>
    /// Pre-trains on <paramref name="data"/> (labels, if any, are ignored), resuming from the newest checkpoint in
    /// <see cref="CvrlTrainerOptions.CheckpointDirectory"/> when there is one. An unverified data set is verified first
    /// (<see cref="VideoDataset.Verify"/>: real frame counts, bad videos left out and named in the log), so clips are
    /// always planned from the frames that decode.
    /// </summary>
    /// <param name="data">The videos.</param>
    /// <param name="progress">Receives a report every <see cref="CvrlTrainerOptions.LogEverySteps"/> steps.</param>
    /// <param name="cancellationToken">Stops after the current step (a checkpoint is written).</param>
    /// <returns>What happened.</returns>
    /// <exception cref="ArgumentException">The data set holds fewer videos than one batch.</exception>
    /// <exception cref="InvalidDataException">The checkpoint to resume from belongs to another architecture.</exception>
    /// <exception cref="ExperimentMismatchException">The checkpoint to resume from was written with other options that change the result, or on other data.</exception>
    /// <exception cref="DatasetException">None of the videos decodes.</exception>
    /// <exception cref="TrainingDivergedException">The loss became NaN or infinite.</exception>
    /// <exception cref="Augment.Video.VideoDecodeException">With <see cref="BadVideoPolicy.Fail"/>, a bad video.</exception>
    public TrainingSummary Fit(VideoDataset data, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(data);
        data = data.Verify(new VideoIndexOptions { Workers = Options.Workers, Reader = Options.Views.Reader }, null, _logger, cancellationToken);
        _dataFingerprint = (data.Fingerprint, data.Count);
        var loader = new PretrainLoader(data, Generator, new LoaderOptions
        {
            BatchSize = Options.BatchSize,
            Workers = Options.Workers,
            PrefetchBatches = Options.PrefetchBatches,
            Seed = Options.Seed,
            BadVideos = Options.BadVideos,
        }, _logger);
        int stepsPerEpoch = loader.PlannedBatchesPerEpoch;
        long totalSteps = (long)stepsPerEpoch * Options.Epochs;
        var schedule = new WarmupCosineSchedule(Options.EffectiveLearningRate, (long)Math.Round(Options.WarmupFraction * totalSteps), totalSteps);
        var store = Options.CheckpointDirectory is null ? null : new CheckpointStore(Options.CheckpointDirectory, Options.KeepCheckpoints);

        int epoch = 0;
        int batchIndex = 0;
        int position = 0;
        long resumedFrom = 0;
        string? lastCheckpoint = null;
        if (store is not null && Options.Resume && store.LoadNewest(_logger) is { } found)
        {
            using (found.Tensors)
            {
                Restore(found.State, found.Tensors, found.Path);
            }

            (epoch, batchIndex, position, resumedFrom, lastCheckpoint) = (found.State.Epoch, found.State.BatchIndex, found.State.Position, found.State.Step, found.Path);
            Log.Resumed(_logger, found.Path, Step, epoch, batchIndex);
        }

        Log.Start(_logger, data.Count, Options.Epochs, totalSteps, Options.BatchSize, Options.Device, Options.EffectiveLearningRate);
        using var metrics = Options.MetricsFile is null ? null : new MetricsWriter(Options.MetricsFile, append: resumedFrom > 0);
        var board = Options.TensorBoardDirectory is null ? null : torch.utils.tensorboard.SummaryWriter(Options.TensorBoardDirectory, createRunName: false);
        var guard = Options.NativeHeapGrowthLimit is double limit ? new NativeHeapGuard(limit, warmupSteps: 3) : null;
        var cache = Options.GradientCacheChunk is int chunk && chunk < Options.BatchSize ? new GradientCache(chunk) : null;

        var losses = new List<double>();
        var run = Stopwatch.StartNew();
        var window = Stopwatch.StartNew();
        double waitSeconds = 0;
        long clipsInWindow = 0;
        var phases = new double[3];
        int stepsInWindow = 0;
        bool cancelled = false;
        int epochsCompleted = epoch;
        (double Loss, double Accuracy, double Entropy, double Lr) last = (double.NaN, double.NaN, double.NaN, double.NaN);

        _encoder.train();
        Head.train();
        try
        {
            var epochWatch = Stopwatch.StartNew();
            using var batches = loader.ReadEpochs(epoch, Math.Max(0, Options.Epochs - epoch), position, batchIndex, cancellationToken).GetEnumerator();
            while (true)
            {
                var wait = Stopwatch.StartNew();
                bool more;
                try
                {
                    more = batches.MoveNext();
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    cancelled = true;
                    break;
                }

                waitSeconds += wait.Elapsed.TotalSeconds;
                if (!more)
                {
                    break;
                }

                using var batch = batches.Current;
                while (batch.Epoch > epoch)
                {
                    // The previous epoch ended (its last batches may have been dropped or skipped).
                    FinishEpoch(store, ref epoch, ref lastCheckpoint, epochWatch, last);
                    epochsCompleted = epoch;
                    epochWatch.Restart();
                }

                double lr = schedule.At(Step);
                var (loss, accuracy, entropy) = TrainStep(batch, lr, cache, lastCheckpoint, phases);
                Step++;
                stepsInWindow++;
                losses.Add(loss);
                last = (loss, accuracy, entropy, lr);
                clipsInWindow += 2L * batch.Count;
                (batchIndex, position) = (batch.BatchIndex + 1, batch.EndPosition);
                if (guard?.AfterStep() == true)
                {
                    Log.HeapTrimmed(_logger, Step, NativeHeap.ResidentBytes() / 1048576.0);
                }

                bool epochEnd = batchIndex >= stepsPerEpoch;
                if (Step % Options.LogEverySteps == 0 || epochEnd)
                {
                    double seconds = Math.Max(window.Elapsed.TotalSeconds, 1e-9);
                    double n = Math.Max(1, stepsInWindow);
                    var timings = new StepTimings(waitSeconds / n, phases[0] / n, phases[1] / n, phases[2] / n,
                        Math.Max(0, (seconds - waitSeconds - phases.Sum()) / n));
                    var report = new TrainingProgress(epoch, Step, batchIndex, stepsPerEpoch, totalSteps, loss, accuracy, entropy, lr,
                        clipsInWindow / seconds, Math.Min(1, waitSeconds / seconds), run.Elapsed,
                        TimeSpan.FromSeconds(run.Elapsed.TotalSeconds / Math.Max(1, Step - resumedFrom) * Math.Max(0, totalSteps - Step)),
                        timings);
                    Report(report, progress, metrics, board);
                    window.Restart();
                    waitSeconds = 0;
                    clipsInWindow = 0;
                    stepsInWindow = 0;
                    Array.Clear(phases);
                }

                if (store is not null && Step % Options.CheckpointEverySteps == 0 && !epochEnd)
                {
                    lastCheckpoint = WriteCheckpoint(store, epoch, batchIndex, position);
                }

                if (epochEnd)
                {
                    FinishEpoch(store, ref epoch, ref lastCheckpoint, epochWatch, last);
                    epochsCompleted = epoch;
                    (batchIndex, position) = (0, 0);
                    epochWatch.Restart();
                }

                if (cancellationToken.IsCancellationRequested)
                {
                    cancelled = true;
                    break;
                }
            }

            if (!cancelled)
            {
                // Epochs whose last batches were all dropped or skipped still end.
                while (epoch < Options.Epochs)
                {
                    FinishEpoch(store, ref epoch, ref lastCheckpoint, epochWatch, last);
                    epochsCompleted = epoch;
                    (batchIndex, position) = (0, 0);
                }
            }
            else
            {
                Log.Cancelled(_logger, Step);
                if (store is not null)
                {
                    lastCheckpoint = WriteCheckpoint(store, epoch, batchIndex, position);
                }
            }
        }
        finally
        {
            _encoder.train();
            Head.train();
        }

        return new TrainingSummary
        {
            Outcome = cancelled ? TrainingOutcome.Cancelled : TrainingOutcome.Completed,
            Steps = Step,
            StepsThisRun = Step - resumedFrom,
            ResumedFromStep = resumedFrom,
            EpochsCompleted = epochsCompleted,
            Losses = losses,
            BadVideos = loader.BadVideos.Count + data.Rejected.Count,
            Checkpoint = lastCheckpoint,
            Elapsed = run.Elapsed,
        };
    }

    /// <summary>Logs the end of <paramref name="epoch"/>, writes the epoch-end checkpoint and moves to the next epoch.</summary>
    private void FinishEpoch(CheckpointStore? store, ref int epoch, ref string? lastCheckpoint, Stopwatch epochWatch, (double Loss, double Accuracy, double Entropy, double Lr) last)
    {
        Log.EpochDone(_logger, epoch, last.Loss, last.Accuracy, epochWatch.Elapsed);
        epoch++;
        if (store is not null)
        {
            lastCheckpoint = WriteCheckpoint(store, epoch, 0, 0);
        }
    }

    /// <summary>Releases the head and the optimizer state (not the encoder).</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Head.Dispose();
        _optimizer.Dispose();
    }

    /// <summary>One optimisation step on a batch; returns the loss, accuracy and entropy.</summary>
    private (double Loss, double Accuracy, double Entropy) TrainStep(ViewBatch batch, double lr, GradientCache? cache, string? lastCheckpoint, double[] phases)
    {
        var watch = Stopwatch.StartNew();
        using var scope = torch.NewDisposeScope();
        var view1 = batch.View1.to(_device);
        var view2 = batch.View2.to(_device);
        _optimizer.ZeroGrad();
        NtXentOutput output;
        if (cache is not null)
        {
            output = cache.ForwardBackward(Embed, view1, view2, _loss, [_encoder, Head]);
        }
        else
        {
            long n = view1.shape[0];
            var z = Embed(torch.cat([view1, view2], 0));
            output = _loss.Compute(z.narrow(0, 0, n), z.narrow(0, n, n));
        }

        double loss = output.Loss.item<float>();
        if (!double.IsFinite(loss))
        {
            Log.Diverged(_logger, Step, loss);
            throw new TrainingDivergedException(Step, loss, lr, lastCheckpoint);
        }

        double accuracy = output.Accuracy.item<float>();
        double entropy = output.Entropy.item<float>();
        phases[0] += watch.Elapsed.TotalSeconds;
        watch.Restart();
        if (cache is null)
        {
            output.Loss.backward();
        }

        phases[1] += watch.Elapsed.TotalSeconds;
        watch.Restart();
        _optimizer.LearningRate = lr;
        _optimizer.Step();
        phases[2] += watch.Elapsed.TotalSeconds;
        return (loss, accuracy, entropy);
    }

    private Tensor Embed(Tensor clips) => Head.call(_encoder.call(clips));

    private void Report(TrainingProgress p, IProgress<TrainingProgress>? progress, MetricsWriter? metrics, SummaryWriter? board)
    {
        Log.Step(_logger, p.Step, p.Loss, p.ContrastiveAccuracy, p.LearningRate, p.ClipsPerSecond, p.DataWaitShare);
        metrics?.Write(p);
        if (board is not null)
        {
            int step = (int)Math.Min(int.MaxValue, p.Step);
            board.add_scalar("train/loss", (float)p.Loss, step);
            board.add_scalar("train/contrastive_accuracy", (float)p.ContrastiveAccuracy, step);
            board.add_scalar("train/entropy", (float)p.Entropy, step);
            board.add_scalar("train/learning_rate", (float)p.LearningRate, step);
            board.add_scalar("train/clips_per_second", (float)p.ClipsPerSecond, step);
        }

        progress?.Report(p);
    }

    private string WriteCheckpoint(CheckpointStore store, int epoch, int batchIndex, int position)
    {
        var state = new CheckpointState
        {
            Step = Step,
            Epoch = epoch,
            BatchIndex = batchIndex,
            Position = position,
            Encoder = _encoder.Options,
            Trainer = Options,
            DataFingerprint = _dataFingerprint?.Fingerprint,
            DataVideos = _dataFingerprint?.Videos,
        };
        string path = store.Write(state,
        [
            ("encoder.", _encoder.state_dict()),
            ("head.", Head.state_dict()),
            ("optimizer.", _optimizer.State()),
        ]);
        Log.Checkpoint(_logger, path);
        return path;
    }

    private void Restore(CheckpointState state, IReadOnlyDictionary<string, Tensor> tensors, string path)
    {
        if (!state.Encoder.Equals(_encoder.Options))
        {
            throw new InvalidDataException(
                $"Checkpoint '{path}' belongs to another architecture (depth {state.Encoder.Depth}, width {state.Encoder.WidthMultiplier}) than this encoder (depth {_encoder.Options.Depth}, width {_encoder.Options.WidthMultiplier}); use another CheckpointDirectory or Resume = false.");
        }

        var differences = ExperimentMismatchException.Compare(state.Trainer, Options).ToList();
        if (state.DataFingerprint is not null && _dataFingerprint is { } now && state.DataFingerprint != now.Fingerprint)
        {
            differences.Add($"data set: {state.DataVideos} videos (fingerprint {state.DataFingerprint[..12]}) in the checkpoint, {now.Videos} videos (fingerprint {now.Fingerprint[..12]}) now");
        }

        if (differences.Count > 0)
        {
            throw new ExperimentMismatchException(path, differences);
        }

        var sd = (IReadOnlyDictionary<string, Tensor>)tensors;
        Models.Weights.ModelWeights.LoadStateDict(_encoder, Prefixed(sd, "encoder."), strict: true, origin: path);
        Models.Weights.ModelWeights.LoadStateDict(Head, Prefixed(sd, "head."), strict: true, origin: path);
        _optimizer.LoadState(Prefixed(sd, "optimizer."));
        Step = state.Step;
    }

    private static Dictionary<string, Tensor> Prefixed(IReadOnlyDictionary<string, Tensor> all, string prefix) =>
        all.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal)).ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value, StringComparer.Ordinal);
}
