using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Models;

/// <summary>Parses and checks device names ("cpu", "cuda", "cuda:N"), for every part of Cvrl that places a network on a device.</summary>
public static class DeviceSpec
{
    /// <summary>Parses a device name without touching the hardware.</summary>
    /// <exception cref="ArgumentException">The name is not "cpu", "cuda" or "cuda:N".</exception>
    public static (DeviceType Type, int Index) Parse(string device)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(device);
        string d = device.Trim().ToUpperInvariant();
        if (d == "CPU")
        {
            return (DeviceType.CPU, -1);
        }

        if (d == "CUDA")
        {
            return (DeviceType.CUDA, 0);
        }

        if (d.StartsWith("CUDA:", StringComparison.Ordinal) && int.TryParse(d[5..], NumberStyles.None, CultureInfo.InvariantCulture, out int index))
        {
            return (DeviceType.CUDA, index);
        }

        throw new ArgumentException($"Device '{device}' is not 'cpu', 'cuda' or 'cuda:N'.", nameof(device));
    }

    /// <summary>Resolves a device name to a TorchSharp device, checking that CUDA is present when asked for.</summary>
    /// <exception cref="ArgumentException">The name is malformed.</exception>
    /// <exception cref="InvalidOperationException">CUDA was asked for but is not available (or the index is out of range).</exception>
    public static Device Resolve(string device)
    {
        var (type, index) = Parse(device);
        TorchNative.EnsureLoaded();
        if (type == DeviceType.CPU)
        {
            return torch.CPU;
        }

        if (!torch.cuda.is_available())
        {
            throw new InvalidOperationException($"Device '{device}' was requested but CUDA is not available (reference a TorchSharp CUDA package and run on a machine with an NVIDIA GPU), or use \"cpu\".");
        }

        int count = torch.cuda.device_count();
        if (index >= count)
        {
            throw new InvalidOperationException($"Device '{device}' was requested but only {count} CUDA device(s) exist.");
        }

        return torch.device(DeviceType.CUDA, index);
    }
}
