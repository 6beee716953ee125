using Cvrl.Benchmarks;

// Cvrl's benchmark programs. Each prints a Markdown section for docs/benchmarks.md.
// Usage: dotnet run -c Release --project benchmarks/Cvrl.Benchmarks -- <augment|...> [options]
string which = args.Length > 0 ? args[0] : "help";
string[] rest = args.Skip(1).ToArray();
return which switch
{
    "augment" => AugmentBenchmark.Run(rest),
    "model" => ModelBenchmark.Run(rest),
    "model-step" => ModelBenchmark.Step(rest),
    "trainer" => TrainerBenchmark.Run(rest),
    "evaluation" => EvaluationBenchmark.Run(rest),
    "distributed" => DistributedBenchmark.Run(rest),
    "onnx" => OnnxBenchmark.Run(rest),
    "data" => DataBenchmark.Run(rest),
    "precision" => PrecisionBenchmark.Run(rest),
    "gpu" => GpuBenchmark.Run(rest),
    "explore" => ExploreBenchmark.Run(rest),
    "index" => IndexBenchmark.Run(rest),
    "dense" => DenseBenchmark.Run(rest),
    _ => Usage(),
};

static int Usage()
{
    Console.WriteLine("usage: Cvrl.Benchmarks <benchmark> [options]");
    Console.WriteLine("  augment [--videos N] [--samples N] [--rounds N] [--codec mpeg4|mjpeg] [--python]");
    Console.WriteLine("  model [--repeats N] [--steps N] [--no-wide]");
    Console.WriteLine("  trainer [--small-steps N] [--mid-steps N]");
    Console.WriteLine("  evaluation [--videos N] [--clips N] [--probe-only]");
    Console.WriteLine("  distributed [--steps N] [--batch N]   (needs mpiexec: it runs 1 process, then 2 under mpiexec)");
    Console.WriteLine("  data [--seconds N] [--cut-seconds N] [--samples N] [--videos-per-size N] [--sizes WxH,...] [--raw] [--dir PATH]   (needs ffmpeg)\n       [--trainer-only [--rounds N] [--epochs N] [--torch-threads N]]   (only the trainer on the long videos against their cuts, alternated)");
    Console.WriteLine("  onnx [--videos N] [--clips N] [--frames N] [--size N] [--depth N] [--width-percent N]");
    Console.WriteLine("  precision [--repeats N] [--steps N] [--videos N]   (PyTorch rows need Debian's python3-torch)");
    Console.WriteLine("  gpu [--device cuda|cpu] [--batches 16,64] [--frames N] [--size N] [--steps N] [--pretrain-steps N] [--pretrain-batch N] [--width X]   (scripts/gpu-check.sh)");
    Console.WriteLine("  explore [--sizes 1000,10000] [--dim N] [--iterations N]");
    Console.WriteLine("  index [--rows N] [--dim N] [--queries N] [--threads N] [--rerank N] [--dir PATH]   (writes rows x dim x 5 bytes under --dir)");
    Console.WriteLine("  dense [--seconds N] [--size WxH] [--window N] [--stride N] [--step N] [--crop N] [--depth N] [--width X] [--batch N] [--naive-windows N] [--dir PATH]   (needs ffmpeg)");
    return 2;
}
