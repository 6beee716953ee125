namespace Cvrl.Video;

/// <summary>
/// The test views of a video, the one record of them in Cvrl: <see cref="Clips"/> evenly spaced clips of
/// <see cref="FramesPerClip"/> frames at <see cref="Stride"/>, short side resized to <see cref="ShortSide"/>,
/// <see cref="Crops"/> crops of <see cref="CropSize"/> (3: along the long side; 1: centred). Used by evaluation (inside
/// its <c>EvaluationViewOptions</c>), by both embedders (<see cref="Embeddings.EmbeddingOptions"/>), recorded in every
/// embedding set, and built by the CLI. The defaults are the paper's test geometry (docs/method.md): 10 clips of 32
/// frames at stride 2, short side and crop 256; one centre crop (embedding), where the linear evaluation uses 3.
/// </summary>
public sealed record TestViewOptions
{
    /// <summary>Evenly spaced clips per video. Default 10.</summary>
    public int Clips { get; init; } = 10;

    /// <summary>Crops per clip: 1 (centre, default) or 3 (start, middle and end of the long side).</summary>
    public int Crops { get; init; } = 1;

    /// <summary>Frames per clip. Default 32.</summary>
    public int FramesPerClip { get; init; } = 32;

    /// <summary>Stride between frames, in stored frames. Default 2.</summary>
    public int Stride { get; init; } = 2;

    /// <summary>Shorter side after resizing. Default 256.</summary>
    public int ShortSide { get; init; } = 256;

    /// <summary>Crop size (at most <see cref="ShortSide"/>). Default 256.</summary>
    public int CropSize { get; init; } = 256;

    /// <summary>Decoding options.</summary>
    public VideoReaderOptions Reader { get; init; } = new();

    /// <summary>Views per video: <see cref="Clips"/> x <see cref="Crops"/>.</summary>
    public int ViewsPerVideo => Clips * Crops;

    /// <summary>Bytes of all views of one video, <c>views x 3 x T x S x S</c> (<see cref="long.MaxValue"/> when that overflows).</summary>
    public long VideoBytes => MemoryBudget.Product(ViewsPerVideo, 3, FramesPerClip, CropSize, CropSize) is long b and >= 0 ? b : long.MaxValue;

    /// <summary>
    /// The test views that match an encoder trained on clips of <paramref name="framesPerClip"/> frames at
    /// <paramref name="stride"/> cropped to <paramref name="cropSize"/>: the same clip length and stride, short side and
    /// crop equal to the training crop, and the other fields at their defaults. The one rule by which a checkpoint's,
    /// a trained encoder's or an exported ONNX model's geometry becomes its default views.
    /// </summary>
    /// <param name="framesPerClip">Frames per training clip.</param>
    /// <param name="stride">Training stride.</param>
    /// <param name="cropSize">Training crop size.</param>
    /// <returns>The views (not validated).</returns>
    public static TestViewOptions ForClips(int framesPerClip, int stride, int cropSize) => new()
    {
        FramesPerClip = framesPerClip,
        Stride = stride,
        ShortSide = cropSize,
        CropSize = cropSize,
    };

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        foreach (var (value, name) in new[] { (Clips, nameof(Clips)), (FramesPerClip, nameof(FramesPerClip)), (Stride, nameof(Stride)), (ShortSide, nameof(ShortSide)), (CropSize, nameof(CropSize)) })
        {
            if (value < 1)
            {
                throw new ArgumentOutOfRangeException(name, value, $"{name} must be at least 1.");
            }
        }

        if (Crops is not (1 or 3))
        {
            throw new ArgumentOutOfRangeException(nameof(Crops), Crops, "Crops must be 1 (centre) or 3 (along the long side).");
        }

        if (CropSize > ShortSide)
        {
            throw new ArgumentOutOfRangeException(nameof(CropSize), CropSize, $"CropSize must not exceed ShortSide ({ShortSide}).");
        }

        if (VideoBytes > Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(FramesPerClip), FramesPerClip, $"The views of one video ({ViewsPerVideo} of 3 x {FramesPerClip} x {CropSize} x {CropSize} bytes) would take {MemoryBudget.Describe(VideoBytes)}, more than one buffer can hold; use fewer clips, crops or frames, or smaller crops.");
        }

        ArgumentNullException.ThrowIfNull(Reader, nameof(Reader));
        Reader.Validate();
    }
}

