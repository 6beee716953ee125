using System.Buffers.Binary;
using System.Text;

namespace Cvrl.Models.Onnx;

/// <summary>A tensor of an ONNX model: an initializer or a Constant node's value, as float32 (or int64 for shapes and indices).</summary>
/// <param name="Name">Its name in the graph.</param>
/// <param name="Dims">Its shape.</param>
/// <param name="Floats">Its values as float32 (float, double and float16 tensors), else null.</param>
/// <param name="Longs">Its values as int64 (int64 and int32 tensors), else null.</param>
internal sealed record OnnxTensor(string Name, long[] Dims, float[]? Floats, long[]? Longs)
{
    /// <summary>Number of elements.</summary>
    public long Count => Dims.Aggregate(1L, (a, d) => a * d);
}

/// <summary>One node of an ONNX graph.</summary>
/// <param name="Op">The operator (Conv, BatchNormalization, ...).</param>
/// <param name="Name">The node's name (may be empty).</param>
/// <param name="Inputs">Input value names (empty strings for omitted optional inputs).</param>
/// <param name="Outputs">Output value names.</param>
/// <param name="Ints">Integer and integer-list attributes.</param>
/// <param name="Floats">Float and float-list attributes.</param>
/// <param name="Strings">String attributes.</param>
/// <param name="Tensors">Tensor attributes (a Constant's value).</param>
internal sealed record OnnxNode(
    string Op,
    string Name,
    IReadOnlyList<string> Inputs,
    IReadOnlyList<string> Outputs,
    IReadOnlyDictionary<string, long[]> Ints,
    IReadOnlyDictionary<string, float[]> Floats,
    IReadOnlyDictionary<string, string> Strings,
    IReadOnlyDictionary<string, OnnxTensor> Tensors)
{
    /// <summary>An integer attribute, or <paramref name="fallback"/>.</summary>
    public long Int(string name, long fallback) => Ints.TryGetValue(name, out var v) && v.Length > 0 ? v[0] : fallback;

    /// <summary>An integer-list attribute, or null.</summary>
    public long[]? IntList(string name) => Ints.GetValueOrDefault(name);

    /// <summary>A float attribute, or <paramref name="fallback"/>.</summary>
    public float Float(string name, float fallback) => Floats.TryGetValue(name, out var v) && v.Length > 0 ? v[0] : fallback;

    /// <summary>"Conv 'name'" for messages.</summary>
    public override string ToString() => Name.Length > 0 ? $"{Op} '{Name}'" : $"{Op} -> '{string.Join(", ", Outputs)}'";
}

/// <summary>What an ONNX model file holds: its graph's nodes in file order, its initializers, inputs and outputs.</summary>
internal sealed class OnnxModelContent
{
    public required string Path { get; init; }

    public required string Producer { get; init; }

    public required long Opset { get; init; }

    public required IReadOnlyList<OnnxNode> Nodes { get; init; }

    public required IReadOnlyDictionary<string, OnnxTensor> Initializers { get; init; }

    /// <summary>Graph inputs that are not initializers, with their shapes (unknown dimensions as -1).</summary>
    public required IReadOnlyList<(string Name, long[] Shape)> Inputs { get; init; }

    public required IReadOnlyList<string> Outputs { get; init; }

    /// <summary>A constant value by name: an initializer or the output of a Constant node; null when the value is computed.</summary>
    public OnnxTensor? Constant(string name)
    {
        if (Initializers.TryGetValue(name, out var t))
        {
            return t;
        }

        var node = Nodes.FirstOrDefault(n => n.Op == "Constant" && n.Outputs.Count > 0 && n.Outputs[0] == name);
        return node?.Tensors.GetValueOrDefault("value") is { } value ? value with { Name = name } : null;
    }
}

