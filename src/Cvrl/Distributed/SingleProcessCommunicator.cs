namespace Cvrl.Distributed;

/// <summary>One process, rank 0 of 1: every collective is the identity. The default communicator.</summary>
public sealed class SingleProcessCommunicator : ICommunicator
{
    /// <summary>The shared instance.</summary>
    public static SingleProcessCommunicator Instance { get; } = new();

    /// <inheritdoc />
    public int Rank => 0;

    /// <inheritdoc />
    public int Size => 1;

    /// <inheritdoc />
    public int LocalRank => 0;

    /// <inheritdoc />
    public int LocalSize => 1;

    /// <inheritdoc />
    public string Description => "single process";

    /// <inheritdoc />
    public void Barrier()
    {
    }

    /// <inheritdoc />
    public void Broadcast(Span<byte> buffer, int root = 0) => CheckRoot(root);

    /// <inheritdoc />
    public void AllReduce(Span<float> buffer, ReduceOp op) => CheckOp(op);

    /// <inheritdoc />
    public void AllReduce(Span<double> buffer, ReduceOp op) => CheckOp(op);

    /// <inheritdoc />
    public void AllGather(ReadOnlySpan<float> send, Span<float> receive)
    {
        if (receive.Length != send.Length)
        {
            throw new ArgumentException($"The receive buffer holds {receive.Length} values; one rank sends {send.Length}.", nameof(receive));
        }

        send.CopyTo(receive);
    }

    /// <inheritdoc />
    public void Abort(int exitCode, string message)
    {
        Console.Error.WriteLine(message);
        Environment.Exit(exitCode);
    }

    /// <summary>Nothing to release.</summary>
    public void Dispose()
    {
    }

    private static void CheckRoot(int root) => ArgumentOutOfRangeException.ThrowIfNotEqual(root, 0);

    private static void CheckOp(ReduceOp op)
    {
        if (!Enum.IsDefined(op))
        {
            throw new ArgumentOutOfRangeException(nameof(op), op, "Unknown reduction.");
        }
    }
}
