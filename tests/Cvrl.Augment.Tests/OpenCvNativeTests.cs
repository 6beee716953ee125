using Cvrl.Video;

namespace Cvrl.Augment.Tests;

public sealed class OpenCvNativeTests
{
    [Fact]
    public void EnsureLoaded_Succeeds_AndAMissingLibraryGivesAClearException()
    {
        OpenCvNative.EnsureLoaded();
        string path = Path.Combine(Path.GetTempPath(), "cvrl-missing", "libOpenCvSharpExtern.so");
        var e = Assert.Throws<DllNotFoundException>(() => OpenCvNative.LoadFrom(path));
        Assert.Contains("Cvrl could not load OpenCV", e.Message, StringComparison.Ordinal);
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains("does not exist", e.Message, StringComparison.Ordinal);
    }
}
