using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Cvrl.Embeddings;

namespace Cvrl.Explore;

/// <summary>How an embedding set is laid out in two dimensions.</summary>
public enum MapMethod
{
    /// <summary>The first two principal components (linear, fast, keeps global distances; the default).</summary>
    Pca,

    /// <summary>t-SNE on cosine distances (non-linear, keeps neighbourhoods; slower).</summary>
    Tsne,
}

/// <summary>Options of the t-SNE layout.</summary>
public sealed record TsneOptions
{
    /// <summary>Effective number of neighbours each point attends to. Default 30 (clamped below a third of the set).</summary>
    public double Perplexity { get; init; } = 30;

    /// <summary>Gradient steps. Default 750 (the first 250 with early exaggeration).</summary>
    public int Iterations { get; init; } = 750;

    /// <summary>Seed of the few random choices (the layout starts from PCA, so it rarely matters). Default 0.</summary>
    public int Seed { get; init; }

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public void Validate()
    {
        if (!(Perplexity >= 2 && Perplexity <= 200))
        {
            throw new ArgumentOutOfRangeException(nameof(Perplexity), Perplexity, "The t-SNE perplexity must be between 2 and 200.");
        }

        if (Iterations is < 250 or > 10_000)
        {
            throw new ArgumentOutOfRangeException(nameof(Iterations), Iterations, "t-SNE needs between 250 and 10,000 iterations (the first 250 use early exaggeration).");
        }
    }
}

/// <summary>A two-dimensional layout of an embedding set.</summary>
/// <param name="X">Horizontal coordinate of each item, in set order.</param>
/// <param name="Y">Vertical coordinate of each item.</param>
/// <param name="Method">How it was made.</param>
/// <param name="ExplainedVariance">For PCA, the share of the total variance on each axis; empty for t-SNE.</param>
/// <param name="Elapsed">Time taken.</param>
public sealed record EmbeddingLayout(float[] X, float[] Y, MapMethod Method, IReadOnlyList<double> ExplainedVariance, TimeSpan Elapsed);

/// <summary>
/// Lays out embedding sets in two dimensions, in .NET (no Python, no native library): principal components by subspace
/// iteration, and t-SNE with sparse input affinities from each item's nearest neighbours and an exact repulsion. Both are
/// deterministic: the same set gives the same layout on every run and with any number of threads.
/// </summary>
public static class EmbeddingMap
{
    /// <summary>The first two principal components of the (L2-normalised) vectors.</summary>
    /// <param name="set">The set (at least two items).</param>
    /// <param name="cancellationToken">Stops the computation.</param>
    /// <exception cref="ArgumentException">The set holds fewer than two items.</exception>
    public static EmbeddingLayout Pca(EmbeddingSet set, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(set);
        RequireItems(set, MapMethod.Pca);
        var watch = Stopwatch.StartNew();
        var (data, n, dim) = Normalised(set);
        var (scores, ratios) = Principal(data, n, dim, 2, cancellationToken);
        return new EmbeddingLayout([.. scores[0].Select(v => (float)v)], [.. scores[1].Select(v => (float)v)], MapMethod.Pca, ratios, watch.Elapsed);
    }

