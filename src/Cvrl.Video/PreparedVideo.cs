using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Win32.SafeHandles;
using OpenCvSharp;

namespace Cvrl.Video;

/// <summary>How a prepared video stores each frame.</summary>
public enum FrameEncoding
{
    /// <summary>
    /// One baseline JPEG per frame (like the JPEG frames in the official CVRL code's TFRecords): about 15-30 KB per frame
    /// at a 256-pixel short side, decoded in well under a millisecond; lossy (the PSNR is measured in docs/data.md).
    /// </summary>
    Jpeg,

    /// <summary>Raw 8-bit BGR pixels: exact, fastest to read, about 350 KB per frame at a 256-pixel short side. For small sets.</summary>
    Raw,
}

/// <summary>Options for <see cref="PreparedVideo.Write"/>. Validated there.</summary>
public sealed record PreparedVideoOptions
{
    /// <summary>The default options.</summary>
    public static PreparedVideoOptions Default { get; } = new();

    /// <summary>
    /// Resize every frame so that its shorter side has this length (the rule of <see cref="VideoReaderOptions.ShortSide"/>,
    /// so that a prepared frame equals the original frame read with that option); null keeps the stored size. Default 256
    /// (the short side the official code and the Python stacks train from).
    /// </summary>
    public int? ShortSide { get; init; } = 256;

    /// <summary>How frames are stored. Default <see cref="FrameEncoding.Jpeg"/>.</summary>
    public FrameEncoding Encoding { get; init; } = FrameEncoding.Jpeg;

    /// <summary>JPEG quality, 1 to 100 (with <see cref="FrameEncoding.Jpeg"/>). Default 90.</summary>
    public int JpegQuality { get; init; } = 90;

    /// <summary>
    /// With <see cref="FrameEncoding.Jpeg"/>: keep the colour planes at full resolution (4:4:4). False halves them in both
    /// directions (4:2:0, the common JPEG default): about 40% smaller and a third faster to decode, but sharp colour
    /// edges lose several dB of PSNR (docs/data.md). Default true.
    /// </summary>
    public bool JpegFullChroma { get; init; } = true;

    /// <summary>Limits for decoding the original (time and frames per file).</summary>
    public VideoReaderOptions Reader { get; init; } = new() { Seek = SeekMode.Sequential };

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        if (ShortSide is int s && s < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(ShortSide), s, "ShortSide must be at least 1 pixel, or null to keep the stored size.");
        }

        if (!Enum.IsDefined(Encoding))
        {
            throw new ArgumentOutOfRangeException(nameof(Encoding), Encoding, "Unknown frame encoding.");
        }

        if (JpegQuality is < 1 or > 100)
        {
            throw new ArgumentOutOfRangeException(nameof(JpegQuality), JpegQuality, "JpegQuality must lie in [1, 100].");
        }

        ArgumentNullException.ThrowIfNull(Reader, nameof(Reader));
        Reader.Validate();
    }
}

/// <summary>What a prepared video holds and where it came from (the header of a <see cref="PreparedVideo"/> file).</summary>
public sealed record PreparedVideoHeader
{
    /// <summary>The format version.</summary>
    public int Version { get; init; }

    /// <summary>How frames are stored.</summary>
    public FrameEncoding Encoding { get; init; }

    /// <summary>Frame width in pixels.</summary>
    public int Width { get; init; }

    /// <summary>Frame height in pixels.</summary>
    public int Height { get; init; }

    /// <summary>Number of frames: every frame of the original that decodes, in order.</summary>
    public int Frames { get; init; }

    /// <summary>The original's frame rate (0 when unknown).</summary>
    public double FramesPerSecond { get; init; }

    /// <summary>The short side frames were resized to, or null when they keep the original size.</summary>
    public int? ShortSide { get; init; }

    /// <summary>The JPEG quality (with <see cref="FrameEncoding.Jpeg"/>), else 0.</summary>
    public int JpegQuality { get; init; }

