using Microsoft.Extensions.Logging;

namespace Cvrl.Training;

/// <summary>The trainer's source-generated log messages.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Training {Videos} videos for {Epochs} epochs ({TotalSteps} steps of {BatchSize} videos) on {Device}, learning rate {LearningRate:G4}")]
    public static partial void Start(ILogger logger, int videos, int epochs, long totalSteps, int batchSize, string device, double learningRate);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Resumed from {Checkpoint} at step {Step} (epoch {Epoch}, batch {Batch})")]
    public static partial void Resumed(ILogger logger, string checkpoint, long step, int epoch, int batch);

    [LoggerMessage(EventId = 102, Level = LogLevel.Debug, Message = "Step {Step}: loss {Loss:F4}, accuracy {Accuracy:P1}, lr {LearningRate:G4}, {ClipsPerSecond:F1} clips/s, data wait {DataWait:P0}")]
    public static partial void Step(ILogger logger, long step, double loss, double accuracy, double learningRate, double clipsPerSecond, double dataWait);

    [LoggerMessage(EventId = 103, Level = LogLevel.Information, Message = "Epoch {Epoch} done: loss {Loss:F4}, accuracy {Accuracy:P1}, {Elapsed}")]
    public static partial void EpochDone(ILogger logger, int epoch, double loss, double accuracy, TimeSpan elapsed);

    [LoggerMessage(EventId = 104, Level = LogLevel.Information, Message = "Checkpoint written: {Path}")]
    public static partial void Checkpoint(ILogger logger, string path);

    [LoggerMessage(EventId = 105, Level = LogLevel.Warning, Message = "Passing over checkpoint {Path}: {Reason}")]
    public static partial void BadCheckpoint(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 112, Level = LogLevel.Information, Message = "Precision: {Reason}")]
    public static partial void Precision(ILogger logger, string reason);

    [LoggerMessage(EventId = 110, Level = LogLevel.Warning, Message = "Resuming from {Path}, the newest intact checkpoint ({Damaged} newer one(s) damaged and set aside)")]
    public static partial void ResumingFromOlder(ILogger logger, string path, int damaged);

    [LoggerMessage(EventId = 111, Level = LogLevel.Warning, Message = "Checkpoint {Path} has no checksum (written by an older Cvrl): loaded unverified")]
    public static partial void UnverifiedCheckpoint(ILogger logger, string path);

    [LoggerMessage(EventId = 106, Level = LogLevel.Information, Message = "Training cancelled at step {Step}")]
    public static partial void Cancelled(ILogger logger, long step);

    [LoggerMessage(EventId = 107, Level = LogLevel.Error, Message = "Training diverged at step {Step}: loss {Loss}")]
    public static partial void Diverged(ILogger logger, long step, double loss);

    [LoggerMessage(EventId = 108, Level = LogLevel.Debug, Message = "Returned fragmented native heap to the system at step {Step} (resident {ResidentMiB:F0} MiB)")]
    public static partial void HeapTrimmed(ILogger logger, long step, double residentMiB);
}
