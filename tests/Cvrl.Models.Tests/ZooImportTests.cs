using System.Text;
using System.Text.Json;
using Cvrl.Models.Weights;
using Cvrl.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Models.Tests;

/// <summary>
/// Model-zoo checkpoints (Fixtures/make_zoo_fixtures.py: a Slow-R50 reference written for this project in each zoo's
/// module names and file format, narrow variants saved with their outputs, full-width names, shapes and outputs) import
/// strictly and compute what the reference computes.
/// </summary>
/// <remarks>
/// Tolerance: as for torchvision's R3D-18 (WeightsTests), the reference ran on other CPU kernels; each output is a
/// chain of 53 convolutions of up to a few thousand float32 terms, and the residual sums keep rounding from growing
/// through depth, so 1e-4 relative plus 1e-4 absolute holds with a wide margin while a wrong mapping, stride, padding or
/// normalisation moves outputs by 1e-2 or more.
/// </remarks>
[Collection("Torch")]
public sealed class ZooImportTests
{
    internal static readonly JsonElement s_outputs = JsonDocument.Parse(File.ReadAllText(Fixture("zoo_outputs.json"))).RootElement;

    public static TheoryData<string, ModelZoo> Zoos => new()
    {
        { "slowfast", ModelZoo.PySlowFast },
        { "pytorchvideo", ModelZoo.PyTorchVideo },
        { "mmaction2", ModelZoo.MmAction2 },
    };

    [Theory]
    [MemberData(nameof(Zoos))]
    public void A_zoo_checkpoint_imports_strictly_and_computes_what_its_reference_computes(string name, ModelZoo zoo)
    {
        var expected = s_outputs.GetProperty(name);
        using var imported = ZooImporter.Import(Fixture(expected.GetProperty("file").GetString()!), new ZooImportOptions { KeepClassifier = true });
        var report = imported.Report;
        Assert.Equal(zoo, report.Zoo);
        Assert.Equal(name == "mmaction2" ? "state_dict" : "model_state", report.StateDictPath);
        Assert.StartsWith("Slow-R50 (depth 50, width 0.031", report.Architecture, StringComparison.Ordinal);
        Assert.Equal(imported.Encoder.state_dict().Count, report.Mapped.Count);
        Assert.Empty(report.Unused);
        Assert.Equal(new ClipGeometry(8, 8, 224), report.Clips);
        Assert.Equal(name switch { "slowfast" => "the checkpoint's cfg", "mmaction2" => "the checkpoint's meta.config", _ => report.ClipsSource }, report.ClipsSource);
        Assert.Contains(name == "pytorchvideo" ? "defaults" : "the checkpoint's", report.ClipsSource, StringComparison.Ordinal);
        Assert.Equal(new ClipGeometry(8, 8, 224), imported.Encoder.TrainedClips);
        Assert.Equal(10, imported.Encoder.Options.NumClasses);
        double[] mean = name == "mmaction2" ? [123.675 / 255, 116.28 / 255, 103.53 / 255] : [0.45, 0.45, 0.45];
        Assert.Equal(mean, imported.Encoder.Options.InputMean!.ToArray(), (a, b) => Math.Abs(a - b) < 1e-12);

        using var scope = torch.NewDisposeScope();
        imported.Encoder.eval();
        using var noGrad = torch.no_grad();
        var x = Input(2, 3, 8, 32, 32);
        var features = imported.Encoder.Features(x);
        TorchAssert.AllClose(Values(expected, "features").view(2, -1), features, 1e-4, 1e-4);
        TorchAssert.AllClose(Values(expected, "logits").view(2, -1), imported.Encoder.call(x), 1e-4, 1e-4);
        Assert.True(features.abs().max().item<float>() > 0.1, "the fixture must exercise non-trivial values");
    }

