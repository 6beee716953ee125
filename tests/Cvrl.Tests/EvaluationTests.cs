using Cvrl.Augment.Functional;
using Cvrl.Augment.Sampling;
using Cvrl.Augment.Video;
using Cvrl.Data;
using Cvrl.Evaluation;
using Cvrl.Models;
using Cvrl.Models.Weights;
using Cvrl.Testing;
using Cvrl.Training;
using Cvrl.Video;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Tests;

/// <summary>A parameter-free encoder whose features are the clip's mean colour and a left-right brightness difference.</summary>
internal sealed class MeanColourEncoder() : nn.Module<Tensor, Tensor>("mean_colour")
{
    public static float[] Of(Tensor clip)
    {
        // clip [3, T, H, W], computed element by element so the test does not reuse the module's code path.
        var data = clip.contiguous().data<float>().ToArray();
        long t = clip.shape[1], h = clip.shape[2], w = clip.shape[3];
        var f = new double[4];
        double left = 0, right = 0;
        for (int c = 0; c < 3; c++)
        {
            for (long i = 0; i < t * h * w; i++)
            {
                double v = data[(c * t * h * w) + i];
                f[c] += v;
                if (c == 0)
                {
                    long x = i % w;
                    if (x < w / 2)
                    {
                        left += v;
                    }
                    else if (x >= w - (w / 2))
                    {
                        right += v;
                    }
                }
            }

            f[c] /= t * h * w;
        }

        f[3] = (left - right) / (t * h * (w / 2));
        return [.. f.Select(v => (float)v)];
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = torch.NewDisposeScope();
        long w = input.shape[4], half = w / 2;
        var colour = input.mean([2, 3, 4]);
        var leftRight = input[.., 0].narrow(3, 0, half).mean([1, 2, 3]).sub(input[.., 0].narrow(3, w - half, half).mean([1, 2, 3]));
        return torch.cat([colour, leftRight.unsqueeze(1)], 1).MoveToOuterDisposeScope();
    }
}

[Collection("Torch")]
public sealed class EvaluationTests
{
    internal static readonly EvaluationViewOptions SmallViews = EvaluationViewOptions.Small(frames: 4, stride: 2, size: 32, testClips: 3, testCrops: 3);

    internal static LinearProbeOptions Probe(ProbeMode mode = ProbeMode.Cached) => new()
    {
        Mode = mode,
        Epochs = 20,
        BatchSize = 8,
        LearningRate = 2.0,
        CachedTrainViews = 4,
        Seed = 5,
        Features = new FeatureExtractorOptions { Views = SmallViews, BatchSize = 8, Workers = 2 },
    };

    private static (VideoDataset Train, VideoDataset Test) ColourSplits(TempDirectory dir, int classes = 3, int trainPerClass = 6, int testPerClass = 4)
    {
        var train = VideoDataset.FromClassFolders(ColourClasses.Create(dir.File("train"), classes, trainPerClass, seed: 1));
        var test = VideoDataset.FromClassFolders(ColourClasses.Create(dir.File("test"), classes, testPerClass, seed: 2));
        return (train, test);
    }

    private static VideoDataset Shuffled(VideoDataset data, int seed)
    {
        var rng = new Random(seed);
        var labels = data.Items.Select(_ => rng.Next(data.Classes.Count)).ToList();
        return VideoDataset.FromPaths(data.Items.Select(i => i.Path), labels, data.Classes);
    }

