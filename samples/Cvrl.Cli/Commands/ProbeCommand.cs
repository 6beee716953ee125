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
        [DefaultFrom("cached (features extracted once per view set; fast on a CPU) or faithful (features recomputed from fresh augmented clips every epoch, as the paper).", typeof(LinearProbeOptions), nameof(LinearProbeOptions.Mode))]
        public ProbeMode? Mode { get; init; }

        [CommandOption("--epochs <N>")]
        [DefaultFrom("Epochs of the linear layer.", typeof(LinearProbeOptions), nameof(LinearProbeOptions.Epochs))]
        public int? Epochs { get; init; }

        [CommandOption("--probe-batch <N>")]
        [DefaultFrom("Videos per step of the linear layer.", typeof(LinearProbeOptions), nameof(LinearProbeOptions.BatchSize))]
        public int? ProbeBatch { get; init; }

        [CommandOption("--lr <RATE>")]
        [Description("Peak learning rate. [grey]Default: 32 x batch / 1024 (the official linear-eval rule)[/]")]
        public double? LearningRate { get; init; }

        [CommandOption("--cached-views <N>")]
        [DefaultFrom("Augmented training views per video in cached mode.", typeof(LinearProbeOptions), nameof(LinearProbeOptions.CachedTrainViews))]
        public int? CachedViews { get; init; }

        [CommandOption("--save-classifier <FILE>")]
        [Description("Also save the trained linear layer (TorchSharp format).")]
        public string? SaveClassifier { get; init; }

        /// <summary>The library's probe options with the options given here laid over them.</summary>
        public LinearProbeOptions ProbeOptions
        {
            get
            {
                var defaults = new LinearProbeOptions();
                return defaults with
                {
                    Mode = Mode ?? defaults.Mode,
                    Epochs = Epochs ?? defaults.Epochs,
                    BatchSize = ProbeBatch ?? defaults.BatchSize,
                    LearningRate = LearningRate ?? defaults.LearningRate,
                    CachedTrainViews = CachedViews ?? defaults.CachedTrainViews,
                    Seed = Seed,
                    Features = Features,
                };
            }
        }

        public override ValidationResult Validate()
        {
            var result = base.Validate();
            return result.Successful ? Checked(() => ProbeOptions.Validate()) : result;
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        OutputPaths.RequireFile(settings.SaveClassifier, "--save-classifier");
        OutputPaths.RequireNotInput(settings.SaveClassifier, "--save-classifier", (settings.Data, "the labelled data"), (settings.EncoderFile, "the encoder"), (settings.Output, "the --out file"));
        return settings.Evaluate(
            (encoder, train, test, progress) => new LinearProbe(settings.ProbeOptions, settings.Logger).Fit(encoder, train, test, progress, cancellationToken),
            run => run.Result,
            (run, _) =>
            {
                if (settings.SaveClassifier is not null)
                {
                    run.SaveClassifier(settings.SaveClassifier);
                    AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(Path.GetFullPath(settings.SaveClassifier))}[/]");
                }
            });
    }
}