    /// <summary>
    /// t-SNE on cosine distances: affinities from each item's <c>3 x perplexity</c> nearest neighbours (the set's own
    /// cosine scores), symmetrised; the layout starts from the scaled principal components, runs with early exaggeration
    /// 12 for 250 steps, then without, with momentum and per-coordinate gains; the repulsion is summed exactly over all
    /// pairs (O(n²) per step).
    /// </summary>
    /// <param name="set">The set (at least four items).</param>
    /// <param name="options">Options (validated); null for the defaults.</param>
    /// <param name="neighbours">The set's nearest neighbours if already computed (see <see cref="NearestNeighbours"/>); they must hold enough per item, else they are computed.</param>
    /// <param name="progress">Reports steps done.</param>
    /// <param name="cancellationToken">Stops the computation.</param>
    /// <exception cref="ArgumentException">The set holds fewer than four items.</exception>
    public static EmbeddingLayout Tsne(EmbeddingSet set, TsneOptions? options = null, IReadOnlyList<IReadOnlyList<SearchHit>>? neighbours = null, IProgress<int>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(set);
        options ??= new TsneOptions();
        options.Validate();
        RequireItems(set, MapMethod.Tsne);
        var watch = Stopwatch.StartNew();
        int n = set.Count;
        double perplexity = EffectivePerplexity(n, options);
        int k = TsneNeighbours(n, options);
        if (neighbours is null || neighbours.Count != n || neighbours.Any(h => h.Count < k))
        {
            neighbours = NearestNeighbours(set, k, cancellationToken);
        }

        var (rows, cols, values) = Affinities(neighbours, k, perplexity);

        // Start from PCA, scaled to a standard deviation of 1e-4 on the first axis (a stable, deterministic start).
        var (data, _, dim) = Normalised(set);
        var (scores, _) = Principal(data, n, dim, 2, cancellationToken);
        double sd = Math.Sqrt(scores[0].Sum(v => v * v) / n);
        double scale = sd > 0 ? 1e-4 / sd : 1;
        var y = new double[2 * n];
        var random = new Random(options.Seed);
        for (int i = 0; i < n; i++)
        {
            y[2 * i] = scores[0][i] * scale;
            y[(2 * i) + 1] = scores[1][i] * scale;
            if (sd == 0)
            {
                y[2 * i] = random.NextDouble() * 1e-4;
                y[(2 * i) + 1] = random.NextDouble() * 1e-4;
            }
        }

        var gradient = new double[2 * n];
        var update = new double[2 * n];
        var gains = Enumerable.Repeat(1.0, 2 * n).ToArray();
        const int exaggerationSteps = 250;
        const double exaggeration = 12;
        double learningRate = Math.Max(n / exaggeration, 50);
        var partialZ = new double[n];
        for (int step = 0; step < options.Iterations; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            double ex = step < exaggerationSteps ? exaggeration : 1;
            double momentum = step < exaggerationSteps ? 0.5 : 0.8;

            // Repulsion: q_ij numerators (1 + d²)^-1 summed exactly; each row's sum is kept apart so the total does not
            // depend on how rows are spread over threads.
            Parallel.For(0, n, new ParallelOptions { CancellationToken = cancellationToken }, i =>
            {
                double yi0 = y[2 * i], yi1 = y[(2 * i) + 1];
                double z = 0, g0 = 0, g1 = 0;
                for (int j = 0; j < n; j++)
                {
                    double d0 = yi0 - y[2 * j], d1 = yi1 - y[(2 * j) + 1];
                    double q = 1 / (1 + (d0 * d0) + (d1 * d1));
                    z += q;
                    double qq = q * q;
                    g0 += qq * d0;
                    g1 += qq * d1;
                }

                partialZ[i] = z - 1; // leave out j == i (q = 1)
                gradient[2 * i] = g0;
                gradient[(2 * i) + 1] = g1;
            });
            double sumZ = 0;
            for (int i = 0; i < n; i++)
            {
                sumZ += partialZ[i];
            }

            Parallel.For(0, n, i =>
            {
                double a0 = 0, a1 = 0;
                for (int e = rows[i]; e < rows[i + 1]; e++)
                {
                    int j = cols[e];
                    double d0 = y[2 * i] - y[2 * j], d1 = y[(2 * i) + 1] - y[(2 * j) + 1];
                    double w = ex * values[e] / (1 + (d0 * d0) + (d1 * d1));
                    a0 += w * d0;
                    a1 += w * d1;
                }

                gradient[2 * i] = 4 * (a0 - (gradient[2 * i] / sumZ));
                gradient[(2 * i) + 1] = 4 * (a1 - (gradient[(2 * i) + 1] / sumZ));
            });

            for (int c = 0; c < 2 * n; c++)
            {
                gains[c] = Math.Sign(gradient[c]) != Math.Sign(update[c]) ? gains[c] + 0.2 : Math.Max(0.01, gains[c] * 0.8);
                update[c] = (momentum * update[c]) - (learningRate * gains[c] * gradient[c]);
                y[c] += update[c];
            }

            if ((step + 1) % 50 == 0)
            {
                progress?.Report(step + 1);
            }
        }

        // Centre the layout.
        double m0 = 0, m1 = 0;
        for (int i = 0; i < n; i++)
        {
            m0 += y[2 * i];
            m1 += y[(2 * i) + 1];
        }

        var x = new float[n];
        var yy = new float[n];
        for (int i = 0; i < n; i++)
        {
            x[i] = (float)(y[2 * i] - (m0 / n));
            yy[i] = (float)(y[(2 * i) + 1] - (m1 / n));
        }

        return new EmbeddingLayout(x, yy, MapMethod.Tsne, [], watch.Elapsed);
    }

