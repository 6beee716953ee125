using Cvrl.Models;
using Cvrl.Video;

namespace Cvrl.Embeddings;

/// <summary>Turns an encoder's training clips into the views it is embedded and evaluated with by default.</summary>
public static class ClipGeometryViews
{
    /// <summary>The test views that match <paramref name="clips"/> (<see cref="TestViewOptions.ForClips"/>).</summary>
    /// <param name="clips">The clips an encoder was trained on.</param>
    /// <returns>10 centre crops of clips of the same length and stride, short side and crop at the training crop size.</returns>
    public static TestViewOptions MatchingTestViews(this ClipGeometry clips)
    {
        ArgumentNullException.ThrowIfNull(clips);
        return TestViewOptions.ForClips(clips.FramesPerClip, clips.Stride, clips.CropSize);
    }
}
