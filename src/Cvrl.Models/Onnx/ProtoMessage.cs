using System.Buffers.Binary;
using System.Text;

namespace Cvrl.Models.Onnx;

/// <summary>
/// A Protocol Buffers message built field by field and written in the binary wire format: just enough of the format
/// to write ONNX models (varints, 32-bit floats, length-delimited bytes, strings and nested messages), so that the
/// exporter carries no protobuf dependency. Sizes of nested messages are computed once, when the message is written.
/// </summary>
internal sealed class ProtoMessage
{
    private const int WireVarint = 0;
    private const int WireFixed32 = 5;
    private const int WireLength = 2;

    private readonly List<Field> _fields = [];
    private long _size = -1;

    /// <summary>The encoded size in bytes.</summary>
    public long Size
    {
        get
        {
            if (_size < 0)
            {
                long size = 0;
                foreach (var f in _fields)
                {
                    size += VarintSize((ulong)(((long)f.Number << 3) | (long)f.Wire));
                    size += f.Wire switch
                    {
                        WireVarint => VarintSize((ulong)f.Value),
                        WireFixed32 => 4,
                        _ => VarintSize((ulong)f.PayloadSize) + f.PayloadSize,
                    };
                }

                _size = size;
            }

            return _size;
        }
    }

    /// <summary>Adds an integer field (int32, int64 or enum; negative values take ten bytes, as the format says).</summary>
    public ProtoMessage Int(int number, long value) => Add(new Field(number, WireVarint, value, null, null));

    /// <summary>Adds a repeated integer field, one entry per value (the unpacked encoding proto2 parsers expect).</summary>
    public ProtoMessage Ints(int number, IEnumerable<long> values)
    {
        foreach (long v in values)
        {
            Int(number, v);
        }

        return this;
    }

    /// <summary>Adds a 32-bit float field.</summary>
    public ProtoMessage Float(int number, float value) => Add(new Field(number, WireFixed32, BitConverter.SingleToInt32Bits(value), null, null));

    /// <summary>Adds a UTF-8 string field.</summary>
    public ProtoMessage String(int number, string value) => Bytes(number, Encoding.UTF8.GetBytes(value));

    /// <summary>Adds a bytes field (the array is kept, not copied).</summary>
    public ProtoMessage Bytes(int number, byte[] value) => Add(new Field(number, WireLength, 0, value, null));

    /// <summary>Adds a nested message (kept by reference; do not change it afterwards).</summary>
    public ProtoMessage Message(int number, ProtoMessage value) => Add(new Field(number, WireLength, 0, null, value));

    /// <summary>Writes the message (without a length prefix) to <paramref name="stream"/>.</summary>
    public void WriteTo(Stream stream)
    {
        Span<byte> scratch = stackalloc byte[10];
        foreach (var f in _fields)
        {
            WriteVarint(stream, (ulong)(((long)f.Number << 3) | (long)f.Wire), scratch);
            switch (f.Wire)
            {
                case WireVarint:
                    WriteVarint(stream, (ulong)f.Value, scratch);
                    break;
                case WireFixed32:
                    BinaryPrimitives.WriteInt32LittleEndian(scratch, (int)f.Value);
                    stream.Write(scratch[..4]);
                    break;
                default:
                    WriteVarint(stream, (ulong)f.PayloadSize, scratch);
                    if (f.Payload is not null)
                    {
                        stream.Write(f.Payload);
                    }
                    else
                    {
                        f.Nested!.WriteTo(stream);
                    }

                    break;
            }
        }
    }

    /// <summary>The encoded message as an array (for small messages and tests).</summary>
    public byte[] ToArray()
    {
        using var memory = new MemoryStream();
        WriteTo(memory);
        return memory.ToArray();
    }

    private static int VarintSize(ulong value)
    {
        int n = 1;
        while (value >= 0x80)
        {
            value >>= 7;
            n++;
        }

        return n;
    }

    private static void WriteVarint(Stream stream, ulong value, Span<byte> scratch)
    {
        int n = 0;
        while (value >= 0x80)
        {
            scratch[n++] = (byte)(value | 0x80);
            value >>= 7;
        }

        scratch[n++] = (byte)value;
        stream.Write(scratch[..n]);
    }

    private ProtoMessage Add(Field field)
    {
        _fields.Add(field);
        _size = -1;
        return this;
    }

    private readonly record struct Field(int Number, int Wire, long Value, byte[]? Payload, ProtoMessage? Nested)
    {
        public long PayloadSize => Payload?.LongLength ?? Nested!.Size;
    }
}
