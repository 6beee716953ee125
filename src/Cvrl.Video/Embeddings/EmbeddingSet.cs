using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Text;

namespace Cvrl.Embeddings;

/// <summary>One search result.</summary>
/// <param name="Index">The item's position in the set.</param>
/// <param name="Key">The item's key (usually the video's path relative to the embedded folder).</param>
/// <param name="Score">Cosine similarity with the query, in [-1, 1].</param>
public readonly record struct SearchHit(int Index, string Key, float Score);

/// <summary>
/// A set of video embeddings with their keys, searchable by cosine similarity, stored in a small documented binary
/// file (".cvrlemb"; see <see cref="Save"/>). The model fingerprint records which encoder made the vectors, so that
/// queries made with another encoder are refused instead of silently returning nonsense.
/// </summary>
public sealed class EmbeddingSet
{
    /// <summary>The file's first eight bytes.</summary>
    public static ReadOnlySpan<byte> Magic => "CVRLEMB1"u8;

    private const int MaxKeyBytes = 1 << 16;
    private const int MaxMetadataBytes = 1 << 24;
    private readonly List<string> _keys = [];
    private readonly List<float[]> _vectors = [];
    private readonly List<double> _norms = [];
    private readonly Dictionary<string, int> _index = new(StringComparer.Ordinal);

