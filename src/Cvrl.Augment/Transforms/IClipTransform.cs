using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Augment.Transforms;

/// <summary>
/// A clip transform: draws its parameters once per clip (<see cref="SampleParameters"/>) and applies them to every
/// frame (<see cref="Apply"/>), which is what makes CVRL's augmentation temporally consistent. Parameters are plain
/// values that can be logged, asserted and replayed. Clips are <c>[C, T, H, W]</c>.
/// </summary>
public interface IClipTransform
{
    /// <summary>A short name for logs and captions, e.g. "crop" or "jitter".</summary>
    string Name { get; }

    /// <summary>The shape this transform produces from a clip of shape <paramref name="input"/>.</summary>
    ClipShape OutputShape(ClipShape input);

    /// <summary>Draws the parameters for one clip of shape <paramref name="input"/>; uses only <paramref name="random"/>.</summary>
    /// <returns>A boxed parameter record (see each transform's parameter type).</returns>
    object SampleParameters(ClipShape input, ClipRandom random);

    /// <summary>Applies the given parameters to every frame of <paramref name="clip"/>. Deterministic.</summary>
    /// <param name="clip">The input clip; not modified and still owned by the caller.</param>
    /// <param name="parameters">A parameter record of this transform's type.</param>
    /// <returns>A new tensor owned by the caller.</returns>
    Tensor Apply(Tensor clip, object parameters);
}

/// <summary>A transform that can also run on a whole batch <c>[N, C, T, H, W]</c> with one parameter record per sample.</summary>
public interface IBatchClipTransform : IClipTransform
{
    /// <summary>Applies per-sample parameters to a batch, on the batch's device.</summary>
    /// <param name="batch">The batch; not modified.</param>
    /// <param name="parameters">One record per sample, in batch order.</param>
    /// <returns>A new tensor owned by the caller.</returns>
    Tensor ApplyBatch(Tensor batch, IReadOnlyList<object> parameters);
}

/// <summary>
/// Base class for transforms with a typed parameter record. Subclasses implement <see cref="Sample"/> (pure, random
/// draws only from the generator) and <see cref="ApplyCore"/> (deterministic, no randomness at all).
/// </summary>
/// <typeparam name="TParams">The parameter record.</typeparam>
public abstract class ClipTransform<TParams> : IClipTransform, IOwnedApply
    where TParams : struct
{
    /// <inheritdoc />
    public abstract string Name { get; }

    /// <inheritdoc />
    public virtual ClipShape OutputShape(ClipShape input) => input;

    /// <summary>Draws the parameters for one clip.</summary>
    public abstract TParams Sample(ClipShape input, ClipRandom random);

    /// <summary>Applies <paramref name="parameters"/> to every frame; returns a new tensor owned by the caller.</summary>
    public Tensor Apply(Tensor clip, TParams parameters)
    {
        ArgumentNullException.ThrowIfNull(clip);
        var result = ApplyCore(clip, parameters, mayOverwriteInput: false);
        return ReferenceEquals(result, clip) ? clip.alias() : result;
    }

    /// <summary>Draws parameters and applies them; returns a new tensor owned by the caller.</summary>
    public Tensor Apply(Tensor clip, ClipRandom random)
    {
        ArgumentNullException.ThrowIfNull(random);
        return Apply(clip, Sample(ClipShape.Of(clip), random));
    }

    /// <summary>
    /// Applies the parameters. Returns <paramref name="clip"/> itself when nothing changes; when
    /// <paramref name="mayOverwriteInput"/> is true the clip's memory may be reused for the result.
    /// </summary>
    protected internal abstract Tensor ApplyCore(Tensor clip, TParams parameters, bool mayOverwriteInput);

    object IClipTransform.SampleParameters(ClipShape input, ClipRandom random) => Sample(input, random);

    Tensor IClipTransform.Apply(Tensor clip, object parameters) => Apply(clip, Unbox(parameters));

    Tensor IOwnedApply.ApplyOwnedBoxed(Tensor clip, object parameters) => ApplyCore(clip, Unbox(parameters), mayOverwriteInput: true);

    Tensor IOwnedApply.ApplyBorrowedBoxed(Tensor clip, object parameters) => ApplyCore(clip, Unbox(parameters), mayOverwriteInput: false);

    /// <summary>Casts a boxed record to <typeparamref name="TParams"/>, with a clear error for a record of another transform.</summary>
    protected TParams Unbox(object parameters) => parameters is TParams typed
        ? typed
        : throw new ArgumentException($"Transform '{Name}' expects {typeof(TParams).Name}, got {parameters?.GetType().Name ?? "null"}.", nameof(parameters));
}

/// <summary>Lets <see cref="ClipPipeline"/> hand intermediates it owns to a transform that may reuse their memory.</summary>
internal interface IOwnedApply
{
    /// <summary>Applies; may overwrite <paramref name="clip"/>; returns it when nothing changes.</summary>
    Tensor ApplyOwnedBoxed(Tensor clip, object parameters);

    /// <summary>Applies without touching <paramref name="clip"/>; returns it when nothing changes.</summary>
    Tensor ApplyBorrowedBoxed(Tensor clip, object parameters);
}
