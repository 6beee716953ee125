namespace Cvrl.Embeddings;

/// <summary>A moment of a video: a span of it, with its score.</summary>
/// <param name="Video">The video's key.</param>
/// <param name="StartSeconds">Where the moment starts.</param>
/// <param name="EndSeconds">Where it ends.</param>
/// <param name="Score">
/// The cosine similarity of its best window with the query (<see cref="MomentSearch.Search(EmbeddingSet, ReadOnlySpan{float}, MomentSearchOptions?, MomentSpan?)"/>),
/// or the mean similarity of the query's windows with the windows at the same offsets (<see cref="MomentSearch.SearchAligned(EmbeddingSet, SpanQuery, MomentSearchOptions?, MomentSpan?)"/>).
/// </param>
/// <param name="Windows">Windows merged into it, or with an aligned search the query's windows that found a window at their offset.</param>
/// <param name="Index">The best window's (or the aligned match's first window's) position in the set or index.</param>
public readonly record struct Moment(string Video, double StartSeconds, double EndSeconds, float Score, int Windows, int Index);

/// <summary>A span of a video (for example the query's own, to leave out of its results).</summary>
/// <param name="Video">The video's key, as the set or index keys it.</param>
/// <param name="StartSeconds">Start.</param>
/// <param name="EndSeconds">End (<see cref="double.PositiveInfinity"/> for the rest of the video).</param>
public readonly record struct MomentSpan(string Video, double StartSeconds, double EndSeconds)
{
    /// <summary>Whether the window <c>[start, end)</c> of <paramref name="video"/> overlaps this span.</summary>
    public bool Overlaps(string video, double start, double end) =>
        string.Equals(video, Video, StringComparison.Ordinal) && start < EndSeconds && end > StartSeconds;
}

/// <summary>Options of <see cref="MomentSearch"/>.</summary>
public sealed record MomentSearchOptions
{
    /// <summary>Moments to return. Default 10.</summary>
    public int Top { get; init; } = 10;

    /// <summary>
    /// Windows ranked before grouping (the best ones only: a moment is made of high-scoring windows). Default 2000, and
    /// at least 20 per moment asked for.
    /// </summary>
    public int Candidates { get; init; } = 2000;

    /// <summary>
    /// How much lower than a moment's best window an adjacent or overlapping window may score and still be merged into
    /// it (extending its span); windows that overlap a moment and score lower are suppressed (non-maximum suppression).
    /// Default 0.05. Aligned searches do not merge: their moments are as long as the query.
    /// </summary>
    public double MergeDrop { get; init; } = 0.05;

    /// <summary>Windows closer than this (seconds) count as adjacent. Default 0 (touching or overlapping).</summary>
    public double Gap { get; init; }

    /// <summary>
    /// How a <see cref="WindowIndex"/> is scanned: exact float32, or int8 first with the best candidates re-scored
    /// exactly. Embedding sets are always scored exactly. Default <see cref="ScanPrecision.Float32"/>.
    /// </summary>
    public ScanPrecision Precision { get; init; } = ScanPrecision.Float32;

    /// <summary>Threads scanning a <see cref="WindowIndex"/>. Default: the cores, at most 16.</summary>
    public int Threads { get; init; } = Math.Clamp(Environment.ProcessorCount, 1, 16);

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        if (Top < 1 || Candidates < 1 || Threads < 1)
        {
            string name = Top < 1 ? nameof(Top) : Candidates < 1 ? nameof(Candidates) : nameof(Threads);
            throw new ArgumentOutOfRangeException(name, $"{name} must be at least 1.");
        }

        if (!(MergeDrop >= 0) || !(Gap >= 0) || !double.IsFinite(MergeDrop) || !double.IsFinite(Gap))
        {
            throw new ArgumentOutOfRangeException(MergeDrop >= 0 ? nameof(Gap) : nameof(MergeDrop), "MergeDrop and Gap must be 0 or positive.");
        }

        if (!Enum.IsDefined(Precision))
        {
            throw new ArgumentOutOfRangeException(nameof(Precision), Precision, "Unknown precision.");
        }
    }
}