/// <summary>
/// Makes the test views of a video as planar RGB uint8 <c>[V, 3, T, S, S]</c>, clip by clip (the crops of one clip
/// adjacent): the one implementation of the test-view geometry, used by Cvrl's evaluation and <c>VideoEmbedder</c>
/// (TorchSharp) and by the ONNX Runtime embedder. Values become floats in [0, 1] as <c>x / 255</c>. Thread-safe.
/// </summary>
public sealed class TestViews
{
    private readonly UniformClipSampler _sampler;

    /// <summary>Creates the view maker.</summary>
    /// <param name="options">Options (validated); null for the defaults.</param>
    public TestViews(TestViewOptions? options = null)
    {
        Options = options ?? new TestViewOptions();
        Options.Validate();
        _sampler = new UniformClipSampler(Options.Clips, Options.FramesPerClip, Options.Stride);
    }

    /// <summary>The options.</summary>
    public TestViewOptions Options { get; }

    /// <summary>The shape of one view: <c>[3, T, S, S]</c>.</summary>
    public int[] ViewShape => [3, Options.FramesPerClip, Options.CropSize, Options.CropSize];

    /// <summary>Bytes of one view.</summary>
    public int ViewBytes => 3 * Options.FramesPerClip * Options.CropSize * Options.CropSize;

    /// <summary>Bytes of all views of one video.</summary>
    public int VideoBytes => Options.ViewsPerVideo * ViewBytes;

    /// <summary>The views of a video in a new array <c>[V, 3, T, S, S]</c>.</summary>
    /// <param name="path">The video.</param>
    /// <param name="knownFrameCount">The video's verified frame count, or null to trust the container until decoding proves it wrong.</param>
    /// <exception cref="VideoDecodeException">The video cannot be decoded.</exception>
    public byte[] Read(string path, int? knownFrameCount = null)
    {
        var views = new byte[VideoBytes];
        ReadInto(path, views, knownFrameCount);
        return views;
    }

    /// <summary>Writes the views of a video into <paramref name="destination"/> (exactly <see cref="VideoBytes"/> bytes).</summary>
    /// <param name="path">The video.</param>
    /// <param name="destination">The buffer.</param>
    /// <param name="knownFrameCount">The video's verified frame count, or null.</param>
    /// <exception cref="ArgumentException">The buffer has the wrong size.</exception>
    /// <exception cref="VideoDecodeException">The video cannot be decoded.</exception>
    public void ReadInto(string path, Span<byte> destination, int? knownFrameCount = null)
    {
        if (destination.Length != VideoBytes)
        {
            throw new ArgumentException($"The buffer holds {destination.Length} bytes; {Options.ViewsPerVideo} views of [{string.Join(", ", ViewShape)}] need {VideoBytes}.", nameof(destination));
        }

        using var reader = VideoReader.Open(path, Options.Reader);
        var (clips, _) = reader.ReadPlanned(count => [.. _sampler.Sample(count).Select(w => w.Indices(count))], reader.ReadClipBytes, knownFrameCount);
        int h = reader.Info.OutputHeight;
        int w = reader.Info.OutputWidth;
        int planes = 3 * Options.FramesPerClip;
        var (rh, rw) = ViewGeometry.ShortSideSize(h, w, Options.ShortSide);
        var boxes = Options.Crops == 3
            ? ViewGeometry.ThreeCropBoxes(rh, rw, Options.CropSize)
            : [ViewGeometry.CenterCropBox(rh, rw, Options.CropSize, Options.CropSize)];
        var resized = new byte[planes * rh * rw];
        int view = 0;
        foreach (byte[] clip in clips)
        {
            ViewGeometry.ResizedCrop(clip, resized, PixelDepth.UInt8, planes, h, w, CropBox.Full(h, w), rh, rw);
            foreach (var box in boxes)
            {
                ViewGeometry.ResizedCrop(resized, destination.Slice(view++ * ViewBytes, ViewBytes), PixelDepth.UInt8, planes, rh, rw, box, Options.CropSize, Options.CropSize);
            }
        }
    }
}
