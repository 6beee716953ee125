using System.Globalization;
using System.Numerics;
using System.Text;
using static TorchSharp.torch;

namespace Cvrl.Models.Weights;

/// <summary>A class or function named by a pickle (GLOBAL): only a name; nothing is imported or run.</summary>
internal sealed record PickleGlobal(string Module, string Name)
{
    public string FullName => Module + "." + Name;

    public override string ToString() => FullName;
}

/// <summary>A storage named by a torch.save persistent id: its element type, key and size; the bytes come later.</summary>
internal sealed record StorageRef(ScalarType Type, int ElementSize, string Key, long Elements, long ElementOffset, string Location);

/// <summary>A tensor to be built from a storage once the storages have been read (torch's _rebuild_tensor_v2).</summary>
internal sealed record PendingTensor(StorageRef Storage, long Offset, long[] Size, long[] Stride);

/// <summary>
/// A pickle reader that builds values instead of running code: it knows the opcodes of protocols 0 to 5 (without
/// out-of-band buffers) and a fixed list of globals (torch's tensor rebuilders and storage types, dictionaries, sets,
/// bytes, and configuration and NumPy classes kept as <see cref="PickledObject"/>); any other global is refused by name.
/// </summary>
internal sealed class PickleMachine
{
    /// <summary>Classes kept as opaque <see cref="PickledObject"/>s: what the video model zoos store next to their weights.</summary>
    private static readonly HashSet<string> s_opaque = new(StringComparer.Ordinal)
    {
        "torch.device", "torch.dtype",
        "fvcore.common.config.CfgNode", "yacs.config.CfgNode", "iopath.common.file_io.PathManager",
        "mmcv.utils.config.ConfigDict", "mmcv.utils.config.Config", "mmcv.Config", "mmcv.ConfigDict",
        "mmengine.config.config.ConfigDict", "mmengine.config.config.Config", "addict.addict.Dict",
        "mmengine.logging.history_buffer.HistoryBuffer", "mmengine.logging.message_hub.MessageHub",
        "argparse.Namespace", "pathlib.PosixPath", "pathlib.Path", "datetime.datetime", "datetime.date", "datetime.timedelta",
        "numpy.dtype", "numpy.ndarray", "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
        "builtins.slice", "builtins.complex", "builtins.object",
    };

    private static readonly Dictionary<string, (ScalarType Type, int Size)> s_storages = new(StringComparer.Ordinal)
    {
        ["FloatStorage"] = (ScalarType.Float32, 4),
        ["DoubleStorage"] = (ScalarType.Float64, 8),
        ["HalfStorage"] = (ScalarType.Float16, 2),
        ["BFloat16Storage"] = (ScalarType.BFloat16, 2),
        ["LongStorage"] = (ScalarType.Int64, 8),
        ["IntStorage"] = (ScalarType.Int32, 4),
        ["ShortStorage"] = (ScalarType.Int16, 2),
        ["CharStorage"] = (ScalarType.Int8, 1),
        ["ByteStorage"] = (ScalarType.Byte, 1),
        ["BoolStorage"] = (ScalarType.Bool, 1),
    };

    private readonly BinaryReader _reader;
    private readonly string _origin;
    private readonly long _limit;
    private readonly bool _legacyStorages;
    private readonly List<object?> _stack = [];
    private readonly List<int> _marks = [];
    private readonly Dictionary<long, object?> _memo = [];
    private readonly List<string> _opaqueSeen = [];

    /// <param name="stream">Positioned at the pickle's first byte.</param>
    /// <param name="origin">What to name in messages (file and entry).</param>
    /// <param name="limit">The most bytes any one value may claim (the bytes left in the source).</param>
    /// <param name="legacyStorages">Persistent ids carry a sixth field (storage views), as torch's legacy format writes them.</param>
    public PickleMachine(Stream stream, string origin, long limit, bool legacyStorages)
    {
        _reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        _origin = origin;
        _limit = limit;
        _legacyStorages = legacyStorages;
    }

    /// <summary>The classes kept opaque while reading, in order of first sight.</summary>
    public IReadOnlyList<string> OpaqueClasses => _opaqueSeen;

    /// <summary>Every storage named by the pickle, by key.</summary>
    public Dictionary<string, StorageRef> Storages { get; } = new(StringComparer.Ordinal);