/// <summary>
/// A span of a video as a query: some of its windows' features with their offsets from the first, so that a search can
/// match the span window by window (<see cref="MomentSearch.SearchAligned(EmbeddingSet, SpanQuery, MomentSearchOptions?, MomentSpan?)"/>)
/// or as one mean vector (<see cref="Mean"/>).
/// </summary>
public sealed class SpanQuery
{
    private SpanQuery(IReadOnlyList<double> offsets, IReadOnlyList<float[]> vectors, double length, int windowsInSpan)
    {
        Offsets = offsets;
        Vectors = vectors;
        LengthSeconds = length;
        WindowsInSpan = windowsInSpan;
    }

    /// <summary>Each chosen window's start, in seconds after the first's.</summary>
    public IReadOnlyList<double> Offsets { get; }

    /// <summary>Each chosen window's feature.</summary>
    public IReadOnlyList<float[]> Vectors { get; }

    /// <summary>From the first window's start to the last window's end.</summary>
    public double LengthSeconds { get; }

    /// <summary>Windows of the video inside the span (of which at most the maximum asked for were chosen, evenly).</summary>
    public int WindowsInSpan { get; }

    /// <summary>
    /// The query of the windows of <paramref name="features"/> inside <c>[start, end]</c> (all windows when both are
    /// null; those that overlap the span when none lies inside it), at most <paramref name="maxWindows"/> of them chosen
    /// evenly from first to last.
    /// </summary>
    /// <exception cref="ArgumentException">No window overlaps the span; the message gives the video's length.</exception>
    public static SpanQuery FromWindows(WindowFeatures features, double? startSeconds = null, double? endSeconds = null, int maxWindows = 16)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxWindows, 1);
        double from = startSeconds ?? double.NegativeInfinity, to = endSeconds ?? double.PositiveInfinity;
        var w = features.Windows;
        var inside = Enumerable.Range(0, w.Count).Where(i => w[i].StartSeconds >= from - 1e-6 && w[i].EndSeconds <= to + 1e-6).ToList();
        if (inside.Count == 0)
        {
            inside = [.. Enumerable.Range(0, w.Count).Where(i => w[i].StartSeconds < to && w[i].EndSeconds > from)];
        }

        if (inside.Count == 0)
        {
            double length = w.Count > 0 ? w[^1].EndSeconds : 0;
            throw new ArgumentException(FormattableString.Invariant($"'{features.Key}' has no window in {from:0.##}-{to:0.##} s (it is {length:0.##} s long)."), nameof(startSeconds));
        }

        int count = Math.Min(maxWindows, inside.Count);
        var chosen = Enumerable.Range(0, count).Select(k => inside[count == 1 ? 0 : (int)Math.Round((double)k * (inside.Count - 1) / (count - 1))]).Distinct().ToList();
        double first = w[chosen[0]].StartSeconds;
        return new SpanQuery(
            [.. chosen.Select(i => w[i].StartSeconds - first)],
            [.. chosen.Select(i => features[i].ToArray())],
            w[inside[^1]].EndSeconds - first,
            inside.Count);
    }

    /// <summary>The mean of the chosen windows' features, each L2-normalised first.</summary>
    public float[] Mean()
    {
        var mean = new float[Vectors[0].Length];
        foreach (var v in Vectors)
        {
            double norm = Math.Sqrt(v.Sum(x => (double)x * x));
            for (int d = 0; d < mean.Length; d++)
            {
                mean[d] += (float)(v[d] / (norm > 0 ? norm : 1) / Vectors.Count);
            }
        }

        return mean;
    }
}

