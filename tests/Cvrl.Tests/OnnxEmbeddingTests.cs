using System.Text.Json.Nodes;
using Cvrl.Embeddings;
using Cvrl.Models;
using Cvrl.Models.Onnx;
using Cvrl.Onnx;
using Cvrl.Testing;
using Cvrl.Video;
using TorchSharp;

namespace Cvrl.Tests;

/// <summary>
/// The ONNX Runtime embedder (Cvrl.Onnx, no TorchSharp) gives the embeddings of <see cref="VideoEmbedder"/> for the
/// same encoder and views: both read the views through <see cref="TestViews"/>, so the inputs are identical and only
/// the two runtimes' float32 arithmetic differs (measured here: 1 - cosine about 1.5e-14 and elements within 6e-8 of each other, for values up to 0.29; the bound is a cosine of 0.9999).
/// </summary>
[Collection("Torch")]
public sealed class OnnxEmbeddingTests
{
    private static EmbeddingOptions Small(int crops) => EmbeddingTests.Small() with
    {
        Views = EmbeddingTests.Small().Views! with { FramesPerClip = 8, Crops = crops, ShortSide = crops == 3 ? 32 : 40 },
    };

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Onnx_embedder_matches_VideoEmbedder_on_a_real_video(int crops)
    {
        using var dir = new TempDirectory();
        var paths = VideoFolders.Create(dir.File("videos"), 3, frames: 20, width: 56, height: 40, seed: 2);
        using var encoder = RandomEncoder(seed: 7);
        OnnxExporter.Export(encoder, dir.File("encoder.onnx"));

        var options = Small(crops);
        var torchEmbedder = new VideoEmbedder(encoder, options);
        using var onnx = OnnxEncoder.Load(dir.File("encoder.onnx"), new OnnxSessionOptions { IntraOpThreads = 1 });
        var onnxEmbedder = new OnnxVideoEmbedder(onnx, options with { BatchSize = 5, Workers = 2 });

        Assert.Equal(torchEmbedder.Fingerprint, onnxEmbedder.Fingerprint);
        var a = torchEmbedder.Embed(paths[0]);
        var b = onnxEmbedder.Embed(paths[0]);
        Assert.Equal(a.Length, b.Length);
        Assert.True(Cosine(a, b) >= 0.9999, $"cosine {Cosine(a, b):F8}");
        for (int d = 0; d < a.Length; d++)
        {
            TorchAssert.Near(a[d], b[d], 1e-4, 1e-5);
        }

        // Whole folders: the same keys and vectors, and a set made by one runtime is searchable by the other.
        var torchSet = torchEmbedder.EmbedFolder(dir.File("videos"));
        var onnxSet = onnxEmbedder.EmbedFolder(dir.File("videos"));
        Assert.Equal(torchSet.Keys, onnxSet.Keys);
        for (int i = 0; i < torchSet.Count; i++)
        {
            Assert.True(Cosine(torchSet[i].ToArray(), onnxSet[i].ToArray()) >= 0.9999, torchSet.Keys[i]);
        }

        torchEmbedder.CheckCompatible(onnxSet);
        onnxEmbedder.CheckCompatible(torchSet);
        Assert.Equal(Path.GetFileName(paths[1]), Path.GetFileName(onnxEmbedder.Search(torchSet, paths[1], 1)[0].Key));
        Assert.Equal(options.Views! with { Reader = new() }, Embedder.ViewsOf(onnxSet)! with { Reader = new() });
        Assert.Equal(options.Views! with { Reader = new() }, Embedder.ViewsOf(torchSet)! with { Reader = new() });
    }

