namespace Cvrl.Testing;

/// <summary>File-system links for tests of how paths are compared.</summary>
public static class FileLinks
{
    /// <summary>Makes <paramref name="link"/> a hard link to <paramref name="existing"/> (.NET has no API for it; <c>ln</c> does it).</summary>
    public static void Hard(string existing, string link)
    {
        using var ln = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("ln", [existing, link]) { UseShellExecute = false })!;
        ln.WaitForExit();
        if (ln.ExitCode != 0)
        {
            throw new IOException($"ln {existing} {link} failed with exit code {ln.ExitCode}");
        }
    }
}