    /// <summary>
    /// The <paramref name="k"/> nearest neighbours of every item by cosine similarity, the item left out: for item i,
    /// exactly <see cref="EmbeddingSet.Neighbours"/>(i, k). Items are spread over the machine's cores.
    /// </summary>
    /// <param name="set">The set.</param>
    /// <param name="k">Neighbours per item (at most the set's size less one).</param>
    /// <param name="cancellationToken">Stops the computation.</param>
    public static IReadOnlyList<IReadOnlyList<SearchHit>> NearestNeighbours(EmbeddingSet set, int k, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(set);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(k);
        var result = new IReadOnlyList<SearchHit>[set.Count];
        Parallel.For(0, set.Count, new ParallelOptions { CancellationToken = cancellationToken }, i => result[i] = set.Neighbours(i, k));
        return result;
    }

    /// <summary>Refuses a set too small for <paramref name="method"/> (PCA needs two items, t-SNE four).</summary>
    /// <exception cref="ArgumentException">It is.</exception>
    internal static void RequireItems(EmbeddingSet set, MapMethod method)
    {
        int least = method == MapMethod.Tsne ? 4 : 2;
        if (set.Count < least)
        {
            throw new ArgumentException($"A map needs at least {least} videos; the set holds {set.Count}.", nameof(set));
        }
    }

    /// <summary>Neighbours per item that t-SNE's affinities use for a set of <paramref name="count"/>: three times the perplexity.</summary>
    internal static int TsneNeighbours(int count, TsneOptions options) =>
        Math.Min(count - 1, (int)Math.Ceiling(3 * EffectivePerplexity(count, options)));

    // The perplexity, clamped so that three times it fits in the set.
    private static double EffectivePerplexity(int count, TsneOptions options) => Math.Min(options.Perplexity, (count - 1) / 3.0);

    private static (float[] Data, int N, int Dim) Normalised(EmbeddingSet set)
    {
        int n = set.Count, dim = set.Dim;
        var data = new float[(long)n * dim];
        for (int i = 0; i < n; i++)
        {
            var v = set[i];
            double norm = 0;
            foreach (float f in v)
            {
                norm += (double)f * f;
            }

            float inv = norm > 0 ? (float)(1 / Math.Sqrt(norm)) : 0;
            for (int d = 0; d < dim; d++)
            {
                data[((long)i * dim) + d] = v[d] * inv;
            }
        }

        return (data, n, dim);
    }

