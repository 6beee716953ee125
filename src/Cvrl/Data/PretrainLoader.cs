using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using System.Threading.Channels;
using Cvrl.Augment;
using Cvrl.Augment.Video;
using Cvrl.Video;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Data;

/// <summary>Options for <see cref="PretrainLoader"/>.</summary>
public sealed record LoaderOptions
{
    private static readonly Training.CvrlTrainerOptions TrainerDefaults = new();

    /// <summary>Videos per batch (each gives two clips). Default: the trainer's, 64.</summary>
    public int BatchSize { get; init; } = TrainerDefaults.BatchSize;

    /// <summary>Decoding and augmentation threads. Default: one per core.</summary>
    public int Workers { get; init; } = Environment.ProcessorCount;

    /// <summary>Ready batches kept ahead of the consumer. Default 2.</summary>
    public int PrefetchBatches { get; init; } = 2;

    /// <summary>The experiment seed: drives the epoch order and every sample's randomness. Default 0.</summary>
    public long Seed { get; init; }

    /// <summary>Shuffle the order every epoch (seeded by seed and epoch). Default true.</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>Drop the last, incomplete batch of an epoch (the official recipe does). Default true.</summary>
    public bool DropLast { get; init; } = true;

    /// <summary>What to do with undecodable videos. Default <see cref="BadVideoPolicy.Skip"/>.</summary>
    public BadVideoPolicy BadVideos { get; init; } = BadVideoPolicy.Skip;

    /// <summary>
    /// Data-parallel training: the number of processes sharing every batch. Each batch of <see cref="BatchSize"/>
    /// videos (the global batch, in the same order on every process) is cut into this many equal slices, and this loader
    /// reads only slice <see cref="ShardIndex"/>, so the processes together see exactly the batches one process would.
    /// <see cref="BatchSize"/> must divide by it; batches are fixed slots of the epoch order (<see cref="DropLast"/> must
    /// be true, and a video that fails to decode is an error: skipping it would change one process's slice only).
    /// Default 1.
    /// </summary>
    public int ShardCount { get; init; } = 1;

    /// <summary>
    /// Assemble batches in page-locked (pinned) host memory, so that copies to a CUDA device can run asynchronously
    /// (<c>to(device, non_blocking: true)</c>) while the next batch is prepared. Needs a CUDA build of libtorch; the
    /// trainer turns it on when it trains on a CUDA device. Default false.
    /// </summary>
    public bool PinMemory { get; init; }

    /// <summary>Which slice of every batch this loader reads, 0 to <see cref="ShardCount"/> - 1 (the process's rank). Default 0.</summary>
    public int ShardIndex { get; init; }

    /// <summary>
    /// Whether a global batch of <paramref name="batchSize"/> videos cuts into <paramref name="shards"/> equal, non-empty
    /// slices: the one rule for data-parallel batches, checked by this record and by the trainer before it starts.
    /// </summary>
    /// <param name="batchSize">The global batch.</param>
    /// <param name="shards">The number of processes.</param>
    /// <returns>True when it does.</returns>
    public static bool DividesIntoShards(int batchSize, int shards) => shards >= 1 && batchSize >= shards && batchSize % shards == 0;

    /// <summary>Videos per batch this loader produces: <see cref="BatchSize"/> / <see cref="ShardCount"/>.</summary>
    public int LocalBatchSize => BatchSize / ShardCount;

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        if (BatchSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchSize must be at least 1.");
        }

        if (Workers < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(Workers), Workers, "Workers must be at least 1.");
        }

        if (PrefetchBatches < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(PrefetchBatches), PrefetchBatches, "PrefetchBatches must be at least 1.");
        }

        if (!Enum.IsDefined(BadVideos))
        {
            throw new ArgumentOutOfRangeException(nameof(BadVideos), BadVideos, "Unknown policy.");
        }

        if (!DividesIntoShards(BatchSize, ShardCount))
        {
            throw new ArgumentOutOfRangeException(nameof(ShardCount), ShardCount, $"ShardCount must be at least 1 and divide BatchSize ({BatchSize}).");
        }

        if (ShardIndex < 0 || ShardIndex >= ShardCount)
        {
            throw new ArgumentOutOfRangeException(nameof(ShardIndex), ShardIndex, $"ShardIndex must lie in [0, {ShardCount}).");
        }

        if (ShardCount > 1 && (!DropLast || BadVideos != BadVideoPolicy.Fail))
        {
            throw new ArgumentException("A sharded loader needs DropLast = true and BadVideos = Fail, so that every process's slice of a batch is fixed.", nameof(ShardCount));
        }
    }
}

