using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Cvrl.Video;
using OpenCvSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Augment.Functional;

/// <summary>
/// CPU kernels that work in place on contiguous float32 clips <c>[C, T, H, W]</c> through pointers into the tensor's
/// memory (vectorised with <see cref="Vector256{T}"/>, or OpenCV for filters and resizing). They compute the same
/// functions as <see cref="TorchKernels"/>, which run on any device; tests hold the two to 1e-5.
/// </summary>
internal static unsafe class CpuKernels
{
    /// <summary>Grayscale weights of <c>tf.image.rgb_to_grayscale</c>.</summary>
    internal const float GrayR = 0.2989f;
    internal const float GrayG = 0.5870f;
    internal const float GrayB = 0.1140f;

    /// <summary>When true, every op uses <see cref="TorchKernels"/> (tests compare the two paths).</summary>
    internal static bool Disabled { get; set; }

    /// <summary>Whether the CPU kernels can run on this clip (float32, contiguous, on the CPU).</summary>
    public static bool CanRunFloat(Tensor clip) =>
        !Disabled && clip.device_type == DeviceType.CPU && clip.dtype == ScalarType.Float32 && clip.is_contiguous();

    /// <summary>Whether the OpenCV geometry kernels can run on this clip (uint8 or float32 on the CPU; any strides).</summary>
    public static bool CanRunGeometry(Tensor clip) =>
        !Disabled && clip.device_type == DeviceType.CPU && (clip.dtype == ScalarType.Float32 || clip.dtype == ScalarType.Byte);

    /// <summary>dst = clamp(src * factor, 0, 1) over the whole clip (dst may be src).</summary>
    public static void Brightness(Tensor src, Tensor dst, float factor)
    {
        int n = Pair(src, dst, out float* x, out float* y);
        var f = Vector256.Create(factor);
        int i = 0;
        for (; i <= n - 8; i += 8)
        {
            Clamp01(Vector256.Load(x + i) * f).Store(y + i);
        }

        for (; i < n; i++)
        {
            y[i] = Math.Clamp(x[i] * factor, 0f, 1f);
        }
    }

    /// <summary>dst_c = clamp((src_c - mean_c) * factor + mean_c, 0, 1), mean_c over all frames of channel c (dst may be src).</summary>
    public static void Contrast(Tensor src, Tensor dst, float factor, ReadOnlySpan<float> channelMeans)
    {
        int n = Pair(src, dst, out float* x, out float* y);
        int channels = (int)src.shape[0];
        int plane = n / channels;
        var f = Vector256.Create(factor);
        for (int c = 0; c < channels; c++)
        {
            float* xs = x + ((long)c * plane);
            float* ys = y + ((long)c * plane);
            float mean = channelMeans[c];
            var m = Vector256.Create(mean);
            int i = 0;
            for (; i <= plane - 8; i += 8)
            {
                Clamp01(((Vector256.Load(xs + i) - m) * f) + m).Store(ys + i);
            }

            for (; i < plane; i++)
            {
                ys[i] = Math.Clamp(((xs[i] - mean) * factor) + mean, 0f, 1f);
            }
        }
    }

    /// <summary>
    /// HSV saturation scale (clamped to [0, 1]) by <paramref name="saturationFactor"/> and hue rotation by
    /// <paramref name="hueDelta"/> turns (wrapped), then clamp to [0, 1] (dst may be src).
    /// </summary>
    public static void Hsv(Tensor src, Tensor dst, float saturationFactor, float hueDelta)
    {
        int n = Pair(src, dst, out float* x, out float* y);
        int plane = n / 3;
        float shift = hueDelta * 6f;
        int i = 0;
        for (; i <= plane - 8; i += 8)
        {
            HsvVector(x + i, x + plane + i, x + (2 * plane) + i, y + i, y + plane + i, y + (2 * plane) + i, saturationFactor, shift);
        }

        for (; i < plane; i++)
        {
            HsvScalar(x + i, x + plane + i, x + (2 * plane) + i, y + i, y + plane + i, y + (2 * plane) + i, saturationFactor, shift);
        }
    }

