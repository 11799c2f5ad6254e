using ActorQueue.Host;

if (args.Contains("--help") || args.Contains("-h"))
{
    Console.WriteLine(DemoOptions.Usage);
    return 0;
}

DemoOptions options;
try
{
    options = DemoOptions.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine(e.Message);
    Console.Error.WriteLine(DemoOptions.Usage);
    return 2;
}

// Ctrl+C stops producing early; the run still drains and reports what happened.
using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    stop.Cancel();
};

var summary = await DemoRunner.RunAsync(options, DemoView.ForConsole(), stop.Token);
return summary.Ok ? 0 : 1;