    /// <summary>
    /// How deep values may nest (containers in containers): far beyond what any checkpoint holds (a configuration is a
    /// few levels deep), far below what would exhaust the stack of the code that walks them.
    /// </summary>
    public const int MaxNesting = 100;

    /// <summary>Reads one pickle up to its STOP opcode and returns its value.</summary>
    public object? Load()
    {
        try
        {
            object? value = Run();
            int depth = Nesting(value, MaxNesting);
            if (depth > MaxNesting)
            {
                throw Bad($"nests containers more than {MaxNesting} deep");
            }

            return value;
        }
        catch (EndOfStreamException e)
        {
            throw Bad($"ends inside a pickle ({e.Message})");
        }
        catch (Exception e) when (e is InvalidCastException or ArgumentOutOfRangeException or IndexOutOfRangeException or OverflowException or FormatException or DecoderFallbackException)
        {
            throw Bad($"holds a malformed pickle ({e.GetType().Name}: {e.Message})");
        }
    }

    private object? Run()
    {
        while (true)
        {
            byte op = _reader.ReadByte();
            switch (op)
            {
                case 0x80: // PROTO
                    byte protocol = _reader.ReadByte();
                    if (protocol > 5)
                    {
                        throw Bad($"uses pickle protocol {protocol}; protocols up to 5 are read");
                    }

                    break;
                case 0x95: // FRAME
                    _reader.ReadInt64();
                    break;
                case (byte)'.': // STOP
                    return Pop();
                case (byte)'(': // MARK
                    _marks.Add(_stack.Count);
                    break;
                case (byte)'0': // POP
                    Pop();
                    break;
                case (byte)'1': // POP_MARK
                    PopMark();
                    break;
                case (byte)'2': // DUP
                    Push(Peek());
                    break;
                case (byte)'N':
                    Push(null);
                    break;
                case 0x88:
                    Push(true);
                    break;
                case 0x89:
                    Push(false);
                    break;
                case (byte)'I': // INT (text)
                    {
                        string line = ReadLine();
                        Push(line switch { "01" => true, "00" => false, _ => long.Parse(line, CultureInfo.InvariantCulture) });
                        break;
                    }

                case (byte)'J':
                    Push((long)_reader.ReadInt32());
                    break;
                case (byte)'K':
                    Push((long)_reader.ReadByte());
                    break;
                case (byte)'M':
                    Push((long)_reader.ReadUInt16());
                    break;
                case (byte)'L': // LONG (text)
                    Push(Integer(BigInteger.Parse(ReadLine().TrimEnd('L'), CultureInfo.InvariantCulture)));
                    break;
                case 0x8a: // LONG1
                    Push(Integer(new BigInteger(ReadBytes(_reader.ReadByte()), isUnsigned: false, isBigEndian: false)));
                    break;
                case 0x8b: // LONG4
                    Push(Integer(new BigInteger(ReadBytes(Length(_reader.ReadInt32())), isUnsigned: false, isBigEndian: false)));
                    break;
                case (byte)'F':
                    Push(double.Parse(ReadLine(), CultureInfo.InvariantCulture));
                    break;
                case (byte)'G': // BINFLOAT (big-endian)
                    {
                        var bytes = ReadBytes(8);
                        Array.Reverse(bytes);
                        Push(BitConverter.ToDouble(bytes));
                        break;
                    }

                case (byte)'S': // STRING (text, quoted)
                    Push(Unquote(ReadLine()));
                    break;
                case (byte)'T': // BINSTRING
                    Push(Encoding.Latin1.GetString(ReadBytes(Length(_reader.ReadInt32()))));
                    break;
                case (byte)'U': // SHORT_BINSTRING
                    Push(Encoding.Latin1.GetString(ReadBytes(_reader.ReadByte())));
                    break;
                case (byte)'V': // UNICODE (raw-unicode-escape line)
                    Push(System.Text.RegularExpressions.Regex.Unescape(ReadLine()));
                    break;
                case (byte)'X': // BINUNICODE
                    Push(Utf8(ReadBytes(Length(_reader.ReadUInt32()))));
                    break;
                case 0x8c: // SHORT_BINUNICODE
                    Push(Utf8(ReadBytes(_reader.ReadByte())));
                    break;
                case 0x8d: // BINUNICODE8
                    Push(Utf8(ReadBytes(Length(_reader.ReadInt64()))));
                    break;
                case (byte)'B': // BINBYTES
                    Push(ReadBytes(Length(_reader.ReadUInt32())));
                    break;
                case (byte)'C': // SHORT_BINBYTES
                    Push(ReadBytes(_reader.ReadByte()));
                    break;
                case 0x8e: // BINBYTES8
                case 0x96: // BYTEARRAY8
                    Push(ReadBytes(Length(_reader.ReadInt64())));
                    break;
                case (byte)']':
                    Push(new List<object?>());
                    break;
                case (byte)'l': // LIST
                    Push(PopMark());
                    break;
                case (byte)'a': // APPEND
                    {
                        object? item = Pop();
                        Append(Peek(), [item]);
                        break;
                    }

                case (byte)'e': // APPENDS
                    {
                        var items = PopMark();
                        Append(Peek(), items);
                        break;
                    }

                case (byte)')':
                    Push(PickleTuple.Empty);
                    break;
                case (byte)'t':
                    Push(Tuple([.. PopMark()]));
                    break;
                case 0x85:
                    Push(Tuple([Pop()]));
                    break;
                case 0x86:
                    {
                        object? b = Pop(), a = Pop();
                        Push(Tuple([a, b]));
                        break;
                    }

                case 0x87:
                    {
                        object? c = Pop(), b = Pop(), a = Pop();
                        Push(Tuple([a, b, c]));
                        break;
                    }

                case (byte)'}':
                    Push(NewDict());
                    break;
                case (byte)'d': // DICT
                    {
                        var items = PopMark();
                        var dict = NewDict();
                        SetItems(dict, items);
                        Push(dict);
                        break;
                    }

                case (byte)'s': // SETITEM
                    {
                        object? value = Pop(), key = Pop();
                        SetItems(Peek(), [key, value]);
                        break;
                    }

                case (byte)'u': // SETITEMS
                    {
                        var items = PopMark();
                        SetItems(Peek(), items);
                        break;
                    }

                case 0x8f: // EMPTY_SET
                    Push(new List<object?>());
                    break;
                case 0x90: // ADDITEMS
                    {
                        var items = PopMark();
                        Append(Peek(), items);
                        break;
                    }

                case 0x91: // FROZENSET
                    Push(PopMark());
                    break;
                case (byte)'c': // GLOBAL
                    {
                        string module = ReadLine();
                        Push(Global(module, ReadLine()));
                        break;
                    }

                case 0x93: // STACK_GLOBAL
                    {
                        string name = As<string>(Pop(), "a global's name");
                        Push(Global(As<string>(Pop(), "a global's module"), name));
                        break;
                    }

                case (byte)'R': // REDUCE
                    {
                        var args = As<PickleTuple>(Pop(), "the arguments of a call");
                        Push(Call(Pop(), args));
                        break;
                    }

                case 0x81: // NEWOBJ
                    {
                        var args = As<PickleTuple>(Pop(), "the arguments of a call");
                        Push(Call(Pop(), args));
                        break;
                    }

                case 0x92: // NEWOBJ_EX
                    {
                        Pop(); // keyword arguments: none of the known classes takes any that matter
                        var args = As<PickleTuple>(Pop(), "the arguments of a call");
                        Push(Call(Pop(), args));
                        break;
                    }

                case (byte)'o': // OBJ
                    {
                        var items = PopMark();
                        if (items.Count == 0)
                        {
                            throw Bad("holds an OBJ opcode without a class");
                        }

                        Push(Call(items[0], Tuple([.. items.Skip(1)])));
                        break;
                    }

                case (byte)'i': // INST
                    {
                        string module = ReadLine();
                        var global = Global(module, ReadLine());
                        Push(Call(global, Tuple([.. PopMark()])));
                        break;
                    }

                case (byte)'b': // BUILD
                    {
                        object? state = Pop();
                        if (Peek() is PickledObject obj)
                        {
                            obj.State = state;
                        }

                        // Dictionaries (their attributes, such as a state dict's _metadata) and tensors (a Parameter's
                        // extra state) keep nothing from BUILD.
                        break;
                    }

                case (byte)'p': // PUT (text)
                    _memo[long.Parse(ReadLine(), CultureInfo.InvariantCulture)] = Peek();
                    break;
                case (byte)'q':
                    _memo[_reader.ReadByte()] = Peek();
                    break;
                case (byte)'r':
                    _memo[_reader.ReadUInt32()] = Peek();
                    break;
                case 0x94: // MEMOIZE
                    _memo[_memo.Count] = Peek();
                    break;
                case (byte)'g':
                    Push(Memo(long.Parse(ReadLine(), CultureInfo.InvariantCulture)));
                    break;
                case (byte)'h':
                    Push(Memo(_reader.ReadByte()));
                    break;
                case (byte)'j':
                    Push(Memo(_reader.ReadUInt32()));
                    break;
                case (byte)'P': // PERSID (text)
                    Push(PersistentLoad(ReadLine()));
                    break;
                case (byte)'Q': // BINPERSID
                    Push(PersistentLoad(Pop()));
                    break;
                case 0x97 or 0x98: // NEXT_BUFFER, READONLY_BUFFER
                    throw Bad("uses out-of-band pickle buffers (protocol 5), which torch.save does not write");
                case 0x82 or 0x83 or 0x84: // EXT1, EXT2, EXT4
                    throw Bad("uses the copyreg extension registry, which torch.save does not write");
                default:
                    throw Bad($"holds an unknown pickle opcode 0x{op:x2} at byte {_reader.BaseStream.Position - 1}");
            }
        }
    }

