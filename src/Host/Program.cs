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

var summary = await DemoRunner.RunAsync(options, Console.Out);
return summary.Lost == 0 && summary.Completed ? 0 : 1;
