using System.Runtime.InteropServices;

namespace Cvrl.Benchmarks;

/// <summary>Describes the machine and reads process memory, for benchmark reports.</summary>
internal static class Machine
{
    public static string Describe()
    {
        string cpu = "unknown CPU";
        if (File.Exists("/proc/cpuinfo"))
        {
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? cpu;
        }

        string os = File.Exists("/etc/os-release")
            ? File.ReadLines("/etc/os-release").FirstOrDefault(l => l.StartsWith("PRETTY_NAME=", StringComparison.Ordinal))?.Split('=', 2)[1].Trim('"') ?? RuntimeInformation.OSDescription
            : RuntimeInformation.OSDescription;
        double memGiB = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1024.0 * 1024 * 1024);
        return $"{os}, {cpu}, {Environment.ProcessorCount} cores, {memGiB:0} GiB, .NET {Environment.Version}";
    }

    /// <summary>The Python for same-run baselines: <c>CVRL_PYTHON</c> when set, else Debian's /usr/bin/python3 if present, else null.</summary>
    public static string? Python => Environment.GetEnvironmentVariable("CVRL_PYTHON") is { Length: > 0 } chosen ? chosen
        : File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : null;

    /// <summary>The dotnet host running this process (a carried runtime on a GPU machine), for child benchmark processes.</summary>
    public static string DotnetHost => Environment.ProcessPath is { } path && Path.GetFileName(path) == "dotnet" ? path : "dotnet";

    /// <summary>Resident set size of this process in MiB (VmRSS), or NaN.</summary>
    public static double RssMiB() => ReadStatus("VmRSS:");

    /// <summary>Peak resident set size of this process in MiB (VmHWM), or NaN.</summary>
    public static double PeakRssMiB() => ReadStatus("VmHWM:");

    private static double ReadStatus(string key)
    {
        const string status = "/proc/self/status";
        if (!File.Exists(status))
        {
            return double.NaN;
        }

        string? line = File.ReadLines(status).FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal));
        return line is null ? double.NaN : double.Parse(line[key.Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) / 1024.0;
    }

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        return sorted.Length == 0 ? double.NaN : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
