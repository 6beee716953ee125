using System.Runtime.InteropServices;
using System.Text;

namespace Cvrl.Distributed;

/// <summary>Options for <see cref="MpiCommunicator.Initialize"/>.</summary>
public sealed record MpiOptions
{
    /// <summary>
    /// The MPI library to load; null tries, in order, the environment variable <c>CVRL_MPI_LIBRARY</c>,
    /// <c>libmpi.so.12</c> (MPICH, Intel MPI, MVAPICH, Cray MPICH) and <c>libmpich.so.12</c> (Debian's and Ubuntu's MPICH
    /// package). Default null.
    /// </summary>
    public string? Library { get; init; }

    /// <summary>
    /// The longest a collective may wait for the other ranks before the job is ended as hung (a rank died without the
    /// launcher noticing, or deadlocked). Default 10 minutes; it must cover the slowest step and checkpoint of any rank.
    /// </summary>
    public TimeSpan CollectiveTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The timeout is not positive.</exception>
    public void Validate()
    {
        if (CollectiveTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(CollectiveTimeout), CollectiveTimeout, "CollectiveTimeout must be positive.");
        }
    }
}

/// <summary>
/// The processes of an MPI job (started by <c>mpiexec</c>/<c>mpirun</c>, or Slurm's <c>srun --mpi=pmi2</c>), over any
/// MPI library with MPICH's application binary interface: MPICH, Intel MPI, MVAPICH, Cray MPICH (Debian and Ubuntu:
/// <c>apt-get install mpich</c>). Calls the C API through function pointers; nothing MPI-related is loaded until
/// <see cref="Initialize"/> is called.
/// </summary>
/// <remarks>
/// <para>
/// Open MPI has another binary interface and is not supported (the error says so when it is detected). Every
/// collective runs with a watchdog: when it has waited longer than <see cref="MpiOptions.CollectiveTimeout"/>, the job
/// is aborted with a message naming the collective, so a dead or stuck rank cannot hang the others forever. A rank
/// killed outright is noticed by the launcher, which ends the other ranks.
/// </para>
/// </remarks>
public sealed unsafe class MpiCommunicator : ICommunicator
{
    private const int CommWorld = 0x44000000;
    private const int TypeByte = 0x4c00010d;
    private const int TypeFloat = 0x4c00040a;
    private const int TypeDouble = 0x4c00080b;
    private const int OpMax = 0x58000001;
    private const int OpMin = 0x58000002;
    private const int OpSum = 0x58000003;
    private const int ThreadMultiple = 3;
    private const int CommTypeShared = 1;
    private const int InfoNull = 0x1c000000;
    private const int MaxCount = 1 << 30;
    private static readonly IntPtr InPlace = new(-1);
    private static readonly Lock InitGate = new();
    private static MpiCommunicator? s_instance;

    private readonly Api _api;
    private readonly TimeSpan _timeout;
    private readonly Thread _watchdog;
    private long _deadlineTicks;
    private string _current = string.Empty;
    private volatile bool _disposed;

    private MpiCommunicator(Api api, MpiOptions options)
    {
        _api = api;
        _timeout = options.CollectiveTimeout;
        int rank, size, local = 0, localSize = 1, shared;
        Check(api.CommRank(CommWorld, &rank), "MPI_Comm_rank");
        Check(api.CommSize(CommWorld, &size), "MPI_Comm_size");
        if (api.CommSplitType(CommWorld, CommTypeShared, rank, InfoNull, &shared) == 0)
        {
            api.CommRank(shared, &local);
            api.CommSize(shared, &localSize);
            api.CommFree(&shared);
        }

        (Rank, Size, LocalRank, LocalSize) = (rank, size, local, localSize);
        Description = $"MPI rank {rank} of {size} (local rank {local}), {api.LibraryVersion} ({api.Path})";
        _watchdog = new Thread(Watch) { IsBackground = true, Name = "Cvrl MPI watchdog" };
        _watchdog.Start();
    }

    /// <inheritdoc />
    public int Rank { get; }

    /// <inheritdoc />
    public int Size { get; }

    /// <inheritdoc />
    public int LocalRank { get; }

    /// <inheritdoc />
    public int LocalSize { get; }

    /// <inheritdoc />
    public string Description { get; }

