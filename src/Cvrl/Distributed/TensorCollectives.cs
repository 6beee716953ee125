using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Distributed;

/// <summary>
/// Collectives on tensors. Each call moves all its tensors through one contiguous host buffer (kept per communicator
/// and reused), so that many gradients make one all-reduce (the bucketing idea of Horovod and PyTorch's DDP) instead
/// of one call per parameter. Tensors may live on any device; they are copied to the host and back.
/// </summary>
public static class TensorCollectives
{
    private static readonly ConditionalWeakTable<ICommunicator, Buffers> Cache = [];

    /// <summary>The most a bucket of <see cref="AllReduce"/> holds: 64 Mi float32 values (256 MiB).</summary>
    public const int BucketValues = 64 << 20;

    /// <summary>
    /// Replaces every tensor with the element-wise sum (or, with <paramref name="average"/>, the mean) over the ranks.
    /// The tensors are packed in order into buckets of up to <see cref="BucketValues"/> values, one all-reduce per
    /// bucket (R3D-50's 31.7M gradients make one). Float32 tensors only.
    /// </summary>
    /// <param name="communicator">The job.</param>
    /// <param name="tensors">The tensors (for example every parameter's gradient); modified in place.</param>
    /// <param name="average">Divide by the number of ranks after summing.</param>
    /// <returns>The number of bytes all-reduced.</returns>
    /// <exception cref="ArgumentException">A tensor is not float32, or holds more than <see cref="BucketValues"/> values.</exception>
    public static long AllReduce(this ICommunicator communicator, IReadOnlyList<Tensor> tensors, bool average = false)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        ArgumentNullException.ThrowIfNull(tensors);
        if (tensors.Any(t => t.dtype != ScalarType.Float32 || t.numel() > BucketValues))
        {
            throw new ArgumentException($"AllReduce takes float32 tensors of at most {BucketValues} values.", nameof(tensors));
        }

        long total = tensors.Sum(t => t.numel());
        if (communicator.Size == 1 || total == 0)
        {
            return total * sizeof(float);
        }

        var buffer = Cache.GetOrCreateValue(communicator).Floats(Math.Min(total, BucketValues));
        int start = 0;
        while (start < tensors.Count)
        {
            int end = start;
            long values = 0;
            while (end < tensors.Count && values + tensors[end].numel() <= BucketValues)
            {
                values += tensors[end++].numel();
            }

            var bucket = tensors.Skip(start).Take(end - start).ToList();
            var span = buffer.AsSpan(0, (int)values);
            Flatten(bucket, MemoryMarshal.AsBytes(span));
            communicator.AllReduce(span, ReduceOp.Sum);
            if (average)
            {
                float scale = 1f / communicator.Size;
                for (int i = 0; i < span.Length; i++)
                {
                    span[i] *= scale;
                }
            }

            Unflatten(MemoryMarshal.AsBytes(span), bucket);
            start = end;
        }

        return total * sizeof(float);
    }

    /// <summary>Copies every tensor of rank <paramref name="root"/> into the same tensors of every rank (any dtypes), in one broadcast.</summary>
    /// <param name="communicator">The job.</param>
    /// <param name="tensors">The tensors, the same shapes and dtypes on every rank (for example a module's parameters and buffers).</param>
    /// <param name="root">The rank whose values win.</param>
    public static void Broadcast(this ICommunicator communicator, IReadOnlyList<Tensor> tensors, int root = 0)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        ArgumentNullException.ThrowIfNull(tensors);
        long bytes = tensors.Sum(t => t.numel() * t.ElementSize);
        if (communicator.Size == 1 || bytes == 0)
        {
            return;
        }

        var buffer = Cache.GetOrCreateValue(communicator).Bytes(bytes);
        Flatten(tensors, buffer.AsSpan(0, (int)bytes));
        communicator.Broadcast(buffer.AsSpan(0, (int)bytes), root);
        Unflatten(buffer.AsSpan(0, (int)bytes), tensors);
    }

    /// <summary>Copies a module's parameters and buffers from rank <paramref name="root"/> to every rank.</summary>
    public static void Broadcast(this ICommunicator communicator, nn.Module module, int root = 0)
    {
        ArgumentNullException.ThrowIfNull(module);
        using var noGrad = torch.no_grad();
        communicator.Broadcast([.. module.state_dict().OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Value)], root);
    }

    /// <summary>
    /// Concatenates every rank's <paramref name="local"/> (float32, the same shape on every rank) along dimension 0, rank
    /// 0's first: <c>[Size x n, ...]</c> on the device of <paramref name="local"/>. Not differentiable.
    /// </summary>
    /// <returns>A new tensor owned by the caller.</returns>
    public static Tensor AllGather(this ICommunicator communicator, Tensor local)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        ArgumentNullException.ThrowIfNull(local);
        if (local.dtype != ScalarType.Float32)
        {
            throw new ArgumentException("AllGather takes a float32 tensor.", nameof(local));
        }

        using var scope = torch.NewDisposeScope();
        var host = local.detach().cpu().contiguous();
        long[] shape = [.. local.shape];
        shape[0] *= communicator.Size;
        var gathered = torch.empty(shape, ScalarType.Float32);
        communicator.AllGather(MemoryMarshal.Cast<byte, float>(host.bytes), MemoryMarshal.Cast<byte, float>(gathered.bytes));
        return gathered.to(local.device).MoveToOuterDisposeScope();
    }

    private static void Flatten(IReadOnlyList<Tensor> tensors, Span<byte> destination)
    {
        int offset = 0;
        foreach (var t in tensors)
        {
            using var host = t.detach().cpu().contiguous();
            var bytes = host.bytes;
            bytes.CopyTo(destination[offset..]);
            offset += bytes.Length;
        }
    }

    private static void Unflatten(ReadOnlySpan<byte> source, IReadOnlyList<Tensor> tensors)
    {
        using var noGrad = torch.no_grad();
        int offset = 0;
        foreach (var t in tensors)
        {
            int length = (int)(t.numel() * t.ElementSize);
            if (t.device_type == DeviceType.CPU && t.is_contiguous())
            {
                source.Slice(offset, length).CopyTo(t.bytes);
            }
            else
            {
                using var host = torch.empty(t.shape, t.dtype);
                source.Slice(offset, length).CopyTo(host.bytes);
                t.copy_(host);
            }

            offset += length;
        }
    }

    /// <summary>Host buffers kept per communicator, grown as needed (one all-reduce of a 127 MB model reuses them).</summary>
    private sealed class Buffers
    {
        private float[] _floats = [];
        private byte[] _bytes = [];

        public float[] Floats(long count)
        {
            Check(count, sizeof(float));
            if (_floats.Length < count)
            {
                _floats = GC.AllocateUninitializedArray<float>((int)count, pinned: true);
            }

            return _floats;
        }

        public byte[] Bytes(long count)
        {
            Check(count, 1);
            if (_bytes.Length < count)
            {
                _bytes = GC.AllocateUninitializedArray<byte>((int)count, pinned: true);
            }

            return _bytes;
        }

        private static void Check(long count, int elementSize)
        {
            if (count * elementSize > int.MaxValue)
            {
                throw new NotSupportedException($"One collective moves at most {int.MaxValue} bytes; split the tensors ({count * elementSize} bytes).");
            }
        }
    }
}
