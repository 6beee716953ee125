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
    public object? Value => Read(Activator.CreateInstance(Record), Path, Record.Name);

    /// <summary>The value at a property path of <paramref name="value"/>.</summary>
    internal static object? Read(object? value, string path, string recordName)
    {
        {
            foreach (string name in path.Split('.'))
            {
                var property = value?.GetType().GetProperty(name, BindingFlags.Public | BindingFlags.Instance)
                    ?? throw new InvalidOperationException($"{recordName} has no property path '{path}'.");
                value = property.GetValue(value);
            }

            return value;
        }
    }

    internal static string Format(object? value) => value switch
    {
        null => "none",
        Cvrl.Augment.ValueRange r => string.Create(CultureInfo.InvariantCulture, $"{r.Min:0.####}:{r.Max:0.####}"),
        double d => d.ToString("G", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? string.Empty,
    };
}

/// <summary>
/// The help text of an option whose default comes from one of the library's training recipes
/// (<see cref="Cvrl.Training.CvrlTrainerOptions.ForRecipe"/>): the description, then each recipe's value at the property
/// path, read at run time, so the help never repeats what the recipe declares.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class RecipeDefaultAttribute : DescriptionAttribute
{
    private readonly string _path;
    private readonly Cvrl.Training.CvrlRecipe[] _recipes;

    /// <summary>The default of every recipe (for a command that takes --recipe).</summary>
    public RecipeDefaultAttribute(string description, string path)
        : this(description, path, Enum.GetValues<Cvrl.Training.CvrlRecipe>())
    {
    }

    /// <summary>The default of one recipe (for a command that always follows it).</summary>
    public RecipeDefaultAttribute(string description, string path, Cvrl.Training.CvrlRecipe recipe)
        : this(description, path, [recipe])
    {
    }

    private RecipeDefaultAttribute(string description, string path, Cvrl.Training.CvrlRecipe[] recipes)
        : base(description)
    {
        _path = path;
        _recipes = recipes;
    }

    /// <inheritdoc/>
    public override string Description => _recipes.Length == 1
        ? $"{DescriptionValue} [grey]Default: {DefaultFromAttribute.Format(Of(_recipes[0]))} (the {_recipes[0].ToString().ToLowerInvariant()} recipe)[/]"
        : $"{DescriptionValue} [grey]Default: the recipe's ({string.Join(", ", _recipes.Select(r => $"{r.ToString().ToLowerInvariant()} {DefaultFromAttribute.Format(Of(r))}"))})[/]";

    /// <summary>The recipe's value.</summary>
    public object? Of(Cvrl.Training.CvrlRecipe recipe) => DefaultFromAttribute.Read(Cvrl.Training.CvrlTrainerOptions.ForRecipe(recipe), _path, "CvrlTrainerOptions");
}
