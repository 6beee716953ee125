using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cvrl.Data;
using Cvrl.Embeddings;
using Cvrl.Explore;
using Cvrl.Testing;
using Cvrl.Training;
using Cvrl.Video;

namespace Cvrl.Tests;

/// <summary>
/// The second hardening round, library side: each test reproduces one defect a hostile run found (a file that claims
/// more than it holds, folders two runs write into, a report replaced halfway, links that make a walk endless, names
/// with backslashes or near the length limit, a tampered cache) and checks the typed, file-naming refusal or the
/// intact result that replaced it.
/// </summary>
[Collection("Torch")]
public sealed class HardeningTests
{
    // ------------------------------------------------------------------ run-folder locks

    [Fact]
    public void A_folder_lock_refuses_a_second_holder_and_names_the_first_and_a_stale_lock_is_taken_over()
    {
        using var dir = new TempDirectory();
        string folder = dir.File("run");
        using (var first = FolderLock.Acquire(folder, "pre-training"))
        {
            Assert.Null(first.TookOverFrom);
            var refused = Assert.Throws<FolderInUseException>(() => FolderLock.Acquire(folder, "another run"));
            Assert.Equal(Environment.ProcessId, refused.Holder!.ProcessId);
            Assert.Contains($"process {Environment.ProcessId}", refused.Message, StringComparison.Ordinal);
            Assert.Contains("pre-training", refused.Message, StringComparison.Ordinal);
            Assert.Equal(Environment.ProcessId, FolderLock.HolderOf(folder)!.ProcessId);
        }

        Assert.Null(FolderLock.HolderOf(folder));
        Assert.False(File.Exists(Path.Combine(folder, FolderLock.OwnerFileName)));

        // A holder record left behind (its process was killed) with no lock held: taken over, and said so.
        var ghost = new FolderLockHolder(999_999, "elsewhere", "pre-training", new DateTime(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc));
        File.WriteAllText(Path.Combine(folder, FolderLock.OwnerFileName), JsonSerializer.Serialize(ghost));
        var log = new LoaderTests.ListLogger();
        using var second = FolderLock.Acquire(folder, "pre-training", log);
        Assert.Equal(ghost, second.TookOverFrom);
        Assert.Contains(log.Messages, m => m.Contains("process 999999 on elsewhere", StringComparison.Ordinal));
    }

