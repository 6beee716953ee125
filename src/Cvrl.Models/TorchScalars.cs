using TorchSharp;

namespace Cvrl.Models;

/// <summary>
/// Native scalars that live as long as the process. TorchSharp 0.107 turns numbers into native scalars that only a
/// finaliser frees, and its <c>add</c>/<c>sub</c> overloads without <c>alpha</c> make one for 1; a concurrent garbage
/// collection can free it while the native operation still reads it ("Unknown scalar type", or a wrong value). Cvrl
/// passes these long-lived scalars, or scalars it disposes itself, instead.
/// </summary>
internal static class TorchScalars
{
    public static readonly Scalar One = 1f.ToScalar();
}
