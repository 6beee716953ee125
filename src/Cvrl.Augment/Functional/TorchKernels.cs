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
        return batch.mul(f).clamp_(TorchScalars.Zero, TorchScalars.One).MoveToOuterDisposeScope();
    }

    /// <summary>clamp((x - m_nc) * f_n + m_nc, 0, 1), m_nc the mean of channel c of sample n over T, H, W.</summary>
    public static Tensor Contrast(Tensor batch, Tensor factors)
    {
        using var scope = torch.NewDisposeScope();
        var f = PerSample(factors, batch);
        var mean = batch.mean([2, 3, 4], keepdim: true);
        return batch.sub(mean).mul_(f).add_(mean, TorchScalars.One).clamp_(TorchScalars.Zero, TorchScalars.One).MoveToOuterDisposeScope();
    }

    /// <summary>HSV saturation scale (clamped to [0, 1]) and hue rotation (turns), per sample, then clamp to [0, 1].</summary>
    public static Tensor Hsv(Tensor batch, Tensor saturationFactors, Tensor hueDeltas)
    {
        using var scope = torch.NewDisposeScope();
        var sf = PerSample(saturationFactors, batch).squeeze(1);
        var shift = PerSample(hueDeltas, batch).squeeze(1).mul(TorchScalars.Six);
        var r = batch.select(1, 0);
        var g = batch.select(1, 1);
        var b = batch.select(1, 2);
        var vmax = torch.maximum(r, torch.maximum(g, b));
        var vmin = torch.minimum(r, torch.minimum(g, b));
        var range = vmax.sub(vmin);
        var hr = g.sub(b).div_(range);
        var hg = b.sub(r).div_(range).add_(TorchScalars.Two, TorchScalars.One);
        var hb = r.sub(g).div_(range).add_(TorchScalars.Four, TorchScalars.One);
        var h = torch.where(r.eq(vmax), hr, torch.where(g.eq(vmax), hg, hb));
        h = torch.where(h.lt(TorchScalars.Zero), h.add(TorchScalars.Six, TorchScalars.One), h);
        var zero = torch.zeros_like(h);
        h = torch.where(range.gt(TorchScalars.Zero), h, zero);

        var s = torch.where(vmax.gt(TorchScalars.Zero), range / vmax, zero);
        s = (s * sf).clamp_(TorchScalars.Zero, TorchScalars.One);
        vmin = vmax.sub(s.mul(vmax));

        h = h.add(shift, TorchScalars.One);
        h = h.sub(torch.floor(h.div(TorchScalars.Six)).mul_(TorchScalars.Six));
        h = torch.where(h.ge(TorchScalars.Six), zero, h);

        var chroma = vmax.sub(vmin);
        using var five = 5f.ToScalar();
        using var three = 3f.ToScalar();
        var result = torch.stack([Channel(h, five, vmax, chroma), Channel(h, three, vmax, chroma), Channel(h, TorchScalars.One, vmax, chroma)], 1);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>Luma <c>0.2989 R + 0.5870 G + 0.1140 B</c> repeated over the three channels.</summary>
    public static Tensor Grayscale(Tensor batch)
    {
        using var scope = torch.NewDisposeScope();
        using var gr = CpuKernels.GrayR.ToScalar();
        using var gg = CpuKernels.GrayG.ToScalar();
        using var gb = CpuKernels.GrayB.ToScalar();
        var y = batch.select(1, 0).mul(gr).add_(batch.select(1, 1).mul(gg), TorchScalars.One).add_(batch.select(1, 2).mul(gb), TorchScalars.One);
        return y.unsqueeze(1).expand(batch.shape).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>x if x &lt; threshold else 1 - x.</summary>
    public static Tensor Solarize(Tensor batch, float threshold)
    {
        using var scope = torch.NewDisposeScope();
        using var t = threshold.ToScalar();
        return torch.where(batch.lt(t), batch, batch.neg().add_(TorchScalars.One, TorchScalars.One)).MoveToOuterDisposeScope();
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

        var result = isByte ? x.round().clamp_(TorchScalars.Zero, TorchScalars.Byte255).to_type(ScalarType.Byte) : x.contiguous();
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>Normalised 1-D Gaussian taps for each sigma: [N, K], K = 2 * radius + 1.</summary>
    public static Tensor GaussianKernels(Tensor sigmas, int kernelSize)
    {
        using var scope = torch.NewDisposeScope();
        int radius = kernelSize / 2;
        var x = torch.arange(-radius, radius + 1, dtype: ScalarType.Float32, device: sigmas.device).unsqueeze(0);
        var s = sigmas.to_type(ScalarType.Float32).unsqueeze(1);
        var taps = torch.exp(x.square().neg_().div(s.square().mul_(TorchScalars.Two)));
        return (taps / taps.sum(1, keepdim: true)).MoveToOuterDisposeScope();
    }

    private static Tensor Channel(Tensor h, Scalar n, Tensor vmax, Tensor chroma)
    {
        var k = h.add(n, TorchScalars.One);
        k = torch.where(k.ge(TorchScalars.Six), k.sub(TorchScalars.Six), k);
        var t = torch.minimum(k, k.neg().add_(TorchScalars.Four, TorchScalars.One)).clamp_(TorchScalars.Zero, TorchScalars.One);
        return vmax.sub(chroma.mul(t)).clamp_(TorchScalars.Zero, TorchScalars.One);
    }

    /// <summary>Reshapes per-sample values [N] to [N, 1, 1, 1, 1] on the batch's device and dtype.</summary>
    private static Tensor PerSample(Tensor values, Tensor batch) =>
        values.to(batch.dtype, batch.device).reshape(values.shape[0], 1, 1, 1, 1);
}