    /// <summary>Whether JPEG frames keep full-resolution colour planes (4:4:4) rather than 4:2:0.</summary>
    public bool JpegFullChroma { get; init; }

    /// <summary>The original's file name.</summary>
    public string SourceName { get; init; } = string.Empty;

    /// <summary>The original's size in bytes when it was prepared.</summary>
    public long SourceSizeBytes { get; init; }

    /// <summary>The original's last write time (UTC) when it was prepared.</summary>
    public DateTime SourceModifiedUtc { get; init; }

    /// <summary>The original's frame width.</summary>
    public int SourceWidth { get; init; }

    /// <summary>The original's frame height.</summary>
    public int SourceHeight { get; init; }

    /// <summary>The frame count the original's container claimed.</summary>
    public int SourceClaimedFrames { get; init; }

    /// <summary>The original's codec (FourCC text).</summary>
    public string SourceCodec { get; init; } = string.Empty;

    /// <summary>Bytes of frame data (without the header and the frame table).</summary>
    public long DataBytes { get; init; }

    /// <summary>Whether this file was prepared from <paramref name="source"/> as it is now, with <paramref name="options"/>.</summary>
    /// <param name="source">The original file.</param>
    /// <param name="options">The options a preparation would use now.</param>
    public bool Matches(FileInfo source, PreparedVideoOptions options)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(options);
        return source.Exists && SourceSizeBytes == source.Length && SourceModifiedUtc == source.LastWriteTimeUtc
            && ShortSide == options.ShortSide && Encoding == options.Encoding
            && (Encoding != FrameEncoding.Jpeg || (JpegQuality == options.JpegQuality && JpegFullChroma == options.JpegFullChroma));
    }
}

/// <summary>
/// Prepared videos (<c>.cvrlvid</c>): every decodable frame of a video, resized once and stored on its own (JPEG or raw),
/// with a frame table, so that any frame is one read and one image decode away. <see cref="VideoReader"/> reads them like
/// any video (frame i of the prepared file is frame i of the original); <c>cvrl prepare</c> and Cvrl's
/// <c>VideoPreparation</c> make them for whole data sets.
/// </summary>
/// <remarks>
/// Layout (little-endian): the 8-byte magic <c>CVRLVID1</c>; the frames back to back; the frame table (one 64-bit
/// offset per frame plus the end offset); the header as UTF-8 JSON; a 24-byte trailer (table offset, header length, a
/// reserved word, the magic <c>CVRLEND1</c>). The trailer is written last, and files are written under a temporary name
/// and renamed when complete, so an interrupted preparation never leaves a file that looks complete.
/// </remarks>
public static class PreparedVideo
{
    /// <summary>The file extension of prepared videos.</summary>
    public const string Extension = ".cvrlvid";

    /// <summary>The format version written.</summary>
    public const int FormatVersion = 1;

    internal const int TrailerBytes = 24;

