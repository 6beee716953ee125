using System.Collections;
using System.Text;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Cvrl.Models.Weights;

/// <summary>Weight file formats Cvrl reads and writes.</summary>
public enum WeightFormat
{
    /// <summary>TorchSharp's own format (<c>Module.save</c>/<c>Module.load</c>): a count, then name, dtype, shape and raw data per tensor.</summary>
    TorchSharp,

    /// <summary>A PyTorch state dict saved with <c>torch.save(model.state_dict(), path)</c> (.pt/.pth, zip or legacy format; read by <see cref="TorchSaveFile"/>, written through TorchSharp.PyBridge).</summary>
    PyTorch,

    /// <summary>Hugging Face safetensors: an 8-byte header length, a JSON header, raw little-endian data.</summary>
    Safetensors,
}

/// <summary>A named set of tensors read from a weight file. Owns the tensors: dispose it when done.</summary>
public sealed class StateDict : IReadOnlyDictionary<string, Tensor>, IDisposable
{
    private readonly Dictionary<string, Tensor> _tensors;

    /// <summary>Wraps tensors; the new object owns them.</summary>
    public StateDict(IDictionary<string, Tensor> tensors, WeightFormat format)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        _tensors = new Dictionary<string, Tensor>(tensors, StringComparer.Ordinal);
        Format = format;
    }

    /// <summary>The format the tensors were read from.</summary>
    public WeightFormat Format { get; }

    /// <inheritdoc />
    public int Count => _tensors.Count;

    /// <inheritdoc />
    public IEnumerable<string> Keys => _tensors.Keys;

    /// <inheritdoc />
    public IEnumerable<Tensor> Values => _tensors.Values;

    /// <inheritdoc />
    public Tensor this[string key] => _tensors[key];

    /// <inheritdoc />
    public bool ContainsKey(string key) => _tensors.ContainsKey(key);

    /// <inheritdoc />
    public bool TryGetValue(string key, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out Tensor value) => _tensors.TryGetValue(key, out value);

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, Tensor>> GetEnumerator() => _tensors.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Disposes every tensor.</summary>
    public void Dispose()
    {
        foreach (var t in _tensors.Values)
        {
            t.Dispose();
        }

        _tensors.Clear();
    }
}

/// <summary>Reads and writes state dicts in TorchSharp, PyTorch and safetensors formats.</summary>
public static class StateDictFile
{
    /// <summary>Test hook: runs after the temporary file is written and before it replaces the target (a throw simulates a crash).</summary>
    internal static Action<string>? FaultInjection { get; set; }

    /// <summary>Recognises a weight file's format from its first bytes.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is empty.</exception>
    public static WeightFormat DetectFormat(string path)
    {
        using var stream = OpenRead(path);
        Span<byte> head = stackalloc byte[9];
        int n = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        if (n == 0)
        {
            throw new InvalidDataException($"Weight file '{path}' is empty.");
        }

        if (n >= 4 && head[0] == (byte)'P' && head[1] == (byte)'K' && head[2] == 3 && head[3] == 4)
        {
            return WeightFormat.PyTorch; // torch.save's zip container
        }

        if (n >= 2 && head[0] == 0x80 && head[1] is >= 2 and <= 5)
        {
            return WeightFormat.PyTorch; // legacy pickle
        }

        if (n == 9 && head[8] == (byte)'{' && BitConverter.ToUInt64(head[..8]) < (ulong)stream.Length)
        {
            return WeightFormat.Safetensors;
        }

        return WeightFormat.TorchSharp;
    }

    /// <summary>Reads every tensor of a weight file (format detected from its content) onto the CPU.</summary>
    /// <param name="path">The file.</param>
    /// <returns>The tensors, owned by the caller.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is empty, truncated or not a weight file of a known format; the message names it.</exception>
    public static StateDict Read(string path)
    {
        var format = DetectFormat(path);
        TorchNative.EnsureLoaded();
        try
        {
            return format switch
            {
                WeightFormat.PyTorch => ReadPyTorch(path),
                WeightFormat.Safetensors => new StateDict(Safetensors.LoadStateDict(path), WeightFormat.Safetensors),
                _ => ReadTorchSharp(path),
            };
        }
        catch (Exception e) when (e is not InvalidDataException and not FileNotFoundException and not OutOfMemoryException)
        {
            throw new InvalidDataException($"Weight file '{path}' could not be read as {format}: {e.Message}", e);
        }
    }

