using Cvrl.Evaluation;
using Spectre.Console;

namespace Cvrl.Cli.Infrastructure;

/// <summary>Live progress bars for long work, one per stage, on a terminal; plain lines otherwise.</summary>
internal static class CliProgress
{
    /// <summary>Runs <paramref name="work"/> with a progress display fed by <see cref="EvaluationProgress"/> reports.</summary>
    public static T Run<T>(Func<IProgress<EvaluationProgress>, T> work)
    {
        if (!AnsiConsole.Profile.Capabilities.Interactive)
        {
            // Redirected output (CI, logs): one line per finished stage instead of redrawn bars.
            var lines = new LineProgress();
            return work(lines);
        }

        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(context =>
            {
                var tasks = new Dictionary<string, ProgressTask>(StringComparer.Ordinal);
                var reporter = new Reporter(report =>
                {
                    if (!tasks.TryGetValue(report.Stage, out var task))
                    {
                        task = context.AddTask(report.Stage, maxValue: Math.Max(1, report.Total));
                        tasks[report.Stage] = task;
                    }

                    task.MaxValue = Math.Max(1, report.Total);
                    task.Value = report.Completed;
                    if (report.Loss is double loss)
                    {
                        task.Description = $"{report.Stage} (loss {loss:F3})";
                    }
                });
                result = work(reporter);
                foreach (var task in tasks.Values)
                {
                    task.Value = task.MaxValue;
                }
            });
        return result;
    }

    private sealed class Reporter(Action<EvaluationProgress> report) : IProgress<EvaluationProgress>
    {
        public void Report(EvaluationProgress value) => report(value);
    }

    private sealed class LineProgress : IProgress<EvaluationProgress>
    {
        public void Report(EvaluationProgress value)
        {
            if (value.Completed == value.Total)
            {
                string loss = value.Loss is double l ? $", loss {l:F4}" : string.Empty;
                AnsiConsole.MarkupLineInterpolated($"[grey]{value.Stage}: {value.Completed}/{value.Total} ({value.Elapsed.TotalSeconds:F1} s{loss})[/]");
            }
        }
    }
}
