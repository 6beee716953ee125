using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Augment.Transforms;

/// <summary>Whether a pipeline draws one parameter set per clip or one per frame.</summary>
public enum TemporalConsistency
{
    /// <summary>One parameter set per clip, applied to every frame: CVRL's temporally consistent augmentation.</summary>
    PerClip,

    /// <summary>An independent parameter set for every frame (an image augmentation run frame by frame): the ablation the paper argues against.</summary>
    PerFrame,
}

/// <summary>
/// A sequence of clip transforms. <see cref="Sample"/> draws every step's parameters for one clip (a
/// <see cref="ClipPlan"/>), <see cref="Apply(Tensor, ClipPlan)"/> applies them to every frame, and
/// <see cref="ApplyBatch"/> applies per-sample plans to a batch on its device.
/// </summary>
/// <example>
/// <code>
/// var view = ClipPipeline.Create(b => b
///     .RandomResizedCrop(224)
///     .RandomHorizontalFlip()
///     .ToFloat()
///     .ColorJitter()
///     .RandomGrayscale(0.2)
///     .RandomGaussianBlur(1.0));
/// using var output = view.Apply(clip, ClipRandom.For(seed, epoch, index, stream: 0));
/// </code>
/// </example>
public sealed class ClipPipeline
{
    private readonly IClipTransform[] _steps;

    /// <summary>Creates a pipeline from steps.</summary>
    /// <param name="steps">The transforms in order.</param>
    /// <param name="consistency">Per clip (CVRL) or per frame (ablation).</param>
    public ClipPipeline(IEnumerable<IClipTransform> steps, TemporalConsistency consistency = TemporalConsistency.PerClip)
    {
        ArgumentNullException.ThrowIfNull(steps);
        _steps = [.. steps];
        if (_steps.Any(s => s is null))
        {
            throw new ArgumentException("A pipeline step is null.", nameof(steps));
        }

        if (!Enum.IsDefined(consistency))
        {
            throw new ArgumentOutOfRangeException(nameof(consistency), consistency, "Unknown consistency mode.");
        }

        Consistency = consistency;
    }

    /// <summary>Builds a pipeline fluently.</summary>
    public static ClipPipeline Create(Action<ClipPipelineBuilder> configure, TemporalConsistency consistency = TemporalConsistency.PerClip)
    {
        ArgumentNullException.ThrowIfNull(configure);
        var builder = new ClipPipelineBuilder();
        configure(builder);
        return new ClipPipeline(builder.Steps, consistency);
    }

    /// <summary>The steps in order.</summary>
    public IReadOnlyList<IClipTransform> Steps => _steps;

    /// <summary>Per clip (CVRL) or per frame.</summary>
    public TemporalConsistency Consistency { get; }

    /// <summary>The same steps with another consistency mode.</summary>
    public ClipPipeline WithConsistency(TemporalConsistency consistency) => new(_steps, consistency);

    /// <summary>The shape the pipeline produces from <paramref name="input"/>.</summary>
    public ClipShape OutputShape(ClipShape input)
    {
        if (Consistency == TemporalConsistency.PerFrame)
        {
            var frame = OutputShapeOfSteps(input with { Frames = 1 });
            return frame with { Frames = input.Frames };
        }

        return OutputShapeOfSteps(input);
    }

    /// <summary>Draws every step's parameters for one clip of shape <paramref name="input"/>.</summary>
    public ClipPlan Sample(ClipShape input, ClipRandom random)
    {
        ArgumentNullException.ThrowIfNull(random);
        if (Consistency == TemporalConsistency.PerFrame)
        {
            var frames = new ClipPlan[input.Frames];
            for (int t = 0; t < frames.Length; t++)
            {
                frames[t] = SampleSteps(input with { Frames = 1 }, random);
            }

            return new ClipPlan(input, [], frames);
        }

        return SampleSteps(input, random);
    }

    /// <summary>Draws parameters and applies them.</summary>
    /// <returns>A new tensor owned by the caller.</returns>
    public Tensor Apply(Tensor clip, ClipRandom random) => Run(clip, random).Clip;

    /// <summary>Draws parameters, applies them, and returns both.</summary>
    /// <returns>The augmented clip (owned by the caller) and the plan.</returns>
    public (Tensor Clip, ClipPlan Plan) Run(Tensor clip, ClipRandom random)
    {
        var plan = Sample(ClipShape.Of(clip), random);
        return (Apply(clip, plan), plan);
    }

