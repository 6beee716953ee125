// Shared source: compiled into Cvrl.Augment and Cvrl.Models (Native.props) and into Cvrl.Video (linked in its project
// file), internal in each.
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace Cvrl.Native;

/// <summary>
/// Turns the dynamic loader's error text into one sentence that says what is missing and how to fix it.
/// </summary>
internal static partial class NativeLoadDiagnostics
{
    /// <summary>Debian/Ubuntu packages that provide sonames our native stack commonly misses.</summary>
    private static readonly Dictionary<string, string> AptPackages = new(StringComparer.Ordinal)
    {
        ["libgtk-3.so.0"] = "libgtk-3-0",
        ["libgdk-3.so.0"] = "libgtk-3-0",
        ["libgdk_pixbuf-2.0.so.0"] = "libgdk-pixbuf-2.0-0",
        ["libglib-2.0.so.0"] = "libglib2.0-0",
        ["libgobject-2.0.so.0"] = "libglib2.0-0",
        ["libcairo.so.2"] = "libcairo2",
        ["libpango-1.0.so.0"] = "libpango-1.0-0",
        ["libX11.so.6"] = "libx11-6",
        ["libgomp.so.1"] = "libgomp1",
        ["libstdc++.so.6"] = "libstdc++6",
        ["libgcc_s.so.1"] = "libgcc-s1",
        ["libz.so.1"] = "zlib1g",
        ["libpng16.so.16"] = "libpng16-16",
        ["libjpeg.so.62"] = "libjpeg62-turbo",
        ["libtiff.so.6"] = "libtiff6",
        ["libfontconfig.so.1"] = "libfontconfig1",
        ["libfreetype.so.6"] = "libfreetype6",
        ["libopenblas.so.0"] = "libopenblas0",
    };

    /// <summary>
    /// Loads <paramref name="path"/> with the platform loader. Returns null on success (the handle stays loaded,
    /// which is harmless: the library is about to be used), or the loader's error text.
    /// </summary>
    public static string? TryLoad(string path)
    {
        try
        {
            NativeLibrary.Load(path);
            return null;
        }
        catch (DllNotFoundException e)
        {
            return e.Message;
        }
        catch (BadImageFormatException e)
        {
            return e.Message;
        }
    }

    /// <summary>Builds the one-paragraph explanation for a library that failed to load.</summary>
    /// <param name="component">What the user knows the library as, e.g. "TorchSharp (libLibTorchSharp.so)".</param>
    /// <param name="path">The file that was tried, or null when none was found.</param>
    /// <param name="loaderError">The loader's error text, or null when no file was found.</param>
    /// <param name="hint">Extra context, e.g. the state of the libstdc++ fix-up.</param>
    public static string Explain(string component, string? path, string? loaderError, string? hint)
    {
        var sb = new StringBuilder();
        sb.Append("Cvrl could not load ").Append(component);
        if (path is not null)
        {
            sb.Append(" from ").Append(path);
        }

        sb.Append(": ");
        if (loaderError is null)
        {
            sb.Append("the native library was not found.");
        }
        else
        {
            var missing = MissingLibraries(loaderError).ToList();
            var versions = MissingVersions(loaderError).ToList();
            if (missing.Count > 0)
            {
                sb.Append(string.Join(", ", missing)).Append(" not found");
                var packages = missing.Select(m => AptPackages.TryGetValue(m, out var p) ? p : null).Where(p => p is not null).Distinct().ToList();
                if (packages.Count > 0)
                {
                    sb.Append(": apt-get install ").Append(string.Join(' ', packages));
                    sb.Append(" (or run scripts/setup.sh from the Cvrl repository)");
                }
                else
                {
                    sb.Append(": install the system package that provides it (apt-file search ").Append(missing[0]).Append(')');
                }

                sb.Append('.');
            }
            else if (versions.Count > 0)
            {
                var (version, library) = versions[0];
                sb.Append(library).Append(" lacks symbol version ").Append(version).Append('.');
            }
            else
            {
                sb.Append(FirstMeaningfulLine(loaderError));
            }
        }

        if (!string.IsNullOrEmpty(hint))
        {
            sb.Append(' ').Append(hint);
        }

        return sb.ToString();
    }

    /// <summary>Sonames the loader could not find ("libX.so.N: cannot open shared object file").</summary>
    public static IEnumerable<string> MissingLibraries(string loaderError)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (Match m in MissingLibraryRegex().Matches(loaderError))
        {
            string name = m.Groups["name"].Value;

            // A bare soname (no folder) is a missing dependency; a path is just a probe that missed.
            if (!name.Contains('/', StringComparison.Ordinal) && seen.Add(name))
            {
                yield return name;
            }
        }
    }

    /// <summary>Versions the loader could not find ("lib: version `V' not found").</summary>
    public static IEnumerable<(string Version, string Library)> MissingVersions(string loaderError)
    {
        foreach (Match m in MissingVersionRegex().Matches(loaderError))
        {
            yield return (m.Groups["version"].Value, m.Groups["lib"].Value);
        }
    }

    private static string FirstMeaningfulLine(string loaderError)
    {
        var lines = loaderError.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.FirstOrDefault(l => !l.StartsWith("Unable to load shared library", StringComparison.Ordinal)) ?? lines.FirstOrDefault() ?? loaderError;
    }

    [GeneratedRegex(@"(?<name>[^\s:]+): cannot open shared object file")]
    private static partial Regex MissingLibraryRegex();

    [GeneratedRegex(@"(?<lib>[^\s:]+): version `(?<version>[^']+)' not found")]
    private static partial Regex MissingVersionRegex();
}
