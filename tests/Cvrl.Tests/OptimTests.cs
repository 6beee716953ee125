using Cvrl.Optim;
using Cvrl.Testing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Cvrl.Tests;

[Collection("Torch")]
public sealed class OptimTests
{
    private static (Parameter Kernel, Parameter Bias) Params()
    {
        var kernel = new Parameter(torch.tensor(new float[] { 1, -2, 3, 0.5f }).reshape(2, 2));
        var bias = new Parameter(torch.tensor(new float[] { 0.5f, -1 }));
        return (kernel, bias);
    }

    [Fact]
    public void Sgd_FollowsTheOfficialKerasUpdate_AndDecaysKernelsOnly()
    {
        var (w, b) = Params();
        using var opt = new MomentumSgd([("w", w), ("b", b)], new CvrlOptimizerOptions { Momentum = 0.9, WeightDecay = 0.01 });
        Assert.True(opt.Parameters[0].IsKernel);
        Assert.False(opt.Parameters[1].IsKernel);
        float[] w0 = w.data<float>().ToArray(), b0 = b.data<float>().ToArray();
        float[] g = [0.1f, 0.2f, -0.3f, 0.4f];
        float[] gb = [1f, -1f];
        w.grad = torch.tensor(g).reshape(2, 2);
        b.grad = torch.tensor(gb);
        opt.LearningRate = 0.5;
        opt.Step();
        // v = -lr (g + wd w); w += v.  Bias: v = -lr g.
        var v = w0.Select((x, i) => -0.5 * (g[i] + (0.01 * x))).ToArray();
        var vb = gb.Select(x => -0.5 * x).ToArray();
        Assert.Equal(w0.Select((x, i) => (float)(x + v[i])), w.data<float>().ToArray(), new Tolerance(1e-6));
        Assert.Equal(b0.Select((x, i) => (float)(x + vb[i])), b.data<float>().ToArray(), new Tolerance(1e-6));

        // Second step with a new learning rate: v = m v - lr (g + wd w).
        float[] w1 = w.data<float>().ToArray();
        opt.LearningRate = 0.1;
        opt.Step();
        var v2 = w1.Select((x, i) => (0.9 * v[i]) - (0.1 * (g[i] + (0.01 * x)))).ToArray();
        Assert.Equal(w1.Select((x, i) => (float)(x + v2[i])), w.data<float>().ToArray(), new Tolerance(1e-6));
    }

    [Fact]
    public void Lars_ScalesKernelStepsByTheTrustRatio_NotBiases()
    {
        var (w, b) = Params();
        using var opt = new Lars([("w", w), ("b", b)], new CvrlOptimizerOptions { Momentum = 0.9, WeightDecay = 0.01, TrustCoefficient = 0.001 });
        float[] w0 = w.data<float>().ToArray(), b0 = b.data<float>().ToArray();
        float[] g = [0.1f, 0.2f, -0.3f, 0.4f];
        w.grad = torch.tensor(g).reshape(2, 2);
        b.grad = torch.tensor(new float[] { 1f, -1f });
        opt.LearningRate = 0.5;
        opt.Step();
        var d = w0.Select((x, i) => g[i] + (0.01 * x)).ToArray();
        double ratio = 0.001 * Math.Sqrt(w0.Sum(x => x * x)) / Math.Sqrt(d.Sum(x => x * x));
        Assert.Equal(w0.Select((x, i) => (float)(x - (0.5 * ratio * d[i]))), w.data<float>().ToArray(), new Tolerance(1e-6));
        Assert.Equal(new[] { b0[0] - 0.5f, b0[1] + 0.5f }, b.data<float>().ToArray(), new Tolerance(1e-6));
    }

    [Fact]
    public void Optimizer_StateRoundTrips_AndSkipsFrozenParameters()
    {
        var (w, b) = Params();
        b.requires_grad = false;
        using var opt = new MomentumSgd([("w", w), ("b", b)]);
        Assert.Single(opt.Parameters);
        w.grad = torch.ones(2, 2);
        opt.LearningRate = 0.1;
        opt.Step();
        var state = opt.State().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        Assert.Equal(new[] { "momentum.w" }, state.Keys);
        using var other = new MomentumSgd([("w", w)]);
        other.LoadState(state);
        Assert.Equal(state["momentum.w"].data<float>().ToArray(), other.State()["momentum.w"].data<float>().ToArray());
        Assert.Throws<InvalidDataException>(() => other.LoadState(new Dictionary<string, Tensor>()));
        opt.ZeroGrad();
        Assert.Null(w.grad);
    }

