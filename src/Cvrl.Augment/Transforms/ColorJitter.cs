using Cvrl.Augment.Functional;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Augment.Transforms;

/// <summary>One of the four colour-jitter operations.</summary>
public enum ColorOp
{
    /// <summary>Multiplicative brightness.</summary>
    Brightness,

    /// <summary>Contrast about the clip's per-channel mean.</summary>
    Contrast,

    /// <summary>HSV saturation.</summary>
    Saturation,

    /// <summary>HSV hue rotation.</summary>
    Hue,
}

/// <summary>The order in which <see cref="ColorJitter"/> applies its four operations.</summary>
/// <param name="First">Applied first.</param>
/// <param name="Second">Applied second.</param>
/// <param name="Third">Applied third.</param>
/// <param name="Fourth">Applied last.</param>
public readonly record struct JitterOrder(ColorOp First, ColorOp Second, ColorOp Third, ColorOp Fourth)
{
    /// <summary>Brightness, contrast, saturation, hue.</summary>
    public static JitterOrder Canonical => new(ColorOp.Brightness, ColorOp.Contrast, ColorOp.Saturation, ColorOp.Hue);

    /// <summary>The operation at position <paramref name="index"/> (0 to 3).</summary>
    public ColorOp this[int index] => index switch
    {
        0 => First,
        1 => Second,
        2 => Third,
        3 => Fourth,
        _ => throw new ArgumentOutOfRangeException(nameof(index), index, "The order has positions 0 to 3."),
    };

    /// <summary>A uniformly random permutation (the official <c>tf.random.shuffle(range(4))</c>).</summary>
    public static JitterOrder Random(ClipRandom random)
    {
        ArgumentNullException.ThrowIfNull(random);
        Span<ColorOp> ops = [ColorOp.Brightness, ColorOp.Contrast, ColorOp.Saturation, ColorOp.Hue];
        random.Shuffle(ops);
        return new JitterOrder(ops[0], ops[1], ops[2], ops[3]);
    }

    /// <inheritdoc />
    public override string ToString() => string.Concat(Letter(First), Letter(Second), Letter(Third), Letter(Fourth));

    private static char Letter(ColorOp op) => op switch
    {
        ColorOp.Brightness => 'b',
        ColorOp.Contrast => 'c',
        ColorOp.Saturation => 's',
        _ => 'h',
    };
}

/// <summary>Parameters of <see cref="ColorJitter"/>.</summary>
/// <param name="Applied">Whether the jitter runs on this clip (probability p).</param>
/// <param name="Brightness">Brightness factor.</param>
/// <param name="Contrast">Contrast factor.</param>
/// <param name="Saturation">Saturation factor.</param>
/// <param name="Hue">Hue shift in turns.</param>
/// <param name="Order">Application order.</param>
public readonly record struct ColorJitterParams(bool Applied, float Brightness, float Contrast, float Saturation, float Hue, JitterOrder Order)
{
    /// <inheritdoc />
    public override string ToString() => Applied
        ? $"b{Brightness:0.00} c{Contrast:0.00} s{Saturation:0.00} h{Hue:+0.00;-0.00} {Order}"
        : "off";
}

