using System.Text.Json.Nodes;
using Cvrl.Embeddings;
using Cvrl.Explore;
using Cvrl.Testing;
using OpenCvSharp;

namespace Cvrl.Tests;

/// <summary>The pieces of an explore report: neighbour lists, the two layouts, the leave-one-out kNN, classes, thumbnails.</summary>
public sealed class ExploreTests
{
    private static EmbeddingSet Gaussian(int perCluster, int clusters, int dim, double spread, int seed, string metadata = "{}")
    {
        var random = new Random(seed);
        var centres = Enumerable.Range(0, clusters).Select(_ => Enumerable.Range(0, dim).Select(_ => (float)Normal(random)).ToArray()).ToArray();
        var set = new EmbeddingSet(dim, "test", metadata);
        for (int c = 0; c < clusters; c++)
        {
            for (int i = 0; i < perCluster; i++)
            {
                set.Add($"class{c}/v{i:D3}.avi", centres[c].Select(x => x + (float)(spread * Normal(random))).ToArray());
            }
        }

        return set;
    }

    private static double Normal(Random random) => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    [Fact]
    public void An_items_neighbours_are_its_search_results_without_it_with_the_same_scores_and_ties_by_position()
    {
        var set = Gaussian(20, 3, 37, 0.5, seed: 1); // 37: the eight-lane dot product has a tail
        set.Add("copy/a.avi", set[5]);
        set.Add("copy/b.avi", set[5]);
        for (int i = 0; i < set.Count; i++)
        {
            var search = set.Search(set[i], set.Count);
            var neighbours = set.Neighbours(i, set.Count - 1);
            Assert.Equal(search.Where(h => h.Index != i), neighbours);

            // The bounded selection gives what a full sort of the same scores gives.
            var sorted = search.OrderByDescending(h => h.Score).ThenBy(h => h.Index).ToList();
            Assert.Equal(sorted, search);
            Assert.Equal(search.Take(4), set.Search(set[i], 4));
        }

        // Equal vectors: equal scores, earlier position first.
        var hits = set.Neighbours(5, 2);
        Assert.Equal([60, 61], hits.Select(h => h.Index));
        Assert.Equal(hits[0].Score, hits[1].Score);
        Assert.Equal(EmbeddingMap.NearestNeighbours(set, 7).Select(h => h.ToList()), Enumerable.Range(0, set.Count).Select(i => set.Neighbours(i, 7).ToList()));
        Assert.Throws<ArgumentOutOfRangeException>(() => set.Neighbours(set.Count, 3));
    }

