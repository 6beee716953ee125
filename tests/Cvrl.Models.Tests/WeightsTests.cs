using System.Text.Json;
using Cvrl.Models.Weights;
using Cvrl.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Models.Tests;

[Collection("Torch")]
public sealed class WeightsTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    [Fact]
    public void R3d18_MatchesTorchvisionOutputs()
    {
        // torchvision's r3d_18 with formula weights on a formula input (Fixtures/make_fixtures.py), against ours.
        using var json = JsonDocument.Parse(File.ReadAllText(Fixture("r3d18_outputs.json")));
        float[] expectedFeatures = [.. json.RootElement.GetProperty("features").EnumerateArray().Select(e => e.GetSingle())];
        float[] expectedLogits = [.. json.RootElement.GetProperty("logits").EnumerateArray().Select(e => e.GetSingle())];

        using var scope = torch.NewDisposeScope();
        var model = ResNet3d.R3d18(numClasses: 400);
        DeterministicWeights.Fill(model);
        model.eval();
        using var noGrad = torch.no_grad();
        var x = DeterministicWeights.Input(1, 3, 8, 32, 32);
        var logits = model.call(x);
        var features = model.Features(x);
        // PyTorch's fixture came from other kernels: float32 sums over up to 27 x 512 terms per output, 1e-4 either way.
        TorchAssert.AllClose(torch.tensor(expectedFeatures).unsqueeze(0), features, 1e-4, 1e-4);
        TorchAssert.AllClose(torch.tensor(expectedLogits).unsqueeze(0), logits, 1e-4, 1e-4);
        Assert.True(features.abs().max().item<float>() > 0.5, "the fixture must exercise non-trivial values");
    }

    [Fact]
    public void PyTorchFile_WrittenByTorchSave_LoadsStrictly()
    {
        using var model = ResNet3d.R3d18(2.0 / 64, numClasses: 10);
        var report = ModelWeights.Load(Fixture("r3d18_tiny_w2_c10.pt"), model);
        Assert.True(report.IsExact, report.ToString());
        Assert.Equal(model.state_dict().Count, report.Loaded.Count);
        foreach (string key in new[] { "stem.0.weight", "layer3.0.downsample.1.running_var", "fc.weight" })
        {
            var actual = model.state_dict()[key];
            using var expected = DeterministicWeights.Value(key, actual.shape,
                key.EndsWith("running_var", StringComparison.Ordinal) ? "running_var" : actual.dim() == 5 ? "conv" : "linear");
            TorchAssert.Close(expected, actual, 0);
        }

        Assert.Equal(WeightFormat.PyTorch, StateDictFile.DetectFormat(Fixture("r3d18_tiny_w2_c10.pt")));
    }

    [Theory]
    [InlineData(WeightFormat.TorchSharp)]
    [InlineData(WeightFormat.PyTorch)]
    [InlineData(WeightFormat.Safetensors)]
    public void SaveLoad_RoundTrip_GivesTheSameOutputs(WeightFormat format)
    {
        using var dir = new TempDirectory();
        string path = dir.File("w.bin");
        using var scope = torch.NewDisposeScope();
        var a = ResNet3d.R3d50(0.0625, numClasses: 5);
        var b = ResNet3d.R3d50(0.0625, numClasses: 5);
        var x = torch.rand(new long[] { 2, 3, 4, 32, 32 });
        a.train();
        a.call(x); // move the BatchNorm statistics away from their initial values
        ModelWeights.Save(path, a, format);
        Assert.Equal(format, StateDictFile.DetectFormat(path));
        var report = ModelWeights.Load(path, b);
        Assert.True(report.IsExact);
        a.eval();
        b.eval();
        using var noGrad = torch.no_grad();
        TorchAssert.Close(a.call(x), b.call(x), 0);
    }

    [Fact]
    public void TorchSharpFormat_IsInterchangeableWithModuleSaveAndLoad()
    {
        using var dir = new TempDirectory();
        using var a = ResNet3d.R3d18(0.125, numClasses: 4);
        using var b = ResNet3d.R3d18(0.125, numClasses: 4);
        a.save(dir.File("torchsharp.dat"));
        Assert.True(ModelWeights.Load(dir.File("torchsharp.dat"), b).IsExact);
        Assert.Equal(0, TorchAssert.MaxDiff(a.state_dict()["layer2.0.conv1.0.weight"], b.state_dict()["layer2.0.conv1.0.weight"]));

        using var c = ResNet3d.R3d18(0.125, numClasses: 4);
        ModelWeights.Save(dir.File("cvrl.dat"), a);
        c.load(dir.File("cvrl.dat"));
        Assert.Equal(0, TorchAssert.MaxDiff(a.state_dict()["fc.weight"], c.state_dict()["fc.weight"]));
    }

    [Fact]
    public void Checkpoint_KeepsTheProjectionHeadNextToTheEncoder()
    {
        using var dir = new TempDirectory();
        using var encoder = ResNet3d.R3d50(0.0625);
        using var head = new ProjectionHead(encoder.FeatureDim, new ProjectionHeadOptions { HiddenDim = 32, OutputDim = 16 });
        ModelWeights.Save(dir.File("ckpt.dat"), new Dictionary<string, nn.Module> { ["encoder"] = encoder, ["head"] = head });
        using var file = StateDictFile.Read(dir.File("ckpt.dat"));
        Assert.Contains("head.net.0.weight", file.Keys);
        Assert.Contains("encoder.stem.0.weight", file.Keys);

        using var head2 = new ProjectionHead(encoder.FeatureDim, new ProjectionHeadOptions { HiddenDim = 32, OutputDim = 16 });
        Assert.True(ModelWeights.Load(dir.File("ckpt.dat"), head2, prefix: "head").IsExact);
        Assert.Equal(0, TorchAssert.MaxDiff(head.state_dict()["net.9.weight"], head2.state_dict()["net.9.weight"]));
        using var encoder2 = ResNet3d.R3d50(0.0625);
        Assert.True(ModelWeights.Load(dir.File("ckpt.dat"), encoder2, prefix: "encoder").IsExact);
    }

    [Fact]
    public void WeightsOfAnotherArchitecture_GiveAReadableReportAndAnException()
    {
        using var dir = new TempDirectory();
        using var r18 = ResNet3d.R3d18(0.125, numClasses: 10);
        ModelWeights.Save(dir.File("r18.dat"), r18);
        using var r50 = ResNet3d.R3d50(0.0625, numClasses: 10);
        var before = r50.state_dict()["fc.weight"].clone();
        var e = Assert.Throws<WeightsMismatchException>(() => ModelWeights.Load(dir.File("r18.dat"), r50));
        Assert.NotNull(e.Report);
        Assert.Contains("layer1.0.conv3.0.weight", e.Report!.Missing);
        Assert.Contains("layer1.0.conv1.0.weight", e.Report.ShapeMismatches.Select(m => m.Name));
        Assert.Contains("missing", e.Message, StringComparison.Ordinal);
        Assert.Equal(0, TorchAssert.MaxDiff(before, r50.state_dict()["fc.weight"])); // nothing changed

        using var r18b = ResNet3d.R3d18(0.125, numClasses: 7);
        var partial = ModelWeights.Load(dir.File("r18.dat"), r18b, strict: false);
        Assert.Equal(new[] { "fc.bias", "fc.weight" }, partial.ShapeMismatches.Select(m => m.Name).Order());
        Assert.Equal(r18b.state_dict().Count - 2, partial.Loaded.Count);
    }

    [Fact]
    public void DtypeMismatch_IsReported()
    {
        using var head = new ProjectionHead(8, new ProjectionHeadOptions { HiddenLayers = 0, OutputDim = 2 });
        var doubles = head.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.to_type(ScalarType.Float64));
        var e = Assert.Throws<WeightsMismatchException>(() => ModelWeights.LoadStateDict(head, doubles));
        Assert.Equal(2, e.Report!.DtypeMismatches.Count);
    }

    [Fact]
    public void BadFiles_GetTypedExceptionsNamingTheFile()
    {
        using var dir = new TempDirectory();
        using var model = ResNet3d.R3d18(0.125, numClasses: 2);
        Assert.Throws<FileNotFoundException>(() => ModelWeights.Load(dir.File("none.dat"), model));
        File.WriteAllBytes(dir.File("empty.dat"), []);
        Assert.Contains("empty.dat", Assert.Throws<InvalidDataException>(() => ModelWeights.Load(dir.File("empty.dat"), model)).Message, StringComparison.Ordinal);
        File.WriteAllText(dir.File("text.dat"), "not weights at all, just some text in a file");
        Assert.Throws<InvalidDataException>(() => ModelWeights.Load(dir.File("text.dat"), model));
        ModelWeights.Save(dir.File("good.dat"), model);
        byte[] bytes = File.ReadAllBytes(dir.File("good.dat"));
        File.WriteAllBytes(dir.File("cut.dat"), bytes[..(bytes.Length / 2)]);
        Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => ModelWeights.Load(dir.File("cut.dat"), model)).Message, StringComparison.Ordinal);
        byte[] zip = File.ReadAllBytes(Fixture("r3d18_tiny_w2_c10.pt"));
        File.WriteAllBytes(dir.File("cut.pt"), zip[..(zip.Length / 3)]);
        Assert.Throws<InvalidDataException>(() => ModelWeights.Load(dir.File("cut.pt"), model));
    }

    [Fact]
    public void Save_IsAtomic_LeavingNoTemporaryFiles()
    {
        using var dir = new TempDirectory();
        using var model = ResNet3d.R3d18(0.125, numClasses: 2);
        ModelWeights.Save(dir.File("w.dat"), model);
        ModelWeights.Save(dir.File("w.dat"), model);
        Assert.Equal(new[] { "w.dat" }, Directory.GetFiles(dir.Path).Select(Path.GetFileName));
    }
}
