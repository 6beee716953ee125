using System.Text.Json;
using System.Text.Json.Serialization;

namespace Cvrl;

/// <summary>
/// The JSON settings of every file Cvrl writes (checkpoint metadata, results, embeddings, summaries): enums as their
/// names, non-finite numbers as "NaN"/"Infinity", property names as declared. Use them to read those files back or to
/// write your own next to them.
/// </summary>
public static class CvrlJson
{
    /// <summary>Indented output, for files people read.</summary>
    public static JsonSerializerOptions Options { get; } = Create(indented: true);

    /// <summary>Single-line output, for metadata embedded in other files.</summary>
    public static JsonSerializerOptions Compact { get; } = Create(indented: false);

    private static JsonSerializerOptions Create(bool indented)
    {
        var options = new JsonSerializerOptions
        {
            WriteIndented = indented,
            NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
            Converters = { new JsonStringEnumConverter() },
        };
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }
}
