using System.Runtime.ExceptionServices;

namespace Cvrl.Data;

/// <summary>
/// Maps items on worker threads and yields the results in input order, with a bounded look-ahead (so memory stays
/// bounded), exception propagation (the first worker exception reaches the consumer) and prompt cancellation. Results
/// not consumed (after an exception, cancellation or an early exit) are released with the disposer.
/// </summary>
internal static class OrderedParallel
{
    public static IEnumerable<TOut> Map<TIn, TOut>(IReadOnlyList<TIn> items, Func<TIn, int, TOut> map, int workers, int lookAhead, Action<TOut>? dispose, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(items);
        ArgumentNullException.ThrowIfNull(map);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(workers);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(lookAhead);
        return Run(items, map, workers, lookAhead, dispose, cancellationToken);
    }

    private static IEnumerable<TOut> Run<TIn, TOut>(IReadOnlyList<TIn> items, Func<TIn, int, TOut> map, int workers, int lookAhead, Action<TOut>? dispose, CancellationToken cancellationToken)
    {
        var gate = new object();
        var results = new Dictionary<int, TOut>();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var token = cts.Token;
        int next = -1;
        int consumed = 0;
        ExceptionDispatchInfo? failure = null;

        void Work()
        {
            while (!token.IsCancellationRequested)
            {
                int i = Interlocked.Increment(ref next);
                if (i >= items.Count)
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
                    result = map(items[i], i);
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

        var threads = Enumerable.Range(0, Math.Min(workers, Math.Max(1, items.Count))).Select(n => new Thread(Work) { IsBackground = true, Name = $"cvrl-map-{n}" }).ToList();
        threads.ForEach(t => t.Start());
        try
        {
            for (int i = 0; i < items.Count; i++)
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
