using System.Runtime.InteropServices;
using Cvrl.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Distributed;

/// <summary>
/// Synchronised batch normalisation: makes every <see cref="CvrlBatchNorm"/> of a network normalise with the statistics
/// of the whole global batch (every rank's samples), as the official pre-training does across its accelerators, with
/// the exact gradient (the per-channel sums are all-reduced in the forward pass and their gradients in the backward
/// pass).
/// </summary>
public static class SyncBatchNorm
{
    /// <summary>
    /// Connects every <see cref="CvrlBatchNorm"/> of <paramref name="modules"/> to <paramref name="communicator"/>
    /// (or disconnects them, with null: each layer then uses libtorch's own batch norm). With one rank the layers run
    /// the synchronised code with nothing to exchange: the statistics of the whole batch, accumulated in float64.
    /// </summary>
    /// <returns>The number of layers connected.</returns>
    public static int Attach(ICommunicator? communicator, params nn.Module[] modules)
    {
        ArgumentNullException.ThrowIfNull(modules);
        Func<Tensor, Tensor>? sum = communicator is null ? null : t => AllReduceSum(communicator, t);
        int count = 0;
        foreach (var bn in modules.SelectMany(m => m.modules().Prepend(m)).OfType<CvrlBatchNorm>().Distinct())
        {
            bn.CrossProcessSum = sum;
            count++;
        }

        return count;
    }

    /// <summary>
    /// The sum of <paramref name="local"/> over the ranks (float32 or float64, any shape), differentiable: the gradient
    /// of each rank's input is the sum over the ranks of the gradients of the output.
    /// </summary>
    /// <returns>A new tensor on the device of <paramref name="local"/>.</returns>
    public static Tensor AllReduceSum(ICommunicator communicator, Tensor local)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        ArgumentNullException.ThrowIfNull(local);
        return communicator.Size == 1 ? local.alias() : AllReduceFunction.apply(local, communicator);
    }

    /// <summary>All-reduces one tensor through host memory (float32 or float64); returns a new tensor.</summary>
    internal static Tensor HostAllReduce(ICommunicator communicator, Tensor t)
    {
        using var host = t.detach().cpu().contiguous().clone();
        if (host.dtype == ScalarType.Float64)
        {
            communicator.AllReduce(MemoryMarshal.Cast<byte, double>(host.bytes), ReduceOp.Sum);
        }
        else if (host.dtype == ScalarType.Float32)
        {
            communicator.AllReduce(MemoryMarshal.Cast<byte, float>(host.bytes), ReduceOp.Sum);
        }
        else
        {
            throw new ArgumentException($"All-reduce of {host.dtype} tensors is not supported (float32 or float64).", nameof(t));
        }

        return host.to(t.device);
    }

    private sealed class AllReduceFunction : torch.autograd.SingleTensorFunction<AllReduceFunction>
    {
        private const string Key = "communicator";

        public override string Name => "CvrlAllReduceSum";

        public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
        {
            var communicator = (ICommunicator)vars[1];
            ctx.save_data(Key, communicator);
            return HostAllReduce(communicator, (Tensor)vars[0]);
        }

        public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad_output)
        {
            var communicator = (ICommunicator)ctx.get_data(Key);
            // One gradient per argument of forward: the tensor's, and none for the communicator.
            return [HostAllReduce(communicator, grad_output), null!];
        }
    }
}
