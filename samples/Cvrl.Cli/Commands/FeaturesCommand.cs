using System.ComponentModel;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cvrl.Cli.Infrastructure;
using Cvrl.Embeddings;
using Cvrl.Video;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Cvrl.Cli.Commands;

/// <summary>
/// Dense window features for localisation pipelines: one NumPy file per video (<c>[windows, dim]</c> float32) and a
/// manifest with each window's times, the encoder's fingerprint and the views; resumable.
/// </summary>
internal sealed class FeaturesCommand : Command<FeaturesCommand.Settings>
{
    /// <summary>The manifest's name in the output folder.</summary>
    public const string ManifestName = "features.json";

    public sealed class Settings : EncoderSettings
    {
        [CommandArgument(0, "<VIDEOS>")]
        [Description("Folder of videos (searched recursively; a prepared folder too), or one video file.")]
        public string Folder { get; init; } = string.Empty;

        [CommandOption("-o|--out <FOLDER>")]
        [Description("Where the .npy files (the videos' relative paths with .npy appended) and features.json go.")]
        [DefaultValue("features")]
        public string Output { get; init; } = "features";

        [CommandOption("--window <N>")]
        [Description("Frames per window. [grey]Default: the encoder's clip length (a checkpoint's training clips, an ONNX model's metadata), else 32[/]")]
        public int? Window { get; init; }

        [CommandOption("--stride <N>")]
        [Description("Stride between a window's frames. [grey]Default: the encoder's, else 2[/]")]
        public int? Stride { get; init; }

        [CommandOption("--size <PIXELS>")]
        [Description("Short side and centre crop. [grey]Default: the encoder's, else 256[/]")]
        public int? Size { get; init; }

        [CommandOption("--step <N>")]
        [Description("Frames between the starts of consecutive windows.")]
        [DefaultValue(8)]
        public int Step { get; init; } = 8;

        [CommandOption("--step-seconds <S>")]
        [Description("Seconds between window starts, instead of --step (variable frame rates keep their times).")]
        public double? StepSeconds { get; init; }

        [CommandOption("--normalize")]
        [Description("L2-normalise each window's feature (the default keeps the pooled features as the encoder computes them).")]
        public bool Normalize { get; init; }

        [CommandOption("--index <FOLDER>")]
        [Description("Also write a window index of every video's features (for cvrl search, memory-mapped, with an int8 copy), after the .npy files.")]
        public string? Index { get; init; }

        [CommandOption("--batch <N>")]
        [Description("Windows per forward pass, across videos.")]
        [DefaultValue(16)]
        public int Batch { get; init; } = 16;

        public WindowOptions Windows => new()
        {
            Step = Step,
            StepSeconds = StepSeconds,
            Normalize = Normalize,
            BatchSize = Batch,
            Workers = Math.Min(WorkerCount, 4),
        };

        public EmbeddingOptions Options(TestViewOptions? encoderViews) => new()
        {
            Views = (encoderViews ?? new TestViewOptions()).Over(1, 1, Window, Stride, Size),
            Workers = WorkerCount,
        };

