using System.Runtime.CompilerServices;
using Cvrl.Native;
using TorchSharp;

namespace Cvrl.Augment;

/// <summary>Makes torch loadable before this assembly's first TorchSharp call (see Cvrl.Models.TorchNative).</summary>
internal static class ModuleInitializer
{
#pragma warning disable CA2255 // A library module initializer is the point: it must run before TorchSharp initialises.
    [ModuleInitializer]
    internal static void Initialize() => TorchNativeSetup.Prepare(typeof(torch).Assembly);
#pragma warning restore CA2255
}

/// <summary>Internal access to TorchSharp loading for this assembly's entry points.</summary>
internal static class TorchLoader
{
    /// <summary>Makes sure TorchSharp's backend is loaded, or throws the explained <see cref="DllNotFoundException"/>.</summary>
    public static void EnsureLoaded() =>
        TorchNativeSetup.EnsureLoaded(typeof(torch).Assembly, static () => torch.TryInitializeDeviceType(DeviceType.CPU));
}
