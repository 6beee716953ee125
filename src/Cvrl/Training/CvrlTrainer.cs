using System.Diagnostics;
using Cvrl.Augment;
using Cvrl.Data;
using Cvrl.Distributed;
using Cvrl.Losses;
using Cvrl.Models;
using Cvrl.Optim;
using Cvrl.Video;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Cvrl.Training;

/// <summary>
/// CVRL pre-training: an encoder (<see cref="ResNet3d"/> in backbone mode), CVRL's projection head, the NT-Xent loss,
/// SGD (or LARS, or AdamW) with warm-up and cosine decay, a parallel loader, checkpoints with exact resume, metrics and
/// logging, behind one options record; on one process or data-parallel over several (<see cref="ICommunicator"/>).
/// </summary>
/// <remarks>
/// <para>
/// Each step: two views of every video in the batch (decoded and augmented on worker threads), the encoder and head
/// run on <c>[view 1; view 2]</c> together (so BatchNorm sees both views, as in the official code), NT-Xent over the
/// 2N clips, backward, one optimizer step. One dispose scope per step; only scalars leave it.
/// </para>
/// <para>
/// With a communicator of several ranks, <see cref="CvrlTrainerOptions.BatchSize"/> is the global batch: each rank
/// embeds its slice, the embeddings of all ranks are gathered so that every clip has the negatives of the global batch,
/// each rank back-propagates the loss's gradient for its own clips, and the parameter gradients are summed across ranks
/// before the optimizer step; BatchNorm is synchronised by default. The result equals one process training on the whole
/// batch (docs/distributed.md). Only rank 0 writes checkpoints, metrics and TensorBoard events, reports progress and
/// raises the events; every rank resumes from the same checkpoint.
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
/// trainer.CheckpointWritten += (_, c) => Console.WriteLine($"saved {c.Path}");
/// TrainingSummary run = trainer.Fit(videos, new Progress&lt;TrainingProgress&gt;(p => Console.WriteLine(p.Loss)));
/// </code>
/// </example>
public sealed class CvrlTrainer : IDisposable
{
    private readonly ResNet3d _encoder;
    private readonly ILogger _logger;
    private readonly NtXentLoss _loss;
    private readonly CvrlOptimizer _optimizer;
    private readonly List<(string Name, nn.Module Module)> _frozen;
    private readonly Device _device;
    private readonly ICommunicator _communicator;
    private bool _disposed;

    /// <summary>Creates a trainer. Validates the options and the device before allocating anything else.</summary>
    /// <param name="encoder">The encoder, in backbone mode (no classifier). Moved to the options' device.</param>
    /// <param name="options">The options.</param>
    /// <param name="logger">Optional structured logging.</param>
    /// <param name="communicator">The processes training together; null for one process.</param>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range (the message names it), or the input batches would take more memory than <see cref="MemoryBudget"/> allows.</exception>
    /// <exception cref="ArgumentException">The encoder is a classifier, an option is malformed, or the batch does not divide by the number of ranks.</exception>
    /// <exception cref="InvalidOperationException">CUDA was asked for and is not available.</exception>
    public CvrlTrainer(ResNet3d encoder, CvrlTrainerOptions options, ILogger? logger = null, ICommunicator? communicator = null)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (encoder.IsClassifier)
        {
            throw new ArgumentException("Pre-train the encoder in backbone mode (ResNet3dOptions.NumClasses = null); add a classifier afterwards.", nameof(encoder));
        }

        _communicator = communicator ?? SingleProcessCommunicator.Instance;
        if (!LoaderOptions.DividesIntoShards(options.BatchSize, _communicator.Size))
        {
            throw new ArgumentException($"BatchSize {options.BatchSize} is the global batch and must divide into equal slices for the {_communicator.Size} ranks.", nameof(options));
        }

