using Cvrl.Native;
using OpenCvSharp;

namespace Cvrl.Video;

/// <summary>
/// Loads OpenCV's native runtime (<c>libOpenCvSharpExtern.so</c>) and explains in one message what is missing when
/// it cannot be loaded, for example <c>libgtk-3.so.0 not found: apt-get install libgtk-3-0</c>.
/// </summary>
/// <remarks>Every Cvrl entry point that decodes or encodes images calls <see cref="EnsureLoaded"/>.</remarks>
public static class OpenCvNative
{
    private const string ErrorKey = "Cvrl.Native.OpenCvLoadError";
    private static volatile bool s_loaded;

    /// <summary>Makes sure OpenCV's native runtime is loaded.</summary>
    /// <exception cref="DllNotFoundException">The runtime cannot be loaded; the message names the missing piece.</exception>
    public static void EnsureLoaded()
    {
        if (s_loaded)
        {
            return;
        }

        if (AppContext.GetData(ErrorKey) is string known)
        {
            throw new DllNotFoundException(known);
        }

        QuietNativeLogs();
        try
        {
            _ = Cv2.GetVersionString();
            s_loaded = true;
            return;
        }
        catch (Exception e) when (e is TypeInitializationException or DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            string message = Diagnose(e);
            AppContext.SetData(ErrorKey, message);
            throw new DllNotFoundException(message, e);
        }
    }

    /// <summary>
    /// Unless the user set them, sets <c>OPENCV_LOG_LEVEL=ERROR</c> and <c>OPENCV_FFMPEG_LOGLEVEL=-8</c> (quiet) in the
    /// native environment before OpenCV starts, so that corrupt videos surface as <see cref="VideoDecodeException"/>s
    /// and loader warnings instead of FFmpeg messages on stderr. <c>CVRL_NATIVE_LOGS=1</c> keeps OpenCV's defaults.
    /// </summary>
    private static void QuietNativeLogs()
    {
        if (Environment.GetEnvironmentVariable("CVRL_NATIVE_LOGS") == "1" || OperatingSystem.IsWindows())
        {
            return;
        }

        try
        {
            _ = SetEnv("OPENCV_LOG_LEVEL", "ERROR", 0);
            _ = SetEnv("OPENCV_FFMPEG_LOGLEVEL", "-8", 0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // No libc setenv: keep OpenCV's defaults.
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "setenv")]
    private static extern int SetEnv(string name, string value, int overwrite);

    /// <summary>Loads the OpenCV runtime from an explicit file and explains a failure (used by tests and tools).</summary>
    /// <param name="path">Path of a <c>libOpenCvSharpExtern.so</c>.</param>
    /// <exception cref="DllNotFoundException">The file is missing or cannot be loaded; the message says why.</exception>
    internal static void LoadFrom(string path)
    {
        string? error = NativeLoadDiagnostics.TryLoad(path);
        if (error is not null)
        {
            throw new DllNotFoundException(NativeLoadDiagnostics.Explain("OpenCV (libOpenCvSharpExtern.so)", path,
                File.Exists(path) ? error : null, File.Exists(path) ? null : "The file does not exist."));
        }
    }

    private static string Diagnose(Exception failure)
    {
        foreach (string candidate in Candidates())
        {
            if (File.Exists(candidate))
            {
                string? error = NativeLoadDiagnostics.TryLoad(candidate);
                return NativeLoadDiagnostics.Explain("OpenCV (libOpenCvSharpExtern.so)", candidate,
                    error ?? failure.GetBaseException().Message, null);
            }
        }

        return NativeLoadDiagnostics.Explain("OpenCV (libOpenCvSharpExtern.so)", null, null,
            "Reference the OpenCvSharp4.official.runtime.linux-x64 package from the application.");
    }

    private static IEnumerable<string> Candidates()
    {
        const string file = "libOpenCvSharpExtern.so";
        if (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") is string dirs)
        {
            foreach (string d in dirs.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
            {
                yield return Path.Combine(d, file);
            }
        }

        yield return Path.Combine(AppContext.BaseDirectory, file);
        yield return Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", file);
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        string packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p ? p : Path.Combine(home, ".nuget", "packages");
        string runtime = Path.Combine(packages, "opencvsharp4.official.runtime.linux-x64");
        if (Directory.Exists(runtime))
        {
            foreach (string v in Directory.GetDirectories(runtime).OrderDescending(StringComparer.Ordinal))
            {
                yield return Path.Combine(v, "runtimes", "linux-x64", "native", file);
            }
        }
    }
}
