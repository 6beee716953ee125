using System.Reflection;
using System.Runtime.InteropServices;
using Cvrl.Models;
using Spectre.Console;
using Spectre.Console.Cli;
using TorchSharp;

namespace Cvrl.Cli.Commands;

/// <summary>
/// <c>cvrl --version</c> (and <c>cvrl version</c>): the tool's and the libraries' versions, and what they run on: the
/// TorchSharp and libtorch versions, the OpenCV build and its video backend, the .NET runtime, the CPU's vector
/// instructions that the kernels can use (and the settings that limit them), the precision Auto picks, whether CUDA is
/// visible. The first lines to paste into a bug report.
/// </summary>
internal sealed class VersionCommand : Command
{
    public override int Execute(CommandContext context, CancellationToken cancellationToken)
    {
        foreach (var (name, value) in Describe())
        {
            AnsiConsole.MarkupLine($"{Markup.Escape(name)}: {Markup.Escape(value)}");
        }

        return 0;
    }

    /// <summary>Each line's name and value.</summary>
    internal static IEnumerable<(string Name, string Value)> Describe()
    {
        yield return ("cvrl", VersionOf(typeof(VersionCommand).Assembly));
        yield return ("libraries", string.Join(", ", new[] { typeof(Cvrl.Training.CvrlTrainer), typeof(Cvrl.Augment.CvrlViewGenerator), typeof(ResNet3d), typeof(Cvrl.Video.VideoReader) }
            .Select(t => $"{t.Assembly.GetName().Name} {VersionOf(t.Assembly)}")));
        yield return ("TorchSharp", VersionOf(typeof(torch).Assembly));
        string libtorch;
        try
        {
            TorchNative.EnsureLoaded();
            libtorch = torch.__version__;
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or NotSupportedException)
        {
            libtorch = "not loaded: " + e.Message.ReplaceLineEndings(" ");
        }

        yield return ("libtorch", libtorch);
        string opencv;
        try
        {
            Cvrl.Video.OpenCvNative.EnsureLoaded();
            string build = OpenCvSharp.Cv2.GetBuildInformation();
            string? ffmpeg = build.ReplaceLineEndings("\n").Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("FFMPEG:", StringComparison.Ordinal));
            opencv = $"{OpenCvSharp.Cv2.GetVersionString()} (OpenCvSharp {VersionOf(typeof(OpenCvSharp.Cv2).Assembly)}){(ffmpeg is null ? string.Empty : $"; video backend {ffmpeg}")}";
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException)
        {
            opencv = "not loaded: " + e.Message.ReplaceLineEndings(" ");
        }

        yield return ("OpenCV", opencv);
        yield return (".NET", $"{RuntimeInformation.FrameworkDescription} on {RuntimeInformation.OSDescription} ({RuntimeInformation.ProcessArchitecture})");
        yield return ("CPU", Cpu());
        string cuda;
        try
        {
            cuda = torch.cuda.is_available() ? $"visible ({torch.cuda.device_count()} device(s))" : "not visible (the CPU backend, or no driver)";
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or NotSupportedException)
        {
            cuda = "not visible: " + e.Message.ReplaceLineEndings(" ");
        }

        yield return ("CUDA", cuda);
        yield return ("precision auto", PrecisionPolicy.Resolve(Precision.Auto, torch.CPU).Reason);
    }

    private static string VersionOf(Assembly assembly) =>
        assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
        ?? assembly.GetName().Version?.ToString() ?? "?";

    /// <summary>The CPU's model, its cores, the vector extensions the kernels pick from, and the settings that cap them.</summary>
    private static string Cpu()
    {
        string model = "unknown model";
        var flags = new HashSet<string>(StringComparer.Ordinal);
        if (File.Exists("/proc/cpuinfo"))
        {
            foreach (string line in File.ReadLines("/proc/cpuinfo"))
            {
                if (line.StartsWith("model name", StringComparison.Ordinal) && model == "unknown model")
                {
                    model = line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
                }
                else if (line.StartsWith("flags", StringComparison.Ordinal) && flags.Count == 0)
                {
                    flags.UnionWith(line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries));
                }
            }
        }

        string[] wanted = ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16"];
        var present = wanted.Where(flags.Contains).ToList();
        string features = flags.Count == 0 ? "features unknown" : present.Count == 0 ? "no vector extensions beyond SSE2" : string.Join(" ", present);
        var caps = new[] { "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS" }
            .Select(v => (v, Environment.GetEnvironmentVariable(v))).Where(p => !string.IsNullOrEmpty(p.Item2)).Select(p => $"{p.v}={p.Item2}").ToList();
        string limited = caps.Count > 0 ? $"; capped by {string.Join(" ", caps)}" : string.Empty;
        return $"{model}, {Environment.ProcessorCount} cores; {features}{limited}; torch threads {torch.get_num_threads()}";
    }
}
