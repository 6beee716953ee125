using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Models;

/// <summary>
/// The element type convolutions and matrix products compute in on this thread, for the duration of a network's forward
/// pass (what PyTorch's autocast keeps as thread-local state): <see cref="ResNet3d"/> and <see cref="ProjectionHead"/>
/// enter it with their <c>ComputeType</c>; their layers read it. Outside any scope, float32.
/// </summary>
internal static class ComputeScope
{
    [ThreadStatic]
    private static ScalarType? t_current;

    /// <summary>The element type of this thread's innermost scope (float32 outside any).</summary>
    public static ScalarType Current => t_current ?? ScalarType.Float32;

    /// <summary>Enters a scope; dispose the result to leave it.</summary>
    public static Scope Enter(ScalarType type) => new(type);

    /// <summary>
    /// Casts a floating-point <paramref name="x"/> to the current compute type when that is a reduced precision
    /// (bfloat16) and <paramref name="x"/> has another type; null otherwise (in float32 scopes every tensor keeps its
    /// type, so a float64 network still runs in float64).
    /// </summary>
    public static Tensor? Cast(Tensor x) => Current == ScalarType.Float32 || x.dtype == Current || !torch.is_floating_point(x) ? null : x.to(Current);

    /// <summary>A compute scope; restores the enclosing one when disposed.</summary>
    public readonly struct Scope : IDisposable
    {
        private readonly ScalarType? _previous;

        internal Scope(ScalarType type)
        {
            _previous = t_current;
            t_current = type;
        }

        /// <summary>Leaves the scope.</summary>
        public void Dispose() => t_current = _previous;
    }
}