/// <summary>
/// Reads ONNX model files (the protobuf <c>ModelProto</c>) without a protobuf or ONNX dependency: enough of the wire
/// format and of onnx.proto to walk a convolutional network's graph and take its weights. Tensors stored in external
/// files are refused by name.
/// </summary>
internal static class OnnxModelFile
{
    /// <summary>Reads a model.</summary>
    /// <exception cref="InvalidDataException">The file is not an ONNX model, is damaged or truncated, or keeps its weights in external files; the message names it.</exception>
    public static OnnxModelContent Read(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        try
        {
            return Parse(path, bytes);
        }
        catch (Exception e) when (e is ArgumentOutOfRangeException or IndexOutOfRangeException or OverflowException or DecoderFallbackException or InvalidCastException)
        {
            throw new InvalidDataException($"'{path}' is not a readable ONNX model (damaged protobuf: {e.Message}).", e);
        }
    }

    private static OnnxModelContent Parse(string path, byte[] bytes)
    {
        var model = new Reader(bytes, 0, bytes.Length, path);
        string producer = string.Empty, version = string.Empty;
        long opset = 0;
        (int Start, int End)? graph = null;
        bool sawIr = false;
        while (model.Next(out int field, out int wire))
        {
            switch (field, wire)
            {
                case (1, 0):
                    model.Varint();
                    sawIr = true;
                    break;
                case (2, 2):
                    producer = model.String();
                    break;
                case (3, 2):
                    version = model.String();
                    break;
                case (7, 2):
                    graph = model.Span();
                    break;
                case (8, 2):
                    {
                        var (s, e) = model.Span();
                        var set = new Reader(bytes, s, e, path);
                        string domain = string.Empty;
                        long v = 0;
                        while (set.Next(out int f, out int w))
                        {
                            if (f == 1 && w == 2)
                            {
                                domain = set.String();
                            }
                            else if (f == 2 && w == 0)
                            {
                                v = (long)set.Varint();
                            }
                            else
                            {
                                set.Skip(w);
                            }
                        }

                        if (domain is "" or "ai.onnx")
                        {
                            opset = v;
                        }

                        break;
                    }

                default:
                    model.Skip(wire);
                    break;
            }
        }

        if (!sawIr || graph is null)
        {
            throw new InvalidDataException($"'{path}' is not an ONNX model (no IR version or no graph).");
        }

        var nodes = new List<OnnxNode>();
        var initializers = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        var inputs = new List<(string, long[])>();
        var outputs = new List<string>();
        var g = new Reader(bytes, graph.Value.Start, graph.Value.End, path);
        while (g.Next(out int field, out int wire))
        {
            switch (field, wire)
            {
                case (1, 2):
                    nodes.Add(Node(bytes, g.Span(), path));
                    break;
                case (5, 2):
                    {
                        var t = Tensor(bytes, g.Span(), path);
                        initializers[t.Name] = t;
                        break;
                    }

                case (11, 2):
                    inputs.Add(ValueInfo(bytes, g.Span(), path));
                    break;
                case (12, 2):
                    outputs.Add(ValueInfo(bytes, g.Span(), path).Name);
                    break;
                default:
                    g.Skip(wire);
                    break;
            }
        }

        return new OnnxModelContent
        {
            Path = path,
            Producer = (producer + " " + version).Trim(),
            Opset = opset,
            Nodes = nodes,
            Initializers = initializers,
            Inputs = [.. inputs.Where(i => !initializers.ContainsKey(i.Item1))],
            Outputs = outputs,
        };
    }