    /// <summary>A tuple of <paramref name="items"/>; refused when tuples nest beyond <see cref="MaxNesting"/> (hashing a key recurses that deep).</summary>
    private PickleTuple Tuple(object?[] items)
    {
        var tuple = new PickleTuple(items);
        return tuple.Depth <= MaxNesting ? tuple : throw Bad($"nests tuples more than {MaxNesting} deep");
    }

    /// <summary>
    /// The longest chain of containers inside <paramref name="root"/> (dictionaries, lists, tuples, opaque objects; 0 for a
    /// plain value), found without recursion and counting a container met again along its own chain (a cycle) once;
    /// stops early once it exceeds <paramref name="limit"/>.
    /// </summary>
    internal static int Nesting(object? root, int limit)
    {
        var height = new Dictionary<object, int>(ReferenceEqualityComparer.Instance);
        var onPath = new HashSet<object>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<(object Node, IEnumerator<object?> Children, int Best)>();
        if (!IsContainer(root))
        {
            return 0;
        }

        stack.Push((root!, Children(root!).GetEnumerator(), 0));
        onPath.Add(root!);
        while (stack.Count > 0)
        {
            var (node, children, best) = stack.Pop();
            bool descended = false;
            while (children.MoveNext())
            {
                object? child = children.Current;
                if (!IsContainer(child) || onPath.Contains(child!))
                {
                    continue;
                }

                if (height.TryGetValue(child!, out int known))
                {
                    best = Math.Max(best, known);
                    continue;
                }

                if (stack.Count + 2 > limit)
                {
                    return limit + 1;
                }

                stack.Push((node, children, best));
                stack.Push((child!, Children(child!).GetEnumerator(), 0));
                onPath.Add(child!);
                descended = true;
                break;
            }

            if (descended)
            {
                continue;
            }

            int mine = best + 1;
            height[node] = mine;
            onPath.Remove(node);
            if (stack.Count > 0)
            {
                var parent = stack.Pop();
                stack.Push((parent.Node, parent.Children, Math.Max(parent.Best, mine)));
            }
            else
            {
                return mine;
            }
        }

        return 0;

        static bool IsContainer(object? value) => value is Dictionary<object, object?> or List<object?> or PickleTuple or PickledObject;

        static IEnumerable<object?> Children(object node)
        {
            switch (node)
            {
                case Dictionary<object, object?> dict:
                    foreach (var (key, value) in dict)
                    {
                        yield return key;
                        yield return value;
                    }

                    break;
                case List<object?> list:
                    // By index: the list is not changed while it is walked, and an enumerator would not survive a copy.
                    for (int i = 0; i < list.Count; i++)
                    {
                        yield return list[i];
                    }

                    break;
                case PickleTuple tuple:
                    foreach (var item in tuple)
                    {
                        yield return item;
                    }

                    break;
                case PickledObject obj:
                    yield return obj.Arguments;
                    yield return obj.State;
                    yield return obj.Entries;
                    yield return obj.Items;
                    break;
            }
        }
    }

