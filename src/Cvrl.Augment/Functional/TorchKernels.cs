using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Augment.Functional;

/// <summary>
/// Device-agnostic TorchSharp kernels over batches <c>[N, C, T, H, W]</c> with one parameter per sample (a tensor of
/// shape [N] on the batch's device). A single clip is a batch of one. They compute the same functions as
/// <see cref="CpuKernels"/>. All return new tensors and leave their inputs unchanged; temporaries are disposed.
/// </summary>
internal static class TorchKernels
{
    /// <summary>clamp(x * f_n, 0, 1).</summary>
    public static Tensor Brightness(Tensor batch, Tensor factors)
    {
        using var scope = torch.NewDisposeScope();
        var f = PerSample(factors, batch);
        return batch.mul(f).clamp_(0, 1).MoveToOuterDisposeScope();
    }

    /// <summary>clamp((x - m_nc) * f_n + m_nc, 0, 1), m_nc the mean of channel c of sample n over T, H, W.</summary>
    public static Tensor Contrast(Tensor batch, Tensor factors)
    {
        using var scope = torch.NewDisposeScope();
        var f = PerSample(factors, batch);
        var mean = batch.mean([2, 3, 4], keepdim: true);
        return batch.sub(mean).mul_(f).add_(mean).clamp_(0, 1).MoveToOuterDisposeScope();
    }

    /// <summary>HSV saturation scale (clamped to [0, 1]) and hue rotation (turns), per sample, then clamp to [0, 1].</summary>
    public static Tensor Hsv(Tensor batch, Tensor saturationFactors, Tensor hueDeltas)
    {
        using var scope = torch.NewDisposeScope();
        var sf = PerSample(saturationFactors, batch).squeeze(1);
        var shift = PerSample(hueDeltas, batch).squeeze(1).mul(6f);
        var r = batch.select(1, 0);
        var g = batch.select(1, 1);
        var b = batch.select(1, 2);
        var vmax = torch.maximum(r, torch.maximum(g, b));
        var vmin = torch.minimum(r, torch.minimum(g, b));
        var range = vmax - vmin;
        var hr = (g - b) / range;
        var hg = ((b - r) / range) + 2f;
        var hb = ((r - g) / range) + 4f;
        var h = torch.where(r.eq(vmax), hr, torch.where(g.eq(vmax), hg, hb));
        h = torch.where(h.lt(0f), h + 6f, h);
        var zero = torch.zeros_like(h);
        h = torch.where(range.gt(0f), h, zero);

        var s = torch.where(vmax.gt(0f), range / vmax, zero);
        s = (s * sf).clamp_(0, 1);
        vmin = vmax - (s * vmax);

        h = h + shift;
        h = h - (torch.floor(h / 6f) * 6f);
        h = torch.where(h.ge(6f), zero, h);

        var chroma = vmax - vmin;
        var result = torch.stack([Channel(h, 5f, vmax, chroma), Channel(h, 3f, vmax, chroma), Channel(h, 1f, vmax, chroma)], 1);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>Luma <c>0.2989 R + 0.5870 G + 0.1140 B</c> repeated over the three channels.</summary>
    public static Tensor Grayscale(Tensor batch)
    {
        using var scope = torch.NewDisposeScope();
        var y = (batch.select(1, 0) * CpuKernels.GrayR) + (batch.select(1, 1) * CpuKernels.GrayG) + (batch.select(1, 2) * CpuKernels.GrayB);
        return y.unsqueeze(1).expand(batch.shape).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>x if x &lt; threshold else 1 - x.</summary>
    public static Tensor Solarize(Tensor batch, float threshold)
    {
        using var scope = torch.NewDisposeScope();
        return torch.where(batch.lt(threshold), batch, 1f - batch).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Separable Gaussian blur of every [H, W] plane with zero padding and one 1-D kernel per sample
    /// (<paramref name="kernels"/>: [N, K] on the batch's device, K odd).
    /// </summary>
    public static Tensor GaussianBlur(Tensor batch, Tensor kernels)
    {
        using var scope = torch.NewDisposeScope();
        long n = batch.shape[0], c = batch.shape[1], t = batch.shape[2], h = batch.shape[3], w = batch.shape[4];
        long k = kernels.shape[1];
        long planes = c * t;
        var x = batch.reshape(1, n * planes, h, w);
        var perPlane = kernels.to(batch.dtype).repeat_interleave(planes, 0); // [N*C*T, K]
        var horizontal = perPlane.reshape(n * planes, 1, 1, k);
        var vertical = perPlane.reshape(n * planes, 1, k, 1);
        var y = torch.nn.functional.conv2d(x, horizontal, padding: [0, k / 2], groups: n * planes);
        y = torch.nn.functional.conv2d(y, vertical, padding: [k / 2, 0], groups: n * planes);
        return y.reshape(n, c, t, h, w).MoveToOuterDisposeScope();
    }

    /// <summary>Crops and resizes one clip [C, T, H, W] bilinearly (half-pixel centres, no antialiasing); uint8 is rounded back.</summary>
    public static Tensor ResizedCrop(Tensor clip, int top, int left, int height, int width, int outHeight, int outWidth)
    {
        using var scope = torch.NewDisposeScope();
        var crop = clip[.., .., top..(top + height), left..(left + width)];
        bool isByte = clip.dtype == ScalarType.Byte;
        var x = isByte ? crop.to_type(ScalarType.Float32) : crop;
        if (height != outHeight || width != outWidth)
        {
            x = torch.nn.functional.interpolate(x, [outHeight, outWidth], mode: InterpolationMode.Bilinear, align_corners: false);
        }

        var result = isByte ? x.round().clamp_(0, 255).to_type(ScalarType.Byte) : x.contiguous();
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>Normalised 1-D Gaussian taps for each sigma: [N, K], K = 2 * radius + 1.</summary>
    public static Tensor GaussianKernels(Tensor sigmas, int kernelSize)
    {
        using var scope = torch.NewDisposeScope();
        int radius = kernelSize / 2;
        var x = torch.arange(-radius, radius + 1, dtype: ScalarType.Float32, device: sigmas.device).unsqueeze(0);
        var s = sigmas.to_type(ScalarType.Float32).unsqueeze(1);
        var taps = torch.exp(-x.pow(2) / (s.pow(2) * 2f));
        return (taps / taps.sum(1, keepdim: true)).MoveToOuterDisposeScope();
    }

    private static Tensor Channel(Tensor h, float n, Tensor vmax, Tensor chroma)
    {
        var k = h + n;
        k = torch.where(k.ge(6f), k - 6f, k);
        var t = torch.minimum(k, 4f - k).clamp_(0, 1);
        return (vmax - (chroma * t)).clamp_(0, 1);
    }

    /// <summary>Reshapes per-sample values [N] to [N, 1, 1, 1, 1] on the batch's device and dtype.</summary>
    private static Tensor PerSample(Tensor values, Tensor batch) =>
        values.to(batch.dtype, batch.device).reshape(values.shape[0], 1, 1, 1, 1);
}
