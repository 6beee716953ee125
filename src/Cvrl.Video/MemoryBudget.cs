using System.Globalization;

namespace Cvrl.Video;

/// <summary>
/// How much memory Cvrl lets its input data take (decoded frames, clip and view buffers, batches waiting for the
/// network) before it refuses work, so that a setting such as 100,000 frames per clip or 100,000-pixel crops fails in
/// one line before any allocation instead of growing the process until the system kills it. The network's own
/// activations are not counted; they scale with the same settings and need several times more.
/// </summary>
/// <remarks>
/// The limit is half of the memory this process may use (physical memory, or the container's limit, as .NET reports
/// it), unless the environment variable <c>CVRL_INPUT_MEMORY</c> sets it (bytes, or a number with a K, M, G or T suffix:
/// <c>48G</c>) or an application sets <see cref="LimitBytes"/>.
/// </remarks>
public static class MemoryBudget
{
    private static long? s_limit;

    /// <summary>The memory this process may use, as .NET reports it (physical memory or the container's limit).</summary>
    public static long AvailableBytes => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;

    /// <summary>The most memory input data may take: <c>CVRL_INPUT_MEMORY</c>, or half of <see cref="AvailableBytes"/>; settable.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to less than 1 byte.</exception>
    public static long LimitBytes
    {
        get => s_limit ?? FromEnvironment() ?? (AvailableBytes / 2);
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(value);
            s_limit = value;
        }
    }

    /// <summary>Whether <paramref name="bytes"/> fit in the budget.</summary>
    public static bool Fits(long bytes) => bytes >= 0 && bytes <= LimitBytes;

    /// <summary>
    /// Throws when <paramref name="bytes"/> (what <paramref name="what"/> needs) exceed the budget; the message gives
    /// both sizes and <paramref name="advice"/>.
    /// </summary>
    /// <param name="bytes">The memory needed; negative means it overflowed a 64-bit count.</param>
    /// <param name="what">What needs it ("one batch of 64 pairs of 16 x 224 x 224 clips").</param>
    /// <param name="parameterName">The option to name.</param>
    /// <param name="advice">What to reduce.</param>
    /// <exception cref="ArgumentOutOfRangeException">The memory needed exceeds the budget.</exception>
    public static void Require(long bytes, string what, string parameterName, string advice)
    {
        if (!Fits(bytes))
        {
            throw new ArgumentOutOfRangeException(parameterName, $"{what} needs {Describe(bytes)} of memory, more than the {Describe(LimitBytes)} Cvrl allows input data to take ({Source}); {advice}.");
        }
    }

    /// <summary>A product of sizes in bytes, or -1 when it overflows.</summary>
    public static long Product(params long[] sizes)
    {
        long result = 1;
        foreach (long size in sizes)
        {
            try
            {
                result = checked(result * size);
            }
            catch (OverflowException)
            {
                return -1;
            }
        }

        return result;
    }

    /// <summary>"7.2 TB", "512 MiB".</summary>
    public static string Describe(long bytes) => bytes < 0 ? "more than 9 EB" : bytes switch
    {
        >= 1L << 40 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 40):0.#} TiB"),
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):0.#} GiB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):0.#} MiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes:N0} bytes"),
    };

    private static string Source => s_limit is not null ? "MemoryBudget.LimitBytes"
        : FromEnvironment() is not null ? "CVRL_INPUT_MEMORY"
        : $"half of the {Describe(AvailableBytes)} this process may use; CVRL_INPUT_MEMORY raises it";

    private static long? FromEnvironment()
    {
        string? text = Environment.GetEnvironmentVariable("CVRL_INPUT_MEMORY")?.Trim();
        if (string.IsNullOrEmpty(text))
        {
            return null;
        }

        long unit = char.ToUpperInvariant(text[^1]) switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, 'T' => 1L << 40, _ => 1 };
        string number = unit == 1 ? text : text[..^1];
        return double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && value > 0 ? (long)Math.Min(long.MaxValue, value * unit) : null;
    }
}
