using System.Runtime.InteropServices;
using Spectre.Console;

namespace Cvrl.Cli;

/// <summary>
/// How the tool is asked to stop: Ctrl+C (SIGINT), SIGTERM (what Docker, Kubernetes, systemd and Slurm send) and SIGHUP
/// (a closed terminal) all take the same path. The first signal cancels the running command, which stops at its next
/// safe point (pre-training: after the current step, with a checkpoint; embedding, indexing, preparing: after the
/// current video) and exits with the conventional code 128 + the signal's number; a second signal ends the process at
/// once. If the command has not ended within the grace period (<c>CVRL_STOP_GRACE_SECONDS</c>, default 600) after the
/// first signal, the process exits with the same code, saying so. Under mpiexec every rank receives the signal from the
/// launcher; the trainer makes all ranks stop at the same step, and rank 0 writes the checkpoint.
/// </summary>
internal sealed class StopSignals : IDisposable
{
    /// <summary>The grace period's default, in seconds.</summary>
    public const int DefaultGraceSeconds = 600;

    private readonly CancellationTokenSource _cancellation = new();
    private readonly List<PosixSignalRegistration> _registrations = [];
    private int _signal;

    /// <summary>Registers the handlers.</summary>
    public StopSignals()
    {
        foreach (var signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP })
        {
            _registrations.Add(PosixSignalRegistration.Create(signal, Handle));
        }
    }

    /// <summary>Cancelled by the first stop signal.</summary>
    public CancellationToken Token => _cancellation.Token;

    /// <summary>The exit code for a stop: 128 + the number of the signal received (130 when none was: a cancellation from elsewhere).</summary>
    public int ExitCode => 128 + (_signal == 0 ? 2 : _signal);

    /// <summary>The grace period from <c>CVRL_STOP_GRACE_SECONDS</c>, or the default.</summary>
    public static TimeSpan GracePeriod =>
        int.TryParse(Environment.GetEnvironmentVariable("CVRL_STOP_GRACE_SECONDS"), out int seconds) && seconds > 0
            ? TimeSpan.FromSeconds(seconds)
            : TimeSpan.FromSeconds(DefaultGraceSeconds);

    /// <summary>Releases the handlers.</summary>
    public void Dispose()
    {
        foreach (var registration in _registrations)
        {
            registration.Dispose();
        }

        _cancellation.Dispose();
    }

    private void Handle(PosixSignalContext context)
    {
        if (Interlocked.CompareExchange(ref _signal, Number(context.Signal), 0) != 0)
        {
            return; // A second signal: the default action ends the process.
        }

        context.Cancel = true;
        string name = context.Signal.ToString();
        Console.Error.WriteLine($"cvrl: {name} received: stopping at the next safe point (a second {name} stops at once)");
        _cancellation.Cancel();
        var grace = GracePeriod;
        var watchdog = new Thread(() =>
        {
            Thread.Sleep(grace);
            Console.Error.WriteLine($"cvrl: still running {grace.TotalSeconds:F0} s after {name} (CVRL_STOP_GRACE_SECONDS); exiting without waiting further");
            Environment.Exit(ExitCode);
        })
        { IsBackground = true, Name = "cvrl-stop-grace" };
        watchdog.Start();
    }

    private static int Number(PosixSignal signal) => signal switch
    {
        PosixSignal.SIGHUP => 1,
        PosixSignal.SIGINT => 2,
        PosixSignal.SIGTERM => 15,
        _ => 2,
    };
}
