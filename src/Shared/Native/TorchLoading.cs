#if CVRL_RUNTIME
using System.Runtime.CompilerServices;
using TorchSharp;

namespace Cvrl.Native;

/// <summary>
/// Makes torch loadable before the assembly's first TorchSharp call: the one module initializer of the TorchSharp
/// libraries (compiled into Cvrl.Augment and Cvrl.Models from this source, since they do not reference each other).
/// </summary>
internal static class TorchModuleInitializer
{
#pragma warning disable CA2255 // A library module initializer is the point: it must run before TorchSharp initialises.
    [ModuleInitializer]
    internal static void Initialize() => TorchNativeSetup.Prepare(typeof(torch).Assembly);
#pragma warning restore CA2255
}

/// <summary>Loads TorchSharp's CPU backend for this assembly's entry points (public as <c>Cvrl.Models.TorchNative.EnsureLoaded</c>).</summary>
internal static class TorchLoader
{
    /// <summary>Makes sure TorchSharp's backend is loaded, or throws the explained <see cref="DllNotFoundException"/>.</summary>
    public static void EnsureLoaded() =>
        TorchNativeSetup.EnsureLoaded(typeof(torch).Assembly, static () => torch.TryInitializeDeviceType(DeviceType.CPU));
}
#endif
