using Cvrl.Augment.Functional;
using Cvrl.Video;
using static TorchSharp.torch;

namespace Cvrl.Augment.Transforms;

/// <summary>Parameters of <see cref="RandomResizedCrop"/>: the box cut from every frame and the output size.</summary>
/// <param name="Box">The crop box in the input frame.</param>
/// <param name="OutputHeight">Output height.</param>
/// <param name="OutputWidth">Output width.</param>
/// <param name="Fallback">True when no box satisfied the constraints within the attempts and the whole frame was used.</param>
public readonly record struct ResizedCropParams(CropBox Box, int OutputHeight, int OutputWidth, bool Fallback)
{
    /// <inheritdoc />
    public override string ToString() => $"{Box}->{OutputWidth}x{OutputHeight}{(Fallback ? " (full frame)" : string.Empty)}";
}

/// <summary>
/// Cuts one random box from every frame and resizes it to a square, with the semantics of TensorFlow's
/// <c>sample_distorted_bounding_box</c> as CVRL uses it (docs/method.md section 2): aspect ratio w/h uniform in
/// <see cref="AspectRange"/> (not log-uniform), height a uniform integer between the sizes the area range allows,
/// offsets uniform with the box never touching the last row or column (a TensorFlow quirk), up to
/// <see cref="MaxAttempts"/> tries, then the whole frame. Resizing is bilinear with half-pixel centres and no
/// antialiasing. This is not torchvision's RandomResizedCrop (log-uniform ratio, 10 tries, centre-crop fallback).
/// </summary>
public sealed class RandomResizedCrop : ClipTransform<ResizedCropParams>, IBatchClipTransform
{
    /// <summary>Creates the transform.</summary>
    /// <param name="size">Output height and width (224 in CVRL).</param>
    /// <param name="areaRange">Crop area as a fraction of the frame (CVRL: 0.3 to 1).</param>
    /// <param name="aspectRange">Aspect ratio width / height (CVRL: 0.5 to 2).</param>
    /// <param name="maxAttempts">Attempts before falling back to the whole frame (CVRL: 100).</param>
    /// <exception cref="ArgumentOutOfRangeException">A range is empty or outside (0, 1] for the area, or not positive.</exception>
    public RandomResizedCrop(int size = 224, (double Min, double Max)? areaRange = null, (double Min, double Max)? aspectRange = null, int maxAttempts = 100)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxAttempts);
        var area = areaRange ?? (0.3, 1.0);
        var aspect = aspectRange ?? (0.5, 2.0);
        if (!(area.Min > 0) || area.Max > 1 || area.Min > area.Max)
        {
            throw new ArgumentOutOfRangeException(nameof(areaRange), area, "The area range must satisfy 0 < min <= max <= 1.");
        }

        if (!(aspect.Min > 0) || aspect.Min > aspect.Max)
        {
            throw new ArgumentOutOfRangeException(nameof(aspectRange), aspect, "The aspect range must satisfy 0 < min <= max.");
        }

        Size = size;
        AreaRange = area;
        AspectRange = aspect;
        MaxAttempts = maxAttempts;
    }

    /// <summary>Output height and width.</summary>
    public int Size { get; }

    /// <summary>Crop area as a fraction of the frame.</summary>
    public (double Min, double Max) AreaRange { get; }

    /// <summary>Aspect ratio (width / height) range.</summary>
    public (double Min, double Max) AspectRange { get; }

    /// <summary>Attempts before the whole-frame fallback.</summary>
    public int MaxAttempts { get; }

    /// <inheritdoc />
    public override string Name => "crop";

    /// <inheritdoc />
    public override ClipShape OutputShape(ClipShape input) => input.WithSize(Size, Size);

    /// <inheritdoc />
    public override ResizedCropParams Sample(ClipShape input, ClipRandom random)
    {
        ArgumentNullException.ThrowIfNull(random);
        for (int i = 0; i < MaxAttempts; i++)
        {
            float aspect = (random.NextSingle() * (float)(AspectRange.Max - AspectRange.Min)) + (float)AspectRange.Min;
            if (TryCrop(input.Width, input.Height, (float)AreaRange.Min, (float)AreaRange.Max, aspect, random, out var box))
            {
                return new ResizedCropParams(box, Size, Size, false);
            }
        }

        return new ResizedCropParams(CropBox.Full(input.Height, input.Width), Size, Size, true);
    }

    /// <inheritdoc />
    protected internal override Tensor ApplyCore(Tensor clip, ResizedCropParams parameters, bool mayOverwriteInput) =>
        ClipOps.ResizedCrop(clip, parameters.Box, parameters.OutputHeight, parameters.OutputWidth);

    /// <inheritdoc />
    public Tensor ApplyBatch(Tensor batch, IReadOnlyList<object> parameters) =>
        BatchOps.PerSample(batch, parameters, (clip, p) => Apply(clip, Unbox(p)));

    /// <summary>One attempt of TensorFlow's <c>GenerateRandomCrop</c>, in float32 as TensorFlow computes it.</summary>
    internal static bool TryCrop(int width, int height, float minRelativeArea, float maxRelativeArea, float aspect, ClipRandom random, out CropBox box)
    {
        box = default;
        if (maxRelativeArea <= 0f || aspect <= 0f || width <= 0 || height <= 0 || minRelativeArea > maxRelativeArea)
        {
            return false;
        }

        float minArea = minRelativeArea * width * height;
        float maxArea = maxRelativeArea * width * height;
        int h = (int)MathF.Round(MathF.Sqrt(minArea / aspect));
        int maxH = (int)MathF.Round(MathF.Sqrt(maxArea / aspect));
        if ((int)MathF.Round(maxH * aspect) > width)
        {
            const double eps = 0.0000001;
            maxH = (int)((width + 0.5 - eps) / aspect);
            if ((int)MathF.Round(maxH * aspect) > width)
            {
                maxH -= 1;
            }
        }

        if (maxH > height)
        {
            maxH = height;
        }

        if (h >= maxH)
        {
            h = maxH;
        }

        if (h < maxH)
        {
            h += random.NextInt(maxH - h + 1);
        }

        int w = (int)MathF.Round(h * aspect);
        float area = (float)w * h;
        if (area < minArea)
        {
            h += 1;
            w = (int)MathF.Round(h * aspect);
            area = (float)w * h;
        }

        if (area > maxArea)
        {
            h -= 1;
            w = (int)MathF.Round(h * aspect);
            area = (float)w * h;
        }

        if (area < minArea || area > maxArea || w > width || h > height || w <= 0 || h <= 0)
        {
            return false;
        }

        int y = h < height ? random.NextInt(height - h) : 0;
        int x = w < width ? random.NextInt(width - w) : 0;
        box = new CropBox(y, x, h, w);
        return true;
    }
}
