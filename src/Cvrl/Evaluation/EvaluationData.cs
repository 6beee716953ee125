using System.Text.Json.Nodes;
using Cvrl.Data;
using Cvrl.Models;
using Cvrl.Video;
using static TorchSharp.torch;

namespace Cvrl.Evaluation;

/// <summary>The checks every evaluation makes on its data before any work starts.</summary>
internal static class EvaluationData
{
    /// <summary>Checks a labelled training split and a test split with the same classes.</summary>
    /// <exception cref="DatasetException">A split is empty or unlabelled, a label is out of range, a training class has no videos, or the class lists differ.</exception>
    public static void CheckSplits(VideoDataset train, VideoDataset test)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        CheckLabelled(train, "training");
        CheckLabelled(test, "test");
        CheckClassesMatch(train.Classes, test.Classes);
        var counts = new int[train.Classes.Count];
        foreach (var item in train.Items)
        {
            counts[item.Label]++;
        }

        var empty = Enumerable.Range(0, counts.Length).Where(c => counts[c] == 0).Select(c => train.Classes[c]).ToList();
        if (empty.Count > 0)
        {
            throw new DatasetException($"The training split at '{train.Root}' has no videos of class{(empty.Count > 1 ? "es" : string.Empty)} {string.Join(", ", empty.Take(10).Select(c => $"'{c}'"))}{(empty.Count > 10 ? $" and {empty.Count - 10} more" : string.Empty)}; every class needs at least one training video.");
        }
    }

    /// <summary>Checks that a split is non-empty and every video has a label within its class list.</summary>
    public static void CheckLabelled(VideoDataset data, string split)
    {
        if (data.Count == 0)
        {
            throw new DatasetException($"The {split} split at '{data.Root}' holds no videos.");
        }

        if (data.Classes.Count == 0)
        {
            throw new DatasetException($"The {split} split at '{data.Root}' has no classes; evaluation needs labelled videos (VideoDataset.FromClassFolders, FromSplitList or FromKineticsCsv).");
        }

        foreach (var item in data.Items)
        {
            if (item.Label < 0 || item.Label >= data.Classes.Count)
            {
                throw new DatasetException($"Video '{item.Path}' in the {split} split has label {item.Label}; expected 0 to {data.Classes.Count - 1} ({data.Classes.Count} classes).");
            }
        }
    }

    /// <summary>Checks that two class lists are the same, in the same order.</summary>
    public static void CheckClassesMatch(IReadOnlyList<string> expected, IReadOnlyList<string> actual, string what = "The test split's classes")
    {
        if (expected.SequenceEqual(actual, StringComparer.Ordinal))
        {
            return;
        }

        var missing = expected.Except(actual, StringComparer.Ordinal).Take(5).ToList();
        var extra = actual.Except(expected, StringComparer.Ordinal).Take(5).ToList();
        string detail = missing.Count == 0 && extra.Count == 0
            ? "the same names in another order"
            : $"missing {(missing.Count == 0 ? "none" : string.Join(", ", missing))}; unexpected {(extra.Count == 0 ? "none" : string.Join(", ", extra))}";
        throw new DatasetException($"{what} ({actual.Count}) do not match the classifier's ({expected.Count}): {detail}.");
    }

    /// <summary>A description of the encoder for <see cref="ClassificationResult.Settings"/>.</summary>
    public static JsonObject Describe(nn.Module<Tensor, Tensor> encoder)
    {
        var node = new JsonObject { ["type"] = encoder.GetType().Name };
        if (encoder is ResNet3d r)
        {
            node["architecture"] = ClassificationResult.ToNode(r.Options);
            node["featureDim"] = r.FeatureDim;
        }

        node["parameters"] = encoder.parameters().Sum(p => p.numel());
        return node;
    }
}
