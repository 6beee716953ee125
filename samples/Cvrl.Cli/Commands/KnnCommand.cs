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
        [DefaultFrom("Neighbours that vote.", typeof(KnnOptions), nameof(KnnOptions.K))]
        public int? K { get; init; }

        [CommandOption("--temperature <T>")]
        [DefaultFrom("Votes weigh exp(similarity / T); 0 gives every neighbour one vote.", typeof(KnnOptions), nameof(KnnOptions.Temperature))]
        public double? Temperature { get; init; }

        /// <summary>The library's kNN options with the options given here laid over them (a temperature of 0: one vote each).</summary>
        public KnnOptions KnnOptions
        {
            get
            {
                var defaults = new KnnOptions();
                return defaults with
                {
                    K = K ?? defaults.K,
                    Temperature = Temperature is double t ? (t > 0 ? t : null) : defaults.Temperature,
                    Features = Features,
                };
            }
        }

        public override ValidationResult Validate()
        {
            var result = base.Validate();
            if (!result.Successful)
            {
                return result;
            }

            return Temperature is double t && (t < 0 || !double.IsFinite(t))
                ? ValidationResult.Error("--temperature must be 0 or positive")
                : Checked(() => KnnOptions.Validate());
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken) =>
        settings.Evaluate(
            (encoder, train, test, progress) => new KnnClassifier(settings.KnnOptions, settings.Logger).Fit(encoder, train, test, progress, cancellationToken),
            run => run.Result);
}
