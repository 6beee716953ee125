using Cvrl.Video;

namespace Cvrl.Cli.Infrastructure;

/// <summary>Lays the view options given on a command line over views from elsewhere (an encoder's, the library's), field by field.</summary>
internal static class ViewOverrides
{
    /// <summary><paramref name="views"/> with every option that was given replacing its field (a size sets the short side and the crop).</summary>
    public static TestViewOptions Over(this TestViewOptions views, int? clips, int? crops, int? frames, int? stride, int? size) => views with
    {
        Clips = clips ?? views.Clips,
        Crops = crops ?? views.Crops,
        FramesPerClip = frames ?? views.FramesPerClip,
        Stride = stride ?? views.Stride,
        ShortSide = size ?? views.ShortSide,
        CropSize = size ?? views.CropSize,
    };
}
