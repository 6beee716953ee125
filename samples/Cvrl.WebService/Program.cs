// A minimal embedding and search service on an encoder exported with `cvrl export`, run by ONNX Runtime (no
// TorchSharp, no libtorch). Start it with an encoder and an embedding set made by the same encoder:
//
//   dotnet run --project samples/Cvrl.WebService -- --encoder encoder.onnx --embeddings videos.cvrlemb --urls http://127.0.0.1:5080
//
//   curl -F video=@query.mp4 http://127.0.0.1:5080/embed          -> {"dim": 512, "embedding": [...], "encoder": "sha256:..."}
//   curl -F video=@query.mp4 "http://127.0.0.1:5080/search?k=5"   -> {"results": [{"key": "a.mp4", "score": 0.97}, ...]}
//   curl http://127.0.0.1:5080/health                             -> what is loaded
//
// Bad uploads (no file, an empty file, a malformed or truncated form, not a video, a video that does not decode, an
// unknown k) get 400 with a message; videos with frames above --maxPixels (default 1920 x 1080) get 413. At most
// --decodes uploads (default 2) are decoded at a time. A bad encoder or set at start-up ends with one line and exit code 1.
using Cvrl.Embeddings;
using Cvrl.Onnx;
using Cvrl.Video;
using Microsoft.AspNetCore.Http.Features;

var builder = WebApplication.CreateBuilder(args);
const long MaxUpload = 256L << 20;
builder.Services.Configure<FormOptions>(o => o.MultipartBodyLengthLimit = MaxUpload);
builder.WebHost.ConfigureKestrel(o => o.Limits.MaxRequestBodySize = MaxUpload);

// Memory under hostile uploads: a video's frames may not exceed maxPixels (default 1920 x 1080) and at most `decodes`
// uploads (default 2) are decoded at a time, others wait. The decoded frames of one request take at most
// clips x frames per clip x 3 x maxPixels bytes (10 x 8 x 3 x 2.07 MP = 498 MB for an encoder trained on 8-frame
// clips), so the service's working memory stays below `decodes` times that, plus the encoder.
OnnxEncoder encoder;
EmbeddingSet library;
OnnxVideoEmbedder embedder;
SemaphoreSlim decodes;
try
{
    string encoderPath = builder.Configuration["encoder"] ?? throw new ArgumentException("--encoder <model.onnx> is required (write one with: cvrl export <checkpoint> --out encoder.onnx)");
    string setPath = builder.Configuration["embeddings"] ?? throw new ArgumentException("--embeddings <set.cvrlemb> is required (write one with: cvrl embed <folder> --checkpoint encoder.onnx)");
    long maxPixels = long.TryParse(builder.Configuration["maxPixels"] ?? "2073600", out long p) && p > 0 ? p : throw new ArgumentException("--maxPixels must be a positive number of pixels per frame");
    int concurrent = int.TryParse(builder.Configuration["decodes"] ?? "2", out int d) && d > 0 ? d : throw new ArgumentException("--decodes must be a positive number of uploads decoded at a time");

    // Everything is loaded and checked before the service listens: a wrong file fails the start, not the first request.
    encoder = OnnxEncoder.Load(encoderPath);
    library = EmbeddingSet.Load(setPath);
    var views = Embedder.ViewsOf(library) ?? OnnxVideoEmbedder.MatchingViews(encoder) ?? new TestViewOptions();
    embedder = new OnnxVideoEmbedder(encoder, new EmbeddingOptions { Views = views with { Reader = views.Reader with { MaxFramePixels = maxPixels } }, Workers = 1 });
    embedder.CheckCompatible(library);
    decodes = new SemaphoreSlim(concurrent, concurrent);
}
catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException or InvalidOperationException or UnauthorizedAccessException)
{
    // One line and exit code 1, not a stack trace.
    Console.Error.WriteLine($"cvrl-webservice: error: {e.Message.ReplaceLineEndings(" ")}");
    return 1;
}

builder.Services.AddSingleton(encoder);
builder.Services.AddSingleton(embedder);
builder.Services.AddSingleton(library);

