namespace Cvrl.Video;

/// <summary>A crop rectangle in pixels: rows [Top, Top + Height), columns [Left, Left + Width).</summary>
/// <param name="Top">First row.</param>
/// <param name="Left">First column.</param>
/// <param name="Height">Rows.</param>
/// <param name="Width">Columns.</param>
public readonly record struct CropBox(int Top, int Left, int Height, int Width)
{
    /// <summary>The box covering a whole frame.</summary>
    public static CropBox Full(int height, int width) => new(0, 0, height, width);

    /// <summary>Whether the box lies inside a frame of the given size and is not empty.</summary>
    public bool FitsIn(int height, int width) => Top >= 0 && Left >= 0 && Height > 0 && Width > 0 && Top + Height <= height && Left + Width <= width;

    /// <inheritdoc />
    public override string ToString() => $"{Width}x{Height}+{Left}+{Top}";
}

