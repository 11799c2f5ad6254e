using ActorQueue.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace ActorQueue.Tests.Simulation;

public sealed class DebugSpec(ITestOutputHelper output)
{
    [Fact]
    public async Task Debug_seed()
    {
        var seed = int.Parse(Environment.GetEnvironmentVariable("DBG_SEED") ?? "30");
        var result = await Scenario.Random("random", seed).RunAsync();
        output.WriteLine(result.Scenario.Describe());
        output.WriteLine(result.Verdict.Describe(20));
        var ids = result.Verdict.Duplicated.Select(d => d.MessageId).Concat(result.Verdict.NotDrained.Take(2)).Concat(result.Verdict.Unanswered.Take(2)).ToHashSet();
        foreach (var e in result.History.Events.Where(e => (e.MessageId != null && ids.Contains(e.MessageId)) || e.Kind is HistoryKind.ConsumerCrashed or HistoryKind.ConsumerPaused or HistoryKind.ProducerCrashed).Take(200))
            output.WriteLine(e.ToString());
        var last = result.History.Events.Last(e => e.Kind == HistoryKind.Sampled);
        output.WriteLine($"last sample {last}: held {last.Held} at {result.VirtualTime}");
    }
}
