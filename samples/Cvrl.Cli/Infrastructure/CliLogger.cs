using Microsoft.Extensions.Logging;

namespace Cvrl.Cli.Infrastructure;

/// <summary>
/// The tool's logger: one line per message on standard error ("warning: ...", "info: ..."), so that it never
/// interleaves with the progress bars on standard output. Warnings and errors by default (but for the per-video skip
/// warnings: every command names the videos it skipped in its summary); everything from Information (or Debug with the
/// environment variable CVRL_LOG=debug) with --verbose.
/// </summary>
internal sealed class CliLogger(LogLevel minimum) : ILogger
{
    /// <summary>
    /// Library events the commands report themselves, so they are shown only with --verbose: the per-video skip warnings
    /// (the loader's 200, the view runs' 300, the index's 400: each command names its skipped videos in its summary) and
    /// the divergence error 107 (the exception that follows says the same).
    /// </summary>
    private static readonly HashSet<int> ReportedByCommands = [200, 300, 400, 107];

    private readonly bool _verbose = minimum < LogLevel.Warning;

    private static readonly Lock Gate = new();

    /// <summary>A logger that shows errors only (the other ranks of an MPI job: rank 0 speaks for the job).</summary>
    public static ILogger ErrorsOnly { get; } = new CliLogger(LogLevel.Error);

    /// <summary>The logger for a command run with or without --verbose.</summary>
    public static ILogger For(bool verbose) =>
        new CliLogger(!verbose ? LogLevel.Warning
            : string.Equals(Environment.GetEnvironmentVariable("CVRL_LOG"), "debug", StringComparison.OrdinalIgnoreCase) ? LogLevel.Debug
            : LogLevel.Information);

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum && logLevel != LogLevel.None;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel) || (!_verbose && ReportedByCommands.Contains(eventId.Id)))
        {
            return; // Skipped videos are named in the command's own summary; the per-video warnings only with --verbose.
        }

        string level = logLevel switch
        {
            LogLevel.Critical or LogLevel.Error => "error",
            LogLevel.Warning => "warning",
            LogLevel.Information => "info",
            _ => "debug",
        };
        lock (Gate)
        {
            Console.Error.WriteLine($"{level}: {formatter(state, exception)}");
        }
    }
}
