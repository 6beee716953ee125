namespace Cvrl.Cli;

/// <summary>What the tool does to its arguments before the parser sees them.</summary>
internal static class CommandLine
{
    /// <summary>
    /// <c>--version</c> or <c>-V</c> alone becomes the <c>version</c> command; after a <c>--</c>, every argument is a
    /// path (the marker is dropped, and a relative path that starts with '-' gets "./" in front so that it is not taken
    /// for an option).
    /// </summary>
    public static string[] Normalise(string[] args)
    {
        if (args is ["--version"] or ["-V"])
        {
            return ["version"];
        }

        int end = Array.IndexOf(args, "--");
        if (end < 0)
        {
            return args;
        }

        return [.. args[..end], .. args[(end + 1)..].Select(a => a.StartsWith('-') ? "./" + a : a)];
    }
}
