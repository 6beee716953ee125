using System.Reflection;

namespace Cvrl.Explore;

/// <summary>The page, style sheet and script of an explore report, embedded in the assembly.</summary>
internal static class ExploreAssets
{
    private static readonly string[] Names = ["index.html", "explore.css", "explore.js"];

    /// <summary>Each asset's file name and text.</summary>
    public static IEnumerable<(string Name, string Text)> Files => Names.Select(name => (name, Read(name)));

    private static string Read(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream($"Cvrl.Explore.{name}")
            ?? throw new InvalidOperationException($"The explore asset '{name}' is missing from {typeof(ExploreAssets).Assembly.GetName().Name}.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
