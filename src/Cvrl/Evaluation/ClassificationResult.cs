using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Cvrl.Video;

namespace Cvrl.Evaluation;

/// <summary>One class's accuracy.</summary>
/// <param name="Class">The class name.</param>
/// <param name="Videos">Test videos of the class.</param>
/// <param name="Correct">Of those, predicted correctly (top-1).</param>
public sealed record ClassScore(string Class, int Videos, int Correct)
{
    /// <summary><see cref="Correct"/> / <see cref="Videos"/> (0 when the class has no test videos).</summary>
    public double Accuracy => Videos == 0 ? 0 : (double)Correct / Videos;
}

/// <summary>The prediction for one test video.</summary>
/// <param name="Video">The file.</param>
/// <param name="Label">Its true class.</param>
/// <param name="Predicted">The top-1 class.</param>
/// <param name="TopClasses">The highest-scoring classes (up to five), best first.</param>
/// <param name="TopScores">Their scores: softmax probabilities averaged over the views (probe, fine-tune) or normalised vote weights (kNN).</param>
public sealed record VideoPrediction(string Video, int Label, int Predicted, IReadOnlyList<int> TopClasses, IReadOnlyList<float> TopScores);

/// <summary>
/// What an evaluation measured and how: top-1 and top-5 accuracy, per-class accuracy, the confusion matrix, every test
/// video's prediction, the training loss per epoch and the settings used. Serialises to JSON (<see cref="ToJson"/>,
/// <see cref="Save"/>) and back (<see cref="FromJson"/>, <see cref="Load"/>) so that runs can be compared and reproduced.
/// </summary>
public sealed record ClassificationResult
{
    /// <summary>"linear-probe (cached)", "linear-probe (faithful)", "knn" or "fine-tune".</summary>
    public required string Protocol { get; init; }

    /// <summary>Top-1 accuracy over the test videos, in [0, 1].</summary>
    public double Top1 { get; init; }

    /// <summary>Top-5 accuracy (top-C when there are fewer than five classes, which is then 1).</summary>
    public double Top5 { get; init; }

    /// <summary>The mean of the per-class accuracies (classes with test videos only).</summary>
    public double MeanClassAccuracy { get; init; }

    /// <summary>Training videos used (after skipping undecodable ones).</summary>
    public int TrainVideos { get; init; }

    /// <summary>Test videos scored.</summary>
    public int TestVideos { get; init; }

    /// <summary>Class names, in label order.</summary>
    public IReadOnlyList<string> Classes { get; init; } = [];

    /// <summary>Accuracy per class, in label order.</summary>
    public IReadOnlyList<ClassScore> PerClass { get; init; } = [];

    /// <summary>Confusion matrix: <c>ConfusionMatrix[true][predicted]</c> counts test videos.</summary>
    public IReadOnlyList<IReadOnlyList<int>> ConfusionMatrix { get; init; } = [];

    /// <summary>Every test video's prediction, in test-set order.</summary>
    public IReadOnlyList<VideoPrediction> Predictions { get; init; } = [];

    /// <summary>Mean training loss per epoch (empty for kNN).</summary>
    public IReadOnlyList<double> TrainingLoss { get; init; } = [];

    /// <summary>Videos left out because they could not be decoded.</summary>
    public IReadOnlyList<SkippedVideo> Skipped { get; init; } = [];

    /// <summary>The settings used: the protocol's options, the view options and a description of the encoder.</summary>
    public JsonObject Settings { get; init; } = [];

    /// <summary>Wall time of the run.</summary>
    public TimeSpan Elapsed { get; init; }

    /// <summary>When the result was made (UTC, ISO 8601).</summary>
    public string CreatedUtc { get; init; } = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture);

    /// <summary>The Cvrl version that made it.</summary>
    public string CvrlVersion { get; init; } = typeof(ClassificationResult).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    /// <summary>The result as indented JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, CvrlJson.Options);

    /// <summary>Reads a result from JSON.</summary>
    /// <exception cref="InvalidDataException">The text is not a classification result.</exception>
    public static ClassificationResult FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        try
        {
            return JsonSerializer.Deserialize<ClassificationResult>(json, CvrlJson.Options) ?? throw new InvalidDataException("The JSON is null, not a classification result.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Not a classification result: {e.Message}", e);
        }
    }

    /// <summary>Writes the JSON to <paramref name="path"/> atomically.</summary>
    public void Save(string path)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(ToJson());
        AtomicFile.Write(path, s => s.Write(bytes));
    }

    /// <summary>Reads a result saved by <see cref="Save"/>.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a classification result.</exception>
    public static ClassificationResult Load(string path)
    {
        try
        {
            return FromJson(File.ReadAllText(path));
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{path}': {e.Message}", e);
        }
    }

    /// <summary>A one-line summary.</summary>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Protocol}: top-1 {Top1:P1}, top-5 {Top5:P1}, mean class accuracy {MeanClassAccuracy:P1} ({TestVideos} test videos, {Classes.Count} classes)");

    /// <summary>Scores per-video class scores (rows of <paramref name="scores"/>) against the test labels.</summary>
    internal static ClassificationResult Score(string protocol, float[][] scores, VideoFeatures test, int trainVideos, IReadOnlyList<double> trainingLoss, IReadOnlyList<SkippedVideo> skipped, JsonObject settings, TimeSpan elapsed)
    {
        int classes = test.Classes.Count;
        var confusion = new int[classes][];
        for (int c = 0; c < classes; c++)
        {
            confusion[c] = new int[classes];
        }

        int top1 = 0, top5 = 0;
        int k = Math.Min(5, classes);
        var predictions = new List<VideoPrediction>(test.Count);
        for (int i = 0; i < test.Count; i++)
        {
            var row = scores[i];
            // Best first; ties go to the lower class index, so results are deterministic.
            int[] order = [.. Enumerable.Range(0, classes).OrderByDescending(c => row[c]).ThenBy(c => c).Take(k)];
            int label = test.Labels[i];
            int predicted = order[0];
            confusion[label][predicted]++;
            top1 += predicted == label ? 1 : 0;
            top5 += order.Contains(label) ? 1 : 0;
            predictions.Add(new VideoPrediction(test.Paths[i], label, predicted, order, [.. order.Select(c => row[c])]));
        }

        var perClass = Enumerable.Range(0, classes).Select(c => new ClassScore(test.Classes[c], confusion[c].Sum(), confusion[c][c])).ToList();
        var scored = perClass.Where(p => p.Videos > 0).ToList();
        return new ClassificationResult
        {
            Protocol = protocol,
            Top1 = (double)top1 / test.Count,
            Top5 = (double)top5 / test.Count,
            MeanClassAccuracy = scored.Count == 0 ? 0 : scored.Average(p => p.Accuracy),
            TrainVideos = trainVideos,
            TestVideos = test.Count,
            Classes = test.Classes,
            PerClass = perClass,
            ConfusionMatrix = confusion,
            Predictions = predictions,
            TrainingLoss = trainingLoss,
            Skipped = skipped,
            Settings = settings,
            Elapsed = elapsed,
        };
    }

    /// <summary>Serialises an options record (or any settings object) for <see cref="Settings"/>.</summary>
    internal static JsonNode? ToNode<T>(T value) => JsonSerializer.SerializeToNode(value, CvrlJson.Options);
}