    /// <summary>Writes tensors to a weight file, atomically (a temporary file, flushed, then renamed over the target).</summary>
    /// <param name="path">The file.</param>
    /// <param name="tensors">The tensors (any device; copied to the CPU while writing).</param>
    /// <param name="format">The format.</param>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, WeightFormat format = WeightFormat.TorchSharp)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(tensors);
        TorchNative.EnsureLoaded();
        AtomicFile.Write(
            path,
            stream =>
            {
                switch (format)
                {
                    case WeightFormat.PyTorch:
                        PyTorchPickler.PickleStateDict(stream, new Hashtable(tensors.ToDictionary(kv => kv.Key, kv => kv.Value)), leaveOpen: true);
                        break;
                    case WeightFormat.Safetensors:
                        Safetensors.SaveStateDict(stream, tensors.ToDictionary(kv => kv.Key, kv => kv.Value), leaveOpen: true);
                        break;
                    default:
                        WriteTorchSharp(stream, tensors);
                        break;
                }
            },
            FaultInjection);
    }

    private static StateDict ReadPyTorch(string path)
    {
        using var content = TorchSaveFile.Read(path);
        if (content.StateDicts.Any(l => l.Path.Length == 0))
        {
            return content.TakeStateDict("");
        }

        throw new InvalidDataException(
            $"PyTorch file '{path}' is not a plain state dict: it holds {TorchSaveContent.Describe(content.StateDicts)}. A model-zoo checkpoint imports with ZooImporter (cvrl import); otherwise save model.state_dict() itself.");
    }

    private static StateDict ReadTorchSharp(string path)
    {
        using var stream = OpenRead(path);
        using var reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: false);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            long count = Decode(reader, path);
            if (count < 0 || count > 1_000_000)
            {
                throw new InvalidDataException($"Weight file '{path}' is not a TorchSharp, PyTorch or safetensors weight file (it claims {count} tensors).");
            }

            for (long i = 0; i < count; i++)
            {
                string name = reader.ReadString();
                var dtype = (ScalarType)Decode(reader, path);
                long rank = Decode(reader, path);
                if (!Enum.IsDefined(dtype) || rank is < 0 or > 16)
                {
                    throw new InvalidDataException($"Weight file '{path}' is corrupt at tensor {i} ('{name}'): dtype {(int)dtype}, rank {rank}.");
                }

                var shape = new long[rank];
                for (int d = 0; d < rank; d++)
                {
                    shape[d] = Decode(reader, path);
                    if (shape[d] < 0)
                    {
                        throw new InvalidDataException($"Weight file '{path}' is corrupt at tensor '{name}': negative dimension.");
                    }
                }

                var tensor = torch.empty(shape, dtype);
                result[name] = tensor;
                var bytes = tensor.bytes;
                if (stream.Read(bytes) != bytes.Length && bytes.Length > 0)
                {
                    throw new InvalidDataException($"Weight file '{path}' is truncated inside tensor '{name}'.");
                }
            }
        }
        catch (Exception e) when (e is EndOfStreamException or InvalidDataException or ArgumentException or OverflowException)
        {
            foreach (var t in result.Values)
            {
                t.Dispose();
            }

            throw e is InvalidDataException ? e : new InvalidDataException($"Weight file '{path}' is truncated or not a weight file: {e.Message}", e);
        }

        return new StateDict(result, WeightFormat.TorchSharp);
    }

    private static void WriteTorchSharp(Stream stream, IReadOnlyDictionary<string, Tensor> tensors)
    {
        using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        Encode(writer, tensors.Count);
        foreach (var (name, tensor) in tensors)
        {
            writer.Write(name);
            Encode(writer, (long)tensor.dtype);
            Encode(writer, tensor.shape.Length);
            foreach (long d in tensor.shape)
            {
                Encode(writer, d);
            }

            using var cpu = tensor.detach().cpu().contiguous();
            writer.Write(cpu.bytes);
        }
    }

    /// <summary>TorchSharp's 7-bit variable-length integer encoding.</summary>
    private static void Encode(BinaryWriter writer, long value)
    {
        ulong v = (ulong)value;
        while (v >= 0x80)
        {
            writer.Write((byte)(v | 0x80));
            v >>= 7;
        }

        writer.Write((byte)v);
    }

    private static long Decode(BinaryReader reader, string path)
    {
        ulong result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            byte b = reader.ReadByte();
            result |= (ulong)(b & 0x7f) << shift;
            if ((b & 0x80) == 0)
            {
                return (long)result;
            }
        }

        throw new InvalidDataException($"Weight file '{path}' is corrupt (an integer longer than 64 bits).");
    }

    private static FileStream OpenRead(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Weight file '{path}' does not exist.", path);
        }

        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
    }
}