/// <summary>
/// Search for moments in windows: a set of windows (items keyed <see cref="MomentKey"/>: video and span) or a
/// <see cref="WindowIndex"/>. <see cref="Search(EmbeddingSet, ReadOnlySpan{float}, MomentSearchOptions?, MomentSpan?)"/>
/// scores every window against one vector, keeps the best candidates and applies temporal non-maximum suppression in
/// order of score: a window that overlaps or touches a moment already found in its video joins it (extending its span)
/// when it scores within <see cref="MomentSearchOptions.MergeDrop"/> of the moment's best window and is suppressed
/// otherwise, so the adjacent windows of one hit come back as one moment. <see cref="SearchAligned(EmbeddingSet, SpanQuery, MomentSearchOptions?, MomentSpan?)"/>
/// matches a span window by window: each window of a video is tried as the start, each query window is compared with
/// the window at its offset from there, and the mean is the score, so a copy of the span scores as high as the span
/// itself at exactly its place; overlapping matches are suppressed. Items without a span are moments of their whole video.
/// </summary>
public static class MomentSearch
{
    /// <summary>The moments of a set of windows most similar to <paramref name="query"/>, best first (ties by position).</summary>
    /// <param name="windows">The set of windows.</param>
    /// <param name="query">The query vector (for example <see cref="SpanQuery.Mean"/>).</param>
    /// <param name="options">Options (validated); null for the defaults.</param>
    /// <param name="exclude">Windows to leave out (for example the query's own span); null for none.</param>
    /// <returns>The moments.</returns>
    /// <exception cref="ArgumentException">The query has the wrong length or is all zeros.</exception>
    public static IReadOnlyList<Moment> Search(EmbeddingSet windows, ReadOnlySpan<float> query, MomentSearchOptions? options = null, MomentSpan? exclude = null)
    {
        ArgumentNullException.ThrowIfNull(windows);
        return Search(new SetRows(windows), query, options, exclude);
    }

    /// <summary>The moments of an index most similar to <paramref name="query"/>, best first (ties by row).</summary>
    /// <inheritdoc cref="Search(EmbeddingSet, ReadOnlySpan{float}, MomentSearchOptions?, MomentSpan?)"/>
    public static IReadOnlyList<Moment> Search(WindowIndex windows, ReadOnlySpan<float> query, MomentSearchOptions? options = null, MomentSpan? exclude = null)
    {
        ArgumentNullException.ThrowIfNull(windows);
        return Search(new IndexRows(windows), query, options, exclude);
    }

    /// <summary>The moments of a set of windows that match <paramref name="query"/> window by window, best first.</summary>
    /// <param name="windows">The set of windows.</param>
    /// <param name="query">The span.</param>
    /// <param name="options">Options (validated); null for the defaults. <see cref="MomentSearchOptions.MergeDrop"/> is not used.</param>
    /// <param name="exclude">Windows to leave out: a match that uses one is not a result; null for none.</param>
    /// <returns>The moments, each as long as the query.</returns>
    /// <exception cref="ArgumentException">The query's vectors have the wrong length or are zero.</exception>
    public static IReadOnlyList<Moment> SearchAligned(EmbeddingSet windows, SpanQuery query, MomentSearchOptions? options = null, MomentSpan? exclude = null)
    {
        ArgumentNullException.ThrowIfNull(windows);
        return SearchAligned(new SetRows(windows), query, options, exclude);
    }

    /// <summary>The moments of an index that match <paramref name="query"/> window by window, best first.</summary>
    /// <inheritdoc cref="SearchAligned(EmbeddingSet, SpanQuery, MomentSearchOptions?, MomentSpan?)"/>
    public static IReadOnlyList<Moment> SearchAligned(WindowIndex windows, SpanQuery query, MomentSearchOptions? options = null, MomentSpan? exclude = null)
    {
        ArgumentNullException.ThrowIfNull(windows);
        return SearchAligned(new IndexRows(windows), query, options, exclude);
    }

    private static IReadOnlyList<Moment> Search(IWindowRows rows, ReadOnlySpan<float> query, MomentSearchOptions? options, MomentSpan? exclude)
    {
        options ??= new MomentSearchOptions();
        options.Validate();
        var excluded = exclude is { } span ? rows.Overlapping(span) : null;
        int candidates = Math.Min(rows.Count, Math.Max(options.Candidates, 20 * options.Top));
        var ranked = rows.Best(query, candidates, options, excluded is null ? null : excluded.Contains);

        var moments = new List<(string Video, double Start, double End, float Score, int Windows, int Index)>();
        var byVideo = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        foreach (var (i, score) in ranked)
        {
            var (video, start, end) = rows.SpanOf(i);
            if (!byVideo.TryGetValue(video, out var found))
            {
                byVideo[video] = found = [];
            }

            int touching = found.FindIndex(m => start <= moments[m].End + options.Gap && end >= moments[m].Start - options.Gap);
            if (touching < 0)
            {
                found.Add(moments.Count);
                moments.Add((video, start, end, score, 1, i));
                continue;
            }

            var moment = moments[found[touching]];
            if (score >= moment.Score - options.MergeDrop)
            {
                moments[found[touching]] = moment with { Start = Math.Min(moment.Start, start), End = Math.Max(moment.End, end), Windows = moment.Windows + 1 };
            }
        }

        // A moment extended over another of its video (found earlier, before they touched) absorbs it.
        for (int a = 0; a < moments.Count; a++)
        {
            for (int b = moments.Count - 1; b > a; b--)
            {
                var (x, y) = (moments[a], moments[b]);
                if (x.Video == y.Video && y.Start <= x.End + options.Gap && y.End >= x.Start - options.Gap)
                {
                    moments[a] = x with { Start = Math.Min(x.Start, y.Start), End = Math.Max(x.End, y.End), Windows = x.Windows + y.Windows };
                    moments.RemoveAt(b);
                    b = moments.Count; // the wider moment may now touch others
                }
            }
        }

        return [.. moments.Take(options.Top).Select(m => new Moment(m.Video, m.Start, double.IsPositiveInfinity(m.End) ? m.Start : m.End, m.Score, m.Windows, m.Index))];
    }