    /// <summary>Each channel of dst becomes the luma <c>0.2989 R + 0.5870 G + 0.1140 B</c> of src (dst may be src).</summary>
    public static void Grayscale(Tensor src, Tensor dst)
    {
        int n = Pair(src, dst, out float* x, out float* y);
        int plane = n / 3;
        var wr = Vector256.Create(GrayR);
        var wg = Vector256.Create(GrayG);
        var wb = Vector256.Create(GrayB);
        float* r = x, g = x + plane, b = x + (2 * plane);
        int i = 0;
        for (; i <= plane - 8; i += 8)
        {
            var luma = (Vector256.Load(r + i) * wr) + (Vector256.Load(g + i) * wg) + (Vector256.Load(b + i) * wb);
            luma.Store(y + i);
            luma.Store(y + plane + i);
            luma.Store(y + (2 * plane) + i);
        }

        for (; i < plane; i++)
        {
            float luma = (r[i] * GrayR) + (g[i] * GrayG) + (b[i] * GrayB);
            y[i] = luma;
            y[plane + i] = luma;
            y[(2 * plane) + i] = luma;
        }
    }

    /// <summary>dst = src if src &lt; threshold else 1 - src (dst may be src).</summary>
    public static void Solarize(Tensor src, Tensor dst, float threshold)
    {
        int n = Pair(src, dst, out float* x, out float* y);
        var th = Vector256.Create(threshold);
        int i = 0;
        for (; i <= n - 8; i += 8)
        {
            var v = Vector256.Load(x + i);
            Vector256.ConditionalSelect(Vector256.LessThan(v, th), v, Vector256<float>.One - v).Store(y + i);
        }

        for (; i < n; i++)
        {
            y[i] = x[i] < threshold ? x[i] : 1f - x[i];
        }
    }

    /// <summary>Separable Gaussian blur of every [H, W] plane with zero padding ('SAME'), into a new clip.</summary>
    public static Tensor GaussianBlur(Tensor clip, ReadOnlySpan<float> kernel)
    {
        // Taps below 1e-10 change no float32 output in [0, 1] (their total is under 3e-9): skip them. Zero padding
        // makes the truncated and full kernels agree at the borders too.
        int skip = 0;
        while (skip < kernel.Length / 2 && kernel[skip] < 1e-10f && kernel[kernel.Length - 1 - skip] < 1e-10f)
        {
            skip++;
        }

        kernel = kernel[skip..(kernel.Length - skip)];
        var output = torch.empty_like(clip);
        int planes = (int)(clip.shape[0] * clip.shape[1]);
        int h = (int)clip.shape[2];
        int w = (int)clip.shape[3];
        using var k = Mat.FromPixelData(kernel.Length, 1, MatType.CV_32FC1, kernel.ToArray());
        fixed (byte* src = clip.bytes)
        fixed (byte* dst = output.bytes)
        {
            for (int i = 0; i < planes; i++)
            {
                long offset = (long)i * h * w * sizeof(float);
                using var s = Mat.FromPixelData(h, w, MatType.CV_32FC1, (IntPtr)(src + offset));
                using var d = Mat.FromPixelData(h, w, MatType.CV_32FC1, (IntPtr)(dst + offset));
                Cv2.SepFilter2D(s, d, MatType.CV_32F, k, k, new OpenCvSharp.Point(-1, -1), 0, BorderTypes.Constant);
            }
        }

        return output;
    }

    /// <summary>Crops <c>[top, left, height, width]</c> from every plane and resizes it bilinearly (half-pixel centres, no antialiasing).</summary>
    public static Tensor ResizedCrop(Tensor clip, int top, int left, int height, int width, int outHeight, int outWidth)
    {
        if (!clip.is_contiguous())
        {
            using var dense = clip.contiguous();
            return ResizedCrop(dense, top, left, height, width, outHeight, outWidth);
        }

        var output = torch.empty([clip.shape[0], clip.shape[1], outHeight, outWidth], clip.dtype);
        var depth = clip.dtype == ScalarType.Byte ? PixelDepth.UInt8 : PixelDepth.Float32;
        ViewGeometry.ResizedCrop(clip.bytes, output.bytes, depth, (int)(clip.shape[0] * clip.shape[1]), (int)clip.shape[2], (int)clip.shape[3], new CropBox(top, left, height, width), outHeight, outWidth);
        return output;
    }

