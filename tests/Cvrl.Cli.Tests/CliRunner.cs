using System.Diagnostics;
using System.Reflection;
using System.Text;

namespace Cvrl.Cli.Tests;

/// <summary>What one run of the tool printed and returned.</summary>
internal sealed record CliResult(int ExitCode, string Output, string Error)
{
    public string All => Output + Error;

    /// <summary>The printed lines, with Spectre's console wrapping undone (lines are joined back for matching).</summary>
    public string Text => All.ReplaceLineEndings(" ");
}

/// <summary>Runs the built <c>cvrl</c> tool (Cvrl.Cli.dll) in its own process, as a user would.</summary>
internal static class CliRunner
{
    public static string ToolPath { get; } = Path.GetFullPath(
        typeof(CliRunner).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "CvrlCliPath").Value!);

    public static CliResult Run(string workingDirectory, params string[] args) => Run(workingDirectory, TimeSpan.FromMinutes(3), null, args);

    /// <summary>Runs the tool; <paramref name="interrupt"/>, when given, decides from the output so far when to send SIGINT (Ctrl+C).</summary>
    public static CliResult Run(string workingDirectory, TimeSpan timeout, Func<string, bool>? interrupt, params string[] args)
    {
        Assert.True(File.Exists(ToolPath), $"the tool is not built at {ToolPath}");
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(ToolPath);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["NO_COLOR"] = "1";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
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
                    SendInterrupt(process.Id);
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
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"cvrl {string.Join(' ', args)} did not finish within {timeout}; output so far:\n{output}");
        }

        process.WaitForExit();
        return new CliResult(process.ExitCode, output.ToString(), error.ToString());
    }

    private static void SendInterrupt(int pid)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-INT", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]) { UseShellExecute = false });
        kill!.WaitForExit();
    }
}