    [Fact]
    public void LinearProbe_SeparatesColourClasses_AndReportsEverything()
    {
        using var dir = new TempDirectory();
        var (train, test) = ColourSplits(dir);
        using var encoder = new MeanColourEncoder();
        long live = LiveTensors.Settled();
        var reports = new List<StageProgress>();
        using (var run = new LinearProbe(Probe()).Fit(encoder, train, test, new SyncProgress<StageProgress>(reports.Add)))
        {
            var r = run.Result;
            Assert.Equal("linear-probe (cached)", r.Protocol);
            Assert.True(r.Top1 >= 0.99, $"top-1 {r.Top1}");
            Assert.Equal(1.0, r.Top5);
            Assert.Equal(18, r.TrainVideos);
            Assert.Equal(12, r.TestVideos);
            Assert.Equal(["class0", "class1", "class2"], r.Classes);
            Assert.All(r.PerClass, p => Assert.Equal(4, p.Videos));
            Assert.Equal(12, r.ConfusionMatrix.Sum(row => row.Sum()));
            Assert.Equal(r.PerClass.Sum(p => p.Correct), Enumerable.Range(0, 3).Sum(c => r.ConfusionMatrix[c][c]));
            Assert.Equal(20, r.TrainingLoss.Count);
            Assert.True(r.TrainingLoss[^1] < r.TrainingLoss[0], "the training loss fell");
            Assert.All(r.Predictions, p => TorchAssert.Near(1.0, p.TopScores.Sum(), 0, 1e-5)); // float32 probabilities of 3 classes
            Assert.Equal(2.0, r.Settings["learningRate"]!.GetValue<double>());
            Assert.Equal(3, r.Settings["probe"]!["Features"]!["Views"]!["Test"]!["Clips"]!.GetValue<int>());
            Assert.Equal([3, 4], [run.Classifier.weight!.shape[0], run.Classifier.weight.shape[1]]);
        }

        Assert.Contains(reports, p => p.Stage == "test features" && p.Completed == 12 && p.Total == 12);
        Assert.Contains(reports, p => p.Stage == "training" && p.Completed == 20 && p.Loss is double);
        Assert.Equal(live + LiveTensors.HusksPerLinearLayer, LiveTensors.Count);
    }

    [Fact]
    public void LinearProbeAndKnn_OnShuffledLabels_StayNearChance()
    {
        using var dir = new TempDirectory();
        var (train, test) = ColourSplits(dir, classes: 3, trainPerClass: 10, testPerClass: 10);
        using var encoder = new MeanColourEncoder();
        var shuffledTrain = Shuffled(train, 11);
        var shuffledTest = Shuffled(test, 12);
        using var run = new LinearProbe(Probe()).Fit(encoder, shuffledTrain, shuffledTest);
        using var knnRun = new KnnClassifier(new KnnOptions { K = 5, Features = Probe().Features }).Fit(encoder, shuffledTrain, shuffledTest);
        var knn = knnRun.Result;

        // Chance is 1/3 on 30 test videos (sd 0.086); 0.6 is three standard deviations above it. The seeds are fixed.
        Assert.True(run.Result.Top1 < 0.6, $"probe top-1 {run.Result.Top1} on shuffled labels");
        Assert.True(knn.Top1 < 0.6, $"kNN top-1 {knn.Top1} on shuffled labels");
    }

    [Fact]
    public void ThirtyViewAveraging_MatchesAHandComputation()
    {
        using var dir = new TempDirectory();
        var (train, test) = ColourSplits(dir, classes: 3, trainPerClass: 3, testPerClass: 2);
        using var encoder = new MeanColourEncoder();
        var views = EvaluationViewOptions.Small(frames: 4, stride: 2, size: 32, testClips: 10, testCrops: 3);
        using var run = new LinearProbe(Probe() with { Epochs = 5, Features = Probe().Features with { Views = views } }).Fit(encoder, train, test);
        var weight = run.Classifier.weight!.data<float>().ToArray();
        var bias = run.Classifier.bias!.data<float>().ToArray();

        for (int video = 0; video < test.Count; video++)
        {
            using var scope = torch.NewDisposeScope();
            using var reader = VideoReader.Open(test[video].Path);
            int frames = reader.CountFrames();
            var average = new double[3];
            int viewCount = 0;
            foreach (var window in new UniformClipSampler(10, 4, 2).Sample(frames))
            {
                // As the official evaluation: resize (to uint8), then to float.
                var clip = ClipOps.ToFloat(ClipOps.ResizeShortSide(reader.ReadClip(window.Indices(frames)), 32));
                foreach (var box in ClipOps.ThreeCropBoxes((int)clip.shape[2], (int)clip.shape[3], 32))
                {
                    var f = MeanColourEncoder.Of(ClipOps.Crop(clip, box));
                    double norm = Math.Sqrt(f.Sum(x => (double)x * x));
                    var logits = Enumerable.Range(0, 3).Select(c => bias[c] + Enumerable.Range(0, 4).Sum(d => weight[(c * 4) + d] * f[d] / norm)).ToArray();
                    double max = logits.Max();
                    double z = logits.Sum(l => Math.Exp(l - max));
                    for (int c = 0; c < 3; c++)
                    {
                        average[c] += Math.Exp(logits[c] - max) / z;
                    }

                    viewCount++;
                }
            }

            Assert.Equal(30, viewCount);
            var prediction = run.Result.Predictions[video];
            for (int k = 0; k < 3; k++)
            {
                TorchAssert.Near(average[prediction.TopClasses[k]] / 30, prediction.TopScores[k], 1e-5, 1e-6); // float32 softmax mean over 30 views
            }

            Assert.Equal(Array.IndexOf(average, average.Max()), prediction.Predicted);
        }
    }