    private static IReadOnlyList<Moment> SearchAligned(IWindowRows rows, SpanQuery query, MomentSearchOptions? options, MomentSpan? exclude)
    {
        ArgumentNullException.ThrowIfNull(query);
        options ??= new MomentSearchOptions();
        options.Validate();
        int k = query.Vectors.Count;
        float[][] scores = rows.ScoreAll(query.Vectors, options.Threads);
        var excluded = exclude is { } span ? rows.Overlapping(span) : null;

        var matches = new List<(int Video, double Start, double End, float Score, int Matched, int Index)>();
        var videos = rows.Videos();
        var pointer = new int[k];
        for (int v = 0; v < videos.Count; v++)
        {
            var (_, order, starts, videoEnd) = videos[v];
            int n = order.Length;

            // Half the typical spacing of this video's windows: how far from its offset a window may start and still count.
            double tolerance = n > 1 ? Median(Enumerable.Range(1, n - 1).Select(i => starts[i] - starts[i - 1])) / 2 : double.PositiveInfinity;
            tolerance = double.IsFinite(tolerance) ? tolerance + 1e-6 : tolerance;
            Array.Clear(pointer);
            for (int a = 0; a < n; a++)
            {
                double total = 0;
                int matched = 0;
                bool skip = false;
                for (int j = 0; j < k && !skip; j++)
                {
                    double target = starts[a] + query.Offsets[j];
                    ref int p = ref pointer[j];
                    while (p + 1 < n && Math.Abs(starts[p + 1] - target) <= Math.Abs(starts[p] - target))
                    {
                        p++;
                    }

                    if (Math.Abs(starts[p] - target) <= tolerance)
                    {
                        total += scores[j][order[p]];
                        matched++;
                        skip = excluded?.Contains(order[p]) == true;
                    }
                }

                if (!skip && matched > 0)
                {
                    // A query window with no window at its offset (past the video's end) counts as similarity 0.
                    matches.Add((v, starts[a], Math.Min(starts[a] + query.LengthSeconds, videoEnd), (float)(total / k), matched, order[a]));
                }
            }
        }

        // Non-maximum suppression: the best match first; a match overlapping one already taken in its video is dropped.
        matches.Sort((x, y) => x.Score != y.Score ? y.Score.CompareTo(x.Score) : x.Index.CompareTo(y.Index));
        var taken = new List<(int Video, double Start, double End, float Score, int Matched, int Index)>();
        foreach (var m in matches)
        {
            if (taken.Exists(t => t.Video == m.Video && m.Start < t.End && m.End > t.Start))
            {
                continue;
            }

            taken.Add(m);
            if (taken.Count == options.Top)
            {
                break;
            }
        }

        return [.. taken.Select(m => new Moment(videos[m.Video].Key, m.Start, m.End, m.Score, m.Matched, m.Index))];
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.PositiveInfinity : sorted[sorted.Length / 2];
    }

    /// <summary>What moment search needs of a set or an index.</summary>
    private interface IWindowRows
    {
        int Count { get; }

        (string Video, double Start, double End) SpanOf(int row);

        HashSet<int> Overlapping(MomentSpan span);

