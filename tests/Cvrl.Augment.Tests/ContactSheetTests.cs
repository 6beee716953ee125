using Cvrl.Augment.Video;
using Cvrl.Testing;
using OpenCvSharp;

namespace Cvrl.Augment.Tests;

[Collection("Torch")]
public sealed class ContactSheetTests
{
    [Fact]
    public void Write_ProducesADecodablePngOfTheExpectedSize()
    {
        using var dir = new TempDirectory();
        string video = TestVideos.Create(dir.File("v.avi"), 60, 96, 72);
        var generator = new CvrlViewGenerator(new CvrlViewOptions { CropSize = 64 });
        using var views = generator.Generate(video, 3, 0, 0);
        string png = dir.File("sheet.png");
        var (width, height) = ContactSheet.Write(png, views, "test sheet", maxFrames: 8, cellHeight: 64);

        using var decoded = Cv2.ImRead(png);
        Assert.False(decoded.Empty());
        Assert.Equal(width, decoded.Cols);
        Assert.Equal(height, decoded.Rows);
        Assert.Equal((8 * 66), width); // 8 frames of 64 px plus 2 px gaps
        Assert.True(height > 2 * 64);
    }

    [Fact]
    public void RenderPng_RejectsBadRows()
    {
        Assert.Throws<ArgumentException>(() => ContactSheet.RenderPng([]));
        using var gray = TorchSharp.torch.rand(1, 2, 8, 8);
        Assert.Throws<ArgumentException>(() => ContactSheet.RenderPng([new ContactSheetRow("x", gray)]));
    }
}