    [Fact]
    public void CachedWithOneViewPerEpoch_EqualsFaithful()
    {
        using var dir = new TempDirectory();
        var (train, test) = ColourSplits(dir, classes: 2, trainPerClass: 4, testPerClass: 2);
        using var encoder = new MeanColourEncoder();
        var options = Probe() with { Epochs = 4, CachedTrainViews = 4 };
        using var cached = new LinearProbe(options).Fit(encoder, train, test);
        using var faithful = new LinearProbe(options with { Mode = ProbeMode.Faithful }).Fit(encoder, train, test);
        Assert.Equal("linear-probe (faithful)", faithful.Result.Protocol);
        TorchAssert.AllClose(cached.Classifier.weight!, faithful.Classifier.weight!, 1e-4, 1e-5);
        Assert.Equal(cached.Result.TrainingLoss, faithful.Result.TrainingLoss, (a, b) => Math.Abs(a - b) < 1e-5);

        // With fewer cached views than epochs the views repeat, so the training differs.
        using var reused = new LinearProbe(options with { CachedTrainViews = 1 }).Fit(encoder, train, test);
        Assert.True(TorchAssert.MaxDiff(cached.Classifier.weight!, reused.Classifier.weight!) > 1e-4);
    }

    [Fact]
    public void LinearProbe_LeavesTheBackboneAndItsBatchNormStatisticsUnchanged()
    {
        using var dir = new TempDirectory();
        var (train, test) = ColourSplits(dir, classes: 2, trainPerClass: 3, testPerClass: 2);
        using var encoder = TrainerTests.TinyEncoder(4);
        encoder.train();
        var before = Snapshot(encoder);
        foreach (var mode in new[] { ProbeMode.Cached, ProbeMode.Faithful })
        {
            using var run = new LinearProbe(Probe(mode) with { Epochs = 2 }).Fit(encoder, train, test);
            Assert.Equal(2, run.Result.TrainingLoss.Count);
        }

        Assert.True(encoder.training, "the encoder's training flag is restored");
        AssertSame(before, Snapshot(encoder));
        DisposeAll(before);
    }

    [Fact]
    public void FineTuning_ChangesTheBackbone_AndScoresTheTestSplit()
    {
        using var dir = new TempDirectory();
        var (train, test) = ColourSplits(dir, classes: 2, trainPerClass: 3, testPerClass: 2);
        using var encoder = TrainerTests.TinyEncoder(4);
        var before = Snapshot(encoder);
        var options = new FineTuneOptions
        {
            Epochs = 2,
            BatchSize = 3,
            HeadLearningRate = 0.1,
            BackboneLearningRate = 0.01,
            Features = new FeatureExtractorOptions { Views = SmallViews, BatchSize = 6, Workers = 2 },
        };
        long live = LiveTensors.Settled();
        using (var run = new FineTuner(options).Fit(encoder, train, test))
        {
            Assert.Equal("fine-tune", run.Result.Protocol);
            Assert.Equal(2, run.Result.TrainingLoss.Count);
            Assert.Equal(4, run.Result.TestVideos);
            Assert.False(run.NormalizesFeatures);
            Assert.Equal(0.01, run.Result.Settings["backboneLearningRate"]!.GetValue<double>());
        }

        Assert.Equal(live + LiveTensors.HusksPerLinearLayer, LiveTensors.Count);
        var after = Snapshot(encoder);
        var changed = before.Keys.Where(k => TorchAssert.MaxDiff(before[k], after[k]) > 0).ToList();
        Assert.Contains(changed, k => k.EndsWith(".weight", StringComparison.Ordinal) && k.Contains("conv", StringComparison.Ordinal));
        Assert.Contains(changed, k => k.EndsWith("running_mean", StringComparison.Ordinal));
        DisposeAll(before);
        DisposeAll(after);
    }

