using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Models;

/// <summary>
/// The arithmetic precision of a network's convolutions and matrix products (what PyTorch's autocast chooses):
/// master weights, optimizer state, BatchNorm statistics and normalisation, the loss and gradient reductions stay in
/// float32 whatever this says.
/// </summary>
public enum Precision
{
    /// <summary>Everything in float32 (the default).</summary>
    Float32,

    /// <summary>
    /// Convolutions and matrix products in bfloat16 (its 8-bit exponent, float32's range, needs no loss scaling), with
    /// activations kept in bfloat16 between layers; BatchNorm computes its statistics and normalises in float32 from
    /// bfloat16 inputs, pooled features and the loss are float32. About twice as fast on CPUs with native bfloat16
    /// arithmetic (AVX512-BF16, AMX) and on CUDA GPUs of compute capability 8.0 or newer; correct but slow elsewhere.
    /// </summary>
    BFloat16,

    /// <summary><see cref="BFloat16"/> where the hardware computes it natively (<see cref="PrecisionPolicy.Resolve"/>), <see cref="Float32"/> elsewhere.</summary>
    Auto,
}

/// <summary>Turns a <see cref="Precision"/> into the element type a network computes in on a device, and says why.</summary>
public static class PrecisionPolicy
{
    private static readonly Lazy<bool> s_cpu = new(DetectCpu);

    /// <summary>
    /// Whether this CPU computes bfloat16 natively: the <c>avx512_bf16</c> or <c>amx_bf16</c> flag in
    /// <c>/proc/cpuinfo</c> (Linux). The environment variable <c>CVRL_CPU_BF16</c> (1 or 0) overrides the detection.
    /// </summary>
    public static bool CpuComputesBFloat16 => Environment.GetEnvironmentVariable("CVRL_CPU_BF16") switch
    {
        "1" => true,
        "0" => false,
        _ => s_cpu.Value,
    };

    /// <summary>The element type for <paramref name="precision"/> on <paramref name="device"/>, and why it was chosen.</summary>
    /// <param name="precision">What was asked for.</param>
    /// <param name="device">Where the network runs.</param>
    /// <returns><see cref="ScalarType.Float32"/> or <see cref="ScalarType.BFloat16"/>, and a sentence for the log.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An unknown precision.</exception>
    public static (ScalarType Type, string Reason) Resolve(Precision precision, Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        switch (precision)
        {
            case Precision.Float32:
                return (ScalarType.Float32, "float32, as asked");
            case Precision.BFloat16:
                return (ScalarType.BFloat16, "bfloat16 convolutions and matrix products, as asked");
            case Precision.Auto:
                if (device.type == DeviceType.CUDA)
                {
                    double? capability = CudaComputeCapability(device.index < 0 ? 0 : device.index);
                    return capability is >= 8.0
                        ? (ScalarType.BFloat16, string.Create(CultureInfo.InvariantCulture, $"bfloat16: the GPU's compute capability {capability:0.0} computes it natively"))
                        : (ScalarType.Float32, capability is null ? "float32: the GPU's compute capability is unknown (nvidia-smi did not answer)" : string.Create(CultureInfo.InvariantCulture, $"float32: the GPU's compute capability {capability:0.0} is below 8.0"));
                }

                return CpuComputesBFloat16
                    ? (ScalarType.BFloat16, "bfloat16: the CPU computes it natively (avx512_bf16 or amx_bf16)")
                    : (ScalarType.Float32, "float32: the CPU has no native bfloat16 arithmetic (no avx512_bf16 or amx_bf16)");
            default:
                throw new ArgumentOutOfRangeException(nameof(precision), precision, "Unknown precision.");
        }
    }

    /// <summary>Checks that a network's compute type is one Cvrl supports.</summary>
    internal static void RequireSupported(ScalarType type, string parameterName)
    {
        if (type is not (ScalarType.Float32 or ScalarType.BFloat16))
        {
            throw new ArgumentOutOfRangeException(parameterName, type, "A network computes in Float32 or BFloat16.");
        }
    }

    private static bool DetectCpu()
    {
        try
        {
            return File.Exists("/proc/cpuinfo") && File.ReadLines("/proc/cpuinfo")
                .Where(l => l.StartsWith("flags", StringComparison.Ordinal))
                .Take(1)
                .Any(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).Any(f => f is "avx512_bf16" or "amx_bf16"));
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>The compute capability of a CUDA device from <c>nvidia-smi</c> (TorchSharp does not expose it), or null.</summary>
    private static double? CudaComputeCapability(int index)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo("nvidia-smi", ["--query-gpu=compute_cap", "--format=csv,noheader", "-i", index.ToString(CultureInfo.InvariantCulture)])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            });
            if (process is null || !process.WaitForExit(10_000))
            {
                return null;
            }

            return double.TryParse(process.StandardOutput.ReadToEnd().Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double cc) ? cc : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // no nvidia-smi
        }
    }
}