        RequireInputMemory(options, _communicator.Size);
        Options = options;
        _logger = logger ?? NullLogger.Instance;
        _device = DeviceSpec.Resolve(options.Device);
        _encoder = encoder;
        _encoder.to(_device);
        using (TorchRandom.Seeded(options.Seed))
        {
            Head = new ProjectionHead(encoder.FeatureDim, options.Head);
        }

        Head.to(_device);
        _loss = new NtXentLoss(options.Temperature, options.LossReduction);
        _frozen = FrozenModules(_encoder, options);
        var frozenNames = _frozen.SelectMany(m => m.Module.named_parameters().Select(p => m.Name + "." + p.name)).ToHashSet(StringComparer.Ordinal);
        foreach (var (name, parameter) in _encoder.named_parameters())
        {
            if (frozenNames.Contains(name))
            {
                parameter.requires_grad = false; // no gradient, no update, and no backward pass below the last frozen stage
            }
        }

        var parameters = _encoder.named_parameters().Where(p => !frozenNames.Contains(p.name)).Select(p => ("encoder." + p.name, p.parameter))
            .Concat(Head.named_parameters().Select(p => ("head." + p.name, p.parameter)));
        _optimizer = CvrlOptimizer.Create(parameters, options.Optimizer);
        Generator = new CvrlViewGenerator(options.Views);
        SynchronisesBatchNorm = options.SyncBatchNorm ?? _communicator.Size > 1;
        SyncBatchNorm.Attach(SynchronisesBatchNorm ? _communicator : null, _encoder, Head);
    }

    /// <summary>
    /// The encoder's modules kept as they are: the stem and the first stages (<see cref="CvrlTrainerOptions.FrozenStages"/>)
    /// and every batch normalisation layer (<see cref="CvrlTrainerOptions.FreezeBatchNorm"/>), by state-dict name.
    /// </summary>
    private static List<(string Name, nn.Module Module)> FrozenModules(ResNet3d encoder, CvrlTrainerOptions options)
    {
        var prefixes = new[] { "stem", "layer1", "layer2", "layer3", "layer4" }.Take(options.FrozenStages).ToList();
        var frozen = new List<(string, nn.Module)>();
        foreach (var (name, module) in encoder.named_modules())
        {
            bool inFrozenStage = prefixes.Contains(name, StringComparer.Ordinal);
            bool frozenNorm = options.FreezeBatchNorm && module is CvrlBatchNorm && !prefixes.Exists(p => name.StartsWith(p + ".", StringComparison.Ordinal));
            if (inFrozenStage || frozenNorm)
            {
                frozen.Add((name, module));
            }
        }

        return frozen;
    }

    /// <summary>Raised on rank 0 after every step that reports progress (every <see cref="CvrlTrainerOptions.LogEverySteps"/> steps and at each epoch's end).</summary>
    public event EventHandler<TrainingProgress>? StepCompleted;

    /// <summary>Raised on rank 0 when an epoch ends.</summary>
    public event EventHandler<EpochSummary>? EpochCompleted;

    /// <summary>Raised on rank 0 after a checkpoint was written.</summary>
    public event EventHandler<CheckpointInfo>? CheckpointWritten;

    /// <summary>The options.</summary>
    public CvrlTrainerOptions Options { get; }

    /// <summary>The encoder being trained.</summary>
    public ResNet3d Encoder => _encoder;

    /// <summary>The projection head (owned by the trainer; saved in checkpoints).</summary>
    public ProjectionHead Head { get; }

    /// <summary>Produces the two views of each video.</summary>
    public CvrlViewGenerator Generator { get; }

    /// <summary>The processes training together (a single process by default).</summary>
    public ICommunicator Communicator => _communicator;

    /// <summary>Whether BatchNorm layers run the synchronised code (statistics of the global batch; see <see cref="CvrlTrainerOptions.SyncBatchNorm"/>).</summary>
    public bool SynchronisesBatchNorm { get; }

    /// <summary>Global steps done so far (including steps restored from a checkpoint).</summary>
    public long Step { get; private set; }

    private bool IsRoot => _communicator.Rank == 0;

    /// <summary>Runs <see cref="Fit"/> on a worker thread.</summary>
    public Task<TrainingSummary> FitAsync(VideoDataset data, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default) =>
        Task.Run(() => Fit(data, progress, cancellationToken), CancellationToken.None);

    /// <summary>
    /// Pre-trains on <paramref name="data"/> (labels, if any, are ignored), resuming from the newest checkpoint in
    /// <see cref="CvrlTrainerOptions.CheckpointDirectory"/> when there is one. An unverified data set is verified first
    /// (<see cref="VideoDataset.Verify"/>: real frame counts, bad videos left out and named in the log), so clips are
    /// always planned from the frames that decode. The encoder then carries the training clips
    /// (<see cref="ResNet3d.TrainedClips"/>), which embedders and the ONNX exporter use as its default views.
    /// </summary>
    /// <param name="data">The videos (the same on every rank).</param>
    /// <param name="progress">Receives a report every <see cref="CvrlTrainerOptions.LogEverySteps"/> steps (rank 0).</param>
    /// <param name="cancellationToken">Stops after the current step (a checkpoint is written); with several ranks, all stop at the same step.</param>
    /// <returns>What happened.</returns>
    /// <exception cref="ArgumentException">The data set holds fewer videos than one batch.</exception>
    /// <exception cref="InvalidDataException">The checkpoint to resume from belongs to another architecture.</exception>
    /// <exception cref="ExperimentMismatchException">The checkpoint to resume from was written with other options that change the result, or on other data.</exception>
    /// <exception cref="NoIntactCheckpointException">The checkpoint folder holds checkpoints but none is intact (each fails its checksum): set <see cref="CvrlTrainerOptions.Resume"/> to false to start over. Damaged ones are passed over (and kept) when an older one is intact.</exception>
    /// <exception cref="DatasetException">None of the videos decodes.</exception>
    /// <exception cref="TrainingDivergedException">The loss became NaN or infinite.</exception>
    /// <exception cref="Video.VideoDecodeException">With <see cref="BadVideoPolicy.Fail"/>, a bad video.</exception>
    public TrainingSummary Fit(VideoDataset data, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(data);
        if (_communicator.Size == 1)
        {
            return new TrainingRun(this, progress, cancellationToken).Execute(data);
        }

        try
        {
            return new TrainingRun(this, progress, cancellationToken).Execute(data);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A rank that fails cannot leave the others waiting in the next collective: end the whole job.
            _communicator.Abort(1, $"training failed: {e.GetType().Name}: {e.Message}");
            throw;
        }
    }

    /// <summary>
    /// Refuses, before anything is allocated, a run whose input batches alone would exceed <see cref="MemoryBudget"/>:
    /// the batches the loader keeps ready plus the one in training and the one being collated, each of
    /// <c>local batch x 2 views x 3 x T x S x S</c> float32.
    /// </summary>
    private static void RequireInputMemory(CvrlTrainerOptions options, int ranks)
    {
        int t = options.Views.Sampler.FramesPerClip;
        int size = options.Views.CropSize;
        long local = options.BatchSize / ranks;
        long bytes = MemoryBudget.Product(options.PrefetchBatches + 2, local, 2, 3, t, size, size, sizeof(float));
        MemoryBudget.Require(bytes, $"Pre-training on batches of {local} videos x 2 clips of {t} frames at {size}x{size} ({options.PrefetchBatches + 2} batches in flight)", nameof(options), "use fewer frames per clip, smaller crops or a smaller batch");
    }

    /// <summary>The clips a run with <paramref name="options"/> trains on: its sampler's clip length and stride, and its crop size.</summary>
    /// <param name="options">Trainer options.</param>
    /// <returns>The geometry the encoder carries after training (<see cref="ResNet3d.TrainedClips"/>).</returns>
    public static ClipGeometry ClipsOf(CvrlTrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new ClipGeometry(options.Views.Sampler.FramesPerClip, options.Views.Sampler.Stride, options.Views.CropSize);
    }

    /// <summary>Releases the head and the optimizer state (not the encoder).</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        SyncBatchNorm.Attach(null, _encoder, Head);
        Head.Dispose();
        _optimizer.Dispose();
    }

    private Tensor Embed(Tensor clips) => Head.call(_encoder.call(clips));

    /// <summary>
    /// One run of <see cref="Fit"/>: preparation (data, loader, schedule, resume, outputs), the loop over batches, and
    /// the bookkeeping around it (progress window, checkpoint policy, epochs), each in a method of its own. Everything
    /// that depends on the rank is decided here.
    /// </summary>
    private sealed class TrainingRun(CvrlTrainer trainer, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        private readonly List<double> _losses = [];
        private readonly Stopwatch _run = Stopwatch.StartNew();
        private readonly Stopwatch _epochWatch = Stopwatch.StartNew();
        private readonly ProgressWindow _window = new();
        private PretrainLoader _loader = null!;
        private WarmupCosineSchedule _schedule = null!;
        private CheckpointStore? _store;
        private MetricsWriter? _metrics;
        private SummaryWriter? _board;
        private NativeHeapGuard? _guard;
        private GradientCache? _cache;
        private (string Fingerprint, int Videos) _data;
        private int _stepsPerEpoch;
        private long _totalSteps;
        private int _epoch;
        private int _batchIndex;
        private int _position;
        private long _resumedFrom;
        private string? _lastCheckpoint;
        private (double Loss, double Accuracy) _last = (double.NaN, double.NaN);

        private CvrlTrainerOptions Options => trainer.Options;

        private ICommunicator Comm => trainer._communicator;

        public TrainingSummary Execute(VideoDataset data)
        {
            try
            {
                return Run(data);
            }
            finally
            {
                _store?.Dispose(); // the checkpoint folder's lock
            }
        }

        private TrainingSummary Run(VideoDataset data)
        {
            data = Prepare(data);
            bool cancelled = false;
            trainer._encoder.TrainedClips = ClipsOf(trainer.Options);
            var (compute, why) = PrecisionPolicy.Resolve(Options.Precision, trainer._device);
            Log.Precision(trainer._logger, why);
            var before = (trainer._encoder.ComputeType, trainer.Head.ComputeType);
            trainer._encoder.ComputeType = compute;
            trainer.Head.ComputeType = compute;
            trainer._encoder.train();
            trainer.Head.train();
            foreach (var (_, module) in trainer._frozen)
            {
                module.eval(); // frozen parts keep their batch normalisation statistics
            }

            try
            {
                cancelled = Loop();
                if (cancelled)
                {
                    Log.Cancelled(trainer._logger, trainer.Step);
                    WriteCheckpoint(_epoch, _batchIndex, _position);
                }
                else
                {
                    while (_epoch < Options.Epochs)
                    {
                        FinishEpoch(); // epochs whose last batches were all dropped or skipped still end
                    }
                }
            }
            finally
            {
                _metrics?.Dispose();
                trainer._encoder.train();
                trainer.Head.train();
                (trainer._encoder.ComputeType, trainer.Head.ComputeType) = before;
            }

            if (!cancelled && trainer.Step == _resumedFrom && _totalSteps > _resumedFrom)
            {
                // Steps were planned and none ran: the videos that failed while loading left less than one batch.
                var failed = _loader.BadVideos.OrderBy(b => b.Key, StringComparer.Ordinal).ToList();
                string first = failed.Count > 0 ? $" (first: {failed[0].Key}: {failed[0].Value})" : string.Empty;
                throw new DatasetException($"No training step could run: {failed.Count} of the {data.Count} videos failed to decode while training{first}, and the rest make less than one batch of {Options.BatchSize}.");
            }

            return new TrainingSummary
            {
                Outcome = cancelled ? TrainingOutcome.Cancelled : TrainingOutcome.Completed,
                Steps = trainer.Step,
                StepsThisRun = trainer.Step - _resumedFrom,
                ResumedFromStep = _resumedFrom,
                EpochsCompleted = _epoch,
                Losses = _losses,
                Skipped = [.. Evaluation.FeatureExtractor.Rejected(data), .. _loader.BadVideos.OrderBy(b => b.Key, StringComparer.Ordinal).Select(b => new Cvrl.Video.SkippedVideo(b.Key, b.Value))],
                Checkpoint = _lastCheckpoint,
                Decoding = _loader.Decoding,
                Elapsed = _run.Elapsed,
                ComputeType = compute,
            };
        }

        /// <summary>Verifies the data (rank 0 first, so the others read its index), builds the loader and schedule, resumes, and opens rank 0's outputs.</summary>
        private VideoDataset Prepare(VideoDataset data)
        {
            int workers = Options.Workers ?? Comm.ThreadsPerProcess();
            var index = new VideoIndexOptions { Workers = workers, Reader = Options.Views.Reader };
            if (!trainer.IsRoot)
            {
                Comm.Barrier();
            }

            data = data.Verify(index, null, trainer._logger, cancellationToken);
            if (trainer.IsRoot && Comm.Size > 1)
            {
                Comm.Barrier();
            }

            _data = (data.Fingerprint, data.Count);
            bool sharded = Comm.Size > 1;
            _loader = new PretrainLoader(data, trainer.Generator, new LoaderOptions
            {
                BatchSize = Options.BatchSize,
                Workers = workers,
                PrefetchBatches = Options.PrefetchBatches,
                Seed = Options.Seed,
                BadVideos = sharded ? BadVideoPolicy.Fail : Options.BadVideos,
                ShardCount = Comm.Size,
                ShardIndex = Comm.Rank,
                PinMemory = trainer._device.type == DeviceType.CUDA,
            }, trainer._logger);
            _stepsPerEpoch = _loader.PlannedBatchesPerEpoch;
            _totalSteps = (long)_stepsPerEpoch * Options.Epochs;
            _schedule = new WarmupCosineSchedule(Options.EffectiveLearningRate, (long)Math.Round(Options.WarmupFraction * _totalSteps), _totalSteps);
            _store = Options.CheckpointDirectory is null ? null : new CheckpointStore(Options.CheckpointDirectory, Options.KeepCheckpoints, writer: trainer.IsRoot, trainer._logger);
            Resume();
            if (sharded)
            {
                // Every rank starts from rank 0's weights and optimizer state (equal anyway when they resumed from the same file).
                Comm.Broadcast(trainer._encoder);
                Comm.Broadcast(trainer.Head);
                Comm.Broadcast([.. trainer._optimizer.State().OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Value)]);
            }

            Log.Start(trainer._logger, data.Count, Options.Epochs, _totalSteps, Options.BatchSize, Options.Device, Options.EffectiveLearningRate);
            if (trainer.IsRoot)
            {
                _metrics = Options.MetricsFile is null ? null : new MetricsWriter(Options.MetricsFile, append: _resumedFrom > 0);
                _board = Options.TensorBoardDirectory is null ? null : torch.utils.tensorboard.SummaryWriter(Options.TensorBoardDirectory, createRunName: false);
            }

            _guard = Options.NativeHeapGrowthLimit is double limit ? new NativeHeapGuard(limit, warmupSteps: 3) : null;
            int localBatch = Options.BatchSize / Comm.Size;
            _cache = Options.GradientCacheChunk is int chunk && chunk < localBatch ? new GradientCache(chunk) : null;
            return data;
        }

        /// <summary>Restores the newest checkpoint, the same one on every rank.</summary>
        private void Resume()
        {
            if (_store is null || !Options.Resume || _store.LoadNewest(trainer._logger) is not { } found)
            {
                AgreeOnStep(0);
                return;
            }

            using (found.Tensors)
            {
                trainer.Restore(found.State, found.Tensors, found.Path, _data);
            }

            (_epoch, _batchIndex, _position, _resumedFrom, _lastCheckpoint) = (found.State.Epoch, found.State.BatchIndex, found.State.Position, found.State.Step, found.Path);
            AgreeOnStep(found.State.Step);
            Log.Resumed(trainer._logger, found.Path, trainer.Step, _epoch, _batchIndex);
        }

        /// <summary>With several ranks, checks that all of them start from the same step (the same checkpoint).</summary>
        private void AgreeOnStep(long step)
        {
            if (Comm.Size == 1)
            {
                return;
            }

            Span<double> range = [step, -step];
            Comm.AllReduce(range, ReduceOp.Max);
            if (range[0] != -range[1])
            {
                throw new InvalidOperationException($"The ranks would resume from different steps ({-range[1]} to {range[0]}); every rank must see the same checkpoint folder.");
            }
        }

        /// <summary>The loop over batches; returns true when cancelled.</summary>
        private bool Loop()
        {
            using var batches = _loader.ReadEpochs(_epoch, Math.Max(0, Options.Epochs - _epoch), _position, _batchIndex, cancellationToken).GetEnumerator();
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
                    return true;
                }

                _window.Waited(wait.Elapsed.TotalSeconds);
                if (!more)
                {
                    return false;
                }

                using var batch = batches.Current;
                while (batch.Epoch > _epoch)
                {
                    FinishEpoch(); // the previous epoch ended (its last batches may have been dropped or skipped)
                }

                double lr = _schedule.At(trainer.Step);
                var (loss, accuracy, entropy) = trainer.TrainStep(batch, lr, _cache, _lastCheckpoint, _window);
                trainer.Step++;
                _losses.Add(loss);
                _last = (loss, accuracy);
                _window.Stepped(2L * batch.Count * Comm.Size);
                (_batchIndex, _position) = (batch.BatchIndex + 1, batch.EndPosition);
                if (_guard?.AfterStep() == true)
                {
                    Log.HeapTrimmed(trainer._logger, trainer.Step, NativeHeap.ResidentBytes() / 1048576.0);
                }

                bool epochEnd = _batchIndex >= _stepsPerEpoch;
                if (trainer.Step % Options.LogEverySteps == 0 || epochEnd)
                {
                    Report(loss, accuracy, entropy, lr);
                }

                if (trainer.Step % Options.CheckpointEverySteps == 0 && !epochEnd)
                {
                    WriteCheckpoint(_epoch, _batchIndex, _position);
                }

                if (epochEnd)
                {
                    FinishEpoch();
                    (_batchIndex, _position) = (0, 0);
                }

                if (StopRequested())
                {
                    return true;
                }
            }
        }

        /// <summary>Whether to stop now; with several ranks, true on all of them as soon as it is true on one.</summary>
        private bool StopRequested()
        {
            if (Comm.Size == 1)
            {
                return cancellationToken.IsCancellationRequested;
            }

            Span<float> flag = [cancellationToken.IsCancellationRequested ? 1 : 0];
            Comm.AllReduce(flag, ReduceOp.Max);
            return flag[0] > 0;
        }

        /// <summary>Reports the progress window (rank 0: progress, log, metrics, TensorBoard, the event) and starts a new one.</summary>
        private void Report(double loss, double accuracy, double entropy, double lr)
        {
            long step = trainer.Step;
            var report = _window.Report(_epoch, step, _batchIndex, _stepsPerEpoch, _totalSteps, loss, accuracy, entropy, lr, _run.Elapsed, step - _resumedFrom);
            if (!trainer.IsRoot)
            {
                return;
            }

            Log.Step(trainer._logger, report.Step, report.Loss, report.ContrastiveAccuracy, report.LearningRate, report.ClipsPerSecond, report.DataWaitShare);
            _metrics?.Write(report);
            if (_board is not null)
            {
                int s = (int)Math.Min(int.MaxValue, report.Step);
                _board.add_scalar("train/loss", (float)report.Loss, s);
                _board.add_scalar("train/contrastive_accuracy", (float)report.ContrastiveAccuracy, s);
                _board.add_scalar("train/entropy", (float)report.Entropy, s);
                _board.add_scalar("train/learning_rate", (float)report.LearningRate, s);
                _board.add_scalar("train/clips_per_second", (float)report.ClipsPerSecond, s);
            }

            progress?.Report(report);
            trainer.StepCompleted?.Invoke(trainer, report);
        }

        /// <summary>Logs the end of the current epoch, writes its checkpoint and moves to the next epoch.</summary>
        private void FinishEpoch()
        {
            Log.EpochDone(trainer._logger, _epoch, _last.Loss, _last.Accuracy, _epochWatch.Elapsed);
            var summary = new EpochSummary(_epoch, trainer.Step, _last.Loss, _last.Accuracy, _epochWatch.Elapsed);
            _epoch++;
            (_batchIndex, _position) = (0, 0);
            WriteCheckpoint(_epoch, 0, 0);
            _epochWatch.Restart();
            if (trainer.IsRoot)
            {
                trainer.EpochCompleted?.Invoke(trainer, summary);
            }
        }

        /// <summary>The checkpoint policy's one writer: rank 0 writes (the others' state is identical), then raises the event.</summary>
        private void WriteCheckpoint(int epoch, int batchIndex, int position)
        {
            if (_store is null || !trainer.IsRoot)
            {
                return;
            }

            _lastCheckpoint = trainer.WriteCheckpoint(_store, epoch, batchIndex, position, _data);
            trainer.CheckpointWritten?.Invoke(trainer, new CheckpointInfo(_lastCheckpoint, trainer.Step, epoch));
        }
    }

    /// <summary>Timing of the steps since the last report, split by phase.</summary>
    private sealed class ProgressWindow
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly double[] _phases = new double[4]; // forward, backward, optimizer, communication
        private double _wait;
        private long _clips;
        private int _steps;

        public void Waited(double seconds) => _wait += seconds;

        public void Phase(int phase, double seconds) => _phases[phase] += seconds;

        public void Stepped(long clips)
        {
            _clips += clips;
            _steps++;
        }

        public TrainingProgress Report(int epoch, long step, int stepInEpoch, int stepsPerEpoch, long totalSteps, double loss, double accuracy, double entropy, double lr, TimeSpan elapsed, long stepsThisRun)
        {
            double seconds = Math.Max(_clock.Elapsed.TotalSeconds, 1e-9);
            double n = Math.Max(1, _steps);
            var timings = new StepTimings(_wait / n, _phases[0] / n, _phases[1] / n, _phases[2] / n, _phases[3] / n, Math.Max(0, (seconds - _wait - _phases.Sum()) / n));
            var remaining = TimeSpan.FromSeconds(elapsed.TotalSeconds / Math.Max(1, stepsThisRun) * Math.Max(0, totalSteps - step));
            var report = new TrainingProgress(epoch, step, stepInEpoch, stepsPerEpoch, totalSteps, loss, accuracy, entropy, lr, _clips / seconds, Math.Min(1, _wait / seconds), elapsed, remaining, timings);
            _clock.Restart();
            _wait = 0;
            _clips = 0;
            _steps = 0;
            Array.Clear(_phases);
            return report;
        }
    }

    /// <summary>One optimisation step on a batch (this rank's slice of it); returns the loss, accuracy and entropy of the global batch.</summary>
    private (double Loss, double Accuracy, double Entropy) TrainStep(ViewBatch batch, double lr, GradientCache? cache, string? lastCheckpoint, ProgressWindow window)
    {
        var watch = Stopwatch.StartNew();
        using var scope = torch.NewDisposeScope();
        // From pinned host memory (see LoaderOptions.PinMemory) the copy to a CUDA device is asynchronous.
        bool async = _device.type == DeviceType.CUDA && batch.View1.is_pinned();
        var view1 = batch.View1.to(_device, non_blocking: async);
        var view2 = batch.View2.to(_device, non_blocking: async);
        _optimizer.ZeroGrad();
        NtXentOutput output;
        bool backwardDone = cache is not null || _communicator.Size > 1;
        if (cache is not null)
        {
            output = cache.ForwardBackward(Embed, view1, view2, _loss, [_encoder, Head], _communicator);
        }
        else if (_communicator.Size > 1)
        {
            // The global batch's loss, from every rank's embeddings; this rank back-propagates the gradient of its own clips.
            long n = view1.shape[0];
            var z = Embed(torch.cat([view1, view2], 0));
            var global = GlobalBatch.LossAndLocalGradients(_communicator, _loss, z.narrow(0, 0, n), z.narrow(0, n, n));
            output = global.Output;
            (z * torch.cat([global.Gradient1, global.Gradient2], 0)).sum().backward();
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
        window.Phase(0, watch.Elapsed.TotalSeconds);
        watch.Restart();
        if (!backwardDone)
        {
            output.Loss.backward();
        }

        window.Phase(1, watch.Elapsed.TotalSeconds);
        if (_communicator.Size > 1)
        {
            watch.Restart();
            var grads = _optimizer.Parameters.Select(p => p.Parameter.grad ?? (p.Parameter.grad = torch.zeros_like(p.Parameter))).ToList();
            _communicator.AllReduce(grads);
            window.Phase(3, watch.Elapsed.TotalSeconds);
        }

        watch.Restart();
        _optimizer.LearningRate = lr;
        _optimizer.Step();
        window.Phase(2, watch.Elapsed.TotalSeconds);
        return (loss, accuracy, entropy);
    }

    private string WriteCheckpoint(CheckpointStore store, int epoch, int batchIndex, int position, (string Fingerprint, int Videos) data)
    {
        var state = new CheckpointState
        {
            Step = Step,
            Epoch = epoch,
            BatchIndex = batchIndex,
            Position = position,
            Encoder = _encoder.Options,
            Trainer = Options,
            DataFingerprint = data.Fingerprint,
            DataVideos = data.Videos,
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

    private void Restore(CheckpointState state, IReadOnlyDictionary<string, Tensor> tensors, string path, (string Fingerprint, int Videos) data)
    {
        if (!state.Encoder.Equals(_encoder.Options))
        {
            throw new InvalidDataException(
                $"Checkpoint '{path}' belongs to another architecture (depth {state.Encoder.Depth}, width {state.Encoder.WidthMultiplier}) than this encoder (depth {_encoder.Options.Depth}, width {_encoder.Options.WidthMultiplier}); use another CheckpointDirectory or Resume = false.");
        }

        var differences = ExperimentMismatchException.Compare(state.Trainer, Options).ToList();
        if (state.DataFingerprint is not null && state.DataFingerprint != data.Fingerprint)
        {
            differences.Add($"data set: {state.DataVideos} videos (fingerprint {state.DataFingerprint[..12]}) in the checkpoint, {data.Videos} videos (fingerprint {data.Fingerprint[..12]}) now");
        }

        if (differences.Count > 0)
        {
            throw new ExperimentMismatchException(path, differences);
        }

        Models.Weights.ModelWeights.LoadStateDict(_encoder, Prefixed(tensors, "encoder."), strict: true, origin: path);
        Models.Weights.ModelWeights.LoadStateDict(Head, Prefixed(tensors, "head."), strict: true, origin: path);
        _optimizer.LoadState(Prefixed(tensors, "optimizer."));
        Step = state.Step;
    }

    private static Dictionary<string, Tensor> Prefixed(IReadOnlyDictionary<string, Tensor> all, string prefix) =>
        all.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal)).ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value, StringComparer.Ordinal);
}
