using Cvrl.Distributed;
using Cvrl.Losses;
using static TorchSharp.torch;

namespace Cvrl.Training;

/// <summary>
/// NT-Xent over the global batch of a data-parallel job, with the official semantics: every clip's negatives are the
/// other 2N - 2 clips of all ranks. Each rank gathers every rank's embeddings (rank order, so the global batch is laid
/// out as one process would hold it), computes the loss of the whole batch and its gradient with respect to every
/// embedding, and keeps the rows of its own clips: back-propagating them through its own network and summing the
/// parameter gradients across ranks gives exactly the gradient of the global loss.
/// </summary>
internal static class GlobalBatch
{
    /// <summary>The global loss (the same on every rank) and the gradients of this rank's view-1 and view-2 embeddings.</summary>
    /// <param name="communicator">The job (one rank: the batch is already global).</param>
    /// <param name="loss">The loss.</param>
    /// <param name="localView1">This rank's view-1 embeddings <c>[n, D]</c> (their graph is not used).</param>
    /// <param name="localView2">This rank's view-2 embeddings <c>[n, D]</c>.</param>
    /// <returns>The loss output (detached), and <c>[n, D]</c> gradients in the current dispose scope.</returns>
    public static (NtXentOutput Output, Tensor Gradient1, Tensor Gradient2) LossAndLocalGradients(ICommunicator communicator, NtXentLoss loss, Tensor localView1, Tensor localView2)
    {
        long n = localView1.shape[0];
        var z1 = communicator.AllGather(localView1.detach().contiguous()).requires_grad_(true);
        var z2 = communicator.AllGather(localView2.detach().contiguous()).requires_grad_(true);
        var output = loss.Compute(z1, z2);
        output.Loss.backward();
        long start = communicator.Rank * n;
        return (new NtXentOutput(output.Loss.detach(), output.Accuracy, output.Entropy), z1.grad!.narrow(0, start, n), z2.grad!.narrow(0, start, n));
    }
}