    /// <summary>Creates an empty set.</summary>
    /// <param name="dim">Vector dimension.</param>
    /// <param name="modelFingerprint">Identifies the encoder that made the vectors (the <c>Fingerprint</c> of the embedder that made them).</param>
    /// <param name="metadata">Free-form JSON stored with the set (the embedding settings); null for none.</param>
    public EmbeddingSet(int dim, string modelFingerprint, string? metadata = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dim);
        ArgumentNullException.ThrowIfNull(modelFingerprint);
        Dim = dim;
        ModelFingerprint = modelFingerprint;
        Metadata = metadata ?? "{}";
    }

    /// <summary>Vector dimension.</summary>
    public int Dim { get; }

    /// <summary>Identifies the encoder that made the vectors.</summary>
    public string ModelFingerprint { get; }

    /// <summary>JSON stored with the set (embedding settings, encoder description).</summary>
    public string Metadata { get; }

    /// <summary>Number of items.</summary>
    public int Count => _keys.Count;

    /// <summary>The keys, in insertion order.</summary>
    public IReadOnlyList<string> Keys => _keys;

    /// <summary>The vector of item <paramref name="index"/>.</summary>
    public ReadOnlySpan<float> this[int index] => _vectors[index];

    /// <summary>The position of <paramref name="key"/>, or -1.</summary>
    public int IndexOf(string key) => _index.TryGetValue(key, out int i) ? i : -1;

    /// <summary>Adds an item.</summary>
    /// <exception cref="ArgumentException">The key is empty or already present, or the vector has the wrong length or a non-finite value.</exception>
    public void Add(string key, ReadOnlySpan<float> vector)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        if (vector.Length != Dim)
        {
            throw new ArgumentException($"The vector for '{key}' has {vector.Length} numbers; this set holds {Dim}-dimensional vectors.", nameof(vector));
        }

        foreach (float v in vector)
        {
            if (!float.IsFinite(v))
            {
                throw new ArgumentException($"The vector for '{key}' holds a non-finite value.", nameof(vector));
            }
        }

        if (Encoding.UTF8.GetByteCount(key) > MaxKeyBytes)
        {
            throw new ArgumentException($"Keys are limited to {MaxKeyBytes} UTF-8 bytes.", nameof(key));
        }

        if (!_index.TryAdd(key, _keys.Count))
        {
            throw new ArgumentException($"The set already holds '{key}'.", nameof(key));
        }

        _keys.Add(key);
        _vectors.Add(vector.ToArray());
        _norms.Add(Norm(vector));
    }

    /// <summary>The <paramref name="k"/> items most similar to <paramref name="query"/> by cosine similarity, best first (ties by position).</summary>
    /// <exception cref="ArgumentException">The query has the wrong length or is all zeros.</exception>
    public IReadOnlyList<SearchHit> Search(ReadOnlySpan<float> query, int k = 10)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(k);
        if (query.Length != Dim)
        {
            throw new ArgumentException($"The query has {query.Length} numbers; this set holds {Dim}-dimensional vectors.", nameof(query));
        }

        double queryNorm = Norm(query);
        if (!(queryNorm > 0))
        {
            throw new ArgumentException("The query vector is zero (or not finite); cosine similarity is undefined.", nameof(query));
        }

        return Top(query, queryNorm, k, exclude: -1);
    }

    /// <summary>
    /// The cosine similarity of <paramref name="query"/> with every item, in item order: the numbers <see cref="Search"/>
    /// ranks (the same arithmetic), for callers that rank or group them themselves (moment search).
    /// </summary>
    /// <exception cref="ArgumentException">The query has the wrong length or is all zeros.</exception>
    public float[] Scores(ReadOnlySpan<float> query)
    {
        if (query.Length != Dim)
        {
            throw new ArgumentException($"The query has {query.Length} numbers; this set holds {Dim}-dimensional vectors.", nameof(query));
        }

        double queryNorm = Norm(query);
        if (!(queryNorm > 0))
        {
            throw new ArgumentException("The query vector is zero (or not finite); cosine similarity is undefined.", nameof(query));
        }

        var scores = new float[Count];
        for (int i = 0; i < Count; i++)
        {
            scores[i] = Score(query, queryNorm, i);
        }

        return scores;
    }

    /// <summary>
    /// The <paramref name="k"/> items most similar to item <paramref name="index"/>, leaving the item itself out: the
    /// list <see cref="Search"/> returns for the item's vector, without the item. Scores are computed by the same
    /// arithmetic as <see cref="Search"/>, so they are the same numbers.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The index is outside the set, or <paramref name="k"/> is not positive.</exception>
    /// <exception cref="ArgumentException">The item's vector is all zeros.</exception>
    public IReadOnlyList<SearchHit> Neighbours(int index, int k = 10)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(k);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        if (!(_norms[index] > 0))
        {
            throw new ArgumentException($"The vector of '{_keys[index]}' is zero; cosine similarity is undefined.", nameof(index));
        }

        return Top(_vectors[index], _norms[index], k, exclude: index);
    }

    private SearchHit[] Top(ReadOnlySpan<float> query, double queryNorm, int k, int exclude)
    {
        // A bounded selection (k is small next to the set): keep the best k by (score descending, position ascending).
        int keep = Math.Min(k, Count - (exclude >= 0 ? 1 : 0));
        var best = new List<(float Score, int Index)>(keep + 1);
        for (int i = 0; i < Count; i++)
        {
            if (i == exclude)
            {
                continue;
            }

            float score = Score(query, queryNorm, i);
            if (best.Count == keep && (keep == 0 || score <= best[^1].Score))
            {
                continue; // not better than the worst kept (equal scores: the earlier position wins)
            }

            int at = best.Count;
            while (at > 0 && score > best[at - 1].Score)
            {
                at--;
            }

            best.Insert(at, (score, i));
            if (best.Count > keep)
            {
                best.RemoveAt(best.Count - 1);
            }
        }

        return [.. best.Select(s => new SearchHit(s.Index, _keys[s.Index], s.Score))];
    }

    private float Score(ReadOnlySpan<float> query, double queryNorm, int i)
    {
        double norm = _norms[i];
        return norm > 0 ? (float)(Dot(query, _vectors[i]) / (queryNorm * norm)) : 0f;
    }

    /// <summary>
    /// A dot product accumulated in double precision in a fixed order (eight lanes, then the lanes in order, then the
    /// tail), so that the same two vectors give the same bits on every machine, with or without vector hardware.
    /// </summary>
    private static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var lo = Vector256<double>.Zero;
        var hi = Vector256<double>.Zero;
        int d = 0;
        for (; d + 8 <= a.Length; d += 8)
        {
            var x = Vector256.Create(a.Slice(d, 8));
            var y = Vector256.Create(b.Slice(d, 8));
            var (xl, xh) = Vector256.Widen(x);
            var (yl, yh) = Vector256.Widen(y);
            lo += xl * yl;
            hi += xh * yh;
        }

        double sum = 0;
        for (int lane = 0; lane < 4; lane++)
        {
            sum += lo.GetElement(lane);
            sum += hi.GetElement(lane);
        }

        for (; d < a.Length; d++)
        {
            sum += (double)a[d] * b[d];
        }

        return sum;
    }

    /// <summary>
    /// Writes the set atomically. Format (all integers little-endian): the 8 ASCII bytes "CVRLEMB1"; int32 item count N;
    /// int32 dimension D; int32 byte length F and F bytes of UTF-8 model fingerprint; int32 byte length M and M bytes of
    /// UTF-8 JSON metadata; N keys, each an int32 byte length and UTF-8 bytes; N x D float32 vectors, row by row. Nothing
    /// follows.
    /// </summary>
    public void Save(string path)
    {
        AtomicFile.Write(path, stream =>
        {
            using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
            writer.Write(Magic);
            writer.Write(Count);
            writer.Write(Dim);
            WriteString(writer, ModelFingerprint);
            WriteString(writer, Metadata);
            foreach (var key in _keys)
            {
                WriteString(writer, key);
            }

            var row = new byte[Dim * sizeof(float)];
            foreach (var v in _vectors)
            {
                if (BitConverter.IsLittleEndian)
                {
                    MemoryMarshal.AsBytes(v.AsSpan()).CopyTo(row);
                }
                else
                {
                    for (int d = 0; d < Dim; d++)
                    {
                        BinaryPrimitives.WriteSingleLittleEndian(row.AsSpan(d * sizeof(float)), v[d]);
                    }
                }

                writer.Write(row);
            }
        });
    }

    /// <summary>The largest dimension a file may declare (far beyond any encoder's 2048 to 8192).</summary>
    private const int MaxDimension = 1 << 20;

    /// <summary>Reads a set written by <see cref="Save"/>.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not an embedding set, or is truncated or corrupt; the message names it.</exception>
    public static EmbeddingSet Load(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        try
        {
            var magic = ReadExactly(stream, Magic.Length, "header");
            if (!magic.AsSpan().SequenceEqual(Magic))
            {
                throw new InvalidDataException("it does not start with CVRLEMB1, so it is not a Cvrl embedding file");
            }

            int count = ReadInt(stream, "item count");
            int dim = ReadInt(stream, "dimension");
            if (count < 0 || dim < 1)
            {
                throw new InvalidDataException($"it declares {count} items of dimension {dim}");
            }

            string fingerprint = ReadString(stream, MaxKeyBytes, "model fingerprint");
            string metadata = ReadString(stream, MaxMetadataBytes, "metadata");

            // Each item takes at least its key's length word and its vector: a count or dimension the file cannot hold
            // is refused before anything is allocated for it.
            long left = stream.Length - stream.Position;
            if (dim > MaxDimension || (count > 0 && (long)count * (sizeof(int) + ((long)dim * sizeof(float))) > left))
            {
                throw new InvalidDataException($"it declares {count} items of dimension {dim}, more than its {left} remaining bytes can hold");
            }

            var set = new EmbeddingSet(dim, fingerprint, metadata);
            var keys = new string[count];
            for (int i = 0; i < count; i++)
            {
                keys[i] = ReadString(stream, MaxKeyBytes, $"key {i}");
            }

            long vectorBytes = (long)count * dim * sizeof(float);
            if (stream.Length - stream.Position != vectorBytes)
            {
                throw new InvalidDataException($"it should hold {vectorBytes} bytes of vectors after the keys but holds {stream.Length - stream.Position} (truncated or corrupt)");
            }

            var row = new byte[dim * sizeof(float)];
            var v = new float[dim];
            for (int i = 0; i < count; i++)
            {
                stream.ReadExactly(row);
                for (int d = 0; d < dim; d++)
                {
                    v[d] = BinaryPrimitives.ReadSingleLittleEndian(row.AsSpan(d * sizeof(float)));
                }

                set.Add(keys[i], v);
            }

            return set;
        }
        catch (Exception e) when (e is InvalidDataException or ArgumentException or EndOfStreamException)
        {
            throw new InvalidDataException($"Embedding file '{path}' cannot be read: {e.Message.TrimEnd('.')}.", e);
        }
    }

    private static double Norm(ReadOnlySpan<float> v)
    {
        double sum = 0;
        foreach (float x in v)
        {
            sum += (double)x * x;
        }

        return Math.Sqrt(sum);
    }

    private static void WriteString(BinaryWriter writer, string value)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(value);
        writer.Write(bytes.Length);
        writer.Write(bytes);
    }

    private static byte[] ReadExactly(Stream stream, int length, string what)
    {
        if (stream.Length - stream.Position < length)
        {
            throw new InvalidDataException($"it ends inside its {what} (truncated)");
        }

        var buffer = new byte[length];
        stream.ReadExactly(buffer);
        return buffer;
    }

    private static int ReadInt(Stream stream, string what) => BinaryPrimitives.ReadInt32LittleEndian(ReadExactly(stream, sizeof(int), what));

    private static string ReadString(Stream stream, int max, string what)
    {
        int length = ReadInt(stream, what + " length");
        if (length < 0 || length > max)
        {
            throw new InvalidDataException($"its {what} has an invalid length {length} (corrupt)");
        }

        return Encoding.UTF8.GetString(ReadExactly(stream, length, what));
    }
}