    [Fact]
    public void Without_the_classifier_the_encoder_is_a_backbone_and_the_classifier_is_reported_unused()
    {
        using var imported = ZooImporter.Import(Fixture("zoo_pytorchvideo_slow_r50_w32.pyth"));
        Assert.False(imported.Encoder.IsClassifier);
        Assert.Equal(["blocks.5.proj.bias", "blocks.5.proj.weight"], imported.Report.Unused);
        Assert.Contains("pytorchvideo's hub files hold no configuration", imported.Report.ClipsSource, StringComparison.Ordinal);
    }

    [Fact]
    public void A_self_supervised_PySlowFast_checkpoint_gives_its_backbone_and_its_projection_head()
    {
        var expected = s_outputs.GetProperty("slowfast_ssl");
        using var imported = ZooImporter.Import(Fixture("zoo_slowfast_ssl_r50_w32.pyth"));
        var report = imported.Report;
        Assert.Equal(ModelZoo.PySlowFast, report.Zoo);
        Assert.NotNull(imported.Head);
        Assert.Equal(new ProjectionHeadOptions { HiddenLayers = 2, HiddenDim = 32, OutputDim = 16, BatchNormMomentum = 0.1, BatchNormEps = 1e-5 }, report.Head);
        Assert.Contains(report.Notes, n => n.Contains("2 Linear layers have no bias", StringComparison.Ordinal));
        // The momentum encoder, the predictor and the queue pointer stay behind; the classifier-free backbone maps whole.
        Assert.All(report.Unused, k => Assert.True(k.StartsWith("backbone_hist.", StringComparison.Ordinal) || k.StartsWith("backbone.head.predictors.", StringComparison.Ordinal) || k == "ptr", k));
        Assert.Contains(report.Unused, k => k.StartsWith("backbone_hist.", StringComparison.Ordinal));
        Assert.Contains("backbone.s4.pathway0_res0.branch2.a.weight", report.Mapped.Select(m => m.Source));

        using var scope = torch.NewDisposeScope();
        imported.Encoder.eval();
        imported.Head!.eval();
        using var noGrad = torch.no_grad();
        var features = imported.Encoder.Features(Input(2, 3, 8, 32, 32));
        TorchAssert.AllClose(Values(expected, "features").view(2, -1), features, 1e-4, 1e-4);
        TorchAssert.AllClose(Values(expected, "projection").view(2, -1), imported.Head.call(features), 1e-4, 1e-4);
    }

    [Fact]
    public void The_legacy_torch_save_format_reads_with_its_metadata_and_without_running_anything()
    {
        using var content = TorchSaveFile.Read(Fixture("zoo_mmaction2_slowonly_r50_w32.pth"));
        Assert.True(content.IsLegacyFormat);
        Assert.Equal(0.7458, content.Find("meta/hook_msgs/best_score"));
        Assert.Equal(256L, content.Find("meta/epoch"));
        var cfg = Assert.IsType<PickledObject>(content.Find("meta/cfg_dict"));
        Assert.Equal("mmengine.config.config.ConfigDict", cfg.TypeName);
        Assert.Equal(8L, cfg.Entries["clip_len"]);
        Assert.Contains("numpy.dtype", content.OpaqueClasses);
        Assert.Equal(new PickleTuple(["a", "b"]), content.Find("meta/dataset_meta/classes"));
        // The optimizer's state is a dictionary with integer keys, so only the model's weights count as a state dict.
        Assert.Equal(["state_dict"], content.StateDicts.Select(l => l.Path));
        var sgd = Assert.IsAssignableFrom<IReadOnlyDictionary<object, object?>>(content.Find("optimizer/state"));
        Assert.IsType<Tensor>(((IReadOnlyDictionary<object, object?>)sgd[0L]!)["momentum_buffer"]);
    }

    [Fact]
    public void A_plain_state_dict_reader_names_where_a_checkpoints_weights_are()
    {
        var e = Assert.Throws<InvalidDataException>(() => StateDictFile.Read(Fixture("zoo_slowfast_slow_r50_w32.pyth")));
        Assert.Contains("'model_state' (", e.Message, StringComparison.Ordinal);
        Assert.Contains("cvrl import", e.Message, StringComparison.Ordinal);
    }

