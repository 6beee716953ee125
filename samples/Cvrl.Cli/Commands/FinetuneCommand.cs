using System.ComponentModel;
using Cvrl.Cli.Infrastructure;
using Cvrl.Evaluation;
using Cvrl.Models.Weights;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Cvrl.Cli.Commands;

/// <summary>Fine-tuning: the whole network and a classifier train together, then the 30-view test.</summary>
internal sealed class FinetuneCommand : Command<FinetuneCommand.Settings>
{
    public sealed class Settings : EvaluationSettings
    {
        [CommandOption("--epochs <N>")]
        [DefaultFrom("Fine-tuning epochs.", typeof(FineTuneOptions), nameof(FineTuneOptions.Epochs))]
        public int? Epochs { get; init; }

        [CommandOption("--tune-batch <N>")]
        [DefaultFrom("Videos per fine-tuning step.", typeof(FineTuneOptions), nameof(FineTuneOptions.BatchSize))]
        public int? TuneBatch { get; init; }

        [CommandOption("--lr-head <RATE>")]
        [Description("Peak learning rate of the classifier. [grey]Default: 0.8 x batch / 64[/]")]
        public double? HeadLearningRate { get; init; }

        [CommandOption("--lr-backbone <RATE>")]
        [Description("Peak learning rate of the encoder. [grey]Default: the head's; 0 freezes it[/]")]
        public double? BackboneLearningRate { get; init; }

        [CommandOption("--dropout <P>")]
        [DefaultFrom("Dropout before the classifier.", typeof(FineTuneOptions), nameof(FineTuneOptions.Dropout))]
        public double? Dropout { get; init; }

        [CommandOption("--save <FILE>")]
        [Description("Save the fine-tuned encoder (TorchSharp weights; load with --checkpoint and the same --depth/--width).")]
        public string? Save { get; init; }

        /// <summary>The library's fine-tuning options with the options given here laid over them.</summary>
        public FineTuneOptions TuneOptions
        {
            get
            {
                var defaults = new FineTuneOptions();
                return defaults with
                {
                    Epochs = Epochs ?? defaults.Epochs,
                    BatchSize = TuneBatch ?? defaults.BatchSize,
                    HeadLearningRate = HeadLearningRate ?? defaults.HeadLearningRate,
                    BackboneLearningRate = BackboneLearningRate ?? defaults.BackboneLearningRate,
                    Dropout = Dropout ?? defaults.Dropout,
                    Seed = Seed,
                    Features = Features,
                };
            }
        }

        public override ValidationResult Validate()
        {
            var result = base.Validate();
            return result.Successful ? Checked(() => TuneOptions.Validate()) : result;
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        OutputPaths.RequireFile(settings.Save, "--save");
        OutputPaths.RequireNotInput(settings.Save, "--save", (settings.Data, "the labelled data"), (settings.EncoderFile, "the encoder"), (settings.Output, "the --out file"));
        return settings.Evaluate(
            (encoder, train, test, progress) => new FineTuner(settings.TuneOptions, settings.Logger).Fit(encoder, train, test, progress, cancellationToken),
            run => run.Result,
            (_, encoder) =>
            {
                if (settings.Save is not null)
                {
                    ModelWeights.Save(settings.Save, encoder);
                    AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(Path.GetFullPath(settings.Save))}[/] (encoder)");
                }
            });
    }
}
