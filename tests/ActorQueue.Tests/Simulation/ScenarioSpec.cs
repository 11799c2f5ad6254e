using ActorQueue.Protocol;
using ActorQueue.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace ActorQueue.Tests.Simulation;

/// <summary>
/// Whole pipelines simulated with ActorQueue.TestKit on virtual time: seeded random shapes and faults, each judged by the
/// history checker; a pipeline broken on purpose is caught with a seed that replays it.
/// </summary>
public sealed class ScenarioSpec(ITestOutputHelper output)
{
    /// <summary>The random sweep's seeds: 240 in blocks of 30 (ACTORQUEUE_SOAK=N for N times as many, ACTORQUEUE_SEED for one).</summary>
    public static IEnumerable<object[]> SweepBlocks => Scenario.SeedBlocks(count: 240, blockSize: 30).Select(b => new object[] { b });

    [Theory]
    [MemberData(nameof(SweepBlocks))]
    public async Task Random_pipelines_with_faults_lose_nothing_and_duplicate_only_with_cause(int[] seeds)
    {
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        // Small runs (up to 60 messages a producer), so that hundreds of shapes and fault schedules fit in CI; a run
        // mostly waits for its actors, so four go at once (each has its own actor system and virtual clock).
        await Parallel.ForEachAsync(seeds, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (seed, _) =>
        {
            var result = await Scenario.Random("random", seed, maxMessages: 60).RunAsync();
            output.WriteLine($"seed {seed}: {result.Verdict.Describe(3)} (virtual {result.VirtualTime.TotalSeconds:0.#}s, wall {result.WallTime.TotalMilliseconds:0} ms)");
            if (!result.Verdict.Passed) failures.Add(new ScenarioFailedException(result).Message);
        });
        Assert.True(failures.IsEmpty, string.Join("\n\n", failures));
    }

    [Fact]
    public async Task Ten_virtual_minutes_of_30s_ack_timeouts_run_in_seconds_of_real_time()
    {
        // Two producers trickle 301 messages each over ten virtual minutes; handlers hang past the 30 s ack timeout now and
        // then, and a consumer is paused for 45 s twice: deadlines, redeliveries and backoff all happen in virtual time.
        var scenario = Scenario.Create("ten-minutes", seed: 7)
            .WithQueue(q => q with { Capacity = 50, AckTimeout = TimeSpan.FromSeconds(30), MaxAttempts = 10 })
            .WithProducers(count: 2, messages: 301, perSecond: 0.5, burst: 1)
            .WithConsumers(count: 2, prefetch: 4, concurrency: 2)
            .WithHandler(h => h with { MaxLatency = TimeSpan.FromSeconds(2), HangRate = 0.02, HangFor = TimeSpan.FromSeconds(40), FailureRate = 0.05 })
            .WithFault(TimeSpan.FromMinutes(3), new Fault.PauseConsumer(0, TimeSpan.FromSeconds(45)))
            .WithFault(TimeSpan.FromMinutes(7), new Fault.PauseConsumer(1, TimeSpan.FromSeconds(45)))
            .WithFault(TimeSpan.FromMinutes(5), new Fault.KillConsumer(1));

        var result = await scenario.RunAsync();

        output.WriteLine($"{result.Verdict.Describe()}\nvirtual {result.VirtualTime}, wall {result.WallTime}");
        result.AssertPassed();
        Assert.True(result.VirtualTime >= TimeSpan.FromMinutes(10), $"the run covered only {result.VirtualTime} of virtual time");
        Assert.True(result.WallTime < TimeSpan.FromSeconds(10), $"ten virtual minutes took {result.WallTime} of real time");
        Assert.Contains(result.Verdict.Duplicated, d => d.Cause == DuplicateCause.MissedDeadline);
    }

    [Fact]
    public async Task A_pipeline_that_loses_one_ack_in_a_thousand_is_caught_with_a_seed_that_replays_it()
    {
        // A deliberately broken link between consumers and queue: the settlement of every thousandth delivery vanishes, so
        // the queue redelivers a message its handler finished quickly - a duplicate nothing explains.
        static bool Pass(object message) => message switch
        {
            Ack a => a.DeliveryId % 1000 != 0,
            AckRange r => r.FromDeliveryId / 1000 == r.ToDeliveryId / 1000 && r.FromDeliveryId % 1000 != 0,
            AckBatch b => !b.DeliveryIds.Any(id => id % 1000 == 0),
            _ => true,
        };
        var scenario = Scenario.Create("broken", seed: 1234)
            .WithQueue(q => q with { AckTimeout = TimeSpan.FromSeconds(5) })
            .WithProducers(count: 3, messages: 1000, perSecond: 500)
            .WithConsumers(count: 2, prefetch: 16, concurrency: 4) with { ConsumerLink = Pass };

        var result = await scenario.RunAsync();

        Assert.False(result.Verdict.Passed);
        Assert.Contains(result.Verdict.Duplicated, d => d.Cause == DuplicateCause.Unexplained);
        Assert.Empty(result.Verdict.Lost);
        var failure = Assert.Throws<ScenarioFailedException>(() => result.AssertPassed());
        output.WriteLine(failure.Message);
        Assert.Contains("seed 1234", failure.Message);
        Assert.Contains($"ACTORQUEUE_SEED=1234 dotnet test --filter \"FullyQualifiedName~{nameof(A_pipeline_that_loses_one_ack_in_a_thousand_is_caught_with_a_seed_that_replays_it)}\"", failure.Message);
        Assert.Contains("duplicated without cause", failure.Message);
    }

