using TorchSharp;
using static TorchSharp.torch;

using Cvrl.Video;

namespace Cvrl.Augment.Functional;

/// <summary>
/// Deterministic clip operations (parameters in, no randomness) on one clip <c>[C, T, H, W]</c>, applied identically
/// to every frame. Colour operations follow TensorFlow's semantics as CVRL's official code uses them
/// (docs/method.md section 2) and expect float32 values in [0, 1]; geometry works on uint8 or float32.
/// </summary>
/// <remarks>
/// Every method returns a new tensor owned by the caller and leaves its input unchanged. On the CPU, contiguous
/// clips go through vectorised kernels and OpenCV; on other devices (or other layouts) the same functions run as
/// TorchSharp operations, so GPU training can augment on the GPU.
/// </remarks>
public static class ClipOps
{
    /// <summary>Converts a uint8 clip to float32 in [0, 1] (<c>x / 255</c>); a float32 clip is copied.</summary>
    public static Tensor ToFloat(Tensor clip)
    {
        ClipShape.Of(clip);
        if (clip.dtype == ScalarType.Byte)
        {
            using var f = clip.to_type(ScalarType.Float32);
            return f.div_(TorchScalars.Byte255).contiguous();
        }

        RequireFloat(clip);
        return clip.clone();
    }

    /// <summary>Converts a float clip in [0, 1] to uint8 (<c>round(255 x)</c>), e.g. for pictures.</summary>
    public static Tensor ToByte(Tensor clip)
    {
        ClipShape.Of(clip);
        RequireFloat(clip);
        using var scaled = clip.mul(TorchScalars.Byte255);
        using var rounded = scaled.round_().clamp_(TorchScalars.Zero, TorchScalars.Byte255);
        return rounded.to_type(ScalarType.Byte);
    }

