namespace Cvrl.Distributed;

/// <summary>Chooses the communicator of a process from how it was started.</summary>
public static class Communicators
{
    /// <summary>
    /// An <see cref="MpiCommunicator"/> when an MPI launcher started this process as one of several
    /// (<see cref="MpiCommunicator.IsLaunchedByMpi"/>), otherwise <see cref="SingleProcessCommunicator.Instance"/>. Nothing
    /// MPI-related is loaded in the second case.
    /// </summary>
    /// <param name="options">MPI options (library, timeout); null for the defaults.</param>
    /// <exception cref="DllNotFoundException">Started by MPI, but no MPICH-compatible library could be loaded; the message says how to install one.</exception>
    public static ICommunicator FromEnvironment(MpiOptions? options = null) =>
        MpiCommunicator.IsLaunchedByMpi && MpiCommunicator.LaunchedSize > 1
            ? MpiCommunicator.Initialize(options)
            : SingleProcessCommunicator.Instance;

    /// <summary>
    /// The device a rank should use: "cuda" becomes "cuda:{LocalRank}" (one GPU per process on each machine); any other
    /// name is kept.
    /// </summary>
    public static string DeviceFor(this ICommunicator communicator, string device)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        ArgumentException.ThrowIfNullOrWhiteSpace(device);
        return communicator.Size > 1 && string.Equals(device.Trim(), "cuda", StringComparison.OrdinalIgnoreCase)
            ? $"cuda:{communicator.LocalRank}"
            : device;
    }

    /// <summary>
    /// The intra-op threads each process should use so that the processes on one machine share its cores
    /// (<see cref="Environment.ProcessorCount"/> / <see cref="ICommunicator.LocalSize"/>, at least 1).
    /// </summary>
    public static int ThreadsPerProcess(this ICommunicator communicator)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        return Math.Max(1, Environment.ProcessorCount / Math.Max(1, communicator.LocalSize));
    }
}
