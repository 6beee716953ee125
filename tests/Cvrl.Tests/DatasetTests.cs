using Cvrl.Data;
using Cvrl.Testing;
using Cvrl.Video;

namespace Cvrl.Tests;

public sealed class DatasetTests
{
    private static void Touch(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, "x");
    }

    [Fact]
    public void FromFolder_FindsVideosRecursivelyByExtension()
    {
        using var dir = new TempDirectory();
        Touch(dir.File("a.mp4"));
        Touch(dir.File("sub/b.AVI"));
        Touch(dir.File("sub/deeper/c.mkv"));
        Touch(dir.File("notes.txt"));
        var all = VideoDataset.FromFolder(dir.Path);
        Assert.Equal(3, all.Count);
        Assert.False(all.IsLabeled);
        Assert.All(all.Items, i => Assert.Equal(-1, i.Label));
        Assert.Single(VideoDataset.FromFolder(dir.Path, recursive: false).Items);
        Assert.Single(VideoDataset.FromFolder(dir.Path, [".mkv"]).Items);
        Assert.Throws<DirectoryNotFoundException>(() => VideoDataset.FromFolder(dir.File("missing")));
        using var empty = new TempDirectory();
        Assert.Throws<DatasetException>(() => VideoDataset.FromFolder(empty.Path));
    }

    [Fact]
    public void Links_are_followed_once_each_real_file_counts_once_and_what_was_passed_over_is_named()
    {
        using var dir = new TempDirectory();
        Touch(dir.File("v/a.mp4"));
        Touch(dir.File("v/sub/b.mp4"));
        Touch(dir.File("elsewhere/c.mp4"));
        File.CreateSymbolicLink(dir.File("v/a-again.mp4"), "a.mp4");                 // a second name for a file
        Directory.CreateSymbolicLink(dir.File("v/sub/up"), "..");                    // a loop back to the root
        Directory.CreateSymbolicLink(dir.File("v/sub/self"), dir.File("v/sub"));      // a loop to its own folder
        Directory.CreateSymbolicLink(dir.File("v/outside"), dir.File("elsewhere"));   // a folder outside the root: searched once
        Directory.CreateSymbolicLink(dir.File("v/outside-too"), dir.File("elsewhere")); // the same folder by a second link
        File.CreateSymbolicLink(dir.File("v/gone.mp4"), dir.File("nothing.mp4"));     // a broken link

        var scan = VideoFiles.Scan(dir.File("v"));
        Assert.Equal([dir.File("v/a.mp4"), dir.File("v/outside/c.mp4"), dir.File("v/sub/b.mp4")], scan.Videos);
        Assert.Equal([dir.File("v/a-again.mp4")], scan.Duplicates.Select(d => d.Path));
        Assert.Contains(dir.File("v/a.mp4"), scan.Duplicates[0].Reason, StringComparison.Ordinal);
        var skipped = scan.Skipped.ToDictionary(s => Path.GetRelativePath(dir.File("v"), s.Path), s => s.Reason);
        Assert.Equal(["gone.mp4", "outside-too", "sub/self", "sub/up"], skipped.Keys.Order(StringComparer.Ordinal));
        Assert.StartsWith("a broken link", skipped["gone.mp4"], StringComparison.Ordinal);
        Assert.StartsWith("a link to a folder searched already", skipped["sub/up"], StringComparison.Ordinal);

        // The data set takes each real file once and carries what was passed over.
        var set = VideoDataset.FromFolder(dir.File("v"));
        Assert.Equal(3, set.Count);
        Assert.Single(set.Duplicates);
        Assert.Equal(4, set.NotSearched.Count);
        Assert.Equal(set.Duplicates, set.Unlabeled().Duplicates);

        // Class folders: a file linked into a second class counts once, in the class of its own name.
        Touch(dir.File("c/jump/1.mp4"));
        Touch(dir.File("c/walk/2.mp4"));
        File.CreateSymbolicLink(dir.File("c/walk/linked.mp4"), dir.File("c/jump/1.mp4"));
        var classes = VideoDataset.FromClassFolders(dir.File("c"));
        Assert.Equal([(dir.File("c/jump/1.mp4"), 0), (dir.File("c/walk/2.mp4"), 1)], classes.Items.Select(i => (i.Path, i.Label)));
        Assert.Equal([dir.File("c/walk/linked.mp4")], classes.Duplicates.Select(d => d.Path));
    }

    [Fact]
    public void FromClassFolders_LabelsBySortedFolderName()
    {
        using var dir = new TempDirectory();
        Touch(dir.File("walk/1.mp4"));
        Touch(dir.File("run/1.mp4"));
        Touch(dir.File("run/2.mp4"));
        var set = VideoDataset.FromClassFolders(dir.Path);
        Assert.Equal(new[] { "run", "walk" }, set.Classes);
        Assert.Equal(new[] { 0, 0, 1 }, set.Items.Select(i => i.Label));
        Assert.True(set.IsLabeled);
        Directory.CreateDirectory(dir.File("empty"));
        Assert.Contains("empty", Assert.Throws<DatasetException>(() => VideoDataset.FromClassFolders(dir.Path)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FromKineticsCsv_UsesTheUsualNaming()
    {
        using var dir = new TempDirectory();
        File.WriteAllLines(dir.File("train.csv"),
        [
            "label,youtube_id,time_start,time_end,split",
            "abseiling,abc123,10,20,train",
            "\"air drumming\",xyz789,0,10,train",
            "abseiling,val001,5,15,val",
        ]);
        Touch(dir.File("videos/abseiling/abc123_000010_000020.mp4"));
        Touch(dir.File("videos/air_drumming/xyz789_000000_000010.mkv"));
        Touch(dir.File("videos/val/abseiling/val001_000005_000015.mp4"));
        var train = VideoDataset.FromKineticsCsv(dir.File("train.csv"), dir.File("videos"), split: "train");
        Assert.Equal(2, train.Count);
        Assert.Equal(new[] { "abseiling", "air drumming" }, train.Classes);
        Assert.Equal(new[] { 0, 1 }, train.Items.Select(i => i.Label));
        Assert.Equal(3, VideoDataset.FromKineticsCsv(dir.File("train.csv"), dir.File("videos")).Count);

        File.AppendAllLines(dir.File("train.csv"), ["abseiling,gone1,0,10,train", "abseiling,gone2,0,10,train"]);
        var e = Assert.Throws<DatasetException>(() => VideoDataset.FromKineticsCsv(dir.File("train.csv"), dir.File("videos"), "train"));
        Assert.Contains("2 video(s)", e.Message, StringComparison.Ordinal);
        Assert.Contains("gone1_000000_000010", e.Message, StringComparison.Ordinal);
        Assert.Equal(2, e.Missing.Count);
        var skipped = VideoDataset.FromKineticsCsv(dir.File("train.csv"), dir.File("videos"), "train", skipMissing: true);
        Assert.Equal(2, skipped.Count);
        Assert.Equal(2, skipped.Missing.Count);

        File.WriteAllLines(dir.File("bad.csv"), ["abseiling,abc123,ten,20,train"]);
        Assert.Contains("line 1", Assert.Throws<DatasetException>(() => VideoDataset.FromKineticsCsv(dir.File("bad.csv"), dir.File("videos"))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FromSplitList_ReadsUcfStyleTrainAndTestLists()
    {
        using var dir = new TempDirectory();
        File.WriteAllLines(dir.File("classInd.txt"), ["1 ApplyEyeMakeup", "2 Archery"]);
        File.WriteAllLines(dir.File("trainlist01.txt"), ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1", "Archery/v_Archery_g01_c01.avi 2"]);
        File.WriteAllLines(dir.File("testlist01.txt"), ["Archery/v_Archery_g02_c01.avi"]);
        Touch(dir.File("UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"));
        Touch(dir.File("UCF-101/Archery/v_Archery_g01_c01.avi"));
        Touch(dir.File("UCF-101/Archery/v_Archery_g02_c01.avi"));
        var train = VideoDataset.FromSplitList(dir.File("UCF-101"), dir.File("classInd.txt"), dir.File("trainlist01.txt"));
        Assert.Equal(new[] { 0, 1 }, train.Items.Select(i => i.Label));
        Assert.Equal(new[] { "ApplyEyeMakeup", "Archery" }, train.Classes);
        var test = VideoDataset.FromSplitList(dir.File("UCF-101"), dir.File("classInd.txt"), dir.File("testlist01.txt"));
        Assert.Equal(1, Assert.Single(test.Items).Label);

        File.WriteAllLines(dir.File("escape.txt"), ["../../etc/passwd 1"]);
        Assert.Contains("outside the data root", Assert.Throws<DatasetException>(() => VideoDataset.FromSplitList(dir.File("UCF-101"), dir.File("classInd.txt"), dir.File("escape.txt"))).Message, StringComparison.Ordinal);
        File.WriteAllLines(dir.File("unknown.txt"), ["Archery/v_Archery_g01_c01.avi 7"]);
        Assert.Throws<DatasetException>(() => VideoDataset.FromSplitList(dir.File("UCF-101"), dir.File("classInd.txt"), dir.File("unknown.txt")));
    }

    [Fact]
    public void FromPaths_RelativeAndAbsolute_WithLabels()
    {
        using var dir = new TempDirectory();
        Touch(dir.File("a.mp4"));
        Touch(dir.File("b.mp4"));
        var set = VideoDataset.FromPaths(["a.mp4", dir.File("b.mp4")], [1, 0], ["cat", "dog"], dir.Path);
        Assert.Equal(new[] { 1, 0 }, set.Items.Select(i => i.Label));
        Assert.Throws<ArgumentException>(() => VideoDataset.FromPaths(["a.mp4"], [0, 1], root: dir.Path));
        Assert.Throws<DatasetException>(() => VideoDataset.FromPaths(["a.mp4", "zzz.mp4"], root: dir.Path));
        Assert.Equal(2, set.Subset([0, 1]).Count);
        Assert.False(set.Unlabeled().IsLabeled);
    }
}