    private object Call(object? callable, PickleTuple args)
    {
        if (callable is not PickleGlobal g)
        {
            throw Bad($"calls something that is not a class or function ({Describe(callable)})");
        }

        switch (g.FullName)
        {
            case "torch._utils._rebuild_tensor_v2":
            case "torch._utils._rebuild_tensor":
                return RebuildTensor(args);
            case "torch._utils._rebuild_parameter":
            case "torch._utils._rebuild_parameter_with_state":
                return args[0] is PendingTensor ? args[0]! : throw Bad("rebuilds a parameter from something that is not a tensor");
            case "torch._tensor._rebuild_from_type_v2":
                // (function, type, arguments, state): a tensor subclass such as Parameter around an ordinary rebuild.
                return Call(args[0], As<PickleTuple>(args[2], "the arguments of a tensor rebuild"));
            case "collections.OrderedDict":
            case "collections.defaultdict":
            case "builtins.dict":
            case "__builtin__.dict":
                {
                    var dict = NewDict();
                    if (g.Name == "OrderedDict" && args.Count > 0 && args[0] is List<object?> pairs)
                    {
                        foreach (var pair in pairs.OfType<PickleTuple>())
                        {
                            SetItems(dict, [pair[0], pair[1]]);
                        }
                    }

                    return dict;
                }

            case "builtins.set" or "builtins.frozenset" or "__builtin__.set" or "__builtin__.frozenset":
                return args.Count > 0 && args[0] is IEnumerable<object?> items ? items.ToList() : new List<object?>();
            case "builtins.list" or "__builtin__.list":
                return args.Count > 0 && args[0] is IEnumerable<object?> listItems ? listItems.ToList() : new List<object?>();
            case "builtins.bytearray" or "__builtin__.bytearray":
                return args.Count == 0 ? Array.Empty<byte>() : args[0] is byte[] b ? b : args[0] is string s ? Encoding.Latin1.GetBytes(s) : throw Bad("builds a bytearray from an unexpected value");
            case "_codecs.encode":
                return Encoding.Latin1.GetBytes(As<string>(args[0], "text to encode"));
            case "torch.Size":
                return args.Count > 0 && args[0] is PickleTuple size ? size : PickleTuple.Empty;
            case "copyreg._reconstructor":
                return Call(args[0], PickleTuple.Empty);
            case "numpy.core.multiarray.scalar" or "numpy._core.multiarray.scalar":
                return NumpyScalar(args);
            default:
                if (s_opaque.Contains(g.FullName))
                {
                    return new PickledObject(g.FullName, args);
                }

                throw Bad($"names the Python global '{g.FullName}', which Cvrl does not read (only tensors, containers, numbers, text and known configuration classes are; nothing in a weight file is run)");
        }
    }