    public static TheoryData<string, ModelZoo> FullWidth => new()
    {
        { "slowfast", ModelZoo.PySlowFast },
        { "pytorchvideo", ModelZoo.PyTorchVideo },
        { "mmaction2", ModelZoo.MmAction2 },
        { "slow_r101_slowfast", ModelZoo.PySlowFast },
    };

    [Theory]
    [MemberData(nameof(FullWidth))]
    public void A_full_width_zoo_state_dict_maps_with_no_unused_or_missing_keys(string name, ModelZoo zoo)
    {
        using var scope = torch.NewDisposeScope();
        var keys = s_outputs.GetProperty("full_width").GetProperty(name).GetProperty("keys").EnumerateArray()
            .ToDictionary(k => k[0].GetString()!, k => torch.zeros(k[1].EnumerateArray().Select(d => d.GetInt64()).ToArray(), k[0].GetString()!.EndsWith("num_batches_tracked", StringComparison.Ordinal) ? ScalarType.Int64 : ScalarType.Float32));
        using var imported = ZooImporter.Import(keys, ModelZoo.Auto, new ZooImportOptions { KeepClassifier = true }, name);
        Assert.Equal(zoo, imported.Report.Zoo);
        Assert.Empty(imported.Report.Unused);
        Assert.Equal(keys.Count, imported.Report.Mapped.Count);
        int depth = name.Contains("r101", StringComparison.Ordinal) ? 101 : 50;
        Assert.Equal(depth, imported.Encoder.Options.Depth);
        Assert.Equal(1.0, imported.Encoder.Options.WidthMultiplier);
        Assert.Equal(2048, imported.Encoder.FeatureDim);
        Assert.Equal(400, imported.Encoder.Options.NumClasses);
        Assert.Equal([1, 1, 3, 3], imported.Encoder.Options.StageTemporalKernels!);
        Assert.Equal($"Slow-R{depth}", imported.Report.Architecture.Split(' ')[0]);
    }

    [Fact]
    public void A_full_width_Slow_R50_computes_what_the_reference_computes()
    {
        // The full-width pytorchvideo Slow-R50 with formula weights (its own parameter names), imported, on a small input.
        var full = s_outputs.GetProperty("full_width").GetProperty("pytorchvideo");
        using var scope = torch.NewDisposeScope();
        var weights = full.GetProperty("keys").EnumerateArray().ToDictionary(k => k[0].GetString()!, k => Formula(k[0].GetString()!, k[1].EnumerateArray().Select(d => d.GetInt64()).ToArray()));
        using var imported = ZooImporter.Import(weights, ModelZoo.PyTorchVideo, new ZooImportOptions { KeepClassifier = true });
        imported.Encoder.eval();
        using var noGrad = torch.no_grad();
        var x = Input(1, 3, 8, 32, 32);
        var features = imported.Encoder.Features(x);
        TorchAssert.AllClose(Values(full, "features_first64").view(1, -1), features[.., ..64], 1e-4, 1e-4);
        TorchAssert.Near(full.GetProperty("features_sum").GetDouble(), features.sum().item<float>(), 1e-4, 1e-3);
        TorchAssert.AllClose(Values(full, "logits_first16").view(1, -1), imported.Encoder.call(x)[.., ..16], 1e-4, 1e-4);
    }

