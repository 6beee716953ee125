namespace Cvrl.Training;

/// <summary>A progress report from <see cref="CvrlTrainer.Fit"/> (every <see cref="CvrlTrainerOptions.LogEverySteps"/> steps and at each epoch's end).</summary>
/// <param name="Epoch">The epoch (0-based).</param>
/// <param name="Step">Global steps done.</param>
/// <param name="StepInEpoch">Steps done in this epoch.</param>
/// <param name="StepsPerEpoch">Planned steps per epoch.</param>
/// <param name="TotalSteps">Planned steps in the run.</param>
/// <param name="Loss">The loss of the last step.</param>
/// <param name="ContrastiveAccuracy">Contrastive top-1 accuracy of the last step.</param>
/// <param name="Entropy">Softmax entropy of the last step (nats).</param>
/// <param name="LearningRate">The learning rate of the last step.</param>
/// <param name="ClipsPerSecond">Clips (two per video) processed per second since the previous report.</param>
/// <param name="DataWaitShare">Fraction of the time since the previous report spent waiting for data.</param>
/// <param name="Elapsed">Wall time since <see cref="CvrlTrainer.Fit"/> started.</param>
/// <param name="Remaining">Estimated time left.</param>
/// <param name="Timings">Average time per step since the previous report, split by phase.</param>
public sealed record TrainingProgress(
    int Epoch,
    long Step,
    int StepInEpoch,
    int StepsPerEpoch,
    long TotalSteps,
    double Loss,
    double ContrastiveAccuracy,
    double Entropy,
    double LearningRate,
    double ClipsPerSecond,
    double DataWaitShare,
    TimeSpan Elapsed,
    TimeSpan Remaining,
    StepTimings Timings);

/// <summary>Average seconds per step spent in each phase of a training step.</summary>
/// <param name="DataWait">Waiting for the loader's next batch.</param>
/// <param name="Forward">Moving the batch to the device, encoder, head and loss (including the loss value's read-back).</param>
/// <param name="Backward">Back-propagation (with gradient caching both passes run inside <paramref name="Forward"/>).</param>
/// <param name="Optimizer">The optimizer step.</param>
/// <param name="Communication">Collectives between processes (gathering embeddings, all-reducing gradients and BatchNorm statistics); 0 in one process.</param>
/// <param name="Other">Everything else the trainer does per step (bookkeeping, logging, metrics, heap guard, checkpoints).</param>
public sealed record StepTimings(double DataWait, double Forward, double Backward, double Optimizer, double Communication, double Other)
{
    /// <summary>The whole step.</summary>
    public double Total => DataWait + Forward + Backward + Optimizer + Communication + Other;
}

/// <summary>What <see cref="CvrlTrainer.EpochCompleted"/> reports.</summary>
/// <param name="Epoch">The epoch that ended (0-based).</param>
/// <param name="Step">Global steps done.</param>
/// <param name="Loss">The loss of its last step.</param>
/// <param name="ContrastiveAccuracy">The contrastive accuracy of its last step.</param>
/// <param name="Elapsed">How long the epoch took.</param>
public sealed record EpochSummary(int Epoch, long Step, double Loss, double ContrastiveAccuracy, TimeSpan Elapsed);

/// <summary>What <see cref="CvrlTrainer.CheckpointWritten"/> reports.</summary>
/// <param name="Path">The checkpoint file.</param>
/// <param name="Step">Global steps it holds.</param>
/// <param name="Epoch">The epoch the next step belongs to.</param>
public sealed record CheckpointInfo(string Path, long Step, int Epoch);

/// <summary>How a training run ended.</summary>
public enum TrainingOutcome
{
    /// <summary>Every planned epoch ran.</summary>
    Completed,

    /// <summary>Cancelled: the current step finished and a checkpoint was written.</summary>
    Cancelled,
}

/// <summary>What <see cref="CvrlTrainer.Fit"/> did.</summary>
public sealed record TrainingSummary
{
    /// <summary>How the run ended.</summary>
    public required TrainingOutcome Outcome { get; init; }

    /// <summary>True when cancelled.</summary>
    public bool Cancelled => Outcome == TrainingOutcome.Cancelled;

    /// <summary>Global steps done (including those before a resume).</summary>
    public required long Steps { get; init; }

    /// <summary>Steps run by this call.</summary>
    public required long StepsThisRun { get; init; }

    /// <summary>The step this call resumed from (0 for a fresh run).</summary>
    public required long ResumedFromStep { get; init; }

    /// <summary>Epochs fully completed.</summary>
    public required int EpochsCompleted { get; init; }

    /// <summary>The loss of every step this call ran, in order.</summary>
    public required IReadOnlyList<double> Losses { get; init; }

    /// <summary>The last step's loss (NaN when no step ran).</summary>
    public double FinalLoss => Losses.Count > 0 ? Losses[^1] : double.NaN;

    /// <summary>Videos skipped as undecodable (the count of <see cref="Skipped"/>).</summary>
    public int BadVideos => Skipped.Count;

    /// <summary>The videos skipped as undecodable, each once with the reason: those the index rejected, then those that failed while training.</summary>
    public required IReadOnlyList<Cvrl.Video.SkippedVideo> Skipped { get; init; }

    /// <summary>What decoding cost this call (samples, frames decoded, seeks): tells whether reads seek where they can.</summary>
    public Cvrl.Data.DecodingStatistics Decoding { get; init; } = new(0, 0, 0);

    /// <summary>The newest checkpoint, if any was written or loaded.</summary>
    public string? Checkpoint { get; init; }

    /// <summary>The element type the run computed in (<see cref="CvrlTrainerOptions.Precision"/> resolved for the device).</summary>
    public TorchSharp.torch.ScalarType ComputeType { get; init; } = TorchSharp.torch.ScalarType.Float32;

    /// <summary>Wall time of this call.</summary>
    public required TimeSpan Elapsed { get; init; }
}

/// <summary>Training stopped because the loss became NaN or infinite. The last good checkpoint is untouched.</summary>
public sealed class TrainingDivergedException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public TrainingDivergedException(long step, double loss, double learningRate, string? lastCheckpoint)
        : base($"Training diverged at step {step}: the loss is {loss} (learning rate {learningRate:G4}). The parameters were not updated with it; " +
               (lastCheckpoint is null ? "no checkpoint was written yet. " : $"the last good checkpoint is '{lastCheckpoint}'. ") +
               "Lower the learning rate, raise the temperature or check the input data.")
    {
        Step = step;
        Loss = loss;
        LastCheckpoint = lastCheckpoint;
    }

    /// <summary>Creates the exception (tooling).</summary>
    public TrainingDivergedException()
        : base("Training diverged.")
    {
    }

    /// <summary>Creates the exception (tooling).</summary>
    public TrainingDivergedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception (tooling).</summary>
    public TrainingDivergedException(string message, Exception inner)
        : base(message, inner)
    {
    }

    /// <summary>The step whose loss was not finite.</summary>
    public long Step { get; }

    /// <summary>The loss value.</summary>
    public double Loss { get; }

    /// <summary>The last good checkpoint, if any.</summary>
    public string? LastCheckpoint { get; }
}
