using System.Runtime.ExceptionServices;

namespace Cvrl.Video;

/// <summary>
/// The one ordered parallel map of Cvrl: maps items on worker threads and yields the results in input order, with a
/// bounded look-ahead (a worker does not start item <c>i</c> before the consumer has taken item
/// <c>i - lookAhead</c>, so memory stays bounded), exception propagation (the first worker exception reaches the
/// consumer with its stack trace) and prompt cancellation. Results not consumed (after an exception, cancellation or an
/// early exit from the enumeration) are released with the disposer. The order of the results, and so anything computed
/// from them in order, does not depend on the number of workers or on thread scheduling.
/// </summary>
/// <remarks>
/// Used by the pre-training loader (positions of an epoch), feature extraction, fine-tuning, both embedders, the video
/// index and data-set preparation.
/// </remarks>
public static class OrderedParallel
{
    /// <summary>Maps <paramref name="items"/> in parallel and yields the results in their order.</summary>
    /// <typeparam name="TIn">Item type.</typeparam>
    /// <typeparam name="TOut">Result type.</typeparam>
    /// <param name="items">The items.</param>
    /// <param name="map">Maps an item and its index; runs on worker threads.</param>
    /// <param name="workers">Worker threads (at least 1).</param>
    /// <param name="lookAhead">How far ahead of the consumer the workers may run (at least 1).</param>
    /// <param name="dispose">Releases results that were made but not consumed; optional.</param>
    /// <param name="cancellationToken">Stops the workers; the enumeration then throws <see cref="OperationCanceledException"/>.</param>
    /// <returns>The results, lazily; enumerate once.</returns>
    public static IEnumerable<TOut> Map<TIn, TOut>(IReadOnlyList<TIn> items, Func<TIn, int, TOut> map, int workers, int lookAhead, Action<TOut>? dispose, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(items);
        ArgumentNullException.ThrowIfNull(map);
        return Map(items.Count, i => map(items[(int)i], (int)i), workers, lookAhead, dispose, cancellationToken);
    }

    /// <summary>Maps the positions 0 to <paramref name="count"/> - 1 in parallel and yields the results in order.</summary>
    /// <typeparam name="TOut">Result type.</typeparam>
    /// <param name="count">Number of positions.</param>
    /// <param name="map">Maps a position; runs on worker threads.</param>
    /// <param name="workers">Worker threads (at least 1).</param>
    /// <param name="lookAhead">How far ahead of the consumer the workers may run (at least 1).</param>
    /// <param name="dispose">Releases results that were made but not consumed; optional.</param>
    /// <param name="cancellationToken">Stops the workers.</param>
    /// <returns>The results, lazily; enumerate once.</returns>
    public static IEnumerable<TOut> Map<TOut>(long count, Func<long, TOut> map, int workers, int lookAhead, Action<TOut>? dispose, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentNullException.ThrowIfNull(map);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(workers);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(lookAhead);
        return Run(count, map, workers, lookAhead, dispose, cancellationToken);
    }

    private static IEnumerable<TOut> Run<TOut>(long count, Func<long, TOut> map, int workers, int lookAhead, Action<TOut>? dispose, CancellationToken cancellationToken)
    {
        var gate = new object();
        var results = new Dictionary<long, TOut>();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var token = cts.Token;
        long next = -1;
        long consumed = 0;
        ExceptionDispatchInfo? failure = null;

        void Work()
        {
            while (!token.IsCancellationRequested)
            {
                long i = Interlocked.Increment(ref next);
                if (i >= count)
                {
                    return;
                }

                lock (gate)
                {
                    while (i >= consumed + lookAhead && !token.IsCancellationRequested)
                    {
                        Monitor.Wait(gate, 100);
                    }
                }

                if (token.IsCancellationRequested)
                {
                    return;
                }

                TOut result;
                try
                {
                    result = map(i);
                }
#pragma warning disable CA1031 // Handed to the consumer, which rethrows it.
                catch (Exception e)
#pragma warning restore CA1031
                {
                    lock (gate)
                    {
                        failure ??= ExceptionDispatchInfo.Capture(e);
                        Monitor.PulseAll(gate);
                    }

                    cts.Cancel();
                    return;
                }

                lock (gate)
                {
                    results[i] = result;
                    Monitor.PulseAll(gate);
                }
            }
        }

        var threads = Enumerable.Range(0, (int)Math.Min(workers, Math.Max(1, count))).Select(n => new Thread(Work) { IsBackground = true, Name = $"cvrl-map-{n}" }).ToList();
        threads.ForEach(t => t.Start());
        try
        {
            for (long i = 0; i < count; i++)
            {
                TOut value;
                lock (gate)
                {
                    while (!results.ContainsKey(i) && failure is null && !token.IsCancellationRequested)
                    {
                        Monitor.Wait(gate, 100);
                    }

                    failure?.Throw();
                    token.ThrowIfCancellationRequested();
                    value = results[i];
                    results.Remove(i);
                    consumed = i + 1;
                    Monitor.PulseAll(gate);
                }

                yield return value;
            }
        }
        finally
        {
            cts.Cancel();
            lock (gate)
            {
                Monitor.PulseAll(gate);
            }

            threads.ForEach(t => t.Join());
            if (dispose is not null)
            {
                foreach (var leftover in results.Values)
                {
                    dispose(leftover);
                }
            }
        }
    }
}
