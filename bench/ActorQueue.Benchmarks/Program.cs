using ActorQueue.Benchmarks;
using BenchmarkDotNet.Running;

if (args.Contains("--help") || args.Contains("-h"))
{
    Console.WriteLine(HarnessOptions.Usage);
    return 0;
}
if (args.Length > 0 && args[0] == "--bdn")
{
    // Without a filter BenchmarkDotNet would ask which benchmark to run; run them all instead.
    var bdnArgs = args[1..].Contains("--filter") ? args[1..] : [.. args[1..], "--filter", "*"];
    BenchmarkSwitcher.FromAssembly(typeof(Harness).Assembly).Run(bdnArgs);
    return 0;
}

HarnessOptions options;
try
{
    options = HarnessOptions.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine(e.Message);
    return 2;
}

var directory = options.OutputDirectory ?? DefaultOutputDirectory();
Console.WriteLine($"ActorQueue benchmark, {options.Mode} mode: N = {Harness.Count(options.Messages)}, {options.Rounds} rounds, " +
                  $"{options.WarmupRounds} warm-up rounds, scenarios {string.Join(",", options.Scenarios.Order().Select(HarnessOptions.ScenarioName))}");
var started = DateTimeOffset.Now;
var scenarios = await new Harness(options, Console.Out).RunAsync();
var report = new BenchReport(started, options.Mode, Report.Machine(), options.Rounds, options.WarmupRounds, options.WarmupMessages,
    scenarios, Report.CheckTargets(scenarios));
Report.WriteTables(report);
Console.WriteLine($"JSON:  {Report.WriteJson(report, directory)}");
if (Report.WriteChart(report, directory) is { } chart) Console.WriteLine($"Chart: {chart}");
Console.WriteLine($"Took {(DateTimeOffset.Now - started).TotalSeconds:0} s.");
var failedRuns = scenarios.Sum(s => s.Peers.Sum(p => p.Failed));
if (failedRuns > 0) Console.WriteLine($"{failedRuns} runs failed or timed out.");
return failedRuns > 0 ? 1 : 0;

// bench/results under the repository root when run from inside it, else ./benchmark-results.
static string DefaultOutputDirectory()
{
    for (var dir = new DirectoryInfo(Environment.CurrentDirectory); dir is not null; dir = dir.Parent)
        if (File.Exists(Path.Combine(dir.FullName, "ActorQueue.sln"))) return Path.Combine(dir.FullName, "bench", "results");
    return Path.Combine(Environment.CurrentDirectory, "benchmark-results");
}
