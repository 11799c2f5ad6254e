using ActorQueue.Host;

DemoOptions options;
try
{
    options = DemoOptions.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine(e.Message);
    return 2;
}

var summary = await DemoRunner.RunAsync(options, Console.Out);
return summary.Lost == 0 && summary.Completed ? 0 : 1;
