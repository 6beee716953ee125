using System.ComponentModel;
using Cvrl.Models;
using Cvrl.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Cvrl.Cli.Infrastructure;

/// <summary>Where a command computes, how many decoding threads it uses and how much it logs: the options every model command shares.</summary>
internal class DeviceSettings : CommandSettings
{
    [CommandOption("--device <DEVICE>")]
    [Description("cpu, cuda or cuda:N.")]
    [DefaultValue("cpu")]
    public string Device { get; init; } = "cpu";

    [CommandOption("--precision <KIND>")]
    [Description("fp32, bf16 (convolutions and matrix products in bfloat16; weights, BatchNorm statistics and the loss in float32) or auto (bf16 where the CPU or GPU computes it natively). [grey]Default: fp32[/]")]
    public string? PrecisionName { get; init; }

    [CommandOption("--workers <N>")]
    [Description("Decoding threads. [grey]Default: one per core[/]")]
    public int? Workers { get; init; }

    [CommandOption("-v|--verbose")]
    [Description("Log what the library does (data indexing, corrected frame counts, epochs, checkpoints) on standard error; warnings (bad videos, by name) are always shown.")]
    public bool Verbose { get; init; }

    public int WorkerCount => Workers ?? Environment.ProcessorCount;

    /// <summary>The precision asked for with --precision, or null.</summary>
    public Precision? RequestedPrecision => PrecisionName is null ? null : ParsePrecision(PrecisionName);

    /// <summary>The precision to compute in: --precision, else float32.</summary>
    public Precision Precision => RequestedPrecision ?? Precision.Float32;

    /// <summary>"fp32", "bf16", "auto" (or the enum's names) as a <see cref="Models.Precision"/>, or null when it is none of them.</summary>
    public static Precision? ParsePrecision(string text) => text.Trim().ToLowerInvariant() switch
    {
        "fp32" or "float32" => Models.Precision.Float32,
        "bf16" or "bfloat16" => Models.Precision.BFloat16,
        "auto" => Models.Precision.Auto,
        _ => null,
    };

    /// <summary>The logger every library object of the command gets.</summary>
    public Microsoft.Extensions.Logging.ILogger Logger => _logger ??= CliLogger.For(Verbose);

    private Microsoft.Extensions.Logging.ILogger? _logger;

    public override ValidationResult Validate()
    {
        if (Workers is < 1)
        {
            return ValidationResult.Error("--workers must be at least 1");
        }

        if (PrecisionName is not null && ParsePrecision(PrecisionName) is null)
        {
            return ValidationResult.Error($"--precision must be fp32, bf16 or auto, got '{PrecisionName}'");
        }

        try
        {
            DeviceSpec.Parse(Device);
        }
        catch (ArgumentException e)
        {
            return ValidationResult.Error(e.Message);
        }

        return ValidationResult.Success();
    }

    /// <summary>
    /// A batch normalisation mode option (<c>--bn</c>, <c>--adapt-bn</c>): null when not given, true for 'freeze', false
    /// for 'train'.
    /// </summary>
    /// <exception cref="ArgumentException">Any other value; the parameter name is the option's.</exception>
    public static bool? ParseBatchNorm(string? mode, string option) => mode switch
    {
        null => null,
        "freeze" => true,
        "train" => false,
        _ => throw new ArgumentException($"takes 'train' or 'freeze', not '{mode}'", option),
    };

    /// <summary>
    /// Runs an options record's own validation and turns its exception into a usage error naming the option, so that
    /// the library's checks are the only copy of each bound.
    /// </summary>
    public static ValidationResult Checked(Action validate)
    {
        try
        {
            validate();
            return ValidationResult.Success();
        }
        catch (ArgumentException e)
        {
            return ValidationResult.Error($"{e.ParamName}: {e.Message.Split(" (Parameter")[0]}");
        }
    }
}