    /// <summary>OpenCV's IMWRITE_JPEG_SAMPLING_FACTOR (not in OpenCvSharp's enum).</summary>
    private const int ImwriteJpegSamplingFactor = 7;
    private static readonly byte[] s_head = "CVRLVID1"u8.ToArray();
    private static readonly byte[] s_tail = "CVRLEND1"u8.ToArray();

    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = false,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>Whether <paramref name="path"/> names a prepared video (by its extension).</summary>
    /// <param name="path">A file path.</param>
    public static bool IsPrepared(string path) => path.EndsWith(Extension, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Decodes <paramref name="source"/> once, front to back, and writes every frame that decodes to
    /// <paramref name="destination"/>, resized and encoded as <paramref name="options"/> say. The file appears complete
    /// or not at all.
    /// </summary>
    /// <param name="source">The original video.</param>
    /// <param name="destination">The prepared file to write (its folder is created).</param>
    /// <param name="options">Options (validated); null for <see cref="PreparedVideoOptions.Default"/>.</param>
    /// <param name="cancellationToken">Stops between frames; nothing is left behind.</param>
    /// <returns>The header written.</returns>
    /// <exception cref="VideoDecodeException">The original cannot be decoded (missing, empty, not a video, no frame, a limit exceeded).</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public static PreparedVideoHeader Write(string source, string destination, PreparedVideoOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(source);
        ArgumentException.ThrowIfNullOrWhiteSpace(destination);
        options ??= PreparedVideoOptions.Default;
        options.Validate();
        if (IsPrepared(source))
        {
            throw new ArgumentException($"'{source}' is already a prepared video.", nameof(source));
        }

        string target = Path.GetFullPath(destination);
        var file = new FileInfo(Path.GetFullPath(source));
        long sourceSize = file.Exists ? file.Length : 0;
        DateTime sourceModified = file.Exists ? file.LastWriteTimeUtc : default;
        using var reader = VideoReader.Open(file.FullName, options.Reader with { ShortSide = options.ShortSide, Seek = SeekMode.Sequential, CountFramesOnOpen = false });
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        string partial = PartialPath(target);
        try
        {
            PreparedVideoHeader header;
            using (var stream = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
            {
                stream.Write(s_head);
                var offsets = new List<long> { stream.Position };
                // 0x111111: every component sampled 1x1 (4:4:4); 0x221111: luma 2x2 per chroma sample (4:2:0).
                int[] encodeParams = options.Encoding == FrameEncoding.Jpeg
                    ? [(int)ImwriteFlags.JpegQuality, options.JpegQuality, ImwriteJpegSamplingFactor, options.JpegFullChroma ? 0x111111 : 0x221111]
                    : [];
                byte[] raw = [];
                reader.ForEachFrame(
                    (_, frame) =>
                    {
                        if (options.Encoding == FrameEncoding.Jpeg)
                        {
                            Cv2.ImEncode(".jpg", frame, out byte[] jpeg, encodeParams);
                            stream.Write(jpeg);
                        }
                        else
                        {
                            int bytes = checked(frame.Rows * frame.Cols * 3);
                            if (raw.Length != bytes)
                            {
                                raw = new byte[bytes];
                            }

                            CopyPixels(frame, raw);
                            stream.Write(raw);
                        }

                        offsets.Add(stream.Position);
                    },
                    cancellationToken);

                var info = reader.Info;
                header = new PreparedVideoHeader
                {
                    Version = FormatVersion,
                    Encoding = options.Encoding,
                    Width = info.OutputWidth,
                    Height = info.OutputHeight,
                    Frames = offsets.Count - 1,
                    FramesPerSecond = double.IsFinite(info.FramesPerSecond) && info.FramesPerSecond > 0 ? info.FramesPerSecond : 0,
                    ShortSide = options.ShortSide,
                    JpegQuality = options.Encoding == FrameEncoding.Jpeg ? options.JpegQuality : 0,
                    JpegFullChroma = options.Encoding == FrameEncoding.Jpeg && options.JpegFullChroma,
                    SourceName = file.Name,
                    SourceSizeBytes = sourceSize,
                    SourceModifiedUtc = sourceModified,
                    SourceWidth = info.Width,
                    SourceHeight = info.Height,
                    SourceClaimedFrames = info.ReportedFrameCount,
                    SourceCodec = info.Codec,
                    DataBytes = offsets[^1] - offsets[0],
                };

                long tableOffset = stream.Position;
                Span<byte> word = stackalloc byte[8];
                foreach (long offset in offsets)
                {
                    BinaryPrimitives.WriteInt64LittleEndian(word, offset);
                    stream.Write(word);
                }

                byte[] json = JsonSerializer.SerializeToUtf8Bytes(header, Json);
                stream.Write(json);
                Span<byte> trailer = stackalloc byte[TrailerBytes];
                BinaryPrimitives.WriteInt64LittleEndian(trailer, tableOffset);
                BinaryPrimitives.WriteInt32LittleEndian(trailer[8..], json.Length);
                BinaryPrimitives.WriteInt32LittleEndian(trailer[12..], 0);
                s_tail.CopyTo(trailer[16..]);
                stream.Write(trailer);
                stream.Flush(flushToDisk: true);
            }

            File.Move(partial, target, overwrite: true);
            return header;
        }
        finally
        {
            if (File.Exists(partial))
            {
                File.Delete(partial);
            }
        }
    }

    /// <summary>Reads the header of a prepared video.</summary>
    /// <param name="path">The prepared file.</param>
    /// <returns>The header.</returns>
    /// <exception cref="VideoDecodeException">The file is missing, incomplete or not a prepared video.</exception>
    public static PreparedVideoHeader ReadHeader(string path)
    {
        using var file = PreparedVideoFile.Open(path);
        return file.Header;
    }

    /// <summary>The temporary name a prepared file is written under until it is complete.</summary>
    /// <param name="destination">The prepared file.</param>
    /// <remarks>
    /// The destination's name with <c>.partial</c> appended, or, when that would be longer than a file name may be, a
    /// hidden name made from a hash of the destination's (still ending in <c>.cvrlvid.partial</c>).
    /// </remarks>
    public static string PartialPath(string destination)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(destination);
        string name = Path.GetFileName(destination) + ".partial";
        if (System.Text.Encoding.UTF8.GetByteCount(name) <= AtomicFile.MaxNameBytes)
        {
            return destination + ".partial";
        }

        string hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(Path.GetFileName(destination))))[..32];
        return Path.Combine(Path.GetDirectoryName(destination) ?? string.Empty, ".cvrl-" + hash + Extension + ".partial");
    }

    private static unsafe void CopyPixels(Mat frame, byte[] destination)
    {
        int rowBytes = frame.Cols * 3;
        int rows = frame.Rows;
        fixed (byte* d = destination)
        {
            for (int y = 0; y < rows; y++)
            {
                Buffer.MemoryCopy((void*)frame.Ptr(y), d + ((long)y * rowBytes), rowBytes, rowBytes);
            }
        }
    }

    internal static bool HasHead(ReadOnlySpan<byte> bytes) => bytes.SequenceEqual(s_head);

    internal static bool HasTail(ReadOnlySpan<byte> bytes) => bytes.SequenceEqual(s_tail);
}

