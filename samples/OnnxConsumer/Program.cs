// An app that runs a Cvrl encoder without TorchSharp: it references only the Cvrl.Onnx package and ONNX Runtime's CPU
// package. scripts/check-package.sh builds and runs it in a temporary folder against the packed packages, with an
// encoder the other consumer exported, and checks that no libtorch library was loaded into the process.
using Cvrl.Embeddings;
using Cvrl.Onnx;
using OpenCvSharp;

if (args.Length != 1)
{
    Console.Error.WriteLine("usage: OnnxConsumer <encoder.onnx>");
    return 2;
}

// A generated video: 24 frames of a square moving to the right.
string folder = Path.Combine(Path.GetTempPath(), $"cvrl-onnx-consumer-{Environment.ProcessId}");
Directory.CreateDirectory(folder);
string video = Path.Combine(folder, "moving.avi");
using (var writer = new VideoWriter(video, FourCC.MJPG, 25, new Size(48, 40)))
{
    for (int t = 0; t < 24; t++)
    {
        using var frame = new Mat(40, 48, MatType.CV_8UC3, Scalar.All(30));
        Cv2.Rectangle(frame, new Rect(t, 12, 14, 14), new Scalar(40, 200, 250), -1);
        writer.Write(frame);
    }
}

using var encoder = OnnxEncoder.Load(args[0], new OnnxSessionOptions { IntraOpThreads = 1 });
var embedder = new OnnxVideoEmbedder(encoder, new EmbeddingOptions { Workers = 1 });
float[] embedding = embedder.Embed(video);
var set = embedder.EmbedFolder(folder);
double norm = Math.Sqrt(embedding.Sum(x => (double)x * x));
var hit = embedder.Search(set, video, 1)[0];
Directory.Delete(folder, true);

// No libtorch (or TorchSharp's native library) may be mapped into this process.
var torchLibraries = File.ReadLines("/proc/self/maps")
    .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? string.Empty)
    .Where(path => path.Contains("libtorch", StringComparison.Ordinal) || path.Contains("LibTorchSharp", StringComparison.Ordinal))
    .Distinct()
    .ToList();
bool onnxLoaded = File.ReadLines("/proc/self/maps").Any(line => line.Contains("libonnxruntime", StringComparison.Ordinal));
Console.WriteLine($"onnx-consumer: {encoder.Architecture}, {embedding.Length} dimensions, |embedding| = {norm:F3}, best match {hit.Key} ({hit.Score:F4}), encoder {encoder.Fingerprint}");
Console.WriteLine($"onnx-consumer: libonnxruntime loaded: {onnxLoaded}; libtorch libraries loaded: {(torchLibraries.Count == 0 ? "none" : string.Join(", ", torchLibraries))}");
bool ok = embedding.Length == encoder.FeatureDim && norm > 0.1 && hit.Key == "moving.avi" && onnxLoaded && torchLibraries.Count == 0;
Console.WriteLine(ok ? "onnx-consumer: ok" : "onnx-consumer: FAILED");
return ok ? 0 : 1;
