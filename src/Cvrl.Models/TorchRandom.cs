using TorchSharp;

namespace Cvrl.Models;

/// <summary>
/// Runs code under a seeded global random generator without leaving a trace: libtorch's weight initialisation and
/// dropout draw from its default CPU generator, which Cvrl's library code never reseeds for good. The state before is
/// saved and put back when the scope ends, so an application's own use of <c>torch.manual_seed</c> is not disturbed.
/// </summary>
/// <example>
/// <code>
/// using (TorchRandom.Seeded(options.Seed))
/// {
///     head = new ProjectionHead(dim, options.Head); // the same weights for the same seed, whatever ran before
/// }
/// </code>
/// </example>
public static class TorchRandom
{
    /// <summary>
    /// Seeds the default CPU generator with <paramref name="seed"/> (as <c>torch.manual_seed</c> does) until the returned
    /// scope is disposed, then restores the state it had. CUDA generators, where present, are seeded too and not restored
    /// (libtorch keeps one per device).
    /// </summary>
    /// <param name="seed">The seed.</param>
    /// <returns>The scope; dispose it to restore the previous state.</returns>
    public static IDisposable Seeded(long seed)
    {
        TorchNative.EnsureLoaded();
        var generator = torch.Generator.Default;
        var saved = generator.get_state();
        generator.manual_seed(seed);
        if (torch.cuda.is_available())
        {
            torch.cuda.manual_seed_all(seed);
        }

        return new Scope(generator, saved);
    }

    private sealed class Scope(torch.Generator generator, torch.Tensor saved) : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            generator.set_state(saved);
            saved.Dispose();
            generator.Dispose();
        }
    }
}