    [Fact]
    public void What_does_not_map_is_refused_with_the_reason()
    {
        using var scope = torch.NewDisposeScope();
        var manifest = s_outputs.GetProperty("full_width").GetProperty("mmaction2").GetProperty("keys").EnumerateArray()
            .ToDictionary(k => k[0].GetString()!, k => k[1].EnumerateArray().Select(d => d.GetInt64()).ToArray());

        // I3D-style inflation: the second block of stage 3 with a 1x1x1 first convolution while the others have 3x1x1.
        var i3d = manifest.ToDictionary(kv => kv.Key, kv => torch.zeros(kv.Key == "backbone.layer3.1.conv1.conv.weight" ? [kv.Value[0], kv.Value[1], 1, 1, 1] : kv.Value));
        var e = Assert.Throws<InvalidDataException>(() => ZooImporter.Import(i3d, ModelZoo.Auto));
        Assert.Contains("stage 3", e.Message, StringComparison.Ordinal);
        Assert.Contains("I3D-style", e.Message, StringComparison.Ordinal);

        // A two-pathway SlowFast network.
        var slowfast = new Dictionary<string, Tensor> { ["s1.pathway0_stem.conv.weight"] = torch.zeros(new long[] { 64, 3, 1, 7, 7 }), ["s1.pathway1_stem.conv.weight"] = torch.zeros(new long[] { 8, 3, 5, 7, 7 }) };
        Assert.Contains("two-pathway", Assert.Throws<InvalidDataException>(() => ZooImporter.Import(slowfast, ModelZoo.Auto)).Message, StringComparison.Ordinal);

        // A missing weight: the strict load names it.
        var partial = manifest.Where(kv => kv.Key != "backbone.layer2.0.downsample.bn.running_var").ToDictionary(kv => kv.Key, kv => torch.zeros(kv.Value));
        var mismatch = Assert.Throws<WeightsMismatchException>(() => ZooImporter.Import(partial, ModelZoo.MmAction2));
        Assert.Contains("layer2.0.downsample.1.running_var", mismatch.Message, StringComparison.Ordinal);

        // A transformer.
        var vit = new Dictionary<string, Tensor> { ["patch_embed.proj.weight"] = torch.zeros(new long[] { 8, 3, 2, 16, 16 }), ["blocks.0.attn.qkv.weight"] = torch.zeros(new long[] { 24, 8 }) };
        Assert.Contains("transformer", Assert.Throws<InvalidDataException>(() => ZooImporter.Import(vit, ModelZoo.Auto)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void What_the_configuration_says_the_weights_cannot_show_is_checked()
    {
        // Temporal pooling and strides leave no trace in the weights: the checkpoint's configuration decides.
        using var dir = new TempDirectory();
        using var slowfast = TorchSaveFile.Read(Fixture("zoo_slowfast_slow_r50_w32.pyth"));
        using var sfWeights = slowfast.TakeStateDict("model_state");
        string c2d = dir.File("c2d.pyth");
        LegacyTorchSave.Write(c2d, new Dictionary<string, object> { ["cfg"] = "MODEL:\n  ARCH: c2d\n", ["model_state"] = sfWeights });
        var e = Assert.Throws<InvalidDataException>(() => ZooImporter.Import(c2d));
        Assert.True(e.Message.Contains("PySlowFast 'c2d' network", StringComparison.Ordinal), e.Message);
        Assert.Contains("pools in time", e.Message, StringComparison.Ordinal);

        string noCfg = dir.File("nocfg.pyth");
        LegacyTorchSave.Write(noCfg, new Dictionary<string, object> { ["model_state"] = sfWeights });
        using (var assumed = ZooImporter.Import(noCfg))
        {
            Assert.Contains(assumed.Report.Notes, n => n.Contains("assumed a PySlowFast 'slow' network", StringComparison.Ordinal));
            Assert.Contains("defaults", assumed.Report.ClipsSource, StringComparison.Ordinal);
        }

        using var mm = TorchSaveFile.Read(Fixture("zoo_mmaction2_slowonly_r50_w32.pth"));
        using var mmWeights = mm.TakeStateDict("state_dict");
        string i3d = dir.File("i3d.pth");
        LegacyTorchSave.Write(i3d, new Dictionary<string, object> { ["meta"] = new Dictionary<string, object> { ["config"] = "model = dict(backbone=dict(type='ResNet3d', depth=50))" }, ["state_dict"] = mmWeights });
        Assert.Contains("with_pool2", Assert.Throws<InvalidDataException>(() => ZooImporter.Import(i3d)).Message, StringComparison.Ordinal);

        string strided = dir.File("strided.pth");
        LegacyTorchSave.Write(strided, new Dictionary<string, object> { ["meta"] = new Dictionary<string, object> { ["config"] = "model = dict(backbone=dict(type='ResNet3dSlowOnly', conv1_stride_t=2))" }, ["state_dict"] = mmWeights });
        using (var twice = ZooImporter.Import(strided))
        {
            Assert.Equal(2, twice.Encoder.Options.StemTemporalStride);
        }

        using var scope = torch.NewDisposeScope();
        var c2dKeys = s_outputs.GetProperty("full_width").GetProperty("pytorchvideo").GetProperty("keys").EnumerateArray().ToDictionary(
            k => k[0].GetString()!,
            k => torch.zeros([.. k[1].EnumerateArray().Select((d, i) => i == 2 && k[0].GetString()!.Contains("conv_a", StringComparison.Ordinal) ? 1 : d.GetInt64())]));
        Assert.Contains("C2D", Assert.Throws<InvalidDataException>(() => ZooImporter.Import(c2dKeys, ModelZoo.Auto)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Hostile_and_damaged_files_get_a_typed_error_naming_the_file()
    {
        using var dir = new TempDirectory();

        // A legacy-format file whose object pickle calls os.system: refused by name, nothing runs.
        string evil = dir.File("evil.pth");
        File.WriteAllBytes(evil, [.. LegacyHeader(), .. Pickle("cos\nsystem\n" + Text("echo") + "\x85R.")]);
        var e = Assert.Throws<InvalidDataException>(() => TorchSaveFile.Read(evil));
        Assert.Contains("'os.system'", e.Message, StringComparison.Ordinal);
        Assert.Contains(evil, e.Message, StringComparison.Ordinal);

        // The same inside a zip container, and through the zoo importer.
        string evilZip = dir.File("evil.pyth");
        using (var zip = new System.IO.Compression.ZipArchive(File.Create(evilZip), System.IO.Compression.ZipArchiveMode.Create))
        {
            using var entry = zip.CreateEntry("evil/data.pkl").Open();
            entry.Write(Pickle("cposix\nsystem\n" + Text("echo") + "\x85R."));
        }

        Assert.Contains("'posix.system'", Assert.Throws<InvalidDataException>(() => ZooImporter.Import(evilZip)).Message, StringComparison.Ordinal);

        // Truncated anywhere: the zip container, the legacy pickles, the legacy storages.
        byte[] zipBytes = File.ReadAllBytes(Fixture("zoo_slowfast_slow_r50_w32.pyth"));
        byte[] legacyBytes = File.ReadAllBytes(Fixture("zoo_mmaction2_slowonly_r50_w32.pth"));
        foreach (var (bytes, cut) in new[] { (zipBytes, zipBytes.Length / 2), (legacyBytes, 300), (legacyBytes, legacyBytes.Length - 100) })
        {
            string truncated = dir.File($"truncated-{cut}.pth");
            File.WriteAllBytes(truncated, bytes[..cut]);
            var t = Assert.Throws<InvalidDataException>(() => TorchSaveFile.Read(truncated));
            Assert.Contains(truncated, t.Message, StringComparison.Ordinal);
        }

        // Not a torch file at all, and a file that is not there.
        string text = dir.File("notes.pth");
        File.WriteAllText(text, "not weights");
        Assert.Contains("not a torch.save file", Assert.Throws<InvalidDataException>(() => TorchSaveFile.Read(text)).Message, StringComparison.Ordinal);
        Assert.Throws<FileNotFoundException>(() => ZooImporter.Import(dir.File("missing.pyth")));

        // A tensor that claims more than its storage holds.
        string overrun = dir.File("overrun.pth");
        File.WriteAllBytes(overrun, [.. LegacyHeader(),
            .. Pickle("ctorch._utils\n_rebuild_tensor_v2\n((" + Text("storage") + "ctorch\nFloatStorage\n" + Text("0") + Text("cpu") + "K\u0002tQK\u0000K\u0004\u0085K\u0001\u0085\u0089)tR."),
            .. Pickle("]" + Text("0") + "a."), .. BitConverter.GetBytes(2L), .. new byte[8]]);
        string message = Assert.Throws<InvalidDataException>(() => TorchSaveFile.Read(overrun)).Message;
        Assert.True(message.Contains("size [4] and strides [1] that reaches past the 2 elements of storage '0'", StringComparison.Ordinal), message);
    }

    [Fact]
    public void Importing_leaves_no_tensor_behind()
    {
        string file = Fixture("zoo_slowfast_ssl_r50_w32.pyth");
        ResNet3dOptions encoderOptions;
        ProjectionHeadOptions headOptions;
        using (var first = ZooImporter.Import(file))
        {
            encoderOptions = first.Report.Encoder;
            headOptions = first.Report.Head!;
        }

        // Building modules leaves TorchSharp's counted husks (handle-less objects, no native memory): the same number
        // for building the two modules bare as for importing them.
        long before = LiveTensors.Settled();
        using (var encoder = ResNet3d.Create(encoderOptions))
        using (new ProjectionHead(encoder.FeatureDim, headOptions))
        {
        }

        long husks = LiveTensors.Settled() - before;
        before = LiveTensors.Settled();
        for (int i = 0; i < 2; i++)
        {
            using var imported = ZooImporter.Import(file);
        }

        Assert.Equal(before + (2 * husks), LiveTensors.Settled());
    }

    internal static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    private static Tensor Values(JsonElement element, string name) => torch.tensor(element.GetProperty(name).EnumerateArray().Select(v => v.GetSingle()).ToArray());

    /// <summary>The fixture script's input: 0.5 + 0.5 sin(0.013 i + 0.3), in [0, 1] as Cvrl feeds its encoders.</summary>
    private static Tensor Input(params long[] shape)
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        var values = new float[n];
        for (long i = 0; i < n; i++)
        {
            values[i] = (float)(0.5 + (0.5 * Math.Sin((i * 0.013) + 0.3)));
        }

        return torch.tensor(values).reshape(shape);
    }

    /// <summary>The fixture script's weight formula, keyed by name (make_zoo_fixtures.py: kind_of and formula).</summary>
    private static Tensor Formula(string name, long[] shape)
    {
        if (name.EndsWith("num_batches_tracked", StringComparison.Ordinal))
        {
            return torch.tensor(7L);
        }

        string kind = name.EndsWith("running_mean", StringComparison.Ordinal) ? "running_mean"
            : name.EndsWith("running_var", StringComparison.Ordinal) ? "running_var"
            : shape.Length == 5 ? "conv" : shape.Length == 2 ? "linear"
            : name.EndsWith("weight", StringComparison.Ordinal) ? "bn_weight" : "bias";
        return kind == "bias"
            ? DeterministicWeights.Value(name, shape, "bn_bias")
            : DeterministicWeights.Value(name, shape, kind);
    }

    internal static byte[] LegacyHeader() =>
    [
        .. Pickle("\x8a\x0a" + Encoding.Latin1.GetString(System.Numerics.BigInteger.Parse("119547037146038801333356").ToByteArray()) + "."),
        .. Pickle("M\u00e9\u0003."),
        .. Pickle("}."),
    ];

    internal static byte[] Pickle(string body) => [0x80, 0x02, .. Encoding.Latin1.GetBytes(body)];

    /// <summary>BINUNICODE: 'X', a 4-byte little-endian length, the UTF-8 text (as Latin-1 characters for <see cref="Pickle"/>).</summary>
    internal static string Text(string value) => "X" + Encoding.Latin1.GetString(BitConverter.GetBytes(value.Length)) + value;
}
