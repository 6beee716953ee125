using Cvrl.Data;
using Cvrl.Evaluation;
using Cvrl.Models;
using Cvrl.Optim;
using Cvrl.Testing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Cvrl.Tests;

/// <summary>An encoder that is only a BatchNorm: features are the normalised clip's mean per channel.</summary>
internal sealed class BatchNormEncoder : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006, SA1300 // state-dict name
    public readonly CvrlBatchNorm bn = new(3, dimensions: 5, momentum: 0.1);
#pragma warning restore IDE1006, SA1300

    public BatchNormEncoder()
        : base("batch_norm_encoder") => RegisterComponents();

    public override Tensor forward(Tensor input)
    {
        using var normalised = bn.call(input);
        return normalised.mean([2, 3, 4]);
    }
}

/// <summary>The evaluation options that go beyond the official protocol: precise BN, standardised probes, colour in training views, AdamW fine-tuning.</summary>
[Collection("Torch")]
public sealed class EvaluationOptionsTests
{
    [Fact]
    public void PreciseBatchNorm_SetsRunningStatisticsToTheAverageOverBatches_AndRestoresTheModule()
    {
        using var dir = new TempDirectory();
        var train = VideoDataset.FromClassFolders(ColourClasses.Create(dir.File("train"), 2, 4, seed: 1));
        using var encoder = new BatchNormEncoder();
        encoder.eval();
        var views = EvaluationTests.SmallViews with { Test = EvaluationTests.SmallViews.Test with { Crops = 1 } }; // 3 clips per video: 24 views, 3 batches of 8
        var extractor = new FeatureExtractor(encoder, new FeatureExtractorOptions { Views = views, BatchSize = 8, Workers = 2 });

        Assert.Equal(1, extractor.RecomputeBatchNormStatistics(train));

        using var scope = torch.NewDisposeScope();
        var all = torch.cat(train.Items.Select(i => extractor.Views.TestViews(i.Path)).ToArray(), 0); // [24, 3, T, H, W]
        var batches = all.split(8, 0);
        var means = torch.stack(batches.Select(b => b.mean([0, 2, 3, 4])).ToArray()).mean([0]);
        var variances = torch.stack(batches.Select(b => b.transpose(0, 1).reshape(3, -1).var(1)).ToArray()).mean([0]); // unbiased, as BatchNorm keeps it

        // Means over ~20,000 float32 values per batch: a few ulps relative.
        TorchAssert.AllClose(means, encoder.bn.running_mean, 1e-5, 1e-6);
        TorchAssert.AllClose(variances, encoder.bn.running_var, 1e-4, 1e-7);
        Assert.Equal(3, encoder.bn.num_batches_tracked.item<long>());
        Assert.Equal(0.1, encoder.bn.Momentum);
        Assert.False(encoder.training, "the module's mode is restored");
    }

    [Fact]
    public void Standardizer_FoldsExactlyIntoTheLayer()
    {
        using var scope = torch.NewDisposeScope();
        var g = new Generator(3);
        var raw = torch.randn(new long[] { 10, 2, 6 }, generator: g).mul_(0.2).add_(torch.linspace(-1, 1, 6), alpha: 1.0.ToScalar());
        var rows = Enumerable.Range(0, 10).Select(i => raw[i].flatten().data<float>().ToArray()).ToList();
        var features = new VideoFeatures([.. Enumerable.Range(0, 10).Select(i => $"v{i}")], [.. Enumerable.Range(0, 10).Select(i => i % 2)], ["a", "b"], 2, 6, rows, normalized: false);
        using var standardizer = FeatureStandardizer.Fit(features);
        var layer = nn.Linear(6, 3);
        var x = nn.functional.normalize(raw.reshape(-1, 6), p: 2, dim: 1);
        var expected = layer.call(standardizer.Apply(x.clone()));
        standardizer.FoldInto(layer);
        TorchAssert.AllClose(expected, layer.call(x), 1e-5, 1e-5); // 6-term float32 sums, rearranged
    }

