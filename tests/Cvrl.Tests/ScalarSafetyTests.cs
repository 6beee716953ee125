using System.Text.RegularExpressions;

namespace Cvrl.Tests;

/// <summary>
/// Guards against TorchSharp 0.107's implicit scalars in Cvrl's sources: <c>add</c>/<c>add_</c> without an explicit
/// alpha make a native scalar that a concurrent garbage collection can free while the operation reads it (seen as
/// "Unknown scalar type" crashes about once per 60 probe runs before the fix; docs/architecture.md).
/// </summary>
public sealed partial class ScalarSafetyTests
{
    [GeneratedRegex(@"\.add_?\((?<args>[^()]*(\([^()]*(\([^()]*\))?[^()]*\))*[^()]*)\)")]
    private static partial Regex AddCall();

    [Fact]
    public void LibrarySources_PassAlphaToEveryAdd()
    {
        string src = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../../src"));
        Assert.True(Directory.Exists(src), src);
        var offenders = new List<string>();
        foreach (string file in Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories).Where(f => !f.Contains("/obj/", StringComparison.Ordinal)))
        {
            var lines = File.ReadAllLines(file);
            for (int i = 0; i < lines.Length; i++)
            {
                if (lines[i].TrimStart().StartsWith("//", StringComparison.Ordinal))
                {
                    continue;
                }

                foreach (Match m in AddCall().Matches(lines[i]))
                {
                    string args = m.Groups["args"].Value;
                    int depth = 0;
                    bool topLevelComma = false;
                    foreach (char c in args)
                    {
                        depth += c == '(' ? 1 : c == ')' ? -1 : 0;
                        topLevelComma |= c == ',' && depth == 0;
                    }

                    bool tensorLike = !Regex.IsMatch(args, @"^\s*\(?\s*(""|[0-9]|new\b|\$)") && !lines[i].Contains("List<", StringComparison.Ordinal);
                    if (tensorLike && !topLevelComma && IsTorchFile(lines))
                    {
                        offenders.Add($"{Path.GetRelativePath(src, file)}:{i + 1}: {lines[i].Trim()}");
                    }
                }
            }
        }

        Assert.True(offenders.Count == 0, "add/add_ without alpha:\n" + string.Join("\n", offenders));
    }

    private static bool IsTorchFile(string[] lines) => lines.Any(l => l.Contains("using static TorchSharp.torch;", StringComparison.Ordinal) || l.Contains("using TorchSharp;", StringComparison.Ordinal));
}
