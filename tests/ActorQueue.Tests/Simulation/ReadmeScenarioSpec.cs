using ActorQueue.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace ActorQueue.Tests.Simulation;

/// <summary>The scenario README's "Testing your pipeline" shows, run as written.</summary>
public sealed class ReadmeScenarioSpec(ITestOutputHelper output)
{
    [Fact]
    public async Task The_readme_example_passes()
    {
        var result = await Scenario.Create("orders", seed: 42)
            .WithQueue(q => q with { Capacity = 50, AckTimeout = TimeSpan.FromSeconds(30) })
            .WithProducers(count: 3, messages: 500, perSecond: 200)
            .WithConsumers(count: 2, prefetch: 8, concurrency: 4)
            .WithHandler(h => h with { FailureRate = 0.05, HangRate = 0.01, PoisonRate = 0.002, Inner = QueueHandler.From((d, ct) => Task.CompletedTask) })
            .WithFault(TimeSpan.FromSeconds(1), new Fault.KillConsumer(0))
            .WithFault(TimeSpan.FromSeconds(2), new Fault.PauseConsumer(1, TimeSpan.FromSeconds(45)))
            .RunAsync();
        output.WriteLine($"{result.Verdict.Describe()}\nvirtual {result.VirtualTime}, wall {result.WallTime}");
        result.AssertPassed();
    }
}
