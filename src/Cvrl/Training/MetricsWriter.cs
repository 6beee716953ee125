using System.Globalization;
using System.Text.Json;

namespace Cvrl.Training;

/// <summary>Appends one row of metrics per report to a CSV or JSON-lines file (by extension).</summary>
internal sealed class MetricsWriter : IDisposable
{
    private readonly StreamWriter _writer;
    private readonly bool _json;

    public MetricsWriter(string path, bool append)
    {
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        _json = !full.EndsWith(".csv", StringComparison.OrdinalIgnoreCase);
        bool exists = File.Exists(full) && new FileInfo(full).Length > 0;
        _writer = new StreamWriter(new FileStream(full, append ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.Read)) { AutoFlush = true };
        if (!_json && !(append && exists))
        {
            _writer.WriteLine("step,epoch,loss,accuracy,entropy,learning_rate,clips_per_second,data_wait_share,elapsed_seconds");
        }
    }

    public static bool IsSupported(string path) =>
        path.EndsWith(".csv", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".json", StringComparison.OrdinalIgnoreCase);

    public void Write(TrainingProgress p)
    {
        if (_json)
        {
            _writer.WriteLine(JsonSerializer.Serialize(
                new
                {
                    step = p.Step,
                    epoch = p.Epoch,
                    loss = p.Loss,
                    accuracy = p.ContrastiveAccuracy,
                    entropy = p.Entropy,
                    learning_rate = p.LearningRate,
                    clips_per_second = p.ClipsPerSecond,
                    data_wait_share = p.DataWaitShare,
                    elapsed_seconds = p.Elapsed.TotalSeconds,
                },
                CvrlJson.Compact));
        }
        else
        {
            _writer.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{p.Step},{p.Epoch},{p.Loss:R},{p.ContrastiveAccuracy:R},{p.Entropy:R},{p.LearningRate:R},{p.ClipsPerSecond:0.###},{p.DataWaitShare:0.####},{p.Elapsed.TotalSeconds:0.###}"));
        }
    }

    public void Dispose() => _writer.Dispose();
}