/// <summary>Random access to the frames of a prepared video. One per reader; not thread-safe.</summary>
internal sealed class PreparedVideoFile : IDisposable
{
    private readonly SafeFileHandle _handle;
    private readonly long[] _offsets;
    private byte[] _buffer = [];

    private PreparedVideoFile(string path, SafeFileHandle handle, PreparedVideoHeader header, long[] offsets)
    {
        Path = path;
        _handle = handle;
        Header = header;
        _offsets = offsets;
    }

    public string Path { get; }

    public PreparedVideoHeader Header { get; }

    /// <summary>Opens a prepared video, checking its layout and what its header claims against <paramref name="limits"/>.</summary>
    public static PreparedVideoFile Open(string path, VideoReaderOptions? limits = null)
    {
        limits ??= VideoReaderOptions.Default;
        string full = System.IO.Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            throw new VideoDecodeException(full, VideoDecodeFailure.FileNotFound, "the file does not exist");
        }

        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(full, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new VideoDecodeException(full, VideoDecodeFailure.CannotOpen, "the prepared video cannot be opened: " + e.Message, null, e);
        }

        try
        {
            var (header, offsets) = ReadLayout(full, handle, limits);
            return new PreparedVideoFile(full, handle, header, offsets);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Decodes frame <paramref name="index"/> (BGR, 8-bit, Width x Height) into a new Mat owned by the caller.</summary>
    public Mat Decode(int index)
    {
        long start = _offsets[index];
        int length = checked((int)(_offsets[index + 1] - start));
        if (_buffer.Length < length)
        {
            _buffer = new byte[Math.Max(length, _buffer.Length * 2)];
        }

        var span = _buffer.AsSpan(0, length);
        ReadExactly(Path, _handle, span, start, $"frame {index}");

        Mat frame;
        if (Header.Encoding == FrameEncoding.Jpeg)
        {
            // The size a JPEG declares is read before it is decoded: a frame of a kilobyte can declare 30000 x 30000.
            if (!JpegHeader.TryReadSize(span, out int width, out int height))
            {
                throw new VideoDecodeException(Path, VideoDecodeFailure.InconsistentFrames, $"frame {index} is not a baseline or progressive JPEG (damaged file)");
            }

            if (width != Header.Width || height != Header.Height)
            {
                throw new VideoDecodeException(Path, VideoDecodeFailure.InconsistentFrames, $"frame {index} declares {width}x{height}, {Header.Width}x{Header.Height} expected (damaged file)");
            }

            try
            {
                frame = Cv2.ImDecode(span, ImreadModes.Color);
            }
            catch (OpenCVException e)
            {
                throw new VideoDecodeException(Path, VideoDecodeFailure.InconsistentFrames, $"frame {index} does not decode: {e.Message}", null, e);
            }
        }
        else
        {
            if (length != Header.Width * Header.Height * 3)
            {
                throw new VideoDecodeException(Path, VideoDecodeFailure.InconsistentFrames, $"frame {index} holds {length} bytes, {Header.Width}x{Header.Height}x3 expected");
            }

            frame = new Mat(Header.Height, Header.Width, MatType.CV_8UC3);
            unsafe
            {
                fixed (byte* p = span)
                {
                    int row = Header.Width * 3;
                    for (int y = 0; y < Header.Height; y++)
                    {
                        Buffer.MemoryCopy(p + ((long)y * row), (void*)frame.Ptr(y), row, row);
                    }
                }
            }
        }

        if (frame.Empty() || frame.Rows != Header.Height || frame.Cols != Header.Width || frame.Type() != MatType.CV_8UC3)
        {
            string got = frame.Empty() ? "nothing" : $"{frame.Cols}x{frame.Rows}";
            frame.Dispose();
            throw new VideoDecodeException(Path, VideoDecodeFailure.InconsistentFrames, $"frame {index} decodes to {got}, {Header.Width}x{Header.Height} BGR expected (damaged file)");
        }

        return frame;
    }

    public void Dispose() => _handle.Dispose();

    private static (PreparedVideoHeader Header, long[] Offsets) ReadLayout(string path, SafeFileHandle handle, VideoReaderOptions limits)
    {
        long length = RandomAccess.GetLength(handle);
        VideoDecodeException Bad(string why) => new(path, VideoDecodeFailure.CannotOpen, "not a complete prepared video: " + why);
        if (length == 0)
        {
            throw new VideoDecodeException(path, VideoDecodeFailure.EmptyFile, "the file is empty (0 bytes)");
        }

        if (length < 8 + 8 + PreparedVideo.TrailerBytes)
        {
            throw Bad($"{length} bytes is too short");
        }

        Span<byte> head = stackalloc byte[8];
        Span<byte> trailer = stackalloc byte[PreparedVideo.TrailerBytes];
        ReadExactly(path, handle, head, 0, "the magic");
        ReadExactly(path, handle, trailer, length - PreparedVideo.TrailerBytes, "the trailer");
        if (!PreparedVideo.HasHead(head))
        {
            throw Bad("it does not start with the CVRLVID1 magic");
        }

        if (!PreparedVideo.HasTail(trailer[16..]))
        {
            throw Bad("it has no trailer (an interrupted preparation?); prepare it again");
        }

        long tableOffset = BinaryPrimitives.ReadInt64LittleEndian(trailer);
        int headerLength = BinaryPrimitives.ReadInt32LittleEndian(trailer[8..]);
        long headerOffset = length - PreparedVideo.TrailerBytes - headerLength;
        if (headerLength <= 0 || tableOffset < 8 || headerOffset <= tableOffset || (headerOffset - tableOffset) % 8 != 0)
        {
            throw Bad("its trailer is inconsistent");
        }

        var json = new byte[headerLength];
        ReadExactly(path, handle, json, headerOffset, "the header");
        PreparedVideoHeader? header;
        try
        {
            header = JsonSerializer.Deserialize<PreparedVideoHeader>(json, PreparedVideo.Json);
        }
        catch (JsonException e)
        {
            throw new VideoDecodeException(path, VideoDecodeFailure.CannotOpen, "not a complete prepared video: its header is not valid JSON (" + e.Message + ")", null, e);
        }

        if (header is null || header.Version != PreparedVideo.FormatVersion)
        {
            throw Bad($"format version {header?.Version} (this Cvrl reads version {PreparedVideo.FormatVersion})");
        }

        long entries = (headerOffset - tableOffset) / 8;
        if (header.Frames < 1 || entries != header.Frames + 1L || header.Width < 1 || header.Height < 1 || !Enum.IsDefined(header.Encoding))
        {
            throw Bad($"its header ({header.Frames} frames, {header.Width}x{header.Height}) does not match its frame table ({entries - 1} frames)");
        }

        // Limits before anything is allocated for the table or a frame: a few bytes of header can claim any size.
        if (header.Frames > limits.MaxFrames)
        {
            throw new VideoDecodeException(path, VideoDecodeFailure.TooManyFrames, string.Create(CultureInfo.InvariantCulture, $"its header claims {header.Frames:N0} frames, more than the {limits.MaxFrames:N0} VideoReaderOptions.MaxFrames allows"));
        }

        if ((long)header.Width * header.Height > limits.MaxFramePixels)
        {
            throw new VideoDecodeException(path, VideoDecodeFailure.TooLarge, string.Create(CultureInfo.InvariantCulture, $"its header declares {header.Width}x{header.Height} frames, more than the {limits.MaxFramePixels:N0} pixels VideoReaderOptions.MaxFramePixels allows"));
        }

        var offsets = new long[entries];
        byte[] chunk = ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            for (long first = 0; first < entries; first += chunk.Length / 8)
            {
                int count = (int)Math.Min(chunk.Length / 8, entries - first);
                ReadExactly(path, handle, chunk.AsSpan(0, count * 8), tableOffset + (first * 8), "the frame table");
                for (int k = 0; k < count; k++)
                {
                    long i = first + k;
                    offsets[i] = BinaryPrimitives.ReadInt64LittleEndian(chunk.AsSpan(k * 8, 8));
                    if (offsets[i] < 8 || offsets[i] > tableOffset || (i > 0 && offsets[i] <= offsets[i - 1]))
                    {
                        throw Bad($"frame table entry {i} is out of order or out of bounds");
                    }
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }

        if (offsets[^1] != tableOffset)
        {
            throw Bad("the frame table does not end where the frames do");
        }

        long largest = 0;
        for (int i = 0; i + 1 < offsets.Length; i++)
        {
            largest = Math.Max(largest, offsets[i + 1] - offsets[i]);
        }

        long rawBytes = 3L * header.Width * header.Height;
        if (header.Encoding == FrameEncoding.Raw ? largest != rawBytes : largest > (2 * rawBytes) + (1 << 20))
        {
            throw Bad($"a frame of {largest:N0} bytes does not fit {header.Width}x{header.Height} {header.Encoding} frames");
        }

        return (header, offsets);
    }

    /// <summary>Fills <paramref name="buffer"/> from <paramref name="offset"/>; a file that ends first is a damaged one.</summary>
    private static void ReadExactly(string path, SafeFileHandle handle, Span<byte> buffer, long offset, string what)
    {
        int read = 0;
        while (read < buffer.Length)
        {
            int n = RandomAccess.Read(handle, buffer[read..], offset + read);
            if (n == 0)
            {
                throw new VideoDecodeException(path, VideoDecodeFailure.InconsistentFrames, $"{what} is cut short (the file was truncated)");
            }

            read += n;
        }
    }
}
