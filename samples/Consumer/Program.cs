// The smallest app that uses the Cvrl packages, as a user writes it: scripts/check-package.sh builds, runs and
// publishes it in a temporary folder against the packed packages (plus TorchSharp-cpu for the native backend).
// With an argument it also exports a small encoder to that ONNX file, for the ONNX-only consumer (OnnxConsumer).
using Cvrl.Augment.Video;
using Cvrl.Models;
using Cvrl.Models.Onnx;
using Cvrl.Video;
using TorchSharp;

TorchNative.EnsureLoaded();

// A tensor operation.
using var x = torch.arange(6, dtype: torch.ScalarType.Float32).reshape(2, 3);
float sum = x.sum().item<float>();
Console.WriteLine($"consumer: torch sum = {sum}");

// A video round trip: write 12 generated frames, decode three of them.
string path = Path.Combine(Path.GetTempPath(), $"cvrl-consumer-{Environment.ProcessId}.avi");
using (var frames = torch.zeros(3, 12, 48, 64, dtype: torch.ScalarType.Byte))
{
    for (int t = 0; t < 12; t++)
    {
        frames[0, t] = torch.tensor((byte)(t * 20));
    }

    VideoWriterTensors.Write(path, frames, 25, VideoCodec.Png);
}

using var reader = VideoReader.Open(path);
using var clip = reader.ReadClip([0, 5, 11]);
float red = clip[0, 1].to_type(torch.ScalarType.Float32).mean().item<float>();
File.Delete(path);
Console.WriteLine($"consumer: decoded {reader.FrameCount} frames, clip {string.Join("x", clip.shape)}, frame 5 red = {red}");
Console.WriteLine($"consumer: fix-up: {TorchNative.FixupStatus}");
if (args.Length > 0)
{
    torch.manual_seed(0);
    using var encoder = ResNet3d.R3d18(width: 0.25);
    var exported = OnnxExporter.Export(encoder, args[0], new OnnxExportOptions { ClipFrames = 8, ClipStride = 2, ShortSide = 32, CropSize = 32 });
    Console.WriteLine($"consumer: exported {exported.ModelPath}, encoder {exported.Fingerprint}");
}

bool ok = sum == 15f && reader.FrameCount == 12 && Math.Abs(red - 100f) < 0.5f;
Console.WriteLine(ok ? "consumer: ok" : "consumer: FAILED");
return ok ? 0 : 1;