    /// <summary>
    /// The first <paramref name="components"/> principal component scores of the rows of <paramref name="data"/>, with
    /// the share of variance of each: block subspace iteration on the centred matrix (never forming the covariance) with
    /// a Rayleigh-Ritz step each round, so the block's vectors come out ordered and the leading ones converge at the rate
    /// of the gap to the block's edge. Signs are fixed so that each component's scores have a non-negative third moment.
    /// </summary>
    private static (double[][] Scores, double[] Ratios) Principal(float[] data, int n, int dim, int components, CancellationToken cancellationToken)
    {
        var mean = new double[dim];
        for (int i = 0; i < n; i++)
        {
            for (int d = 0; d < dim; d++)
            {
                mean[d] += data[((long)i * dim) + d];
            }
        }

        for (int d = 0; d < dim; d++)
        {
            mean[d] /= n;
        }

        double total = 0;
        for (int i = 0; i < n; i++)
        {
            for (int d = 0; d < dim; d++)
            {
                double c = data[((long)i * dim) + d] - mean[d];
                total += c * c;
            }
        }

        int block = Math.Min(Math.Min(dim, n), components + 10); // 12: three vectors of four doubles
        var random = new Random(12345);
        var basis = new double[dim * block]; // column b of the block at [d * block + b]
        for (int k = 0; k < basis.Length; k++)
        {
            basis[k] = random.NextDouble() - 0.5;
        }

        Orthonormalise(basis, dim, block);
        double[] scores = Times(data, n, dim, mean, basis, block); // n x block
        var previous = new double[dim * components];
        var previousValues = new double[components];
        for (int iteration = 0; iteration < 100; iteration++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var next = TransposeTimes(data, n, dim, mean, scores, block); // dim x block
            Orthonormalise(next, dim, block);

            // Rayleigh-Ritz: diagonalise the block's own covariance and rotate the block to its eigenvectors, largest first.
            scores = Times(data, n, dim, mean, next, block);
            var small = new double[block, block];
            for (int a = 0; a < block; a++)
            {
                for (int b = a; b < block; b++)
                {
                    double sum = 0;
                    for (int i = 0; i < n; i++)
                    {
                        sum += scores[(i * block) + a] * scores[(i * block) + b];
                    }

                    small[a, b] = small[b, a] = sum;
                }
            }

            var (values, rotation) = SymmetricEigen(small);
            basis = new double[dim * block];
            for (int d = 0; d < dim; d++)
            {
                for (int b = 0; b < block; b++)
                {
                    double sum = 0;
                    for (int a = 0; a < block; a++)
                    {
                        sum += next[(d * block) + a] * rotation[a, b];
                    }

                    basis[(d * block) + b] = sum;
                }
            }

            var rotated = new double[n * block];
            for (int i = 0; i < n; i++)
            {
                for (int b = 0; b < block; b++)
                {
                    double sum = 0;
                    for (int a = 0; a < block; a++)
                    {
                        sum += scores[(i * block) + a] * rotation[a, b];
                    }

                    rotated[(i * block) + b] = sum;
                }
            }

            scores = rotated;

            double change = 0;
            for (int b = 0; b < components; b++)
            {
                double dot = 0;
                for (int d = 0; d < dim; d++)
                {
                    dot += basis[(d * block) + b] * previous[(d * components) + b];
                    previous[(d * components) + b] = basis[(d * block) + b];
                }

                change = Math.Max(change, 1 - Math.Abs(dot));
            }

            // Converged when the leading vectors stop turning, or when the variances they carry stop changing: with nearly
            // equal leading eigenvalues the vectors are not defined by the data (any mix of them is as good an axis), and
            // chasing them would take hundreds of rounds.
            double valueChange = 0;
            for (int b = 0; b < components; b++)
            {
                valueChange = Math.Max(valueChange, Math.Abs(values[b] - previousValues[b]) / Math.Max(values[b], 1e-300));
                previousValues[b] = values[b];
            }

            if (iteration > 2 && (change < 1e-10 || valueChange < 1e-9))
            {
                break;
            }
        }

        scores = Times(data, n, dim, mean, basis, block);
        var result = new double[components][];
        var ratios = new double[components];
        for (int b = 0; b < components; b++)
        {
            var column = new double[n];
            for (int i = 0; i < n; i++)
            {
                column[i] = scores[(i * block) + b];
            }

            ratios[b] = total > 0 ? column.Sum(v => v * v) / total : 0;
            if (column.Sum(v => v * v * v) < 0)
            {
                for (int i = 0; i < n; i++)
                {
                    column[i] = -column[i];
                }
            }

            result[b] = column;
        }

        return (result, ratios);
    }

    /// <summary>Centred rows times the block: <c>(X - mean) B</c>, n x block, row by row.</summary>
    private static double[] Times(float[] data, int n, int dim, double[] mean, double[] basis, int block)
    {
        var offset = new double[block];
        for (int d = 0; d < dim; d++)
        {
            for (int b = 0; b < block; b++)
            {
                offset[b] += mean[d] * basis[(d * block) + b];
            }
        }

        var result = new double[n * block];
        Parallel.For(0, n, i =>
        {
            long row = (long)i * dim;
            if (block == 12)
            {
                // The common case in vector registers: each coordinate adds x times a row of the block.
                var s0 = Vector256<double>.Zero;
                var s1 = Vector256<double>.Zero;
                var s2 = Vector256<double>.Zero;
                var b = MemoryMarshal.Cast<double, Vector256<double>>(basis.AsSpan());
                for (int d = 0; d < dim; d++)
                {
                    var x = Vector256.Create((double)data[row + d]);
                    s0 += x * b[3 * d];
                    s1 += x * b[(3 * d) + 1];
                    s2 += x * b[(3 * d) + 2];
                }

                var o = MemoryMarshal.Cast<double, Vector256<double>>(offset.AsSpan());
                var r = MemoryMarshal.Cast<double, Vector256<double>>(result.AsSpan(i * 12, 12));
                r[0] = s0 - o[0];
                r[1] = s1 - o[1];
                r[2] = s2 - o[2];
                return;
            }

            var sums = new double[block];
            for (int d = 0; d < dim; d++)
            {
                double x = data[row + d];
                int at = d * block;
                for (int k = 0; k < block; k++)
                {
                    sums[k] += x * basis[at + k];
                }
            }

            for (int k = 0; k < block; k++)
            {
                result[(i * block) + k] = sums[k] - offset[k];
            }
        });
        return result;
    }