    private PickleGlobal Global(string module, string name)
    {
        var g = new PickleGlobal(module, name);
        bool known = g.FullName is "torch._utils._rebuild_tensor_v2" or "torch._utils._rebuild_tensor" or "torch._utils._rebuild_parameter"
            or "torch._utils._rebuild_parameter_with_state" or "torch._tensor._rebuild_from_type_v2" or "torch.nn.parameter.Parameter" or "torch.Tensor"
            or "collections.OrderedDict" or "collections.defaultdict" or "builtins.dict" or "__builtin__.dict" or "builtins.set" or "builtins.frozenset"
            or "__builtin__.set" or "__builtin__.frozenset" or "builtins.list" or "__builtin__.list" or "builtins.bytearray" or "__builtin__.bytearray"
            or "_codecs.encode" or "torch.Size" or "copyreg._reconstructor" or "numpy.core.multiarray.scalar" or "numpy._core.multiarray.scalar"
            or "builtins.int" or "builtins.float" or "builtins.str" or "__builtin__.object"
            || (module == "torch" && (s_storages.ContainsKey(name) || name is "float32" or "float16" or "bfloat16" or "float64" or "int64" or "int32" or "uint8" or "bool"))
            || (module == "torch.storage" && name is "UntypedStorage" or "TypedStorage");
        if (!known && !s_opaque.Contains(g.FullName))
        {
            throw Bad($"names the Python global '{g.FullName}', which Cvrl does not read (only tensors, containers, numbers, text and known configuration classes are; nothing in a weight file is run)");
        }

        if (s_opaque.Contains(g.FullName) && !_opaqueSeen.Contains(g.FullName))
        {
            _opaqueSeen.Add(g.FullName);
        }

        return g;
    }