    [Fact]
    public void AdamW_MatchesTorchsOwnAdamW_DecayingKernelsOnly()
    {
        // Reference: TorchSharp's torch.optim.AdamW (libtorch's implementation), with weight decay for the kernel and
        // none for the bias, over five steps of changing gradients and learning rates.
        var g = new Generator(8);
        var w0 = torch.randn(new long[] { 3, 4 }, generator: g);
        var b0 = torch.randn(new long[] { 4 }, generator: g);
        var (w, b) = (new Parameter(w0.clone()), new Parameter(b0.clone()));
        var (rw, rb) = (new Parameter(w0.clone()), new Parameter(b0.clone()));
        var options = new CvrlOptimizerOptions { Kind = OptimizerKind.AdamW, WeightDecay = 0.05, Beta1 = 0.8, Beta2 = 0.99, Epsilon = 1e-6 };
        using var ours = CvrlOptimizer.Create([("w", w), ("b", b)], options);
        Assert.IsType<AdamWOptimizer>(ours);
        var refW = torch.optim.AdamW([rw], lr: 0.1, beta1: 0.8, beta2: 0.99, eps: 1e-6, weight_decay: 0.05);
        var refB = torch.optim.AdamW([rb], lr: 0.1, beta1: 0.8, beta2: 0.99, eps: 1e-6, weight_decay: 0);
        for (int step = 0; step < 5; step++)
        {
            double lr = 0.1 / (step + 1);
            var gw = torch.randn(new long[] { 3, 4 }, generator: g);
            var gb = torch.randn(new long[] { 4 }, generator: g);
            (w.grad, b.grad, rw.grad, rb.grad) = (gw.clone(), gb.clone(), gw.clone(), gb.clone());
            ours.LearningRate = lr;
            ours.Step();
            foreach (var group in refW.ParamGroups.Concat(refB.ParamGroups))
            {
                group.LearningRate = lr;
            }

            refW.step();
            refB.step();
        }

        // float32 element-wise updates: a few ulps of the weights.
        TorchAssert.AllClose(rw, w, 1e-5, 1e-6);
        TorchAssert.AllClose(rb, b, 1e-5, 1e-6);
        Assert.Equal(5, ours.UpdateCount);

        var state = ours.State().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        Assert.Equal(["exp_avg.b", "exp_avg.w", "exp_avg_sq.b", "exp_avg_sq.w", "step"], state.Keys.Order(StringComparer.Ordinal));
        using var restored = new AdamWOptimizer([("w", new Parameter(w0.clone())), ("b", new Parameter(b0.clone()))], options);
        restored.LoadState(state);
        Assert.Equal(5, restored.UpdateCount);
        var withoutStep = state.Where(kv => kv.Key != "step").ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Throws<InvalidDataException>(() => restored.LoadState(withoutStep));
    }

    [Fact]
    public void Schedule_WarmupThenCosine_AsTheSpecWritesIt()
    {
        var s = new WarmupCosineSchedule(1.0, 10, 100);
        double cosAt10 = 0.5 * (1 + Math.Cos(Math.PI * 10 / 100));
        Assert.Equal(0, s.At(0));
        TorchAssert.Near(0.5 * cosAt10, s.At(5), 1e-12, 1e-15); // double arithmetic
        TorchAssert.Near(cosAt10, s.At(10), 1e-12, 1e-15);
        TorchAssert.Near(0.5, s.At(50), 1e-12, 1e-15);
        TorchAssert.Near(0, s.At(100), 0, 1e-15);
        TorchAssert.Near(0, s.At(150), 0, 1e-15);
        Assert.True(s.At(9) < s.At(10) && s.At(11) < s.At(10));
        Assert.Throws<ArgumentOutOfRangeException>(() => new WarmupCosineSchedule(1, 200, 100));
        Assert.Throws<ArgumentOutOfRangeException>(() => new WarmupCosineSchedule(-1, 0, 100));
    }

    [Fact]
    public void OptimizerOptions_AreValidated()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new CvrlOptimizerOptions { Momentum = 1 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new CvrlOptimizerOptions { WeightDecay = -1 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new CvrlOptimizerOptions { TrustCoefficient = 0 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new CvrlOptimizerOptions { Beta1 = 1 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new CvrlOptimizerOptions { Beta2 = -0.1 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new CvrlOptimizerOptions { Epsilon = 0 }.Validate());
    }

    private sealed class Tolerance(double tolerance) : IEqualityComparer<float>
    {
        public bool Equals(float x, float y) => Math.Abs(x - y) <= tolerance;

        public int GetHashCode(float obj) => 0;
    }
}
