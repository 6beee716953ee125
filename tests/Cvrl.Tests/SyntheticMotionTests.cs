using System.Security.Cryptography;
using Cvrl.Augment.Video;
using Cvrl.Data;
using Cvrl.Testing;
using Cvrl.Video;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Tests;

public sealed class SyntheticMotionTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly SyntheticMotionOptions Small = new() { Classes = 3, TrainPerClass = 3, TestPerClass = 2, Frames = 12, Width = 48, Height = 40 };

    [Fact]
    public void Generation_is_byte_identical_across_worker_counts_and_changes_with_the_seed()
    {
        using var temp = new TempDirectory();
        var one = SyntheticMotion.Generate(temp.File("one"), Small with { Workers = 1 });
        var two = SyntheticMotion.Generate(temp.File("two"), Small with { Workers = 2 });
        var other = SyntheticMotion.Generate(temp.File("other"), Small with { Seed = 1 });

        var hashesOne = Hashes(one.Root);
        Assert.Equal(3 * (3 + 2) + 3, hashesOne.Count); // videos + classInd + two lists
        Assert.Equal(hashesOne, Hashes(two.Root));
        var hashesOther = Hashes(other.Root);
        var videos = hashesOne.Keys.Where(k => k.EndsWith(".avi", StringComparison.Ordinal)).ToList();
        Assert.All(videos, v => Assert.NotEqual(hashesOne[v], hashesOther[v]));
    }

    [Fact]
    public void Writes_ucf101_style_split_lists_that_the_dataset_reader_reads()
    {
        using var temp = new TempDirectory();
        var set = SyntheticMotion.Generate(temp.Path, Small);
        var train = set.Train();
        var test = set.Test();
        Assert.Equal(["move_up", "move_down", "zoom_in"], train.Classes);
        Assert.Equal(9, train.Count);
        Assert.Equal(6, test.Count);
        Assert.Empty(train.Missing);
        Assert.Equal([3, 3, 3], train.Items.GroupBy(i => i.Label).OrderBy(g => g.Key).Select(g => g.Count()));
        Assert.Empty(train.Items.Select(i => i.Path).Intersect(test.Items.Select(i => i.Path)));
        using var reader = VideoReader.Open(train[0].Path);
        Assert.Equal((48, 40), (reader.Info.Width, reader.Info.Height));
        Assert.Equal(12, reader.CountFrames());
    }

    [Fact]
    public void Bad_options_are_rejected_before_anything_is_written()
    {
        using var temp = new TempDirectory();
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => SyntheticMotion.Generate(temp.File("x"), Small with { Classes = 7 }));
        Assert.Equal("Classes", e.ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => SyntheticMotion.Generate(temp.File("x"), Small with { Frames = 1 }));
        Assert.False(Directory.Exists(temp.File("x")));
    }

    /// <summary>
    /// The property the data set exists for: a single frame does not tell the class. A linear classifier on the pixels
    /// of one frame (the middle one) stays near chance on the test split, while the same classifier on colour-defined
    /// classes (the positive control) is near perfect, so the probe is able to see appearance when it is there.
    /// </summary>
    [Fact]
    public void A_linear_probe_on_single_frames_is_near_chance()
    {
        using var temp = new TempDirectory();
        var set = SyntheticMotion.Generate(temp.Path, new SyntheticMotionOptions { Classes = 6, TrainPerClass = 32, TestPerClass = 16, Frames = 16 });
        double motion = SingleFrameProbe(set.Train(), set.Test());

        // 96 test videos, 6 classes: chance 1/6 with a standard deviation of 3.8 points; 0.30 is 3.5 deviations above.
        Assert.InRange(motion, 0, 0.30);

        string colours = ColourClasses.Create(temp.File("colours"), 6, 24, seed: 3, frames: 4);
        var all = VideoDataset.FromClassFolders(colours);
        var byParity = all.Items.Select((item, i) => (item, i)).ToLookup(p => p.i % 3 == 0, p => p.item);
        double control = SingleFrameProbe(
            VideoDataset.FromPaths(byParity[false].Select(i => i.Path), byParity[false].Select(i => i.Label), all.Classes),
            VideoDataset.FromPaths(byParity[true].Select(i => i.Path), byParity[true].Select(i => i.Label), all.Classes));
        output.WriteLine($"single-frame probe: motion classes {motion:P1}, colour classes {control:P1}");
        Assert.InRange(control, 0.9, 1.0);
    }

    private static double SingleFrameProbe(VideoDataset train, VideoDataset test)
    {
        using var scope = NewDisposeScope();
        var (xTrain, yTrain) = MiddleFrames(train);
        var (xTest, yTest) = MiddleFrames(test);
        var mean = xTrain.mean([0], keepdim: true);
        using var epsilon = 1e-3.ToScalar(); // explicit scalars: TorchSharp's implicit ones race with the finaliser
        using var one = 1.ToScalar();
        var std = xTrain.std([0], keepdim: true).add(epsilon, alpha: one);
        xTrain = (xTrain - mean) / std;
        xTest = (xTest - mean) / std;

        // Multinomial logistic regression with a little L2, full batch; 300 Adam steps fit the training frames.
        torch.manual_seed(0);
        using var layer = nn.Linear(xTrain.shape[1], train.Classes.Count);
        var optimizer = torch.optim.Adam(layer.parameters(), lr: 0.01, weight_decay: 1e-3);
        for (int i = 0; i < 300; i++)
        {
            using var step = NewDisposeScope();
            optimizer.zero_grad();
            var loss = nn.functional.cross_entropy(layer.forward(xTrain), yTrain);
            loss.backward();
            optimizer.step();
        }

        using (no_grad())
        {
            var predicted = layer.forward(xTest).argmax(1);
            return predicted.eq(yTest).to(ScalarType.Float32).mean().item<float>();
        }
    }

    private static (Tensor Pixels, Tensor Labels) MiddleFrames(VideoDataset data)
    {
        var rows = new List<Tensor>();
        foreach (var item in data.Items)
        {
            using var reader = VideoReader.Open(item.Path);
            int middle = reader.CountFrames() / 2;
            var frame = reader.ReadClip([middle]).to(ScalarType.Float32); // [3, 1, H, W]
            rows.Add(nn.functional.adaptive_avg_pool2d(frame.squeeze(1).unsqueeze(0), [16, 20]).flatten());
        }

        return (stack(rows), tensor(data.Items.Select(i => (long)i.Label).ToArray()));
    }

    private static Dictionary<string, string> Hashes(string root) =>
        Directory.GetFiles(root, "*", SearchOption.AllDirectories).ToDictionary(
            f => Path.GetRelativePath(root, f),
            f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));
}