    /// <summary>Raw pointers into two float32 CPU tensors of equal size. The tensors own the (native, unmoving) memory.</summary>
    private static int Pair(Tensor src, Tensor dst, out float* x, out float* y)
    {
        var a = src.bytes;
        var b = dst.bytes;
        if (a.Length != b.Length)
        {
            throw new ArgumentException("Source and destination clips differ in size.", nameof(dst));
        }

        x = (float*)Unsafe.AsPointer(ref a.GetPinnableReference());
        y = (float*)Unsafe.AsPointer(ref b.GetPinnableReference());
        return a.Length / sizeof(float);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Clamp01(Vector256<float> v) => Vector256.Min(Vector256.Max(v, Vector256<float>.Zero), Vector256<float>.One);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void HsvVector(float* pr, float* pg, float* pb, float* qr, float* qg, float* qb, float saturationFactor, float shift)
    {
        var r = Vector256.Load(pr);
        var g = Vector256.Load(pg);
        var b = Vector256.Load(pb);
        var zero = Vector256<float>.Zero;
        var one = Vector256<float>.One;
        var six = Vector256.Create(6f);
        var vmax = Vector256.Max(r, Vector256.Max(g, b));
        var vmin = Vector256.Min(r, Vector256.Min(g, b));
        var range = vmax - vmin;
        var isR = Vector256.Equals(r, vmax);
        var isG = Vector256.Equals(g, vmax);
        var hr = (g - b) / range;
        var hg = ((b - r) / range) + Vector256.Create(2f);
        var hb = ((r - g) / range) + Vector256.Create(4f);
        var h = Vector256.ConditionalSelect(isR, hr, Vector256.ConditionalSelect(isG, hg, hb));
        h = Vector256.ConditionalSelect(Vector256.LessThan(h, zero), h + six, h);
        h = Vector256.ConditionalSelect(Vector256.GreaterThan(range, zero), h, zero);

        if (saturationFactor != 1f)
        {
            var s = Vector256.ConditionalSelect(Vector256.GreaterThan(vmax, zero), range / vmax, zero);
            s = Vector256.Min(Vector256.Max(s * Vector256.Create(saturationFactor), zero), one);
            vmin = vmax - (s * vmax);
        }

        if (shift != 0f)
        {
            h += Vector256.Create(shift);
            h -= six * Vector256.Floor(h / six);
            h = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(h, six), zero, h);
        }

        var chroma = vmax - vmin;
        Channel(h, Vector256.Create(5f), vmax, chroma, one, zero, six).Store(qr);
        Channel(h, Vector256.Create(3f), vmax, chroma, one, zero, six).Store(qg);
        Channel(h, one, vmax, chroma, one, zero, six).Store(qb);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Channel(Vector256<float> h, Vector256<float> n, Vector256<float> vmax, Vector256<float> chroma,
        Vector256<float> one, Vector256<float> zero, Vector256<float> six)
    {
        var k = n + h;
        k = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(k, six), k - six, k);
        var t = Vector256.Min(k, Vector256.Create(4f) - k);
        t = Vector256.Min(Vector256.Max(t, zero), one);
        var v = vmax - (chroma * t);
        return Vector256.Min(Vector256.Max(v, zero), one);
    }

    private static void HsvScalar(float* pr, float* pg, float* pb, float* qr, float* qg, float* qb, float saturationFactor, float shift)
    {
        float r = *pr, g = *pg, b = *pb;
        float vmax = Math.Max(r, Math.Max(g, b));
        float vmin = Math.Min(r, Math.Min(g, b));
        float range = vmax - vmin;
        float h = r == vmax ? (g - b) / range : g == vmax ? ((b - r) / range) + 2f : ((r - g) / range) + 4f;
        if (h < 0f)
        {
            h += 6f;
        }

        if (!(range > 0f))
        {
            h = 0f;
        }

        if (saturationFactor != 1f)
        {
            float s = vmax > 0f ? range / vmax : 0f;
            s = Math.Clamp(s * saturationFactor, 0f, 1f);
            vmin = vmax - (s * vmax);
        }

        if (shift != 0f)
        {
            h += shift;
            h -= 6f * MathF.Floor(h / 6f);
            if (h >= 6f)
            {
                h = 0f;
            }
        }

        float chroma = vmax - vmin;
        *qr = ChannelScalar(h, 5f, vmax, chroma);
        *qg = ChannelScalar(h, 3f, vmax, chroma);
        *qb = ChannelScalar(h, 1f, vmax, chroma);
    }

    private static float ChannelScalar(float h, float n, float vmax, float chroma)
    {
        float k = n + h;
        if (k >= 6f)
        {
            k -= 6f;
        }

        float t = Math.Clamp(Math.Min(k, 4f - k), 0f, 1f);
        return Math.Clamp(vmax - (chroma * t), 0f, 1f);
    }
}
