using Cvrl.Cli;
using Cvrl.Cli.Commands;
using Spectre.Console.Cli;

// cvrl: the command-line tool for Cvrl. Every command has --help.
// Ctrl+C, SIGTERM and SIGHUP: the first asks the running command to stop cleanly; a second one ends the process.
using var stop = new StopSignals();
CliErrors.Stop = stop;

if (Console.IsOutputRedirected)
{
    // Logs and pipes: one line per message rather than Spectre's 80-column wrapping.
    Spectre.Console.AnsiConsole.Profile.Width = 240;
}

// "--" ends the options: what follows is taken as paths, so a file named "-x.mp4" is read as "./-x.mp4" (Spectre's parser
// has no end-of-options marker of its own). "--version" and "-V" print the versions (also "cvrl version").
args = CommandLine.Normalise(args);

var app = new CommandApp<QuickstartCommand>();
app.Configure(config =>
{
    config.SetApplicationName("cvrl");
    config.UseStrictParsing();
    config.Settings.ExceptionHandler = CliErrors.Handle;
    config.Settings.CancellationExitCode = 130;
    config.AddCommand<VersionCommand>("version")
        .WithDescription("The versions of the tool, the libraries, TorchSharp, libtorch and OpenCV, and what they run on: .NET, the CPU's vector extensions, CUDA (also cvrl --version).");
    config.AddCommand<QuickstartCommand>("quickstart")
        .WithDescription("The default: generate synthetic motion videos, pre-train a small 3D-ResNet with CVRL (a few minutes on 2 cores), compare with random weights (linear probe, kNN), write a table and pictures.")
        .WithExample("quickstart", "--out", "runs/quickstart")
        .WithExample("quickstart", "--epochs", "80", "--train-per-class", "64");
    config.AddCommand<ResultsCommand>("results")
        .WithDescription("Regenerate docs/results.md: CVRL against random weights, per-clip against per-frame augmentation, decreasing against uniform and same-start intervals, over several seeds (about an hour by default).")
        .WithExample("results", "--seeds", "3")
        .WithExample("results", "--seeds", "1", "--epochs", "20", "--out", "/tmp/results.md");
    config.AddCommand<CompareCommand>("compare")
        .WithDescription("What works on your own labelled clips: random weights, each starting encoder (inflated ImageNet weights, a zoo model) as it is and adapted with CVRL without labels, CVRL from scratch, and supervised fine-tuning as the ceiling, over several seeds, with the same linear probe and kNN; resumable; a table, a chart and maps of the two best encoders.")
        .WithExample("compare", "clips/", "--init", "imagenet-r3d18.cvrl", "--out", "compare/")
        .WithExample("compare", "clips/", "--init", "imagenet-r3d18.cvrl", "--rows", "random,start,adapted", "--seeds", "1", "--epochs", "10");
    config.AddCommand<IndexCommand>("index")
        .WithDescription("Build or refresh the verified index of a folder of videos (or one file) and list what it holds: frames that decode, frames the container claims, fps, size, how frames are reached (seek, sequential, direct), status; bad files and files left out for their extension named.")
        .WithExample("index", "videos/")
        .WithExample("index", "videos/", "--bad-only");
    config.AddCommand<PrepareCommand>("prepare")
        .WithDescription("Make a training-ready copy of a folder of videos, once: every video decoded, resized (short side 256) and stored frame by frame (JPEG or raw) for direct access; class folders, list files and the verified index come along; resumable.")
        .WithExample("prepare", "videos/", "--out", "prepared/")
        .WithExample("prepare", "ucf101/", "--out", "ucf101-prepared/", "--format", "raw", "--short-side", "128");
    config.AddCommand<PretrainCommand>("pretrain")
        .WithDescription("Pre-train a 3D-ResNet with CVRL on a folder of unlabelled videos (checkpoints, resume, metrics, Ctrl+C writes a checkpoint).")
        .WithExample("pretrain", "videos/", "--out", "runs/a", "--depth", "50", "--epochs", "200")
        .WithExample("pretrain", "videos/", "--out", "runs/small", "--width", "0.25", "--frames", "8", "--size", "112", "--batch", "32");
    config.AddCommand<ProbeCommand>("probe")
        .WithDescription("Linear evaluation of an encoder on labelled data (frozen backbone, one linear layer, 30-view test).")
        .WithExample("probe", "data/ucf101", "--checkpoint", "runs/a/checkpoints/checkpoint-0000000500.cvrl", "--out", "probe.json");
    config.AddCommand<KnnCommand>("knn")
        .WithDescription("kNN evaluation of an encoder on labelled data (cosine similarity, weighted votes).")
        .WithExample("knn", "data/ucf101", "--checkpoint", "runs/a/checkpoints/checkpoint-0000000500.cvrl", "--neighbours", "20");
    config.AddCommand<FinetuneCommand>("finetune")
        .WithDescription("Fine-tune the whole encoder with a classifier on labelled data, then the 30-view test.")
        .WithExample("finetune", "data/ucf101", "--checkpoint", "runs/a/checkpoints/checkpoint-0000000500.cvrl", "--epochs", "50");
    config.AddCommand<SummaryCommand>("summary")
        .WithDescription("Output shapes, parameters and multiply-accumulates of a 3D-ResNet (and its projection head).")
        .WithExample("summary", "--depth", "50", "--width", "4", "--head");
    config.AddCommand<DemoCommand>("demo")
        .WithDescription("Write a small generated video, decode it, augment two CVRL views and run a 3D convolution over them.");
    config.AddCommand<PreviewCommand>("preview")
        .WithDescription("Write a PNG contact sheet of the two augmented CVRL views of a video.")
        .WithExample("preview", "clip.mp4", "--out", "sheet.png");
    config.AddCommand<EmbedCommand>("embed")
        .WithDescription("Embed every video of a folder (mean of L2-normalised clip features) and save the set.")
        .WithExample("embed", "videos/", "--out", "videos.cvrlemb", "--checkpoint", "runs/a/checkpoints/checkpoint-0000000500.cvrl");
    config.AddCommand<FeaturesCommand>("features")
        .WithDescription("Dense window features for localisation pipelines: windows of the encoder's clip length, one every --step frames (or --step-seconds), each video decoded once; one NumPy .npy per video ([windows, dim] float32) and features.json with every window's times, the encoder's fingerprint and the views; resumable.")
        .WithExample("features", "videos/", "--checkpoint", "model.cvrl", "--window", "16", "--stride", "1", "--step", "8", "--out", "features/");
    config.AddCommand<SearchCommand>("search")
        .WithDescription("Find the videos of an embedding file most similar to a query video (use the encoder that made the file).")
        .WithExample("search", "videos.cvrlemb", "query.mp4", "--top", "5");
    config.AddCommand<ExploreCommand>("explore")
        .WithDescription("Write a report of an embedding file that opens in a browser from disk: a map of every video (PCA or t-SNE) coloured by class, thumbnails on hover, each video's nearest neighbours with scores on click, a file-name filter, the leave-one-out kNN accuracy and the most confused classes; optionally TensorBoard projector files.")
        .WithExample("explore", "videos.cvrlemb", "--out", "explore/");
    config.AddCommand<ExportCommand>("export")
        .WithDescription("Write an encoder (and optionally its projection head) as an ONNX model: BatchNorm folded, dynamic batch, frames and size, metadata that says what it expects; runs in ONNX Runtime without libtorch.")
        .WithExample("export", "runs/a/checkpoints/checkpoint-0000000500.cvrl", "--out", "encoder.onnx")
        .WithExample("export", "runs/a/checkpoints/checkpoint-0000000500.cvrl", "--out", "model.onnx", "--head");
    config.AddCommand<ImportCommand>("import")
        .WithDescription("Import a model-zoo checkpoint (PySlowFast, pytorchvideo, mmaction2 Slow-R50/R101/SlowOnly; torchvision R3D) as a Cvrl checkpoint: names mapped, architecture inferred, loaded strictly, clips and normalisation recorded; no Python needed.")
        .WithExample("import", "SLOW_8x8_R50.pyth", "--out", "slow_r50.cvrl")
        .WithExample("import", "slowonly_r50_8x8x1_256e_kinetics400_rgb.pth", "--from", "mmaction2", "--out", "slowonly.cvrl");
});

int code = app.Run(args, stop.Token);

// Spectre reports a cancelled command with the code configured above (Ctrl+C's); a stop by SIGTERM or SIGHUP exits with its own.
return stop.Token.IsCancellationRequested && code == 130 ? stop.ExitCode : code;
