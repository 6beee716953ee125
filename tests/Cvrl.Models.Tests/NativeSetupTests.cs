using System.Runtime.InteropServices;
using Cvrl.Native;
using Cvrl.Testing;
using TorchSharp;

namespace Cvrl.Models.Tests;

[Collection("Torch")]
public sealed class NativeSetupTests
{
    private static string NativeDir => Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native");

    private static string OriginalTorchSharpGlue()
    {
        // The copy in the NuGet cache is never patched (the build patches only the copy in the output folder).
        var (library, _) = TorchNativeSetup.Locate(typeof(torch).Assembly);
        Assert.NotNull(library);
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        string packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p ? p : Path.Combine(home, ".nuget", "packages");
        string cached = Path.Combine(packages, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        return File.Exists(cached) ? cached : library!;
    }

    [Fact]
    public void Elf_ReadsTheGlibcxxNeedOfTorchSharpsGlue_AndWeakensItInMemory()
    {
        byte[] elf = File.ReadAllBytes(OriginalTorchSharpGlue());
        var needs = ElfSymbolVersions.ReadVersionNeeds(elf);
        var need = Assert.Single(needs, n => n.Version == TorchNativeSetup.NeededVersion);
        Assert.Equal("libstdc++.so.6", need.File);
        Assert.False(need.IsWeak);
        Assert.Contains(needs, n => n.Version == "GLIBC_2.2.5" && n.File == "libc.so.6");

        Assert.Equal(1, ElfSymbolVersions.Weaken(elf, TorchNativeSetup.NeededVersion));
        Assert.False(ElfSymbolVersions.HasStrongNeed(elf, TorchNativeSetup.NeededVersion));
        Assert.Equal(0, ElfSymbolVersions.Weaken(elf, TorchNativeSetup.NeededVersion));
        // Only the flags of that one entry changed.
        Assert.Equal(needs.Count, ElfSymbolVersions.ReadVersionNeeds(elf).Count);
        Assert.All(ElfSymbolVersions.ReadVersionNeeds(elf).Where(n => n.Version != TorchNativeSetup.NeededVersion), n => Assert.False(n.IsWeak));
    }

    [Fact]
    public void Elf_ReadsTheVersionsTheSystemLibstdcxxDefines()
    {
        string? path = LibStdCxx.FindPath();
        Assert.NotNull(path);
        var defined = ElfSymbolVersions.ReadVersionDefinitions(File.ReadAllBytes(path!));
        Assert.Contains("GLIBCXX_3.4.26", defined);
        Assert.Contains("CXXABI_1.3", defined);
    }

    [Fact]
    public void Elf_RejectsNonElfInput()
    {
        Assert.Throws<InvalidDataException>(() => ElfSymbolVersions.ReadVersionNeeds(new byte[100]));
        Assert.Throws<InvalidDataException>(() => ElfSymbolVersions.ReadVersionNeeds("\u007fELF"u8.ToArray()));
    }

    [Fact]
    public void TorchNative_LoadsAndReportsWhatTheFixupDid()
    {
        TorchNative.EnsureLoaded();
        Assert.NotNull(TorchNative.FixupStatus);
        using var x = torch.ones(2, 2);
        Assert.Equal(4f, x.sum().item<float>());
        var (library, libTorchDir) = TorchNativeSetup.Locate(typeof(torch).Assembly);
        Assert.True(File.Exists(library));
        Assert.True(File.Exists(Path.Combine(libTorchDir!, "libtorch_cpu.so")));
    }

    [Fact]
    public void MissingLibrary_GivesOneClearMessage()
    {
        string path = Path.Combine(Path.GetTempPath(), "cvrl-no-such-dir", "libOpenCvSharpExtern.so");
        string? error = NativeLoadDiagnostics.TryLoad(path);
        Assert.NotNull(error);
        string message = NativeLoadDiagnostics.Explain("OpenCV (libOpenCvSharpExtern.so)", path, null, "The file does not exist.");
        Assert.StartsWith("Cvrl could not load OpenCV (libOpenCvSharpExtern.so) from ", message, StringComparison.Ordinal);
        Assert.Contains("not found", message, StringComparison.Ordinal);
    }

    [Fact]
    public void LibraryWithAMissingDependency_NamesTheDependency()
    {
        // A copy of a small libtorch library whose dependency libdl.so.2 is renamed to a soname no system has.
        using var dir = new TempDirectory();
        byte[] bytes = File.ReadAllBytes(Path.Combine(NativeDir, "libtorch_global_deps.so"));
        byte[] from = "libdl.so.2\0"u8.ToArray();
        byte[] to = "libqq.so.9\0"u8.ToArray();
        int at = bytes.AsSpan().IndexOf(from);
        Assert.True(at > 0);
        to.CopyTo(bytes, at);
        string path = dir.File("libbroken.so");
        File.WriteAllBytes(path, bytes);

        string? error = NativeLoadDiagnostics.TryLoad(path);
        Assert.NotNull(error);
        Assert.Equal(new[] { "libqq.so.9" }, NativeLoadDiagnostics.MissingLibraries(error!));
        string message = NativeLoadDiagnostics.Explain("test library", path, error, null);
        Assert.Contains("libqq.so.9 not found", message, StringComparison.Ordinal);
        Assert.Contains("apt-file search libqq.so.9", message, StringComparison.Ordinal);
    }

    [Fact]
    public void KnownMissingSonames_MapToTheirAptPackages()
    {
        const string gtk = "Unable to load shared library '/x/libOpenCvSharpExtern.so' or one of its dependencies.\nlibgtk-3.so.0: cannot open shared object file: No such file or directory";
        string message = NativeLoadDiagnostics.Explain("OpenCV (libOpenCvSharpExtern.so)", "/x/libOpenCvSharpExtern.so", gtk, null);
        Assert.Contains("libgtk-3.so.0 not found: apt-get install libgtk-3-0", message, StringComparison.Ordinal);

        const string glibcxx = "/lib/x86_64-linux-gnu/libstdc++.so.6: version `GLIBCXX_3.4.32' not found (required by /app/libLibTorchSharp.so)";
        Assert.Equal(("GLIBCXX_3.4.32", "/lib/x86_64-linux-gnu/libstdc++.so.6"), Assert.Single(NativeLoadDiagnostics.MissingVersions(glibcxx)));
        Assert.Contains("lacks symbol version GLIBCXX_3.4.32", NativeLoadDiagnostics.Explain("TorchSharp", "/app/libLibTorchSharp.so", glibcxx, null), StringComparison.Ordinal);
    }

    [Fact]
    public void Fixup_CanBeTurnedOffWithAnAppContextSwitch()
    {
        AppContext.SetSwitch(TorchNativeSetup.DisableSwitch, true);
        try
        {
            Assert.True(TorchNativeSetup.IsDisabled(out string how));
            Assert.Contains(TorchNativeSetup.DisableSwitch, how, StringComparison.Ordinal);
        }
        finally
        {
            AppContext.SetSwitch(TorchNativeSetup.DisableSwitch, false);
        }

        Assert.False(TorchNativeSetup.IsDisabled(out _));
    }

    [Fact]
    public void WriteAtomically_ReplacesWholeFiles()
    {
        using var dir = new TempDirectory();
        string path = dir.File("lib.so");
        ElfSymbolVersions.WriteAtomically(path, [1, 2, 3]);
        ElfSymbolVersions.WriteAtomically(path, [4, 5]);
        Assert.Equal(new byte[] { 4, 5 }, File.ReadAllBytes(path));
        Assert.Single(Directory.GetFiles(dir.Path));
    }
}
