using System.Runtime.InteropServices;

namespace Cvrl.Video;

/// <summary>
/// Whether two paths name the same file, and whether a path lies inside a folder, judged on the files themselves:
/// every symbolic link along a path resolved, and on Linux and macOS the device and inode compared, so a hard link, a
/// link to a folder or a relative path with <c>..</c> is seen through. Commands use it to refuse an output that would
/// replace one of their inputs, and folder searches to leave an output folder out.
/// </summary>
public static partial class FileIdentity
{
    /// <summary>
    /// The full path with every symbolic link along it resolved (as <c>realpath</c> does). For a path that does not exist
    /// yet, the part that exists is resolved and the rest appended.
    /// </summary>
    /// <param name="path">A file or folder path, relative or full.</param>
    /// <exception cref="IOException">A chain of more than 40 links (a loop).</exception>
    public static string Resolve(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        string existing = full;
        var rest = new Stack<string>();
        while (!File.Exists(existing) && !Directory.Exists(existing) && new FileInfo(existing).LinkTarget is null)
        {
            string? parent = Path.GetDirectoryName(existing);
            if (parent is null)
            {
                return full;
            }

            rest.Push(Path.GetFileName(existing));
            existing = parent;
        }

        string resolved = VideoFiles.Canonical(existing);
        while (rest.Count > 0)
        {
            resolved = Path.Combine(resolved, rest.Pop());
        }

        return resolved;
    }

    /// <summary>
    /// Whether <paramref name="a"/> and <paramref name="b"/> are the same existing file or folder: the same device and
    /// inode where the system says (hard links included), else the same resolved path. False when either does not exist.
    /// </summary>
    /// <param name="a">A path.</param>
    /// <param name="b">Another path.</param>
    public static bool SameFile(string a, string b)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(a);
        ArgumentException.ThrowIfNullOrWhiteSpace(b);
        if (!Exists(a) || !Exists(b))
        {
            return false;
        }

        if (TryIdentity(a, out var x) && TryIdentity(b, out var y))
        {
            return x == y;
        }

        return string.Equals(Resolve(a), Resolve(b), StringComparison.Ordinal);
    }

    /// <summary>
    /// Whether <paramref name="path"/> is <paramref name="folder"/> or lies below it, both with every link resolved (a path
    /// that does not exist yet is judged by where it would be created).
    /// </summary>
    /// <param name="path">A file or folder path.</param>
    /// <param name="folder">A folder path.</param>
    public static bool IsWithin(string path, string folder)
    {
        string p = Resolve(path);
        string f = Resolve(folder);
        if (string.Equals(p, f, StringComparison.Ordinal) || SameFile(p, f))
        {
            return true;
        }

        string prefix = f.EndsWith(Path.DirectorySeparatorChar) ? f : f + Path.DirectorySeparatorChar;
        return p.StartsWith(prefix, StringComparison.Ordinal);
    }

    private static bool Exists(string path) => File.Exists(path) || Directory.Exists(path);

    /// <summary>The (device, inode) pair of an existing file, through <c>stat</c> (links followed); false where that is not available.</summary>
    private static bool TryIdentity(string path, out (ulong Device, ulong Inode) identity)
    {
        identity = default;
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture is not (Architecture.X64 or Architecture.Arm64))
        {
            return false;
        }

        // struct stat on x86-64 and arm64 Linux starts with st_dev and st_ino, both 64-bit; the whole struct is 144 or 128 bytes.
        Span<byte> buffer = stackalloc byte[256];
        try
        {
            unsafe
            {
                fixed (byte* p = buffer)
                {
                    if (Native.Stat(Path.GetFullPath(path), p) != 0)
                    {
                        return false;
                    }
                }
            }
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            return false;
        }

        identity = (BitConverter.ToUInt64(buffer), BitConverter.ToUInt64(buffer[8..]));
        return true;
    }

    private static unsafe partial class Native
    {
        [LibraryImport("libc", EntryPoint = "stat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        internal static partial int Stat(string path, byte* buffer);
    }
}