    [Fact]
    public void PCA_gives_the_scores_of_the_two_leading_eigenvectors_of_the_covariance()
    {
        // Vectors near one unit direction with offsets of standard deviation 0.03 and 0.015 on two axes and 0.0005 on 29
        // others: the reference is the covariance of the normalised vectors and its leading eigenvectors by power iteration here.
        var random = new Random(3);
        int dim = 32, n = 400;
        var set = new EmbeddingSet(dim, "test");
        for (int i = 0; i < n; i++)
        {
            var v = new float[dim];
            v[0] = 1;
            v[1] = (float)(0.03 * Normal(random));
            v[2] = (float)(0.015 * Normal(random));
            for (int d = 3; d < dim; d++)
            {
                v[d] = (float)(0.0005 * Normal(random));
            }

            set.Add($"v{i}", v);
        }

        var rows = Enumerable.Range(0, n).Select(i =>
        {
            var v = set[i].ToArray().Select(x => (double)x).ToArray();
            double norm = Math.Sqrt(v.Sum(x => x * x));
            return v.Select(x => x / norm).ToArray();
        }).ToArray();
        var mean = Enumerable.Range(0, dim).Select(d => rows.Average(r => r[d])).ToArray();
        var cov = new double[dim, dim];
        foreach (var r in rows)
        {
            for (int a = 0; a < dim; a++)
            {
                for (int b = 0; b < dim; b++)
                {
                    cov[a, b] += (r[a] - mean[a]) * (r[b] - mean[b]);
                }
            }
        }

        var (values, vectors) = LeadingEigenpairs(cov, 2);
        double total = Enumerable.Range(0, dim).Sum(d => cov[d, d]);

        var layout = EmbeddingMap.Pca(set);
        Assert.Equal(MapMethod.Pca, layout.Method);
        for (int axis = 0; axis < 2; axis++)
        {
            var expected = rows.Select(r => Enumerable.Range(0, dim).Sum(d => (r[d] - mean[d]) * vectors[axis][d])).ToArray();
            var actual = axis == 0 ? layout.X : layout.Y;
            // The layout works from float32 unit vectors (rounding up to 2^-24 per coordinate), so a score may differ by about
            // sqrt(32) x 6e-8 = 3.4e-7 from the double reference; 1e-6 leaves a margin, while a wrong or mixed axis is off
            // by a share of the spread (1e-2 and more). Up to the sign.
            double spread = Math.Sqrt(expected.Sum(v => v * v) / n);
            double sign = Math.Sign(expected.Zip(actual).Sum(p => p.First * p.Second));
            for (int i = 0; i < n; i++)
            {
                Assert.True(Math.Abs((sign * actual[i]) - expected[i]) <= 1e-6 + (1e-5 * spread), $"axis {axis}, item {i}: {actual[i]} against {expected[i]}");
            }

            TorchAssert.Near(values[axis] / total, layout.ExplainedVariance[axis], 1e-6, 1e-9);
        }

        var again = EmbeddingMap.Pca(set);
        Assert.Equal(layout.X, again.X);
        Assert.Equal(layout.Y, again.Y);
    }

    /// <summary>
    /// The two leading eigenpairs of a small symmetric matrix by plain power iteration with deflation: a reference that
    /// shares nothing with the library's block iteration.
    /// </summary>
    private static (double[] Values, double[][] Vectors) LeadingEigenpairs(double[,] matrix, int count)
    {
        int n = matrix.GetLength(0);
        var a = (double[,])matrix.Clone();
        var values = new double[count];
        var vectors = new double[count][];
        for (int e = 0; e < count; e++)
        {
            var v = Enumerable.Range(0, n).Select(i => 1.0 / (i + 1)).ToArray();
            double value = 0;
            for (int iteration = 0; iteration < 5000; iteration++)
            {
                var w = new double[n];
                for (int i = 0; i < n; i++)
                {
                    for (int j = 0; j < n; j++)
                    {
                        w[i] += a[i, j] * v[j];
                    }
                }

                double norm = Math.Sqrt(w.Sum(x => x * x));
                value = norm;
                v = [.. w.Select(x => x / norm)];
            }

            values[e] = value;
            vectors[e] = v;
            for (int i = 0; i < n; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    a[i, j] -= value * v[i] * v[j];
                }
            }
        }

