using System.Globalization;
using Microsoft.ML.OnnxRuntime;

namespace Cvrl.Onnx;

/// <summary>Where ONNX Runtime runs the encoder.</summary>
public enum OnnxExecutionProvider
{
    /// <summary>The CPU (the <c>Microsoft.ML.OnnxRuntime</c> package).</summary>
    Cpu,

    /// <summary>An NVIDIA GPU through CUDA (the application references <c>Microsoft.ML.OnnxRuntime.Gpu</c>).</summary>
    Cuda,
}

/// <summary>ONNX Runtime's graph optimisation levels.</summary>
public enum OnnxGraphOptimization
{
    /// <summary>No rewriting.</summary>
    None,

    /// <summary>Constant folding and redundant-node removal.</summary>
    Basic,

    /// <summary>Basic plus node fusions.</summary>
    Extended,

    /// <summary>Everything, including layout changes (the default).</summary>
    All,
}

/// <summary>ONNX Runtime session settings for <see cref="OnnxEncoder"/>.</summary>
public sealed record OnnxSessionOptions
{
    /// <summary>Threads inside one operator; 0 lets ONNX Runtime choose (one per physical core). Default 0.</summary>
    public int IntraOpThreads { get; init; }

    /// <summary>Threads across independent operators (the graph is a chain, so 1 is enough). Default 1.</summary>
    public int InterOpThreads { get; init; } = 1;

    /// <summary>Graph optimisation level. Default <see cref="OnnxGraphOptimization.All"/>.</summary>
    public OnnxGraphOptimization Optimization { get; init; } = OnnxGraphOptimization.All;

    /// <summary>Plan memory once per input shape and reuse it (ONNX Runtime's memory pattern). Default true.</summary>
    public bool MemoryPattern { get; init; } = true;

    /// <summary>Keep freed CPU memory in ONNX Runtime's arena for reuse. Default true.</summary>
    public bool CpuMemoryArena { get; init; } = true;

    /// <summary>The execution provider. Default <see cref="OnnxExecutionProvider.Cpu"/>.</summary>
    public OnnxExecutionProvider Provider { get; init; } = OnnxExecutionProvider.Cpu;

    /// <summary>The GPU with <see cref="OnnxExecutionProvider.Cuda"/>. Default 0.</summary>
    public int DeviceId { get; init; }

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        if (IntraOpThreads < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(IntraOpThreads), IntraOpThreads, "IntraOpThreads must be 0 (ONNX Runtime's choice) or more.");
        }

        if (InterOpThreads < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(InterOpThreads), InterOpThreads, "InterOpThreads must be 0 or more.");
        }

        if (DeviceId < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(DeviceId), DeviceId, "DeviceId must be 0 or more.");
        }

        if (!Enum.IsDefined(Optimization))
        {
            throw new ArgumentOutOfRangeException(nameof(Optimization), Optimization, "Unknown optimisation level.");
        }

        if (!Enum.IsDefined(Provider))
        {
            throw new ArgumentOutOfRangeException(nameof(Provider), Provider, "Unknown execution provider.");
        }
    }

    internal SessionOptions Create()
    {
        var options = new SessionOptions
        {
            IntraOpNumThreads = IntraOpThreads,
            InterOpNumThreads = InterOpThreads,
            EnableMemoryPattern = MemoryPattern,
            EnableCpuMemArena = CpuMemoryArena,
            GraphOptimizationLevel = Optimization switch
            {
                OnnxGraphOptimization.None => GraphOptimizationLevel.ORT_DISABLE_ALL,
                OnnxGraphOptimization.Basic => GraphOptimizationLevel.ORT_ENABLE_BASIC,
                OnnxGraphOptimization.Extended => GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                _ => GraphOptimizationLevel.ORT_ENABLE_ALL,
            },
        };
        try
        {
            if (Provider == OnnxExecutionProvider.Cuda)
            {
                options.AppendExecutionProvider_CUDA(DeviceId);
            }
        }
        catch
        {
            options.Dispose();
            throw;
        }

        return options;
    }
}

/// <summary>
/// An encoder exported by Cvrl (<c>cvrl export</c>, <c>OnnxExporter</c>) loaded into ONNX Runtime: float clips
/// <c>[N, 3, T, H, W]</c> in [0, 1] in, pooled features <c>[N, D]</c> out. Reads what the model expects from its
/// metadata. Thread-safe for <see cref="Features"/> (ONNX Runtime sessions allow concurrent runs); dispose it to free
/// the session.
/// </summary>
public sealed class OnnxEncoder : IDisposable
{
    /// <summary>The input the exporter names.</summary>
    public const string InputName = "video";

    /// <summary>The pooled-features output the exporter names.</summary>
    public const string FeaturesOutput = "features";

    private readonly InferenceSession _session;
    private readonly string[] _outputNames = [FeaturesOutput];
    private readonly string[] _inputNames = [InputName];
    private bool _disposed;

