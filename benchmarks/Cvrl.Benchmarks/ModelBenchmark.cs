using System.Diagnostics;
using System.Globalization;
using Cvrl.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Cvrl.Benchmarks;

/// <summary>
/// Issue 4's benchmark: one training step (forward, backward, SGD) of R3D-50 on a [4, 3, 16, 112, 112] batch on 2
/// threads, Cvrl next to the same model in Debian's PyTorch 1.13 in the same run; each configuration in a fresh
/// process so that peak resident memory belongs to it alone.
/// </summary>
internal static class ModelBenchmark
{
    public static int Run(string[] args)
    {
        int repeats = AugmentBenchmark.Option(args, "--repeats", 2);
        int steps = AugmentBenchmark.Option(args, "--steps", 3);
        bool wide = !args.Contains("--no-wide");
        var ci = CultureInfo.InvariantCulture;
        string common = $"--batch 4 --frames 16 --size 112 --threads 2 --steps {steps}";
        var rows = new List<(string Name, string Cvrl, string PyTorch)>();

        (double Seconds, double Mib) Median(List<(double, double)> runs) =>
            (Machine.Median(runs.Select(r => r.Item1)), Machine.Median(runs.Select(r => r.Item2)));

        foreach (var (label, mode, cvrlExtra, pyExtra) in new[]
        {
            ("R3D-50 1x, training step (each side's default layout)", "train", string.Empty, string.Empty),
            ("R3D-50 1x, training step, both channels-last-3d", "train", string.Empty, " --channels-last"),
            ("R3D-50 1x, training step, both contiguous (NCDHW)", "train", " --contiguous", string.Empty),
            ("R3D-50 1x, inference (no autograd), default layouts", "infer", string.Empty, string.Empty),
        })
        {
            var cvrl = new List<(double, double)>();
            var py = new List<(double, double)>();
            for (int r = 0; r < repeats; r++)
            {
                cvrl.Add(RunChild($"model-step --mode {mode} --width 1 {common}{cvrlExtra}"));
                py.Add(RunPython($"--mode {mode} --width 1 {common}{pyExtra}"));
            }

            var c = Median(cvrl);
            var p = Median(py);
            rows.Add((label, string.Create(ci, $"{c.Seconds:0.00} s, {c.Mib:0} MiB"), double.IsNaN(p.Seconds) ? "n/a" : string.Create(ci, $"{p.Seconds:0.00} s, {p.Mib:0} MiB ({c.Seconds / p.Seconds:0.00}x time, {c.Mib / p.Mib:0.00}x memory)")));
        }

        if (wide)
        {
            foreach (double width in new[] { 2.0, 4.0 })
            {
                var c = RunChild(string.Create(ci, $"model-step --mode train --width {width} --batch 4 --frames 16 --size 112 --threads 2 --steps 1"));
                rows.Add((string.Create(ci, $"R3D-50 {width}x, training step"), string.Create(ci, $"{c.Seconds:0.00} s, {c.Mib:0} MiB"), "not run"));
            }
        }

        Console.WriteLine("### Model training step (issue 4)");
        Console.WriteLine();
        Console.WriteLine($"Command: `dotnet run -c Release --project benchmarks/Cvrl.Benchmarks -- model --repeats {repeats} --steps {steps}`  ");
        Console.WriteLine($"Machine: {Machine.Describe()}  ");
        Console.WriteLine("Setting: CVRL's R3D-50 (stem 5x7x7 stride 2, temporal kernel 3 in res4/res5), batch [4, 3, 16, 112, 112], 2 threads, " +
            "loss = mean of squared pooled features, SGD momentum 0.9. Cvrl's default layout is channels-last-3d (ResNet3dOptions.ChannelsLast), PyTorch's is contiguous. Each cell: median seconds per step (after one warm-up step) and peak resident " +
            $"memory (VmHWM) of a fresh process, median of {repeats} interleaved runs. PyTorch: Debian's python3-torch (the same architecture written in PyTorch, `benchmarks/Cvrl.Benchmarks/python/r3d_step.py`).");
        Console.WriteLine();
        Console.WriteLine("| configuration | Cvrl (TorchSharp 0.107, libtorch 2.10) | PyTorch 1.13 (same run) |");
        Console.WriteLine("|---|---|---|");
        foreach (var (name, c, p) in rows)
        {
            Console.WriteLine($"| {name} | {c} | {p} |");
        }

        return 0;
    }

