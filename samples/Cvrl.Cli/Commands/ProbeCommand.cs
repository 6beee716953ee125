using System.ComponentModel;
using Cvrl.Cli.Infrastructure;
using Cvrl.Evaluation;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Cvrl.Cli.Commands;

/// <summary>Linear evaluation: a frozen encoder, one linear layer on L2-normalised features, the 30-view test.</summary>
internal sealed class ProbeCommand : Command<ProbeCommand.Settings>
{
    public sealed class Settings : EvaluationSettings
    {
        [CommandOption("--mode <MODE>")]
        [Description("cached (features extracted once per view set; fast on a CPU) or faithful (features recomputed from fresh augmented clips every epoch, as the paper).")]
        [DefaultValue(ProbeMode.Cached)]
        public ProbeMode Mode { get; init; } = ProbeMode.Cached;

        [CommandOption("--epochs <N>")]
        [Description("Epochs of the linear layer.")]
        [DefaultValue(100)]
        public int Epochs { get; init; } = 100;

        [CommandOption("--probe-batch <N>")]
        [Description("Videos per step of the linear layer.")]
        [DefaultValue(64)]
        public int ProbeBatch { get; init; } = 64;

        [CommandOption("--lr <RATE>")]
        [Description("Peak learning rate. [grey]Default: 32 x batch / 1024 (the official linear-eval rule)[/]")]
        public double? LearningRate { get; init; }

        [CommandOption("--cached-views <N>")]
        [Description("Augmented training views per video in cached mode.")]
        [DefaultValue(10)]
        public int CachedViews { get; init; } = 10;

        [CommandOption("--save-classifier <FILE>")]
        [Description("Also save the trained linear layer (TorchSharp format).")]
        public string? SaveClassifier { get; init; }

        public LinearProbeOptions ProbeOptions => new()
        {
            Mode = Mode,
            Epochs = Epochs,
            BatchSize = ProbeBatch,
            LearningRate = LearningRate,
            CachedTrainViews = CachedViews,
            Seed = Seed,
            Features = Features,
        };

        public override ValidationResult Validate()
        {
            var result = base.Validate();
            return result.Successful ? Checked(() => ProbeOptions.Validate()) : result;
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var (train, test) = settings.OpenData();
        var (encoder, description) = settings.CreateEncoder();
        using (encoder)
        {
            settings.Announce(description);
            settings.AnnounceViews(settings.Features);
            var probe = new LinearProbe(settings.ProbeOptions, settings.Logger);
            using var run = CliProgress.Run(progress => probe.Fit(encoder, train, test, progress, cancellationToken));
            settings.Report(run.Result);
            if (settings.SaveClassifier is not null)
            {
                run.SaveClassifier(settings.SaveClassifier);
                AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(Path.GetFullPath(settings.SaveClassifier))}[/]");
            }

            return 0;
        }
    }
}