    /// <summary>Crops <paramref name="box"/> from every frame and resizes it to the output size (bilinear, half-pixel centres, no antialiasing).</summary>
    /// <exception cref="ArgumentException">The box does not fit in the frame, or the output size is not positive.</exception>
    public static Tensor ResizedCrop(Tensor clip, CropBox box, int outHeight, int outWidth)
    {
        var shape = ClipShape.Of(clip);
        RequireGeometryType(clip);
        if (!box.FitsIn(shape.Height, shape.Width))
        {
            throw new ArgumentException($"Crop box {box} does not fit in frames of {shape.Width}x{shape.Height}.", nameof(box));
        }

        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outHeight);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outWidth);
        return CpuKernels.CanRunGeometry(clip)
            ? CpuKernels.ResizedCrop(clip, box.Top, box.Left, box.Height, box.Width, outHeight, outWidth)
            : TorchKernels.ResizedCrop(clip, box.Top, box.Left, box.Height, box.Width, outHeight, outWidth);
    }

    /// <summary>Crops <paramref name="box"/> from every frame without resizing.</summary>
    public static Tensor Crop(Tensor clip, CropBox box) => ResizedCrop(clip, box, box.Height, box.Width);

    /// <summary>Crops the centred <paramref name="height"/> x <paramref name="width"/> region of every frame.</summary>
    /// <exception cref="ArgumentException">The frames are smaller than the crop.</exception>
    public static Tensor CenterCrop(Tensor clip, int height, int width)
    {
        var shape = ClipShape.Of(clip);
        if (height > shape.Height || width > shape.Width)
        {
            throw new ArgumentException($"Cannot centre-crop {width}x{height} from frames of {shape.Width}x{shape.Height}.", nameof(clip));
        }

        return Crop(clip, ViewGeometry.CenterCropBox(shape.Height, shape.Width, height, width));
    }

    /// <summary>
    /// The official evaluation's three crop boxes of <paramref name="size"/> x <paramref name="size"/> along the longer
    /// side (<see cref="ViewGeometry.ThreeCropBoxes"/>, which the test views use: <see cref="TestViews"/>).
    /// </summary>
    public static CropBox[] ThreeCropBoxes(int height, int width, int size) => ViewGeometry.ThreeCropBoxes(height, width, size);

    /// <summary>Resizes every frame so its shorter side is <paramref name="size"/> (longer side <c>long * size / short</c>, rounded down).</summary>
    public static Tensor ResizeShortSide(Tensor clip, int size)
    {
        var shape = ClipShape.Of(clip);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        var (h, w) = ViewGeometry.ShortSideSize(shape.Height, shape.Width, size);
        return ResizedCrop(clip, CropBox.Full(shape.Height, shape.Width), h, w);
    }

    /// <summary>Mirrors every frame left to right.</summary>
    public static Tensor HorizontalFlip(Tensor clip)
    {
        ClipShape.Of(clip);
        return clip.flip(3);
    }

    /// <summary>Multiplies every value by <paramref name="factor"/> and clamps to [0, 1] (SimCLR-v2 brightness).</summary>
    public static Tensor AdjustBrightness(Tensor clip, float factor)
    {
        RequireColorClip(clip);
        if (CpuKernels.CanRunFloat(clip))
        {
            var dst = torch.empty_like(clip);
            CpuKernels.Brightness(clip, dst, factor);
            return dst;
        }

        return OnBatch(clip, b => TorchKernels.Brightness(b, Scalar(factor, clip)));
    }

    /// <summary>
    /// <c>(x - mean) * factor + mean</c> per channel, the mean taken over all frames of the clip, then clamps to [0, 1]
    /// (<c>tf.image.adjust_contrast</c> on the clip as one tall image).
    /// </summary>
    public static Tensor AdjustContrast(Tensor clip, float factor)
    {
        RequireColorClip(clip);
        if (CpuKernels.CanRunFloat(clip))
        {
            using var means = clip.mean([1, 2, 3]);
            float[] m = means.data<float>().ToArray();
            var dst = torch.empty_like(clip);
            CpuKernels.Contrast(clip, dst, factor, m);
            return dst;
        }

        return OnBatch(clip, b => TorchKernels.Contrast(b, Scalar(factor, clip)));
    }

    /// <summary>Scales HSV saturation by <paramref name="factor"/> (clamped to [0, 1]; <c>tf.image.adjust_saturation</c>), then clamps to [0, 1].</summary>
    public static Tensor AdjustSaturation(Tensor clip, float factor)
    {
        RequireColorClip(clip);
        return Hsv(clip, factor, 0f);
    }

    /// <summary>Rotates HSV hue by <paramref name="delta"/> turns, wrapping (<c>tf.image.adjust_hue</c>), then clamps to [0, 1].</summary>
    public static Tensor AdjustHue(Tensor clip, float delta)
    {
        RequireColorClip(clip);
        return Hsv(clip, 1f, delta);
    }

    /// <summary>Replaces every channel with the luma <c>0.2989 R + 0.5870 G + 0.1140 B</c> (<c>tf.image.rgb_to_grayscale</c>, tiled to 3 channels).</summary>
    public static Tensor Grayscale(Tensor clip)
    {
        RequireColorClip(clip);
        if (CpuKernels.CanRunFloat(clip))
        {
            var dst = torch.empty_like(clip);
            CpuKernels.Grayscale(clip, dst);
            return dst;
        }

        return OnBatch(clip, TorchKernels.Grayscale);
    }

    /// <summary>
    /// Separable Gaussian blur of every frame with <paramref name="kernelSize"/> taps (odd), standard deviation
    /// <paramref name="sigma"/> pixels, and zero padding at the borders (TensorFlow 'SAME').
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Sigma is not positive or the kernel size is not a positive odd number.</exception>
    public static Tensor GaussianBlur(Tensor clip, float sigma, int kernelSize)
    {
        ClipShape.Of(clip);
        RequireFloat(clip);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sigma);
        if (kernelSize < 1 || kernelSize % 2 == 0)
        {
            throw new ArgumentOutOfRangeException(nameof(kernelSize), kernelSize, "The kernel size must be a positive odd number.");
        }

        if (CpuKernels.CanRunFloat(clip))
        {
            return CpuKernels.GaussianBlur(clip, GaussianTaps(sigma, kernelSize));
        }

        return OnBatch(clip, b =>
        {
            using var sigmas = torch.tensor(new[] { sigma }, device: clip.device);
            using var kernels = TorchKernels.GaussianKernels(sigmas, kernelSize);
            return TorchKernels.GaussianBlur(b, kernels);
        });
    }

    /// <summary>Replaces x by 1 - x wherever x &gt;= <paramref name="threshold"/>.</summary>
    public static Tensor Solarize(Tensor clip, float threshold = 0.5f)
    {
        ClipShape.Of(clip);
        RequireFloat(clip);
        if (CpuKernels.CanRunFloat(clip))
        {
            var dst = torch.empty_like(clip);
            CpuKernels.Solarize(clip, dst, threshold);
            return dst;
        }

        return OnBatch(clip, b => TorchKernels.Solarize(b, threshold));
    }

    /// <summary>Normalised Gaussian taps <c>exp(-x^2 / (2 sigma^2))</c> for x in [-r, r], r = kernelSize / 2.</summary>
    public static float[] GaussianTaps(float sigma, int kernelSize)
    {
        int radius = kernelSize / 2;
        var taps = new float[(2 * radius) + 1];
        float sum = 0f;
        for (int i = 0; i < taps.Length; i++)
        {
            float x = i - radius;
            taps[i] = MathF.Exp(-(x * x) / (2f * sigma * sigma));
            sum += taps[i];
        }

        for (int i = 0; i < taps.Length; i++)
        {
            taps[i] /= sum;
        }

        return taps;
    }

    /// <summary>
    /// The official blur's kernel size for frames of height <paramref name="height"/>: <c>2 * ((height / 10) / 2) + 1</c>
    /// (23 taps at 224).
    /// </summary>
    public static int BlurKernelSize(int height) => (2 * ((height / 10) / 2)) + 1;

    internal static Tensor Hsv(Tensor clip, float saturation, float hue)
    {
        if (CpuKernels.CanRunFloat(clip))
        {
            var dst = torch.empty_like(clip);
            CpuKernels.Hsv(clip, dst, saturation, hue);
            return dst;
        }

        return OnBatch(clip, b => TorchKernels.Hsv(b, Scalar(saturation, clip), Scalar(hue, clip)));
    }

    private static Tensor Scalar(float value, Tensor like) => torch.tensor(new[] { value }, device: like.device);

    private static Tensor OnBatch(Tensor clip, Func<Tensor, Tensor> op)
    {
        using var scope = torch.NewDisposeScope();
        var result = op(clip.unsqueeze(0)).squeeze(0);
        return result.MoveToOuterDisposeScope();
    }

    internal static void RequireColorClip(Tensor clip)
    {
        var shape = ClipShape.Of(clip);
        RequireFloat(clip);
        if (shape.Channels != 3)
        {
            throw new ArgumentException($"Colour operations need 3 (RGB) channels, the clip has {shape.Channels}: {shape}.", nameof(clip));
        }
    }

    internal static void RequireFloat(Tensor clip)
    {
        if (!torch.is_floating_point(clip))
        {
            throw new ArgumentException($"Expected a floating-point clip with values in [0, 1], got {clip.dtype}; convert uint8 clips with ClipOps.ToFloat first.", nameof(clip));
        }
    }

    private static void RequireGeometryType(Tensor clip)
    {
        if (clip.dtype != ScalarType.Byte && !torch.is_floating_point(clip))
        {
            throw new ArgumentException($"Expected a uint8 or floating-point clip, got {clip.dtype}.", nameof(clip));
        }
    }
}
