using System.Reflection;
using Cvrl.Embeddings;
using Cvrl.Models;
using Cvrl.Testing;
using Cvrl.Training;
using TorchSharp;

namespace Cvrl.Cli.Tests;

/// <summary>
/// cvrl import takes a model-zoo file (the fixtures of Cvrl.Models.Tests: a narrow Slow-R50 in PySlowFast's and
/// mmaction2's formats) to a Cvrl checkpoint that embed, export and pretrain --init accept.
/// </summary>
public sealed class ImportCliTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    [Fact]
    public void An_imported_zoo_model_embeds_exports_and_starts_a_pretraining()
    {
        using var dir = new TempDirectory();
        string videos = dir.File("videos");
        VideoFolders.Create(videos, 3, frames: 24, seed: 4);
        string model = dir.File("ssl.cvrl");

        var import = CliRunner.Run(dir.Path, "import", Fixture("zoo_slowfast_ssl_r50_w32.pyth"), "--out", model);
        Assert.True(import.ExitCode == 0, import.All);
        Assert.Contains("PySlowFast checkpoint, weights at 'model_state': Slow-R50", import.Text);
        Assert.Contains("mapped 332 tensors, unused 341", import.Text);
        Assert.Contains("clips: 8 x 8 frames at 224 (the checkpoint's cfg)", import.Text);
        Assert.Contains("projection head: 2 hidden layers of 32, output 16", import.Text);
        var state = CvrlCheckpoint.ReadState(model);
        Assert.True(state.IsVerified);
        Assert.Equal("PySlowFast checkpoint zoo_slowfast_ssl_r50_w32.pyth", state.Source);
        Assert.Equal([0.45, 0.45, 0.45], state.Encoder.InputMean!);

        // Embedding through the checkpoint takes the zoo model's clips by default; through its ONNX export, the same
        // embeddings (the graph normalises the input as the encoder does).
        string viaTorch = dir.File("torch.cvrlemb");
        var embed = CliRunner.Run(dir.Path, "embed", videos, "--checkpoint", model, "--out", viaTorch, "--clips", "2", "--workers", "2");
        Assert.True(embed.ExitCode == 0, embed.All);
        Assert.Contains("2 clip(s) x 1 crop(s) of 8 frames at stride 8, short side 224, crop 224 (the encoder's training clips, with the options given)", embed.Text);
        string onnx = dir.File("ssl.onnx");
        var export = CliRunner.Run(dir.Path, "export", model, "--out", onnx, "--head");
        Assert.True(export.ExitCode == 0, export.All);
        string viaOnnx = dir.File("onnx.cvrlemb");
        var embedOnnx = CliRunner.Run(dir.Path, "embed", videos, "--checkpoint", onnx, "--out", viaOnnx, "--clips", "2", "--workers", "2");
        Assert.True(embedOnnx.ExitCode == 0, embedOnnx.All);
        var a = EmbeddingSet.Load(viaTorch);
        var b = EmbeddingSet.Load(viaOnnx);
        Assert.Equal(a.Keys, b.Keys);
        for (int i = 0; i < a.Count; i++)
        {
            // Unit vectors from two runtimes: float32 rounding through 53 layers, far below any mapping error.
            for (int d = 0; d < a.Dim; d++)
            {
                Assert.True(Math.Abs(a[i][d] - b[i][d]) < 1e-4, $"{a.Keys[i]}[{d}]: {a[i][d]} against {b[i][d]}");
            }
        }

        // Pre-training starts from the imported encoder (architecture, normalisation and weights) with a fresh head. (The
        // fixture's formula weights give its 2-channel stem near-constant responses on these smooth videos, so its
        // BatchNorm gradients are of order 1e4: a tiny rate keeps one step close to the start, as a real rate does for
        // real weights.)
        string run = dir.File("run");
        var pretrain = CliRunner.Run(dir.Path, "pretrain", videos, "--init", model, "--out", run, "--epochs", "1", "--batch", "3", "--frames", "8", "--stride", "2", "--size", "32", "--workers", "2", "--lr", "1e-7");
        Assert.True(pretrain.ExitCode == 0, pretrain.All);
        Assert.Contains("from ssl.cvrl (PySlowFast checkpoint zoo_slowfast_ssl_r50_w32.pyth)", pretrain.Text);
        string trained = Directory.GetFiles(Path.Combine(run, "checkpoints"), "*.cvrl").Single();
        Assert.Equal(state.Encoder, CvrlCheckpoint.ReadState(trained).Encoder);
        using var imported = CvrlCheckpoint.LoadEncoder(model);
        using var afterStep = CvrlCheckpoint.LoadEncoder(trained);
        using var fresh = ResNet3d.Create(state.Encoder);
        double Cosine(ResNet3d x, ResNet3d y, string name)
        {
            using var scope = torch.NewDisposeScope();
            return torch.nn.functional.cosine_similarity(x.state_dict()[name].flatten(), y.state_dict()[name].flatten(), 0).item<float>();
        }

        foreach (string name in new[] { "stem.0.weight", "layer4.2.conv3.0.weight" })
        {
            // One step at a tiny rate moves the weights little; a fresh initialisation is unrelated to them.
            Assert.True(Cosine(imported, afterStep, name) > 0.99, $"{name}: {Cosine(imported, afterStep, name)}");
            Assert.True(Math.Abs(Cosine(imported, fresh, name)) < 0.5, $"{name}: {Cosine(imported, fresh, name)}");
        }

        var conflicting = CliRunner.Run(dir.Path, "pretrain", videos, "--init", model, "--depth", "18", "--out", dir.File("run2"));
        Assert.Equal(2, conflicting.ExitCode);
        Assert.Contains("--init takes the architecture from its checkpoint", conflicting.Text);
    }

    /// <summary>
    /// The all-NuGet route of docs/models.md: ML.NET's ImageNet ResNet (restored by the test project from NuGet) imported
    /// with --inflate, then embedded through its checkpoint and through its ONNX export (the same embeddings: the graph
    /// applies the BGR, 8-bit and mean-image convention as the encoder does), evaluated with probe and kNN, and adapted
    /// with pretrain --init (the adapt recipe by default).
    /// </summary>
    [Fact]
    public void An_ImageNet_network_from_NuGet_inflates_embeds_exports_evaluates_and_adapts()
    {
        string package = typeof(ImportCliTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "ResNet18Package").Value!;
        string onnxModel = Path.Combine(package, "ResNet18Onnx", "ResNet18.onnx");
        Assert.True(File.Exists(onnxModel), $"the NuGet package Microsoft.ML.DnnImageFeaturizer.ResNet18 0.24.0 is not restored at {package}");
        using var dir = new TempDirectory();
        string data = dir.File("data");
        ColourClasses.Create(Path.Combine(data, "train"), classes: 2, perClass: 4, seed: 1);
        ColourClasses.Create(Path.Combine(data, "test"), classes: 2, perClass: 2, seed: 2);
        string model = dir.File("imagenet.cvrl");
        var import = CliRunner.Run(dir.Path, "import", onnxModel, "--inflate", "--temporal-kernels", "1,1,1,1,1", "--out", model);
        Assert.True(import.ExitCode == 0, import.All);
        Assert.Contains("ONNX graph from CNTK 2.6, opset 8: ResNet-18-like (basic blocks 2, 2, 2, 3), width 1", import.Text);
        Assert.Contains("mapped 132 tensors (0 kernels spread over time), unused 0", import.Text);
        Assert.Contains("input convention: channels reversed to BGR, x 255, minus a 3x224x224 mean image", import.Text);
        Assert.Contains("ResNetPreprocess.onnx", import.Text);
        var state = CvrlCheckpoint.ReadState(model);
        Assert.Equal((InputChannelOrder.Bgr, 255.0), (state.Encoder.InputChannelOrder, state.Encoder.InputScale));
        Assert.Contains("inflated", state.Source, StringComparison.Ordinal);

        string[] views = ["--frames", "4", "--stride", "2", "--size", "32", "--clips", "2", "--workers", "2"];
        string viaTorch = dir.File("torch.cvrlemb");
        var embed = CliRunner.Run(dir.Path, ["embed", Path.Combine(data, "test"), "--checkpoint", model, "--out", viaTorch, .. views]);
        Assert.True(embed.ExitCode == 0, embed.All);
        string onnx = dir.File("imagenet.onnx");
        var export = CliRunner.Run(dir.Path, "export", model, "--out", onnx);
        Assert.True(export.ExitCode == 0, export.All);
        string viaOnnx = dir.File("onnx.cvrlemb");
        var embedOnnx = CliRunner.Run(dir.Path, ["embed", Path.Combine(data, "test"), "--checkpoint", onnx, "--out", viaOnnx, .. views]);
        Assert.True(embedOnnx.ExitCode == 0, embedOnnx.All);
        var a = EmbeddingSet.Load(viaTorch);
        var b = EmbeddingSet.Load(viaOnnx);
        Assert.Equal(a.Keys, b.Keys);
        for (int i = 0; i < a.Count; i++)
        {
            for (int d = 0; d < a.Dim; d++)
            {
                Assert.True(Math.Abs(a[i][d] - b[i][d]) < 1e-4, $"{a.Keys[i]}[{d}]: {a[i][d]} against {b[i][d]}");
            }
        }

        var knn = CliRunner.Run(dir.Path, ["knn", data, "--checkpoint", model, "--neighbours", "2", .. views]);
        Assert.True(knn.ExitCode == 0, knn.All);
        var probe = CliRunner.Run(dir.Path, ["probe", data, "--checkpoint", model, "--epochs", "2", "--cached-views", "1", .. views]);
        Assert.True(probe.ExitCode == 0, probe.All);

        string run = dir.File("adapted");
        var adapt = CliRunner.Run(dir.Path, "pretrain", Path.Combine(data, "train"), "--init", model, "--out", run, "--epochs", "1", "--batch", "4", "--frames", "4", "--stride", "2", "--size", "32", "--workers", "2");
        Assert.True(adapt.ExitCode == 0, adapt.All);
        string announced = System.Text.RegularExpressions.Regex.Replace(adapt.Text, @"\s+", " "); // Spectre wraps long lines
        Assert.Contains("adapt recipe (AdamW, learning rate 0.0001, weight decay 0.01, warm-up 0.1, head 1 layers, colour strength 0.5, the stem and layer1-2 frozen, batch normalisation frozen)", announced);
        var trained = CvrlCheckpoint.ReadState(Directory.GetFiles(Path.Combine(run, "checkpoints"), "*.cvrl").Single());
        Assert.Equal(state.Encoder, trained.Encoder);

        // The adapt recipe kept the stem, layer1, layer2 and every batch normalisation layer as imported; layer3 trained.
        using var before = CvrlCheckpoint.LoadEncoder(model);
        using var after = CvrlCheckpoint.LoadEncoder(Directory.GetFiles(Path.Combine(run, "checkpoints"), "*.cvrl").Single());
        var imported = before.state_dict();
        var adapted = after.state_dict();
        bool Same(string name)
        {
            using var equal = imported[name].eq(adapted[name]).all();
            return equal.item<bool>();
        }

        Assert.All(imported.Keys.Where(k => k.StartsWith("stem.", StringComparison.Ordinal) || k.StartsWith("layer1.", StringComparison.Ordinal) || k.StartsWith("layer2.", StringComparison.Ordinal) || k.Contains("running_", StringComparison.Ordinal)), k => Assert.True(Same(k), k));
        Assert.Contains(imported.Keys.Where(k => k.StartsWith("layer3.", StringComparison.Ordinal) && k.EndsWith(".0.weight", StringComparison.Ordinal)), k => !Same(k));
    }

    [Fact]
    public void A_legacy_format_classifier_imports_and_bad_inputs_are_named()
    {
        using var dir = new TempDirectory();
        string model = dir.File("mm.cvrl");
        var import = CliRunner.Run(dir.Path, "import", Fixture("zoo_mmaction2_slowonly_r50_w32.pth"), "--classifier", "--out", model);
        Assert.True(import.ExitCode == 0, import.All);
        Assert.Contains("MmAction2 checkpoint, weights at 'state_dict'", import.Text);
        Assert.Contains("classifier of 10 classes", import.Text);
        Assert.Contains("input normalisation: mean 0.485, 0.456, 0.406, std 0.229, 0.224, 0.225 (the checkpoint's meta.config)", import.Text);
        Assert.Equal(10, CvrlCheckpoint.ReadState(model).Encoder.NumClasses);

        var noHead = CliRunner.Run(dir.Path, "export", model, "--head", "--out", dir.File("x.onnx"));
        Assert.Equal(1, noHead.ExitCode);
        Assert.Contains("holds no projection head (its encoder was imported from MmAction2 checkpoint", noHead.Text);

        var wrongZoo = CliRunner.Run(dir.Path, "import", Fixture("zoo_mmaction2_slowonly_r50_w32.pth"), "--from", "pytorchvideo", "--out", dir.File("w.cvrl"));
        Assert.Equal(1, wrongZoo.ExitCode);
        Assert.Contains("no stem convolution among the PyTorchVideo names", wrongZoo.Text);
        Assert.False(File.Exists(dir.File("w.cvrl")));

        string text = dir.File("notes.pyth");
        File.WriteAllText(text, "not a checkpoint");
        var notTorch = CliRunner.Run(dir.Path, "import", text, "--out", dir.File("n.cvrl"));
        Assert.Equal(1, notTorch.ExitCode);
        Assert.Contains($"'{text}' is not a torch.save file", notTorch.Text);

        var badFrom = CliRunner.Run(dir.Path, "import", text, "--from", "caffe2");
        Assert.Equal(2, badFrom.ExitCode);
        Assert.Contains("--from must be auto, slowfast, pytorchvideo, mmaction2 or torchvision", badFrom.Text);
    }
}
