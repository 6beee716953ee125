using System.IO.Compression;
using System.Numerics;
using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Models.Weights;

/// <summary>Where a dictionary of tensors sits inside a <c>torch.save</c> file, and how big it is.</summary>
/// <param name="Path">Its keys from the top, joined with '/' ("" for the top-level dictionary, "model_state", "state_dict").</param>
/// <param name="Tensors">How many tensors it holds.</param>
public sealed record TorchStateDictLocation(string Path, int Tensors);

/// <summary>
/// What a file written by PyTorch's <c>torch.save</c> holds, read without running any Python: nested dictionaries
/// (<c>IReadOnlyDictionary&lt;object, object?&gt;</c>), lists, <see cref="PickleTuple"/>s, numbers (<see cref="long"/>,
/// <see cref="double"/>, <see cref="bool"/>), text, bytes, tensors (on the CPU, owned by this object until taken) and
/// <see cref="PickledObject"/>s for the configuration and NumPy classes the model zoos store next to their weights.
/// </summary>
public sealed class TorchSaveContent : IDisposable
{
    private readonly HashSet<Tensor> _owned;

    internal TorchSaveContent(string path, bool legacy, object? root, IReadOnlyList<string> opaque, HashSet<Tensor> owned)
    {
        Path = path;
        IsLegacyFormat = legacy;
        Root = root;
        OpaqueClasses = opaque;
        _owned = owned;
        StateDicts = FindStateDicts(root, "", 0).ToList();
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>Whether the file uses torch's pre-1.6 format (a sequence of pickles and raw storages) rather than the zip container.</summary>
    public bool IsLegacyFormat { get; }

    /// <summary>The saved object.</summary>
    public object? Root { get; }

    /// <summary>The classes kept as <see cref="PickledObject"/>s (read, not interpreted), in order of first sight.</summary>
    public IReadOnlyList<string> OpaqueClasses { get; }

    /// <summary>Every dictionary of tensors with text keys in the file (the top level included), outermost first.</summary>
    public IReadOnlyList<TorchStateDictLocation> StateDicts { get; }

    /// <summary>The value at <paramref name="path"/> (text keys joined with '/'; "" is the top level), or null when absent.</summary>
    public object? Find(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        object? node = Root;
        foreach (string key in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (node is not IReadOnlyDictionary<object, object?> dict || !dict.TryGetValue(key, out node))
            {
                return null;
            }
        }

        return node;
    }

    /// <summary>
    /// Takes the dictionary of tensors at <paramref name="path"/> as a <see cref="StateDict"/>: the caller owns its
    /// tensors from then on (disposing this object no longer frees them).
    /// </summary>
    /// <exception cref="KeyNotFoundException">No dictionary of tensors lies at <paramref name="path"/>; the message lists those that do.</exception>
    public StateDict TakeStateDict(string path)
    {
        if (Find(path) is not IReadOnlyDictionary<object, object?> dict || !IsStateDict(dict))
        {
            throw new KeyNotFoundException($"'{Path}' has no dictionary of tensors at '{path}'; it has {Describe(StateDicts)}.");
        }

        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (key, value) in dict)
        {
            var tensor = (Tensor)value!;
            tensors[(string)key] = tensor;
            _owned.Remove(tensor);
        }

        return new StateDict(tensors, WeightFormat.PyTorch);
    }

    /// <summary>"'model_state' (320 tensors), '' (2 tensors)".</summary>
    internal static string Describe(IReadOnlyList<TorchStateDictLocation> locations) =>
        locations.Count == 0 ? "no dictionary of tensors" : string.Join(", ", locations.Select(l => $"'{l.Path}' ({l.Tensors} tensors)"));

    /// <summary>Disposes every tensor not taken.</summary>
    public void Dispose()
    {
        foreach (var tensor in _owned)
        {
            tensor.Dispose();
        }

        _owned.Clear();
    }

    private static bool IsStateDict(IReadOnlyDictionary<object, object?> dict) =>
        dict.Count > 0 && dict.All(kv => kv.Key is string && kv.Value is Tensor);

