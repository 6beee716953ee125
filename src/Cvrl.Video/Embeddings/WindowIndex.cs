using System.Globalization;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Cvrl.Embeddings;

/// <summary>How the rows are read in the first pass of <see cref="WindowIndex.Search"/>.</summary>
public enum ScanPrecision
{
    /// <summary>Every row's float32 dot product with the query: exact.</summary>
    Float32,

    /// <summary>
    /// A quarter of the bytes: each row's int8 copy (one scale per row) against the query rounded to 12-bit integers;
    /// the best <see cref="IndexSearchOptions.Rerank"/> rows are then scored exactly from the float32 rows.
    /// </summary>
    Int8,
}

/// <summary>Options of <see cref="WindowIndex.Search"/>.</summary>
public sealed record IndexSearchOptions
{
    /// <summary>Hits to return. Default 10.</summary>
    public int Top { get; init; } = 10;

    /// <summary>How rows are read in the first pass. Default <see cref="ScanPrecision.Float32"/> (exact).</summary>
    public ScanPrecision Precision { get; init; } = ScanPrecision.Float32;

    /// <summary>
    /// With <see cref="ScanPrecision.Int8"/>: rows kept from the first pass and scored exactly (at least
    /// <see cref="Top"/>). Default 200.
    /// </summary>
    public int Rerank { get; init; } = 200;

    /// <summary>Threads scanning parts of the rows. Default: the cores, at most 16.</summary>
    public int Threads { get; init; } = Math.Clamp(Environment.ProcessorCount, 1, 16);

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        if (Top < 1 || Rerank < 1 || Threads < 1)
        {
            string name = Top < 1 ? nameof(Top) : Rerank < 1 ? nameof(Rerank) : nameof(Threads);
            throw new ArgumentOutOfRangeException(name, $"{name} must be at least 1.");
        }

        if (!Enum.IsDefined(Precision))
        {
            throw new ArgumentOutOfRangeException(nameof(Precision), Precision, "Unknown precision.");
        }
    }
}

/// <summary>A video in a <see cref="WindowIndex"/>: its key, frame rate and rows.</summary>
/// <param name="Key">The video's key (its path relative to the indexed folder).</param>
/// <param name="FramesPerSecond">The frame rate its container reports (0 when unknown).</param>
/// <param name="FirstRow">Its first window's row.</param>
/// <param name="Rows">Its windows.</param>
public readonly record struct IndexedVideo(string Key, double FramesPerSecond, int FirstRow, int Rows);

/// <summary>
/// Window features at scale: a folder of NumPy files read memory-mapped, so an index larger than memory is searched
/// from the page cache and disk. <c>index.json</c> names the files ("files": rows, int8, scales, spans) and holds the
/// videos (each a run of consecutive rows in time order), the encoder's fingerprint and the settings; the rows file
/// holds every window's L2-normalised feature (float32 <c>[windows, dim]</c>), the int8 and scales files an int8 copy
/// with one scale per row, the spans file each window's start and end in seconds (float64 <c>[windows, 2]</c>). Exact search
/// reads every row once, on several threads, keeping a bounded top-k per thread; the int8 pass reads a quarter of
/// the bytes and re-scores its best candidates exactly. Written by <see cref="WindowIndexWriter"/>.
/// </summary>
public sealed unsafe class WindowIndex : IDisposable
{
    /// <summary>The description file's name.</summary>
    public const string DescriptionFile = "index.json";

    internal const string FormatName = "cvrl-window-index-1";

    /// <summary>The largest integer a query component is rounded to in the int8 pass (12 bits, so sums of 8,000 products fit 32 bits).</summary>
    private const int QueryLevels = 2047;

    private readonly MappedArray _rows;
    private readonly MappedArray? _int8;
    private readonly float[]? _scales;
    private readonly double[] _spans;
    private readonly int[] _firstRows;

    private WindowIndex(string folder, int dim, string fingerprint, string metadata, IndexedVideo[] videos, MappedArray rows, MappedArray? int8, float[]? scales, double[] spans)
    {
        Folder = folder;
        Dim = dim;
        ModelFingerprint = fingerprint;
        Metadata = metadata;
        Videos = videos;
        _rows = rows;
        _int8 = int8;
        _scales = scales;
        _spans = spans;
        _firstRows = [.. videos.Select(v => v.FirstRow)];
        Count = videos.Length == 0 ? 0 : videos[^1].FirstRow + videos[^1].Rows;
    }