        return (values, vectors);
    }

    [Fact]
    public void TSNE_keeps_separated_clusters_apart_and_is_deterministic()
    {
        var set = Gaussian(25, 4, 24, 0.35, seed: 5);
        var layout = EmbeddingMap.Tsne(set, new TsneOptions { Perplexity = 10, Iterations = 400 });
        Assert.Equal(MapMethod.Tsne, layout.Method);
        Assert.Empty(layout.ExplainedVariance);

        // Every point's nearest point on the map is from its own cluster.
        for (int i = 0; i < set.Count; i++)
        {
            int nearest = Enumerable.Range(0, set.Count).Where(j => j != i)
                .MinBy(j => Math.Pow(layout.X[i] - layout.X[j], 2) + Math.Pow(layout.Y[i] - layout.Y[j], 2));
            Assert.Equal(i / 25, nearest / 25);
        }

        var again = EmbeddingMap.Tsne(set, new TsneOptions { Perplexity = 10, Iterations = 400 });
        Assert.Equal(layout.X, again.X);
        Assert.Equal(layout.Y, again.Y);
        Assert.Throws<ArgumentOutOfRangeException>(() => EmbeddingMap.Tsne(set, new TsneOptions { Iterations = 10 }));
        Assert.Throws<ArgumentException>(() => EmbeddingMap.Tsne(Gaussian(3, 1, 4, 0.1, 0)));
    }

    [Fact]
    public void Leave_one_out_kNN_votes_with_the_neighbours_and_names_the_confusions()
    {
        // Four videos, two classes; hand-made neighbour lists.
        IReadOnlyList<int> labels = [0, 0, 1, 1];
        string[] classes = ["a", "b"];
        IReadOnlyList<IReadOnlyList<SearchHit>> neighbours =
        [
            [new(1, "1", 0.9f), new(2, "2", 0.8f)], // a: votes a (0.9) vs b (0.8): a
            [new(2, "2", 0.9f), new(3, "3", 0.85f)], // a: b, b: b (wrong)
            [new(3, "3", 0.7f), new(0, "0", 0.6f)], // b: b
            [new(0, "0", 0.5f), new(2, "2", 0.49f)], // b: a (0.5) vs b (0.49): a (wrong)
        ];
        var weighted = ExploreReport.LeaveOneOutKnn(labels, classes, neighbours, 2, 0.07);
        Assert.Equal((2, 4), (weighted.Correct, weighted.Total));
        Assert.Equal([new ClassConfusion("a", "b", 1), new ClassConfusion("b", "a", 1)], weighted.Confusions);
        Assert.Equal(0.5, weighted.Accuracy);

        // Equal votes: ties (one a, one b) go to the lower class index, a: right for video 0, wrong for videos 2 and 3.
        var equal = ExploreReport.LeaveOneOutKnn(labels, classes, neighbours, 2, null);
        Assert.Equal(1, equal.Correct);

        // One voter each: the nearest decides.
        var one = ExploreReport.LeaveOneOutKnn(labels, classes, neighbours, 1, 0.07);
        Assert.Equal(2, one.Correct); // 0 -> a (right), 1 -> b (wrong), 2 -> b (right), 3 -> a (wrong)
    }

    [Fact]
    public void Classes_come_from_recorded_classes_or_from_class_folders()
    {
        var folders = Gaussian(2, 2, 4, 0.1, 0);
        var (classes, labels) = ExploreReport.ClassesOf(folders);
        Assert.Equal(["class0", "class1"], classes);
        Assert.Equal([0, 0, 1, 1], labels);
        Assert.Empty(ExploreReport.ClassesOf(folders, classFolders: false).Classes);

        var flat = new EmbeddingSet(2, "test");
        flat.Add("a.avi", [1, 0]);
        flat.Add("b.avi", [0, 1]);
        Assert.Empty(ExploreReport.ClassesOf(flat).Classes);

        var oneFolder = new EmbeddingSet(2, "test");
        oneFolder.Add("x/a.avi", [1, 0]);
        oneFolder.Add("x/b.avi", [0, 1]);
        Assert.Empty(ExploreReport.ClassesOf(oneFolder).Classes); // one folder is not a labelling
        Assert.Equal(["x"], ExploreReport.ClassesOf(oneFolder, classFolders: true).Classes);

        // Recorded classes keep their order; a key outside them gets -1.
        var recorded = new EmbeddingSet(2, "test", """{"classes":["zeta","alpha"]}""");
        recorded.Add("alpha/a.avi", [1, 0]);
        recorded.Add("zeta/b.avi", [0, 1]);
        recorded.Add("other/c.avi", [1, 1]);
        var (names, ids) = ExploreReport.ClassesOf(recorded);
        Assert.Equal(["zeta", "alpha"], names);
        Assert.Equal([1, 0, -1], ids);
    }

    [Fact]
    public void A_report_has_thumbnail_strips_and_names_the_videos_it_could_not_read()
    {
        using var dir = new TempDirectory();
        string videos = dir.File("videos");
        Directory.CreateDirectory(Path.Combine(videos, "a"));
        Directory.CreateDirectory(Path.Combine(videos, "b"));
        TestVideos.Create(Path.Combine(videos, "a", "one.avi"), 30, 96, 64);
        TestVideos.Create(Path.Combine(videos, "b", "two.avi"), 12, 96, 64);
        var set = new EmbeddingSet(3, "test", new JsonObject { ["root"] = videos }.ToJsonString());
        set.Add("a/one.avi", [1, 0, 0]);
        set.Add("b/two.avi", [0.9f, 0.1f, 0]);
        set.Add("b/gone.avi", [0, 1, 0]);

        string report = dir.File("report");
        var summary = ExploreReport.Write(set, report, new ExploreOptions { ThumbnailFrames = 3, Projector = true, Workers = 2 });
        Assert.Equal(2, summary.Thumbnails);
        var failure = Assert.Single(summary.ThumbnailFailures);
        Assert.Equal(Path.Combine(videos, "b", "gone.avi"), failure.Path);
        Assert.Contains("does not exist", failure.Reason);
        string thumbs = Assert.Single(Directory.GetDirectories(report, "thumbs-*"));
        using (var strip = Cv2.ImRead(Path.Combine(thumbs, "0.jpg")))
        {
            Assert.Equal((3 * 108, 72), (strip.Width, strip.Height)); // 96 x 64 frames at short side 72: 108 x 72, three across
        }

        Assert.False(File.Exists(Path.Combine(thumbs, "2.jpg")));
        foreach (string name in new[] { "index.html", "explore.js", "explore.css", "data.js", "projector/sprite.png" })
        {
            Assert.True(File.Exists(Path.Combine(report, name)), name);
        }

        Assert.Equal([1], summary.Neighbours[0].Take(1).Select(h => h.Index));
        Assert.Equal(2, summary.Neighbours[0].Count); // at most the others

        // Without a recorded folder, thumbnails need one; without thumbnails, nothing is decoded.
        var bare = new EmbeddingSet(3, "test");
        bare.Add("x.avi", [1, 0, 0]);
        bare.Add("y.avi", [0, 1, 0]);
        var error = Assert.Throws<DirectoryNotFoundException>(() => ExploreReport.Write(bare, dir.File("r2")));
        Assert.Contains("does not record the folder", error.Message);
        Assert.Equal(0, ExploreReport.Write(bare, dir.File("r3"), new ExploreOptions { Thumbnails = false }).Thumbnails);
        Assert.Throws<ArgumentOutOfRangeException>(() => new ExploreOptions { Neighbours = 0 }.Validate());
    }

    [Fact]
    public void The_map_as_SVG_has_a_point_per_video_and_a_legend_entry_per_class()
    {
        var set = Gaussian(5, 3, 8, 0.2, seed: 2);
        set.Add("class1/<odd & \"name\">.avi", set[0]);
        var layout = EmbeddingMap.Pca(set);
        var svg = System.Xml.Linq.XDocument.Parse(ExploreReport.MapSvg(set, layout));
        var circles = svg.Descendants().Where(e => e.Name.LocalName == "circle").ToList();
        Assert.Equal(set.Count + 3, circles.Count); // the points, then one swatch per class
        Assert.Equal(set.Keys, circles.Take(set.Count).Select(c => c.Elements().Single().Value));
        Assert.Equal(["class0 (5)", "class1 (6)", "class2 (5)"], svg.Descendants().Where(e => e.Name.LocalName == "text").Take(3).Select(e => e.Value));
        Assert.Equal(ExploreReport.ColourOf(0), circles[0].Attribute("fill")!.Value);
        Assert.Throws<ArgumentException>(() => ExploreReport.MapSvg(Gaussian(2, 1, 8, 0.2, 0), layout));
    }

    private static double Correlation(IEnumerable<float> x, IEnumerable<double> y)
    {
        var a = x.Select(v => (double)v).ToArray();
        var b = y.ToArray();
        double ma = a.Average(), mb = b.Average();
        double cov = a.Zip(b).Sum(p => (p.First - ma) * (p.Second - mb));
        return cov / Math.Sqrt(a.Sum(v => (v - ma) * (v - ma)) * b.Sum(v => (v - mb) * (v - mb)));
    }
}
