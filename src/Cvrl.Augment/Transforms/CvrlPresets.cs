namespace Cvrl.Augment.Transforms;

/// <summary>
/// The paper's augmentation recipes as pipelines (docs/method.md section 2). Input clips are uint8 RGB
/// <c>[3, T, H, W]</c> at the stored (or decode-resized) resolution; outputs are float32 in [0, 1].
/// </summary>
public static class CvrlPresets
{
    /// <summary>
    /// Pre-training view 1: random resized crop (area <paramref name="cropArea"/>, official 0.3-1; aspect
    /// <paramref name="cropAspect"/>, official 0.5-2) to <paramref name="size"/>, flip (p 0.5), to float, colour jitter
    /// (p 0.8) of strength <paramref name="colorStrength"/> (official 1.0: brightness, contrast and saturation 0.8,
    /// hue 0.2), grayscale (p 0.2), Gaussian blur (p 1.0).
    /// </summary>
    public static ClipPipeline PretrainView1(int size = 224, TemporalConsistency consistency = TemporalConsistency.PerClip, double colorStrength = 1.0, ValueRange? cropArea = null, ValueRange? cropAspect = null) =>
        ClipPipeline.Create(b => b.RandomResizedCrop(size, cropArea?.ToTuple(), cropAspect?.ToTuple()).RandomHorizontalFlip(0.5).ToFloat().Add(Transforms.ColorJitter.WithStrength(colorStrength)).RandomGrayscale(0.2).RandomGaussianBlur(1.0), consistency);

    /// <summary>Pre-training view 2: as view 1, but blur with p 0.1, then solarize (p 0.2).</summary>
    /// <inheritdoc cref="PretrainView1" path="/param"/>
    public static ClipPipeline PretrainView2(int size = 224, TemporalConsistency consistency = TemporalConsistency.PerClip, double colorStrength = 1.0, ValueRange? cropArea = null, ValueRange? cropAspect = null) =>
        ClipPipeline.Create(b => b.RandomResizedCrop(size, cropArea?.ToTuple(), cropAspect?.ToTuple()).RandomHorizontalFlip(0.5).ToFloat().Add(Transforms.ColorJitter.WithStrength(colorStrength)).RandomGrayscale(0.2).RandomGaussianBlur(0.1).RandomSolarize(0.2), consistency);

    /// <summary>
    /// Linear-evaluation training: random resized crop (area 0.3-1, aspect 0.5-2), flip, to float; no colour operations
    /// (the official recipe). With <paramref name="colorStrength"/> above 0, colour jitter of that strength (p 0.8) and
    /// grayscale (p 0.2) follow, as in pre-training: not official, but what lets small labelled sets generalise when
    /// fine-tuning from scratch (docs/results.md).
    /// </summary>
    public static ClipPipeline LinearEvalTrain(int size = 224, double colorStrength = 0) =>
        colorStrength > 0
            ? ClipPipeline.Create(b => b.RandomResizedCrop(size).RandomHorizontalFlip(0.5).ToFloat().Add(Transforms.ColorJitter.WithStrength(colorStrength)).RandomGrayscale(0.2))
            : ClipPipeline.Create(b => b.RandomResizedCrop(size).RandomHorizontalFlip(0.5).ToFloat());
}