    [Fact]
    public void LinearProbe_Standardize_FitsASmallSignalOnALargeCommonComponent()
    {
        // Features: a shared direction (all the norm) plus a class signal 1% of it in one dimension; after L2
        // normalisation every video looks alike, and only per-dimension standardisation makes the signal visible.
        var rng = new Random(4);
        List<float[]> Make(int videos, out List<int> labels)
        {
            labels = [];
            var rows = new List<float[]>();
            for (int i = 0; i < videos; i++)
            {
                int label = i % 2;
                labels.Add(label);
                rows.Add([.. Enumerable.Range(0, 2).SelectMany(_ => new[] { 1f, (label == 0 ? -0.01f : 0.01f) + (0.002f * (float)(rng.NextDouble() - 0.5)), 0.003f * (float)rng.NextDouble() })]);
            }

            return rows;
        }

        var trainRows = Make(40, out var trainLabels);
        var testRows = Make(20, out var testLabels);
        var train = new VideoFeatures([.. trainLabels.Select((_, i) => $"t{i}")], trainLabels, ["a", "b"], 2, 3, trainRows, normalized: false);
        var test = new VideoFeatures([.. testLabels.Select((_, i) => $"s{i}")], testLabels, ["a", "b"], 2, 3, testRows, normalized: false);
        var options = new LinearProbeOptions { Epochs = 30, BatchSize = 10, LearningRate = 0.1, Standardize = true, Seed = 1 };
        using var run = new LinearProbe(options).Fit(train, test);
        Assert.Equal(1.0, run.Result.Top1);
        Assert.True(run.NormalizesFeatures, "the folded layer takes L2-normalised features");
        Assert.True(new LinearProbeOptions { Standardize = true }.Standardize);
    }

    [Fact]
    public void TrainViews_WithColour_KeepTheClipCropAndFlip_AndChangeTheColours()
    {
        using var dir = new TempDirectory();
        string root = ColourClasses.Create(dir.Path, 1, 1, seed: 2);
        string video = Directory.GetFiles(root, "*.avi", SearchOption.AllDirectories)[0];
        var plain = new EvaluationViews(EvaluationTests.SmallViews);
        var coloured = new EvaluationViews(EvaluationTests.SmallViews with { TrainColorJitterStrength = 1.0 });
        int differing = 0;
        for (int epoch = 0; epoch < 8; epoch++)
        {
            using var a = plain.TrainView(video, 3, epoch, 0);
            using var b = coloured.TrainView(video, 3, epoch, 0);
            Assert.Equal(a.shape, b.shape);
            differing += TorchAssert.MaxDiff(a, b) > 1e-3 ? 1 : 0;
        }

        // Colour jitter applies with p 0.8 and grayscale with 0.2: of 8 views, P(none differs) = 0.16^8.
        Assert.InRange(differing, 1, 8);
        Assert.Equal("TrainColorJitterStrength", Assert.Throws<ArgumentOutOfRangeException>(() => new EvaluationViews(EvaluationTests.SmallViews with { TrainColorJitterStrength = 2 })).ParamName);
    }

    [Fact]
    public void FineTuning_WithAdamW_UsesItsOwnDefaultRate_AndTrains()
    {
        Assert.Equal(1e-3, new FineTuneOptions { Optimizer = OptimizerKind.AdamW }.EffectiveHeadLearningRate);
        Assert.Equal(0.8 * 16 / 64, new FineTuneOptions().EffectiveHeadLearningRate);
        using var dir = new TempDirectory();
        var train = VideoDataset.FromClassFolders(ColourClasses.Create(dir.File("train"), 2, 3, seed: 1));
        var test = VideoDataset.FromClassFolders(ColourClasses.Create(dir.File("test"), 2, 2, seed: 2));
        using var encoder = TrainerTests.TinyEncoder(4);
        var before = EvaluationTests.Snapshot(encoder);
        var options = new FineTuneOptions
        {
            Optimizer = OptimizerKind.AdamW,
            WeightDecay = 1e-2,
            Epochs = 2,
            BatchSize = 3,
            Features = new FeatureExtractorOptions { Views = EvaluationTests.SmallViews with { TrainColorJitterStrength = 1 }, BatchSize = 6, Workers = 2 },
        };
        using (var run = new FineTuner(options).Fit(encoder, train, test))
        {
            Assert.Equal(2, run.Result.TrainingLoss.Count);
            Assert.Equal("AdamW", run.Result.Settings["fineTune"]!["Optimizer"]!.ToString());
        }

        var after = EvaluationTests.Snapshot(encoder);
        Assert.Contains(before.Keys, k => k.Contains("conv", StringComparison.Ordinal) && TorchAssert.MaxDiff(before[k], after[k]) > 0);
        EvaluationTests.DisposeAll(before);
        EvaluationTests.DisposeAll(after);
    }
}