/// <summary>A batch of CVRL view pairs. Owns its tensors: dispose it.</summary>
public sealed class ViewBatch : IDisposable
{
    internal ViewBatch(Tensor view1, Tensor view2, int[] indices, int epoch, int batchIndex, int endPosition)
    {
        View1 = view1;
        View2 = view2;
        Indices = indices;
        Epoch = epoch;
        BatchIndex = batchIndex;
        EndPosition = endPosition;
    }

    /// <summary>View 1 of every video, float32 <c>[N, C, T, H, W]</c> in [0, 1], on the CPU.</summary>
    public Tensor View1 { get; }

    /// <summary>View 2 of every video, float32 <c>[N, C, T, H, W]</c>.</summary>
    public Tensor View2 { get; }

    /// <summary>The data-set index of each video, in batch order.</summary>
    public IReadOnlyList<int> Indices { get; }

    /// <summary>The epoch.</summary>
    public int Epoch { get; }

    /// <summary>The batch's index within its epoch.</summary>
    public int BatchIndex { get; }

    /// <summary>The epoch-order position after this batch's last video (where the next batch starts; resume from here).</summary>
    public int EndPosition { get; }

    /// <summary>Number of videos.</summary>
    public int Count => Indices.Count;

    /// <summary>Releases both tensors.</summary>
    public void Dispose()
    {
        View1.Dispose();
        View2.Dispose();
    }
}

/// <summary>
/// Decodes and augments CVRL view pairs on worker threads and assembles them into batches, with a bounded prefetch.
/// </summary>
/// <remarks>
/// <para>
/// Each epoch visits the data set in an order shuffled by (seed, epoch); every sample's clips and augmentations come
/// from <see cref="ClipRandom.For(long, int, long, int)"/> keyed by (seed, epoch, data-set index), and batch k holds the
/// k-th group of <see cref="LoaderOptions.BatchSize"/> videos that decode, in epoch order. So the batches are the same
/// whatever the number of workers, and an epoch can resume exactly at a batch (<see cref="ViewBatch.EndPosition"/>).
/// </para>
/// <para>
/// Undecodable videos are skipped with a warning and counted (or stop the epoch, with <see cref="BadVideoPolicy.Fail"/>);
/// any other exception on a worker reaches the caller. Cancellation stops the workers promptly, and disposing an
/// unfinished enumeration joins them and releases every tensor in flight.
/// </para>
/// </remarks>
public sealed class PretrainLoader
{
    private readonly VideoDataset _data;
    private readonly Func<string, long, int, long, int?, CvrlViews> _generate;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<int, int> _frameCounts = new();
    private readonly ConcurrentDictionary<string, string> _bad = new(StringComparer.Ordinal);
    private long _samples;
    private long _framesDecoded;
    private long _seeks;

    /// <summary>Creates a loader.</summary>
    /// <param name="data">The videos.</param>
    /// <param name="generator">Makes the two views of a video (its options set clip length, stride and crop size).</param>
    /// <param name="options">Loader options (validated).</param>
    /// <param name="logger">Receives a warning per bad video; optional.</param>
    public PretrainLoader(VideoDataset data, CvrlViewGenerator generator, LoaderOptions options, ILogger? logger = null)
        : this(data, (generator ?? throw new ArgumentNullException(nameof(generator))).Generate, options, logger)
    {
    }

    /// <summary>Creates a loader around any view-making function (tests inject failures through it).</summary>
    internal PretrainLoader(VideoDataset data, Func<string, long, int, long, int?, CvrlViews> generate, LoaderOptions options, ILogger? logger = null)
    {
        _data = data ?? throw new ArgumentNullException(nameof(data));
        _generate = generate ?? throw new ArgumentNullException(nameof(generate));
        Options = options ?? throw new ArgumentNullException(nameof(options));
        Options.Validate();
        _logger = logger ?? NullLogger.Instance;
        if (options.DropLast && data.Count < options.BatchSize)
        {
            throw new ArgumentException($"The data set holds {data.Count} videos, fewer than one batch of {options.BatchSize} (LoaderOptions.BatchSize) with DropLast.", nameof(data));
        }
    }

    /// <summary>The options.</summary>
    public LoaderOptions Options { get; }

