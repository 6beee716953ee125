namespace Cvrl.Video;

/// <summary>What the pre-training loader, the evaluations and both embedders do with a video that cannot be decoded.</summary>
public enum BadVideoPolicy
{
    /// <summary>Skip it (logging a warning with the path and reason once, counting it) and keep batches full with the next videos. The default.</summary>
    Skip,

    /// <summary>Stop: the <see cref="VideoDecodeException"/> reaches the caller.</summary>
    Fail,
}
