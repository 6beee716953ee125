using System.ComponentModel;
using System.Globalization;
using System.Reflection;

namespace Cvrl.Cli.Infrastructure;

/// <summary>
/// The help text of an option whose default is the library's: the description, then the default read from a fresh
/// instance of the library's options record at run time (<paramref name="record"/>, then the property path), so the
/// help never repeats a default the library declares. The option itself is nullable; the command takes the library
/// record's value when it is not given.
/// </summary>
/// <param name="description">What the option does.</param>
/// <param name="record">The library's options record (with a parameterless constructor).</param>
/// <param name="path">The property path inside it ("Temperature", "Views.Sampler.FramesPerClip").</param>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class DefaultFromAttribute(string description, Type record, string path) : DescriptionAttribute(description)
{
    /// <summary>The record type.</summary>
    public Type Record { get; } = record;

    /// <summary>The property path.</summary>
    public string Path { get; } = path;

    /// <inheritdoc/>
    public override string Description => $"{DescriptionValue} [grey]Default: {Format(Value)}[/]";

    /// <summary>The library's default.</summary>
    public object? Value
    {
        get
        {
            object? value = Activator.CreateInstance(Record);
            foreach (string name in Path.Split('.'))
            {
                var property = value?.GetType().GetProperty(name, BindingFlags.Public | BindingFlags.Instance)
                    ?? throw new InvalidOperationException($"{Record.Name} has no property path '{Path}'.");
                value = property.GetValue(value);
            }

            return value;
        }
    }

    private static string Format(object? value) => value switch
    {
        null => "none",
        double d => d.ToString("G", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? string.Empty,
    };
}
