using Cvrl.Video;

namespace Cvrl.Augment.Sampling;

/// <summary>The two clips CVRL draws from one video, and the start-to-start gap between them.</summary>
/// <param name="First">The clip that gets view 1's augmentation recipe.</param>
/// <param name="Second">The clip that gets view 2's recipe.</param>
/// <param name="Gap">The sampled temporal interval: the distance between the two start frames before the shuffle (0 for the short-video rule).</param>
public readonly record struct ClipPair(ClipWindow First, ClipWindow Second, int Gap);
