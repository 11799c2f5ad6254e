using ActorQueue.Protocol;
using ActorQueue.Tests.Support;
using Akka;
using Akka.Actor;
using Akka.Configuration;
using Xunit;
using Xunit.Abstractions;

namespace ActorQueue.Tests.Actors;

public class QueueGuardianSpec : Akka.TestKit.Xunit2.TestKit
{
    private const string Config = """
        actor-queue.queues.orders { capacity = 0 }
        actor-queue.queues.bulk { capacity = 5000, full-mode = drop-oldest }
        """;

    public QueueGuardianSpec(ITestOutputHelper output) : base(Config + Specs.Hocon, output: output) { }

    [Fact]
    public async Task Guardian_must_start_at_user_actor_queue_and_create_named_queues_once()
    {
        var queues = Sys.ActorQueues();
        Assert.Equal("/user/actor-queue", queues.Guardian.Path.ToStringWithoutAddress());
        var first = await queues.CreateQueueAsync("jobs");
        var again = await queues.CreateQueueAsync("jobs");
        Assert.Equal(first, again);
        Assert.Equal(first, await queues.GetQueueAsync("jobs"));
        Assert.Equal("/user/actor-queue/jobs", first.Path.ToStringWithoutAddress());
        Assert.NotEqual(first, await queues.CreateQueueAsync("other"));
    }

    [Fact]
    public async Task Guardian_must_apply_per_queue_hocon_overrides()
    {
        var bulk = await Sys.ActorQueues().CreateQueueAsync("bulk");
        Assert.Equal(5000, (await bulk.StatsAsync()).Capacity);
    }

    [Fact]
    public async Task Guardian_must_fail_queue_creation_naming_the_bad_key_and_value()
    {
        var error = await Assert.ThrowsAsync<ConfigurationException>(() => Sys.ActorQueues().CreateQueueAsync("orders"));
        Assert.Contains("actor-queue.queues.\"orders\".capacity = 0", error.Message);
        Assert.Contains("at least 1", error.Message);
    }

    [Fact]
    public async Task Guardian_must_refuse_an_invalid_queue_name_and_an_unknown_queue()
    {
        var badName = await Assert.ThrowsAsync<ArgumentException>(() => Sys.ActorQueues().CreateQueueAsync("no spaces/here"));
        Assert.Contains("no spaces/here", badName.Message);
        var unknown = await Assert.ThrowsAsync<InvalidOperationException>(() => Sys.ActorQueues().StartConsumerAsync("nope", new RecordingHandler()));
        Assert.Contains("nope", unknown.Message);
    }

    [Theory]
    [InlineData(typeof(InvalidOperationException), Directive.Resume)]
    [InlineData(typeof(NullReferenceException), Directive.Resume)]
    [InlineData(typeof(ActorKilledException), Directive.Stop)]
    [InlineData(typeof(DeathPactException), Directive.Stop)]
    public void Guardian_must_resume_failures_and_stop_only_deliberate_kills(Type exception, Directive expected)
    {
        var cause = exception == typeof(ActorKilledException) ? new ActorKilledException("kill")
            : exception == typeof(DeathPactException) ? new DeathPactException(TestActor)
            : (Exception)Activator.CreateInstance(exception)!;
        Assert.Equal(expected, QueueGuardian.Decide(cause));
    }

    [Fact]
    public async Task Guardian_must_restart_a_crashed_consumer_with_backoff_and_redeliver_its_work()
    {
        var queues = Sys.ActorQueues();
        var queue = await queues.CreateQueueAsync("crashy", Specs.Queue(capacity: 50));
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handled = new System.Collections.Concurrent.ConcurrentBag<(object Message, int Attempt)>();
        var started = 0;
        var supervisor = await queues.StartConsumerAsync("crashy", QueueHandler.From(async (d, _) =>
        {
            Interlocked.Increment(ref started);
            await gate.Task;
            handled.Add((d.Message, d.Attempt));
        }), new ConsumerSettings { Prefetch = 5, Concurrency = 5, RestartMinBackoff = TimeSpan.FromMilliseconds(50), RestartMaxBackoff = TimeSpan.FromMilliseconds(100) });
        for (var i = 0; i < 5; i++) queue.Tell(new Enqueue(i), ActorRefs.NoSender);
        // All five handlers running when the consumer dies: each counts an attempt.
        await AwaitConditionAsync(() => Task.FromResult(Volatile.Read(ref started) == 5));

        var first = await Sys.ActorSelection(supervisor.Path / "consumer").ResolveOne(TimeSpan.FromSeconds(3));
        Watch(first);
        first.Tell(Kill.Instance);
        await ExpectTerminatedAsync(first);
        gate.SetResult();

        await AwaitAssertAsync(async () => Assert.Equal(5, (await queue.StatsAsync()).Acked), TimeSpan.FromSeconds(5));
        var second = await Sys.ActorSelection(supervisor.Path / "consumer").ResolveOne(TimeSpan.FromSeconds(3));
        Assert.NotEqual(first, second);
        Assert.Equal(5, (await queue.StatsAsync()).Redelivered);
        Assert.All(handled.Where(h => h.Attempt == 1), h => Assert.Contains(handled, x => x.Message.Equals(h.Message) && x.Attempt == 2));
    }

    [Fact]
    public async Task Coordinated_shutdown_drains_queues_before_the_system_stops()
    {
        var config = Akka.Configuration.ConfigurationFactory.ParseString("actor-queue.drain-on-shutdown = on")
            .WithFallback(Akka.Configuration.ConfigurationFactory.ParseString(Specs.Hocon));
        using var system = ActorSystem.Create("shutdown", config);
        var queues = system.ActorQueues();
        var queue = await queues.CreateQueueAsync("jobs", Specs.Queue());
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handled = new System.Collections.Concurrent.ConcurrentBag<object>();
        await queues.StartConsumerAsync("jobs", QueueHandler.From(async (d, _) =>
        {
            await release.Task;
            handled.Add(d.Message);
        }));
        for (var i = 0; i < 3; i++) queue.Tell(new Enqueue(i), ActorRefs.NoSender);
        await AwaitAssertAsync(async () => Assert.Equal(3, (await queue.StatsAsync()).InFlight));

        var shutdown = CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClrExitReason.Instance);
        // Without the drain the phases finish in milliseconds; with it, shutdown waits for the held work.
        Assert.NotSame(shutdown, await Task.WhenAny(shutdown, Task.Delay(300)));
        release.SetResult();
        await shutdown.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(3, handled.Count);
    }

    [Fact]
    public async Task Guardian_must_drain_every_queue_on_request()
    {
        var queues = Sys.ActorQueues();
        var a = await queues.CreateQueueAsync("drain-a", Specs.Queue());
        var b = await queues.CreateQueueAsync("drain-b", Specs.Queue());
        a.Tell(new Enqueue("held"));
        await ExpectMsgAsync<EnqueueAccepted>();
        var handler = new RecordingHandler();
        await queues.StartConsumerAsync("drain-a", handler);
        Watch(a);
        Watch(b);
        var done = await queues.Guardian.Ask<AllDrained>(DrainAll.Instance, TimeSpan.FromSeconds(5));
        Assert.Equal(0, done.Left);
        Assert.True(handler.Completed.ContainsKey("held"));
        var stopped = new[] { (await ExpectMsgAsync<Terminated>()).ActorRef, (await ExpectMsgAsync<Terminated>()).ActorRef };
        Assert.Equal(new[] { a, b }.OrderBy(r => r.Path.Name), stopped.OrderBy(r => r.Path.Name));
    }
}
