using Cvrl.Embeddings;
using Cvrl.Testing;
using Cvrl.Video;

namespace Cvrl.Tests;

/// <summary>
/// Window indexes: exact search ranks as an embedding set does (on any number of threads), the int8 pass with re-scoring
/// finds the same top 10, NumPy reads the files, an interrupted build leaves the earlier index whole, a second writer is
/// refused, and damaged files are refused by name.
/// </summary>
public sealed class WindowIndexTests
{
    /// <summary>70 dimensions: not a multiple of the vector kernels' 32, so their tails are exercised.</summary>
    private const int Dim = 70;

    [Fact]
    public void Exact_search_ranks_as_the_embedding_set_and_int8_with_rescoring_finds_the_same_top_ten()
    {
        using var dir = new TempDirectory();
        var (set, videos) = Windows(seed: 1, videoCount: 4, windowsPerVideo: 300);
        using var index = Build(dir.File("index"), videos, int8: true);
        Assert.Equal(set.Count, index.Count);
        Assert.Equal(Enumerable.Range(0, set.Count).Select(i => set.Keys[i]), Enumerable.Range(0, index.Count).Select(index.KeyOf));

        var random = new Random(2);
        for (int trial = 0; trial < 10; trial++)
        {
            // A query near a window (a window plus noise), as a query clip near a moment of the library is.
            float[] query = [.. set[random.Next(set.Count)].ToArray().Select(x => x + (float)(0.3 * Gaussian(random)))];
            var expected = set.Search(query, 10);
            var one = index.Search(query, new IndexSearchOptions { Top = 10, Threads = 1 });
            var three = index.Search(query, new IndexSearchOptions { Top = 10, Threads = 3 });
            Assert.Equal(expected.Select(h => h.Key), one.Select(h => h.Key));
            Assert.Equal(one, three); // the same rows, scores and order whatever the threads
            for (int k = 0; k < 10; k++)
            {
                // Float32 dot products of unit vectors (70 terms, each rounded once) against the set's double sums.
                TorchAssert.Near(expected[k].Score, one[k].Score, 1e-5, 1e-6);
            }

            var int8 = index.Search(query, new IndexSearchOptions { Top = 10, Precision = ScanPrecision.Int8, Rerank = 50 });
            Assert.Equal(one, int8); // re-scored exactly: the same hits and the same float32 scores
        }

        // Rows left out are never returned.
        var all = index.Search(set[0], new IndexSearchOptions { Top = 5 }, exclude: r => r < 300);
        Assert.All(all, h => Assert.True(h.Index >= 300));
    }