    private object PersistentLoad(object? pid)
    {
        if (pid is not PickleTuple t || t.Count < 5 || t[0] is not "storage")
        {
            throw Bad($"holds a persistent id that is not a torch storage ({Describe(pid)})");
        }

        if (t[1] is not PickleGlobal type || type.Module != "torch" || !s_storages.TryGetValue(type.Name, out var element))
        {
            throw Bad($"holds a storage of type {Describe(t[1])}; Cvrl reads float, double, half, bfloat16, integer, byte and bool storages");
        }

        string key = t[2] switch
        {
            string s => s,
            long l => l.ToString(CultureInfo.InvariantCulture),
            _ => throw Bad("holds a storage whose key is not text"),
        };
        string location = t[3] as string ?? "cpu";
        long elements = As<long>(t[4], "a storage's size");
        if (elements < 0 || elements > MaxStorageElements)
        {
            throw Bad($"claims a storage of {elements} elements");
        }

        if (!Storages.TryGetValue(key, out var root))
        {
            root = new StorageRef(element.Type, element.Size, key, elements, 0, location);
            Storages[key] = root;
        }
        else if (root.Type != element.Type)
        {
            throw Bad($"names storage '{key}' with two element types");
        }

        if (_legacyStorages && t.Count > 5 && t[5] is PickleTuple view)
        {
            // A view of a root storage (torch < 1.6): (view key, offset, size).
            long offset = As<long>(view[1], "a storage view's offset");
            long size = As<long>(view[2], "a storage view's size");
            if (offset < 0 || size < 0 || offset + size > root.Elements)
            {
                throw Bad($"holds a view of storage '{key}' outside it");
            }

            return root with { ElementOffset = offset, Elements = size };
        }

        return root;
    }

    /// <summary>The most elements a storage may claim here (its bytes are checked against the file when it is read).</summary>
    private const long MaxStorageElements = long.MaxValue / 16;

    /// <summary>The most elements a tensor may have beyond those of its storage (an expanded or overlapping view).</summary>
    private const long MaxRepeatedElements = 1 << 20;

    private PendingTensor RebuildTensor(PickleTuple args)
    {
        if (args.Count < 4 || args[0] is not StorageRef storage)
        {
            throw Bad("rebuilds a tensor without a storage");
        }

        long offset = As<long>(args[1], "a tensor's storage offset");
        long[] size = Longs(args[2], "a tensor's size");
        long[] stride = Longs(args[3], "a tensor's strides");
        if (size.Length != stride.Length || size.Length > 16 || size.Any(s => s < 0) || stride.Any(s => s < 0) || offset < 0)
        {
            throw Bad($"rebuilds a tensor with size [{string.Join(", ", size)}] and strides [{string.Join(", ", stride)}]");
        }

        // In 128 bits: sizes and strides near 2^62 overflow 64-bit products and would pass as small numbers.
        Int128 last = offset;
        Int128 elements = 1;
        foreach (long s in size)
        {
            elements = Int128.Min(elements * s, (Int128)long.MaxValue);
        }

        if (elements > 0)
        {
            for (int d = 0; d < size.Length; d++)
            {
                last += (Int128)(size[d] - 1) * stride[d];
            }

            if (last >= storage.Elements)
            {
                throw Bad($"rebuilds a tensor of size [{string.Join(", ", size)}] and strides [{string.Join(", ", stride)}] that reaches past the {storage.Elements} elements of storage '{storage.Key}'");
            }
        }

        // Cvrl copies each tensor out of its storage: a view may repeat its storage's elements (zero or overlapping
        // strides), but not into a copy far larger than the file.
        if (elements > Math.Max(storage.Elements, MaxRepeatedElements))
        {
            throw Bad($"rebuilds a tensor of size [{string.Join(", ", size)}] ({elements} elements) from storage '{storage.Key}' of {storage.Elements} elements");
        }

        return new PendingTensor(storage, offset, size, stride);
    }

    private object NumpyScalar(PickleTuple args)
    {
        // (dtype, raw bytes): keep common numeric types as numbers, anything else opaque.
        if (args.Count == 2 && args[0] is PickledObject { TypeName: "numpy.dtype" } dtype && dtype.Arguments.Count > 0 && dtype.Arguments[0] is string code && args[1] is byte[] raw)
        {
            switch (code)
            {
                case "f8" when raw.Length == 8: return BitConverter.ToDouble(raw);
                case "f4" when raw.Length == 4: return (double)BitConverter.ToSingle(raw);
                case "i8" when raw.Length == 8: return BitConverter.ToInt64(raw);
                case "i4" when raw.Length == 4: return (long)BitConverter.ToInt32(raw);
                case "b1" when raw.Length == 1: return raw[0] != 0;
            }
        }