    /// <summary>The index's folder.</summary>
    public string Folder { get; }

    /// <summary>Feature dimension.</summary>
    public int Dim { get; }

    /// <summary>Windows (rows).</summary>
    public int Count { get; }

    /// <summary>Identifies the encoder that made the features.</summary>
    public string ModelFingerprint { get; }

    /// <summary>JSON stored with the index (views, windows, encoder), as a window set's metadata.</summary>
    public string Metadata { get; }

    /// <summary>The videos, in row order.</summary>
    public IReadOnlyList<IndexedVideo> Videos { get; }

    /// <summary>Whether the int8 copy is present (<see cref="ScanPrecision.Int8"/> needs it).</summary>
    public bool HasInt8 => _int8 is not null;

    /// <summary>Bytes of the float32 rows (what one exact search reads).</summary>
    public long RowBytes => (long)Count * Dim * sizeof(float);

    /// <summary>Whether <paramref name="folder"/> holds an index (its <see cref="DescriptionFile"/>).</summary>
    public static bool Exists(string folder) => File.Exists(Path.Combine(folder, DescriptionFile));

    /// <summary>Opens an index, mapping its rows (nothing is read until searched).</summary>
    /// <param name="folder">The index's folder.</param>
    /// <exception cref="FileNotFoundException">The folder holds no index.</exception>
    /// <exception cref="InvalidDataException">A file is damaged, of the wrong type or shape, or disagrees with the description; the message names it.</exception>
    public static WindowIndex Open(string folder)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        string description = Path.Combine(folder, DescriptionFile);
        if (!File.Exists(description))
        {
            throw new FileNotFoundException($"'{folder}' holds no window index ({DescriptionFile} is missing).", description);
        }

        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(description)) as JsonObject ?? throw new InvalidDataException($"'{description}' is not a JSON object.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{description}' is not readable JSON: {e.Message}", e);
        }

        if (json["format"]?.GetValue<string>() != FormatName)
        {
            throw new InvalidDataException($"'{description}' is not a {FormatName} description (format '{json["format"]}').");
        }

        int dim = json["dim"]?.GetValue<int>() ?? 0;
        long count = json["rows"]?.GetValue<long>() ?? -1;
        if (dim < 1 || count < 0 || count > int.MaxValue)
        {
            throw new InvalidDataException($"'{description}' gives {dim} dimensions and {count} rows.");
        }

        var videos = new List<IndexedVideo>();
        int next = 0;
        foreach (var node in json["videos"] as JsonArray ?? [])
        {
            var v = new IndexedVideo(node?["key"]?.GetValue<string>() ?? string.Empty, node?["fps"]?.GetValue<double>() ?? 0, node?["firstRow"]?.GetValue<int>() ?? -1, node?["rows"]?.GetValue<int>() ?? -1);
            if (v.Key.Length == 0 || v.FirstRow != next || v.Rows < 1)
            {
                throw new InvalidDataException($"'{description}': video {videos.Count} ('{v.Key}') starts at row {v.FirstRow} with {v.Rows} rows; row {next} and at least one row were expected.");
            }

            videos.Add(v);
            next += v.Rows;
        }

        if (next != count)
        {
            throw new InvalidDataException($"'{description}': its videos hold {next} rows, not the {count} it gives.");
        }

        string? FileOf(string name)
        {
            string? file = json["files"]?[name]?.GetValue<string>();
            return file is null ? null
                : file.Length > 0 && file == Path.GetFileName(file) && file.EndsWith(".npy", StringComparison.Ordinal) ? Path.Combine(folder, file)
                : throw new InvalidDataException($"'{description}' names '{file}' as its {name} file; a .npy file in the same folder was expected.");
        }

        string rowsFile = FileOf("rows") ?? throw new InvalidDataException($"'{description}' names no rows file.");
        string spansFile = FileOf("spans") ?? throw new InvalidDataException($"'{description}' names no spans file.");
        string? int8File = FileOf("int8");
        string? scalesFile = FileOf("scales");
        if ((int8File is null) != (scalesFile is null))
        {
            throw new InvalidDataException($"'{description}' names an int8 file without its scales, or scales without the int8 file.");
        }

        MappedArray? rows = null, int8 = null;
        try
        {
            rows = MappedArray.Open(rowsFile, "<f4", [count, dim], sizeof(float));
            int8 = int8File is null ? null : MappedArray.Open(int8File, "|i1", [count, dim], 1);
            float[]? scales = scalesFile is null ? null : ReadAll<float>(scalesFile, "<f4", [count]);
            double[] spans = ReadAll<double>(spansFile, "<f8", [count, 2]);
            return new WindowIndex(Path.GetFullPath(folder), dim, json["fingerprint"]?.GetValue<string>() ?? string.Empty, json["metadata"]?.ToJsonString() ?? "{}", [.. videos], rows, int8, scales, spans);
        }
        catch
        {
            rows?.Dispose();
            int8?.Dispose();
            throw;
        }
    }

    /// <summary>Row <paramref name="row"/>'s feature (L2-normalised).</summary>
    public ReadOnlySpan<float> Row(int row)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, Count);
        return new ReadOnlySpan<float>(RowPointer(row), Dim);
    }

    /// <summary>The video (its position in <see cref="Videos"/>) that row <paramref name="row"/> belongs to.</summary>
    public int VideoOf(int row)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, Count);
        int at = Array.BinarySearch(_firstRows, row);
        return at >= 0 ? at : ~at - 1;
    }

    /// <summary>Row <paramref name="row"/>'s window: start and end in seconds.</summary>
    public (double Start, double End) SpanOf(int row)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, Count);
        return (_spans[2 * row], _spans[(2 * row) + 1]);
    }

    /// <summary>Row <paramref name="row"/>'s key, as a window set keys it (<see cref="MomentKey"/>).</summary>
    public string KeyOf(int row)
    {
        var (start, end) = SpanOf(row);
        return MomentKey.Format(Videos[VideoOf(row)].Key, start, end);
    }

    /// <summary>
    /// The rows most similar to <paramref name="query"/> by cosine similarity, best first (ties by row). With
    /// <see cref="ScanPrecision.Float32"/> the result is exact; with <see cref="ScanPrecision.Int8"/> the first pass is
    /// approximate and its <see cref="IndexSearchOptions.Rerank"/> best rows are scored exactly, so a true neighbour is
    /// missed only when the int8 rounding pushes it out of those candidates.
    /// </summary>
    /// <param name="query">The query vector (any norm but zero).</param>
    /// <param name="options">Options (validated); null for the defaults.</param>
    /// <param name="exclude">Rows to leave out; null for none.</param>
    /// <returns>The hits, keyed as <see cref="KeyOf"/> keys them.</returns>
    /// <exception cref="ArgumentException">The query has the wrong length or is zero.</exception>
    /// <exception cref="InvalidOperationException">Int8 was asked for and the index has no int8 copy.</exception>
    public IReadOnlyList<SearchHit> Search(ReadOnlySpan<float> query, IndexSearchOptions? options = null, Func<int, bool>? exclude = null)
    {
        options ??= new IndexSearchOptions();
        options.Validate();
        float[] q = Normalized(query);
        List<(int Row, float Score)> best;
        if (options.Precision == ScanPrecision.Float32)
        {
            best = ScanFloat32(q, options.Top, options.Threads, exclude);
        }
        else
        {
            if (_int8 is null)
            {
                throw new InvalidOperationException($"The index in '{Folder}' has no int8 copy; search it with Float32 or rebuild it with one.");
            }

            var candidates = ScanInt8(q, Math.Max(options.Rerank, options.Top), options.Threads, exclude);
            best = [.. candidates.Select(c => (c.Row, Dot(RowPointer(c.Row), q))).OrderByDescending(c => c.Item2).ThenBy(c => c.Row).Take(options.Top)];
        }

        return [.. best.Select(b => new SearchHit(b.Row, KeyOf(b.Row), b.Score))];
    }

    /// <summary>Every row's cosine similarity with each query, in one pass over the rows: <c>[queries][rows]</c>.</summary>
    internal float[][] ScoreAll(IReadOnlyList<float[]> queries, int threads)
    {
        var qs = queries.Select(q => Normalized(q)).ToArray();
        var scores = qs.Select(_ => new float[Count]).ToArray();
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, part =>
        {
            var (from, to) = Part(part, threads);
            for (int r = from; r < to; r++)
            {
                float* row = RowPointer(r);
                for (int k = 0; k < qs.Length; k++)
                {
                    scores[k][r] = Dot(row, qs[k]);
                }
            }
        });
        return scores;
    }

    /// <summary>The rows of video <paramref name="video"/> whose windows overlap <c>[start, end)</c>.</summary>
    internal IEnumerable<int> RowsOverlapping(int video, double start, double end)
    {
        var v = Videos[video];
        for (int r = v.FirstRow; r < v.FirstRow + v.Rows; r++)
        {
            if (_spans[2 * r] < end && _spans[(2 * r) + 1] > start)
            {
                yield return r;
            }
        }
    }

    /// <summary>Unmaps the files.</summary>
    public void Dispose()
    {
        _rows.Dispose();
        _int8?.Dispose();
    }

    /// <summary>A dot product of <paramref name="a"/> and <paramref name="b"/> (length <c>b.Length</c>), vectorised with a fixed order of sums.</summary>
    internal static float Dot(float* a, ReadOnlySpan<float> b)
    {
        int n = b.Length;
        int i = 0;
        float sum = 0;
        fixed (float* pb = b)
        {
            if (Vector256.IsHardwareAccelerated && n >= 32)
            {
                Vector256<float> s0 = Vector256<float>.Zero, s1 = s0, s2 = s0, s3 = s0;
                for (; i <= n - 32; i += 32)
                {
                    s0 = Fma(Vector256.Load(a + i), Vector256.Load(pb + i), s0);
                    s1 = Fma(Vector256.Load(a + i + 8), Vector256.Load(pb + i + 8), s1);
                    s2 = Fma(Vector256.Load(a + i + 16), Vector256.Load(pb + i + 16), s2);
                    s3 = Fma(Vector256.Load(a + i + 24), Vector256.Load(pb + i + 24), s3);
                }

                sum = Vector256.Sum((s0 + s1) + (s2 + s3));
            }

            for (; i < n; i++)
            {
                sum += a[i] * pb[i];
            }
        }

        return sum;
    }

    /// <summary>An int8 row's dot product with a 16-bit query (AVX2: sign-extend 16 bytes, multiply-add pairs).</summary>
    internal static int DotInt8(sbyte* row, short* q, int n)
    {
        int i = 0;
        int sum = 0;
        if (Avx2.IsSupported && n >= 32)
        {
            Vector256<int> s0 = Vector256<int>.Zero, s1 = s0;
            for (; i <= n - 32; i += 32)
            {
                var r0 = Avx2.ConvertToVector256Int16(Sse2.LoadVector128(row + i));
                var r1 = Avx2.ConvertToVector256Int16(Sse2.LoadVector128(row + i + 16));
                s0 = Avx2.Add(s0, Avx2.MultiplyAddAdjacent(r0, Avx.LoadVector256(q + i)));
                s1 = Avx2.Add(s1, Avx2.MultiplyAddAdjacent(r1, Avx.LoadVector256(q + i + 16)));
            }

            sum = Vector256.Sum(Avx2.Add(s0, s1));
        }

        for (; i < n; i++)
        {
            sum += row[i] * q[i];
        }

        return sum;
    }

    private static Vector256<float> Fma(Vector256<float> a, Vector256<float> b, Vector256<float> c) =>
        System.Runtime.Intrinsics.X86.Fma.IsSupported ? System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a, b, c) : (a * b) + c;

    private float* RowPointer(int row) => (float*)_rows.Data + ((long)row * Dim);

    private float[] Normalized(ReadOnlySpan<float> query)
    {
        if (query.Length != Dim)
        {
            throw new ArgumentException($"The query has {query.Length} numbers; the index in '{Folder}' holds {Dim}-dimensional rows.", nameof(query));
        }

        double norm = 0;
        foreach (float x in query)
        {
            norm += (double)x * x;
        }

        norm = Math.Sqrt(norm);
        if (!(norm > 0) || !double.IsFinite(norm))
        {
            throw new ArgumentException("The query vector is zero (or not finite); cosine similarity is undefined.", nameof(query));
        }

        var q = new float[Dim];
        for (int d = 0; d < Dim; d++)
        {
            q[d] = (float)(query[d] / norm);
        }

        return q;
    }

    private (int From, int To) Part(int part, int parts) => ((int)((long)Count * part / parts), (int)((long)Count * (part + 1) / parts));

    private List<(int Row, float Score)> ScanFloat32(float[] q, int k, int threads, Func<int, bool>? exclude)
    {
        var tops = new TopK[threads];
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, part =>
        {
            var top = tops[part] = new TopK(k);
            var (from, to) = Part(part, threads);
            for (int r = from; r < to; r++)
            {
                float score = Dot(RowPointer(r), q);
                if (top.Admits(score, r) && exclude?.Invoke(r) != true)
                {
                    top.Add(score, r);
                }
            }
        });
        return TopK.Merge(tops, k);
    }

    private List<(int Row, float Score)> ScanInt8(float[] q, int k, int threads, Func<int, bool>? exclude)
    {
        // The query rounded to 12-bit integers (its largest component to 2047); a row's approximate score is
        // scale(row) * qScale * (integer dot product).
        float max = q.Max(Math.Abs);
        float qScale = max / QueryLevels;
        var q16 = new short[Dim];
        for (int d = 0; d < Dim; d++)
        {
            q16[d] = (short)Math.Round(q[d] / qScale);
        }

        var tops = new TopK[threads];
        sbyte* data = (sbyte*)_int8!.Data;
        float[] scales = _scales!;
        int dim = Dim;
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, part =>
        {
            var top = tops[part] = new TopK(k);
            var (from, to) = Part(part, threads);
            fixed (short* pq = q16)
            {
                for (int r = from; r < to; r++)
                {
                    float score = scales[r] * qScale * DotInt8(data + ((long)r * dim), pq, dim);
                    if (top.Admits(score, r) && exclude?.Invoke(r) != true)
                    {
                        top.Add(score, r);
                    }
                }
            }
        });
        return TopK.Merge(tops, k);
    }

    private static T[] ReadAll<T>(string path, string descr, long[] shape)
        where T : unmanaged
    {
        using var stream = File.OpenRead(path);
        var (found, foundShape, offset) = NpyFile.ReadHeader(stream, path);
        long count = shape.Aggregate(1L, (a, b) => a * b);
        if (found != descr || !foundShape.SequenceEqual(shape) || stream.Length != offset + (count * sizeof(T)))
        {
            throw new InvalidDataException($"'{path}' holds {found} ({string.Join(", ", foundShape)}) in {stream.Length - offset} bytes; {descr} ({string.Join(", ", shape)}) was expected.");
        }

        var values = new T[count];
        stream.ReadExactly(MemoryMarshal.AsBytes(values.AsSpan()));
        return values;
    }

    /// <summary>The k best (score descending, row ascending) of what one thread scanned: a bounded heap, worst on top.</summary>
    private sealed class TopK(int k)
    {
        private readonly PriorityQueue<int, (float Score, int Negative)> _heap = new(k + 1);
        private (float Score, int Negative) _worst = (float.NegativeInfinity, int.MinValue);

        public bool Admits(float score, int row) => _heap.Count < k || (score, -row).CompareTo(_worst) > 0;

        public void Add(float score, int row)
        {
            if (_heap.Count < k)
            {
                _heap.Enqueue(row, (score, -row));
            }
            else
            {
                _heap.DequeueEnqueue(row, (score, -row));
            }

            if (_heap.Count == k)
            {
                _heap.TryPeek(out _, out _worst);
            }
        }

        public static List<(int Row, float Score)> Merge(TopK?[] tops, int k)
        {
            var all = new List<(int Row, float Score)>();
            foreach (var top in tops)
            {
                if (top is not null)
                {
                    all.AddRange(top._heap.UnorderedItems.Select(x => (x.Element, x.Priority.Score)));
                }
            }

            return [.. all.OrderByDescending(x => x.Score).ThenBy(x => x.Row).Take(k)];
        }
    }

    /// <summary>An .npy file mapped read-only: its data's address, checked against the type and shape expected.</summary>
    private sealed class MappedArray : IDisposable
    {
        private readonly MemoryMappedFile _file;
        private readonly MemoryMappedViewAccessor _view;
        private byte* _base;

        private MappedArray(MemoryMappedFile file, MemoryMappedViewAccessor view, int offset)
        {
            _file = file;
            _view = view;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref _base);
            Data = _base + _view.PointerOffset + offset;
        }

        public byte* Data { get; }

        public static MappedArray Open(string path, string descr, long[] shape, int itemSize)
        {
            if (!File.Exists(path))
            {
                throw new InvalidDataException($"'{path}' is missing: the index is incomplete.");
            }

            int offset;
            long length;
            using (var stream = File.OpenRead(path))
            {
                var (found, foundShape, start) = NpyFile.ReadHeader(stream, path);
                long expected = start + (shape.Aggregate(1L, (a, b) => a * b) * itemSize);
                if (found != descr || !foundShape.SequenceEqual(shape) || stream.Length != expected)
                {
                    throw new InvalidDataException($"'{path}' holds {found} ({string.Join(", ", foundShape)}) in {stream.Length} bytes; {descr} ({string.Join(", ", shape)}) in {expected} bytes was expected.");
                }

                (offset, length) = (start, stream.Length);
            }

            var file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            try
            {
                return new MappedArray(file, file.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read), offset);
            }
            catch
            {
                file.Dispose();
                throw;
            }
        }

        public void Dispose()
        {
            if (_base is not null)
            {
                _view.SafeMemoryMappedViewHandle.ReleasePointer();
                _base = null;
            }

            _view.Dispose();
            _file.Dispose();
        }
    }
}

