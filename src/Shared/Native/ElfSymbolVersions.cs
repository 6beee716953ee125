// Shared source: compiled into Cvrl.Augment and Cvrl.Models (internal in both, with CVRL_RUNTIME defined), and into the MSBuild
// task that patches build and publish output (see CvrlNative.targets). Keep it free of TorchSharp and
// OpenCV types, and of anything newer than what netstandard2.0/C# 9 can compile.
#nullable enable
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace Cvrl.Native
{
    /// <summary>
    /// Reads and edits the GNU symbol-version tables of a 64-bit little-endian ELF shared object.
    /// Used to mark one version need (for example <c>GLIBCXX_3.4.32</c>) weak, so that the dynamic loader
    /// only warns when the running libstdc++ lacks that version instead of refusing to load the library.
    /// </summary>
    internal static class ElfSymbolVersions
    {
        private const uint ShtGnuVerdef = 0x6ffffffd;
        private const uint ShtGnuVerneed = 0x6ffffffe;

        /// <summary>The <c>vna_flags</c> bit that makes a version need weak (<c>VER_FLG_WEAK</c>).</summary>
        internal const ushort VerFlagWeak = 0x2;

        /// <summary>One entry of the <c>.gnu.version_r</c> table.</summary>
        internal readonly struct VersionNeed
        {
            public VersionNeed(string file, string version, ushort flags, long flagsOffset)
            {
                File = file;
                Version = version;
                Flags = flags;
                FlagsOffset = flagsOffset;
            }

            /// <summary>The library the version is needed from, e.g. <c>libstdc++.so.6</c>.</summary>
            public string File { get; }

            /// <summary>The version name, e.g. <c>GLIBCXX_3.4.32</c>.</summary>
            public string Version { get; }

            /// <summary>The <c>vna_flags</c> field.</summary>
            public ushort Flags { get; }

            /// <summary>File offset of the 16-bit <c>vna_flags</c> field.</summary>
            public long FlagsOffset { get; }

            /// <summary>Whether the need is weak (missing version only warns).</summary>
            public bool IsWeak => (Flags & VerFlagWeak) != 0;
        }

        /// <summary>Lists the version needs of an ELF file held in memory.</summary>
        /// <exception cref="InvalidDataException">The bytes are not a 64-bit little-endian ELF file.</exception>
        public static IReadOnlyList<VersionNeed> ReadVersionNeeds(byte[] elf)
        {
            var result = new List<VersionNeed>();
            foreach (var (section, strtab) in FindSections(elf, ShtGnuVerneed))
            {
                long entry = (long)section.Offset;
                for (int i = 0; i < (int)section.Info && entry > 0; i++)
                {
                    ushort count = U16(elf, entry + 2);
                    string file = ReadString(elf, strtab, U32(elf, entry + 4));
                    long aux = entry + U32(elf, entry + 8);
                    for (int j = 0; j < count; j++)
                    {
                        ushort flags = U16(elf, aux + 4);
                        string name = ReadString(elf, strtab, U32(elf, aux + 8));
                        result.Add(new VersionNeed(file, name, flags, aux + 4));
                        uint nextAux = U32(elf, aux + 12);
                        if (nextAux == 0)
                        {
                            break;
                        }

                        aux += nextAux;
                    }

                    uint next = U32(elf, entry + 12);
                    if (next == 0)
                    {
                        break;
                    }

                    entry += next;
                }
            }

            return result;
        }

        /// <summary>Lists the version names an ELF file defines (its <c>.gnu.version_d</c> table).</summary>
        /// <exception cref="InvalidDataException">The bytes are not a 64-bit little-endian ELF file.</exception>
        public static IReadOnlyList<string> ReadVersionDefinitions(byte[] elf)
        {
            var result = new List<string>();
            foreach (var (section, strtab) in FindSections(elf, ShtGnuVerdef))
            {
                long entry = (long)section.Offset;
                for (int i = 0; i < (int)section.Info && entry > 0; i++)
                {
                    ushort auxCount = U16(elf, entry + 6);
                    long aux = entry + U32(elf, entry + 12);
                    if (auxCount > 0)
                    {
                        result.Add(ReadString(elf, strtab, U32(elf, aux)));
                    }

                    uint next = U32(elf, entry + 16);
                    if (next == 0)
                    {
                        break;
                    }

                    entry += next;
                }
            }

            return result;
        }

        /// <summary>
        /// Marks every need of <paramref name="version"/> weak, in memory.
        /// Returns the number of entries changed (0 when absent or already weak).
        /// </summary>
        public static int Weaken(byte[] elf, string version)
        {
            int changed = 0;
            foreach (var need in ReadVersionNeeds(elf))
            {
                if (need.Version == version && !need.IsWeak)
                {
                    ushort flags = (ushort)(need.Flags | VerFlagWeak);
                    elf[need.FlagsOffset] = (byte)(flags & 0xff);
                    elf[need.FlagsOffset + 1] = (byte)(flags >> 8);
                    changed++;
                }
            }

            return changed;
        }

        /// <summary>Whether the file needs <paramref name="version"/> with a non-weak need.</summary>
        public static bool HasStrongNeed(byte[] elf, string version)
        {
            foreach (var need in ReadVersionNeeds(elf))
            {
                if (need.Version == version && !need.IsWeak)
                {
                    return true;
                }
            }

            return false;
        }

        /// <summary>
        /// Writes <paramref name="bytes"/> to <paramref name="path"/> through a temporary file in the same folder and
        /// a rename, so that a reader (or a concurrent writer) never sees a half-written library.
        /// </summary>
        public static void WriteAtomically(string path, byte[] bytes)
        {
            string dir = Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".";
            string tmp = Path.Combine(dir, "." + Path.GetFileName(path) + "." + Guid.NewGuid().ToString("N") + ".tmp");
            try
            {
                using (var stream = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
                {
                    stream.Write(bytes, 0, bytes.Length);
                    stream.Flush(true);
                }

                if (File.Exists(path))
                {
                    File.Replace(tmp, path, null);
                }
                else
                {
                    File.Move(tmp, path);
                }
            }
            finally
            {
                if (File.Exists(tmp))
                {
                    File.Delete(tmp);
                }
            }
        }

        private struct Section
        {
            public uint Type;
            public ulong Offset;
            public ulong Size;
            public uint Link;
            public uint Info;
        }

        private static IEnumerable<(Section Section, Section StringTable)> FindSections(byte[] elf, uint type)
        {
            if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            {
                throw new InvalidDataException("not an ELF file");
            }

            if (elf[4] != 2 || elf[5] != 1)
            {
                throw new InvalidDataException("not a 64-bit little-endian ELF file");
            }

            ulong shoff = U64(elf, 0x28);
            ushort shentsize = U16(elf, 0x3a);
            ushort shnum = U16(elf, 0x3c);
            if (shoff == 0 || shentsize < 64 || (long)shoff + ((long)shnum * shentsize) > elf.Length)
            {
                throw new InvalidDataException("ELF section header table is missing or truncated");
            }

            var sections = new Section[shnum];
            for (int i = 0; i < shnum; i++)
            {
                long h = (long)shoff + ((long)i * shentsize);
                sections[i] = new Section
                {
                    Type = U32(elf, h + 4),
                    Offset = U64(elf, h + 0x18),
                    Size = U64(elf, h + 0x20),
                    Link = U32(elf, h + 0x28),
                    Info = U32(elf, h + 0x2c),
                };
            }

            var found = new List<(Section, Section)>();
            foreach (var s in sections)
            {
                if (s.Type == type && s.Link < sections.Length && (long)(s.Offset + s.Size) <= elf.Length)
                {
                    found.Add((s, sections[s.Link]));
                }
            }

            return found;
        }

        private static string ReadString(byte[] elf, Section strtab, uint offset)
        {
            long start = (long)strtab.Offset + offset;
            if (offset >= strtab.Size || start >= elf.Length)
            {
                throw new InvalidDataException("ELF string offset out of range");
            }

            long end = start;
            while (end < elf.Length && elf[end] != 0)
            {
                end++;
            }

            return Encoding.ASCII.GetString(elf, (int)start, (int)(end - start));
        }

        private static ushort U16(byte[] b, long o)
        {
            Check(b, o, 2);
            return (ushort)(b[o] | (b[o + 1] << 8));
        }

        private static uint U32(byte[] b, long o)
        {
            Check(b, o, 4);
            return (uint)(b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24));
        }

        private static ulong U64(byte[] b, long o) => U32(b, o) | ((ulong)U32(b, o + 4) << 32);

        private static void Check(byte[] b, long o, int n)
        {
            if (o < 0 || o + n > b.Length)
            {
                throw new InvalidDataException("ELF structure points outside the file");
            }
        }
    }

    /// <summary>Finds the libstdc++ this process uses and the symbol versions it defines.</summary>
    internal static class LibStdCxx
    {
        private static readonly string[] WellKnownPaths =
        {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/usr/lib64/libstdc++.so.6",
            "/lib64/libstdc++.so.6",
        };

        /// <summary>
        /// The path of the libstdc++ mapped into this process (the .NET runtime loads it at start-up), or the
        /// distribution's usual path when it is not mapped, or null.
        /// </summary>
        public static string? FindPath()
        {
            const string maps = "/proc/self/maps";
            if (File.Exists(maps))
            {
                foreach (string line in File.ReadLines(maps))
                {
                    int slash = line.IndexOf('/');
                    if (slash >= 0 && line.IndexOf("libstdc++.so", StringComparison.Ordinal) >= 0)
                    {
                        return line.Substring(slash).Trim();
                    }
                }
            }

            foreach (string path in WellKnownPaths)
            {
                if (File.Exists(path))
                {
                    return path;
                }
            }

            return null;
        }

        /// <summary>Whether the ELF file at <paramref name="path"/> defines symbol version <paramref name="version"/>.</summary>
        public static bool Defines(string path, string version)
        {
            foreach (string defined in ElfSymbolVersions.ReadVersionDefinitions(File.ReadAllBytes(path)))
            {
                if (defined == version)
                {
                    return true;
                }
            }

            return false;
        }
    }

#if !CVRL_RUNTIME
    /// <summary>
    /// MSBuild task (compiled by RoslynCodeTaskFactory from this file, see CvrlNative.targets): marks the given
    /// version need weak in each existing file, but only when the build machine's libstdc++ lacks that version
    /// (or <see cref="Force"/> is set), so that machines with a new enough libstdc++ see no change.
    /// </summary>
    public sealed class CvrlWeakenVersionNeed : Microsoft.Build.Utilities.Task
    {
        /// <summary>The ELF files to patch in place (missing files are skipped).</summary>
        [Microsoft.Build.Framework.Required]
        public Microsoft.Build.Framework.ITaskItem[] Files { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();

        /// <summary>The symbol version whose need becomes weak, e.g. GLIBCXX_3.4.32.</summary>
        [Microsoft.Build.Framework.Required]
        public string Version { get; set; } = string.Empty;

        /// <summary>Patch even when this machine's libstdc++ provides the version.</summary>
        public bool Force { get; set; }

        /// <inheritdoc />
        public override bool Execute()
        {
            if (!Force)
            {
                string? libstdcxx = LibStdCxx.FindPath();
                if (libstdcxx != null && LibStdCxx.Defines(libstdcxx, Version))
                {
                    Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low, "Cvrl: {0} provides {1}; TorchSharp natives left unchanged.", libstdcxx, Version);
                    return true;
                }
            }

            foreach (var item in Files)
            {
                string path = item.ItemSpec;
                if (!File.Exists(path))
                {
                    continue;
                }

                try
                {
                    byte[] bytes = File.ReadAllBytes(path);
                    if (ElfSymbolVersions.Weaken(bytes, Version) > 0)
                    {
                        ElfSymbolVersions.WriteAtomically(path, bytes);
                        Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Normal, "Cvrl: marked the {0} need of {1} weak.", Version, path);
                    }
                }
                catch (Exception e) when (e is IOException || e is UnauthorizedAccessException || e is InvalidDataException)
                {
                    Log.LogWarning("Cvrl: could not patch {0} ({1}); the runtime fix-up will handle it.", path, e.Message);
                }
            }

            return true;
        }
    }
#endif
}