    private static IEnumerable<TorchStateDictLocation> FindStateDicts(object? node, string path, int depth)
    {
        if (node is not IReadOnlyDictionary<object, object?> dict || depth > 6)
        {
            yield break;
        }

        if (IsStateDict(dict))
        {
            yield return new TorchStateDictLocation(path, dict.Count);
            yield break;
        }

        foreach (var (key, value) in dict)
        {
            if (key is string name && !name.Contains('/', StringComparison.Ordinal))
            {
                foreach (var inner in FindStateDicts(value, path.Length == 0 ? name : path + "/" + name, depth + 1))
                {
                    yield return inner;
                }
            }
        }
    }
}

/// <summary>
/// Reads files written by PyTorch's <c>torch.save</c> (the zip container of PyTorch 1.6 and later, and the older
/// sequence of pickles) without Python and without running anything a file names: the pickle is interpreted by a reader
/// that knows torch's tensor and storage records, containers, numbers and text, and keeps a fixed list of
/// configuration and NumPy classes as opaque values; any other Python global is refused by name.
/// </summary>
public static class TorchSaveFile
{
    private static readonly BigInteger s_legacyMagic = BigInteger.Parse("119547037146038801333356", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Reads a <c>torch.save</c> file.</summary>
    /// <param name="path">The file (.pt, .pth, .pyth, .ckpt).</param>
    /// <returns>Its content, owning its tensors.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a torch.save file, is truncated or damaged, or names a Python class Cvrl does not read; the message names the file and what was found.</exception>
    public static TorchSaveContent Read(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Weight file '{path}' does not exist.", path);
        }

        TorchNative.EnsureLoaded();
        try
        {
            return ReadFile(path);
        }
        catch (InsufficientExecutionStackException e)
        {
            throw new InvalidDataException($"'{path}' nests its containers deeper than Cvrl reads.", e);
        }
    }

    private static TorchSaveContent ReadFile(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        Span<byte> head = stackalloc byte[4];
        int n = stream.ReadAtLeast(head, 4, throwOnEndOfStream: false);
        stream.Position = 0;
        if (n >= 4 && head[0] == (byte)'P' && head[1] == (byte)'K' && head[2] == 3 && head[3] == 4)
        {
            return ReadZip(path, stream);
        }

        if (n >= 2 && head[0] == 0x80)
        {
            return ReadLegacy(path, stream);
        }

        throw new InvalidDataException($"'{path}' is not a torch.save file (it starts with neither a zip header nor a pickle).");
    }