    [Fact]
    public void Knn_SeparatesColourClasses_AndVotesAsSpecified()
    {
        using var dir = new TempDirectory();
        var (train, test) = ColourSplits(dir);
        using var encoder = new MeanColourEncoder();
        using var run = new KnnClassifier(new KnnOptions { K = 3, Features = Probe().Features }).Fit(encoder, train, test);
        var result = run.Result;
        Assert.Equal("knn", result.Protocol);
        Assert.True(result.Top1 >= 0.99, $"kNN top-1 {result.Top1}");
        Assert.Empty(result.TrainingLoss);

        // By hand: neighbours of (1, 0) are A (sim 1, class 0), B (0.8, class 1), C (0, class 1); k = 2, T = 0.5.
        string[] classes = ["a", "b"];
        var reference = new VideoFeatures(["A", "B", "C"], [0, 1, 1], classes, 1, 2, [[1f, 0f], [0.8f, 0.6f], [0f, 1f]], normalized: true);
        var query = new VideoFeatures(["Q"], [0], classes, 1, 2, [[1f, 0f]], normalized: true);
        using var votedRun = new KnnClassifier(new KnnOptions { K = 2, Temperature = 0.5 }).Fit(reference, query);
        var voted = votedRun.Result;
        double expected = Math.Exp(2) / (Math.Exp(2) + Math.Exp(1.6));
        Assert.Equal(0, voted.Predictions[0].Predicted);
        TorchAssert.Near(expected, voted.Predictions[0].TopScores[0], 1e-5, 1e-6); // float32 exponentials of two similarities
        TorchAssert.Near(1 - expected, voted.Predictions[0].TopScores[1], 1e-5, 1e-6);

        // The run classifies further videos through the same base type as the probe's and fine-tuning's runs.
        EvaluationRun asRun = votedRun;
        var again = asRun.Predict(new VideoFeatures(["R"], [-1], [], 1, 2, [[0f, 1f]], normalized: true));
        Assert.Equal(["a", "b"], asRun.Classes);
        Assert.Equal([0f, 1f], again[0]); // its two nearest references, C (similarity 1) and B (0.6), are both class b
        using var equalRun = new KnnClassifier(new KnnOptions { K = 3, Temperature = null }).Fit(reference, query);
        var equal = equalRun.Result;
        Assert.Equal(1, equal.Predictions[0].Predicted);
        TorchAssert.Near(2 / 3.0, equal.Predictions[0].TopScores[0], 1e-6, 0);
    }

    [Fact]
    public void Result_RoundTripsThroughJson()
    {
        using var dir = new TempDirectory();
        var (train, test) = ColourSplits(dir, classes: 2, trainPerClass: 3, testPerClass: 2);
        using var encoder = new MeanColourEncoder();
        using var run = new LinearProbe(Probe() with { Epochs = 3 }).Fit(encoder, train, test);
        string path = dir.File("result.json");
        run.Result.Save(path);
        var back = ClassificationResult.Load(path);
        Assert.Equal(run.Result.Protocol, back.Protocol);
        Assert.Equal(run.Result.Top1, back.Top1);
        Assert.Equal(run.Result.Top5, back.Top5);
        Assert.Equal(run.Result.MeanClassAccuracy, back.MeanClassAccuracy);
        Assert.Equal(run.Result.Classes, back.Classes);
        Assert.Equal(run.Result.PerClass, back.PerClass);
        Assert.Equal(run.Result.ConfusionMatrix.Select(r => r.ToArray()), back.ConfusionMatrix.Select(r => r.ToArray()));
        Assert.Equal(run.Result.Predictions.Select(p => (p.Video, p.Label, p.Predicted, string.Join(",", p.TopClasses), string.Join(",", p.TopScores))),
            back.Predictions.Select(p => (p.Video, p.Label, p.Predicted, string.Join(",", p.TopClasses), string.Join(",", p.TopScores))));
        Assert.Equal(run.Result.TrainingLoss, back.TrainingLoss);
        Assert.Equal(run.Result.Settings.ToJsonString(), back.Settings.ToJsonString());
        Assert.Equal(run.Result.Elapsed, back.Elapsed);
        Assert.Equal(run.Result.ToJson(), back.ToJson());
        File.WriteAllText(dir.File("bad.json"), "{\"Top1\": \"high\"}");
        Assert.Throws<InvalidDataException>(() => ClassificationResult.Load(dir.File("bad.json")));
    }

