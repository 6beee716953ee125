using System.Diagnostics;
using System.Globalization;
using Cvrl.Augment;
using Cvrl.Distributed;
using Cvrl.Models;
using Cvrl.Training;
using TorchSharp;

namespace Cvrl.Benchmarks;

/// <summary>
/// Issue 11's benchmark: the same global batch trained by one process (all cores) and by two MPI processes (one core
/// each) on this machine; step time, scaling, the time and bytes of every collective, and the gradient bytes that decide
/// the cost across machines. Started without mpiexec it measures one process, then starts itself under
/// <c>mpiexec -n 2</c> for the second row.
/// </summary>
internal static class DistributedBenchmark
{
    private const int Warmup = 3;

    public static int Run(string[] args)
    {
        int steps = AugmentBenchmark.Option(args, "--steps", 30);
        int batch = AugmentBenchmark.Option(args, "--batch", 16);
        using var communicator = Communicators.FromEnvironment();
        if (args.Contains("--row"))
        {
            // One row, printed by rank 0 (run under mpiexec by the parent below, or directly for one process).
            string row = Measure(communicator, steps, batch, !args.Contains("--no-sync-bn"));
            if (communicator.Rank == 0)
            {
                Console.WriteLine("ROW " + row);
            }

            return 0;
        }

        var ci = CultureInfo.InvariantCulture;
        string single = Measure(communicator, steps, batch, sync: false);
        string? two = Spawn(steps, batch, sync: true);
        string? twoLocal = Spawn(steps, batch, sync: false);
        if (two is null || twoLocal is null)
        {
            return 1;
        }

        double t1 = double.Parse(single.Split('|')[1], ci), t2 = double.Parse(two.Split('|')[1], ci), t3 = double.Parse(twoLocal.Split('|')[1], ci);
        Console.WriteLine("### Data-parallel pre-training over MPI (issue 11)");
        Console.WriteLine();
        Console.WriteLine($"Command: `dotnet run -c Release --project benchmarks/Cvrl.Benchmarks -- distributed --steps {steps} --batch {batch}` (it starts `mpiexec -n 2` itself for the rows with 2 processes)  ");
        Console.WriteLine($"Machine: {Machine.Describe()}; MPICH from Debian (`apt-get install mpich`), shared memory between the two processes  ");
        Console.WriteLine($"Model: R3D-18 0.25x with the projection head, 8 x 64 x 64 clips, global batch {batch} videos ({2 * batch} clips), SGD. " +
                          $"One process: 2 torch threads, 2 loader workers. Two processes: 1 thread and 1 worker each (the same 2 cores). Seconds per step on rank 0, mean of steps {Warmup + 1} to {steps}. " +
                          "Collectives are timed and counted around every call (a wrapper around the communicator), so their time includes waiting for the slower process.");
        Console.WriteLine();
        Console.WriteLine("| processes | step (s) | clips/s | forward (with backward under MPI) | backward | optimizer | data wait | collectives (s) | collectives share | gradient all-reduce (s) | collective calls | bytes all-reduced | bytes gathered | gradient bytes |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        Console.WriteLine("| 1 |" + single.Split('|', 2)[1]);
        Console.WriteLine("| 2, synchronised BatchNorm (default) |" + two.Split('|', 2)[1]);
        Console.WriteLine("| 2, per-process BatchNorm |" + twoLocal.Split('|', 2)[1]);
        Console.WriteLine();
        Console.WriteLine(string.Create(ci, $"Scaling on this machine (the same 2 cores either way): two processes take {t2 / t1:0.00}x the step time of one process with synchronised BatchNorm and {t3 / t1:0.00}x without (efficiency {t1 / t2:P0} and {t1 / t3:P0})."));
        return 0;
    }

    /// <summary>Runs this program's row under <c>mpiexec -n 2</c> and returns it (null after printing the failure).</summary>
    private static string? Spawn(int steps, int batch, bool sync)
    {
        var ci = CultureInfo.InvariantCulture;
        var start = new ProcessStartInfo("mpiexec") { RedirectStandardOutput = true, UseShellExecute = false };
        string[] args = ["-n", "2", "dotnet", typeof(DistributedBenchmark).Assembly.Location, "distributed", "--row", "--steps", steps.ToString(ci), "--batch", batch.ToString(ci), .. sync ? Array.Empty<string>() : ["--no-sync-bn"]];
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        using var mpi = Process.Start(start)!;
        string output = mpi.StandardOutput.ReadToEnd();
        mpi.WaitForExit();
        string? row = output.Split('\n').FirstOrDefault(l => l.StartsWith("ROW ", StringComparison.Ordinal))?[4..];
        if (mpi.ExitCode != 0 || row is null)
        {
            Console.Error.WriteLine($"mpiexec -n 2 failed ({mpi.ExitCode}):\n{output}");
            return null;
        }

        return row;
    }

    /// <summary>Trains for <paramref name="steps"/> steps and returns "|processes|step|clips/s|..." (the first cell is filled by the caller).</summary>
    private static string Measure(ICommunicator communicator, int steps, int batch, bool sync)
    {
        var ci = CultureInfo.InvariantCulture;
        string dir = Path.Combine(Path.GetTempPath(), "cvrl-bench-distributed");
        if (communicator.Rank == 0)
        {
            TrainerBenchmark.MakeVideos(dir, 48);
        }

        communicator.Barrier();
        var data = Cvrl.Data.VideoDataset.FromFolder(dir);
        torch.set_num_threads(communicator.ThreadsPerProcess());
        var counting = new CountingCommunicator(communicator);
        torch.manual_seed(0);
        using var encoder = ResNet3d.R3d18(0.25);
        int stepsPerEpoch = data.Count / batch;
        var options = new CvrlTrainerOptions
        {
            Epochs = (steps + stepsPerEpoch - 1) / stepsPerEpoch,
            BatchSize = batch,
            LearningRate = 0.01,
            Workers = communicator.ThreadsPerProcess(),
            LogEverySteps = 1,
            SyncBatchNorm = sync && communicator.Size > 1,
            Views = new CvrlViewOptions { CropSize = 64, Sampler = new() { FramesPerClip = 8, Stride = 2 } },
        };
        using var trainer = new CvrlTrainer(encoder, options, null, counting);
        var timings = new List<StepTimings>();
        var calls = new List<(long Calls, long Reduced, long Gathered, double Seconds, double GradientSeconds)>();
        // Progress (one report per step) reaches rank 0 only, which is the rank that prints the row.
        trainer.Fit(data, new TrainerBenchmark.Recorder(p =>
        {
            timings.Add(p.Timings);
            calls.Add(counting.TakeCounts());
        }));
        var t = timings.Skip(Warmup).Take(steps - Warmup).ToList();
        var c = calls.Skip(Warmup).Take(steps - Warmup).ToList();
        if (t.Count == 0)
        {
            return "|0|0|0|0|0|0|0|0|0|0|0|0|0|";
        }

        double step = t.Average(x => x.Total);
        double collective = c.Average(x => x.Seconds);
        long gradientBytes = trainer.Encoder.parameters().Concat(trainer.Head.parameters()).Sum(p => p.numel()) * sizeof(float);
        return string.Create(ci,
            $"|{step:0.000}|{2 * batch / step:0.0}|{t.Average(x => x.Forward):0.000}|{t.Average(x => x.Backward):0.000}|{t.Average(x => x.Optimizer):0.000}|{t.Average(x => x.DataWait):0.000}|{collective:0.0000}|{collective / step:P1}|{c.Average(x => x.GradientSeconds):0.0000}|{c.Average(x => x.Calls):0}|{c.Average(x => x.Reduced) / 1e6:0.00} MB|{c.Average(x => x.Gathered) / 1e3:0.0} kB|{gradientBytes / 1e6:0.00} MB ({gradientBytes / 4 / 1e6:0.00}M float32)|");
    }

    /// <summary>Times and counts every collective of the communicator it wraps.</summary>
    private sealed class CountingCommunicator(ICommunicator inner) : ICommunicator
    {
        private long _calls;
        private long _reduced;
        private long _gathered;
        private long _ticks;
        private long _gradientTicks;

        public int Rank => inner.Rank;

        public int Size => inner.Size;

        public int LocalRank => inner.LocalRank;

        public int LocalSize => inner.LocalSize;

        public string Description => inner.Description;

        /// <summary>Calls, bytes all-reduced, bytes gathered, seconds in collectives and seconds in the gradient bucket's all-reduce (the calls over 1 MB) since the last call.</summary>
        public (long Calls, long Reduced, long Gathered, double Seconds, double GradientSeconds) TakeCounts() =>
            (Interlocked.Exchange(ref _calls, 0), Interlocked.Exchange(ref _reduced, 0), Interlocked.Exchange(ref _gathered, 0),
             Interlocked.Exchange(ref _ticks, 0) / (double)Stopwatch.Frequency, Interlocked.Exchange(ref _gradientTicks, 0) / (double)Stopwatch.Frequency);

        public void Barrier()
        {
            long start = Stopwatch.GetTimestamp();
            inner.Barrier();
            Count(start, 0, 0);
        }

        public void Broadcast(Span<byte> buffer, int root = 0)
        {
            long start = Stopwatch.GetTimestamp();
            inner.Broadcast(buffer, root);
            Count(start, 0, 0);
        }

        public void AllReduce(Span<float> buffer, ReduceOp op)
        {
            long start = Stopwatch.GetTimestamp();
            inner.AllReduce(buffer, op);
            Count(start, buffer.Length * sizeof(float), 0);
        }

        public void AllReduce(Span<double> buffer, ReduceOp op)
        {
            long start = Stopwatch.GetTimestamp();
            inner.AllReduce(buffer, op);
            Count(start, buffer.Length * sizeof(double), 0);
        }

        public void AllGather(ReadOnlySpan<float> send, Span<float> receive)
        {
            long start = Stopwatch.GetTimestamp();
            inner.AllGather(send, receive);
            Count(start, 0, receive.Length * sizeof(float));
        }

        public void Abort(int exitCode, string message) => inner.Abort(exitCode, message);

        public void Dispose()
        {
        }

        private void Count(long start, long reduced, long gathered)
        {
            long ticks = Stopwatch.GetTimestamp() - start;
            Interlocked.Add(ref _ticks, ticks);
            if (reduced > 1 << 20)
            {
                Interlocked.Add(ref _gradientTicks, ticks);
            }

            Interlocked.Increment(ref _calls);
            Interlocked.Add(ref _reduced, reduced);
            Interlocked.Add(ref _gathered, gathered);
        }
    }
}