    private static TorchSaveContent ReadZip(string path, FileStream stream)
    {
        ZipArchive zip;
        try
        {
            zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{path}' is a damaged zip file ({e.Message}).", e);
        }

        using (zip)
        {
            var pickleEntry = zip.Entries.Where(e => e.FullName.EndsWith("data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1)
                .OrderBy(e => e.FullName.Length).FirstOrDefault()
                ?? throw new InvalidDataException($"'{path}' is a zip file without a torch pickle (no '<archive>/data.pkl' entry): not a torch.save file.");
            string prefix = pickleEntry.FullName[..^"data.pkl".Length];
            if (zip.GetEntry(prefix + "byteorder") is { } order)
            {
                using var reader = new StreamReader(order.Open());
                string byteOrder = reader.ReadToEnd().Trim();
                if (byteOrder != "little")
                {
                    throw new InvalidDataException($"'{path}' stores its tensors {byteOrder}-endian; Cvrl reads little-endian files.");
                }
            }

            if (pickleEntry.Length > MaxPickleBytes)
            {
                throw new InvalidDataException($"'{path}': its pickle '{pickleEntry.FullName}' claims {pickleEntry.Length:N0} bytes; a torch.save pickle holds names and settings, at most {MaxPickleBytes:N0} bytes are read.");
            }

            CheckInflation(path, pickleEntry, stream.Length);
            using var pickle = new MemoryStream((int)pickleEntry.Length);
            using (var entry = pickleEntry.Open())
            {
                CopyAtMost(entry, pickle, pickleEntry.Length, path, pickleEntry.FullName);
            }

            pickle.Position = 0;
            var machine = new PickleMachine(pickle, $"{path}: {pickleEntry.FullName}", pickle.Length, legacyStorages: false);
            object? root = machine.Load();
            var storages = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            try
            {
                foreach (var storage in machine.Storages.Values)
                {
                    var entry = zip.GetEntry(prefix + "data/" + storage.Key)
                        ?? throw new InvalidDataException($"'{path}' names storage '{storage.Key}' but has no entry '{prefix}data/{storage.Key}'.");
                    long bytes = storage.Elements * storage.ElementSize;
                    if (entry.Length != bytes)
                    {
                        throw new InvalidDataException($"'{path}': storage '{storage.Key}' holds {entry.Length} bytes where {storage.Elements} elements of {storage.ElementSize} bytes need {bytes}.");
                    }

                    CheckInflation(path, entry, stream.Length);
                    using var data = entry.Open();
                    storages[storage.Key] = ReadStorage(data, storage, path);
                }

                return Materialize(path, legacy: false, root, machine.OpaqueClasses, storages);
            }
            finally
            {
                foreach (var t in storages.Values)
                {
                    t.Dispose();
                }
            }
        }
    }

    private static TorchSaveContent ReadLegacy(string path, FileStream stream)
    {
        long Left() => stream.Length - stream.Position;
        const string NotTorch = "is a pickle but not a torch.save file (torch.save files start with a zip header or torch's magic number); PySlowFast's supervised Kinetics models are Caffe2 .pkl files, which Cvrl does not read: load one in PySlowFast and save its model_state with torch.save";
        object? magic;
        try
        {
            magic = new PickleMachine(stream, path, Left(), legacyStorages: false).Load();
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{path}' {NotTorch} ({e.Message})", e);
        }

        if (magic is not BigInteger m || m != s_legacyMagic)
        {
            throw new InvalidDataException($"'{path}' {NotTorch}.");
        }

        var protocol = new PickleMachine(stream, path, Left(), legacyStorages: false).Load();
        if (protocol is not 1001L)
        {
            throw new InvalidDataException($"'{path}' uses torch.save protocol {protocol}; Cvrl reads protocol 1001.");
        }

        var info = new PickleMachine(stream, path, Left(), legacyStorages: false).Load();
        if (info is IReadOnlyDictionary<object, object?> sys && sys.TryGetValue("little_endian", out var little) && little is false)
        {
            throw new InvalidDataException($"'{path}' was written on a big-endian machine; Cvrl reads little-endian files.");
        }

        var machine = new PickleMachine(stream, path, Left(), legacyStorages: true);
        object? root = machine.Load();
        var keys = new PickleMachine(stream, path, Left(), legacyStorages: false).Load() as List<object?>
            ?? throw new InvalidDataException($"'{path}' has no list of storage keys after its object (a truncated or damaged legacy torch.save file).");
        var storages = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            using var reader = new BinaryReader(stream, System.Text.Encoding.UTF8, leaveOpen: true);
            foreach (var keyValue in keys)
            {
                string key = keyValue?.ToString() ?? "";
                if (!machine.Storages.TryGetValue(key, out var storage))
                {
                    throw new InvalidDataException($"'{path}' lists storage '{key}' that its object never names.");
                }

                long elements = Left() >= 8 ? reader.ReadInt64() : throw new InvalidDataException($"'{path}' is truncated before storage '{key}'.");
                if (elements != storage.Elements)
                {
                    throw new InvalidDataException($"'{path}': storage '{key}' holds {elements} elements where its object says {storage.Elements}.");
                }

                if (elements * storage.ElementSize > Left())
                {
                    throw new InvalidDataException($"'{path}' is truncated inside storage '{key}' ({elements * storage.ElementSize} bytes needed, {Left()} left).");
                }

                storages[key] = ReadStorage(stream, storage, path);
            }

            var missing = machine.Storages.Keys.Where(k => !storages.ContainsKey(k)).ToList();
            if (missing.Count > 0)
            {
                throw new InvalidDataException($"'{path}' names storage '{missing[0]}' but holds no data for it.");
            }

            return Materialize(path, legacy: true, root, machine.OpaqueClasses, storages);
        }
        finally
        {
            foreach (var t in storages.Values)
            {
                t.Dispose();
            }
        }
    }

    /// <summary>The most bytes a torch.save pickle may inflate to (real ones are well under a megabyte).</summary>
    internal const long MaxPickleBytes = 256L << 20;

    /// <summary>
    /// The most a compressed entry may grow when inflated: torch.save stores its entries uncompressed, and weights or
    /// pickles compressed by other tools shrink a few times at most; deflate can reach about 1000x, which is how a file
    /// of a megabyte claims gigabytes.
    /// </summary>
    internal const int MaxInflation = 100;

    /// <summary>Refuses an entry that claims to inflate far beyond its compressed size, before anything is inflated.</summary>
    private static void CheckInflation(string path, ZipArchiveEntry entry, long fileBytes)
    {
        if (entry.CompressedLength > fileBytes)
        {
            throw new InvalidDataException($"'{path}': entry '{entry.FullName}' claims {entry.CompressedLength:N0} bytes in a file of {fileBytes:N0} (a truncated or forged zip).");
        }

        if (entry.CompressedLength < entry.Length && entry.Length > ((long)MaxInflation * Math.Max(entry.CompressedLength, 1)) + (1 << 20))
        {
            throw new InvalidDataException($"'{path}': entry '{entry.FullName}' inflates from {entry.CompressedLength:N0} to {entry.Length:N0} bytes, more than {MaxInflation} times; torch.save stores entries uncompressed, so this is not one of its files (a zip bomb?).");
        }
    }

    /// <summary>Copies exactly <paramref name="expected"/> bytes, refusing a stream that holds more or fewer than its entry declared.</summary>
    private static void CopyAtMost(Stream source, Stream destination, long expected, string path, string entry)
    {
        var buffer = new byte[1 << 16];
        long total = 0;
        int n;
        while ((n = source.Read(buffer, 0, (int)Math.Min(buffer.Length, expected + 1 - total))) > 0)
        {
            total += n;
            if (total > expected)
            {
                throw new InvalidDataException($"'{path}': entry '{entry}' inflates to more than the {expected:N0} bytes it declares (a damaged or forged zip).");
            }

            destination.Write(buffer, 0, n);
        }

        if (total != expected)
        {
            throw new InvalidDataException($"'{path}': entry '{entry}' holds {total:N0} of the {expected:N0} bytes it declares (a truncated file).");
        }
    }

    private static Tensor ReadStorage(Stream data, StorageRef storage, string path)
    {
        var tensor = torch.empty([storage.Elements], storage.Type);
        try
        {
            var bytes = tensor.bytes;
            int read = data.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
            if (read != bytes.Length)
            {
                throw new InvalidDataException($"'{path}' is truncated inside storage '{storage.Key}' ({read} of {bytes.Length} bytes).");
            }

            return tensor;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    /// <summary>Replaces every pending tensor in the tree with a CPU tensor of its own (copied out of its storage).</summary>
    private static TorchSaveContent Materialize(string path, bool legacy, object? root, IReadOnlyList<string> opaque, Dictionary<string, Tensor> storages)
    {
        var built = new Dictionary<PendingTensor, Tensor>(ReferenceEqualityComparer.Instance);
        var owned = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        var seen = new HashSet<object>(ReferenceEqualityComparer.Instance);
        try
        {
            object? Build(object? value)
            {
                if (value is not PendingTensor pending)
                {
                    Visit(value);
                    return value;
                }

                if (!built.TryGetValue(pending, out var tensor))
                {
                    var storage = storages[pending.Storage.Key];
                    using var view = storage.as_strided(pending.Size, pending.Stride, pending.Storage.ElementOffset + pending.Offset);
                    tensor = torch.empty(pending.Size, pending.Storage.Type);
                    tensor.copy_(view);
                    built[pending] = tensor;
                    owned.Add(tensor);
                }

                return tensor;
            }

            void Visit(object? node)
            {
                if (node is null || !seen.Add(node))
                {
                    return; // a container met before (pickles can share and nest containers in cycles)
                }

                RuntimeHelpers.EnsureSufficientExecutionStack();
                switch (node)
                {
                    case Dictionary<object, object?> dict:
                        foreach (var key in dict.Keys.ToList())
                        {
                            dict[key] = Build(dict[key]);
                        }

                        break;
                    case List<object?> list:
                        for (int i = 0; i < list.Count; i++)
                        {
                            list[i] = Build(list[i]);
                        }

                        break;
                    case PickleTuple tuple:
                        for (int i = 0; i < tuple.Items.Length; i++)
                        {
                            tuple.Items[i] = Build(tuple.Items[i]);
                        }

                        break;
                    case PickledObject obj:
                        Visit(obj.Arguments);
                        obj.State = Build(obj.State);
                        Visit(obj.Entries);
                        Visit(obj.Items);
                        break;
                }
            }

            root = Build(root);
            return new TorchSaveContent(path, legacy, root, opaque, owned);
        }
        catch
        {
            foreach (var t in owned)
            {
                t.Dispose();
            }

            throw;
        }
    }
}
