using System.Text;
using OpenCvSharp;

namespace Cvrl.Testing;

/// <summary>
/// Videos whose container misreports their length, made from <see cref="TestVideos"/> files: AVI headers edited to
/// claim more or fewer frames than the file holds, a file cut short, and a raw Motion-JPEG stream (concatenated JPEG
/// images, as FFmpeg's mjpeg demuxer reads them) whose container claims no count at all.
/// </summary>
public static class LyingVideos
{
    /// <summary>Copies an AVI, setting the frame count its main header (avih) and stream header (strh) claim.</summary>
    public static string ClaimFrames(string avi, string output, int claimed)
    {
        byte[] data = File.ReadAllBytes(avi);
        int avih = Find(data, "avih");
        int strh = Find(data, "strh");
        if (avih < 0 || strh < 0)
        {
            throw new InvalidDataException($"'{avi}' has no AVI main or stream header.");
        }

        // Chunk data starts 8 bytes after the tag; dwTotalFrames is the 5th DWORD of avih, dwLength the 9th of strh.
        BitConverter.GetBytes(claimed).CopyTo(data, avih + 8 + 16);
        BitConverter.GetBytes(claimed).CopyTo(data, strh + 8 + 32);
        File.WriteAllBytes(output, data);
        return output;
    }

    /// <summary>Copies the first <paramref name="fraction"/> of a file's bytes (a download cut short).</summary>
    public static string Truncate(string video, string output, double fraction)
    {
        byte[] data = File.ReadAllBytes(video);
        File.WriteAllBytes(output, data.AsSpan(0, (int)(data.Length * fraction)).ToArray());
        return output;
    }

    /// <summary>Writes a raw Motion-JPEG stream of <see cref="TestVideos"/> frames (no container, so no frame count).</summary>
    public static string RawMjpeg(string output, int frames, int width = 160, int height = 120)
    {
        using var stream = File.Create(output);
        using var frame = new Mat(height, width, MatType.CV_8UC3);
        for (int i = 0; i < frames; i++)
        {
            TestVideos.Draw(frame, i);
            Cv2.ImEncode(".jpg", frame, out byte[] jpeg, new ImageEncodingParam(ImwriteFlags.JpegQuality, 95));
            stream.Write(jpeg);
        }

        return output;
    }

    /// <summary>Counts the frames OpenCV's FFmpeg backend decodes, independently of Cvrl's reader.</summary>
    public static int DecodableFrames(string path)
    {
        using var capture = new VideoCapture(path, VideoCaptureAPIs.FFMPEG);
        int n = 0;
        while (capture.IsOpened() && capture.Grab())
        {
            n++;
        }

        return n;
    }

    private static int Find(byte[] data, string tag)
    {
        byte[] t = Encoding.ASCII.GetBytes(tag);
        return data.AsSpan().IndexOf(t);
    }
}