/// <summary>
/// Writes a <see cref="WindowIndex"/> one video at a time (nothing but the current video is held in memory): each
/// window's feature L2-normalised into the rows file, its int8 copy and scale, its span. The folder is locked
/// (<see cref="Video.FolderLock"/>) while writing; the files of a build carry a generation in their names and
/// <see cref="Complete"/> writes their shapes, then swaps <c>index.json</c> to name them (a rename), then deletes the
/// earlier generation, so an interrupted build leaves the earlier index whole and its own files are removed by the
/// next build.
/// </summary>
public sealed partial class WindowIndexWriter : IDisposable
{
    private readonly string _folder;
    private readonly string _generation;
    private readonly int _dim;
    private readonly string _fingerprint;
    private readonly Video.FolderLock _claim;
    private readonly Dictionary<string, FileStream> _files = new(StringComparer.Ordinal);
    private readonly List<IndexedVideo> _videos = [];
    private readonly HashSet<string> _keys = new(StringComparer.Ordinal);
    private readonly float[] _row;
    private readonly sbyte[] _quantised;
    private long _count;
    private bool _done;

    /// <summary>Starts an index in <paramref name="folder"/> (an earlier one there stays searchable until this one is complete).</summary>
    /// <param name="folder">The index's folder (created when missing).</param>
    /// <param name="dim">Feature dimension.</param>
    /// <param name="modelFingerprint">The encoder's fingerprint (queries made by another encoder are refused).</param>
    /// <param name="metadata">JSON stored with the index (views, windows, encoder); null for none.</param>
    /// <param name="int8">Also write the int8 copy (a quarter of the rows' bytes more on disk).</param>
    /// <exception cref="Video.FolderInUseException">Another run writes there.</exception>
    public WindowIndexWriter(string folder, int dim, string modelFingerprint, string? metadata = null, bool int8 = true)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dim);
        ArgumentNullException.ThrowIfNull(modelFingerprint);
        _folder = Path.GetFullPath(folder);
        _dim = dim;
        _fingerprint = modelFingerprint;
        Metadata = metadata ?? "{}";
        _claim = Video.FolderLock.Acquire(_folder, "writing a window index");
        try
        {
            RemoveStrays();
            _generation = Guid.NewGuid().ToString("N")[..8];
            _files["rows"] = Create("rows");
            _files["spans"] = Create("spans");
            if (int8)
            {
                _files["int8"] = Create("int8");
                _files["scales"] = Create("scales");
            }
        }
        catch
        {
            Dispose();
            throw;
        }

        _row = new float[dim];
        _quantised = new sbyte[dim];
    }

    /// <summary>Windows written so far.</summary>
    public long Count => _count;

    /// <summary>JSON stored with the index (views, windows, encoder); may be replaced until <see cref="Complete"/>.</summary>
    /// <exception cref="ArgumentException">Not a JSON object.</exception>
    public string Metadata
    {
        get;
        set => field = JsonNode.Parse(value) is JsonObject ? value : throw new ArgumentException("The metadata must be a JSON object.", nameof(value));
    }

    /// <summary>Adds one video's windows, in time order.</summary>
    /// <param name="video">The video's key (unique in the index).</param>
    /// <param name="framesPerSecond">Its frame rate (0 when unknown).</param>
    /// <param name="windows">Its windows, in order of start.</param>
    /// <param name="features">Row-major features <c>[windows, dim]</c> (any norm but zero).</param>
    /// <exception cref="ArgumentException">A key used twice, windows out of order, features of the wrong size or a zero or non-finite row; the message names the video and window.</exception>
    public void Add(string video, double framesPerSecond, IReadOnlyList<VideoWindow> windows, ReadOnlySpan<float> features)
    {
        ObjectDisposedException.ThrowIf(_done, this);
        ArgumentException.ThrowIfNullOrEmpty(video);
        ArgumentNullException.ThrowIfNull(windows);
        if (windows.Count == 0 || features.Length != (long)windows.Count * _dim)
        {
            throw new ArgumentException($"'{video}': {windows.Count} windows with {features.Length} feature values; [{windows.Count}, {_dim}] with at least one window was expected.", nameof(features));
        }

        if (_keys.Contains(video))
        {
            throw new ArgumentException($"'{video}' is in the index already.", nameof(video));
        }

        if (_count + windows.Count > int.MaxValue)
        {
            throw new ArgumentException($"'{video}' would take the index past {int.MaxValue} windows; split it into several indexes.", nameof(windows));
        }

        // Everything is checked before anything is written, so a refused video leaves the index as it was.
        for (int w = 0; w < windows.Count; w++)
        {
            var span = windows[w];
            if (!double.IsFinite(span.StartSeconds) || !(span.EndSeconds >= span.StartSeconds) || (w > 0 && span.StartSeconds < windows[w - 1].StartSeconds))
            {
                throw new ArgumentException($"'{video}': window {w} ({span}) is out of order or not a span.", nameof(windows));
            }

            if (!(Norm(features.Slice(w * _dim, _dim)) is > 0 and < double.PositiveInfinity))
            {
                throw new ArgumentException($"'{video}': window {w} ({span}) has a zero or non-finite feature.", nameof(features));
            }
        }

        for (int w = 0; w < windows.Count; w++)
        {
            var source = features.Slice(w * _dim, _dim);
            double norm = Norm(source);
            float max = 0;
            for (int d = 0; d < _dim; d++)
            {
                _row[d] = (float)(source[d] / norm);
                max = Math.Max(max, Math.Abs(_row[d]));
            }

            _files["rows"].Write(MemoryMarshal.AsBytes(_row.AsSpan()));
            _files["spans"].Write(MemoryMarshal.AsBytes<double>([windows[w].StartSeconds, windows[w].EndSeconds]));
            if (_files.TryGetValue("int8", out var int8))
            {
                float scale = max / 127;
                for (int d = 0; d < _dim; d++)
                {
                    _quantised[d] = (sbyte)Math.Clamp(Math.Round(_row[d] / scale), -127, 127);
                }

                int8.Write(MemoryMarshal.AsBytes(_quantised.AsSpan()));
                _files["scales"].Write(MemoryMarshal.AsBytes<float>([scale]));
            }
        }

        _keys.Add(video);
        _videos.Add(new IndexedVideo(video, framesPerSecond, (int)_count, windows.Count));
        _count += windows.Count;
    }

    /// <summary>Adds one video's dense features.</summary>
    public void Add(WindowFeatures features)
    {
        ArgumentNullException.ThrowIfNull(features);
        Add(features.Key, features.FramesPerSecond, features.Windows, features.Features);
    }

    /// <summary>Writes the shapes, flushes, makes <c>index.json</c> name this build's files, and removes the earlier build's.</summary>
    /// <exception cref="InvalidOperationException">No video was added.</exception>
    public void Complete()
    {
        ObjectDisposedException.ThrowIf(_done, this);
        if (_videos.Count == 0)
        {
            throw new InvalidOperationException("The index has no windows; add at least one video.");
        }

        var shapes = new Dictionary<string, (string Descr, long[] Shape)>
        {
            ["rows"] = ("<f4", [_count, _dim]),
            ["spans"] = ("<f8", [_count, 2]),
            ["int8"] = ("|i1", [_count, _dim]),
            ["scales"] = ("<f4", [_count]),
        };
        foreach (var (name, stream) in _files)
        {
            stream.Flush();
            stream.Position = 0;
            stream.Write(NpyFile.Header(shapes[name].Descr, shapes[name].Shape, NpyFile.ReservedHeader));
            stream.Flush(flushToDisk: true);
            stream.Dispose();
        }

        var description = new JsonObject
        {
            ["format"] = WindowIndex.FormatName,
            ["dim"] = _dim,
            ["rows"] = _count,
            ["fingerprint"] = _fingerprint,
            ["files"] = new JsonObject(_files.Keys.Order(StringComparer.Ordinal).Select(name => KeyValuePair.Create(name, (JsonNode?)FileName(name)))),
            ["layout"] = "rows: float32 [rows, dim], L2-normalised; int8: int8 [rows, dim] with scales: float32 [rows] (row ~ int8 * scale); spans: float64 [rows, 2], start and end in seconds; each video a run of rows in time order",
            ["metadata"] = JsonNode.Parse(Metadata),
            ["videos"] = new JsonArray([.. _videos.Select(v => (JsonNode?)new JsonObject { ["key"] = v.Key, ["fps"] = v.FramesPerSecond, ["firstRow"] = v.FirstRow, ["rows"] = v.Rows })]),
        };
        string text = description.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
        AtomicFile.Write(Path.Combine(_folder, WindowIndex.DescriptionFile), stream => stream.Write(System.Text.Encoding.UTF8.GetBytes(text)));
        _done = true;
        RemoveStrays();
        _claim.Dispose();
    }

    /// <summary>Closes the files and releases the folder; the files of a build not completed are deleted.</summary>
    public void Dispose()
    {
        foreach (var stream in _files.Values)
        {
            stream.Dispose();
        }

        if (!_done)
        {
            foreach (string name in _files.Keys)
            {
                File.Delete(Path.Combine(_folder, FileName(name)));
            }
        }

        _done = true;
        _claim?.Dispose();
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

    private string FileName(string name) => $"{name}-{_generation}.npy";

    private FileStream Create(string name)
    {
        var stream = new FileStream(Path.Combine(_folder, FileName(name)), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 20);
        stream.Write(new byte[NpyFile.ReservedHeader]); // the header, written with the shape by Complete
        return stream;
    }

    /// <summary>Deletes the .npy files of builds that the description does not name (earlier indexes, interrupted builds).</summary>
    private void RemoveStrays()
    {
        var named = new HashSet<string>(StringComparer.Ordinal);
        string description = Path.Combine(_folder, WindowIndex.DescriptionFile);
        try
        {
            if (File.Exists(description) && JsonNode.Parse(File.ReadAllText(description))?["files"] is JsonObject files)
            {
                foreach (var (_, value) in files)
                {
                    named.Add(value?.GetValue<string>() ?? string.Empty);
                }
            }
        }
        catch (JsonException)
        {
            // An unreadable description names nothing: its files are strays.
        }

        foreach (string path in Directory.EnumerateFiles(_folder, "*.npy"))
        {
            string name = Path.GetFileName(path);
            if (!named.Contains(name) && IndexFilePattern().IsMatch(name))
            {
                File.Delete(path);
            }
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex("^(rows|spans|int8|scales)-[0-9a-f]{8}\\.npy$")]
    private static partial System.Text.RegularExpressions.Regex IndexFilePattern();
}
