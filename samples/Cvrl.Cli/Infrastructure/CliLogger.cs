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
        if (!IsEnabled(logLevel) || (!_verbose && SkippedVideos.WarningEvents.Contains(eventId.Id)))
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
