using System.Diagnostics;
using System.Globalization;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Cvrl.Embeddings;

namespace Cvrl.Benchmarks;

/// <summary>
/// Issue 29's scale benchmark: exact moment search over a million 512-d windows (a <see cref="WindowIndex"/>, its rows
/// memory-mapped) against the physical limit measured in the same run, a plain sum over the same mapped array on the
/// same threads; memory as resident bytes against the float32 rows; the int8 first pass with exact re-scoring, its
/// recall of the exact top 10; and both from a cold page cache (the rows evicted, as for an index larger than memory).
/// Data: generated videos of 1,000 windows each, each a slow random walk (neighbouring windows alike, as real window
/// features are); queries: windows plus noise (cosine about 0.9 with their source).
/// </summary>
internal static partial class IndexBenchmark
{
    public static int Run(string[] args)
    {
        int rows = AugmentBenchmark.Option(args, "--rows", 1_000_000);
        int dim = AugmentBenchmark.Option(args, "--dim", 512);
        int queries = AugmentBenchmark.Option(args, "--queries", 20);
        int threads = AugmentBenchmark.Option(args, "--threads", Environment.ProcessorCount);
        int rerank = AugmentBenchmark.Option(args, "--rerank", 100);
        string dir = AugmentBenchmark.OptionText(args, "--dir", Path.Combine(Path.GetTempPath(), "cvrl-bench-index"));
        var ci = CultureInfo.InvariantCulture;
        string folder = Path.Combine(dir, $"index-{rows}x{dim}");

        var build = Stopwatch.StartNew();
        if (!WindowIndex.Exists(folder))
        {
            Generate(folder, rows, dim);
        }

        double buildSeconds = build.Elapsed.TotalSeconds;
        Collect();
        double rssBefore = Machine.RssMiB();
        double anonBefore = AnonMiB();
        var random = new Random(7);
        List<float[]> qs;
        double rowMiB;

        // The int8 pass first, in its own mapping, so that only its pages (and the re-scored rows) are resident.
        var int8Options = new IndexSearchOptions { Top = 10, Precision = ScanPrecision.Int8, Rerank = rerank, Threads = threads };
        var int8Times = new List<double>();
        var int8Hits = new List<IReadOnlyList<SearchHit>>();
        double rssInt8;
        using (var index = WindowIndex.Open(folder))
        {
            rowMiB = index.RowBytes / 1048576.0;
            qs = [.. Enumerable.Range(0, queries).Select(_ => Query(index, random))];
            _ = index.Search(qs[0], int8Options);
            foreach (var q in qs)
            {
                var w = Stopwatch.StartNew();
                int8Hits.Add(index.Search(q, int8Options));
                int8Times.Add(w.Elapsed.TotalMilliseconds);
            }

            rssInt8 = Machine.RssMiB() - rssBefore;
        }

        Collect();
        double rssUnmapped = Machine.RssMiB();

        // The physical limit: every float32 of the same mapped rows summed once, on the same threads, warm.
        var sumTimes = new List<double>();
        double total = 0;
        for (int r = 0; r < 5; r++)
        {
            var w = Stopwatch.StartNew();
            total = PlainSum(folder, threads);
            sumTimes.Add(w.Elapsed.TotalMilliseconds);
        }

        Collect();
        var exactOptions = new IndexSearchOptions { Top = 10, Threads = threads };
        var exactTimes = new List<double>();
        var exactHits = new List<IReadOnlyList<SearchHit>>();
        double rssExact, anon;
        double rssStart = Machine.RssMiB();
        using (var index = WindowIndex.Open(folder))
        {
            _ = index.Search(qs[0], exactOptions);
            foreach (var q in qs)
            {
                var w = Stopwatch.StartNew();
                exactHits.Add(index.Search(q, exactOptions));
                exactTimes.Add(w.Elapsed.TotalMilliseconds);
            }

            rssExact = Machine.RssMiB() - rssStart;
            anon = AnonMiB() - anonBefore;
        }

        var recalls = exactHits.Zip(int8Hits, (e, a) => e.Select(h => h.Index).Intersect(a.Select(h => h.Index)).Count() / 10.0).ToList();
        bool sameScores = exactHits.Zip(int8Hits).All(p => p.First.SequenceEqual(p.Second));
        Console.Error.WriteLine(string.Create(ci, $"index: resident before {rssBefore:0} MiB, after unmapping the int8 pass {rssUnmapped:0} MiB, before the exact pass {rssStart:0} MiB"));

        // Cold: the files' pages evicted (unmapped first), then one search of each kind reads them from disk.
        var (coldExact, coldInt8) = Cold(folder, qs[1], exactOptions, int8Options);

        double sum = Machine.Median(sumTimes), exact = Machine.Median(exactTimes), int8 = Machine.Median(int8Times);
        Console.WriteLine("### Moment search at scale: exact, int8 first pass, cold (issue 29)");
        Console.WriteLine();
        Console.WriteLine($"Command: `dotnet run -c Release --project benchmarks/Cvrl.Benchmarks -- index --rows {rows} --dim {dim} --queries {queries} --threads {threads} --rerank {rerank}`  ");
        Console.WriteLine($"Machine: {Machine.Describe()}  ");
        Console.WriteLine(string.Create(ci, $"Data: {rows:N0} windows x {dim} (float32 rows {rowMiB:N0} MiB; int8 copy {rowMiB / 4:N0} MiB) in {rows / 1000:N0} generated videos of random-walk windows, built in {buildSeconds:0} s (0 when reused); {queries} queries, each a window plus noise; {threads} threads; medians. Limit (same run): a plain vectorised sum of the same mapped float32 rows on the same threads (sum {total:0.###E+0})."));
        Console.WriteLine();
        Console.WriteLine("| pass | per query | vs plain sum | rows/s | memory resident (vs float32 rows) | recall of the exact top 10 |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|");
        Console.WriteLine(string.Create(ci, $"| plain sum of the rows (limit) | {sum:0} ms | 1.00x | {rows / sum * 1000:0.00E+0} | | |"));
        Console.WriteLine(string.Create(ci, $"| exact float32 scan, top 10 | {exact:0} ms | {exact / sum:0.00}x | {rows / exact * 1000:0.00E+0} | {rssExact:N0} MiB ({rssExact / rowMiB:0.00}x; of the process, {anon:0} MiB not file-backed) | 100% (by definition) |"));
        Console.WriteLine(string.Create(ci, $"| int8 scan + exact re-scoring of {rerank} | {int8:0} ms | {int8 / sum:0.00}x | {rows / int8 * 1000:0.00E+0} | {rssInt8:N0} MiB ({rssInt8 / rowMiB:0.00}x) | {100 * recalls.Average():0.0}% (lowest {100 * recalls.Min():0}%){(sameScores ? ", same scores" : string.Empty)} |"));
        Console.WriteLine(string.Create(ci, $"| exact, cold page cache | {coldExact:0} ms | {coldExact / sum:0.00}x | {rows / coldExact * 1000:0.00E+0} | | |"));
        Console.WriteLine(string.Create(ci, $"| int8 + re-scoring, cold | {coldInt8:0} ms | {coldInt8 / sum:0.00}x | {rows / coldInt8 * 1000:0.00E+0} | | |"));
        Console.WriteLine();
        return 0;
    }