    /// <summary>
    /// <c>(X - mean)^T S</c>, dim x block. Each worker owns a range of coordinates and sums over the rows in order, so
    /// the sums do not depend on the number of threads.
    /// </summary>
    private static double[] TransposeTimes(float[] data, int n, int dim, double[] mean, double[] scores, int block)
    {
        var result = new double[dim * block];
        var columnSums = new double[block];
        for (int i = 0; i < n; i++)
        {
            for (int b = 0; b < block; b++)
            {
                columnSums[b] += scores[(i * block) + b];
            }
        }

        const int Range = 64;
        Parallel.For(0, (dim + Range - 1) / Range, chunk =>
        {
            int from = chunk * Range, to = Math.Min(dim, from + Range);
            var vectors = MemoryMarshal.Cast<double, Vector256<double>>(result.AsSpan());
            var scoreVectors = MemoryMarshal.Cast<double, Vector256<double>>(scores.AsSpan());
            for (int i = 0; i < n; i++)
            {
                long row = (long)i * dim;
                int s = i * block;
                if (block == 12)
                {
                    var s0 = scoreVectors[3 * i];
                    var s1 = scoreVectors[(3 * i) + 1];
                    var s2 = scoreVectors[(3 * i) + 2];
                    for (int d = from; d < to; d++)
                    {
                        var x = Vector256.Create((double)data[row + d]);
                        vectors[3 * d] += x * s0;
                        vectors[(3 * d) + 1] += x * s1;
                        vectors[(3 * d) + 2] += x * s2;
                    }

                    continue;
                }

                for (int d = from; d < to; d++)
                {
                    double x = data[row + d];
                    int at = d * block;
                    for (int b = 0; b < block; b++)
                    {
                        result[at + b] += x * scores[s + b];
                    }
                }
            }

            for (int d = from; d < to; d++)
            {
                for (int b = 0; b < block; b++)
                {
                    result[(d * block) + b] -= mean[d] * columnSums[b];
                }
            }
        });
        return result;
    }

    /// <summary>Modified Gram-Schmidt (twice) on the columns of a dim x block matrix.</summary>
    private static void Orthonormalise(double[] m, int dim, int block)
    {
        for (int b = 0; b < block; b++)
        {
            for (int pass = 0; pass < 2; pass++)
            {
                for (int c = 0; c < b; c++)
                {
                    double dot = 0;
                    for (int d = 0; d < dim; d++)
                    {
                        dot += m[(d * block) + b] * m[(d * block) + c];
                    }

                    for (int d = 0; d < dim; d++)
                    {
                        m[(d * block) + b] -= dot * m[(d * block) + c];
                    }
                }
            }

            double norm = 0;
            for (int d = 0; d < dim; d++)
            {
                norm += m[(d * block) + b] * m[(d * block) + b];
            }

            norm = Math.Sqrt(norm);
            for (int d = 0; d < dim; d++)
            {
                m[(d * block) + b] = norm > 1e-300 ? m[(d * block) + b] / norm : 0;
            }
        }
    }

