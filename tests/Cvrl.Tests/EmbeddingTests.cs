using System.Text.Json.Nodes;
using Cvrl.Augment.Functional;
using Cvrl.Augment.Sampling;
using Cvrl.Augment.Video;
using Cvrl.Data;
using Cvrl.Embeddings;
using Cvrl.Testing;
using Cvrl.Video;
using TorchSharp;

namespace Cvrl.Tests;

[Collection("Torch")]
public sealed class EmbeddingTests
{
    internal static EmbeddingOptions Small(int workers = 2) => new()
    {
        Views = new TestViewOptions { Clips = 3, FramesPerClip = 4, Stride = 2, ShortSide = 32, CropSize = 32 },
        BatchSize = 4,
        Workers = workers,
    };

    [Fact]
    public void Embedding_IsTheMeanOfNormalisedClipFeatures()
    {
        using var dir = new TempDirectory();
        string path = TestVideos.Create(dir.File("a.avi"), 30, 48, 40);
        using var encoder = new MeanColourEncoder();
        var embedding = new VideoEmbedder(encoder, Small()).Embed(path);

        using var scope = torch.NewDisposeScope();
        using var reader = VideoReader.Open(path);
        var expected = new double[4];
        foreach (var window in new UniformClipSampler(3, 4, 2).Sample(30))
        {
            var clip = ClipOps.CenterCrop(ClipOps.ToFloat(ClipOps.ResizeShortSide(reader.ReadClip(window.Indices(30)), 32)), 32, 32);
            var f = MeanColourEncoder.Of(clip);
            double norm = Math.Sqrt(f.Sum(x => (double)x * x));
            for (int d = 0; d < 4; d++)
            {
                expected[d] += f[d] / norm / 3;
            }
        }

        Assert.Equal(4, embedding.Length);
        for (int d = 0; d < 4; d++)
        {
            TorchAssert.Near(expected[d], embedding[d], 1e-5, 1e-6); // float32 means over a few hundred pixels
        }
    }

    [Fact]
    public void EmbeddingAFolder_IsDeterministic_WorkerInvariant_AndSearchFindsEachVideoFirst()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.File("videos/a"), 3, frames: 16, seed: 1);
        VideoFolders.Create(dir.File("videos/b"), 3, frames: 16, seed: 2);
        VideoFolders.Corrupt(dir.File("videos"));
        using var encoder = TrainerTests.TinyEncoder(7);
        long live = LiveTensors.Settled();
        var one = new VideoEmbedder(encoder, Small(workers: 1)).EmbedFolder(dir.File("videos"));
        var three = new VideoEmbedder(encoder, Small(workers: 3)).EmbedFolder(dir.File("videos"));
        var again = new VideoEmbedder(encoder, Small(workers: 3)).EmbedFolder(dir.File("videos"));
        Assert.Equal(live, LiveTensors.Count);

        Assert.Equal(6, one.Count);
        Assert.Equal(["a/video000.avi", "a/video001.avi", "a/video002.avi", "b/video000.avi", "b/video001.avi", "b/video002.avi"], one.Keys);
        Assert.Equal(one.Keys, three.Keys);
        for (int i = 0; i < one.Count; i++)
        {
            Assert.True(one[i].SequenceEqual(three[i]), $"item {i} differs between 1 and 3 workers");
            Assert.True(one[i].SequenceEqual(again[i]), $"item {i} differs between runs");
        }

        var skipped = JsonNode.Parse(one.Metadata)!["skipped"]!.AsArray();
        Assert.Single(skipped);
        Assert.EndsWith("broken.avi", skipped[0]!["path"]!.GetValue<string>(), StringComparison.Ordinal);

        var embedder = new VideoEmbedder(encoder, Small());
        foreach (var key in one.Keys)
        {
            var hits = embedder.Search(one, dir.File("videos/" + key), k: 3);
            Assert.Equal(key, hits[0].Key);
            TorchAssert.Near(1, hits[0].Score, 0, 1e-5); // cosine of a float32 unit vector with itself
            Assert.True(hits[1].Score <= hits[0].Score);
        }
    }

    [Fact]
    public void EmbeddingFile_RoundTrips_AndBadFilesAreRefusedByName()
    {
        using var dir = new TempDirectory();
        var set = new EmbeddingSet(3, "sha256:0123456789abcdef", "{\"note\":\"x\"}");
        set.Add("first.mp4", [1f, 0f, 0f]);
        set.Add("sub/ßecond.mp4", [0.5f, -0.25f, 2f]);
        string path = dir.File("set.cvrlemb");
        set.Save(path);
        var back = EmbeddingSet.Load(path);
        Assert.Equal(set.Keys, back.Keys);
        Assert.Equal(set.ModelFingerprint, back.ModelFingerprint);
        Assert.Equal(set.Metadata, back.Metadata);
        Assert.True(back[1].SequenceEqual(set[1]));
        Assert.Equal("first.mp4", back.Search([2f, 0f, 0f], 1)[0].Key);

        // The documented layout: magic, count, dim, then the strings, then the vectors.
        byte[] bytes = File.ReadAllBytes(path);
        Assert.Equal("CVRLEMB1"u8.ToArray(), bytes[..8]);
        Assert.Equal(2, BitConverter.ToInt32(bytes, 8));
        Assert.Equal(3, BitConverter.ToInt32(bytes, 12));
        Assert.Equal(2f, BitConverter.ToSingle(bytes, bytes.Length - 4));

        File.WriteAllBytes(dir.File("truncated.cvrlemb"), bytes[..^5]);
        var e = Assert.Throws<InvalidDataException>(() => EmbeddingSet.Load(dir.File("truncated.cvrlemb")));
        Assert.Contains("truncated.cvrlemb", e.Message, StringComparison.Ordinal);
        File.WriteAllText(dir.File("text.cvrlemb"), "hello, not embeddings");
        Assert.Contains("CVRLEMB1", Assert.Throws<InvalidDataException>(() => EmbeddingSet.Load(dir.File("text.cvrlemb"))).Message, StringComparison.Ordinal);

        Assert.Throws<ArgumentException>(() => set.Add("first.mp4", [0f, 1f, 0f]));
        Assert.Throws<ArgumentException>(() => set.Add("third.mp4", [0f, 1f]));
        Assert.Throws<ArgumentException>(() => set.Search([0f, 0f, 0f]));
    }

    [Fact]
    public void SearchWithAnotherEncoder_IsRefused()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.File("videos"), 2, frames: 16);
        using var encoder = TrainerTests.TinyEncoder(1);
        using var other = TrainerTests.TinyEncoder(2);
        var set = new VideoEmbedder(encoder, Small()).EmbedFolder(dir.File("videos"));
        var embedder = new VideoEmbedder(other, Small());
        Assert.NotEqual(new VideoEmbedder(encoder, Small()).Fingerprint, embedder.Fingerprint);
        var e = Assert.Throws<InvalidOperationException>(() => embedder.Search(set, dir.File("videos/video000.avi")));
        Assert.Contains(set.ModelFingerprint, e.Message, StringComparison.Ordinal);

        // The set remembers how it was made, so queries can use the same settings.
        Assert.Equal(Small().Views, Embedder.ViewsOf(set)! with { Reader = Small().Views!.Reader });
        Assert.Throws<DatasetException>(() => new VideoEmbedder(encoder, Small()).EmbedMany([dir.File("missing.avi")]));
    }
}