    [Fact]
    public void BadInputs_FailBeforeAnyWork()
    {
        using var dir = new TempDirectory();
        var (train, test) = ColourSplits(dir, classes: 3, trainPerClass: 2, testPerClass: 1);
        using var encoder = new MeanColourEncoder();
        var probe = new LinearProbe(Probe());

        // Labels that do not match: the test split has other classes.
        var otherClasses = VideoDataset.FromPaths(test.Items.Select(i => i.Path), test.Items.Select(i => i.Label), ["class0", "class1", "walking"]);
        var e = Assert.Throws<DatasetException>(() => probe.Fit(encoder, train, otherClasses));
        Assert.Contains("walking", e.Message, StringComparison.Ordinal);

        // An empty split.
        e = Assert.Throws<DatasetException>(() => probe.Fit(encoder, train, test.Subset([])));
        Assert.Contains("test split", e.Message, StringComparison.Ordinal);

        // A class with no training videos.
        var missingClass = train.Subset(Enumerable.Range(0, train.Count).Where(i => train[i].Label != 1));
        e = Assert.Throws<DatasetException>(() => new KnnClassifier(new KnnOptions { Features = Probe().Features }).Fit(encoder, missingClass, test));
        Assert.Contains("'class1'", e.Message, StringComparison.Ordinal);

        // Unlabelled data.
        Assert.Throws<DatasetException>(() => probe.Fit(encoder, train.Unlabeled(), test));

        // Features for another classifier.
        using var run = new LinearProbe(Probe() with { Epochs = 1 }).Fit(encoder, train, test);
        var features = new VideoFeatures(["x"], [0], ["a", "b", "c"], 1, 4, [[1f, 0f, 0f, 0f]], normalized: true);
        Assert.Throws<DatasetException>(() => run.Predict(features));
        var wrongDim = new VideoFeatures(["x"], [0], train.Classes, 1, 2, [[1f, 0f]], normalized: true);
        Assert.Throws<ArgumentException>(() => run.Predict(wrongDim));

        // Views too small for the encoder, and an encoder that already classifies.
        using var r3d = TrainerTests.TinyEncoder();
        var tooSmall = Probe() with { Features = Probe().Features with { Views = EvaluationViewOptions.Small(1, 1, 8) } };
        var small = Assert.Throws<ArgumentException>(() => new LinearProbe(tooSmall).Fit(r3d, train, test));
        Assert.Contains("smaller than the encoder accepts", small.Message, StringComparison.Ordinal);
        using var classifier = ResNet3d.Create(r3d.Options with { NumClasses = 7 });
        var wrong = Assert.Throws<ArgumentException>(() => new FineTuner(new FineTuneOptions { Features = Probe().Features }).Fit(classifier, train, test));
        Assert.Contains("7 classes", wrong.Message, StringComparison.Ordinal);

        // Options out of range name themselves.
        var bad = Assert.Throws<ArgumentOutOfRangeException>(() => new LinearProbe(Probe() with { Epochs = 0 }));
        Assert.Equal("Epochs", bad.ParamName);
        Assert.Equal("Crops", Assert.Throws<ArgumentOutOfRangeException>(() => new EvaluationViews(SmallViews with { Test = SmallViews.Test with { Crops = 2 } })).ParamName);
    }

    [Fact]
    public void CheckpointOfAnotherArchitecture_IsRefusedWithBothNames()
    {
        using var dir = new TempDirectory();
        using var encoder = TrainerTests.TinyEncoder();
        using var store = new CheckpointStore(dir.File("ckpt"), 1);
        var state = new CheckpointState { Encoder = encoder.Options, Trainer = TrainerTests.Tiny() };
        string path = store.Write(state, [("encoder.", encoder.state_dict())]);

        using (var same = CvrlCheckpoint.LoadEncoder(path, encoder.Options))
        {
            Assert.Equal(encoder.FeatureDim, same.FeatureDim);
        }

        var other = encoder.Options with { Depth = 18 };
        var e = Assert.Throws<WeightsMismatchException>(() => CvrlCheckpoint.LoadEncoder(path, other));
        Assert.Contains("holds an R3D-50", e.Message, StringComparison.Ordinal);
        Assert.Contains("R3D-18", e.Message, StringComparison.Ordinal);
        Assert.Throws<WeightsMismatchException>(() => CvrlCheckpoint.LoadEncoder(path, encoder.Options with { WidthMultiplier = 0.125 }));
    }

    internal static Dictionary<string, Tensor> Snapshot(nn.Module module) =>
        module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone().DetachFromDisposeScope());

    internal static void AssertSame(Dictionary<string, Tensor> before, Dictionary<string, Tensor> after)
    {
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        foreach (var (key, value) in before)
        {
            Assert.True(TorchAssert.MaxDiff(value, after[key]) == 0, $"{key} changed");
        }
    }

    internal static void DisposeAll(Dictionary<string, Tensor> tensors)
    {
        foreach (var t in tensors.Values)
        {
            t.Dispose();
        }
    }
}

/// <summary>Reports synchronously on the caller's thread (Progress&lt;T&gt; posts to the thread pool).</summary>
internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
