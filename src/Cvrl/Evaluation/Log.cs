using Microsoft.Extensions.Logging;

namespace Cvrl.Evaluation;

/// <summary>Source-generated log messages of the evaluation protocols.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 301, Level = LogLevel.Information, Message = "{Protocol}: {TrainVideos} training and {TestVideos} test videos, {Classes} classes")]
    public static partial void Start(ILogger logger, string protocol, int trainVideos, int testVideos, int classes);

    [LoggerMessage(EventId = 302, Level = LogLevel.Information, Message = "{Protocol}: epoch {Epoch} of {Epochs}, loss {Loss:F4}")]
    public static partial void Epoch(ILogger logger, string protocol, int epoch, int epochs, double loss);

    [LoggerMessage(EventId = 303, Level = LogLevel.Information, Message = "{Protocol}: top-1 {Top1:P1}, top-5 {Top5:P1} on {TestVideos} videos ({Elapsed})")]
    public static partial void Done(ILogger logger, string protocol, double top1, double top5, int testVideos, TimeSpan elapsed);

    [LoggerMessage(EventId = 304, Level = LogLevel.Warning, Message = "k = {K} exceeds the {TrainVideos} training videos; using k = {TrainVideos}")]
    public static partial void KnnClamped(ILogger logger, int k, int trainVideos);

    [LoggerMessage(EventId = 306, Level = LogLevel.Information, Message = "Encoder precision: {Reason}")]
    public static partial void Precision(ILogger logger, string reason);
}
