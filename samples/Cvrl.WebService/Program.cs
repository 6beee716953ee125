// A minimal embedding and search service on an encoder exported with `cvrl export`, run by ONNX Runtime (no
// TorchSharp, no libtorch). Start it with an encoder and an embedding set made by the same encoder:
//
//   dotnet run --project samples/Cvrl.WebService -- --encoder encoder.onnx --embeddings videos.cvrlemb --urls http://127.0.0.1:5080
//
//   curl -F video=@query.mp4 http://127.0.0.1:5080/embed          -> {"dim": 512, "embedding": [...], "encoder": "sha256:..."}
//   curl -F video=@query.mp4 "http://127.0.0.1:5080/search?k=5"   -> {"results": [{"key": "a.mp4", "score": 0.97}, ...]}
//   curl http://127.0.0.1:5080/health                             -> what is loaded
//
// Bad uploads (no file, an empty file, not a video, a video that does not decode, an unknown k) get 400 with a message.
using Cvrl.Embeddings;
using Cvrl.Onnx;
using Cvrl.Video;
using Microsoft.AspNetCore.Http.Features;

var builder = WebApplication.CreateBuilder(args);
string encoderPath = builder.Configuration["encoder"] ?? throw new ArgumentException("--encoder <model.onnx> is required (write one with: cvrl export <checkpoint> --out encoder.onnx)");
string setPath = builder.Configuration["embeddings"] ?? throw new ArgumentException("--embeddings <set.cvrlemb> is required (write one with: cvrl embed <folder> --checkpoint encoder.onnx)");
const long MaxUpload = 256L << 20;
builder.Services.Configure<FormOptions>(o => o.MultipartBodyLengthLimit = MaxUpload);
builder.WebHost.ConfigureKestrel(o => o.Limits.MaxRequestBodySize = MaxUpload);

// Everything is loaded and checked before the service listens: a wrong file fails the start, not the first request.
var encoder = OnnxEncoder.Load(encoderPath);
var library = EmbeddingSet.Load(setPath);
var embedder = new OnnxVideoEmbedder(encoder, new EmbeddingOptions { Views = Embedder.ViewsOf(library), Workers = 1 });
embedder.CheckCompatible(library);
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
    await WithUpload(request, log, path => Results.Ok(new { dim = encoder.FeatureDim, embedding = embedder.Embed(path), encoder = encoder.Fingerprint }), cancellationToken));

app.MapPost("/search", async (HttpRequest request, CancellationToken cancellationToken) =>
{
    string? kText = request.Query["k"];
    int k = 10;
    if (kText is not null && (!int.TryParse(kText, out k) || k < 1 || k > 1000))
    {
        return Results.BadRequest(new { error = $"k must be a whole number from 1 to 1000, got '{kText}'." });
    }

    return await WithUpload(request, log, path => Results.Ok(new
    {
        results = embedder.Search(library, path, k).Select(hit => new { key = hit.Key, score = hit.Score }),
    }), cancellationToken);
});

app.Run();

// Saves the uploaded 'video' to a temporary file, runs the action on it, and turns bad input into 400 responses.
static async Task<IResult> WithUpload(HttpRequest request, ILogger log, Func<string, IResult> action, CancellationToken cancellationToken)
{
    if (!request.HasFormContentType)
    {
        return Results.BadRequest(new { error = "Expected a multipart form with a file field named 'video'." });
    }

    var form = await request.ReadFormAsync(cancellationToken);
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

        return action(path);
    }
    catch (VideoDecodeException e)
    {
        log.LogWarning("Rejected upload {Name}: {Failure}", file.FileName, e.Failure);
        return Results.BadRequest(new { error = $"'{file.FileName}' could not be decoded as a video ({e.Failure})." });
    }
    finally
    {
        File.Delete(path);
    }
}