    private OnnxEncoder(string path, InferenceSession session)
    {
        Path = path;
        _session = session;
        Metadata = new Dictionary<string, string>(session.ModelMetadata.CustomMetadataMap, StringComparer.Ordinal);
        var features = session.OutputMetadata[FeaturesOutput];
        FeatureDim = features.Dimensions.Length == 2 && features.Dimensions[1] > 0 ? features.Dimensions[1] : 0;
        InputChannels = session.InputMetadata[InputName].Dimensions[1];
        Fingerprint = Metadata.GetValueOrDefault("cvrl.fingerprint") ?? "unknown";
        Architecture = Metadata.GetValueOrDefault("cvrl.architecture") ?? "unknown";
        MinimumInput = ParseTriple(Metadata.GetValueOrDefault("cvrl.min_input")) ?? (1, 1, 1);
        ClipFrames = Int("cvrl.clip_frames");
        ClipStride = Int("cvrl.clip_stride");
        ShortSide = Int("cvrl.short_side");
        CropSize = Int("cvrl.crop_size");
    }

    /// <summary>The model file.</summary>
    public string Path { get; }

    /// <summary>The model's metadata (keys starting with "cvrl." are the exporter's).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>The encoder's weight fingerprint (the same as Cvrl's <c>ModelWeights.Fingerprint</c> and <c>VideoEmbedder.Fingerprint</c>).</summary>
    public string Fingerprint { get; }

    /// <summary>The architecture, e.g. "R3D-50 1x".</summary>
    public string Architecture { get; }

    /// <summary>Size of the feature vector.</summary>
    public int FeatureDim { get; }

    /// <summary>Input channels (3).</summary>
    public int InputChannels { get; }

    /// <summary>The smallest (T, H, W) the network accepts.</summary>
    public (int Frames, int Height, int Width) MinimumInput { get; }

    /// <summary>Frames per clip the encoder was trained on, when recorded.</summary>
    public int? ClipFrames { get; }

    /// <summary>Temporal stride of those clips, when recorded.</summary>
    public int? ClipStride { get; }

    /// <summary>Test-time short side, when recorded.</summary>
    public int? ShortSide { get; }

    /// <summary>Crop size, when recorded.</summary>
    public int? CropSize { get; }

    /// <summary>Loads an exported encoder.</summary>
    /// <param name="path">The .onnx file (an external data file, if any, beside it).</param>
    /// <param name="options">Session settings (validated); null for the defaults.</param>
    /// <returns>The encoder, owned by the caller.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not an ONNX model ONNX Runtime can load, or not a Cvrl encoder (no 'video' input or 'features' output).</exception>
    public static OnnxEncoder Load(string path, OnnxSessionOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        options ??= new OnnxSessionOptions();
        options.Validate();
        string full = System.IO.Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            throw new FileNotFoundException($"ONNX model '{full}' does not exist.", full);
        }

        using var sessionOptions = options.Create();
        InferenceSession session;
        try
        {
            session = new InferenceSession(full, sessionOptions);
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidDataException($"'{full}' is not an ONNX model ONNX Runtime can load: {e.Message}", e);
        }

        try
        {
            if (!session.InputMetadata.TryGetValue(InputName, out var input) || input.Dimensions.Length != 5 || !session.OutputMetadata.ContainsKey(FeaturesOutput))
            {
                throw new InvalidDataException($"'{full}' is not an encoder exported by Cvrl: expected an input '{InputName}' [N, 3, T, H, W] and an output '{FeaturesOutput}'.");
            }

            return new OnnxEncoder(full, session);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>Runs the encoder on a batch.</summary>
    /// <param name="batch">Float values <c>[n, C, t, h, w]</c> (C = <see cref="InputChannels"/>), RGB in [0, 1].</param>
    /// <param name="n">Clips in the batch.</param>
    /// <param name="t">Frames per clip.</param>
    /// <param name="h">Height.</param>
    /// <param name="w">Width.</param>
    /// <returns>The features <c>[n, D]</c>, row by row.</returns>
    /// <exception cref="ArgumentException">The sizes do not match the buffer or are below <see cref="MinimumInput"/>.</exception>
    public float[] Features(float[] batch, int n, int t, int h, int w)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ObjectDisposedException.ThrowIf(_disposed, this);
        long expected = (long)n * InputChannels * t * h * w;
        if (n < 1 || batch.LongLength != expected)
        {
            throw new ArgumentException($"The batch holds {batch.LongLength} values; [{n}, {InputChannels}, {t}, {h}, {w}] needs {expected}.", nameof(batch));
        }

        if (t < MinimumInput.Frames || h < MinimumInput.Height || w < MinimumInput.Width)
        {
            throw new ArgumentException($"Clips of {t} x {h} x {w} (T x H x W) are too small for {Architecture}; the minimum is {MinimumInput.Frames} x {MinimumInput.Height} x {MinimumInput.Width}.", nameof(batch));
        }

        using var input = OrtValue.CreateTensorValueFromMemory(batch, [n, InputChannels, t, h, w]);
        using var runOptions = new RunOptions();
        using var outputs = _session.Run(runOptions, _inputNames, [input], _outputNames);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }

    /// <summary>Frees the session.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _session.Dispose();
        }
    }

    private int? Int(string key) =>
        Metadata.TryGetValue(key, out string? text) && int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) ? value : null;

    private static (int, int, int)? ParseTriple(string? text)
    {
        var parts = text?.Split(',');
        return parts is { Length: 3 }
            && int.TryParse(parts[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out int a)
            && int.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out int b)
            && int.TryParse(parts[2], NumberStyles.Integer, CultureInfo.InvariantCulture, out int c)
            ? (a, b, c)
            : null;
    }
}
