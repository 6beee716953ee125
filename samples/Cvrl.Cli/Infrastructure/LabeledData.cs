using Cvrl.Data;

namespace Cvrl.Cli.Infrastructure;

/// <summary>
/// Opens a labelled data folder in one of the layouts the evaluation commands accept: UCF101-style split lists
/// (<c>classInd.txt</c>, <c>trainlistNN.txt</c>, <c>testlistNN.txt</c>, paths relative to the folder; what
/// <c>quickstart</c> generates), <c>train/</c> and <c>test/</c> folders of class folders, or plain class folders, split
/// by <see cref="VideoDataset.SplitInterleaved"/> (every N-th group of G
/// videos of a class tested).
/// </summary>
internal static class LabeledData
{
    public static (VideoDataset Train, VideoDataset Test, string Layout) Open(string root, int split, int testEvery = 3, int group = 1)
    {
        if (!Directory.Exists(root))
        {
            throw new DirectoryNotFoundException($"data folder '{root}' does not exist");
        }

        string classIndex = Path.Combine(root, "classInd.txt");
        string trainList = Path.Combine(root, $"trainlist{split:00}.txt");
        string testList = Path.Combine(root, $"testlist{split:00}.txt");
        if (File.Exists(classIndex))
        {
            foreach (var list in new[] { trainList, testList })
            {
                if (!File.Exists(list))
                {
                    throw new FileNotFoundException($"'{root}' has classInd.txt but no {Path.GetFileName(list)} (split {split})", list);
                }
            }

            var train = VideoDataset.FromSplitList(root, classIndex, trainList);
            var test = VideoDataset.FromSplitList(root, classIndex, testList);
            return (NonEmpty(train, trainList), NonEmpty(test, testList), $"split lists (split {split})");
        }

        string trainDir = Path.Combine(root, "train");
        string testDir = Path.Combine(root, "test");
        if (Directory.Exists(trainDir) && Directory.Exists(testDir))
        {
            var train = VideoDataset.FromClassFolders(trainDir);
            var test = VideoDataset.FromClassFolders(testDir);
            if (!train.Classes.SequenceEqual(test.Classes, StringComparer.Ordinal))
            {
                throw new InvalidDataException($"'{trainDir}' and '{testDir}' have different class folders ({train.Classes.Count} and {test.Classes.Count}); both need the same classes");
            }

            return (NonEmpty(train, trainDir), NonEmpty(test, testDir), "train/ and test/ class folders");
        }

        var classes = Directory.EnumerateDirectories(root).Where(d => !Path.GetFileName(d).StartsWith('.')).ToList();
        if (classes.Count >= 2)
        {
            var all = VideoDataset.FromClassFolders(root);
            var (train, test) = all.SplitInterleaved(testEvery, group);
            return (train, test, $"{all.Classes.Count} class folders, every {Ordinal(testEvery)} group of {group} video(s) of a class tested ({train.Count} training, {test.Count} test videos)");
        }

        throw new InvalidDataException($"'{root}' is not a labelled data folder: expected classInd.txt with trainlist{split:00}.txt and testlist{split:00}.txt, train/ and test/ folders of class folders, or at least two class folders");
    }

    private static string Ordinal(int n) => n switch
    {
        2 => "second",
        3 => "third",
        _ => n.ToString(System.Globalization.CultureInfo.InvariantCulture) + "th",
    };

    private static VideoDataset NonEmpty(VideoDataset data, string source) =>
        data.Count > 0 ? data : throw new InvalidDataException($"'{source}' lists no videos");
}
