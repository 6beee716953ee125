using System.Globalization;
using System.Runtime.InteropServices;

namespace Cvrl.Models;

/// <summary>
/// Keeps the native heap from creeping up during long training runs on Linux/glibc.
/// </summary>
/// <remarks>
/// Measured here (docs/benchmarks.md): a TorchSharp 0.107 / libtorch 2.10 training loop frees every tensor it should,
/// yet glibc's main heap fragments and resident memory grows by tens of megabytes per step, while the same loop in
/// PyTorch 1.13 stays flat. Returning free pages to the system (<c>malloc_trim</c>) keeps resident memory flat, at the
/// price of faulting those pages in again on the next step, so the guard trims only when resident memory (sampled at
/// the end of a step) has grown past a budget above the level measured during warm-up: both a fraction of it and an
/// absolute minimum. On other platforms it does nothing.
/// </remarks>
public sealed class NativeHeapGuard
{
    private readonly double _tolerance;
    private readonly int _warmupSteps;
    private readonly long _minimumGrowth;
    private long _baseline;
    private int _steps;

    /// <summary>Creates a guard.</summary>
    /// <param name="tolerance">Allowed growth above the post-warm-up resident size before trimming (default 0.05 = 5%).</param>
    /// <param name="warmupSteps">Steps whose resident size sets the baseline (default 2).</param>
    /// <param name="minimumGrowthMiB">Never trim for less growth than this, whatever the tolerance (default 128 MiB): small models fluctuate by more than a few percent without fragmenting.</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is negative.</exception>
    public NativeHeapGuard(double tolerance = 0.05, int warmupSteps = 2, int minimumGrowthMiB = 128)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tolerance);
        ArgumentOutOfRangeException.ThrowIfNegative(warmupSteps);
        ArgumentOutOfRangeException.ThrowIfNegative(minimumGrowthMiB);
        _tolerance = tolerance;
        _warmupSteps = warmupSteps;
        _minimumGrowth = minimumGrowthMiB * 1048576L;
    }

    /// <summary>Number of trims so far.</summary>
    public int Trims { get; private set; }

    /// <summary>The resident size the guard holds to (bytes), 0 before warm-up ends.</summary>
    public long Baseline => _baseline;

    /// <summary>Call after each training step (outside the step's dispose scope). Returns true when it trimmed.</summary>
    public bool AfterStep()
    {
        _steps++;
        if (!NativeHeap.IsSupported)
        {
            return false;
        }

        long rss = NativeHeap.ResidentBytes();
        if (_steps <= _warmupSteps)
        {
            // The heap a step needs stays resident between steps (and is reused): that is the working set to hold to.
            _baseline = Math.Max(_baseline, rss);
            return false;
        }

        if (rss > (long)(_baseline * (1 + _tolerance)) && rss - _baseline > _minimumGrowth)
        {
            NativeHeap.Trim();
            Trims++;
            return true;
        }

        return false;
    }
}

/// <summary>Native heap helpers (Linux/glibc; no-ops elsewhere).</summary>
public static class NativeHeap
{
    private static readonly bool s_supported = OperatingSystem.IsLinux() && File.Exists("/proc/self/status") && Probe();

    /// <summary>Whether trimming is available (Linux with glibc).</summary>
    public static bool IsSupported => s_supported;

    /// <summary>Returns free heap pages to the system (<c>malloc_trim(0)</c>). Returns whether memory was released.</summary>
    public static bool Trim() => s_supported && MallocTrim(0) != 0;

    /// <summary>The process's resident set size in bytes (VmRSS), or 0 when unknown.</summary>
    public static long ResidentBytes() => ReadStatusKiB("VmRSS:") * 1024;

    /// <summary>The process's peak resident set size in bytes (VmHWM), or 0 when unknown.</summary>
    public static long PeakResidentBytes() => ReadStatusKiB("VmHWM:") * 1024;

    private static long ReadStatusKiB(string key)
    {
        const string status = "/proc/self/status";
        if (!File.Exists(status))
        {
            return 0;
        }

        foreach (string line in File.ReadLines(status))
        {
            if (line.StartsWith(key, StringComparison.Ordinal))
            {
                string value = line[key.Length..].Trim().Split(' ')[0];
                return long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long kib) ? kib : 0;
            }
        }

        return 0;
    }

    private static bool Probe() =>
        NativeLibrary.TryLoad("libc.so.6", out IntPtr libc) && NativeLibrary.TryGetExport(libc, "malloc_trim", out _);

    [DllImport("libc.so.6", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nint pad);
}
