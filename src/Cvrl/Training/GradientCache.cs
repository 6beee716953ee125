using Cvrl.Losses;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Training;

/// <summary>
/// Gradient caching for contrastive losses (Gao et al., "Scaling Deep Contrastive Learning Batch Size under Memory
/// Limited Setup", 2021): the batch is embedded in chunks without keeping activations, the loss and its gradient with
/// respect to the embeddings are computed over the whole batch, then every chunk is embedded again with gradients and
/// back-propagated with its share of the embedding gradient. Peak activation memory is that of one chunk, and the
/// parameter gradients equal the whole-batch ones.
/// </summary>
/// <remarks>
/// <para>
/// Plain gradient accumulation is not equivalent for NT-Xent: the loss of one chunk would only see that chunk's
/// negatives. Gradient caching keeps every video of the batch as a negative for every other.
/// </para>
/// <para>
/// BatchNorm in training mode normalises each chunk with its own statistics (as separate devices without synchronised
/// BatchNorm would); the gradients are exact for that forward pass. The first, gradient-free pass does not update the
/// running statistics (they are restored), so each chunk updates them once, in the second pass.
/// </para>
/// </remarks>
public sealed class GradientCache
{
    /// <summary>Creates the cache.</summary>
    /// <param name="chunkSize">Videos per chunk (each chunk carries both views: 2 x chunkSize clips).</param>
    /// <exception cref="ArgumentOutOfRangeException">The chunk size is not positive.</exception>
    public GradientCache(int chunkSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chunkSize);
        ChunkSize = chunkSize;
    }

    /// <summary>Videos per chunk.</summary>
    public int ChunkSize { get; }

    /// <summary>
    /// Computes the loss over the whole batch and accumulates the parameter gradients into <c>.grad</c>.
    /// </summary>
    /// <param name="embed">Maps a batch of clips <c>[M, C, T, H, W]</c> to embeddings <c>[M, D]</c> (encoder then head).</param>
    /// <param name="view1">View 1 of the batch <c>[N, C, T, H, W]</c>.</param>
    /// <param name="view2">View 2 of the batch.</param>
    /// <param name="loss">The loss.</param>
    /// <param name="modules">The modules whose BatchNorm running statistics the first pass must not change.</param>
    /// <param name="communicator">
    /// With several ranks, <paramref name="view1"/> and <paramref name="view2"/> are this rank's slice of the global batch:
    /// the loss is taken over every rank's embeddings (<c>GlobalBatch</c>) and this rank back-propagates its own share.
    /// Null for one process.
    /// </param>
    /// <returns>The loss over the (global) batch (no longer differentiable), accuracy and entropy; the caller owns them.</returns>
    public NtXentOutput ForwardBackward(Func<Tensor, Tensor> embed, Tensor view1, Tensor view2, NtXentLoss loss, IEnumerable<nn.Module> modules, Distributed.ICommunicator? communicator = null)
    {
        ArgumentNullException.ThrowIfNull(embed);
        ArgumentNullException.ThrowIfNull(view1);
        ArgumentNullException.ThrowIfNull(view2);
        ArgumentNullException.ThrowIfNull(loss);
        ArgumentNullException.ThrowIfNull(modules);
        long n = view1.shape[0];
        var chunks = new List<(long Start, long Length)>();
        for (long start = 0; start < n; start += ChunkSize)
        {
            chunks.Add((start, Math.Min(ChunkSize, n - start)));
        }

        using var scope = torch.NewDisposeScope();
        var buffers = modules.SelectMany(m => m.buffers()).ToList();

        // Pass 1: embeddings without activations; running statistics restored afterwards.
        var saved = buffers.Select(b => b.clone()).ToList();
        var z1Parts = new List<Tensor>();
        var z2Parts = new List<Tensor>();
        using (torch.no_grad())
        {
            foreach (var (start, length) in chunks)
            {
                using var chunkScope = torch.NewDisposeScope();
                var z = embed(torch.cat([view1.narrow(0, start, length), view2.narrow(0, start, length)], 0));
                z1Parts.Add(z.narrow(0, 0, length).clone().MoveToOuterDisposeScope());
                z2Parts.Add(z.narrow(0, length, length).clone().MoveToOuterDisposeScope());
            }

            for (int i = 0; i < buffers.Count; i++)
            {
                buffers[i].copy_(saved[i]);
            }
        }

        // The loss over the whole (global) batch, and its gradient with respect to this rank's embeddings.
        var (output, g1, g2) = GlobalBatch.LossAndLocalGradients(communicator ?? Distributed.SingleProcessCommunicator.Instance, loss, torch.cat(z1Parts, 0), torch.cat(z2Parts, 0));

        // Pass 2: each chunk again, back-propagating its share of the embedding gradient into the parameters.
        foreach (var (start, length) in chunks)
        {
            using var chunkScope = torch.NewDisposeScope();
            var z = embed(torch.cat([view1.narrow(0, start, length), view2.narrow(0, start, length)], 0));
            var g = torch.cat([g1.narrow(0, start, length), g2.narrow(0, start, length)], 0);
            (z * g).sum().backward();
        }

        var detached = new NtXentOutput(output.Loss.MoveToOuterDisposeScope(), output.Accuracy.MoveToOuterDisposeScope(), output.Entropy.MoveToOuterDisposeScope());
        return detached;
    }
}