    /// <summary>Batches per epoch if every video decodes.</summary>
    public int PlannedBatchesPerEpoch => Options.DropLast ? _data.Count / Options.BatchSize : (_data.Count + Options.BatchSize - 1) / Options.BatchSize;

    /// <summary>Videos found undecodable so far, with the reason.</summary>
    public IReadOnlyDictionary<string, string> BadVideos => _bad;

    /// <summary>What the reads of this loader decoded so far (samples made, frames decoded, seeks).</summary>
    public DecodingStatistics Decoding => new(Interlocked.Read(ref _samples), Interlocked.Read(ref _framesDecoded), Interlocked.Read(ref _seeks));

    /// <summary>The epoch's visiting order: a permutation of the data-set indices keyed by (seed, epoch), or the identity without shuffling.</summary>
    public int[] EpochOrder(int epoch)
    {
        int[] order = [.. Enumerable.Range(0, _data.Count)];
        if (Options.Shuffle)
        {
            ClipRandom.For(Options.Seed, epoch, -1, int.MinValue).Shuffle(order.AsSpan());
        }

        return order;
    }

    /// <summary>Reads the batches of one epoch, starting at an epoch-order position (0, or a batch's <see cref="ViewBatch.EndPosition"/> to resume).</summary>
    /// <param name="epoch">The epoch.</param>
    /// <param name="startPosition">The epoch-order position to start from.</param>
    /// <param name="startBatchIndex">The index the first batch gets.</param>
    /// <param name="cancellationToken">Stops the workers.</param>
    /// <returns>The batches; the caller owns (disposes) each.</returns>
    /// <exception cref="VideoDecodeException">With <see cref="BadVideoPolicy.Fail"/>, the first bad video.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public IEnumerable<ViewBatch> ReadEpoch(int epoch, int startPosition = 0, int startBatchIndex = 0, CancellationToken cancellationToken = default) =>
        ReadEpochs(epoch, 1, startPosition, startBatchIndex, cancellationToken);

