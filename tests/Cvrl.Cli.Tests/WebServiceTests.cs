using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Reflection;
using System.Text.Json.Nodes;
using Cvrl.Models;
using Cvrl.Models.Onnx;
using Cvrl.Testing;
using TorchSharp;

namespace Cvrl.Cli.Tests;

/// <summary>
/// The web service sample (samples/Cvrl.WebService) started as its own process and called over real HTTP: an encoder
/// exported to ONNX, a set embedded by <c>cvrl embed</c> with that .onnx encoder, then /health, /embed, /search and bad
/// uploads.
/// </summary>
public sealed class WebServiceTests : IDisposable
{
    private static readonly string ServicePath = Path.GetFullPath(
        typeof(WebServiceTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "CvrlWebServicePath").Value!);

    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task Service_embeds_and_searches_uploads_and_answers_bad_ones_with_400()
    {
        var videos = VideoFolders.Create(_temp.File("videos"), 4, frames: 20, width: 48, height: 40, seed: 3);
        torch.manual_seed(1);
        using (var encoder = ResNet3d.R3d18(width: 0.125))
        {
            OnnxExporter.Export(encoder, _temp.File("encoder.onnx"), new OnnxExportOptions { ClipFrames = 8, ClipStride = 2, ShortSide = 32, CropSize = 32 });
        }

        var embed = CliRunner.Run(_temp.Path, "embed", _temp.File("videos"), "--checkpoint", _temp.File("encoder.onnx"), "--frames", "8", "--stride", "2", "--size", "32", "--clips", "3", "--out", _temp.File("set.cvrlemb"), "--workers", "2");
        Assert.True(embed.ExitCode == 0, embed.All);
        Assert.Contains("from ONNX model encoder.onnx (ONNX Runtime)", embed.Text);

        Assert.True(File.Exists(ServicePath), $"the web service is not built at {ServicePath}");
        int port = FreePort();
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in new[] { ServicePath, "--encoder", _temp.File("encoder.onnx"), "--embeddings", _temp.File("set.cvrlemb"), "--urls", $"http://127.0.0.1:{port}" })
        {
            start.ArgumentList.Add(arg);
        }

