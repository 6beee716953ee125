namespace Cvrl.Distributed;

/// <summary>The reduction of <see cref="ICommunicator.AllReduce(Span{float}, ReduceOp)"/>.</summary>
public enum ReduceOp
{
    /// <summary>Element-wise sum over the ranks.</summary>
    Sum,

    /// <summary>Element-wise maximum over the ranks.</summary>
    Max,

    /// <summary>Element-wise minimum over the ranks.</summary>
    Min,
}

/// <summary>
/// The processes of one data-parallel job and the collective operations between them: every rank calls the same
/// collectives in the same order. <see cref="SingleProcessCommunicator"/> is the default (one rank; every collective is
/// the identity); <see cref="MpiCommunicator"/> connects the processes <c>mpiexec</c> or Slurm started.
/// </summary>
/// <remarks>
/// Buffers are host memory; <see cref="TensorCollectives"/> moves tensors through one contiguous host buffer per call.
/// A collective that fails, or that waits longer than the communicator's timeout for a rank that never arrives, ends
/// the whole job with an error on standard error and a non-zero exit code: a data-parallel job cannot continue with a
/// rank missing, and a hang is worse than a clear failure.
/// </remarks>
public interface ICommunicator : IDisposable
{
    /// <summary>This process's rank, 0 to <see cref="Size"/> - 1.</summary>
    int Rank { get; }

    /// <summary>The number of processes.</summary>
    int Size { get; }

    /// <summary>This process's rank among the processes on the same machine (for choosing <c>cuda:{LocalRank}</c>).</summary>
    int LocalRank { get; }

    /// <summary>The number of processes on this machine (for sharing its cores between them).</summary>
    int LocalSize { get; }

    /// <summary>A description for logs ("single process", "MPI: MPICH Version: 4.0.2 ...").</summary>
    string Description { get; }

    /// <summary>Waits until every rank has called it.</summary>
    void Barrier();

    /// <summary>Copies <paramref name="buffer"/> of rank <paramref name="root"/> into every rank's buffer.</summary>
    void Broadcast(Span<byte> buffer, int root = 0);

    /// <summary>Replaces <paramref name="buffer"/> on every rank with the element-wise reduction over the ranks.</summary>
    void AllReduce(Span<float> buffer, ReduceOp op);

    /// <inheritdoc cref="AllReduce(Span{float}, ReduceOp)"/>
    void AllReduce(Span<double> buffer, ReduceOp op);

    /// <summary>
    /// Gathers every rank's <paramref name="send"/> (the same length on every rank) into <paramref name="receive"/>
    /// (<see cref="Size"/> times as long), rank 0's first.
    /// </summary>
    void AllGather(ReadOnlySpan<float> send, Span<float> receive);

    /// <summary>Ends every process of the job with <paramref name="exitCode"/> after printing <paramref name="message"/> on standard error.</summary>
    void Abort(int exitCode, string message);
}
