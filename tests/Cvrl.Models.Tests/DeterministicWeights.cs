using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Models.Tests;

/// <summary>The weight and input formula of Fixtures/make_fixtures.py, evaluated in C#.</summary>
internal static class DeterministicWeights
{
    public static void Fill(nn.Module module)
    {
        using var noGrad = torch.no_grad();
        foreach (var (name, tensor) in module.state_dict())
        {
            if (name.EndsWith("num_batches_tracked", StringComparison.Ordinal))
            {
                tensor.zero_();
                continue;
            }

            using var value = Value(name, tensor.shape, Kind(name, tensor));
            tensor.copy_(value);
        }
    }

    public static Tensor Value(string name, long[] shape, string kind)
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        long fanIn = shape.Skip(1).Aggregate(1L, (a, b) => a * b);
        double phase = (name.Sum(c => (int)c) % 1000) / 100.0;
        var values = new float[n];
        for (long i = 0; i < n; i++)
        {
            double s = Math.Sin((i * 0.7) + phase);
            values[i] = (float)(kind switch
            {
                "conv" => Math.Sqrt(2.0 / fanIn) * s,
                "linear" => Math.Sqrt(1.0 / fanIn) * s,
                "bias" => 0.01 * s,
                "bn_weight" => 1.0 + (0.1 * s),
                "bn_bias" => 0.1 * s,
                "running_mean" => 0.1 * s,
                _ => 1.0 + (0.25 * (1.0 + s)),
            });
        }

        return torch.tensor(values).reshape(shape);
    }

    public static Tensor Input(params long[] shape)
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        var values = new float[n];
        for (long i = 0; i < n; i++)
        {
            values[i] = (float)Math.Sin((i * 0.013) + 0.3);
        }

        return torch.tensor(values).reshape(shape);
    }

    private static string Kind(string name, Tensor t)
    {
        if (name.EndsWith("running_mean", StringComparison.Ordinal))
        {
            return "running_mean";
        }

        if (name.EndsWith("running_var", StringComparison.Ordinal))
        {
            return "running_var";
        }

        return t.dim() switch
        {
            5 => "conv",
            2 => "linear",
            _ when name.StartsWith("fc.", StringComparison.Ordinal) && name.EndsWith("bias", StringComparison.Ordinal) => "bias",
            _ => name.EndsWith("weight", StringComparison.Ordinal) ? "bn_weight" : "bn_bias",
        };
    }
}
