using System.Globalization;
using System.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Cvrl.Models;

/// <summary>One layer of a <see cref="ModelSummary"/>.</summary>
/// <param name="Name">The layer's state-dict path, e.g. "layer3.0.conv1.0".</param>
/// <param name="Type">The layer type, e.g. "Conv3d".</param>
/// <param name="OutputShape">The output shape for the summarised input.</param>
/// <param name="Parameters">Parameters the layer itself owns.</param>
/// <param name="Macs">Multiply-accumulates (convolutions and linear layers; 0 for BatchNorm, ReLU and pooling).</param>
public sealed record LayerSummary(string Name, string Type, IReadOnlyList<long> OutputShape, long Parameters, long Macs);

/// <summary>
/// A torchinfo-like summary: per layer the output shape, parameters and multiply-accumulates for a given input, and
/// totals. MACs count convolutions (<c>output elements x input channels / groups x kernel volume</c>) and linear layers;
/// BatchNorm, ReLU and pooling are not counted, as in the usual convention (CVRL's R3D-50 at 16 x 224 x 224: about 45.5 G).
/// </summary>
public sealed class ModelSummary
{
    private ModelSummary(IReadOnlyList<LayerSummary> layers, long totalParameters, long trainableParameters, IReadOnlyList<long> inputShape, IReadOnlyList<long> outputShape)
    {
        Layers = layers;
        TotalParameters = totalParameters;
        TrainableParameters = trainableParameters;
        InputShape = inputShape;
        OutputShape = outputShape;
    }

    /// <summary>The layers that ran, in execution order.</summary>
    public IReadOnlyList<LayerSummary> Layers { get; }

    /// <summary>All parameters of the model.</summary>
    public long TotalParameters { get; }

    /// <summary>Parameters that require gradients.</summary>
    public long TrainableParameters { get; }

    /// <summary>Total multiply-accumulates for the input.</summary>
    public long TotalMacs => Layers.Sum(l => l.Macs);

    /// <summary>The summarised input shape.</summary>
    public IReadOnlyList<long> InputShape { get; }

    /// <summary>The model's output shape.</summary>
    public IReadOnlyList<long> OutputShape { get; }

    /// <summary>
    /// Runs one forward pass on zeros of <paramref name="inputShape"/> (in eval mode, without gradients, on the model's
    /// device) and records every leaf layer.
    /// </summary>
    /// <param name="model">The model (left in the training mode it was in).</param>
    /// <param name="inputShape">The input shape including the batch, e.g. [1, 3, 16, 224, 224].</param>
    /// <exception cref="ArgumentException">The model rejects the input.</exception>
    public static ModelSummary Create(nn.Module<Tensor, Tensor> model, params long[] inputShape)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputShape);
        var parameters = model.parameters().ToList();
        var device = parameters.Count > 0 ? parameters[0].device : torch.CPU;
        var leaves = model.named_modules().Where(m => !m.module.children().Any()).ToList();
        var rows = new List<LayerSummary>();
        var hooks = new List<Action>();
        foreach (var (name, module) in leaves)
        {
            if (module is nn.Module<Tensor, Tensor> layer)
            {
                var remover = layer.register_forward_hook((m, input, output) =>
                {
                    rows.Add(new LayerSummary(name, m.GetType().Name, output.shape, m.parameters(recurse: false).Sum(p => p.numel()), Macs(m, input, output)));
                    return output;
                });
                hooks.Add(remover.remove);
            }
        }

        bool wasTraining = model.training;
        try
        {
            model.eval();
            using var noGrad = torch.no_grad();
            using var scope = torch.NewDisposeScope();
            var input = torch.zeros(inputShape, device: device);
            var output = model.call(input);
            return new ModelSummary(rows, parameters.Sum(p => p.numel()), parameters.Where(p => p.requires_grad).Sum(p => p.numel()), inputShape, output.shape);
        }
        finally
        {
            foreach (var remove in hooks)
            {
                remove();
            }

            model.train(wasTraining);
        }
    }

    /// <summary>A table: name, type, output shape, parameters, MACs; then the totals.</summary>
    public override string ToString()
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        int nameWidth = Math.Max(10, Layers.Count == 0 ? 0 : Layers.Max(l => l.Name.Length));
        sb.AppendLine(ci, $"{"layer".PadRight(nameWidth)}  {"type",-12} {"output",-24} {"params",12} {"MACs",16}");
        foreach (var l in Layers)
        {
            sb.AppendLine(ci, $"{l.Name.PadRight(nameWidth)}  {l.Type,-12} {"[" + string.Join(", ", l.OutputShape) + "]",-24} {l.Parameters,12:N0} {l.Macs,16:N0}");
        }

        sb.AppendLine(ci, $"input [{string.Join(", ", InputShape)}] -> output [{string.Join(", ", OutputShape)}]");
        sb.AppendLine(ci, $"parameters: {TotalParameters:N0} ({TrainableParameters:N0} trainable, {TotalParameters * 4 / 1048576.0:0.0} MiB as float32)");
        sb.Append(ci, $"multiply-accumulates: {TotalMacs:N0} ({TotalMacs / 1e9:0.00} G)");
        return sb.ToString();
    }

    private static long Macs(nn.Module module, Tensor input, Tensor output) => module switch
    {
        Conv3d c => output.numel() * (input.shape[1] / c.groups) * c.weight!.shape[2] * c.weight.shape[3] * c.weight.shape[4],
        PointwiseConv3d p => output.numel() * p.weight.shape[1],
        Conv2d c => output.numel() * (input.shape[1] / c.groups) * c.weight!.shape[2] * c.weight.shape[3],
        Linear l => output.numel() * l.weight!.shape[1],
        _ => 0,
    };
}
