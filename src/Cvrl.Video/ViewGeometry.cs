using OpenCvSharp;

namespace Cvrl.Video;

/// <summary>The element type of a planar image buffer.</summary>
public enum PixelDepth
{
    /// <summary>One byte per value (decoded frames).</summary>
    UInt8,

    /// <summary>float32 values.</summary>
    Float32,
}

/// <summary>
/// The geometry of evaluation views, written once for every runtime: the short-side resize rule, the centre and three
/// crops of the official evaluation, and a bilinear crop-and-resize of planar images (OpenCV, half-pixel centres, no
/// antialiasing). The TorchSharp clip operations and the ONNX Runtime embedder both call these.
/// </summary>
public static class ViewGeometry
{
    /// <summary>The size after resizing the shorter side to <paramref name="shortSide"/> (the official <c>resize_smallest</c> rule: the longer side scales with it, rounded down).</summary>
    /// <param name="height">Frame height.</param>
    /// <param name="width">Frame width.</param>
    /// <param name="shortSide">The new shorter side.</param>
    public static (int Height, int Width) ShortSideSize(int height, int width, int shortSide) =>
        height <= width
            ? (shortSide, Math.Max(shortSide, (int)((long)width * shortSide / height)))
            : (Math.Max(shortSide, (int)((long)height * shortSide / width)), shortSide);

    /// <summary>The centred <paramref name="cropHeight"/> x <paramref name="cropWidth"/> box (offsets rounded half to even).</summary>
    public static CropBox CenterCropBox(int height, int width, int cropHeight, int cropWidth) =>
        new((int)Math.Round((height - cropHeight) / 2.0), (int)Math.Round((width - cropWidth) / 2.0), cropHeight, cropWidth);

    /// <summary>
    /// The official evaluation's three <paramref name="size"/> x <paramref name="size"/> crops along the longer side, at
    /// offsets 0, round(long/2 - size/2) and long - size, centred on the shorter side.
    /// </summary>
    public static CropBox[] ThreeCropBoxes(int height, int width, int size)
    {
        bool wide = width >= height;
        int longSide = wide ? width : height;
        int shortOffset = (int)Math.Round(((wide ? height : width) - size) / 2.0);
        int[] offsets = [0, (int)Math.Round((longSide / 2.0) - (size / 2.0)), longSide - size];
        return [.. offsets.Select(o => wide ? new CropBox(shortOffset, o, size, size) : new CropBox(o, shortOffset, size, size))];
    }

    /// <summary>
    /// Crops <paramref name="box"/> from each of <paramref name="planes"/> contiguous <paramref name="height"/> x
    /// <paramref name="width"/> planes of <paramref name="source"/> and resizes it bilinearly to
    /// <paramref name="outHeight"/> x <paramref name="outWidth"/> into the matching plane of <paramref name="destination"/>.
    /// A box the size of the output is copied exactly.
    /// </summary>
    /// <exception cref="ArgumentException">A buffer has the wrong length, or the box does not fit.</exception>
    public static unsafe void ResizedCrop(ReadOnlySpan<byte> source, Span<byte> destination, PixelDepth depth, int planes, int height, int width, CropBox box, int outHeight, int outWidth)
    {
        int elem = depth == PixelDepth.UInt8 ? 1 : sizeof(float);
        if (source.Length != (long)planes * height * width * elem)
        {
            throw new ArgumentException($"The source holds {source.Length} bytes, not {planes} planes of {width}x{height} {depth}.", nameof(source));
        }

        if (destination.Length != (long)planes * outHeight * outWidth * elem)
        {
            throw new ArgumentException($"The destination holds {destination.Length} bytes, not {planes} planes of {outWidth}x{outHeight} {depth}.", nameof(destination));
        }

        if (!box.FitsIn(height, width))
        {
            throw new ArgumentException($"Crop box {box} does not fit in frames of {width}x{height}.", nameof(box));
        }

        OpenCvNative.EnsureLoaded();
        var type = depth == PixelDepth.UInt8 ? MatType.CV_8UC1 : MatType.CV_32FC1;
        bool copy = box.Height == outHeight && box.Width == outWidth;
        fixed (byte* src = source)
        fixed (byte* dst = destination)
        {
            for (int i = 0; i < planes; i++)
            {
                using var s = Mat.FromPixelData(height, width, type, (IntPtr)(src + ((long)i * height * width * elem)));
                using var d = Mat.FromPixelData(outHeight, outWidth, type, (IntPtr)(dst + ((long)i * outHeight * outWidth * elem)));
                using var roi = new Mat(s, new Rect(box.Left, box.Top, box.Width, box.Height));
                if (copy)
                {
                    roi.CopyTo(d);
                }
                else
                {
                    Cv2.Resize(roi, d, new OpenCvSharp.Size(outWidth, outHeight), 0, 0, InterpolationFlags.Linear);
                }
            }
        }
    }
}