    [Fact]
    public void A_trainer_refuses_a_checkpoint_folder_another_run_holds_and_releases_its_own()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.File("videos"), 4);
        var data = VideoDataset.FromFolder(dir.File("videos"));
        string checkpoints = dir.File("ckpt");
        using var encoder = TrainerTests.TinyEncoder();
        using (FolderLock.Acquire(checkpoints, "another run"))
        {
            using var blocked = new CvrlTrainer(encoder, TrainerTests.Tiny(checkpoints) with { Epochs = 1 });
            var e = Assert.Throws<FolderInUseException>(() => blocked.Fit(data));
            Assert.Contains("another run", e.Message, StringComparison.Ordinal);
            Assert.Empty(Directory.GetFiles(checkpoints, "*.cvrl"));
        }

        using var trainer = new CvrlTrainer(encoder, TrainerTests.Tiny(checkpoints) with { Epochs = 1 });
        var summary = trainer.Fit(data);
        Assert.Equal(1, summary.Steps);
        Assert.Null(FolderLock.HolderOf(checkpoints)); // released when Fit returns
    }

    [Fact]
    public void Training_where_no_batch_can_be_made_fails_with_the_videos_named_instead_of_reporting_step_0()
    {
        // Four videos the index accepts but whose reads fail: their cached entries claim a hundred times the frames
        // they hold (consistently, so the cache's checks pass), so the clips planned lie past their real end.
        using var dir = new TempDirectory();
        string videos = dir.File("videos");
        var paths = VideoFolders.Create(videos, 4, frames: 24);
        VideoIndex.Build(paths, null, videos);
        string cache = Path.Combine(videos, VideoIndex.DefaultFileName);
        var json = JsonNode.Parse(File.ReadAllText(cache))!;
        foreach (var entry in json["Videos"]!.AsArray())
        {
            entry!["Frames"] = 2400;
            entry["ClaimedFrames"] = 2400;
        }

        File.WriteAllText(cache, json.ToJsonString());
        var data = VideoDataset.FromFolder(videos);
        using var encoder = TrainerTests.TinyEncoder();
        using var trainer = new CvrlTrainer(encoder, TrainerTests.Tiny() with { Epochs = 1, BatchSize = 4 });
        var e = Assert.Throws<DatasetException>(() => trainer.Fit(data));
        Assert.Contains("No training step could run", e.Message, StringComparison.Ordinal);
        Assert.Contains(videos, e.Message, StringComparison.Ordinal);
        Assert.Equal(0, trainer.Step);
    }

    /// <summary>
    /// Pre-training on long-GOP originals (H.264, a key frame every 250 frames, 2000 frames each) seeks where the index
    /// verified seeking: it decodes a small multiple of the clips' frames per sample, where decoding forward from the
    /// start costs a large part of the video. Counted in frames, not seconds.
    /// </summary>
    [Fact]
    public void Pretraining_on_indexed_long_GOP_videos_seeks_and_decodes_little_more_than_the_clips()
    {
        using var dir = new TempDirectory();
        string videos = dir.File("long");
        Directory.CreateDirectory(videos);
        for (int i = 0; i < 4; i++)
        {
            FfmpegVideos.Create(videos, FfmpegKind.H264Mp4, 2000, 64, 48, $"v{i}");
        }

        var index = VideoIndex.Build(Directory.GetFiles(videos, "*.mp4"), null, videos);
        Assert.All(index.Videos, v => Assert.Equal(FrameAccess.Seek, v.Access));
        Assert.All(index.Videos, v => Assert.InRange(v.SeekCostFrames, 16, 4 * v.KeyFrameInterval));
        var data = VideoDataset.FromFolder(videos);
        DecodingStatistics Train(SeekMode seek)
        {
            using var encoder = TrainerTests.TinyEncoder();
            var options = TrainerTests.Tiny() with { Epochs = 2, BatchSize = 2 };
            using var trainer = new CvrlTrainer(encoder, options with { Views = options.Views with { Reader = options.Views.Reader with { Seek = seek } } });
            return trainer.Fit(data).Decoding;
        }

        var seeking = Train(SeekMode.Auto);
        var forward = Train(SeekMode.Sequential);
        Assert.Equal(8, seeking.Samples);
        Assert.Equal(0, forward.Seeks);
        Assert.True(seeking.Seeks >= 4, $"{seeking.Seeks} seeks in {seeking.Samples} samples");
        Assert.True(seeking.FramesPerSample < forward.FramesPerSample / 4, $"seeking decoded {seeking.FramesPerSample:F0} frames per sample, decoding forward {forward.FramesPerSample:F0}");
    }

    // ------------------------------------------------------------------ explore reports are replaced whole

    [Fact]
    public void An_interrupted_report_leaves_the_earlier_one_whole_and_other_files_are_never_touched()
    {
        using var dir = new TempDirectory();
        string videos = dir.File("videos");
        TestVideos.Create(Path.Combine(videos, "a", "one.avi"), 20, 64, 48);
        TestVideos.Create(Path.Combine(videos, "b", "two.avi"), 20, 64, 48);
        TestVideos.Create(Path.Combine(videos, "b", "three.avi"), 20, 64, 48);
        var set = new EmbeddingSet(3, "test", new JsonObject { ["root"] = videos }.ToJsonString());
        set.Add("a/one.avi", [1, 0, 0]);
        set.Add("b/two.avi", [0.9f, 0.1f, 0]);
        set.Add("b/three.avi", [0, 1, 0]);
        string report = dir.File("report");

        // A user's own pictures in a folder named thumbs/ (an older report's name) stay.
        Directory.CreateDirectory(Path.Combine(report, "thumbs"));
        File.WriteAllBytes(Path.Combine(report, "thumbs", "mine.jpg"), [1, 2, 3]);
        ExploreReport.Write(set, report, new ExploreOptions { ThumbnailFrames = 2, Projector = true, Workers = 1 });
        string data = File.ReadAllText(Path.Combine(report, "data.js"));
        string firstThumbs = Assert.Single(Directory.GetDirectories(report, "thumbs-*"));
        var firstStrips = Directory.GetFiles(firstThumbs).ToDictionary(f => f, File.ReadAllBytes);
        Assert.Equal(3, firstStrips.Count);

        // A second report of another set, cancelled while its thumbnails are made: the first stays as it was.
        var other = new EmbeddingSet(3, "test", new JsonObject { ["root"] = videos }.ToJsonString());
        other.Add("b/three.avi", [1, 0, 0]);
        other.Add("a/one.avi", [0, 1, 0]);
        using var cts = new CancellationTokenSource();
        var progress = new SynchronousProgress<StageProgress>(p =>
        {
            if (p.Stage == "thumbnails" && p.Completed >= 1)
            {
                cts.Cancel();
            }
        });
        Assert.ThrowsAny<OperationCanceledException>(() => ExploreReport.Write(other, report, new ExploreOptions { ThumbnailFrames = 2, Projector = true, Workers = 1 }, null, progress, cts.Token));
        Assert.Equal(data, File.ReadAllText(Path.Combine(report, "data.js")));
        Assert.Equal(firstThumbs, Assert.Single(Directory.GetDirectories(report, "thumbs-*")));
        Assert.All(firstStrips, kv => Assert.Equal(kv.Value, File.ReadAllBytes(kv.Key)));
        Assert.Empty(Directory.GetDirectories(report, ".cvrl-staging-*"));
        Assert.True(File.Exists(Path.Combine(report, "projector", "sprite.png")));

        // Completed, the second replaces the first, whose thumbnails go; the user's file does not.
        ExploreReport.Write(other, report, new ExploreOptions { ThumbnailFrames = 2, Projector = true, Workers = 1 });
        string secondThumbs = Assert.Single(Directory.GetDirectories(report, "thumbs-*"));
        Assert.NotEqual(firstThumbs, secondThumbs);
        Assert.Contains(Path.GetFileName(secondThumbs), File.ReadAllText(Path.Combine(report, "data.js")), StringComparison.Ordinal);
        Assert.Equal(2, Directory.GetFiles(secondThumbs).Length);
        Assert.Equal([1, 2, 3], File.ReadAllBytes(Path.Combine(report, "thumbs", "mine.jpg")));
        Assert.Empty(Directory.GetDirectories(report, ".cvrl-staging-*"));
    }

    // ------------------------------------------------------------------ preparation

    [Fact]
    public void Links_in_the_output_folder_to_itself_and_its_parent_do_not_make_preparation_walk_without_end()
    {
        using var dir = new TempDirectory();
        string source = dir.File("vids");
        VideoFolders.Create(source, 2, frames: 8);
        string output = dir.File("out");
        Directory.CreateDirectory(output);
        File.CreateSymbolicLink(Path.Combine(output, "self"), ".");
        File.CreateSymbolicLink(Path.Combine(output, "up"), "..");
        var report = VideoPreparation.Prepare(source, output, new PreparationOptions { Video = new() { ShortSide = 32 }, Workers = 1 });
        Assert.Equal(2, report.Prepared);

        // An output inside the source (here reached through a link) is never searched as source.
        string inside = Path.Combine(source, "prepared");
        string link = dir.File("link-to-inside");
        Directory.CreateDirectory(inside);
        File.CreateSymbolicLink(link, inside);
        var again = VideoPreparation.Prepare(source, link, new PreparationOptions { Video = new() { ShortSide = 32 }, Workers = 1 });
        Assert.Equal(2, again.Videos);
        var second = VideoPreparation.Prepare(source, link, new PreparationOptions { Video = new() { ShortSide = 32 }, Workers = 1 });
        Assert.Equal((2, 2), (second.Videos, second.UpToDate));

        // The source itself, by another name, is refused.
        File.CreateSymbolicLink(dir.File("same"), source);
        Assert.Throws<ArgumentException>(() => VideoPreparation.Prepare(source, dir.File("same")));
    }

    [Fact]
    public void A_name_too_long_for_its_prepared_copy_is_a_bad_video_and_the_rest_are_prepared()
    {
        using var dir = new TempDirectory();
        string source = dir.File("vids");
        VideoFolders.Create(source, 2, frames: 8);
        string longName = new string('x', 250) + ".avi"; // 254 bytes: legal, but not with ".cvrlvid" after it
        File.Copy(Directory.GetFiles(source)[0], Path.Combine(source, longName));
        string output = dir.File("out");
        var report = VideoPreparation.Prepare(source, output, new PreparationOptions { Video = new() { ShortSide = 32 }, Workers = 1 });
        Assert.Equal(2, report.Prepared);
        var bad = Assert.Single(report.Bad);
        Assert.EndsWith(longName, bad.Path, StringComparison.Ordinal);
        Assert.Contains("255", bad.Reason, StringComparison.Ordinal);

        // Remembered: the rerun names it again without trying, and completes.
        var rerun = VideoPreparation.Prepare(source, output, new PreparationOptions { Video = new() { ShortSide = 32 }, Workers = 1 });
        Assert.Equal((0, 2, 1), (rerun.Prepared, rerun.UpToDate, rerun.Bad.Count));

        // A name whose ".partial" alone passes the limit is written under a shorter temporary name.
        string near = new string('y', 238) + ".avi"; // + ".cvrlvid" = 250 bytes, + ".partial" = 258
        File.Copy(Directory.GetFiles(source).First(f => !f.Contains("xxx", StringComparison.Ordinal)), Path.Combine(source, near));
        string partial = PreparedVideo.PartialPath(Path.Combine(output, near + PreparedVideo.Extension));
        Assert.True(Encoding.UTF8.GetByteCount(Path.GetFileName(partial)) <= 255);
        Assert.EndsWith(PreparedVideo.Extension + ".partial", partial, StringComparison.Ordinal);
        var third = VideoPreparation.Prepare(source, output, new PreparationOptions { Video = new() { ShortSide = 32 }, Workers = 1 });
        Assert.Equal(1, third.Prepared);
        Assert.True(File.Exists(Path.Combine(output, near + PreparedVideo.Extension)));
    }

    [Fact]
    public void Preparing_another_source_into_a_prepared_folder_is_refused_before_anything_changes()
    {
        using var dir = new TempDirectory();
        VideoFolders.Create(dir.File("a"), 2, frames: 8, prefix: "a");
        VideoFolders.Create(dir.File("b"), 1, frames: 8, prefix: "b");
        string output = dir.File("out");
        VideoPreparation.Prepare(dir.File("a"), output, new PreparationOptions { Video = new() { ShortSide = 32 }, Workers = 1 });
        var before = Directory.GetFiles(output, "*" + PreparedVideo.Extension).Order(StringComparer.Ordinal).ToList();
        var e = Assert.Throws<ArgumentException>(() => VideoPreparation.Prepare(dir.File("b"), output, new PreparationOptions { Video = new() { ShortSide = 32 } }));
        Assert.Contains(dir.File("a"), e.Message, StringComparison.Ordinal);
        Assert.Equal(before, Directory.GetFiles(output, "*" + PreparedVideo.Extension).Order(StringComparer.Ordinal).ToList());

        using (FolderLock.Acquire(output, "preparing videos"))
        {
            Assert.Throws<FolderInUseException>(() => VideoPreparation.Prepare(dir.File("a"), output));
        }

        var replaced = VideoPreparation.Prepare(dir.File("b"), output, new PreparationOptions { Video = new() { ShortSide = 32 }, ReplaceOtherSource = true });
        Assert.Equal(2, replaced.Removed.Count);
        Assert.Single(Directory.GetFiles(output, "*" + PreparedVideo.Extension));
    }

    // ------------------------------------------------------------------ prepared files that claim more than they hold

    [Fact]
    public void A_prepared_frame_that_declares_a_huge_size_is_refused_before_it_is_decoded()
    {
        using var dir = new TempDirectory();
        string prepared = Prepared(dir);
        var (offsets, _) = Layout(prepared);
        byte[] bytes = File.ReadAllBytes(prepared);
        int sof = FindSof(bytes, (int)offsets[0]);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(sof + 5), 30000); // height
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(sof + 7), 30000); // width
        File.WriteAllBytes(prepared, bytes);
        using var reader = VideoReader.Open(prepared);
        var e = Assert.Throws<VideoDecodeException>(() => reader.ReadClipBytes([[0]]));
        Assert.Equal(VideoDecodeFailure.InconsistentFrames, e.Failure);
        Assert.Contains("declares 30000x30000", e.Message, StringComparison.Ordinal);
        Assert.Contains(prepared, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_prepared_header_that_claims_huge_frames_or_a_huge_frame_table_is_refused_at_open_and_skipped_by_the_index()
    {
        using var dir = new TempDirectory();
        string huge = Prepared(dir, "huge.avi");
        RewriteHeader(huge, h => { h["Width"] = 30000; h["Height"] = 30000; });
        var tooLarge = Assert.Throws<VideoDecodeException>(() => VideoReader.Open(huge));
        Assert.Equal(VideoDecodeFailure.TooLarge, tooLarge.Failure);
        Assert.Contains("30000x30000", tooLarge.Message, StringComparison.Ordinal);

        // 300 million frames: a table of 2.4 GB, written sparse, so the file is small on disk.
        string many = Prepared(dir, "many.avi");
        ClaimFrames(many, 300_000_000);
        var tooMany = Assert.Throws<VideoDecodeException>(() => VideoReader.Open(many));
        Assert.Equal(VideoDecodeFailure.TooManyFrames, tooMany.Failure);
        Assert.Contains(many, tooMany.Message, StringComparison.Ordinal);

        // Indexing a folder that holds them: both are bad videos with their reason, the good one is used.
        string good = Prepared(dir, "good.avi");
        var index = VideoIndex.Build([huge, many, good], new VideoIndexOptions { UseCache = false, Workers = 1 });
        Assert.Equal([VideoStatus.Bad, VideoStatus.Bad, VideoStatus.Ok], index.Videos.Select(v => v.Status));
        Assert.Equal([VideoDecodeFailure.TooLarge, VideoDecodeFailure.TooManyFrames], index.Bad.Select(v => v.Failure!.Value));
    }

    // ------------------------------------------------------------------ names and the index cache

    [Fact]
    public void A_backslash_in_a_file_or_folder_name_stays_part_of_the_name_in_keys_and_classes()
    {
        using var dir = new TempDirectory();
        string root = dir.File("classes");
        VideoFolders.Create(Path.Combine(root, "a\\b"), 2, frames: 8, prefix: "v");
        VideoFolders.Create(Path.Combine(root, "c"), 2, frames: 8, prefix: "w");
        var classes = VideoDataset.FromClassFolders(root);
        Assert.Equal(["a\\b", "c"], classes.Classes);

        string flat = dir.File("flat");
        Directory.CreateDirectory(Path.Combine(flat, "x"));
        string source = VideoFolders.Create(dir.File("src"), 1, frames: 8)[0];
        File.Copy(source, Path.Combine(flat, "x\\y.avi"));
        File.Copy(source, Path.Combine(flat, "x", "y.avi"));
        using var encoder = TrainerTests.TinyEncoder();
        var set = new VideoEmbedder(encoder, EmbeddingTests.Small()).EmbedFolder(flat);
        Assert.Equal(["x/y.avi", "x\\y.avi"], set.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void A_tampered_index_cache_entry_is_dropped_named_and_measured_again()
    {
        using var dir = new TempDirectory();
        var paths = VideoFolders.Create(dir.File("videos"), 3, frames: 12);
        VideoIndex.Build(paths, null, dir.File("videos"));
        string cache = Path.Combine(dir.File("videos"), VideoIndex.DefaultFileName);
        var json = JsonNode.Parse(File.ReadAllText(cache))!;
        var entries = json["Videos"]!.AsArray();
        entries[0]!["Frames"] = -5;
        entries[1]!["Path"] = null;
        entries[2]!["Frames"] = 0;
        File.WriteAllText(cache, json.ToJsonString());

        var log = new LoaderTests.ListLogger();
        var index = VideoIndex.Build(paths, null, dir.File("videos"), logger: log);
        Assert.Equal(0, index.FromCache);
        Assert.All(index.Videos, v => Assert.Equal(12, v.Frames));
        Assert.Contains(log.Messages, m => m.Contains(cache, StringComparison.Ordinal) && m.Contains(paths[0], StringComparison.Ordinal) && m.Contains("-5 frames", StringComparison.Ordinal));
        Assert.Contains(log.Messages, m => m.Contains(cache, StringComparison.Ordinal) && m.Contains("names no file", StringComparison.Ordinal));

        // Written back whole: the next build takes every entry from the cache.
        Assert.Equal(3, VideoIndex.Build(paths, null, dir.File("videos")).FromCache);
    }

    [Fact]
    public void Seek_costs_cached_by_the_earlier_wrong_measure_are_measured_again()
    {
        // A version-2 cache as the per-frame-timeout change wrote it: a seek "costs" a hundred million frames.
        using var dir = new TempDirectory();
        string videos = dir.File("videos");
        Directory.CreateDirectory(videos);
        string path = FfmpegVideos.Create(videos, FfmpegKind.H264Mp4, 600, 64, 48, "gop");
        VideoIndex.Build([path], null, videos);
        string cache = Path.Combine(videos, VideoIndex.DefaultFileName);
        var json = JsonNode.Parse(File.ReadAllText(cache))!;
        json["Version"] = 2;
        json["Videos"]![0]!["SeekCostFrames"] = 115852431;
        File.WriteAllText(cache, json.ToJsonString());

        var index = VideoIndex.Build([path], null, videos);
        Assert.Equal(0, index.FromCache);
        var entry = Assert.Single(index.Videos);
        Assert.Equal(FrameAccess.Seek, entry.Access);
        Assert.InRange(entry.SeekCostFrames, 16, 4 * entry.KeyFrameInterval);
        Assert.Equal(3, JsonNode.Parse(File.ReadAllText(cache))!["Version"]!.GetValue<int>());
    }

    [Fact]
    public void An_embedding_file_that_claims_more_items_than_it_holds_is_refused_before_allocating_them()
    {
        using var dir = new TempDirectory();
        var set = new EmbeddingSet(4, "test");
        set.Add("a.avi", [1, 0, 0, 0]);
        string path = dir.File("set.cvrlemb");
        set.Save(path);
        byte[] bytes = File.ReadAllBytes(path);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), int.MaxValue); // the item count after the 8-byte magic
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<InvalidDataException>(() => EmbeddingSet.Load(path));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains("2147483647 items", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void File_identity_sees_through_links_hard_links_and_dot_dot()
    {
        using var dir = new TempDirectory();
        string file = dir.File("a.bin");
        File.WriteAllBytes(file, [1]);
        File.CreateSymbolicLink(dir.File("soft.bin"), file);
        Directory.CreateDirectory(dir.File("sub"));
        FileLinks.Hard(file, dir.File("hard.bin"));
        Assert.True(FileIdentity.SameFile(file, dir.File("soft.bin")));
        Assert.True(FileIdentity.SameFile(file, dir.File("hard.bin")));
        Assert.True(FileIdentity.SameFile(file, Path.Combine(dir.File("sub"), "..", "a.bin")));
        Assert.False(FileIdentity.SameFile(file, dir.File("sub")));
        Assert.False(FileIdentity.SameFile(file, dir.File("missing.bin")));
        File.CreateSymbolicLink(dir.File("sublink"), dir.File("sub"));
        Assert.True(FileIdentity.IsWithin(Path.Combine(dir.File("sublink"), "new.txt"), dir.File("sub")));
        Assert.False(FileIdentity.IsWithin(dir.File("subway.txt"), dir.File("sub")));
    }

    // ------------------------------------------------------------------ helpers

    private static string Prepared(TempDirectory dir, string name = "v.avi")
    {
        string original = TestVideos.Create(dir.File(name), 6, 64, 48);
        string prepared = dir.File(name + PreparedVideo.Extension);
        PreparedVideo.Write(original, prepared, new PreparedVideoOptions { ShortSide = null });
        return prepared;
    }

    /// <summary>The frame table and the header's bytes of a prepared file.</summary>
    private static (long[] Offsets, (long TableOffset, int HeaderLength)) Layout(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        var trailer = bytes.AsSpan(bytes.Length - 24);
        long table = BinaryPrimitives.ReadInt64LittleEndian(trailer);
        int headerLength = BinaryPrimitives.ReadInt32LittleEndian(trailer[8..]);
        long headerOffset = bytes.Length - 24 - headerLength;
        var offsets = new long[(headerOffset - table) / 8];
        for (int i = 0; i < offsets.Length; i++)
        {
            offsets[i] = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan((int)table + (8 * i)));
        }

        return (offsets, (table, headerLength));
    }

    private static int FindSof(byte[] bytes, int start)
    {
        for (int i = start; i + 1 < bytes.Length; i++)
        {
            if (bytes[i] == 0xFF && bytes[i + 1] is 0xC0 or 0xC1 or 0xC2)
            {
                return i;
            }
        }

        throw new InvalidOperationException("no frame header");
    }

    /// <summary>Rewrites a prepared file's JSON header (the trailer follows its new length).</summary>
    private static void RewriteHeader(string path, Action<JsonObject> change)
    {
        byte[] bytes = File.ReadAllBytes(path);
        var (_, (table, headerLength)) = Layout(path);
        long headerOffset = bytes.Length - 24 - headerLength;
        var header = JsonNode.Parse(bytes.AsSpan((int)headerOffset, headerLength))!.AsObject();
        change(header);
        using var stream = File.Create(path);
        stream.Write(bytes.AsSpan(0, (int)headerOffset));
        WriteTail(stream, table, header);
    }

    /// <summary>Writes a header and the trailer that points at <paramref name="table"/>.</summary>
    private static void WriteTail(Stream stream, long table, JsonObject header)
    {
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        stream.Write(json);
        var trailer = new byte[24];
        BinaryPrimitives.WriteInt64LittleEndian(trailer, table);
        BinaryPrimitives.WriteInt32LittleEndian(trailer.AsSpan(8), json.Length);
        "CVRLEND1"u8.CopyTo(trailer.AsSpan(16));
        stream.Write(trailer);
    }

    /// <summary>Makes a prepared file claim <paramref name="frames"/> frames with a table of that many entries (sparse zeros).</summary>
    private static void ClaimFrames(string path, long frames)
    {
        byte[] bytes = File.ReadAllBytes(path);
        var (_, (table, headerLength)) = Layout(path);
        long headerOffset = bytes.Length - 24 - headerLength;
        var header = JsonNode.Parse(bytes.AsSpan((int)headerOffset, headerLength))!.AsObject();
        header["Frames"] = frames;
        long newHeaderOffset = table + ((frames + 1) * 8);
        using var stream = File.Create(path);
        stream.Write(bytes.AsSpan(0, (int)table));
        stream.SetLength(newHeaderOffset);
        stream.Position = newHeaderOffset;
        WriteTail(stream, table, header);
    }

    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
