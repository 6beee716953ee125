using System.Runtime.Intrinsics.X86;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Cvrl.Models;

/// <summary>
/// A 1x1x1 convolution without bias (<c>weight [out, in, 1, 1, 1]</c>, the same state-dict key as
/// <see cref="TorchSharp.Modules.Conv3d"/>), computed by libtorch's convolution or, on CPUs where that goes wrong, as a matrix product.
/// </summary>
/// <remarks>
/// <para>
/// libtorch 2.10's CPU convolutions come from oneDNN, which plans 1x1 convolutions ("brgemm 1x1") from the per-core
/// cache sizes the CPUID cache-parameter leaf reports (leaf 4 on Intel, 0x8000001D on AMD). Some virtual machines and
/// sandboxes leave that leaf empty. Measured on such a machine (AMD EPYC with AVX-512, 2 cores): (1) channels-last 1x1
/// convolutions with 512 or more output channels returned wrong values (errors of half the output's scale, strided
/// ones even on one thread); (2) for the channel pairs oneDNN special-cases, (in, out) = (1024, 2048), (1024, 512),
/// (256, 1024), (512, 1024), (512, 2048), planning divides an integer by zero and the process dies of SIGFPE, in either
/// memory layout. Those are R3D-50's pairs. Other kernel sizes were correct.
/// </para>
/// <para>
/// A 1x1x1 convolution with stride s is the input subsampled by s followed by a linear map over channels, which is
/// what this module computes on such machines (same weights, same gradients; the products are summed in another order,
/// as in any other kernel). Elsewhere, and for tensors on a GPU, it calls libtorch's convolution. The environment
/// variable <c>CVRL_POINTWISE_MATMUL</c> forces the matrix product on (<c>1</c>) or off (<c>0</c>).
/// </para>
/// </remarks>
internal sealed class PointwiseConv3d : Module<Tensor, Tensor>
{
    /// <summary>The environment variable that forces the matrix-product path on or off.</summary>
    internal const string EnvironmentVariable = "CVRL_POINTWISE_MATMUL";

    private readonly long[] _stride;

    public PointwiseConv3d(long inChannels, long outChannels, (long T, long H, long W) stride, Device? device)
        : base(nameof(PointwiseConv3d))
    {
        _stride = [stride.T, stride.H, stride.W];
        // nn.Conv3d's own default initialisation, so that the random stream and the initial weights are the same as a
        // Conv3d's would be (the network re-initialises them afterwards anyway).
        weight = new Parameter(torch.empty([outChannels, inChannels, 1, 1, 1], device: device));
        using (torch.no_grad())
        {
            nn.init.kaiming_uniform_(weight, a: Math.Sqrt(5));
        }

        RegisterComponents();
    }

    /// <summary>Whether the CPU's cache-parameter leaf is empty (the condition under which oneDNN misbehaves).</summary>
    /// <remarks>Declared before <see cref="UseMatrixProduct"/>: static initialisers run in declaration order.</remarks>
    internal static bool CacheTopologyMissing { get; } = DetectMissingCacheTopology();

    /// <summary>Whether CPU tensors take the matrix-product path in this process (detected once; tests may set it).</summary>
    internal static bool UseMatrixProduct { get; set; } = Decide();

#pragma warning disable IDE1006, SA1300, SA1307 // state-dict name, as in TorchSharp's own modules
    /// <summary>The kernel, <c>[out, in, 1, 1, 1]</c>.</summary>
    public Parameter weight;
#pragma warning restore IDE1006, SA1300, SA1307

    /// <summary>The stride (T, H, W).</summary>
    public IReadOnlyList<long> Stride => _stride;

    public override Tensor forward(Tensor input)
    {
        // In the compute type of the enclosing ComputeScope: bfloat16 copies of the input and the kernel (gradients reach
        // the float32 weight through the cast).
        using var cast = ComputeScope.Cast(input);
        var x = cast ?? input;
        using var kernel = weight.dtype == x.dtype ? null : weight.to(x.dtype);
        var w = kernel ?? weight;
        // The matrix-product path is for float32 on CPUs where oneDNN's 1x1x1 convolution is slow; in bfloat16 oneDNN's
        // convolution was faster (0.95 against 0.99 s for an R3D-50 step, and 0.90 against 0.94, same runs).
        return UseMatrixProduct && x.device_type == DeviceType.CPU && x.dtype != ScalarType.BFloat16
            ? MatrixProduct(x, w, _stride)
            : nn.functional.conv3d(x, w, strides: _stride);
    }

    /// <summary>
    /// <paramref name="x"/> <c>[N, C, T, H, W]</c> subsampled by <paramref name="stride"/>, times
    /// <paramref name="weight"/> <c>[O, C, 1, 1, 1]</c> over channels: <c>[N, O, T', H', W']</c> in channels-last
    /// memory order. Disposes every intermediate.
    /// </summary>
    internal static Tensor MatrixProduct(Tensor x, Tensor weight, long[] stride)
    {
        Tensor input = x;
        if (stride.Any(s => s != 1))
        {
            using var t = x.slice(2, 0, x.shape[2], stride[0]);
            using var h = t.slice(3, 0, x.shape[3], stride[1]);
            input = h.slice(4, 0, x.shape[4], stride[2]);
        }

        try
        {
            using var channelsLast = input.permute(0, 2, 3, 4, 1);
            using var matrix = weight.flatten(1);
            using var y = nn.functional.linear(channelsLast, matrix);
            return y.permute(0, 4, 1, 2, 3);
        }
        finally
        {
            if (!ReferenceEquals(input, x))
            {
                input.Dispose();
            }
        }
    }

    private static bool Decide() =>
        Environment.GetEnvironmentVariable(EnvironmentVariable)?.Trim() switch
        {
            "1" => true,
            "0" => false,
            _ => CacheTopologyMissing,
        };

    private static bool DetectMissingCacheTopology()
    {
        if (!X86Base.IsSupported)
        {
            return false;
        }

        var (maxBasic, b, c, d) = X86Base.CpuId(0, 0);
        string vendor = string.Concat(Text(b), Text(d), Text(c));
        if (vendor is "AuthenticAMD" or "HygonGenuine")
        {
            uint maxExtended = (uint)X86Base.CpuId(unchecked((int)0x80000000), 0).Eax;
            return maxExtended >= 0x8000001D && (X86Base.CpuId(unchecked((int)0x8000001D), 0).Eax & 0x1F) == 0;
        }

        return vendor == "GenuineIntel" && maxBasic >= 4 && (X86Base.CpuId(4, 0).Eax & 0x1F) == 0;
    }

    private static string Text(int register) =>
        string.Create(4, register, static (span, r) =>
        {
            for (int i = 0; i < 4; i++)
            {
                span[i] = (char)((r >> (8 * i)) & 0xFF);
            }
        });
}
