using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace Cvrl.Embeddings;

/// <summary>
/// NumPy's <c>.npy</c> format (version 1.0): the magic <c>\x93NUMPY</c>, the version, a header dictionary
/// (<c>{'descr': '&lt;f4', 'fortran_order': False, 'shape': (rows, cols), }</c>) padded with spaces and a newline so the
/// data starts at a multiple of 64 bytes, then the values, little-endian, row-major. <c>numpy.load</c> reads what
/// <see cref="Write"/> writes (and <c>numpy.load(..., mmap_mode='r')</c> maps it); <see cref="Read"/> reads that layout
/// back. Window indexes (<see cref="WindowIndex"/>) keep their rows in such files too.
/// </summary>
public static partial class NpyFile
{
    /// <summary>Header bytes reserved at the start of a window index's files: room for any shape of up to three 19-digit extents.</summary>
    internal const int ReservedHeader = 192;

    private static readonly byte[] s_magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Writes a float32 matrix <c>[rows, cols]</c> (atomically: a temporary file, then a rename).</summary>
    /// <param name="path">The file.</param>
    /// <param name="values">Row-major values, exactly <paramref name="rows"/> x <paramref name="cols"/>.</param>
    /// <param name="rows">Rows.</param>
    /// <param name="cols">Columns.</param>
    /// <exception cref="ArgumentException">The values do not fill the shape.</exception>
    public static void Write(string path, ReadOnlySpan<float> values, int rows, int cols)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        if ((long)rows * cols != values.Length)
        {
            throw new ArgumentException($"{values.Length} values do not fill [{rows}, {cols}].", nameof(values));
        }

        byte[] header = Header("<f4", [rows, cols], 0);
        var bytes = new byte[header.Length + (values.Length * sizeof(float))];
        header.CopyTo(bytes, 0);
        var data = bytes.AsSpan(header.Length);
        if (BitConverter.IsLittleEndian)
        {
            MemoryMarshal.AsBytes(values).CopyTo(data);
        }
        else
        {
            for (int i = 0; i < values.Length; i++)
            {
                BinaryPrimitives.WriteSingleLittleEndian(data[(i * sizeof(float))..], values[i]);
            }
        }

        AtomicFile.Write(path, stream => stream.Write(bytes));
    }

    /// <summary>Reads a float32 matrix written in this layout (or by NumPy for a C-ordered little-endian float32 2D array).</summary>
    /// <param name="path">The file.</param>
    /// <returns>The values, row-major, and the shape.</returns>
    /// <exception cref="InvalidDataException">Not such a file; the message names it.</exception>
    public static (float[] Values, int Rows, int Cols) Read(string path)
    {
        using var stream = File.OpenRead(path);
        var (descr, shape, start) = ReadHeader(stream, path);
        if (descr != "<f4" || shape.Length != 2)
        {
            throw new InvalidDataException($"'{path}' holds a {descr} array of shape ({string.Join(", ", shape)}); a float32 matrix ('<f4', 2 dimensions) was expected.");
        }

        long count = shape[0] * shape[1];
        if (shape[0] > int.MaxValue || shape[1] > int.MaxValue || count > Array.MaxLength)
        {
            throw new InvalidDataException($"'{path}' holds [{shape[0]}, {shape[1]}] values, more than one array can; open it as a window index instead.");
        }

        if (count * sizeof(float) != stream.Length - start)
        {
            throw new InvalidDataException($"'{path}' holds {stream.Length - start} bytes of data where [{shape[0]}, {shape[1]}] float32 needs {count * sizeof(float)}.");
        }

        var values = new float[count];
        stream.ReadExactly(MemoryMarshal.AsBytes(values.AsSpan()));
        if (!BitConverter.IsLittleEndian)
        {
            for (int i = 0; i < values.Length; i++)
            {
                values[i] = BinaryPrimitives.ReadSingleLittleEndian(MemoryMarshal.AsBytes(values.AsSpan(i, 1)));
            }
        }

        return (values, (int)shape[0], (int)shape[1]);
    }

    /// <summary>
    /// The header of an array of type <paramref name="descr"/> (<c>&lt;f4</c>, <c>|i1</c>, <c>&lt;f8</c>) and
    /// <paramref name="shape"/>; padded to <paramref name="length"/> bytes (a multiple of 64) when it is not 0, to the
    /// next multiple of 64 otherwise.
    /// </summary>
    internal static byte[] Header(string descr, long[] shape, int length)
    {
        string dims = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape.Select(s => s.ToString(CultureInfo.InvariantCulture)));
        string dict = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}";
        int unpadded = s_magic.Length + 2 + 2 + dict.Length + 1;
        int padded = length > 0 ? length : (unpadded + 63) / 64 * 64;
        if (unpadded > padded || padded % 64 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, $"A header of {unpadded} bytes does not fit {padded} bytes at a multiple of 64.");
        }

        string text = dict + new string(' ', padded - unpadded) + "\n";
        var bytes = new byte[padded];
        s_magic.CopyTo(bytes, 0);
        bytes[6] = 1;
        bytes[7] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)text.Length);
        Encoding.ASCII.GetBytes(text, bytes.AsSpan(10));
        return bytes;
    }

    /// <summary>Reads a version 1 header: the type, the shape and where the data starts; the stream is left there.</summary>
    /// <exception cref="InvalidDataException">Not a version 1 .npy file, Fortran order, or a header this reader does not parse.</exception>
    internal static (string Descr, long[] Shape, int DataOffset) ReadHeader(Stream stream, string path)
    {
        Span<byte> start = stackalloc byte[10];
        if (stream.ReadAtLeast(start, 10, throwOnEndOfStream: false) < 10 || !start[..6].SequenceEqual(s_magic) || start[6] != 1)
        {
            throw new InvalidDataException($"'{path}' is not a version 1 .npy file.");
        }

        int headerLength = BinaryPrimitives.ReadUInt16LittleEndian(start[8..]);
        var header = new byte[headerLength];
        if (stream.ReadAtLeast(header, headerLength, throwOnEndOfStream: false) < headerLength)
        {
            throw new InvalidDataException($"'{path}' is truncated inside its header.");
        }

        string text = Encoding.ASCII.GetString(header);
        var m = HeaderPattern().Match(text);
        if (!m.Success)
        {
            throw new InvalidDataException($"'{path}' has a header this reader does not parse (a C-ordered array was expected): {text.Trim()}");
        }

        var shape = m.Groups["shape"].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out long v) ? v : throw new InvalidDataException($"'{path}' has an extent '{s}' that is not a number."))
            .ToArray();
        return (m.Groups["descr"].Value, shape, 10 + headerLength);
    }

    [GeneratedRegex(@"^\{'descr': '(?<descr>[<|][a-z]\d)', 'fortran_order': False, 'shape': \((?<shape>[\d, ]*)\), \}\s*$")]
    private static partial Regex HeaderPattern();
}