        public override ValidationResult Validate()
        {
            var result = base.Validate();
            return result.Successful ? Checked(() => { Windows.Validate(); Options(null).Validate(); }) : result;
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        OutputPaths.RequireFolder(settings.Output, "--out");
        VideoSource.RequireExists(settings.Folder);
        OutputPaths.RequireNotInput(Path.Combine(settings.Output, ManifestName), "--out", (settings.Folder, "the videos"));
        if (settings.Index is not null)
        {
            OutputPaths.RequireFolder(settings.Index, "--index");
            OutputPaths.RequireNotInput(Path.Combine(settings.Index, WindowIndex.DescriptionFile), "--index", (settings.Folder, "the videos"));
        }

        string output = Path.GetFullPath(settings.Output);
        string[] excluded = settings.Index is null ? [output] : [output, Path.GetFullPath(settings.Index)];
        var scan = VideoFiles.Scan(settings.Folder, true, null, excluded, cancellationToken);
        string root = File.Exists(settings.Folder) ? Path.GetDirectoryName(Path.GetFullPath(settings.Folder))! : Path.GetFullPath(settings.Folder);
        if (scan.Videos.Count == 0)
        {
            throw new DatasetException($"No video files under '{root}'.");
        }

        using var claim = FolderLock.Acquire(output, "cvrl features", settings.Logger);
        var (embedder, owner) = EmbedCommand.CreateEmbedder(settings, settings.Options, settings.EncoderFile, settings.Architecture, settings.InitSeed, settings.Precision);
        using (owner)
        {
            var v = embedder.Views;
            var windows = settings.Windows;
            string stepText = windows.StepSeconds is double s ? string.Create(CultureInfo.InvariantCulture, $"every {s:0.###} s") : $"every {windows.Step} frames";
            AnsiConsole.MarkupLine(Markup.Escape($"windows of {v.FramesPerClip} frames at stride {v.Stride}, short side {v.ShortSide}, centre crop {v.CropSize}, {stepText}; encoder {embedder.Fingerprint}"));

            // Resume: a video whose entry says it was done with the same encoder, views and windows, and is unchanged.
            string manifestPath = Path.Combine(output, ManifestName);
            var identity = new JsonObject
            {
                ["fingerprint"] = embedder.Fingerprint,
                ["views"] = JsonSerializer.SerializeToNode(v with { Clips = 1, Crops = 1 }, CvrlJson.Options),
                ["step"] = windows.Step,
                ["stepSeconds"] = windows.StepSeconds,
                ["normalized"] = windows.Normalize,
            };
            var entries = ReadManifest(manifestPath, identity);
            var extra = new JsonObject { ["source"] = settings.Source().ToNode(), ["root"] = root };
            var todo = new List<EmbeddingInput>();
            foreach (string path in scan.Videos)
            {
                string key = VideoFiles.RelativeKey(root, path);
                var file = new FileInfo(path);
                if (entries.TryGetValue(key, out var entry) && entry?["size"]?.GetValue<long>() == file.Length
                    && entry["modifiedUtc"]?.GetValue<DateTime>() == file.LastWriteTimeUtc && File.Exists(Path.Combine(output, key + ".npy")))
                {
                    continue;
                }

                todo.Add(new EmbeddingInput(path, key));
            }

            int done = 0;
            var skipped = new List<SkippedVideo>();
            long windowsWritten = 0;
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var lastWrite = TimeSpan.Zero;
            CliProgress.Run(progress =>
            {
                foreach (var (index, features, skip) in embedder.ExtractWindows(todo, windows, progress, cancellationToken))
                {
                    var input = todo[index];
                    if (skip is not null)
                    {
                        skipped.Add(skip);
                        entries.Remove(input.Key);
                        continue;
                    }

                    string npy = Path.Combine(output, input.Key + ".npy");
                    NpyFile.Write(npy, features!.Features, features.Windows.Count, features.Dim);
                    var file = new FileInfo(input.Path);
                    entries[input.Key] = new JsonObject
                    {
                        ["npy"] = input.Key + ".npy",
                        ["path"] = input.Path,
                        ["size"] = file.Length,
                        ["modifiedUtc"] = file.LastWriteTimeUtc,
                        ["fps"] = features.FramesPerSecond,
                        ["frames"] = features.Frames,
                        ["dim"] = features.Dim,
                        ["windows"] = new JsonArray([.. features.Windows.Select(w => (JsonNode?)new JsonArray(w.StartFrame, Math.Round(w.StartSeconds, 6), Math.Round(w.EndSeconds, 6)))]),
                    };
                    windowsWritten += features.Windows.Count;
                    done++;

                    // The manifest lists every window: rewritten at most every 10 s (an interrupted run redoes the videos since).
                    if (watch.Elapsed - lastWrite > TimeSpan.FromSeconds(10))
                    {
                        WriteManifest(manifestPath, identity, extra, entries, skipped);
                        lastWrite = watch.Elapsed;
                    }
                }

                return 0;
            });

            WriteManifest(manifestPath, identity, extra, entries, skipped);
            double seconds = watch.Elapsed.TotalSeconds;
            AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture, $"wrote [green]{done}[/] video(s), {windowsWritten:N0} windows ({(seconds > 0 ? windowsWritten / seconds : 0):0.#} windows/s); {scan.Videos.Count - todo.Count} done earlier; manifest [green]{Markup.Escape(manifestPath)}[/]"));
            SkippedVideos.Print(skipped, root);
            if (settings.Index is not null)
            {
                if (entries.Count == 0)
                {
                    throw new DatasetException("No video could be cut into windows, so there is nothing to index (see the videos skipped above).");
                }

                WriteIndex(Path.GetFullPath(settings.Index), output, identity, extra, entries, embedder, windows, cancellationToken);
            }
        }