    /// <summary>A window plus Gaussian noise of norm about 0.5 (cosine about 0.9 with it).</summary>
    private static float[] Query(WindowIndex index, Random random)
    {
        float[] row = index.Row(random.Next(index.Count)).ToArray();
        double sigma = 0.5 / Math.Sqrt(index.Dim);
        return [.. row.Select(x => x + (float)(sigma * Gaussian(random)))];
    }

    private static void Generate(string folder, int rows, int dim)
    {
        const int perVideo = 1000;
        var random = new Random(1);
        using var writer = new WindowIndexWriter(folder, dim, "benchmark", "{\"generated\": true}");
        var point = new double[dim];
        var features = new float[perVideo * dim];
        for (int v = 0; v * perVideo < rows; v++)
        {
            int n = Math.Min(perVideo, rows - (v * perVideo));
            for (int d = 0; d < dim; d++)
            {
                point[d] = Gaussian(random);
            }

            var windows = new VideoWindow[n];
            for (int w = 0; w < n; w++)
            {
                for (int d = 0; d < dim; d++)
                {
                    point[d] += 0.15 * Gaussian(random);
                    features[(w * dim) + d] = (float)point[d];
                }

                windows[w] = new VideoWindow(w * 6, w * 0.25, (w * 0.25) + 0.64);
            }

            writer.Add($"video{v:D5}.mp4", 24, windows, features.AsSpan(0, n * dim));
        }

        writer.Complete();
    }