        return new PickledObject("numpy.core.multiarray.scalar", args);
    }

    private static Dictionary<object, object?> NewDict() => new(PickleKeyComparer.Instance);

    private void SetItems(object? target, IReadOnlyList<object?> items)
    {
        if (items.Count % 2 != 0)
        {
            throw Bad("sets dictionary items from an odd number of values");
        }

        var dict = target switch
        {
            Dictionary<object, object?> d => d,
            PickledObject o => o.Entries,
            _ => throw Bad($"sets dictionary items on {Describe(target)}"),
        };
        for (int i = 0; i < items.Count; i += 2)
        {
            dict[items[i] ?? PickleNone.Value] = items[i + 1];
        }
    }

    private void Append(object? target, IReadOnlyList<object?> items)
    {
        switch (target)
        {
            case List<object?> list:
                list.AddRange(items);
                break;
            case PickledObject o:
                o.Items.AddRange(items);
                break;
            default:
                throw Bad($"appends to {Describe(target)}");
        }
    }

    private object? Memo(long index) => _memo.TryGetValue(index, out var value) ? value : throw Bad($"refers to memo entry {index}, which was never stored");

    private void Push(object? value) => _stack.Add(value);

    private object? Pop()
    {
        int floor = _marks.Count > 0 ? _marks[^1] : 0;
        if (_stack.Count <= floor)
        {
            throw Bad("pops from an empty pickle stack");
        }

        object? value = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return value;
    }

    private object? Peek() => _stack.Count > 0 ? _stack[^1] : throw Bad("reads an empty pickle stack");

    private List<object?> PopMark()
    {
        if (_marks.Count == 0)
        {
            throw Bad("closes a mark that was never opened");
        }

        int mark = _marks[^1];
        _marks.RemoveAt(_marks.Count - 1);
        var items = _stack.GetRange(mark, _stack.Count - mark);
        _stack.RemoveRange(mark, _stack.Count - mark);
        return items;
    }

    private string ReadLine()
    {
        var bytes = new List<byte>();
        while (true)
        {
            byte b = _reader.ReadByte();
            if (b == (byte)'\n')
            {
                return Encoding.UTF8.GetString([.. bytes]);
            }

            bytes.Add(b);
            if (bytes.Count > 1 << 20)
            {
                throw Bad("holds a text line longer than 1 MB");
            }
        }
    }

    private long Length(long claimed)
    {
        if (claimed < 0 || claimed > _limit)
        {
            throw Bad($"claims a value of {claimed} bytes, more than the {_limit} left");
        }

        return claimed;
    }

    private byte[] ReadBytes(long count)
    {
        var bytes = _reader.ReadBytes(checked((int)count));
        return bytes.Length == count ? bytes : throw new EndOfStreamException($"{count} bytes expected, {bytes.Length} left");
    }

    private static string Utf8(byte[] bytes) => new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);

    private static object Integer(BigInteger value) => value >= long.MinValue && value <= long.MaxValue ? (object)(long)value : value;

    private static string Unquote(string text) =>
        text.Length >= 2 && (text[0] == '\'' || text[0] == '"') && text[^1] == text[0]
            ? System.Text.RegularExpressions.Regex.Unescape(text[1..^1])
            : text;

    private T As<T>(object? value, string what) =>
        value is T t ? t
        : typeof(T) == typeof(long) && value is bool b ? (T)(object)(b ? 1L : 0L)
        : throw Bad($"holds {Describe(value)} where {what} should be");

    private long[] Longs(object? value, string what) =>
        value is PickleTuple t ? [.. t.Select(v => As<long>(v, what))] : throw Bad($"holds {Describe(value)} where {what} should be");

    private static string Describe(object? value) => value switch
    {
        null => "None",
        string s => $"text '{(s.Length > 40 ? s[..40] + "..." : s)}'",
        PickleGlobal g => g.FullName,
        _ => value.GetType().Name,
    };

    private InvalidDataException Bad(string what) => new($"'{_origin}' {what}.");
}