/// <summary>
/// SimCLR-v2 colour jitter with TensorFlow semantics, as CVRL applies it (docs/method.md section 2): with probability
/// <see cref="Probability"/>, brightness (multiplicative), contrast (about the per-channel mean over all frames),
/// saturation and hue (in HSV) in a random order, each followed by a clamp to [0, 1]. Factors are drawn once per
/// clip: brightness in [max(0, 1 - b), 1 + b], contrast in [1 - c, 1 + c], saturation in [1 - s, 1 + s], hue in [-h, h].
/// A strength of 0 turns its operation off.
/// </summary>
public sealed class ColorJitter : ClipTransform<ColorJitterParams>, IBatchClipTransform
{
    /// <summary>Creates the transform; the defaults are CVRL's (strength 1: 0.8, 0.8, 0.8, 0.2; p 0.8).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A strength is negative, contrast or saturation above 1, hue above 0.5, or p outside [0, 1].</exception>
    public ColorJitter(double brightness = 0.8, double contrast = 0.8, double saturation = 0.8, double hue = 0.2, double probability = 0.8)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(brightness);
        if (contrast is < 0 or > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(contrast), contrast, "Contrast strength must lie in [0, 1].");
        }

        if (saturation is < 0 or > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(saturation), saturation, "Saturation strength must lie in [0, 1].");
        }

        if (hue is < 0 or > 0.5)
        {
            throw new ArgumentOutOfRangeException(nameof(hue), hue, "Hue strength must lie in [0, 0.5] turns.");
        }

        BrightnessStrength = brightness;
        ContrastStrength = contrast;
        SaturationStrength = saturation;
        HueStrength = hue;
        Probability = Probabilities.Check(probability, nameof(probability));
    }

    /// <summary>CVRL's jitter for a given overall strength s: brightness, contrast and saturation 0.8 s, hue 0.2 s.</summary>
    public static ColorJitter WithStrength(double strength, double probability = 0.8) =>
        new(0.8 * strength, 0.8 * strength, 0.8 * strength, 0.2 * strength, probability);

    /// <summary>Brightness strength b.</summary>
    public double BrightnessStrength { get; }

    /// <summary>Contrast strength c.</summary>
    public double ContrastStrength { get; }

    /// <summary>Saturation strength s.</summary>
    public double SaturationStrength { get; }

    /// <summary>Hue strength h (turns).</summary>
    public double HueStrength { get; }

    /// <summary>Probability that the jitter runs on a clip.</summary>
    public double Probability { get; }

    /// <inheritdoc />
    public override string Name => "jitter";

    /// <inheritdoc />
    public override ColorJitterParams Sample(ClipShape input, ClipRandom random)
    {
        ArgumentNullException.ThrowIfNull(random);
        bool applied = random.Bernoulli(Probability);
        float b = (float)random.Uniform(Math.Max(0, 1 - BrightnessStrength), 1 + BrightnessStrength);
        float c = (float)random.Uniform(1 - ContrastStrength, 1 + ContrastStrength);
        float s = (float)random.Uniform(1 - SaturationStrength, 1 + SaturationStrength);
        float h = (float)random.Uniform(-HueStrength, HueStrength);
        return new ColorJitterParams(applied, b, c, s, h, JitterOrder.Random(random));
    }

    /// <inheritdoc />
    protected internal override Tensor ApplyCore(Tensor clip, ColorJitterParams parameters, bool mayOverwriteInput)
    {
        if (!parameters.Applied)
        {
            return clip;
        }

        ClipOps.RequireColorClip(clip);
        Tensor current = clip;
        for (int i = 0; i < 4; i++)
        {
            var op = parameters.Order[i];
            if (!IsActive(op))
            {
                continue;
            }

            bool inPlace = mayOverwriteInput || !ReferenceEquals(current, clip);
            current = ApplyOp(current, op, parameters, inPlace, clip);
        }

        return current;
    }

    /// <inheritdoc />
    public Tensor ApplyBatch(Tensor batch, IReadOnlyList<object> parameters) =>
        BatchOps.ColorJitter(batch, [.. parameters.Select(Unbox)], this);

    internal bool IsActive(ColorOp op) => op switch
    {
        ColorOp.Brightness => BrightnessStrength > 0,
        ColorOp.Contrast => ContrastStrength > 0,
        ColorOp.Saturation => SaturationStrength > 0,
        _ => HueStrength > 0,
    };

    private static Tensor ApplyOp(Tensor current, ColorOp op, ColorJitterParams p, bool inPlace, Tensor original)
    {
        if (CpuKernels.CanRunFloat(current))
        {
            var dst = inPlace ? current : torch.empty_like(current);
            switch (op)
            {
                case ColorOp.Brightness:
                    CpuKernels.Brightness(current, dst, p.Brightness);
                    break;
                case ColorOp.Contrast:
                    using (var means = current.mean([1, 2, 3]))
                    {
                        CpuKernels.Contrast(current, dst, p.Contrast, means.data<float>().ToArray());
                    }

                    break;
                case ColorOp.Saturation:
                    CpuKernels.Hsv(current, dst, p.Saturation, 0f);
                    break;
                default:
                    CpuKernels.Hsv(current, dst, 1f, p.Hue);
                    break;
            }

            return dst;
        }

        var next = op switch
        {
            ColorOp.Brightness => ClipOps.AdjustBrightness(current, p.Brightness),
            ColorOp.Contrast => ClipOps.AdjustContrast(current, p.Contrast),
            ColorOp.Saturation => ClipOps.AdjustSaturation(current, p.Saturation),
            _ => ClipOps.AdjustHue(current, p.Hue),
        };
        if (!ReferenceEquals(current, original))
        {
            current.Dispose();
        }

        return next;
    }
}