var app = builder.Build();
var log = app.Logger;

app.MapGet("/health", () => Results.Ok(new
{
    encoder = encoder.Fingerprint,
    architecture = encoder.Architecture,
    videos = library.Count,
    dim = library.Dim,
}));

app.MapPost("/embed", async (HttpRequest request, CancellationToken cancellationToken) =>
    await WithUpload(request, log, decodes, path => Results.Ok(new { dim = encoder.FeatureDim, embedding = embedder.Embed(path), encoder = encoder.Fingerprint }), cancellationToken));

app.MapPost("/search", async (HttpRequest request, CancellationToken cancellationToken) =>
{
    string? kText = request.Query["k"];
    int k = 10;
    if (kText is not null && (!int.TryParse(kText, out k) || k < 1 || k > 1000))
    {
        return Results.BadRequest(new { error = $"k must be a whole number from 1 to 1000, got '{kText}'." });
    }

    return await WithUpload(request, log, decodes, path => Results.Ok(new
    {
        results = embedder.Search(library, path, k).Select(hit => new { key = hit.Key, score = hit.Score }),
    }), cancellationToken);
});

app.Run();
return 0;

// Saves the uploaded 'video' to a temporary file, runs the action on it (at most `decodes` at a time), and turns bad input
// into 4xx responses: 400 for malformed or truncated forms and videos that do not decode, 413 for videos whose frames or
// clips are larger than the service allows.
static async Task<IResult> WithUpload(HttpRequest request, ILogger log, SemaphoreSlim decodes, Func<string, IResult> action, CancellationToken cancellationToken)
{
    if (!request.HasFormContentType)
    {
        return Results.BadRequest(new { error = "Expected a multipart form with a file field named 'video'." });
    }

    IFormCollection form;
    try
    {
        form = await request.ReadFormAsync(cancellationToken);
    }
    catch (BadHttpRequestException e)
    {
        return Results.Json(new { error = $"The request body could not be read: {e.Message}" }, statusCode: e.StatusCode);
    }
    catch (Exception e) when (e is InvalidDataException or IOException)
    {
        // A multipart body without its boundary, with junk before it, or cut short.
        return Results.BadRequest(new { error = $"The multipart form is malformed: {e.Message}" });
    }

    var file = form.Files.GetFile("video");
    if (file is null)
    {
        return Results.BadRequest(new { error = "The form has no file field named 'video'." });
    }

    if (file.Length == 0)
    {
        return Results.BadRequest(new { error = $"The uploaded file '{file.FileName}' is empty." });
    }

    string extension = Path.GetExtension(file.FileName);
    string path = Path.Combine(Path.GetTempPath(), $"cvrl-upload-{Guid.NewGuid():N}{(extension.Length is > 1 and <= 8 ? extension : ".bin")}");
    try
    {
        await using (var stream = File.Create(path))
        {
            await file.CopyToAsync(stream, cancellationToken);
        }

        await decodes.WaitAsync(cancellationToken);
        try
        {
            return action(path);
        }
        finally
        {
            decodes.Release();
        }
    }
    catch (VideoDecodeException e) when (e.Failure == VideoDecodeFailure.TooLarge)
    {
        log.LogWarning("Rejected upload {Name}: {Reason}", file.FileName, e.Message);
        return Results.Json(new { error = $"'{file.FileName}' is larger than this service decodes: {e.Message.Split("': ", 2)[^1]}" }, statusCode: StatusCodes.Status413PayloadTooLarge);
    }
    catch (VideoDecodeException e)
    {
        log.LogWarning("Rejected upload {Name}: {Failure}", file.FileName, e.Failure);
        return Results.BadRequest(new { error = $"'{file.FileName}' could not be decoded as a video ({e.Failure})." });
    }
    catch (IOException e) when (e is not VideoDecodeException)
    {
        // The upload was cut short while it was copied.
        return Results.BadRequest(new { error = $"The upload of '{file.FileName}' could not be read: {e.Message}" });
    }
    finally
    {
        File.Delete(path);
    }
}