    /// <summary>
    /// Whether this process was started by an MPI launcher (<c>mpiexec</c>/<c>mpirun</c> of MPICH's family, or Slurm with
    /// PMI), judged from the environment variables launchers set; loads nothing.
    /// </summary>
    public static bool IsLaunchedByMpi =>
        Environment.GetEnvironmentVariable("PMI_RANK") is not null
        || Environment.GetEnvironmentVariable("PMI_SIZE") is not null
        || Environment.GetEnvironmentVariable("PMIX_RANK") is not null
        || Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") is not null;

    /// <summary>The number of processes the launcher started (from its environment variables), or 1.</summary>
    public static int LaunchedSize =>
        int.TryParse(Environment.GetEnvironmentVariable("PMI_SIZE") ?? Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") ?? Environment.GetEnvironmentVariable("SLURM_NTASKS"), out int n) && n > 0 ? n : 1;

    /// <summary>
    /// Loads the MPI library, initialises MPI (with full thread support) and returns the communicator of all processes
    /// (<c>MPI_COMM_WORLD</c>). One per process: later calls return the same instance.
    /// </summary>
    /// <param name="options">Options (validated); null for the defaults.</param>
    /// <returns>The communicator, owned by the process (disposing it finalises MPI).</returns>
    /// <exception cref="DllNotFoundException">No MPICH-compatible library was found; the message names the ones tried and how to install one.</exception>
    /// <exception cref="NotSupportedException">The process was started by Open MPI, whose binary interface differs.</exception>
    /// <exception cref="InvalidOperationException">MPI could not be initialised, or does not support threads.</exception>
    public static MpiCommunicator Initialize(MpiOptions? options = null)
    {
        options ??= new MpiOptions();
        options.Validate();
        lock (InitGate)
        {
            if (s_instance is { _disposed: false } existing)
            {
                return existing;
            }

            if (Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") is not null && options.Library is null && Environment.GetEnvironmentVariable("CVRL_MPI_LIBRARY") is null)
            {
                throw new NotSupportedException(
                    "This process was started by Open MPI, whose binary interface differs from MPICH's. Cvrl talks to MPICH-compatible libraries (MPICH, Intel MPI, MVAPICH, Cray MPICH): start it with MPICH's mpiexec (apt-get install mpich), or set CVRL_MPI_LIBRARY to an MPICH-compatible libmpi.so.12.");
            }

            var api = Api.Load(options.Library);
            int initialised;
            api.Initialized(&initialised);
            if (initialised == 0)
            {
                int provided;
                Check(api.InitThread(null, null, ThreadMultiple, &provided), "MPI_Init_thread");
                if (provided < ThreadMultiple)
                {
                    throw new InvalidOperationException($"{api.Path} provides thread level {provided}; Cvrl needs MPI_THREAD_MULTIPLE ({ThreadMultiple}) for its watchdog and loader threads.");
                }
            }

            s_instance = new MpiCommunicator(api, options);
            return s_instance;
        }
    }

    /// <inheritdoc />
    public void Barrier()
    {
        Begin("MPI_Barrier");
        End(_api.Barrier(CommWorld));
    }

    /// <inheritdoc />
    public void Broadcast(Span<byte> buffer, int root = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(root);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(root, Size);
        fixed (byte* p = buffer)
        {
            byte* start = p;
            int total = buffer.Length;
            for (int offset = 0; offset < total; offset += MaxCount)
            {
                int count = Math.Min(MaxCount, total - offset);
                Begin("MPI_Bcast");
                End(_api.Bcast(start + offset, count, TypeByte, root, CommWorld));
            }
        }
    }

    /// <inheritdoc />
    public void AllReduce(Span<float> buffer, ReduceOp op)
    {
        fixed (float* p = buffer)
        {
            AllReduce((byte*)p, buffer.Length, sizeof(float), TypeFloat, op);
        }
    }

    /// <inheritdoc />
    public void AllReduce(Span<double> buffer, ReduceOp op)
    {
        fixed (double* p = buffer)
        {
            AllReduce((byte*)p, buffer.Length, sizeof(double), TypeDouble, op);
        }
    }

    /// <inheritdoc />
    public void AllGather(ReadOnlySpan<float> send, Span<float> receive)
    {
        if (receive.Length != send.Length * (long)Size)
        {
            throw new ArgumentException($"The receive buffer holds {receive.Length} values; {Size} ranks of {send.Length} need {send.Length * (long)Size}.", nameof(receive));
        }

        if (send.Length > MaxCount)
        {
            throw new ArgumentException($"AllGather sends at most {MaxCount} values per rank.", nameof(send));
        }

        fixed (float* s = send)
        fixed (float* r = receive)
        {
            Begin("MPI_Allgather");
            End(_api.Allgather(s, send.Length, TypeFloat, r, send.Length, TypeFloat, CommWorld));
        }
    }

    /// <inheritdoc />
    public void Abort(int exitCode, string message)
    {
        Console.Error.WriteLine($"error: rank {Rank}: {message}");
        Console.Error.Flush();
        _api.Abort(CommWorld, exitCode);
        Environment.Exit(exitCode); // MPI_Abort does not return; this is for libraries that do
    }

    /// <summary>Finalises MPI (every rank must dispose its communicator at the end of the job).</summary>
    public void Dispose()
    {
        lock (InitGate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            int finalised;
            _api.Finalized(&finalised);
            if (finalised == 0)
            {
                _api.Finalize();
            }
        }
    }

    private static void Check(int code, string call)
    {
        if (code != 0)
        {
            throw new InvalidOperationException($"{call} failed with MPI error code {code}.");
        }
    }

    private void AllReduce(byte* data, int length, int elementSize, int type, ReduceOp op)
    {
        int mpiOp = op switch
        {
            ReduceOp.Sum => OpSum,
            ReduceOp.Max => OpMax,
            ReduceOp.Min => OpMin,
            _ => throw new ArgumentOutOfRangeException(nameof(op), op, "Unknown reduction."),
        };
        for (int offset = 0; offset < length; offset += MaxCount)
        {
            int count = Math.Min(MaxCount, length - offset);
            Begin("MPI_Allreduce");
            End(_api.Allreduce((void*)InPlace, data + ((long)offset * elementSize), count, type, mpiOp, CommWorld));
        }
    }

    /// <summary>Starts the watchdog's deadline for one collective.</summary>
    private void Begin(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _current = name;
        Interlocked.Exchange(ref _deadlineTicks, DateTime.UtcNow.Add(_timeout).Ticks);
    }

    /// <summary>Clears the deadline; a failing call ends the job.</summary>
    private void End(int code)
    {
        Interlocked.Exchange(ref _deadlineTicks, 0);
        if (code != 0)
        {
            Abort(code, $"{_current} failed with MPI error code {code}.");
        }
    }

    private void Watch()
    {
        while (!_disposed)
        {
            Thread.Sleep(500);
            long deadline = Interlocked.Read(ref _deadlineTicks);
            if (deadline != 0 && DateTime.UtcNow.Ticks > deadline)
            {
                Abort(124, $"{_current} waited more than {_timeout.TotalSeconds:0} s for the other ranks (one of them died or hangs); ending the job.");
            }
        }
    }

    /// <summary>The MPI C functions, resolved from the loaded library.</summary>
    private sealed class Api
    {
        public required string Path { get; init; }

        public required string LibraryVersion { get; init; }

        public required delegate* unmanaged[Cdecl]<int*, int> Initialized { get; init; }

        public required delegate* unmanaged[Cdecl]<int*, byte***, int, int*, int> InitThread { get; init; }

        public required delegate* unmanaged[Cdecl]<int*, int> Finalized { get; init; }

        public required delegate* unmanaged[Cdecl]<int> Finalize { get; init; }

        public required delegate* unmanaged[Cdecl]<int, int*, int> CommRank { get; init; }

        public required delegate* unmanaged[Cdecl]<int, int*, int> CommSize { get; init; }

        public required delegate* unmanaged[Cdecl]<int, int, int, int, int*, int> CommSplitType { get; init; }

        public required delegate* unmanaged[Cdecl]<int*, int> CommFree { get; init; }

        public required delegate* unmanaged[Cdecl]<int, int> Barrier { get; init; }

        public required delegate* unmanaged[Cdecl]<void*, int, int, int, int, int> Bcast { get; init; }

        public required delegate* unmanaged[Cdecl]<void*, void*, int, int, int, int, int> Allreduce { get; init; }

        public required delegate* unmanaged[Cdecl]<void*, int, int, void*, int, int, int, int> Allgather { get; init; }

        public required delegate* unmanaged[Cdecl]<int, int, int> Abort { get; init; }

        public static Api Load(string? library)
        {
            var candidates = new List<string>();
            if (library is not null)
            {
                candidates.Add(library);
            }
            else
            {
                if (Environment.GetEnvironmentVariable("CVRL_MPI_LIBRARY") is { Length: > 0 } fromEnvironment)
                {
                    candidates.Add(fromEnvironment);
                }

                candidates.AddRange(["libmpi.so.12", "libmpich.so.12"]);
            }

            IntPtr handle = IntPtr.Zero;
            string? loaded = null;
            var errors = new List<string>();
            foreach (string candidate in candidates)
            {
                if (NativeLibrary.TryLoad(candidate, out handle))
                {
                    loaded = candidate;
                    break;
                }

                errors.Add(candidate);
            }

            if (loaded is null)
            {
                throw new DllNotFoundException(
                    $"MPI was asked for, but no MPICH-compatible MPI library could be loaded (tried {string.Join(", ", errors)}). Install MPICH (Debian/Ubuntu: apt-get install mpich; its library is libmpich.so.12), load your cluster's MPICH, Intel MPI or MVAPICH module, or set CVRL_MPI_LIBRARY to the library's path.");
            }

            T Get<T>(string name)
                where T : unmanaged
            {
                if (!NativeLibrary.TryGetExport(handle, name, out IntPtr address))
                {
                    throw new DllNotFoundException($"The MPI library '{loaded}' has no function {name}; it is not an MPI-3 library with MPICH's interface.");
                }

                return *(T*)&address;
            }

            var getVersion = Get<IntPtr>("MPI_Get_library_version");
            string version = "MPI";
            var buffer = new byte[8192];
            int length;
            fixed (byte* b = buffer)
            {
                if (((delegate* unmanaged[Cdecl]<byte*, int*, int>)getVersion)(b, &length) == 0 && length > 0)
                {
                    version = Encoding.ASCII.GetString(buffer, 0, Math.Min(length, buffer.Length)).Split('\n')[0].Trim();
                }
            }

            return new Api
            {
                Path = loaded,
                LibraryVersion = version,
                Initialized = (delegate* unmanaged[Cdecl]<int*, int>)Get<IntPtr>("MPI_Initialized"),
                InitThread = (delegate* unmanaged[Cdecl]<int*, byte***, int, int*, int>)Get<IntPtr>("MPI_Init_thread"),
                Finalized = (delegate* unmanaged[Cdecl]<int*, int>)Get<IntPtr>("MPI_Finalized"),
                Finalize = (delegate* unmanaged[Cdecl]<int>)Get<IntPtr>("MPI_Finalize"),
                CommRank = (delegate* unmanaged[Cdecl]<int, int*, int>)Get<IntPtr>("MPI_Comm_rank"),
                CommSize = (delegate* unmanaged[Cdecl]<int, int*, int>)Get<IntPtr>("MPI_Comm_size"),
                CommSplitType = (delegate* unmanaged[Cdecl]<int, int, int, int, int*, int>)Get<IntPtr>("MPI_Comm_split_type"),
                CommFree = (delegate* unmanaged[Cdecl]<int*, int>)Get<IntPtr>("MPI_Comm_free"),
                Barrier = (delegate* unmanaged[Cdecl]<int, int>)Get<IntPtr>("MPI_Barrier"),
                Bcast = (delegate* unmanaged[Cdecl]<void*, int, int, int, int, int>)Get<IntPtr>("MPI_Bcast"),
                Allreduce = (delegate* unmanaged[Cdecl]<void*, void*, int, int, int, int, int>)Get<IntPtr>("MPI_Allreduce"),
                Allgather = (delegate* unmanaged[Cdecl]<void*, int, int, void*, int, int, int, int>)Get<IntPtr>("MPI_Allgather"),
                Abort = (delegate* unmanaged[Cdecl]<int, int, int>)Get<IntPtr>("MPI_Abort"),
            };
        }
    }
}
