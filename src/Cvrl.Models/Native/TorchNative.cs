using Cvrl.Native;
using TorchSharp;

namespace Cvrl.Models;

/// <summary>
/// Loads TorchSharp's native backend, with Cvrl's fix-up for systems whose libstdc++ predates GCC 13
/// (Debian 12, Ubuntu 22.04), and explains in one message what is missing when it cannot be loaded.
/// </summary>
/// <remarks>
/// Cvrl applies the fix-up automatically when one of its assemblies is first used, and every Cvrl entry point that
/// needs TorchSharp calls <see cref="EnsureLoaded"/>. Call it yourself only when your code uses TorchSharp before any
/// Cvrl type (for example in the first cell of a notebook). Turn the fix-up off with the environment variable
/// <c>CVRL_NATIVE_FIXUP=0</c>, the AppContext switch <c>Cvrl.Native.DisableFixup</c>, or (for build and publish
/// output) the MSBuild property <c>CvrlNativeFixup=false</c>. See docs/installation.md.
/// </remarks>
public static class TorchNative
{
    /// <summary>What the fix-up found or did in this process (null before it ran), for logs and bug reports.</summary>
    public static string? FixupStatus => TorchNativeSetup.Status;

    /// <summary>Makes sure TorchSharp's CPU backend is loaded.</summary>
    /// <exception cref="DllNotFoundException">
    /// The backend cannot be loaded; the message names the missing piece and how to install it.
    /// </exception>
    public static void EnsureLoaded() => TorchLoader.EnsureLoaded();
}
