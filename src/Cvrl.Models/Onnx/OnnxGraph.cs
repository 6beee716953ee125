namespace Cvrl.Models.Onnx;

/// <summary>
/// Builds an ONNX graph (nodes, float32 initializers, typed inputs and outputs) as protobuf messages, with the field
/// numbers of onnx.proto (IR version 8). One instance per export.
/// </summary>
internal sealed class OnnxGraph
{
    // onnx.proto's TensorProto.DataType and AttributeProto.AttributeType values.
    private const int Float32 = 1;
    private const int Int64 = 7;
    private const int AttributeFloat = 1;
    private const int AttributeInt = 2;
    private const int AttributeString = 3;
    private const int AttributeInts = 7;

    private readonly List<ProtoMessage> _nodes = [];
    private readonly List<Initializer> _initializers = [];
    private readonly List<ProtoMessage> _inputs = [];
    private readonly List<ProtoMessage> _outputs = [];
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    /// <summary>The nodes added so far.</summary>
    public int NodeCount => _nodes.Count;

    /// <summary>Bytes of all initializers.</summary>
    public long WeightBytes => _initializers.Sum(i => i.Data.LongLength);

    /// <summary>Adds a float32 initializer holding a copy of <paramref name="values"/> (any float type, any device) and returns its name.</summary>
    public string AddWeight(string name, TorchSharp.torch.Tensor values)
    {
        Reserve(name);
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("ONNX raw tensor data is little-endian; this machine is not.");
        }

        using var host = values.to(TorchSharp.torch.ScalarType.Float32).cpu().contiguous();
        _initializers.Add(new Initializer(name, host.shape, host.bytes.ToArray(), Float32));
        return name;
    }

    /// <summary>Adds a one-dimensional int64 initializer (shapes, indices, sizes) and returns its name.</summary>
    public string AddInt64s(string name, params long[] values)
    {
        Reserve(name);
        var data = new byte[values.Length * sizeof(long)];
        for (int i = 0; i < values.Length; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(i * sizeof(long)), values[i]);
        }

        _initializers.Add(new Initializer(name, [values.Length], data, Int64));
        return name;
    }

    /// <summary>Adds a node; returns its (first) output's name, which is the node's name.</summary>
    /// <param name="op">The ONNX operator.</param>
    /// <param name="name">The node's name, also its output's (unique in the graph).</param>
    /// <param name="inputs">Input value names.</param>
    /// <param name="attributes">Integer, integer-list, float or string attributes.</param>
    public string AddNode(string op, string name, IReadOnlyList<string> inputs, params (string Name, object Value)[] attributes)
    {
        Reserve(name);
        var node = new ProtoMessage();
        foreach (string input in inputs)
        {
            node.String(1, input);
        }

        node.String(2, name).String(3, name).String(4, op);
        foreach (var (attrName, value) in attributes)
        {
            var attr = new ProtoMessage().String(1, attrName);
            switch (value)
            {
                case long i:
                    attr.Int(3, i).Int(20, AttributeInt);
                    break;
                case int i:
                    attr.Int(3, i).Int(20, AttributeInt);
                    break;
                case IEnumerable<long> ints:
                    attr.Ints(8, ints).Int(20, AttributeInts);
                    break;
                case string s:
                    attr.String(4, s).Int(20, AttributeString);
                    break;
                case float f:
                    attr.Float(2, f).Int(20, AttributeFloat);
                    break;
                default:
                    throw new ArgumentException($"Unsupported attribute type {value.GetType().Name} for {attrName}.", nameof(attributes));
            }

            node.Message(5, attr);
        }

        _nodes.Add(node);
        return name;
    }

    /// <summary>Declares a float32 graph input; a dimension is a fixed size (long) or a symbolic name (string).</summary>
    public void AddInput(string name, params object[] dims)
    {
        Reserve(name);
        _inputs.Add(ValueInfo(name, dims));
    }

    /// <summary>Declares a float32 graph output (an existing value).</summary>
    public void AddOutput(string name, params object[] dims) => _outputs.Add(ValueInfo(name, dims));

    /// <summary>
    /// The ModelProto. Initializers of at least <paramref name="externalMinBytes"/> bytes go to <paramref name="external"/>
    /// (when given), each at an offset aligned to 4096 bytes and recorded under <paramref name="externalLocation"/>.
    /// </summary>
    public ProtoMessage ToModel(string graphName, int opset, string producerVersion, IReadOnlyDictionary<string, string> metadata, string docString, Stream? external, string externalLocation, long externalMinBytes)
    {
        var graph = new ProtoMessage();
        foreach (var node in _nodes)
        {
            graph.Message(1, node);
        }

        graph.String(2, graphName);
        foreach (var init in _initializers)
        {
            var tensor = new ProtoMessage().Ints(1, init.Dims).Int(2, init.Type).String(8, init.Name);
            if (external is not null && init.Data.LongLength >= externalMinBytes)
            {
                long offset = (external.Position + 4095) / 4096 * 4096;
                external.Write(new byte[offset - external.Position]);
                external.Write(init.Data);
                tensor.Message(13, Entry("location", externalLocation))
                    .Message(13, Entry("offset", offset.ToString(System.Globalization.CultureInfo.InvariantCulture)))
                    .Message(13, Entry("length", init.Data.LongLength.ToString(System.Globalization.CultureInfo.InvariantCulture)))
                    .Int(14, 1);
            }
            else
            {
                tensor.Bytes(9, init.Data);
            }

            graph.Message(5, tensor);
        }

        foreach (var input in _inputs)
        {
            graph.Message(11, input);
        }

        foreach (var output in _outputs)
        {
            graph.Message(12, output);
        }

        var model = new ProtoMessage()
            .Int(1, 8)
            .String(2, "Cvrl")
            .String(3, producerVersion)
            .String(4, "org.cvrl")
            .Int(5, 1)
            .String(6, docString)
            .Message(7, graph)
            .Message(8, new ProtoMessage().String(1, string.Empty).Int(2, opset));
        foreach (var (key, value) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            model.Message(14, Entry(key, value));
        }

        return model;
    }

    private static ProtoMessage Entry(string key, string value) => new ProtoMessage().String(1, key).String(2, value);

    private static ProtoMessage ValueInfo(string name, object[] dims)
    {
        var shape = new ProtoMessage();
        foreach (object dim in dims)
        {
            var d = new ProtoMessage();
            _ = dim switch
            {
                long size => d.Int(1, size),
                int size => d.Int(1, size),
                string symbol => d.String(2, symbol),
                _ => throw new ArgumentException($"A dimension is a size or a name, not {dim.GetType().Name}.", nameof(dims)),
            };
            shape.Message(1, d);
        }

        var tensorType = new ProtoMessage().Int(1, Float32).Message(2, shape);
        return new ProtoMessage().String(1, name).Message(2, new ProtoMessage().Message(1, tensorType));
    }

    private void Reserve(string name)
    {
        if (!_names.Add(name))
        {
            throw new InvalidOperationException($"The ONNX graph already has a value named '{name}'.");
        }
    }

    private sealed record Initializer(string Name, long[] Dims, byte[] Data, int Type);
}
