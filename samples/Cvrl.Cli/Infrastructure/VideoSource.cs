namespace Cvrl.Cli.Infrastructure;

/// <summary>What the commands that take videos (a folder or one file) share.</summary>
internal static class VideoSource
{
    /// <summary>Fails with one clear line when <paramref name="path"/> is neither a folder nor a file.</summary>
    public static void RequireExists(string path)
    {
        if (!Directory.Exists(path) && !File.Exists(path))
        {
            throw new DirectoryNotFoundException($"neither a folder nor a video file exists at '{path}'");
        }
    }
}

/// <summary>An <see cref="IProgress{T}"/> that forwards every report on the reporting thread.</summary>
internal sealed class ForwardingProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
