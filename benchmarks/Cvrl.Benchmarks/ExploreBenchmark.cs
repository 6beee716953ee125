using System.Diagnostics;
using System.Globalization;
using Cvrl.Embeddings;
using Cvrl.Explore;

namespace Cvrl.Benchmarks;

/// <summary>
/// Issue 22's benchmark: how long the parts of an explore report take for 1,000 and 10,000 videos (every video's
/// neighbours, the PCA map, the t-SNE map, the leave-one-out kNN), on generated embeddings of R3D-50's width (2048) in
/// 20 clusters; thumbnails are a decoding pass and scale with the videos' length, not measured here. Baseline (same run,
/// neighbours only): ranking the whole set for each video, as a search for every neighbour would.
/// </summary>
internal static class ExploreBenchmark
{
    public static int Run(string[] args)
    {
        var sizes = AugmentBenchmark.OptionText(args, "--sizes", "1000,10000").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        int dim = AugmentBenchmark.Option(args, "--dim", 2048);
        int iterations = AugmentBenchmark.Option(args, "--iterations", 750);
        var ci = CultureInfo.InvariantCulture;
        Console.WriteLine("### Explore report: neighbours, maps and kNN (issue 22)");
        Console.WriteLine();
        Console.WriteLine($"Command: `dotnet run -c Release --project benchmarks/Cvrl.Benchmarks -- explore --sizes {string.Join(',', sizes)} --dim {dim} --iterations {iterations}`  ");
        Console.WriteLine($"Machine: {Machine.Describe()}  ");
        Console.WriteLine($"Data: generated {dim}-d embeddings in 20 Gaussian clusters (labelled by cluster), float32. t-SNE: perplexity 30, {iterations} steps, exact repulsion. Baseline (same run): ranking the whole set per video (the full sort a search of every item would do), timed on the first 200 videos and scaled.");
        Console.WriteLine();
        Console.WriteLine("| videos | neighbours (k = 90) | baseline: full ranking per video | PCA map | t-SNE map | leave-one-out kNN | peak memory |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|");
        _ = EmbeddingMap.NearestNeighbours(Make(300, dim, 20, seed: 0), 90); // warm up the JIT and the thread pool
        foreach (int n in sizes)
        {
            var set = Make(n, dim, 20, seed: n);
            var watch = Stopwatch.StartNew();
            var neighbours = EmbeddingMap.NearestNeighbours(set, 90);
            double neighbourSeconds = watch.Elapsed.TotalSeconds;

            int sample = Math.Min(n, 200);
            watch.Restart();
            Parallel.For(0, sample, i => _ = set.Search(set[i], n));
            double baseline = watch.Elapsed.TotalSeconds * n / sample;

            var pca = EmbeddingMap.Pca(set);
            var tsne = EmbeddingMap.Tsne(set, new TsneOptions { Iterations = iterations }, neighbours);
            var (classes, labels) = ExploreReport.ClassesOf(set);
            watch.Restart();
            var knn = ExploreReport.LeaveOneOutKnn(labels, classes, neighbours, 20, 0.07);
            double knnSeconds = watch.Elapsed.TotalSeconds;
            Console.WriteLine(string.Create(ci, $"| {n:N0} | {neighbourSeconds:0.00} s | {baseline:0.00} s | {pca.Elapsed.TotalSeconds:0.00} s | {tsne.Elapsed.TotalSeconds:0.0} s | {knnSeconds * 1000:0} ms ({100 * knn.Accuracy:0.0}%) | {Machine.PeakRssMiB():0} MiB |"));
        }

        Console.WriteLine();
        return 0;
    }

    private static EmbeddingSet Make(int n, int dim, int clusters, int seed)
    {
        var random = new Random(seed);
        var centres = Enumerable.Range(0, clusters).Select(_ => Enumerable.Range(0, dim).Select(_ => (float)Normal(random)).ToArray()).ToArray();
        var set = new EmbeddingSet(dim, "benchmark");
        var v = new float[dim];
        for (int i = 0; i < n; i++)
        {
            int c = i % clusters;
            for (int d = 0; d < dim; d++)
            {
                v[d] = centres[c][d] + (float)(1.5 * Normal(random));
            }

            set.Add($"class{c:D2}/video{i:D5}.mp4", v);
        }

        return set;
    }

    private static double Normal(Random random) => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