    private static OnnxNode Node(byte[] bytes, (int Start, int End) span, string path)
    {
        var r = new Reader(bytes, span.Start, span.End, path);
        var inputs = new List<string>();
        var outputs = new List<string>();
        string name = string.Empty, op = string.Empty;
        var ints = new Dictionary<string, long[]>(StringComparer.Ordinal);
        var floats = new Dictionary<string, float[]>(StringComparer.Ordinal);
        var strings = new Dictionary<string, string>(StringComparer.Ordinal);
        var tensors = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        while (r.Next(out int field, out int wire))
        {
            switch (field, wire)
            {
                case (1, 2):
                    inputs.Add(r.String());
                    break;
                case (2, 2):
                    outputs.Add(r.String());
                    break;
                case (3, 2):
                    name = r.String();
                    break;
                case (4, 2):
                    op = r.String();
                    break;
                case (5, 2):
                    Attribute(bytes, r.Span(), path, ints, floats, strings, tensors);
                    break;
                default:
                    r.Skip(wire);
                    break;
            }
        }

        return new OnnxNode(op, name, inputs, outputs, ints, floats, strings, tensors);
    }

    private static void Attribute(byte[] bytes, (int Start, int End) span, string path, Dictionary<string, long[]> ints, Dictionary<string, float[]> floats, Dictionary<string, string> strings, Dictionary<string, OnnxTensor> tensors)
    {
        var r = new Reader(bytes, span.Start, span.End, path);
        string name = string.Empty;
        var intValues = new List<long>();
        var floatValues = new List<float>();
        string? text = null;
        OnnxTensor? tensor = null;
        while (r.Next(out int field, out int wire))
        {
            switch (field, wire)
            {
                case (1, 2):
                    name = r.String();
                    break;
                case (2, 5):
                    floatValues.Add(BitConverter.Int32BitsToSingle((int)r.Fixed32()));
                    break;
                case (3, 0):
                    intValues.Add((long)r.Varint());
                    break;
                case (4, 2):
                    text = r.String();
                    break;
                case (5, 2):
                    tensor = Tensor(bytes, r.Span(), path);
                    break;
                case (7, 5):
                    floatValues.Add(BitConverter.Int32BitsToSingle((int)r.Fixed32()));
                    break;
                case (7, 2):
                    {
                        var (s, e) = r.Span();
                        for (int i = s; i + 4 <= e; i += 4)
                        {
                            floatValues.Add(BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i, 4)));
                        }

                        break;
                    }

                case (8, 0):
                    intValues.Add((long)r.Varint());
                    break;
                case (8, 2):
                    intValues.AddRange(r.PackedVarints());
                    break;
                default:
                    r.Skip(wire);
                    break;
            }
        }

        if (intValues.Count > 0)
        {
            ints[name] = [.. intValues];
        }

        if (floatValues.Count > 0)
        {
            floats[name] = [.. floatValues];
        }

        if (text is not null)
        {
            strings[name] = text;
        }

        if (tensor is not null)
        {
            tensors[name] = tensor;
        }
    }

    private static (string Name, long[] Shape) ValueInfo(byte[] bytes, (int Start, int End) span, string path)
    {
        var r = new Reader(bytes, span.Start, span.End, path);
        string name = string.Empty;
        var shape = new List<long>();
        while (r.Next(out int field, out int wire))
        {
            if (field == 1 && wire == 2)
            {
                name = r.String();
            }
            else if (field == 2 && wire == 2)
            {
                // TypeProto.tensor_type (1) -> shape (2) -> dim (1) -> dim_value (1) | dim_param (2).
                var (ts, te) = r.Span();
                var type = new Reader(bytes, ts, te, path);
                while (type.Next(out int tf, out int tw))
                {
                    if (tf != 1 || tw != 2)
                    {
                        type.Skip(tw);
                        continue;
                    }

                    var (ss, se) = type.Span();
                    var tensorType = new Reader(bytes, ss, se, path);
                    while (tensorType.Next(out int sf, out int sw))
                    {
                        if (sf != 2 || sw != 2)
                        {
                            tensorType.Skip(sw);
                            continue;
                        }

                        var (hs, he) = tensorType.Span();
                        var shapeReader = new Reader(bytes, hs, he, path);
                        while (shapeReader.Next(out int df, out int dw))
                        {
                            if (df != 1 || dw != 2)
                            {
                                shapeReader.Skip(dw);
                                continue;
                            }

                            var (ds, de) = shapeReader.Span();
                            var dim = new Reader(bytes, ds, de, path);
                            long value = -1;
                            while (dim.Next(out int vf, out int vw))
                            {
                                if (vf == 1 && vw == 0)
                                {
                                    value = (long)dim.Varint();
                                }
                                else
                                {
                                    dim.Skip(vw);
                                }
                            }

                            shape.Add(value);
                        }
                    }
                }
            }
            else
            {
                r.Skip(wire);
            }
        }

        return (name, [.. shape]);
    }

    private static OnnxTensor Tensor(byte[] bytes, (int Start, int End) span, string path)
    {
        var r = new Reader(bytes, span.Start, span.End, path);
        var dims = new List<long>();
        int type = 0;
        string name = string.Empty;
        (int Start, int End)? raw = null;
        var floats = new List<float>();
        var longs = new List<long>();
        var doubles = new List<double>();
        bool external = false;
        while (r.Next(out int field, out int wire))
        {
            switch (field, wire)
            {
                case (1, 0):
                    dims.Add((long)r.Varint());
                    break;
                case (1, 2):
                    dims.AddRange(r.PackedVarints());
                    break;
                case (2, 0):
                    type = (int)r.Varint();
                    break;
                case (4, 5):
                    floats.Add(BitConverter.Int32BitsToSingle((int)r.Fixed32()));
                    break;
                case (4, 2):
                    {
                        var (s, e) = r.Span();
                        for (int i = s; i + 4 <= e; i += 4)
                        {
                            floats.Add(BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i, 4)));
                        }

                        break;
                    }

                case (5, 0) or (7, 0):
                    longs.Add((long)r.Varint());
                    break;
                case (5, 2) or (7, 2):
                    longs.AddRange(r.PackedVarints());
                    break;
                case (8, 2):
                    name = r.String();
                    break;
                case (9, 2):
                    raw = r.Span();
                    break;
                case (10, 1):
                    doubles.Add(BitConverter.Int64BitsToDouble((long)r.Fixed64()));
                    break;
                case (10, 2):
                    {
                        var (s, e) = r.Span();
                        for (int i = s; i + 8 <= e; i += 8)
                        {
                            doubles.Add(BinaryPrimitives.ReadDoubleLittleEndian(bytes.AsSpan(i, 8)));
                        }

                        break;
                    }

                case (14, 0):
                    external = r.Varint() == 1;
                    break;
                default:
                    r.Skip(wire);
                    break;
            }
        }

        if (external)
        {
            throw new InvalidDataException($"'{path}' keeps tensor '{name}' in an external data file; Cvrl reads models whose weights are inside the .onnx file (save the model without external data).");
        }

        long count = dims.Aggregate(1L, (a, d) => a * d);
        if (dims.Any(d => d < 0) || count > int.MaxValue)
        {
            throw new InvalidDataException($"'{path}': tensor '{name}' has shape [{string.Join(", ", dims)}].");
        }

        const int Float = 1, Int32 = 6, Int64 = 7, Float16 = 10, Double = 11;
        float[]? f = null;
        long[]? l = null;
        if (raw is { } bytesSpan)
        {
            var data = bytes.AsSpan(bytesSpan.Start, bytesSpan.End - bytesSpan.Start);
            int size = type switch { Float => 4, Int32 => 4, Int64 => 8, Float16 => 2, Double => 8, _ => 0 };
            if (size > 0 && data.Length != count * size)
            {
                throw new InvalidDataException($"'{path}': tensor '{name}' holds {data.Length} bytes where [{string.Join(", ", dims)}] needs {count * size}.");
            }

            switch (type)
            {
                case Float:
                    f = new float[count];
                    for (int i = 0; i < count; i++)
                    {
                        f[i] = BinaryPrimitives.ReadSingleLittleEndian(data.Slice(4 * i, 4));
                    }

                    break;
                case Float16:
                    f = new float[count];
                    for (int i = 0; i < count; i++)
                    {
                        f[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(data.Slice(2 * i, 2));
                    }

                    break;
                case Double:
                    f = new float[count];
                    for (int i = 0; i < count; i++)
                    {
                        f[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(data.Slice(8 * i, 8));
                    }

                    break;
                case Int64:
                    l = new long[count];
                    for (int i = 0; i < count; i++)
                    {
                        l[i] = BinaryPrimitives.ReadInt64LittleEndian(data.Slice(8 * i, 8));
                    }

                    break;
                case Int32:
                    l = new long[count];
                    for (int i = 0; i < count; i++)
                    {
                        l[i] = BinaryPrimitives.ReadInt32LittleEndian(data.Slice(4 * i, 4));
                    }

                    break;
            }
        }
        else if (type == Float && floats.Count == count)
        {
            f = [.. floats];
        }
        else if (type == Double && doubles.Count == count)
        {
            f = [.. doubles.Select(d => (float)d)];
        }
        else if (type is Int64 or Int32 && longs.Count == count)
        {
            l = [.. longs];
        }
        else if (type == Float16 && longs.Count == count)
        {
            // float16 values without raw data are stored as int32 bit patterns.
            f = [.. longs.Select(v => (float)BitConverter.Int16BitsToHalf((short)v))];
        }

        return new OnnxTensor(name, [.. dims], f, l);
    }

    /// <summary>A reader of one protobuf message's fields in <c>bytes[start..end)</c>.</summary>
    private struct Reader(byte[] bytes, int start, int end, string path)
    {
        private int _at = start;

        public bool Next(out int field, out int wire)
        {
            field = wire = 0;
            if (_at >= end)
            {
                return false;
            }

            ulong key = Varint();
            field = (int)(key >> 3);
            wire = (int)(key & 7);
            if (field < 1)
            {
                throw new InvalidDataException($"'{path}' is not an ONNX model (a protobuf field number of 0 at byte {_at}).");
            }

            return true;
        }

        public ulong Varint()
        {
            ulong value = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (_at >= end)
                {
                    throw new InvalidDataException($"'{path}' is truncated (a protobuf number runs past its message).");
                }

                byte b = bytes[_at++];
                value |= (ulong)(b & 0x7F) << shift;
                if ((b & 0x80) == 0)
                {
                    return value;
                }
            }

            throw new InvalidDataException($"'{path}' is not an ONNX model (a protobuf number longer than ten bytes).");
        }

        public uint Fixed32()
        {
            Need(4);
            uint v = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(_at, 4));
            _at += 4;
            return v;
        }

        public ulong Fixed64()
        {
            Need(8);
            ulong v = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(_at, 8));
            _at += 8;
            return v;
        }

        public (int Start, int End) Span()
        {
            ulong length = Varint();
            if (length > (ulong)(end - _at))
            {
                throw new InvalidDataException($"'{path}' is truncated or damaged (a protobuf field of {length} bytes with {end - _at} left).");
            }

            int s = _at;
            _at += (int)length;
            return (s, _at);
        }

        public string String()
        {
            var (s, e) = Span();
            return Encoding.UTF8.GetString(bytes, s, e - s);
        }

        public List<long> PackedVarints()
        {
            var (s, e) = Span();
            var inner = new Reader(bytes, s, e, path);
            var values = new List<long>();
            while (inner._at < e)
            {
                values.Add((long)inner.Varint());
            }

            return values;
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0:
                    Varint();
                    break;
                case 1:
                    Need(8);
                    _at += 8;
                    break;
                case 2:
                    Span();
                    break;
                case 5:
                    Need(4);
                    _at += 4;
                    break;
                default:
                    throw new InvalidDataException($"'{path}' is not an ONNX model (protobuf wire type {wire} at byte {_at}).");
            }
        }

        private readonly void Need(int count)
        {
            if (end - _at < count)
            {
                throw new InvalidDataException($"'{path}' is truncated (a protobuf field runs past its message).");
            }
        }
    }
}
