namespace Cvrl.Augment.Transforms;

/// <summary>Fluent builder for <see cref="ClipPipeline"/> (see <see cref="ClipPipeline.Create"/>).</summary>
public sealed class ClipPipelineBuilder
{
    private readonly List<IClipTransform> _steps = [];

    /// <summary>The steps added so far.</summary>
    public IReadOnlyList<IClipTransform> Steps => _steps;

    /// <summary>Adds any transform.</summary>
    public ClipPipelineBuilder Add(IClipTransform transform)
    {
        ArgumentNullException.ThrowIfNull(transform);
        _steps.Add(transform);
        return this;
    }

    /// <summary>Adds <see cref="Transforms.RandomResizedCrop"/> (TensorFlow semantics; CVRL defaults).</summary>
    public ClipPipelineBuilder RandomResizedCrop(int size = 224, (double Min, double Max)? areaRange = null, (double Min, double Max)? aspectRange = null, int maxAttempts = 100) =>
        Add(new RandomResizedCrop(size, areaRange, aspectRange, maxAttempts));

    /// <summary>Adds <see cref="Transforms.RandomHorizontalFlip"/>.</summary>
    public ClipPipelineBuilder RandomHorizontalFlip(double probability = 0.5) => Add(new RandomHorizontalFlip(probability));

    /// <summary>Adds <see cref="Transforms.ToFloat"/> (uint8 to float32 in [0, 1]).</summary>
    public ClipPipelineBuilder ToFloat() => Add(new ToFloat());

    /// <summary>Adds <see cref="Transforms.ColorJitter"/> (CVRL defaults: 0.8, 0.8, 0.8, 0.2, p 0.8).</summary>
    public ClipPipelineBuilder ColorJitter(double brightness = 0.8, double contrast = 0.8, double saturation = 0.8, double hue = 0.2, double probability = 0.8) =>
        Add(new ColorJitter(brightness, contrast, saturation, hue, probability));

    /// <summary>Adds <see cref="Transforms.RandomGrayscale"/>.</summary>
    public ClipPipelineBuilder RandomGrayscale(double probability = 0.2) => Add(new RandomGrayscale(probability));

    /// <summary>Adds <see cref="Transforms.RandomGaussianBlur"/>.</summary>
    public ClipPipelineBuilder RandomGaussianBlur(double probability, (double Min, double Max)? sigmaRange = null, int? kernelSize = null) =>
        Add(new RandomGaussianBlur(probability, sigmaRange, kernelSize));

    /// <summary>Adds <see cref="Transforms.RandomSolarize"/>.</summary>
    public ClipPipelineBuilder RandomSolarize(double probability = 0.2, float threshold = 0.5f) => Add(new RandomSolarize(probability, threshold));

}
