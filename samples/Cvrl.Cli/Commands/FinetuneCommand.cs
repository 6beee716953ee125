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
        [Description("Fine-tuning epochs.")]
        [DefaultValue(100)]
        public int Epochs { get; init; } = 100;

        [CommandOption("--tune-batch <N>")]
        [Description("Videos per fine-tuning step.")]
        [DefaultValue(16)]
        public int TuneBatch { get; init; } = 16;

        [CommandOption("--lr-head <RATE>")]
        [Description("Peak learning rate of the classifier. [grey]Default: 0.8 x batch / 64[/]")]
        public double? HeadLearningRate { get; init; }

        [CommandOption("--lr-backbone <RATE>")]
        [Description("Peak learning rate of the encoder. [grey]Default: the head's; 0 freezes it[/]")]
        public double? BackboneLearningRate { get; init; }

        [CommandOption("--dropout <P>")]
        [Description("Dropout before the classifier.")]
        [DefaultValue(0.2)]
        public double Dropout { get; init; } = 0.2;

        [CommandOption("--save <FILE>")]
        [Description("Save the fine-tuned encoder (TorchSharp weights; load with --checkpoint and the same --depth/--width).")]
        public string? Save { get; init; }

        public FineTuneOptions TuneOptions => new()
        {
            Epochs = Epochs,
            BatchSize = TuneBatch,
            HeadLearningRate = HeadLearningRate,
            BackboneLearningRate = BackboneLearningRate,
            Dropout = Dropout,
            Seed = Seed,
            Features = Features,
        };

        public override ValidationResult Validate()
        {
            var result = base.Validate();
            return result.Successful ? Checked(() => TuneOptions.Validate()) : result;
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
            var tuner = new FineTuner(settings.TuneOptions, settings.Logger);
            using var run = CliProgress.Run(progress => tuner.Fit(encoder, train, test, progress, cancellationToken));
            settings.Report(run.Result);
            if (settings.Save is not null)
            {
                ModelWeights.Save(settings.Save, encoder);
                AnsiConsole.MarkupLine($"wrote [green]{Markup.Escape(Path.GetFullPath(settings.Save))}[/] (encoder)");
            }

            return 0;
        }
    }
}
