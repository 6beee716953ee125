// Shared source: compiled into Cvrl.Augment and Cvrl.Models (internal in both). Both copies coordinate
// through process-wide AppContext data, so the work happens once per process whichever assembly loads first.
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Cvrl.Native;

/// <summary>
/// Makes TorchSharp 0.107's native glue load on systems whose libstdc++ predates GCC 13 (Debian 12, Ubuntu 22.04).
/// </summary>
/// <remarks>
/// <para>
/// <c>libLibTorchSharp.so</c> is linked with GCC 13 and records a need for the symbol version <c>GLIBCXX_3.4.32</c>,
/// whose only symbol (<c>std::ios_base_library_init</c>) is a link-time marker that nothing calls. On such systems
/// <see cref="Prepare"/> writes a copy of the library with that one need marked weak (ELF <c>VER_FLG_WEAK</c>) into a
/// cache folder and loads it, together with libtorch from the folder TorchSharp itself would use, before TorchSharp
/// initialises. TorchSharp then finds the already loaded library by its soname. Nothing is changed where libstdc++
/// already provides the version, on other operating systems, or when the fix-up is turned off with the environment
/// variable <c>CVRL_NATIVE_FIXUP=0</c> or the AppContext switch <c>Cvrl.Native.DisableFixup</c>.
/// </para>
/// </remarks>
internal static class TorchNativeSetup
{
    internal const string NeededVersion = "GLIBCXX_3.4.32";
    internal const string DisableEnvironmentVariable = "CVRL_NATIVE_FIXUP";
    internal const string DisableSwitch = "Cvrl.Native.DisableFixup";
    internal const string CacheEnvironmentVariable = "CVRL_NATIVE_CACHE";
    private const string LibraryFile = "libLibTorchSharp.so";
    private const string StatusKey = "Cvrl.Native.TorchStatus";
    private const string LoadErrorKey = "Cvrl.Native.TorchLoadError";
    private static readonly string[] LibTorchPreloadOrder = ["libc10.so", "libtorch_cpu.so", "libtorch.so"];

    /// <summary>What <see cref="Prepare"/> found or did, for diagnostics (null before it ran).</summary>
    public static string? Status => AppContext.GetData(StatusKey) as string;

    /// <summary>Whether the user turned the fix-up off, and how.</summary>
    public static bool IsDisabled(out string how)
    {
        string? env = Environment.GetEnvironmentVariable(DisableEnvironmentVariable);
        if (env is not null && env.Trim().ToUpperInvariant() is "0" or "FALSE" or "OFF" or "NO")
        {
            how = $"{DisableEnvironmentVariable}={env}";
            return true;
        }

        if (AppContext.TryGetSwitch(DisableSwitch, out bool disabled) && disabled)
        {
            how = $"AppContext switch {DisableSwitch}";
            return true;
        }

        how = string.Empty;
        return false;
    }

    /// <summary>
    /// Applies the fix-up if this process needs it. Idempotent, cheap after the first call, and never throws:
    /// a failure is recorded in <see cref="Status"/> and reported by <see cref="EnsureLoaded"/>.
    /// </summary>
    /// <param name="torchSharpAssembly">TorchSharp's assembly (its location anchors the search for natives).</param>
    public static void Prepare(Assembly torchSharpAssembly)
    {
        lock (string.Intern(StatusKey))
        {
            if (Status is not null)
            {
                return;
            }

            string status;
            try
            {
                status = PrepareCore(torchSharpAssembly);
            }
#pragma warning disable CA1031 // The fix-up must never break assembly loading; the failure is reported later.
            catch (Exception e)
#pragma warning restore CA1031
            {
                status = $"the libstdc++ fix-up failed ({e.GetType().Name}: {e.Message})";
            }

            AppContext.SetData(StatusKey, status);
        }
    }

    /// <summary>
    /// Makes sure TorchSharp's native backend is loaded; otherwise throws one exception that says what is missing
    /// and how to fix it.
    /// </summary>
    /// <param name="torchSharpAssembly">TorchSharp's assembly.</param>
    /// <param name="initialize">Initialises TorchSharp (for example <c>torch.TryInitializeDeviceType(CPU)</c>).</param>
    /// <exception cref="DllNotFoundException">The native backend cannot be loaded; the message names the cause.</exception>
    public static void EnsureLoaded(Assembly torchSharpAssembly, Func<bool> initialize)
    {
        Prepare(torchSharpAssembly);
        if (AppContext.GetData(LoadErrorKey) is string known)
        {
            throw new DllNotFoundException(known);
        }

        // Where the outcome is known in advance, fail with the explanation before TorchSharp prints its own trace.
        if (PredictFailure(torchSharpAssembly) is string predicted)
        {
            AppContext.SetData(LoadErrorKey, predicted);
            throw new DllNotFoundException(predicted);
        }

        Exception? failure = null;
        try
        {
            if (initialize())
            {
                return;
            }
        }
#pragma warning disable CA1031 // Any failure inside TorchSharp's initialiser is translated below.
        catch (Exception e)
#pragma warning restore CA1031
        {
            failure = e;
        }

        string message = Diagnose(torchSharpAssembly, failure);
        AppContext.SetData(LoadErrorKey, message);
        throw new DllNotFoundException(message, failure);
    }

