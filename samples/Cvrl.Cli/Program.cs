using Cvrl.Cli;
using Cvrl.Cli.Commands;
using Spectre.Console.Cli;

// cvrl: the command-line tool for Cvrl. Every command has --help.
using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    // First Ctrl+C: ask the running command to stop cleanly; a second one ends the process.
    if (!cancellation.IsCancellationRequested)
    {
        e.Cancel = true;
        cancellation.Cancel();
    }
};

var app = new CommandApp<DemoCommand>();
app.Configure(config =>
{
    config.SetApplicationName("cvrl");
    config.Settings.ExceptionHandler = CliErrors.Handle;
    config.Settings.CancellationExitCode = CliErrors.CancelledExitCode;
    config.AddCommand<DemoCommand>("demo")
        .WithDescription("Write a small generated video, decode it, augment two CVRL views and run a 3D convolution over them.");
    config.AddCommand<PreviewCommand>("preview")
        .WithDescription("Write a PNG contact sheet of the two augmented CVRL views of a video.")
        .WithExample("preview", "clip.mp4", "--out", "sheet.png");
    config.AddCommand<EmbedCommand>("embed")
        .WithDescription("Embed every video of a folder (mean of L2-normalised clip features) and save the set.")
        .WithExample("embed", "videos/", "--out", "videos.cvrlemb", "--checkpoint", "runs/a/checkpoint-000500.cvrl");
    config.AddCommand<SearchCommand>("search")
        .WithDescription("Find the videos of an embedding file most similar to a query video (use the encoder that made the file).")
        .WithExample("search", "videos.cvrlemb", "query.mp4", "--top", "5");
});

return app.Run(args, cancellation.Token);
