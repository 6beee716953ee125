namespace Cvrl.Augment.Transforms;

/// <summary>One step of a <see cref="ClipPlan"/>: a transform and the parameters drawn for it.</summary>
/// <param name="Transform">The transform.</param>
/// <param name="Parameters">Its parameter record (boxed).</param>
public sealed record PlannedStep(IClipTransform Transform, object Parameters)
{
    /// <inheritdoc />
    public override string ToString()
    {
        string p = Parameters.ToString() ?? string.Empty;
        return p.Length == 0 ? Transform.Name : $"{Transform.Name} {p}";
    }
}

/// <summary>
/// The parameters a <see cref="ClipPipeline"/> drew for one clip: plain values that can be logged, asserted and
/// replayed with <see cref="ClipPipeline.Apply(TorchSharp.torch.Tensor, ClipPlan)"/>. With per-frame
/// (<see cref="TemporalConsistency.PerFrame"/>) pipelines, <see cref="Frames"/> holds one plan per frame instead.
/// </summary>
public sealed class ClipPlan
{
    internal ClipPlan(ClipShape input, IReadOnlyList<PlannedStep> steps, IReadOnlyList<ClipPlan>? frames = null)
    {
        Input = input;
        Steps = steps;
        Frames = frames;
    }

    /// <summary>The input shape the plan was drawn for.</summary>
    public ClipShape Input { get; }

    /// <summary>The steps in order (empty for a per-frame plan).</summary>
    public IReadOnlyList<PlannedStep> Steps { get; }

    /// <summary>For a per-frame plan, one plan per frame; otherwise null.</summary>
    public IReadOnlyList<ClipPlan>? Frames { get; }

    /// <summary>The parameters of the first step whose record has type <typeparamref name="T"/>, if any.</summary>
    public T? Find<T>()
        where T : struct =>
        Steps.Select(s => s.Parameters).OfType<T>().Cast<T?>().FirstOrDefault();

    /// <summary>A one-line description, e.g. "crop 320x240+10+20->224x224; flip yes; float; jitter b1.10 ...".</summary>
    public override string ToString() => Frames is null
        ? string.Join("; ", Steps)
        : $"per-frame ({Frames.Count} frames): {Frames.FirstOrDefault()}; ...";
}
