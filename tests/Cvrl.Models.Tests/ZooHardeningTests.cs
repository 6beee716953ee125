using System.IO.Compression;
using System.Text;
using Cvrl.Models.Weights;
using Cvrl.Testing;
using TorchSharp;
using static Cvrl.Models.Tests.ZooImportTests;
using static TorchSharp.torch;

namespace Cvrl.Models.Tests;

/// <summary>
/// Weight files a careless or hostile user brings: values nested without end, zip entries that inflate a thousandfold,
/// tensors whose sizes overflow, weights that are not numbers, and the zoo files whose layout or configuration the
/// importer once misread (mmengine's sorted <c>meta.cfg</c>, pytorchvideo's C2D and I3D). Each is named in a typed,
/// one-line error, or imported as its configuration says.
/// </summary>
[Collection("Torch")]
public sealed class ZooHardeningTests
{
    [Fact]
    public void Tuples_nested_twenty_thousand_deep_are_refused_by_name_instead_of_overflowing_the_stack()
    {
        // The hostile run's 20 KB file: a dictionary key that is a tuple inside a tuple, 20,000 deep.
        using var dir = new TempDirectory();
        string path = dir.File("deep.pt");
        ZipWith(path, [.. Pickle("})" + new string('\x85', 20000) + "Ns.")]);
        var e = Assert.Throws<InvalidDataException>(() => TorchSaveFile.Read(path));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains("nests tuples more than 100 deep", e.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidDataException>(() => ZooImporter.Import(path));

        // Lists nested by appending one into another (each append sees a shallow list): refused once read.
        string lists = dir.File("lists.pt");
        ZipWith(lists, [.. Pickle(new string(']', 5000) + new string('a', 4999) + ".")]);
        var nested = Assert.Throws<InvalidDataException>(() => TorchSaveFile.Read(lists));
        Assert.Contains("nests containers more than 100 deep", nested.Message, StringComparison.Ordinal);

        // Nesting of a real checkpoint's depth reads, and a list that holds itself (a cycle) is not taken for depth.
        string fine = dir.File("fine.pt");
        ZipWith(fine, [.. Pickle("}" + Text("a") + "]q\u0000h\u0000a" + new string(')', 1) + new string('\x85', 50) + "\x86s.")]);
        using var content = TorchSaveFile.Read(fine);
        Assert.IsType<List<object?>>(((PickleTuple)content.Find("a")!)[0]);
    }

    [Fact]
    public void Zip_entries_that_inflate_a_thousandfold_are_refused_before_they_are_inflated()
    {
        using var dir = new TempDirectory();
        string pickleBomb = dir.File("bomb.pt");
        using (var zip = new ZipArchive(File.Create(pickleBomb), ZipArchiveMode.Create))
        {
            using var entry = zip.CreateEntry("archive/data.pkl", CompressionLevel.SmallestSize).Open();
            entry.Write(new byte[8 << 20]);
        }

        var e = Assert.Throws<InvalidDataException>(() => TorchSaveFile.Read(pickleBomb));
        Assert.Contains("inflates from", e.Message, StringComparison.Ordinal);
        Assert.Contains("archive/data.pkl", e.Message, StringComparison.Ordinal);

        // A storage that deflates from 8 MB of zeros: the pickle is fine, the storage entry is refused.
        string storageBomb = dir.File("storage.pt");
        long elements = 2L << 20; // 8 MB of float32
        ZipWith(storageBomb, TensorPickle(elements, [elements], [1]), ("archive/data/0", new byte[elements * 4], CompressionLevel.SmallestSize));
        var s = Assert.Throws<InvalidDataException>(() => TorchSaveFile.Read(storageBomb));
        Assert.Contains("archive/data/0", s.Message, StringComparison.Ordinal);
        Assert.Contains("inflates from", s.Message, StringComparison.Ordinal);

        // The same storage stored as torch.save stores it (uncompressed) reads.
        string stored = dir.File("stored.pt");
        ZipWith(stored, TensorPickle(4, [2, 2], [2, 1]), ("archive/data/0", new byte[16], CompressionLevel.NoCompression));
        using var content = TorchSaveFile.Read(stored);
        Assert.Equal([2L, 2L], ((Tensor)content.Find("w")!).shape);
    }

    [Fact]
    public void Tensor_sizes_and_strides_that_overflow_64_bits_are_refused_by_name()
    {
        using var dir = new TempDirectory();
        foreach (var (size, stride) in new (long[], long[])[]
        {
            ([1L << 62], [1L]),                     // reaches far past the storage (the product wraps in 64 bits)
            ([1L << 62, 4], [1L << 62, 1L << 62]),  // (size - 1) * stride overflows
            ([1L << 40], [0L]),                     // one element repeated 2^40 times: a terabyte copy of a 4-byte storage
        })
        {
            string path = dir.File($"t{size[0]}-{stride[0]}.pt");
            ZipWith(path, TensorPickle(1, size, stride), ("archive/data/0", new byte[4], CompressionLevel.NoCompression));
            var e = Assert.Throws<InvalidDataException>(() => TorchSaveFile.Read(path));
            Assert.Contains(path, e.Message, StringComparison.Ordinal);
            Assert.Contains("rebuilds a tensor of size", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_checkpoint_whose_weights_are_not_numbers_is_refused_at_import()
    {
        using var dir = new TempDirectory();
        using var mm = TorchSaveFile.Read(Fixture("zoo_mmaction2_slowonly_r50_w32.pth"));
        using var weights = mm.TakeStateDict("state_dict");
        var poisoned = weights.ToDictionary(kv => kv.Key, kv => (object)kv.Value);
        using var nan = torch.full_like(weights["backbone.layer2.0.conv1.conv.weight"], double.NaN);
        poisoned["backbone.layer2.0.conv1.conv.weight"] = nan;
        string path = dir.File("nan.pth");
        LegacyTorchSave.Write(path, new Dictionary<string, object> { ["state_dict"] = poisoned });
        var e = Assert.Throws<InvalidDataException>(() => ZooImporter.Import(path));
        Assert.Contains("backbone.layer2.0.conv1.conv.weight", e.Message, StringComparison.Ordinal);
        Assert.Contains("NaN", e.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// mmaction2 1.x (mmengine) keeps its configuration at <c>meta.cfg</c> as pretty text with every dictionary's keys
    /// sorted: the test pipeline's ThreeCrop at 256 comes first and a backbone's <c>type</c> comes last. The clips and
    /// normalisation are read from the structure: sampling and the fixed-size Resize of the training pipeline, the data
    /// preprocessor's mean and standard deviation.
    /// </summary>
    [Fact]
    public void An_mmengine_meta_cfg_with_sorted_keys_is_read_by_structure()
    {
        using var dir = new TempDirectory();
        using var mm = TorchSaveFile.Read(Fixture("zoo_mmaction2_slowonly_r50_w32.pth"));
        using var weights = mm.TakeStateDict("state_dict");
        string path = dir.File("slowonly_4x16.pth");
        LegacyTorchSave.Write(path, new Dictionary<string, object> { ["meta"] = new Dictionary<string, object> { ["cfg"] = MmEngineConfig(conv1StrideT: 1, backbone: "ResNet3dSlowOnly") }, ["state_dict"] = weights.ToDictionary(kv => kv.Key, kv => (object)kv.Value) });
        using (var imported = ZooImporter.Import(path))
        {
            Assert.Equal(new Cvrl.Models.ClipGeometry(4, 16, 224), imported.Encoder.TrainedClips);
            Assert.Equal("the checkpoint's meta.cfg", imported.Report.ClipsSource);
            Assert.Equal("the checkpoint's meta.cfg", imported.Report.NormalizationSource);
            TorchAssert.Near(0.485, imported.Report.Encoder.InputMean![0], 1e-9, 1e-9);
            TorchAssert.Near(0.225, imported.Report.Encoder.InputStd![2], 1e-9, 1e-9);
            Assert.Equal(1, imported.Encoder.Options.StemTemporalStride);
        }

        // The same text with an I3D backbone (type last, no with_pool2): refused for what it is.
        string i3d = dir.File("i3d.pth");
        LegacyTorchSave.Write(i3d, new Dictionary<string, object> { ["meta"] = new Dictionary<string, object> { ["cfg"] = MmEngineConfig(conv1StrideT: 1, backbone: "ResNet3d") }, ["state_dict"] = weights.ToDictionary(kv => kv.Key, kv => (object)kv.Value) });
        Assert.Contains("with_pool2", Assert.Throws<InvalidDataException>(() => ZooImporter.Import(i3d)).Message, StringComparison.Ordinal);

        // A temporal stride in the stem, read from the backbone's dictionary wherever the key sits.
        string strided = dir.File("strided.pth");
        LegacyTorchSave.Write(strided, new Dictionary<string, object> { ["meta"] = new Dictionary<string, object> { ["cfg"] = MmEngineConfig(conv1StrideT: 2, backbone: "ResNet3dSlowOnly") }, ["state_dict"] = weights.ToDictionary(kv => kv.Key, kv => (object)kv.Value) });
        using var twice = ZooImporter.Import(strided);
        Assert.Equal(2, twice.Encoder.Options.StemTemporalStride);
    }

    [Fact]
    public void Pytorchvideo_c2d_and_i3d_layouts_are_named_for_what_they_are()
    {
        // c2d_r50 and i3d_r50: stem at blocks.0, stage 1 at blocks.1, a pooling layer without weights at blocks.2, stages
        // 2 to 4 at blocks 3 to 5 and the head at blocks.6.
        using var scope = torch.NewDisposeScope();
        var keys = s_outputs.GetProperty("full_width").GetProperty("pytorchvideo").GetProperty("keys").EnumerateArray().ToDictionary(
            k => Shift(k[0].GetString()!),
            k => torch.zeros([.. k[1].EnumerateArray().Select(d => d.GetInt64())]));
        var e = Assert.Throws<InvalidDataException>(() => ZooImporter.Import(keys, ModelZoo.Auto));
        Assert.Contains("c2d_r50", e.Message, StringComparison.Ordinal);
        Assert.Contains("blocks.2 holds no weights", e.Message, StringComparison.Ordinal);

        static string Shift(string key)
        {
            var parts = key.Split('.');
            if (parts[0] == "blocks" && int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture) is int b && b >= 2)
            {
                parts[1] = (b + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
            }

            return string.Join('.', parts);
        }
    }

    [Fact]
    public void The_configuration_parser_reads_dicts_lists_expansions_and_references_and_skips_what_it_cannot()
    {
        var config = PythonConfig.Parse("""
            # a comment
            _base_ = ['../../_base_/default_runtime.py']
            img_norm_cfg = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_bgr=False)
            clip = 8
            train_pipeline = [
                dict(type='SampleFrames', clip_len=clip, frame_interval=8, num_clips=1),
                dict(type='Normalize', **img_norm_cfg),
                dict(type="Resize", scale=(-1, 256)),
            ]
            data = dict(train=dict(pipeline=train_pipeline), videos_per_gpu={'a': 1, "b": (2, 3)})
            lr = 0.1 * 8 / 256
            weird = lambda x: x + 1
            optimizer = dict(type='SGD', lr=lr, momentum=.9, weight_decay=1e-4)
            total_epochs = 256
            """);
        Assert.Equal(8L, PythonConfig.Step(config.Get("train_pipeline"), "SampleFrames")!["clip_len"]);
        Assert.Equal(new[] { 123.675, 116.28, 103.53 }, PythonConfig.Numbers(PythonConfig.Step(config.Get("data", "train", "pipeline"), "Normalize")!["mean"]));
        Assert.Equal(false, PythonConfig.Step(config.Get("train_pipeline"), "Normalize")!["to_bgr"]);
        Assert.Equal(new[] { -1.0, 256 }, PythonConfig.Numbers(PythonConfig.Step(config.Get("train_pipeline"), "Resize")!["scale"]));
        Assert.Same(PythonConfig.Unread, config.Get("lr"));
        Assert.Same(PythonConfig.Unread, config.Get("optimizer", "lr"));
        Assert.Equal(0.9, config.Get("optimizer", "momentum"));
        Assert.Equal(256L, config.Get("total_epochs"));
        Assert.Equal(1L, config.Get("data", "videos_per_gpu", "a"));

        // Nesting beyond the parser's limit is skipped as a statement, not followed into the stack.
        var deep = PythonConfig.Parse("a = " + new string('[', 50_000) + new string(']', 50_000) + "\nb = 2\n");
        Assert.Null(deep.Get("a"));
        Assert.Equal(2L, deep.Get("b"));
    }

    /// <summary>A SlowOnly-R50 4x16 configuration as mmengine's pretty text writes it: keys sorted, one per line.</summary>
    private static string MmEngineConfig(int conv1StrideT, string backbone) => $$"""
        default_scope = 'mmaction'
        model = dict(
            backbone=dict(
                conv1_kernel=(
                    1,
                    7,
                    7,
                ),
                conv1_stride_t={{conv1StrideT}},
                depth=50,
                inflate=(
                    0,
                    0,
                    1,
                    1,
                ),
                lateral=False,
                norm_eval=False,
                pool1_stride_t=1,
                pretrained=None,
                type='{{backbone}}'),
            cls_head=dict(
                average_clips='prob',
                dropout_ratio=0.5,
                in_channels=2048,
                num_classes=400,
                spatial_type='avg',
                type='I3DHead'),
            data_preprocessor=dict(
                format_shape='NCTHW',
                mean=[
                    123.675,
                    116.28,
                    103.53,
                ],
                std=[
                    58.395,
                    57.12,
                    57.375,
                ],
                type='ActionDataPreprocessor'),
            type='Recognizer3D')
        test_pipeline = [
            dict(io_backend='disk', type='DecordInit'),
            dict(
                clip_len=4,
                frame_interval=16,
                num_clips=10,
                test_mode=True,
                type='SampleFrames'),
            dict(type='DecordDecode'),
            dict(scale=(
                -1,
                256,
            ), type='Resize'),
            dict(crop_size=256, type='ThreeCrop'),
            dict(input_format='NCTHW', type='FormatShape'),
            dict(type='PackActionInputs'),
        ]
        train_pipeline = [
            dict(io_backend='disk', type='DecordInit'),
            dict(clip_len=4, frame_interval=16, num_clips=1, type='SampleFrames'),
            dict(type='DecordDecode'),
            dict(scale=(
                -1,
                256,
            ), type='Resize'),
            dict(type='RandomResizedCrop'),
            dict(keep_ratio=False, scale=(
                224,
                224,
            ), type='Resize'),
            dict(flip_ratio=0.5, type='Flip'),
            dict(input_format='NCTHW', type='FormatShape'),
            dict(type='PackActionInputs'),
        ]
        val_pipeline = [
            dict(io_backend='disk', type='DecordInit'),
            dict(
                clip_len=4,
                frame_interval=16,
                num_clips=1,
                test_mode=True,
                type='SampleFrames'),
            dict(type='DecordDecode'),
            dict(scale=(
                -1,
                256,
            ), type='Resize'),
            dict(crop_size=224, type='CenterCrop'),
            dict(input_format='NCTHW', type='FormatShape'),
            dict(type='PackActionInputs'),
        ]
        """;

    /// <summary>A pickle of {"w": a float32 tensor of <paramref name="size"/> and <paramref name="stride"/> on storage "0" of <paramref name="elements"/> elements}.</summary>
    private static byte[] TensorPickle(long elements, long[] size, long[] stride)
    {
        static string Long(long v) => "\x8a\x08" + Encoding.Latin1.GetString(BitConverter.GetBytes(v));
        static string Tuple(long[] values) => "(" + string.Concat(values.Select(Long)) + "t";
        string body = "}" + Text("w")
            + "ctorch._utils\n_rebuild_tensor_v2\n"
            + "(" + "(" + Text("storage") + "ctorch\nFloatStorage\n" + Text("0") + Text("cpu") + Long(elements) + "tQ"
            + Long(0) + Tuple(size) + Tuple(stride) + "\x89" + "ccollections\nOrderedDict\n)R" + "tR"
            + "s.";
        return Pickle(body);
    }

    private static void ZipWith(string path, byte[] pickle, params (string Name, byte[] Bytes, CompressionLevel Level)[] entries)
    {
        using var zip = new ZipArchive(File.Create(path), ZipArchiveMode.Create);
        using (var pkl = zip.CreateEntry("archive/data.pkl", CompressionLevel.NoCompression).Open())
        {
            pkl.Write(pickle);
        }

        foreach (var (name, bytes, level) in entries)
        {
            using var entry = zip.CreateEntry(name, level).Open();
            entry.Write(bytes);
        }
    }
}
