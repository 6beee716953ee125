using Cvrl.Video;

namespace Cvrl.Embeddings;

/// <summary>
/// Settings shared by every run that decodes views of many videos and encodes them in batches: feature extraction for
/// evaluation (<c>FeatureExtractorOptions</c>) and both embedders (<see cref="EmbeddingOptions"/>).
/// </summary>
public abstract record ViewRunOptions
{
    /// <summary>Views per forward pass (views of consecutive videos are batched together). Default 8.</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>Decoding threads. Default: one per core.</summary>
    public int Workers { get; init; } = Environment.ProcessorCount;

    /// <summary>Undecodable videos: leave out with a warning (default; listed in the results or the set's metadata) or stop.</summary>
    public BadVideoPolicy BadVideos { get; init; } = BadVideoPolicy.Skip;

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public virtual void Validate()
    {
        if (BatchSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchSize must be at least 1 view.");
        }

        if (Workers < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(Workers), Workers, "Workers must be at least 1.");
        }

        if (!Enum.IsDefined(BadVideos))
        {
            throw new ArgumentOutOfRangeException(nameof(BadVideos), BadVideos, "Unknown policy.");
        }
    }
}

/// <summary>
/// Options of both embedders (Cvrl's <c>VideoEmbedder</c> on TorchSharp and Cvrl.Onnx's <c>OnnxVideoEmbedder</c>): a
/// video's embedding is the mean of the L2-normalised features of its <see cref="Views"/>.
/// </summary>
public sealed record EmbeddingOptions : ViewRunOptions
{
    /// <summary>
    /// The views a video's embedding averages. Null (the default): the views that match the encoder's own training clips
    /// (<see cref="TestViewOptions.ForClips"/> of a trained or loaded Cvrl encoder, or of the geometry an exported ONNX
    /// model records), else the <see cref="TestViewOptions"/> defaults (10 centre crops of 32 x 2 frames at 256). To
    /// change one field of the encoder's views, start from the embedder's <c>Views</c>: <c>embedder.Views with { Clips = 4 }</c>.
    /// Compare only embeddings made with the same views.
    /// </summary>
    public TestViewOptions? Views { get; init; }

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        Views?.Validate();
    }
}