    /// <summary>Eigenvalues and eigenvectors (columns) of a small symmetric matrix by cyclic Jacobi rotations, largest first.</summary>
    internal static (double[] Values, double[,] Vectors) SymmetricEigen(double[,] matrix)
    {
        int n = matrix.GetLength(0);
        var a = (double[,])matrix.Clone();
        var v = new double[n, n];
        for (int i = 0; i < n; i++)
        {
            v[i, i] = 1;
        }

        double scale = 0;
        for (int i = 0; i < n; i++)
        {
            scale += Math.Abs(a[i, i]);
        }

        for (int sweep = 0; sweep < 60; sweep++)
        {
            double off = 0;
            for (int p = 0; p < n; p++)
            {
                for (int q = p + 1; q < n; q++)
                {
                    off += a[p, q] * a[p, q];
                }
            }

            if (off <= 1e-32 * scale * scale)
            {
                break;
            }

            for (int p = 0; p < n; p++)
            {
                for (int q = p + 1; q < n; q++)
                {
                    if (a[p, q] == 0)
                    {
                        continue;
                    }

                    double theta = (a[q, q] - a[p, p]) / (2 * a[p, q]);
                    double t = (theta >= 0 ? 1 : -1) / (Math.Abs(theta) + Math.Sqrt((theta * theta) + 1));
                    double c = 1 / Math.Sqrt((t * t) + 1), s = t * c;
                    for (int k = 0; k < n; k++)
                    {
                        double akp = a[k, p], akq = a[k, q];
                        a[k, p] = (c * akp) - (s * akq);
                        a[k, q] = (s * akp) + (c * akq);
                    }

                    for (int k = 0; k < n; k++)
                    {
                        double apk = a[p, k], aqk = a[q, k];
                        a[p, k] = (c * apk) - (s * aqk);
                        a[q, k] = (s * apk) + (c * aqk);
                    }

                    for (int k = 0; k < n; k++)
                    {
                        double vkp = v[k, p], vkq = v[k, q];
                        v[k, p] = (c * vkp) - (s * vkq);
                        v[k, q] = (s * vkp) + (c * vkq);
                    }
                }
            }
        }

        var order = Enumerable.Range(0, n).OrderByDescending(i => a[i, i]).ThenBy(i => i).ToArray();
        var values = order.Select(i => a[i, i]).ToArray();
        var vectors = new double[n, n];
        for (int r = 0; r < n; r++)
        {
            for (int k = 0; k < n; k++)
            {
                vectors[r, k] = v[r, order[k]];
            }
        }

        return (values, vectors);
    }

    /// <summary>Sparse symmetric affinities (compressed rows) from neighbour lists, by a per-row perplexity search.</summary>
    private static (int[] Rows, int[] Cols, double[] Values) Affinities(IReadOnlyList<IReadOnlyList<SearchHit>> neighbours, int k, double perplexity)
    {
        int n = neighbours.Count;
        double target = Math.Log(perplexity);
        var conditional = new double[n][];
        Parallel.For(0, n, i =>
        {
            var hits = neighbours[i];
            var distances = new double[k];
            for (int j = 0; j < k; j++)
            {
                distances[j] = Math.Max(0, 2 - (2 * (double)hits[j].Score)); // squared distance of unit vectors
            }

            double beta = 1, lo = 0, hi = double.PositiveInfinity;
            var p = new double[k];
            for (int tries = 0; tries < 200; tries++)
            {
                double min = distances.Min();
                double sum = 0, weighted = 0;
                for (int j = 0; j < k; j++)
                {
                    p[j] = Math.Exp(-beta * (distances[j] - min));
                    sum += p[j];
                    weighted += p[j] * (distances[j] - min);
                }

                double entropy = Math.Log(sum) + (beta * weighted / sum);
                for (int j = 0; j < k; j++)
                {
                    p[j] /= sum;
                }

                if (Math.Abs(entropy - target) < 1e-5)
                {
                    break;
                }

                if (entropy > target)
                {
                    lo = beta;
                    beta = double.IsPositiveInfinity(hi) ? beta * 2 : (beta + hi) / 2;
                }
                else
                {
                    hi = beta;
                    beta = (beta + lo) / 2;
                }
            }

            conditional[i] = p;
        });

        // Symmetrise: p_ij = (p_j|i + p_i|j) / 2n.
        var pairs = new Dictionary<long, double>();
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < k; j++)
            {
                int other = neighbours[i][j].Index;
                double value = conditional[i][j] / (2.0 * n);
                Add(pairs, ((long)i * n) + other, value);
                Add(pairs, ((long)other * n) + i, value);
            }
        }

        var ordered = pairs.OrderBy(p => p.Key).ToList();
        var rows = new int[n + 1];
        var cols = new int[ordered.Count];
        var values = new double[ordered.Count];
        for (int e = 0; e < ordered.Count; e++)
        {
            int row = (int)(ordered[e].Key / n);
            cols[e] = (int)(ordered[e].Key % n);
            values[e] = ordered[e].Value;
            rows[row + 1]++;
        }

        for (int i = 0; i < n; i++)
        {
            rows[i + 1] += rows[i];
        }

        return (rows, cols, values);

        static void Add(Dictionary<long, double> pairs, long key, double value) =>
            pairs[key] = pairs.TryGetValue(key, out double old) ? old + value : value;
    }
}