        using var service = Process.Start(start)!;
        var log = new System.Text.StringBuilder();
        service.OutputDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        service.ErrorDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        service.BeginOutputReadLine();
        service.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(60) };
            var health = await WaitForHealth(http, service, log);
            Assert.Equal(4, health["videos"]!.GetValue<int>());

            // /embed returns the vector; /search finds the uploaded video itself first.
            using var embedResponse = await http.PostAsync("/embed", Upload(File.ReadAllBytes(videos[2]), "clip.avi"));
            string embedBody = await embedResponse.Content.ReadAsStringAsync();
            Assert.True(embedResponse.StatusCode == HttpStatusCode.OK, embedBody);
            var embedding = JsonNode.Parse(embedBody)!;
            Assert.Equal(embedding["dim"]!.GetValue<int>(), embedding["embedding"]!.AsArray().Count);
            Assert.Equal(health["encoder"]!.GetValue<string>(), embedding["encoder"]!.GetValue<string>());

            using var searchResponse = await http.PostAsync("/search?k=2", Upload(File.ReadAllBytes(videos[2]), "clip.avi"));
            string searchBody = await searchResponse.Content.ReadAsStringAsync();
            Assert.True(searchResponse.StatusCode == HttpStatusCode.OK, searchBody);
            var results = JsonNode.Parse(searchBody)!["results"]!.AsArray();
            Assert.Equal(2, results.Count);
            Assert.Equal(Path.GetFileName(videos[2]), results[0]!["key"]!.GetValue<string>());
            Assert.True(results[0]!["score"]!.GetValue<float>() > 0.9999f, searchBody);

            // Bad uploads: 400 with a message, and the service keeps answering.
            await AssertBadRequest(http.PostAsync("/embed", Upload("not a video"u8.ToArray(), "fake.mp4")), "'fake.mp4' could not be decoded");
            await AssertBadRequest(http.PostAsync("/embed", Upload([], "empty.mp4")), "'empty.mp4' is empty");
            await AssertBadRequest(http.PostAsync("/embed", new StringContent("{}")), "multipart form");
            await AssertBadRequest(http.PostAsync("/search?k=0", Upload(File.ReadAllBytes(videos[0]), "a.avi")), "k must be a whole number");
            using var form = new MultipartFormDataContent { { new StringContent("x"), "other" } };
            await AssertBadRequest(http.PostAsync("/search", form), "no file field named 'video'");

            // Malformed multipart bodies: no boundary, junk where the first boundary should be, a body cut short.
            await AssertBadRequest(http.PostAsync("/embed", Raw("multipart/form-data", "--x\r\n")), "multipart form is malformed");
            await AssertBadRequest(http.PostAsync("/embed", Raw("multipart/form-data; boundary=XYZ", "junk junk junk\r\nmore junk")), "multipart form is malformed");
            await AssertBadRequest(http.PostAsync("/embed", Raw("multipart/form-data; boundary=XYZ", "--XYZ\r\nContent-Disposition: form-data; name=\"video\"; filename=\"a.avi\"\r\n\r\nRIFF")), "malformed");
            await AssertBadRequest(http.PostAsync("/embed", Raw("text/plain", "hello")), "multipart form");

            // A tiny upload that declares 4000 x 4000 frames is refused before any frame is decoded.
            string huge = _temp.File("huge.avi");
            using (var writer = new Cvrl.Video.VideoFileWriter(huge, 4000, 4000))
            using (var frame = new OpenCvSharp.Mat(4000, 4000, OpenCvSharp.MatType.CV_8UC3, OpenCvSharp.Scalar.All(40)))
            {
                writer.WriteFrame(frame);
                writer.WriteFrame(frame);
            }

            using var tooLarge = await http.PostAsync("/embed", Upload(File.ReadAllBytes(huge), "huge.avi"));
            string tooLargeBody = await tooLarge.Content.ReadAsStringAsync();
            Assert.True(tooLarge.StatusCode == HttpStatusCode.RequestEntityTooLarge, $"{(int)tooLarge.StatusCode}: {tooLargeBody}");
            Assert.Contains("4000x4000", tooLargeBody, StringComparison.Ordinal);
            using var again = await http.GetAsync("/health");
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
            Assert.False(service.HasExited, "the service stopped after bad uploads");
        }
        finally
        {
            if (!service.HasExited)
            {
                service.Kill(entireProcessTree: true);
            }

            service.WaitForExit(10_000);
        }
    }

    [Fact]
    public async Task Service_refuses_to_start_with_a_set_from_another_encoder()
    {
        VideoFolders.Create(_temp.File("videos"), 2, frames: 20, width: 48, height: 40, seed: 4);
        foreach (int seed in new[] { 1, 2 })
        {
            torch.manual_seed(seed);
            using var encoder = ResNet3d.R3d18(width: 0.125);
            OnnxExporter.Export(encoder, _temp.File($"encoder{seed}.onnx"), new OnnxExportOptions { ClipFrames = 8, ClipStride = 2, ShortSide = 32, CropSize = 32 });
        }

        var embed = CliRunner.Run(_temp.Path, "embed", _temp.File("videos"), "--checkpoint", _temp.File("encoder1.onnx"), "--frames", "8", "--stride", "2", "--size", "32", "--clips", "2", "--out", _temp.File("set.cvrlemb"));
        Assert.True(embed.ExitCode == 0, embed.All);
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in new[] { ServicePath, "--encoder", _temp.File("encoder2.onnx"), "--embeddings", _temp.File("set.cvrlemb"), "--urls", $"http://127.0.0.1:{FreePort()}" })
        {
            start.ArgumentList.Add(arg);
        }

        using var service = Process.Start(start)!;
        var stderr = service.StandardError.ReadToEndAsync();
        var stdout = service.StandardOutput.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await service.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            service.Kill(entireProcessTree: true);
            Assert.Fail("the service started although the set was made by another encoder");
        }

        Assert.NotEqual(0, service.ExitCode);
        Assert.Contains("The embeddings were made by encoder", await stderr + await stdout);
    }

    /// <summary>
    /// A bad encoder file, a missing set, or a bad option at start-up: one line on standard error and exit code 1, no
    /// stack trace.
    /// </summary>
    [Fact]
    public async Task Service_with_a_bad_encoder_or_set_exits_1_with_one_line()
    {
        File.WriteAllText(_temp.File("garbage.onnx"), "not a model");
        File.WriteAllText(_temp.File("garbage.cvrlemb"), "not a set");
        foreach (string[] args in new[]
        {
            new[] { "--encoder", _temp.File("garbage.onnx"), "--embeddings", _temp.File("garbage.cvrlemb") },
            new[] { "--encoder", _temp.File("missing.onnx"), "--embeddings", _temp.File("garbage.cvrlemb") },
            new[] { "--embeddings", _temp.File("garbage.cvrlemb") },
        })
        {
            var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            string[] command = [ServicePath, .. args, "--urls", $"http://127.0.0.1:{FreePort()}"];
            foreach (string arg in command)
            {
                start.ArgumentList.Add(arg);
            }

            using var service = Process.Start(start)!;
            var stderr = service.StandardError.ReadToEndAsync();
            var stdout = service.StandardOutput.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await service.WaitForExitAsync(timeout.Token);
            string error = await stderr;
            Assert.True(service.ExitCode == 1, $"exit {service.ExitCode}: {error}{await stdout}");
            var lines = error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Single(lines);
            Assert.StartsWith("cvrl-webservice: error: ", lines[0], StringComparison.Ordinal);
        }
    }

    private static StringContent Raw(string contentType, string body)
    {
        var content = new StringContent(body);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        return content;
    }

    private static MultipartFormDataContent Upload(byte[] bytes, string name)
    {
        var file = new ByteArrayContent(bytes);
        file.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        return new MultipartFormDataContent { { file, "video", name } };
    }

    private static async Task AssertBadRequest(Task<HttpResponseMessage> request, string message)
    {
        using var response = await request;
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{(int)response.StatusCode}: {body}");
        Assert.Contains(message, JsonNode.Parse(body)!["error"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    private static async Task<JsonNode> WaitForHealth(HttpClient http, Process service, System.Text.StringBuilder log)
    {
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromSeconds(90))
        {
            Assert.False(service.HasExited, $"the service exited early: {log}");
            try
            {
                using var response = await http.GetAsync("/health");
                if (response.IsSuccessStatusCode)
                {
                    return JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            await Task.Delay(250);
        }

        throw new TimeoutException($"the service did not answer /health within 90 s: {log}");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
