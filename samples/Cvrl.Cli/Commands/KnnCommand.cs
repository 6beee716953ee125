using System.ComponentModel;
using Cvrl.Cli.Infrastructure;
using Cvrl.Evaluation;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Cvrl.Cli.Commands;

/// <summary>kNN evaluation: cosine similarity between test and training features, weighted voting.</summary>
internal sealed class KnnCommand : Command<KnnCommand.Settings>
{
    public sealed class Settings : EvaluationSettings
    {
        [CommandOption("-k|--neighbours <N>")]
        [Description("Neighbours that vote.")]
        [DefaultValue(20)]
        public int K { get; init; } = 20;

        [CommandOption("--temperature <T>")]
        [Description("Votes weigh exp(similarity / T); 0 gives every neighbour one vote.")]
        [DefaultValue(0.07)]
        public double Temperature { get; init; } = 0.07;

        public KnnOptions KnnOptions => new() { K = K, Temperature = Temperature > 0 ? Temperature : null, Features = Features };

        public override ValidationResult Validate()
        {
            var result = base.Validate();
            if (!result.Successful)
            {
                return result;
            }

            return Temperature < 0 || !double.IsFinite(Temperature)
                ? ValidationResult.Error("--temperature must be 0 or positive")
                : Checked(() => KnnOptions.Validate());
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
            var knn = new KnnClassifier(settings.KnnOptions, settings.Logger);
            using var run = CliProgress.Run(progress => knn.Fit(encoder, train, test, progress, cancellationToken));
            settings.Report(run.Result);
            return 0;
        }
    }
}
