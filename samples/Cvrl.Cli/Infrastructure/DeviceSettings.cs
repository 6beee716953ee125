using System.ComponentModel;
using Cvrl.Models;
using Cvrl.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Cvrl.Cli.Infrastructure;

/// <summary>Where a command computes and how many decoding threads it uses: the options every model command shares.</summary>
internal class DeviceSettings : CommandSettings
{
    [CommandOption("--device <DEVICE>")]
    [Description("cpu, cuda or cuda:N.")]
    [DefaultValue("cpu")]
    public string Device { get; init; } = "cpu";

    [CommandOption("--workers <N>")]
    [Description("Decoding threads. [grey]Default: one per core[/]")]
    public int? Workers { get; init; }

    public int WorkerCount => Workers ?? Environment.ProcessorCount;

    public override ValidationResult Validate()
    {
        if (Workers is < 1)
        {
            return ValidationResult.Error("--workers must be at least 1");
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