    /// <summary>
    /// Returns the explanation when TorchSharp's glue is certain to fail: not loaded yet, a strong need for a version
    /// the system libstdc++ lacks, and the fix-up not applied (turned off or failed). Otherwise null.
    /// </summary>
    private static string? PredictFailure(Assembly torchSharpAssembly)
    {
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux) || Status?.StartsWith("applied", StringComparison.Ordinal) == true
            || IsMapped(LibraryFile))
        {
            return null;
        }

        string? libstdcxx = LibStdCxx.FindPath();
        if (libstdcxx is null || LibStdCxx.Defines(libstdcxx, NeededVersion))
        {
            return null;
        }

        var (library, _) = Locate(torchSharpAssembly);
        return library is not null && ElfSymbolVersions.HasStrongNeed(File.ReadAllBytes(library), NeededVersion)
            ? Diagnose(torchSharpAssembly, null)
            : null;
    }

    private static bool IsMapped(string fileName)
    {
        const string maps = "/proc/self/maps";
        return File.Exists(maps) && File.ReadLines(maps).Any(l => l.EndsWith("/" + fileName, StringComparison.Ordinal));
    }

    /// <summary>Explains why TorchSharp's backend did not load.</summary>
    internal static string Diagnose(Assembly torchSharpAssembly, Exception? failure)
    {
        var (library, libTorchDir) = Locate(torchSharpAssembly);
        string hint = $"Fix-up status: {Status ?? "not run"}.";
        if (library is null)
        {
            return NativeLoadDiagnostics.Explain("TorchSharp's native glue (" + LibraryFile + ")", null, null,
                "The TorchSharp package's runtimes/linux-x64/native folder was not found next to the app or in the NuGet cache. " + hint);
        }

        if (libTorchDir is null)
        {
            return NativeLoadDiagnostics.Explain("libtorch (libtorch_cpu.so)", null, null,
                "Reference the TorchSharp-cpu package (or a TorchSharp CUDA package) from the application, not just TorchSharp. " + hint);
        }

        string? error = null;
        foreach (string dep in LibTorchPreloadOrder)
        {
            string path = Path.Combine(libTorchDir, dep);
            if (File.Exists(path) && (error = NativeLoadDiagnostics.TryLoad(path)) is not null)
            {
                return NativeLoadDiagnostics.Explain("libtorch (" + dep + ")", path, error, hint);
            }
        }

        error = NativeLoadDiagnostics.TryLoad(library);
        if (error is null)
        {
            // The library loads by itself: the failure is inside TorchSharp's initialisation.
            return NativeLoadDiagnostics.Explain("TorchSharp", library, failure?.GetBaseException().Message ?? "initialisation failed", hint);
        }

        string advice = hint;
        if (error.Contains(NeededVersion, StringComparison.Ordinal))
        {
            advice = IsDisabled(out string how)
                ? $"The fix-up that marks this need weak is turned off ({how}); remove that setting, or install a libstdc++ from GCC 13 or newer."
                : $"Cvrl's fix-up marks this need weak (the symbol behind it is never called); it did not take effect here: {Status ?? "not run"}. Set {CacheEnvironmentVariable} to a writable folder, or install a libstdc++ from GCC 13 or newer.";
        }

        return NativeLoadDiagnostics.Explain("TorchSharp's native glue (" + LibraryFile + ")", library, error, advice);
    }

    private static string PrepareCore(Assembly torchSharpAssembly)
    {
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux) || RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            return "not needed on this platform";
        }

        if (IsDisabled(out string how))
        {
            return $"turned off by {how}";
        }

        string? libstdcxx = LibStdCxx.FindPath();
        if (libstdcxx is not null && LibStdCxx.Defines(libstdcxx, NeededVersion))
        {
            return $"not needed: {libstdcxx} provides {NeededVersion}";
        }

        var (library, libTorchDir) = Locate(torchSharpAssembly);
        if (library is null || libTorchDir is null)
        {
            return "TorchSharp's native libraries were not found; nothing to fix";
        }

        byte[] bytes = File.ReadAllBytes(library);
        if (!ElfSymbolVersions.HasStrongNeed(bytes, NeededVersion))
        {
            return $"not needed: {library} has no strong need for {NeededVersion}";
        }

        string hash = Convert.ToHexStringLower(SHA256.HashData(bytes))[..16];
        ElfSymbolVersions.Weaken(bytes, NeededVersion);
        string patched = WritePatchedCopy(bytes, hash);

        foreach (string dep in LibTorchPreloadOrder)
        {
            string path = Path.Combine(libTorchDir, dep);
            if (File.Exists(path))
            {
                NativeLibrary.Load(path);
            }
        }

        NativeLibrary.Load(patched);
        return $"applied: loaded {patched} (a copy of {library} with the {NeededVersion} need marked weak) and libtorch from {libTorchDir}";
    }

    private static string WritePatchedCopy(byte[] patchedBytes, string hash)
    {
        Exception? last = null;
        foreach (string root in CacheRoots())
        {
            try
            {
                string dir = Path.Combine(root, "torchsharp-" + hash);
                string path = Path.Combine(dir, LibraryFile);
                if (File.Exists(path) && new FileInfo(path).Length == patchedBytes.Length
                    && !ElfSymbolVersions.HasStrongNeed(File.ReadAllBytes(path), NeededVersion))
                {
                    return path;
                }

                Directory.CreateDirectory(dir);
                ElfSymbolVersions.WriteAtomically(path, patchedBytes);
                return path;
            }
            catch (IOException e)
            {
                last = e;
            }
            catch (UnauthorizedAccessException e)
            {
                last = e;
            }
        }

        throw new IOException("no writable cache folder for the patched TorchSharp library", last);
    }

    private static IEnumerable<string> CacheRoots()
    {
        string? explicitRoot = Environment.GetEnvironmentVariable(CacheEnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(explicitRoot))
        {
            yield return explicitRoot;
        }

        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (!string.IsNullOrWhiteSpace(xdg))
        {
            yield return Path.Combine(xdg, "cvrl", "native");
        }

        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (!string.IsNullOrEmpty(home))
        {
            yield return Path.Combine(home, ".cache", "cvrl", "native");
        }

        yield return Path.Combine(Path.GetTempPath(), "cvrl-native-" + Environment.UserName);
    }

    /// <summary>
    /// Finds the <c>libLibTorchSharp.so</c> TorchSharp would load, and the folder holding the libtorch it would use,
    /// searching where the .NET host, TorchSharp's own fallback and notebook hosts look.
    /// </summary>
    internal static (string? Library, string? LibTorchDir) Locate(Assembly torchSharpAssembly)
    {
        var dirs = new List<string>();
        if (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") is string searchDirs)
        {
            dirs.AddRange(searchDirs.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        }

        string rid = "linux-x64";
        string baseDir = AppContext.BaseDirectory;
        dirs.Add(baseDir);
        dirs.Add(Path.Combine(baseDir, "runtimes", rid, "native"));

        string? tsDir = string.IsNullOrEmpty(torchSharpAssembly.Location) ? null : Path.GetDirectoryName(torchSharpAssembly.Location);
        string? packagesRoot = null;
        string version = torchSharpAssembly.GetName().Version is { } v ? $"{v.Major}.{v.Minor}.{v.Build}" : "0.107.0";
        if (tsDir is not null)
        {
            dirs.Add(tsDir);
            dirs.Add(Path.Combine(tsDir, "runtimes", rid, "native"));
            dirs.Add(Path.Combine(tsDir, "cpu"));

            // <packages>/torchsharp/<version>/lib/<tfm>/TorchSharp.dll
            var home = Directory.GetParent(tsDir)?.Parent;
            if (home?.Parent is { } pkg && string.Equals(pkg.Name, "torchsharp", StringComparison.OrdinalIgnoreCase))
            {
                dirs.Add(Path.Combine(home.FullName, "runtimes", rid, "native"));
                packagesRoot = pkg.Parent?.FullName;
                version = home.Name;
            }
        }

        packagesRoot ??= Environment.GetEnvironmentVariable("NUGET_PACKAGES");
        if (string.IsNullOrEmpty(packagesRoot))
        {
            packagesRoot = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        }

        dirs.Add(Path.Combine(packagesRoot, "torchsharp", version, "runtimes", rid, "native"));

        string? library = dirs.Select(d => Path.Combine(d, LibraryFile)).FirstOrDefault(File.Exists);
        string? libTorchDir = null;
        if (library is not null && File.Exists(Path.Combine(Path.GetDirectoryName(library)!, "libtorch_cpu.so")))
        {
            libTorchDir = Path.GetDirectoryName(library);
        }

        libTorchDir ??= dirs.FirstOrDefault(d => File.Exists(Path.Combine(d, "libtorch_cpu.so")));
        if (libTorchDir is null)
        {
            string cpuPackage = Path.Combine(packagesRoot, "libtorch-cpu-linux-x64");
            if (Directory.Exists(cpuPackage))
            {
                libTorchDir = Directory.GetDirectories(cpuPackage)
                    .Select(d => Path.Combine(d, "runtimes", rid, "native"))
                    .Where(d => File.Exists(Path.Combine(d, "libtorch_cpu.so")))
                    .OrderByDescending(d => Directory.GetParent(d)!.Parent!.Name, StringComparer.Ordinal)
                    .FirstOrDefault();
            }
        }

        return (library, libTorchDir);
    }
}