    [Fact]
    public void The_files_load_in_numpy_with_unit_rows_and_the_spans()
    {
        using var dir = new TempDirectory();
        var (_, videos) = Windows(seed: 3, videoCount: 2, windowsPerVideo: 7);
        using var index = Build(dir.File("index"), videos, int8: true);
        string script = $$"""
            import json, numpy
            d = json.load(open('{{dir.File("index")}}/index.json'))
            f = d['files']
            rows = numpy.load('{{dir.File("index")}}/' + f['rows'], mmap_mode='r')
            spans = numpy.load('{{dir.File("index")}}/' + f['spans'])
            q = numpy.load('{{dir.File("index")}}/' + f['int8']).astype(numpy.float64) * numpy.load('{{dir.File("index")}}/' + f['scales'])[:, None]
            print(rows.dtype, rows.shape, spans.dtype, spans.shape, float(numpy.abs(numpy.linalg.norm(rows, axis=1) - 1).max()) < 1e-6, float(numpy.abs(q - rows).max()) <= 0.5 / 127, repr(float(spans[8, 0])), repr(float(rows[3, 5])))
            """;
        string output = Python(script);
        Assert.Equal(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"float32 (14, {Dim}) float64 (14, 2) True True {index.SpanOf(8).Start:R} {(double)index.Row(3)[5]:R}"), output);
    }

    [Fact]
    public void An_interrupted_build_leaves_the_earlier_index_whole_and_a_second_writer_is_refused()
    {
        using var dir = new TempDirectory();
        string folder = dir.File("index");
        var (_, first) = Windows(seed: 4, videoCount: 2, windowsPerVideo: 20);
        Build(folder, first, int8: false).Dispose();
        var filesBefore = Directory.GetFiles(folder, "*.npy").Select(Path.GetFileName).Order().ToList();

        var (_, second) = Windows(seed: 5, videoCount: 3, windowsPerVideo: 50);
        using (var writer = new WindowIndexWriter(folder, Dim, "test"))
        {
            writer.Add(second[0].Key, 25, second[0].Windows, second[0].Features);
            Assert.Throws<FolderInUseException>(() => new WindowIndexWriter(folder, Dim, "test"));

            // Searchable meanwhile: the earlier index.
            using var during = WindowIndex.Open(folder);
            Assert.Equal(40, during.Count);
        } // disposed without Complete: an interrupted build

        using (var after = WindowIndex.Open(folder))
        {
            Assert.Equal(40, after.Count);
            Assert.Equal(first.Select(v => v.Key), after.Videos.Select(v => v.Key));
        }

        Assert.Equal(filesBefore, Directory.GetFiles(folder, "*.npy").Select(Path.GetFileName).Order().ToList());

        // A complete rebuild replaces it and removes the earlier files.
        using (var rebuilt = Build(folder, second, int8: true))
        {
            Assert.Equal(150, rebuilt.Count);
            Assert.True(rebuilt.HasInt8);
        }

        var filesAfter = Directory.GetFiles(folder, "*.npy").Select(Path.GetFileName).ToList();
        Assert.Equal(4, filesAfter.Count);
        Assert.Empty(filesAfter.Intersect(filesBefore));
    }

    [Fact]
    public void Damaged_indexes_and_bad_rows_are_refused_by_name()
    {
        using var dir = new TempDirectory();
        string folder = dir.File("index");
        var (_, videos) = Windows(seed: 6, videoCount: 2, windowsPerVideo: 10);
        using (var writer = new WindowIndexWriter(folder, Dim, "test"))
        {
            writer.Add(videos[0].Key, 25, videos[0].Windows, videos[0].Features);

            // Refused before anything is written: the index keeps its 10 rows.
            var e = Assert.Throws<ArgumentException>(() => writer.Add(videos[0].Key, 25, videos[0].Windows, videos[0].Features));
            Assert.Contains(videos[0].Key, e.Message, StringComparison.Ordinal);
            float[] zero = [.. videos[1].Features];
            Array.Clear(zero, 3 * Dim, Dim);
            e = Assert.Throws<ArgumentException>(() => writer.Add(videos[1].Key, 25, videos[1].Windows, zero));
            Assert.Contains("window 3", e.Message, StringComparison.Ordinal);
            var backwards = Enumerable.Reverse(videos[1].Windows).ToList();
            e = Assert.Throws<ArgumentException>(() => writer.Add(videos[1].Key, 25, backwards, videos[1].Features));
            Assert.Contains("out of order", e.Message, StringComparison.Ordinal);
            Assert.Equal(10, writer.Count);
            writer.Add(videos[1].Key, 25, videos[1].Windows, videos[1].Features);
            writer.Complete();
        }

        using (var index = WindowIndex.Open(folder))
        {
            Assert.Throws<ArgumentException>(() => index.Search(new float[Dim]));
            Assert.Throws<ArgumentException>(() => index.Search(new float[Dim + 1]));
            Assert.True(index.HasInt8); // the default
        }

        using (var plain = Build(dir.File("plain"), videos, int8: false))
        {
            var e = Assert.Throws<InvalidOperationException>(() => plain.Search(videos[0].Features.AsSpan(0, Dim), new IndexSearchOptions { Precision = ScanPrecision.Int8 }));
            Assert.Contains("int8", e.Message, StringComparison.Ordinal);
        }

        string rows = Directory.GetFiles(folder, "rows-*.npy").Single();
        using (var stream = new FileStream(rows, FileMode.Open))
        {
            stream.SetLength(stream.Length - 4);
        }

        var damaged = Assert.Throws<InvalidDataException>(() => WindowIndex.Open(folder));
        Assert.Contains(Path.GetFileName(rows), damaged.Message, StringComparison.Ordinal);

        string description = Path.Combine(folder, WindowIndex.DescriptionFile);
        File.WriteAllText(description, File.ReadAllText(description).Replace(Path.GetFileName(rows), "../elsewhere.npy", StringComparison.Ordinal));
        damaged = Assert.Throws<InvalidDataException>(() => WindowIndex.Open(folder));
        Assert.Contains("../elsewhere.npy", damaged.Message, StringComparison.Ordinal);
        Assert.Throws<FileNotFoundException>(() => WindowIndex.Open(dir.File("nothing")));
    }

    /// <summary>Windows of generated videos: each video a slow random walk (neighbouring windows alike), as features of real footage are.</summary>
    internal static (EmbeddingSet Set, List<(string Key, List<VideoWindow> Windows, float[] Features)> Videos) Windows(int seed, int videoCount, int windowsPerVideo)
    {
        var random = new Random(seed);
        var set = new EmbeddingSet(Dim, "test");
        var videos = new List<(string, List<VideoWindow>, float[])>();
        for (int v = 0; v < videoCount; v++)
        {
            string key = $"camera {v}/clip{v:D2}.mp4";
            var point = Enumerable.Range(0, Dim).Select(_ => Gaussian(random)).ToArray();
            var windows = new List<VideoWindow>();
            var features = new float[windowsPerVideo * Dim];
            for (int w = 0; w < windowsPerVideo; w++)
            {
                for (int d = 0; d < Dim; d++)
                {
                    point[d] += 0.25 * Gaussian(random);
                    features[(w * Dim) + d] = (float)point[d];
                }

                var window = new VideoWindow(w * 8, w * 8 / 25.0, ((w * 8) + 16) / 25.0);
                windows.Add(window);
                set.Add(MomentKey.Format(key, window.StartSeconds, window.EndSeconds), features.AsSpan(w * Dim, Dim));
            }

            videos.Add((key, windows, features));
        }

        return (set, videos);
    }

    internal static WindowIndex Build(string folder, IEnumerable<(string Key, List<VideoWindow> Windows, float[] Features)> videos, bool int8)
    {
        using (var writer = new WindowIndexWriter(folder, Dim, "test", "{\"note\": \"generated\"}", int8))
        {
            foreach (var (key, windows, features) in videos)
            {
                writer.Add(key, 25, windows, features);
            }

            writer.Complete();
        }

        return WindowIndex.Open(folder);
    }

    private static double Gaussian(Random random) => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    /// <summary>Runs a Python script with Debian's python3 (and NumPy, which scripts/setup.sh installs); its output, trimmed.</summary>
    internal static string Python(string script)
    {
        var start = new System.Diagnostics.ProcessStartInfo("/usr/bin/python3", ["-c", script])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var python = System.Diagnostics.Process.Start(start)!;
        var error = python.StandardError.ReadToEndAsync();
        string output = python.StandardOutput.ReadToEnd().Trim();
        python.WaitForExit();
        Assert.True(python.ExitCode == 0, error.Result);
        return output;
    }
}
