using System.Diagnostics;
using System.Reflection;
using System.Text;

namespace Cvrl.Cli.Tests;

/// <summary>What one run of the tool printed and returned.</summary>
internal sealed record CliResult(int ExitCode, string Output, string Error)
{
    /// <summary>How long the run took (reported, never asserted: tests do not depend on the machine's speed).</summary>
    public TimeSpan Elapsed { get; init; }

    public string All => Output + Error;

    /// <summary>The printed lines, with Spectre's console wrapping undone (lines are joined back for matching).</summary>
    public string Text => All.ReplaceLineEndings(" ");
}

/// <summary>How to start the tool: folder, launcher, environment, and hooks into the running process.</summary>
internal sealed record CliLaunch(string WorkingDirectory)
{
    /// <summary>
    /// How long the run may take before it is taken for a hang and killed: <see cref="CliRunner.HangLimit"/>, far beyond
    /// what any test's run takes on the slowest machine under load, so that it only stops true hangs.
    /// </summary>
    public TimeSpan HangLimit { get; init; } = CliRunner.HangLimit;

    /// <summary>Words put before <c>dotnet Cvrl.Cli.dll</c> (for example <c>mpiexec -n 2</c>); empty for a plain run.</summary>
    public string[] Launcher { get; init; } = [];

    /// <summary>Environment variables added to the tool's.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>Decides from the output so far when to send <see cref="Signal"/>.</summary>
    public Func<string, bool>? Interrupt { get; init; }

    /// <summary>The signal <see cref="Interrupt"/> sends: "INT" (Ctrl+C, the default), "TERM" or "HUP".</summary>
    public string Signal { get; init; } = "INT";

    /// <summary>Called once the process has started (it receives the launcher's process).</summary>
    public Action<Process>? Started { get; init; }

    /// <summary>The tool to run; default <see cref="CliRunner.ToolPath"/> (the build output).</summary>
    public string? Tool { get; init; }
}

/// <summary>Runs the built <c>cvrl</c> tool (Cvrl.Cli.dll) in its own process, as a user would.</summary>
internal static class CliRunner
{
    public static string ToolPath { get; } = Path.GetFullPath(
        typeof(CliRunner).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "CvrlCliPath").Value!);

    /// <summary>
    /// The time after which a run of the tool is taken for a hang: 30 minutes, about ten times what the longest run of
    /// the suite (the quickstart band, about 3 minutes alone on the slowest CPU kind) takes, so a slow or busy machine
    /// never reaches it in normal work. A test states no other time limit.
    /// </summary>
    public static readonly TimeSpan HangLimit = TimeSpan.FromMinutes(30);

    public static CliResult Run(string workingDirectory, params string[] args) => Run(workingDirectory, null, args);

    /// <summary>Runs the tool; <paramref name="interrupt"/>, when given, decides from the output so far when to send SIGINT (Ctrl+C).</summary>
    public static CliResult Run(string workingDirectory, Func<string, bool>? interrupt, params string[] args) =>
        Run(new CliLaunch(workingDirectory) { Interrupt = interrupt }, args);

    /// <summary>Runs the tool as <paramref name="launch"/> says (under a launcher such as mpiexec, with extra environment variables).</summary>
    public static CliResult Run(CliLaunch launch, params string[] args)
    {
        string tool = launch.Tool ?? ToolPath;
        Assert.True(File.Exists(tool), $"the tool is not built at {tool}");
        string[] command = [.. launch.Launcher, "dotnet", tool, .. args];
        if (launch.Interrupt is not null && SigIntIgnored() && File.Exists("/usr/bin/perl"))
        {
            // A test run started from a background job (`cmd &` in a shell without job control) inherits SIGINT as
            // ignored, and .NET keeps it ignored, as a background program should: Ctrl+C would then never arrive. The
            // tests that send Ctrl+C restore the default disposition first (perl is in Debian's essential perl-base),
            // so that they test the tool and not how the test run was started.
            command = ["/usr/bin/perl", "-e", "$SIG{INT} = 'DEFAULT'; exec { $ARGV[0] } @ARGV or die \"exec $ARGV[0]: $!\\n\";", .. command];
        }

        var start = new ProcessStartInfo(command[0])
        {
            WorkingDirectory = launch.WorkingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in command[1..])
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["NO_COLOR"] = "1";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        foreach (var (name, value) in launch.Environment)
        {
            start.Environment[name] = value;
        }

        var interrupt = launch.Interrupt;
        var timeout = launch.HangLimit;
        var watch = Stopwatch.StartNew();
        using var process = new Process { StartInfo = start };
        var output = new StringBuilder();
        var error = new StringBuilder();
        bool interrupted = false;
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            lock (output)
            {
                output.AppendLine(e.Data);
                if (!interrupted && interrupt is not null && interrupt(output.ToString()))
                {
                    interrupted = true;
                    SendSignal(process.Id, launch.Signal);
                }
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (error)
                {
                    error.AppendLine(e.Data);
                }
            }
        };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        launch.Started?.Invoke(process);
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"cvrl {string.Join(' ', args)} did not finish within {timeout} (taken for a hang); output so far:\n{output}");
        }

        process.WaitForExit();
        return new CliResult(process.ExitCode, output.ToString(), error.ToString()) { Elapsed = watch.Elapsed };
    }

    /// <summary>Whether this process ignores SIGINT (bit 1 of SigIgn in /proc/self/status), as children of background jobs do.</summary>
    private static bool SigIntIgnored()
    {
        string? line = File.Exists("/proc/self/status") ? File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal)) : null;
        return line is not null && (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & 0x2) != 0;
    }

    private static void SendSignal(int pid, string signal)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", [$"-{signal}", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]) { UseShellExecute = false });
        kill!.WaitForExit();
    }
}