    [Fact]
    public void Views_default_to_the_geometry_recorded_in_the_model()
    {
        using var dir = new TempDirectory();
        using var encoder = RandomEncoder(seed: 3);
        OnnxExporter.Export(encoder, dir.File("e.onnx"), new OnnxExportOptions { ClipFrames = 8, ClipStride = 3, ShortSide = 36, CropSize = 32 });
        using var onnx = OnnxEncoder.Load(dir.File("e.onnx"));
        var embedder = new OnnxVideoEmbedder(onnx);
        Assert.Equal(new TestViewOptions { FramesPerClip = 8, Stride = 3, ShortSide = 36, CropSize = 32 }, embedder.Views);
        Assert.Equal(encoder.FeatureDim, onnx.FeatureDim);
        Assert.Equal("R3D-18 0.25x", onnx.Architecture);
        Assert.Equal(encoder.MinimumInput, onnx.MinimumInput);

        // Views smaller than the network accepts are refused before any video is read.
        var e = Assert.Throws<ArgumentException>(() => new OnnxVideoEmbedder(onnx, new EmbeddingOptions { Views = new TestViewOptions { FramesPerClip = 4, ShortSide = 32, CropSize = 32 } }));
        Assert.Contains("smaller than R3D-18 0.25x accepts (8 x 16 x 16)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_models_and_bad_videos_get_clear_errors()
    {
        using var dir = new TempDirectory();
        Assert.Throws<FileNotFoundException>(() => OnnxEncoder.Load(dir.File("missing.onnx")));
        File.WriteAllText(dir.File("garbage.onnx"), "not a model");
        var invalid = Assert.Throws<InvalidDataException>(() => OnnxEncoder.Load(dir.File("garbage.onnx")));
        Assert.Contains("garbage.onnx", invalid.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => OnnxEncoder.Load(dir.File("garbage.onnx"), new OnnxSessionOptions { IntraOpThreads = -1 }));

        using var encoder = RandomEncoder(seed: 4);
        OnnxExporter.Export(encoder, dir.File("e.onnx"));
        using var onnx = OnnxEncoder.Load(dir.File("e.onnx"));
        VideoFolders.Create(dir.File("videos"), 2, frames: 20, seed: 5);
        string broken = VideoFolders.Corrupt(dir.File("videos"));
        var views = Small(1).Views;
        var set = new OnnxVideoEmbedder(onnx, new EmbeddingOptions { Views = views }).EmbedFolder(dir.File("videos"));
        Assert.Equal(2, set.Count);
        var skipped = JsonNode.Parse(set.Metadata)!["skipped"]!.AsArray();
        Assert.Single(skipped);
        Assert.Equal(broken, skipped[0]!["path"]!.GetValue<string>());

        var strict = new OnnxVideoEmbedder(onnx, new EmbeddingOptions { Views = views, BadVideos = BadVideoPolicy.Fail });
        var decode = Assert.Throws<VideoDecodeException>(() => strict.EmbedFolder(dir.File("videos")));
        Assert.Equal(broken, decode.Path);
        Assert.Contains("none.avi", Assert.Throws<DatasetException>(() => strict.Embed(dir.File("videos/none.avi"))).Message, StringComparison.Ordinal);
        Assert.Equal(broken, Assert.Throws<VideoDecodeException>(() => strict.Embed(broken)).Path);
        Assert.Throws<ArgumentException>(() => onnx.Features(new float[10], 1, 8, 32, 32));
    }

    internal static ResNet3d RandomEncoder(int seed)
    {
        torch.manual_seed(seed);
        var encoder = ResNet3d.R3d18(width: 0.25);
        using var generator = new torch.Generator((ulong)seed);
        using var noGrad = torch.no_grad();
        foreach (var (_, module) in encoder.named_modules())
        {
            if (module is CvrlBatchNorm bn)
            {
                bn.weight.uniform_(0.5, 1.5, generator);
                bn.bias.uniform_(-0.2, 0.2, generator);
                bn.running_mean.uniform_(-0.2, 0.2, generator);
                bn.running_var.uniform_(0.5, 2.0, generator);
            }
        }

        return encoder;
    }

    internal static double Cosine(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            dot += (double)a[i] * b[i];
            na += (double)a[i] * a[i];
            nb += (double)b[i] * b[i];
        }

        return dot / Math.Sqrt(na * nb);
    }
}