    /// <summary>Applies a plan drawn by <see cref="Sample"/> to every frame of <paramref name="clip"/>.</summary>
    /// <param name="clip">The input clip <c>[C, T, H, W]</c>; not modified.</param>
    /// <param name="plan">The plan.</param>
    /// <returns>A new tensor owned by the caller.</returns>
    /// <exception cref="ArgumentException">The plan was drawn for another shape or another pipeline.</exception>
    public Tensor Apply(Tensor clip, ClipPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var shape = ClipShape.Of(clip);
        if (shape != plan.Input)
        {
            throw new ArgumentException($"The plan was drawn for clips of shape {plan.Input}, this clip is {shape}.", nameof(plan));
        }

        using var scope = torch.NewDisposeScope();
        Tensor result;
        if (plan.Frames is { } frames)
        {
            var outputs = new Tensor[frames.Count];
            for (int t = 0; t < frames.Count; t++)
            {
                using var frame = clip.narrow(1, t, 1);
                outputs[t] = ApplySteps(frame, frames[t]);
            }

            result = torch.cat(outputs, 1);
        }
        else
        {
            result = ApplySteps(clip, plan);
        }

        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Applies per-sample plans to a batch <c>[N, C, T, H, W]</c> on its device: steps with a batched kernel
    /// (<see cref="IBatchClipTransform"/>) run once on the whole batch, the others sample by sample.
    /// </summary>
    /// <returns>A new tensor owned by the caller.</returns>
    /// <exception cref="ArgumentException">The number of plans differs from N, or a plan is per-frame.</exception>
    public Tensor ApplyBatch(Tensor batch, IReadOnlyList<ClipPlan> plans)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(plans);
        if (batch.dim() != 5 || batch.shape[0] != plans.Count)
        {
            throw new ArgumentException($"Expected a batch [N, C, T, H, W] with N = {plans.Count}, got [{string.Join(", ", batch.shape)}].", nameof(batch));
        }

        if (plans.Any(p => p.Frames is not null || p.Steps.Count != _steps.Length))
        {
            throw new ArgumentException("Every plan must be a per-clip plan drawn by this pipeline.", nameof(plans));
        }

        using var scope = torch.NewDisposeScope();
        var current = batch;
        for (int i = 0; i < _steps.Length; i++)
        {
            var step = _steps[i];
            var parameters = plans.Select(p => p.Steps[i].Parameters).ToList();
            current = step is IBatchClipTransform batched
                ? batched.ApplyBatch(current, parameters)
                : BatchOps.PerSample(current, parameters, step.Apply);
        }

        return (ReferenceEquals(current, batch) ? batch.clone() : current).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override string ToString() =>
        string.Join(" -> ", _steps.Select(s => s.Name)) + (Consistency == TemporalConsistency.PerFrame ? " (per frame)" : string.Empty);

    private ClipShape OutputShapeOfSteps(ClipShape input)
    {
        foreach (var step in _steps)
        {
            input = step.OutputShape(input);
        }

        return input;
    }

    private ClipPlan SampleSteps(ClipShape input, ClipRandom random)
    {
        var planned = new PlannedStep[_steps.Length];
        var shape = input;
        for (int i = 0; i < _steps.Length; i++)
        {
            planned[i] = new PlannedStep(_steps[i], _steps[i].SampleParameters(shape, random));
            shape = _steps[i].OutputShape(shape);
        }

        return new ClipPlan(input, planned);
    }

    /// <summary>Runs the steps; intermediates this method created may be overwritten in place and are disposed when replaced.</summary>
    private Tensor ApplySteps(Tensor clip, ClipPlan plan)
    {
        Tensor current = clip;
        for (int i = 0; i < _steps.Length; i++)
        {
            var step = plan.Steps[i];
            if (!ReferenceEquals(step.Transform, _steps[i]))
            {
                throw new ArgumentException($"Step {i} of the plan belongs to another pipeline ({step.Transform.Name}).", nameof(plan));
            }

            bool owned = !ReferenceEquals(current, clip);
            Tensor next = step.Transform switch
            {
                IOwnedApply typed when owned => typed.ApplyOwnedBoxed(current, step.Parameters),
                IOwnedApply typed => typed.ApplyBorrowedBoxed(current, step.Parameters),
                _ => step.Transform.Apply(current, step.Parameters),
            };

            if (owned && !ReferenceEquals(next, current))
            {
                current.Dispose();
            }

            current = next;
        }

        return ReferenceEquals(current, clip) ? clip.alias() : current;
    }
}
