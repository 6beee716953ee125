using Cvrl.Augment.Video;
using Cvrl.Video;
using OpenCvSharp;

namespace Cvrl.Testing;

/// <summary>Generates small real video files whose frames carry their own index, drawn as large binary blocks.</summary>
public static class TestVideos
{
    /// <summary>Bits used to encode the frame index.</summary>
    public const int Bits = 10;

    /// <summary>Writes a video of <paramref name="frames"/> frames; frame i shows i in binary blocks and a moving texture.</summary>
    public static string Create(string path, int frames, int width = 160, int height = 120, VideoCodec codec = VideoCodec.Mjpeg, double fps = 25)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        using var writer = new VideoFileWriter(path, width, height, fps, codec);
        using var frame = new Mat(height, width, MatType.CV_8UC3);
        for (int i = 0; i < frames; i++)
        {
            Draw(frame, i);
            writer.WriteFrame(frame);
        }

        return path;
    }

    /// <summary>Draws frame <paramref name="index"/> into a BGR Mat.</summary>
    public static void Draw(Mat frame, int index)
    {
        int w = frame.Cols, h = frame.Rows;
        frame.SetTo(new Scalar(90, 120, 60));
        // A smooth moving texture below the code, so the codecs see ordinary content.
        for (int y = h / 2; y < h; y += 4)
        {
            Cv2.Line(frame, new Point(0, y), new Point(w - 1, y), new Scalar((index * 7 + y) % 256, (y * 3) % 256, 200 - (y % 100)), 2);
        }

        Cv2.Circle(frame, new Point((index * 5) % w, (3 * h) / 4), h / 8, new Scalar(20, 220, 240), -1);
        int block = BlockSize(w);
        for (int b = 0; b < Bits; b++)
        {
            bool on = ((index >> b) & 1) == 1;
            var color = on ? new Scalar(255, 255, 255) : new Scalar(0, 0, 0);
            Cv2.Rectangle(frame, new Rect(b * block, 0, block, block), color, -1);
        }
    }

    /// <summary>Reads the index drawn into frame <paramref name="t"/> of an RGB uint8 clip [3, T, H, W] at full size.</summary>
    public static int ReadIndex(TorchSharp.torch.Tensor clip, int t)
    {
        int w = (int)clip.shape[3];
        int block = BlockSize(w);
        int value = 0;
        using var frame = clip.select(1, t).to_type(TorchSharp.torch.ScalarType.Float32);
        for (int b = 0; b < Bits; b++)
        {
            int m = block / 4;
            using var patch = frame[.., (m)..(block - m), (b * block + m)..(b * block + block - m)];
            float mean = patch.mean().item<float>();
            if (mean > 128)
            {
                value |= 1 << b;
            }
        }

        return value;
    }

    private static int BlockSize(int width) => Math.Max(8, width / Bits);
}