    /// <summary>Every float32 of the rows file, summed once with vectors on <paramref name="threads"/> threads (contiguous parts).</summary>
    private static unsafe double PlainSum(string folder, int threads)
    {
        string path = Directory.GetFiles(folder, "rows-*.npy").Single();
        using var file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        using var view = file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* basePointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePointer);
        try
        {
            float* data = (float*)(basePointer + view.PointerOffset + NpyFile.ReservedHeader);
            long count = (new FileInfo(path).Length - NpyFile.ReservedHeader) / sizeof(float);
            var sums = new double[threads];
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, part =>
            {
                long from = count * part / threads, to = count * (part + 1) / threads;
                Vector256<float> s0 = Vector256<float>.Zero, s1 = s0, s2 = s0, s3 = s0;
                long i = from;
                for (; i + 32 <= to; i += 32)
                {
                    s0 += Vector256.Load(data + i);
                    s1 += Vector256.Load(data + i + 8);
                    s2 += Vector256.Load(data + i + 16);
                    s3 += Vector256.Load(data + i + 24);
                }

                double s = Vector256.Sum((s0 + s1) + (s2 + s3));
                for (; i < to; i++)
                {
                    s += data[i];
                }

                sums[part] = s;
            });
            return sums.Sum();
        }
        finally
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
    }

    /// <summary>One exact and one int8 search, each after evicting the index's files from the page cache.</summary>
    private static (double Exact, double Int8) Cold(string folder, float[] query, IndexSearchOptions exact, IndexSearchOptions int8)
    {
        double Once(IndexSearchOptions options)
        {
            Evict(folder);
            using var index = WindowIndex.Open(folder);
            var w = Stopwatch.StartNew();
            _ = index.Search(query, options);
            return w.Elapsed.TotalMilliseconds;
        }

        return (Once(exact), Once(int8));
    }

    /// <summary>Asks the kernel to drop the cached pages of every file of the index (posix_fadvise DONTNEED; nothing maps them now).</summary>
    private static void Evict(string folder)
    {
        foreach (string path in Directory.GetFiles(folder, "*.npy"))
        {
            using var handle = File.OpenHandle(path);
            int result = PosixFadvise((int)handle.DangerousGetHandle(), 0, 0, 4); // POSIX_FADV_DONTNEED
            if (result != 0)
            {
                Console.Error.WriteLine($"index: posix_fadvise returned {result} for {path}; the cold rows may be warm");
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "posix_fadvise")]
    private static partial int PosixFadvise(int fd, long offset, long length, int advice);

    private static void Collect()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    /// <summary>Resident memory not backed by files (RssAnon) in MiB.</summary>
    private static double AnonMiB()
    {
        string? line = File.Exists("/proc/self/status") ? File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("RssAnon:", StringComparison.Ordinal)) : null;
        return line is null ? double.NaN : double.Parse(line["RssAnon:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024.0;
    }

    private static double Gaussian(Random random) => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