    [Fact]
    public async Task The_same_seed_gives_the_same_schedule_and_the_same_fates()
    {
        Scenario Make() => Scenario.Create("again", seed: 42)
            .WithQueue(q => q with { MaxAttempts = 3, RetryMaxBackoff = TimeSpan.FromSeconds(1) })
            .WithProducers(count: 2, messages: 150)
            .WithHandler(h => h with { FailureRate = 0.3, PoisonRate = 0.03 });
        var first = await Make().RunAsync();
        var second = await Make().RunAsync();

        first.AssertPassed();
        second.AssertPassed();
        // What each message's handler does is decided by the seed: the same messages fail, in the same attempts, and
        // the same ones end in the dead-letter store.
        Assert.Equal(Ids(first, HistoryKind.Nacked), Ids(second, HistoryKind.Nacked));
        Assert.Equal(Ids(first, HistoryKind.DeadLettered), Ids(second, HistoryKind.DeadLettered));
        Assert.NotEmpty(Ids(first, HistoryKind.DeadLettered));

        static string[] Ids(ScenarioResult r, HistoryKind kind) =>
            r.History.Events.Where(e => e.Kind == kind).Select(e => $"{e.MessageId}#{e.Attempt}").Order().ToArray();
    }

    [Theory]
    [InlineData(ProducerKind.Client)]
    [InlineData(ProducerKind.Plain)]
    public async Task Clients_and_plain_enqueues_are_simulated_too(ProducerKind via)
    {
        var scenario = Scenario.Create($"via-{via}", seed: 5)
            .WithQueue(q => q with { Capacity = 10, FullMode = FullMode.DropOldest })
            .WithProducers(count: 2, messages: 200, perSecond: 1000, burst: 20, via: via)
            .WithHandler(h => h with { FailureRate = 0.1, PoisonRate = 0.02 })
            .WithFault(TimeSpan.FromMilliseconds(150), new Fault.KillConsumer(0));

        var result = await scenario.RunAsync();

        output.WriteLine(result.Verdict.Describe());
        result.AssertPassed();
        if (via == ProducerKind.Plain)
        {
            // Bursts of plain enqueues on a full drop-oldest queue: the oldest ready messages make room (reported, not lost).
            Assert.True(result.Verdict.Dropped > 0, "a burst of plain enqueues on a full drop-oldest queue drops the oldest");
        }
        else
        {
            // The client sends within credit, so nothing is dropped and every poison message ends in the dead-letter store.
            Assert.Equal(0, result.Verdict.Dropped);
            Assert.True(result.Verdict.DeadLettered > 0, "poison messages end in the dead-letter store");
        }
    }

    [Fact]
    public async Task A_users_own_handler_runs_inside_the_simulation_with_its_own_payload()
    {
        var seen = new System.Collections.Concurrent.ConcurrentBag<string>();
        var scenario = Scenario.Create("own-handler", seed: 3)
            .WithProducers(count: 1, messages: 50)
            .WithPayload((producer, seq) => $"order-{producer}-{seq}")
            .WithHandler(h => h with
            {
                Inner = QueueHandler.From((d, _) =>
                {
                    seen.Add((string)d.Message);
                    return Task.CompletedTask;
                }),
            });

        (await scenario.RunAsync()).AssertPassed();

        Assert.Equal(Enumerable.Range(0, 50).Select(i => $"order-0-{i}").Order(), seen.Distinct().Order());
    }

    [Fact]
    public async Task A_durable_queue_crashed_twice_mid_run_recovers_from_its_sqlite_journal_and_loses_nothing()
    {
        var directory = Path.Combine(Path.GetTempPath(), "actor-queue-tests", Guid.NewGuid().ToString("N"));
        try
        {
            var scenario = Scenario.Create("durable-crash", seed: 11)
                .WithHocon($"actor-queue.durable.data-dir = \"{directory.Replace("\\", "/", StringComparison.Ordinal)}\"")
                .WithQueue(q => q with { Capacity = 100, Durable = true, AckTimeout = TimeSpan.FromSeconds(10) })
                .WithProducers(count: 2, messages: 200, perSecond: 100)
                .WithHandler(h => h with { FailureRate = 0.05 })
                .WithFault(TimeSpan.FromSeconds(0.5), new Fault.CrashQueue())
                .WithFault(TimeSpan.FromSeconds(1.5), new Fault.CrashQueue());

            var result = await scenario.RunAsync();

            output.WriteLine(result.Verdict.Describe());
            result.AssertPassed();
            Assert.Equal(2, result.History.Events.Count(e => e.Kind == HistoryKind.QueueCrashed));
            Assert.Equal(400, result.Verdict.Accepted);
            Assert.Equal(0, result.Verdict.DeadLettered);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try { Directory.Delete(directory, recursive: true); }
            catch (IOException) { }
        }
    }

    [Fact]
    public async Task A_fault_that_does_not_fit_the_scenario_is_refused_naming_it()
    {
        var error = await Assert.ThrowsAsync<ArgumentException>(() => Scenario.Create("bad-fault", 1).WithFault(TimeSpan.Zero, new Fault.CrashQueue()).RunAsync());
        Assert.Contains("CrashQueue needs a durable queue", error.Message);
    }
}
