using TorchSharp;

// Shared source: compiled into Cvrl.Augment, Cvrl.Models and Cvrl (internal in each), the one home of these scalars.
namespace Cvrl;

/// <summary>
/// Native scalars that live as long as the process, for constants used in tensor operations (including the alpha of
/// <c>add</c> and <c>sub</c>: TorchSharp's overloads without one make an implicit scalar for 1).
/// </summary>
/// <remarks>
/// TorchSharp 0.107 turns a .NET number passed to an operation into a native <see cref="Scalar"/> that only its
/// finaliser frees. Once the operation has read the handle, nothing keeps the object alive, so a concurrent (background)
/// garbage collection can finalise it while the native code still reads it: "Unknown scalar type" errors or wrong
/// values, observed here about once in tens of thousands of operations under allocation pressure. Cvrl therefore passes
/// either these long-lived scalars or scalars it disposes itself (<c>using var s = x.ToScalar();</c>), which keeps
/// them reachable until the operation has returned.
/// </remarks>
internal static class TorchScalars
{
    public static readonly Scalar Zero = 0f.ToScalar();
    public static readonly Scalar One = 1f.ToScalar();
    public static readonly Scalar Two = 2f.ToScalar();
    public static readonly Scalar Four = 4f.ToScalar();
    public static readonly Scalar Six = 6f.ToScalar();
    public static readonly Scalar Byte255 = 255f.ToScalar();
}