        List<(int Row, float Score)> Best(ReadOnlySpan<float> query, int count, MomentSearchOptions options, Func<int, bool>? exclude);

        float[][] ScoreAll(IReadOnlyList<float[]> queries, int threads);

        /// <summary>Each video: its key, its rows in order of start, their starts, and its last window's end.</summary>
        IReadOnlyList<(string Key, int[] Order, double[] Starts, double End)> Videos();
    }

    private sealed class SetRows(EmbeddingSet set) : IWindowRows
    {
        private (string Video, double Start, double End)[]? _spans;

        public int Count => set.Count;

        public (string Video, double Start, double End) SpanOf(int row) =>
            _spans?[row] ?? (MomentKey.TryParse(set.Keys[row], out string video, out double start, out double end) ? (video, start, end) : (video, 0, double.PositiveInfinity));

        public HashSet<int> Overlapping(MomentSpan span)
        {
            Parse();
            return [.. Enumerable.Range(0, Count).Where(i => span.Overlaps(_spans![i].Video, _spans[i].Start, _spans[i].End))];
        }

        public List<(int Row, float Score)> Best(ReadOnlySpan<float> query, int count, MomentSearchOptions options, Func<int, bool>? exclude)
        {
            float[] scores = set.Scores(query);
            return [.. Enumerable.Range(0, Count).Where(i => exclude?.Invoke(i) != true).OrderByDescending(i => scores[i]).ThenBy(i => i).Take(count).Select(i => (i, scores[i]))];
        }

        public float[][] ScoreAll(IReadOnlyList<float[]> queries, int threads)
        {
            var all = new float[queries.Count][];
            Parallel.For(0, queries.Count, new ParallelOptions { MaxDegreeOfParallelism = threads }, j => all[j] = set.Scores(queries[j]));
            return all;
        }

        public IReadOnlyList<(string Key, int[] Order, double[] Starts, double End)> Videos()
        {
            Parse();
            return [.. Enumerable.Range(0, Count).GroupBy(i => _spans![i].Video, StringComparer.Ordinal).Select(g =>
            {
                int[] order = [.. g.OrderBy(i => _spans![i].Start).ThenBy(i => i)];
                double end = order.Max(i => _spans![i].End);
                return (g.Key, order, order.Select(i => _spans![i].Start).ToArray(), double.IsPositiveInfinity(end) ? order.Max(i => _spans![i].Start) : end);
            })];
        }

        private void Parse() => _spans ??= [.. Enumerable.Range(0, Count).Select(i => MomentKey.TryParse(set.Keys[i], out string video, out double start, out double end) ? (video, start, end) : (video, 0.0, double.PositiveInfinity))];
    }

    private sealed class IndexRows(WindowIndex index) : IWindowRows
    {
        public int Count => index.Count;

        public (string Video, double Start, double End) SpanOf(int row)
        {
            var (start, end) = index.SpanOf(row);
            return (index.Videos[index.VideoOf(row)].Key, start, end);
        }

        public HashSet<int> Overlapping(MomentSpan span)
        {
            int video = -1;
            for (int v = 0; v < index.Videos.Count && video < 0; v++)
            {
                video = string.Equals(index.Videos[v].Key, span.Video, StringComparison.Ordinal) ? v : -1;
            }

            return video < 0 ? [] : [.. index.RowsOverlapping(video, span.StartSeconds, span.EndSeconds)];
        }

        public List<(int Row, float Score)> Best(ReadOnlySpan<float> query, int count, MomentSearchOptions options, Func<int, bool>? exclude) =>
            [.. index.Search(query, new IndexSearchOptions { Top = count, Precision = options.Precision, Rerank = 2 * count, Threads = options.Threads }, exclude).Select(h => (h.Index, h.Score))];

        public float[][] ScoreAll(IReadOnlyList<float[]> queries, int threads) => index.ScoreAll(queries, threads);

        public IReadOnlyList<(string Key, int[] Order, double[] Starts, double End)> Videos() =>
            [.. index.Videos.Select(v =>
            {
                int[] order = [.. Enumerable.Range(v.FirstRow, v.Rows)];
                return (v.Key, order, order.Select(r => index.SpanOf(r).Start).ToArray(), index.SpanOf(v.FirstRow + v.Rows - 1).End);
            })];
    }
}
