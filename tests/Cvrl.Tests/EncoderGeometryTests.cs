using Cvrl.Data;
using Cvrl.Embeddings;
using Cvrl.Models;
using Cvrl.Models.Onnx;
using Cvrl.Onnx;
using Cvrl.Testing;
using Cvrl.Training;
using Cvrl.Video;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Tests;

/// <summary>
/// The encoder carries the clips it was trained on (<see cref="ResNet3d.TrainedClips"/>) from training into
/// checkpoints and ONNX models, and both embedders take their default views from it; and the one embedding driver
/// (<see cref="Embedder"/>, <see cref="ViewRun{TViews}"/>) computes exactly what a plain loop over the same batches does.
/// </summary>
[Collection("Torch")]
public sealed class EncoderGeometryTests
{
    private static readonly TestViewOptions Trained = TestViewOptions.ForClips(8, 2, 32);

    [Fact]
    public void An_encoder_trained_at_8x32x32_embeds_with_those_views_by_default_through_both_runtimes()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.File("videos"), 4, frames: 24, width: 48, height: 40, seed: 1);
        using var encoder = TrainerTests.TinyEncoder(5);
        Assert.Null(encoder.TrainedClips);
        var untrained = new VideoEmbedder(encoder);
        Assert.Equal(new TestViewOptions(), untrained.Views);
        Assert.Equal("Cvrl's defaults", untrained.ViewsSource);

        var tiny = TrainerTests.Tiny(dir.File("run"));
        var options = tiny with { Epochs = 1, LearningRate = 1e-3, Views = tiny.Views with { Sampler = tiny.Views.Sampler with { FramesPerClip = 8 } } };
        using (var trainer = new CvrlTrainer(encoder, options))
        {
            trainer.Fit(VideoDataset.FromFolder(dir.File("videos")));
        }

        Assert.Equal(new ClipGeometry(8, 2, 32), encoder.TrainedClips);
        var torchEmbedder = new VideoEmbedder(encoder, new EmbeddingOptions { Workers = 2 });
        Assert.Equal(Trained, torchEmbedder.Views);
        Assert.Equal("the encoder's training clips", torchEmbedder.ViewsSource);

        // A checkpoint carries the clips, and so does the ONNX model exported from it without being told.
        string checkpoint = Directory.GetFiles(dir.File("run"), "*.cvrl").Order(StringComparer.Ordinal).Last();
        Assert.Equal(encoder.TrainedClips, CvrlCheckpoint.ReadState(checkpoint).TrainedClips);
        using var loaded = CvrlCheckpoint.LoadEncoder(checkpoint);
        Assert.Equal(encoder.TrainedClips, loaded.TrainedClips);
        Assert.Equal(Trained, new VideoEmbedder(loaded).Views);
        OnnxExporter.Export(loaded, dir.File("e.onnx"));
        using var onnx = OnnxEncoder.Load(dir.File("e.onnx"), new OnnxSessionOptions { IntraOpThreads = 1 });
        var onnxEmbedder = new OnnxVideoEmbedder(onnx, new EmbeddingOptions { Workers = 2 });
        Assert.Equal(Trained, onnxEmbedder.Views);
        Assert.Equal("the encoder's training clips", onnxEmbedder.ViewsSource);

        // Both runtimes embed with 8 x 32 x 32 views, record them, and agree (float32 arithmetic of two runtimes).
        var torchSet = torchEmbedder.EmbedFolder(dir.File("videos"));
        var onnxSet = onnxEmbedder.EmbedFolder(dir.File("videos"));
        Assert.Equal(Trained, Embedder.ViewsOf(torchSet));
        Assert.Equal(Trained, Embedder.ViewsOf(onnxSet));
        Assert.Equal(torchSet.Keys, onnxSet.Keys);
        for (int i = 0; i < torchSet.Count; i++)
        {
            Assert.True(OnnxEmbeddingTests.Cosine(torchSet[i].ToArray(), onnxSet[i].ToArray()) >= 0.9999, torchSet.Keys[i]);
        }

        // A field given in the options wins; the others stay the encoder's.
        var four = new VideoEmbedder(encoder, new EmbeddingOptions { Views = torchEmbedder.Views with { Clips = 4 } });
        Assert.Equal(Trained with { Clips = 4 }, four.Views);
        Assert.Equal("the options", four.ViewsSource);
    }

    [Fact]
    public void The_driver_computes_exactly_what_a_plain_loop_over_the_same_batches_computes()
    {
        using var dir = new TempDirectory();
        var paths = VideoFolders.Create(dir.File("videos"), 3, frames: 20, width: 56, height: 40, seed: 2);
        using var encoder = TrainerTests.TinyEncoder(9);
        var views = Trained with { Clips = 3, Crops = 3 };
        var options = new EmbeddingOptions { Views = views, BatchSize = 4, Workers = 2 };
        var set = new VideoEmbedder(encoder, options).EmbedMany(paths);

        // The reference: every view of every video in order, cut into batches of 4 views, encoded in inference mode,
        // L2-normalised, and each video's 9 rows averaged in float32.
        var maker = new TestViews(views);
        byte[] all = [.. paths.SelectMany(p => maker.Read(p))];
        int total = paths.Count * views.ViewsPerVideo;
        var rows = new List<float[]>();
        encoder.eval();
        using (var scope = torch.NewDisposeScope())
        using (torch.no_grad())
        {
            var floats = torch.tensor(all, [total, 3, views.FramesPerClip, views.CropSize, views.CropSize]).to_type(ScalarType.Float32).div_(255.0);
            for (int start = 0; start < total; start += 4)
            {
                var features = nn.functional.normalize(encoder.Features(floats.narrow(0, start, Math.Min(4, total - start))), p: 2, dim: 1);
                for (int r = 0; r < features.shape[0]; r++)
                {
                    rows.Add(features[r].data<float>().ToArray());
                }
            }
        }

        encoder.train();
        for (int v = 0; v < paths.Count; v++)
        {
            float[] values = [.. rows.Skip(v * views.ViewsPerVideo).Take(views.ViewsPerVideo).SelectMany(r => r)];
            Assert.Equal(EncodedVideos.MeanOfViews(values, views.ViewsPerVideo, values.Length / views.ViewsPerVideo), set[v].ToArray());
        }

        // The encoder's mode is left as it was, and the number of decoding threads does not change a bit.
        Assert.True(encoder.training);
        var one = new VideoEmbedder(encoder, options with { Workers = 1 }).EmbedMany(paths);
        var three = new VideoEmbedder(encoder, options with { Workers = 3, BatchSize = 4 }).EmbedMany(paths);
        for (int v = 0; v < paths.Count; v++)
        {
            Assert.Equal(set[v].ToArray(), one[v].ToArray());
            Assert.Equal(set[v].ToArray(), three[v].ToArray());
        }
    }

    [Fact]
    public void Both_embedders_fail_alike_when_no_video_decodes()
    {
        using var dir = new TempDirectory();
        Directory.CreateDirectory(dir.File("bad"));
        File.WriteAllBytes(dir.File("bad/a.avi"), new byte[4096]);
        File.WriteAllText(dir.File("bad/b.mp4"), "not a video");
        using var encoder = TrainerTests.TinyEncoder(1);
        OnnxExporter.Export(encoder, dir.File("e.onnx"));
        using var onnx = OnnxEncoder.Load(dir.File("e.onnx"));
        var options = new EmbeddingOptions { Views = Trained with { Clips = 2 }, Workers = 2 };
        Embedder[] embedders = [new VideoEmbedder(encoder, options), new OnnxVideoEmbedder(onnx, options)];
        foreach (var embedder in embedders)
        {
            var none = Assert.Throws<DatasetException>(() => embedder.EmbedFolder(dir.File("bad")));
            Assert.Contains("None of the 2 videos", none.Message, StringComparison.Ordinal);
            var one = Assert.Throws<VideoDecodeException>(() => embedder.Embed(dir.File("bad/a.avi")));
            Assert.Equal(dir.File("bad/a.avi"), one.Path);
            var missing = Assert.Throws<DatasetException>(() => embedder.EmbedMany([dir.File("bad/gone.avi")]));
            Assert.Equal([dir.File("bad/gone.avi")], missing.Missing);
        }
    }
}