    /// <summary>The child process: runs the steps and prints seconds per step and peak RSS.</summary>
    public static int Step(string[] args)
    {
        string mode = AugmentBenchmark.OptionText(args, "--mode", "train");
        double width = double.Parse(AugmentBenchmark.OptionText(args, "--width", "1"), CultureInfo.InvariantCulture);
        int batch = AugmentBenchmark.Option(args, "--batch", 4);
        int frames = AugmentBenchmark.Option(args, "--frames", 16);
        int size = AugmentBenchmark.Option(args, "--size", 112);
        int steps = AugmentBenchmark.Option(args, "--steps", 3);
        int threads = AugmentBenchmark.Option(args, "--threads", 2);
        bool contiguous = args.Contains("--contiguous");
        var precision = Enum.Parse<Precision>(AugmentBenchmark.OptionText(args, "--precision", "Float32"), ignoreCase: true);
        var device = GpuBenchmark.OpenDevice(AugmentBenchmark.OptionText(args, "--device", "cpu"));
        torch.set_num_threads(threads);
        torch.manual_seed(0);
        using var model = ResNet3d.Create(new ResNet3dOptions { Depth = 50, WidthMultiplier = width, ChannelsLast = !contiguous });
        model.to(device);
        model.ComputeType = PrecisionPolicy.Resolve(precision, device).Type;
        var x = torch.rand(new long[] { batch, 3, frames, size, size }, device: device);

        using var optimizer = torch.optim.SGD(model.parameters(), 0.01, momentum: 0.9, weight_decay: 1e-6);
        var times = new List<double>();
        for (int step = 0; step <= steps; step++)
        {
            var watch = Stopwatch.StartNew();
            using (var scope = torch.NewDisposeScope())
            {
                if (mode == "train")
                {
                    model.train();
                    optimizer.zero_grad();
                    var loss = model.call(x).pow(2).mean();
                    loss.backward();
                    optimizer.step();
                }
                else
                {
                    model.eval();
                    using var inference = torch.inference_mode();
                    model.call(x);
                }
            }

            GpuBenchmark.Synchronize(device);
            if (step > 0)
            {
                times.Add(watch.Elapsed.TotalSeconds);
            }
        }

        x.Dispose();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"seconds_per_step={Machine.Median(times):0.0000} peak_rss_mib={Machine.PeakRssMiB():0}"));
        return 0;
    }

    internal static (double Seconds, double Mib) RunChild(string arguments)
    {
        string self = Path.Combine(AppContext.BaseDirectory, "Cvrl.Benchmarks.dll");
        return Parse(RunProcess(Machine.DotnetHost, $"\"{self}\" {arguments}"));
    }

    internal static (double Seconds, double Mib) RunPython(string arguments)
    {
        string script = Path.Combine(AppContext.BaseDirectory, "python", "r3d_step.py");
        return Machine.Python is { } python ? Parse(RunProcess(python, $"\"{script}\" {arguments}")) : (double.NaN, double.NaN);
    }

    private static string RunProcess(string file, string arguments)
    {
        var psi = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(psi)!;
        string output = process.StandardOutput.ReadToEnd();
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {arguments} failed: {error}");
        }

        return output;
    }

    private static (double, double) Parse(string output)
    {
        string line = output.Split('\n').Last(l => l.StartsWith("seconds_per_step=", StringComparison.Ordinal));
        var parts = line.Split(' ').Select(p => p.Split('=')[1]).ToArray();
        return (double.Parse(parts[0], CultureInfo.InvariantCulture), double.Parse(parts[1], CultureInfo.InvariantCulture));
    }
}
