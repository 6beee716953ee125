using OpenCvSharp;

namespace Cvrl.Video;

/// <summary>Planar RGB clips (<c>[3, T, H, W]</c> bytes, as <see cref="VideoReader"/> returns them) to OpenCV's BGR frames.</summary>
internal static class PlanarRgb
{
    /// <summary>Writes frame <paramref name="t"/> of a planar RGB clip of <paramref name="frames"/> frames into <paramref name="bgr"/> (allocated as needed).</summary>
    public static unsafe void FrameToBgr(ReadOnlySpan<byte> planar, int frames, int t, int height, int width, Mat bgr)
    {
        long plane = (long)height * width;
        fixed (byte* basePtr = planar)
        {
            using var r = Mat.FromPixelData(height, width, MatType.CV_8UC1, (IntPtr)(basePtr + (((0L * frames) + t) * plane)));
            using var g = Mat.FromPixelData(height, width, MatType.CV_8UC1, (IntPtr)(basePtr + (((1L * frames) + t) * plane)));
            using var b = Mat.FromPixelData(height, width, MatType.CV_8UC1, (IntPtr)(basePtr + (((2L * frames) + t) * plane)));
            Cv2.Merge([b, g, r], bgr);
        }
    }
}
