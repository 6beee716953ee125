using Cvrl.Augment.Video;
using Cvrl.Video;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Cvrl.Cli;

/// <summary>Turns failures into one-line messages and exit codes instead of stack traces.</summary>
internal static class CliErrors
{
    public const int FailureExitCode = 1;
    public const int UsageExitCode = 2;
    /// <summary>The stop signals of this process (set by Program before any command runs).</summary>
    public static StopSignals? Stop { get; set; }

    /// <summary>The exit code of a command stopped by a signal: 128 + its number (130 for Ctrl+C, 143 for SIGTERM).</summary>
    public static int CancelledExitCode => Stop?.ExitCode ?? 130;

    public static int Handle(Exception exception, ITypeResolver? resolver)
    {
        var e = exception is AggregateException { InnerExceptions.Count: 1 } agg ? agg.InnerException! : exception;
        (string message, int code) = e switch
        {
            CommandParseException or CommandRuntimeException => (e.Message, UsageExitCode),
            VideoDecodeException v => (v.Message, FailureExitCode),
            FileNotFoundException f => ($"File not found: {f.FileName ?? f.Message}", FailureExitCode),
            DirectoryNotFoundException d => (d.Message, FailureExitCode),
            OperationCanceledException => ("Cancelled.", CancelledExitCode),
            DllNotFoundException d => (d.Message, FailureExitCode),
            ArgumentException a => (a.Message.Split(" (Parameter '")[0], UsageExitCode),
            InvalidDataException i => (i.Message, FailureExitCode),
            IOException io => (io.Message, FailureExitCode),
            UnauthorizedAccessException u => (u.Message, FailureExitCode),
            InvalidOperationException o => (o.Message, FailureExitCode),
            _ => ($"{e.GetType().Name}: {e.Message}", FailureExitCode),
        };

        AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(message.ReplaceLineEndings(" "))}");
        if (Environment.GetEnvironmentVariable("CVRL_DEBUG") == "1")
        {
            AnsiConsole.WriteException(e);
        }

        return code;
    }
}
