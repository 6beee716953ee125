namespace Cvrl.Models;

/// <summary>
/// The clips an encoder was trained on: <see cref="FramesPerClip"/> frames at <see cref="Stride"/>, cropped to
/// <see cref="CropSize"/> x <see cref="CropSize"/>. An encoder carries it (<see cref="ResNet3d.TrainedClips"/>) from
/// training into checkpoints, exported ONNX models and embedding, where it gives the default views.
/// </summary>
/// <param name="FramesPerClip">Frames per clip.</param>
/// <param name="Stride">Stride between frames, in stored frames.</param>
/// <param name="CropSize">Crop size in pixels.</param>
public sealed record ClipGeometry(int FramesPerClip, int Stride, int CropSize)
{
    /// <summary>Checks every value.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value is below 1; the message names it.</exception>
    public void Validate()
    {
        foreach (var (value, name) in new[] { (FramesPerClip, nameof(FramesPerClip)), (Stride, nameof(Stride)), (CropSize, nameof(CropSize)) })
        {
            if (value < 1)
            {
                throw new ArgumentOutOfRangeException(name, value, $"{name} must be at least 1.");
            }
        }
    }

    /// <summary>"16 x 2 frames at 224".</summary>
    public override string ToString() => $"{FramesPerClip} x {Stride} frames at {CropSize}";
}
