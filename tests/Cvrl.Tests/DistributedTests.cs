using Cvrl.Distributed;
using Cvrl.Models;
using Cvrl.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Tests;

/// <summary>
/// The collective layer in one process: the default communicator loads nothing, the MPI one fails with a clear message
/// when no library is there, tensor collectives round-trip, and synchronised BatchNorm equals libtorch's batch norm on
/// the same batch. Two real processes are tested from the command line (tests/Cvrl.Cli.Tests, DistributedTests).
/// </summary>
[Collection("Torch")]
public sealed class DistributedTests
{
    [Fact]
    public void OneProcess_UsesTheSingleProcessCommunicator_AndLoadsNoMpiLibrary()
    {
        using var communicator = Communicators.FromEnvironment();
        Assert.Same(SingleProcessCommunicator.Instance, communicator);
        Assert.Equal((0, 1, 0, 1), (communicator.Rank, communicator.Size, communicator.LocalRank, communicator.LocalSize));
        Assert.Equal("cuda", communicator.DeviceFor("cuda"));
        Assert.DoesNotContain("libmpi", File.ReadAllText("/proc/self/maps"), StringComparison.Ordinal);

        float[] values = [1, -2, 3];
        communicator.AllReduce(values, ReduceOp.Sum);
        Assert.Equal([1f, -2f, 3f], values);
        float[] gathered = new float[3];
        communicator.AllGather(values, gathered);
        Assert.Equal(values, gathered);
    }

    [Fact]
    public void MissingMpiLibrary_FailsWithTheLibraryAndTheInstallCommand()
    {
        var e = Assert.Throws<DllNotFoundException>(() => MpiCommunicator.Initialize(new MpiOptions { Library = "libcvrl-no-such-mpi.so.12" }));
        Assert.Contains("libcvrl-no-such-mpi.so.12", e.Message, StringComparison.Ordinal);
        Assert.Contains("apt-get install mpich", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => new MpiOptions { CollectiveTimeout = TimeSpan.Zero }.Validate());
    }

    [Fact]
    public void TensorCollectives_InOneProcess_LeaveTensorsAsTheyAre()
    {
        using var scope = torch.NewDisposeScope();
        var communicator = SingleProcessCommunicator.Instance;
        var a = torch.arange(6, ScalarType.Float32).view(2, 3);
        var b = torch.ones(4, ScalarType.Float32);
        var before = new[] { a.clone(), b.clone() };
        communicator.AllReduce([a, b]);
        Assert.Equal(0, TorchAssert.MaxDiff(before[0], a));
        Assert.Equal(0, TorchAssert.MaxDiff(before[1], b));
        var gathered = communicator.AllGather(a);
        Assert.Equal(a.shape, gathered.shape);
        Assert.Equal(0, TorchAssert.MaxDiff(a, gathered));
    }

    /// <summary>
    /// The synchronised code in one process (the sum over processes is the identity) normalises exactly like libtorch's
    /// batch norm: same output, same gradients, same running statistics. Tolerances: the synchronised path accumulates
    /// the statistics in float64, libtorch in float32 over 2 x 3 x 4 x 4 = 96 values per channel of magnitude up to about
    /// 4, so the two may differ by a few float32 roundings of the result (relative 1e-5, absolute 1e-5).
    /// </summary>
    [Fact]
    public void SynchronisedBatchNorm_InOneProcess_EqualsLibtorchBatchNorm()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(3);
        var x = (torch.randn([2, 5, 3, 4, 4]) * 1.5) + 0.5;
        var upstream = torch.randn([2, 5, 3, 4, 4]);
        (Tensor Output, Tensor InputGrad, Tensor WeightGrad, Tensor BiasGrad, Tensor Mean, Tensor Var) Run(bool synchronised)
        {
            using var bn = new CvrlBatchNorm(5, dimensions: 5, momentum: 0.1);
            using (torch.no_grad())
            {
                bn.weight.copy_(torch.linspace(0.5, 1.5, 5));
                bn.bias.copy_(torch.linspace(-0.2, 0.2, 5));
            }

            Assert.Equal(1, SyncBatchNorm.Attach(synchronised ? SingleProcessCommunicator.Instance : null, bn));
            bn.train();
            var input = x.clone().requires_grad_(true);
            var y = bn.call(input);
            (y * upstream).sum().backward();
            return (y.detach(), input.grad!.clone(), bn.weight.grad!.clone(), bn.bias.grad!.clone(), bn.running_mean.clone(), bn.running_var.clone());
        }

        var native = Run(false);
        var synced = Run(true);
        TorchAssert.AllClose(native.Output, synced.Output, 1e-5, 1e-5);
        TorchAssert.AllClose(native.InputGrad, synced.InputGrad, 1e-5, 1e-5);
        TorchAssert.AllClose(native.WeightGrad, synced.WeightGrad, 1e-5, 1e-5);
        TorchAssert.AllClose(native.BiasGrad, synced.BiasGrad, 1e-5, 1e-5);
        TorchAssert.AllClose(native.Mean, synced.Mean, 1e-6, 1e-6);
        TorchAssert.AllClose(native.Var, synced.Var, 1e-6, 1e-6);
    }
}
