using Cvrl.Evaluation;
using Cvrl.Training;
using Cvrl.Video;
using Spectre.Console;

namespace Cvrl.Cli.Infrastructure;

/// <summary>Where long work reports: evaluation stages and training steps.</summary>
internal sealed class ProgressSink(Action<StageProgress> evaluation, Action<TrainingProgress> training)
{
    public IProgress<StageProgress> Evaluation { get; } = new Reporter<StageProgress>(evaluation);

    public IProgress<TrainingProgress> Training { get; } = new Reporter<TrainingProgress>(training);

    private sealed class Reporter<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}

/// <summary>Live progress bars for long work, one per stage, on a terminal; plain lines otherwise.</summary>
internal static class CliProgress
{
    /// <summary>Runs <paramref name="work"/> with a progress display fed by <see cref="StageProgress"/> reports.</summary>
    public static T Run<T>(Func<IProgress<StageProgress>, T> work) => Run(sink => work(sink.Evaluation));

    /// <summary>Runs <paramref name="work"/> with a progress display fed by evaluation and training reports.</summary>
    public static T Run<T>(Func<ProgressSink, T> work)
    {
        if (!AnsiConsole.Profile.Capabilities.Interactive)
        {
            // Redirected output (CI, logs): one line per finished stage or training epoch instead of redrawn bars.
            return work(new ProgressSink(PrintStage, PrintTraining));
        }

        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(context =>
            {
                var tasks = new Dictionary<string, ProgressTask>(StringComparer.Ordinal);
                ProgressTask Task(string stage, double total)
                {
                    if (!tasks.TryGetValue(stage, out var task))
                    {
                        task = context.AddTask(Markup.Escape(stage), maxValue: Math.Max(1, total));
                        tasks[stage] = task;
                    }

                    task.MaxValue = Math.Max(1, total);
                    return task;
                }

                var sink = new ProgressSink(
                    report =>
                    {
                        var task = Task(report.Stage, report.Total);
                        task.Value = report.Completed;
                        if (report.Loss is double loss)
                        {
                            task.Description = Markup.Escape($"{report.Stage} (loss {loss:F3})");
                        }
                    },
                    report =>
                    {
                        var task = Task("pre-training", report.TotalSteps);
                        task.Value = report.Step;
                        task.Description = Markup.Escape($"pre-training: epoch {report.Epoch + 1}, loss {report.Loss:F3}, {report.ClipsPerSecond:F0} clips/s");
                    });
                result = work(sink);
                foreach (var task in tasks.Values)
                {
                    task.Value = task.MaxValue;
                }
            });
        return result;
    }

    private static void PrintStage(StageProgress value)
    {
        if (value.Completed == value.Total)
        {
            string loss = value.Loss is double l ? $", loss {l:F4}" : string.Empty;
            AnsiConsole.MarkupLineInterpolated($"[grey]{value.Stage}: {value.Completed}/{value.Total} ({value.Elapsed.TotalSeconds:F1} s{loss})[/]");
        }
    }

    private static void PrintTraining(TrainingProgress value)
    {
        if (value.StepInEpoch == value.StepsPerEpoch)
        {
            AnsiConsole.MarkupLineInterpolated($"[grey]pre-training epoch {value.Epoch + 1}: step {value.Step}/{value.TotalSteps}, loss {value.Loss:F4}, contrastive accuracy {value.ContrastiveAccuracy:P0}, {value.ClipsPerSecond:F1} clips/s ({value.Elapsed.TotalSeconds:F0} s)[/]");
        }
    }
}
