using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Cvrl.Models.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Training;

/// <summary>
/// The integrity record of a checkpoint: the entry <c>__checksum__</c>, a UTF-8 JSON object
/// <c>{"algorithm":"sha256","entries":{name: hex, ...}}</c> with one SHA-256 per other entry (the metadata included),
/// each over the entry's name, element type, shape and raw bytes. Written with the file (in the same atomic write) and
/// checked whenever a checkpoint is read, so a flipped bit anywhere in the weights, the optimizer state or the metadata
/// is found and named.
/// </summary>
internal static class CheckpointChecksum
{
    public const string Key = "__checksum__";

    private const string Algorithm = "sha256";

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    /// <summary>The checksum entry for <paramref name="entries"/> (every entry the file will hold besides it).</summary>
    public static Tensor Create(IReadOnlyDictionary<string, Tensor> entries)
    {
        var hashes = entries.Keys.Order(StringComparer.Ordinal).ToDictionary(k => k, k => Hash(k, entries[k]), StringComparer.Ordinal);
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(new Record(Algorithm, hashes), Json);
        return torch.tensor(json, ScalarType.Byte);
    }

    /// <summary>
    /// Checks every entry of <paramref name="file"/> against its checksum entry. Returns false for a file written before
    /// checksums existed (no checksum entry): it is loaded unverified.
    /// </summary>
    /// <exception cref="CheckpointCorruptException">An entry is missing, unexpected, or does not match its checksum.</exception>
    public static bool Verify(StateDict file, string path)
    {
        if (!file.TryGetValue(Key, out var stored))
        {
            return false;
        }

        Record? record;
        try
        {
            record = stored.dtype == ScalarType.Byte ? JsonSerializer.Deserialize<Record>(stored.bytes, Json) : null;
        }
        catch (JsonException e)
        {
            throw new CheckpointCorruptException(path, Key, "is not readable JSON", e);
        }

        if (record?.Entries is null || record.Algorithm != Algorithm)
        {
            throw new CheckpointCorruptException(path, Key, "does not hold a SHA-256 record of the entries");
        }

        foreach (var (name, hash) in record.Entries.OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            if (!file.TryGetValue(name, out var tensor))
            {
                throw new CheckpointCorruptException(path, name, "is missing (the checksum record lists it)");
            }

            if (!string.Equals(Hash(name, tensor), hash, StringComparison.Ordinal))
            {
                throw new CheckpointCorruptException(path, name, "does not match the checksum written with it");
            }
        }

        if (file.Keys.Where(k => k != Key && !record.Entries.ContainsKey(k)).Order(StringComparer.Ordinal).FirstOrDefault() is { } extra)
        {
            throw new CheckpointCorruptException(path, extra, "is not in the checksum record");
        }

        return true;
    }

    private static string Hash(string name, Tensor tensor)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes(name));
        hash.AppendData([0, (byte)tensor.dtype, (byte)tensor.dim()]);
        foreach (long size in tensor.shape)
        {
            hash.AppendData(BitConverter.GetBytes(size));
        }

        using var scope = torch.NewDisposeScope();
        var host = tensor.device_type == DeviceType.CPU && tensor.is_contiguous() ? tensor : tensor.cpu().contiguous();
        hash.AppendData(host.bytes);
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private sealed record Record(string Algorithm, Dictionary<string, string> Entries);
}