        return 0;
    }

    /// <summary>
    /// The window index of every video the manifest lists (this run's and earlier runs'), read back one .npy at a time;
    /// the writer normalises each row.
    /// </summary>
    private static void WriteIndex(string folder, string output, JsonObject identity, JsonObject extra, Dictionary<string, JsonNode?> entries, Embedder embedder, WindowOptions windows, CancellationToken cancellationToken)
    {
        var metadata = new JsonObject
        {
            ["views"] = identity["views"]?.DeepClone(),
            ["windows"] = new JsonObject { ["step"] = windows.Step, ["stepSeconds"] = windows.StepSeconds },
            ["source"] = extra["source"]?.DeepClone(),
            ["root"] = extra["root"]?.DeepClone(),
            ["features"] = output,
        };
        using var writer = new WindowIndexWriter(folder, entries.Values.First()!["dim"]!.GetValue<int>(), embedder.Fingerprint, metadata.ToJsonString());
        foreach (var (key, entry) in entries.OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (values, rows, _) = NpyFile.Read(Path.Combine(output, entry!["npy"]!.GetValue<string>()));
            var spans = entry["windows"]!.AsArray().Select(w => new VideoWindow(w![0]!.GetValue<int>(), w[1]!.GetValue<double>(), w[2]!.GetValue<double>())).ToList();
            if (spans.Count != rows)
            {
                throw new InvalidDataException($"'{key}': the manifest lists {spans.Count} windows and its .npy holds {rows}; run cvrl features again for it");
            }

            writer.Add(key, entry["fps"]?.GetValue<double>() ?? 0, spans, values);
        }

        writer.Complete();
        using var index = WindowIndex.Open(folder);
        AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture, $"wrote index [green]{Markup.Escape(folder)}[/]: {index.Count:N0} windows of {index.Videos.Count} videos ({index.RowBytes / 1048576.0:0.#} MiB of float32 rows)"));
    }

    /// <summary>The entries of an earlier manifest made with the same encoder, views and windows; empty otherwise.</summary>
    private static Dictionary<string, JsonNode?> ReadManifest(string path, JsonObject identity)
    {
        var entries = new Dictionary<string, JsonNode?>(StringComparer.Ordinal);
        if (!File.Exists(path))
        {
            return entries;
        }

        try
        {
            if (JsonNode.Parse(File.ReadAllText(path)) is JsonObject manifest && manifest["identity"]?.ToJsonString() == identity.ToJsonString() && manifest["videos"] is JsonObject videos)
            {
                foreach (var (key, value) in videos)
                {
                    entries[key] = value?.DeepClone();
                }
            }
            else
            {
                AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(path)} was written with another encoder, views or windows: every video is done again[/]");
            }
        }
        catch (JsonException e)
        {
            AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(path)} is not readable ({Markup.Escape(e.Message)}): every video is done again[/]");
        }

        return entries;
    }

    private static void WriteManifest(string path, JsonObject identity, JsonObject extra, Dictionary<string, JsonNode?> entries, List<SkippedVideo> skipped)
    {
        var manifest = new JsonObject
        {
            ["format"] = "cvrl-features-1",
            ["layout"] = "one .npy per video: float32 [windows, dim], row i the window videos[key].windows[i] = [start frame, start seconds, end seconds]",
            ["identity"] = identity.DeepClone(),
            ["source"] = extra["source"]?.DeepClone(),
            ["root"] = extra["root"]?.DeepClone(),
            ["videos"] = new JsonObject(entries.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => KeyValuePair.Create(e.Key, e.Value?.DeepClone()))),
            ["skipped"] = new JsonArray([.. skipped.Select(s => (JsonNode?)new JsonObject { ["path"] = s.Path, ["reason"] = s.Reason })]),
        };
        string text = manifest.ToJsonString(CvrlJson.Options);
        string temp = path + ".tmp";
        File.WriteAllText(temp, text);
        File.Move(temp, path, overwrite: true);
    }
}