    /// <summary>
    /// Reads the batches of several consecutive epochs as one stream, so the workers run on into the next epoch while
    /// the last batches of the current one are consumed (no pipeline restart at epoch boundaries). Batches carry their
    /// <see cref="ViewBatch.Epoch"/>; each epoch's batch indices start at 0 (the first at <paramref name="startBatchIndex"/>).
    /// </summary>
    /// <param name="firstEpoch">The first epoch.</param>
    /// <param name="epochCount">How many epochs.</param>
    /// <param name="startPosition">The epoch-order position to start from in the first epoch.</param>
    /// <param name="startBatchIndex">The index the first batch gets.</param>
    /// <param name="cancellationToken">Stops the workers.</param>
    /// <returns>The batches; the caller owns (disposes) each.</returns>
    /// <exception cref="VideoDecodeException">With <see cref="BadVideoPolicy.Fail"/>, the first bad video.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public IEnumerable<ViewBatch> ReadEpochs(int firstEpoch, int epochCount, int startPosition = 0, int startBatchIndex = 0, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstEpoch);
        ArgumentOutOfRangeException.ThrowIfNegative(epochCount);
        ArgumentOutOfRangeException.ThrowIfNegative(startPosition);
        ArgumentOutOfRangeException.ThrowIfNegative(startBatchIndex);
        return epochCount == 0 ? [] : new EpochRun(this, firstEpoch, epochCount, startPosition, startBatchIndex, cancellationToken).Read();
    }

    private sealed class Slot
    {
        /// <summary>A position another process's loader reads (its slice of the batch).</summary>
        public static readonly Slot Elsewhere = new();

        public CvrlViews? Views;
        public Exception? Error;
    }


    /// <summary>
    /// A run over one or more consecutive epochs: the collator thread maps the run's positions through
    /// <see cref="OrderedParallel"/> (decoding and augmenting on the workers, in order, a bounded window ahead) and
    /// writes batches to the output channel, which the consumer reads.
    /// </summary>
    private sealed class EpochRun
    {
        private readonly PretrainLoader _owner;
        private readonly int _firstEpoch;
        private readonly int _start;
        private readonly int _startBatch;
        private readonly long _total;
        private readonly int _count;
        private readonly ConcurrentDictionary<int, int[]> _orders = new();
        private readonly CancellationTokenSource _cts;
        private readonly Channel<ViewBatch> _ready;
        private readonly int _window;
        private ExceptionDispatchInfo? _failure;

        public EpochRun(PretrainLoader owner, int firstEpoch, int epochCount, int start, int startBatch, CancellationToken token)
        {
            _owner = owner;
            _firstEpoch = firstEpoch;
            _count = owner._data.Count;
            _start = Math.Min(start, _count);
            _startBatch = startBatch;
            _total = (_count - _start) + ((long)_count * (epochCount - 1));
            _cts = CancellationTokenSource.CreateLinkedTokenSource(token);
            _ready = Channel.CreateBounded<ViewBatch>(new BoundedChannelOptions(owner.Options.PrefetchBatches) { SingleReader = true, SingleWriter = true });
            _window = ((owner.Options.PrefetchBatches + 1) * owner.Options.BatchSize) + owner.Options.Workers;
        }

        public IEnumerable<ViewBatch> Read()
        {
            var collator = new Thread(Collate) { IsBackground = true, Name = "cvrl-collator" };
            collator.Start();
            try
            {
                var reader = _ready.Reader;
                while (true)
                {
                    ViewBatch? batch = null;
                    try
                    {
                        if (!reader.WaitToReadAsync(_cts.Token).AsTask().GetAwaiter().GetResult())
                        {
                            break;
                        }

                        reader.TryRead(out batch);
                    }
                    catch (OperationCanceledException) when (_failure is not null)
                    {
                        break;
                    }

                    if (batch is not null)
                    {
                        yield return batch;
                    }
                }

                _failure?.Throw();
                _cts.Token.ThrowIfCancellationRequested();
            }
            finally
            {
                _cts.Cancel();
                collator.Join();
                while (_ready.Reader.TryRead(out var leftover))
                {
                    leftover.Dispose();
                }

                _cts.Dispose();
            }
        }

        /// <summary>The epoch and epoch-order position of a run position.</summary>
        private (int Epoch, int Position) Locate(long p)
        {
            long first = _count - _start;
            if (p < first)
            {
                return (_firstEpoch, (int)(_start + p));
            }

            long q = p - first;
            return (_firstEpoch + 1 + (int)(q / _count), (int)(q % _count));
        }

        private int[] Order(int epoch) => _orders.GetOrAdd(epoch, e => _owner.EpochOrder(e));

        /// <summary>Whether this loader reads an epoch-order position: always, unless sharded (then its slice of each full batch).</summary>
        private bool Mine(int position)
        {
            var o = _owner.Options;
            return o.ShardCount == 1
                || (position < _count / o.BatchSize * o.BatchSize && position % o.BatchSize / o.LocalBatchSize == o.ShardIndex);
        }

        /// <summary>Decodes and augments the video at a run position (on a worker); a decoding failure is returned, not thrown.</summary>
        private Slot Make(long p)
        {
            var (epoch, position) = Locate(p);
            if (!Mine(position))
            {
                return Slot.Elsewhere;
            }

            int index = Order(epoch)[position];
            var item = _owner._data[index];
            var slot = new Slot();
            try
            {
                if (_owner._bad.TryGetValue(item.Path, out string? reason))
                {
                    slot.Error = new VideoDecodeException(item.Path, VideoDecodeFailure.CannotOpen, reason);
                }
                else
                {
                    int? known = item.Frames ?? (_owner._frameCounts.TryGetValue(index, out int n) ? n : null);
                    slot.Views = _owner._generate(item.Path, _owner.Options.Seed, epoch, index, known);
                    _owner._frameCounts[index] = slot.Views.FrameCount;
                    Interlocked.Increment(ref _owner._samples);
                    Interlocked.Add(ref _owner._framesDecoded, slot.Views.FramesDecoded);
                    Interlocked.Add(ref _owner._seeks, slot.Views.Seeks);
                }
            }
            catch (VideoDecodeException e)
            {
                slot.Error = e;
            }

            return slot;
        }

        private void Collate()
        {
            var token = _cts.Token;
            var views = new List<CvrlViews>();
            var indices = new List<int>();
            int currentEpoch = _firstEpoch;
            int batchIndex = _startBatch;
            int batchSize = _owner.Options.LocalBatchSize;
            int globalBatch = _owner.Options.BatchSize;
            try
            {
                long p = -1;
                foreach (var slot in OrderedParallel.Map(_total, Make, _owner.Options.Workers, _window, s => s.Views?.Dispose(), token))
                {
                    p++;
                    var (epoch, position) = Locate(p);
                    if (epoch != currentEpoch)
                    {
                        FinishEpoch(views, indices, currentEpoch, batchIndex, token);
                        _orders.TryRemove(currentEpoch, out _);
                        currentEpoch = epoch;
                        batchIndex = 0;
                    }

                    if (ReferenceEquals(slot, Slot.Elsewhere))
                    {
                        continue;
                    }

                    if (slot.Error is not null)
                    {
                        var item = _owner._data[Order(epoch)[position]];
                        if (_owner.Options.BadVideos == BadVideoPolicy.Fail)
                        {
                            _failure ??= ExceptionDispatchInfo.Capture(slot.Error);
                            _cts.Cancel();
                            return;
                        }

                        string reason = slot.Error is VideoDecodeException { Detail.Length: > 0 } v ? v.Detail : slot.Error.Message;
                        if (_owner._bad.TryAdd(item.Path, reason))
                        {
                            LoaderLog.BadVideo(_owner._logger, item.Path, reason);
                        }

                        continue;
                    }

                    views.Add(slot.Views!);
                    indices.Add(Order(epoch)[position]);
                    if (views.Count == batchSize)
                    {
                        // A sharded loader's slice ends inside the global batch; the resume position is the batch's end.
                        int end = _owner.Options.ShardCount == 1 ? position + 1 : ((position / globalBatch) + 1) * globalBatch;
                        Emit(views, indices, epoch, batchIndex++, end, token);
                    }
                }

                FinishEpoch(views, indices, currentEpoch, batchIndex, token);
            }
            catch (OperationCanceledException)
            {
            }
#pragma warning disable CA1031 // Handed to the consumer.
            catch (Exception e)
#pragma warning restore CA1031
            {
                _failure ??= ExceptionDispatchInfo.Capture(e);
                _cts.Cancel();
            }
            finally
            {
                foreach (var v in views)
                {
                    v.Dispose();
                }

                _ready.Writer.TryComplete();
            }
        }

        private static Tensor Pinned(Tensor tensor)
        {
            var pinned = tensor.pin_memory();
            tensor.Dispose();
            return pinned;
        }

        /// <summary>Emits (or, with DropLast, drops) an epoch's incomplete last batch.</summary>
        private void FinishEpoch(List<CvrlViews> views, List<int> indices, int epoch, int batchIndex, CancellationToken token)
        {
            if (views.Count > 0 && !_owner.Options.DropLast)
            {
                Emit(views, indices, epoch, batchIndex, _count, token);
            }

            foreach (var v in views)
            {
                v.Dispose();
            }

            views.Clear();
            indices.Clear();
        }

        private void Emit(List<CvrlViews> views, List<int> indices, int epoch, int batchIndex, int endPosition, CancellationToken token)
        {
            var view1 = torch.stack(views.Select(v => v.View1).ToArray());
            var view2 = torch.stack(views.Select(v => v.View2).ToArray());
            if (_owner.Options.PinMemory)
            {
                (view1, view2) = (Pinned(view1), Pinned(view2));
            }

            foreach (var v in views)
            {
                v.Dispose();
            }

            views.Clear();
            var batch = new ViewBatch(view1, view2, [.. indices], epoch, batchIndex, endPosition);
            indices.Clear();
            try
            {
                _ready.Writer.WriteAsync(batch, token).AsTask().GetAwaiter().GetResult();
            }
            catch
            {
                batch.Dispose();
                throw;
            }
        }
    }
}

/// <summary>Source-generated log messages of the loader.</summary>
internal static partial class LoaderLog
{
    [LoggerMessage(EventId = 200, Level = LogLevel.Warning, Message = "Skipping video {Path}: {Reason}")]
    public static partial void BadVideo(ILogger logger, string path, string reason);
}

/// <summary>What decoding cost a run: the samples made, the frames decoded for them, and the seeks made.</summary>
/// <param name="Samples">Samples (two views of one video) made.</param>
/// <param name="FramesDecoded">Frames decoded for them (frames OpenCV decodes inside a seek are not counted).</param>
/// <param name="Seeks">Seeks made.</param>
public sealed record DecodingStatistics(long Samples, long FramesDecoded, long Seeks)
{
    /// <summary>Frames decoded per sample (0 before the first): about the two clips' frames when reads seek or a prepared copy is read, far more when they decode forward from the start.</summary>
    public double FramesPerSample => Samples > 0 ? (double)FramesDecoded / Samples : 0;
}
