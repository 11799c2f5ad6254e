using ActorQueue.Protocol;
using ActorQueue.Tests.Support;
using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Xunit;
using Xunit.Abstractions;

namespace ActorQueue.Tests.Actors;

/// <summary>
/// What CoordinatedShutdown does to queues that still hold work: it drains them for actor-queue.drain-timeout (not the
/// phase's 5 s default), does not wait for a queue no consumer can empty, and says at error level how many accepted
/// messages an in-memory queue lost; a durable queue keeps them.
/// </summary>
public sealed class ShutdownSpec : Akka.TestKit.Xunit2.TestKit
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "actor-queue-tests", Guid.NewGuid().ToString("N"));

    public ShutdownSpec(ITestOutputHelper output) : base(Specs.Hocon, output: output) { }

    private static Config WithDrain(string extra) =>
        ConfigurationFactory.ParseString("actor-queue.drain-on-shutdown = on\n" + extra).WithFallback(ConfigurationFactory.ParseString(Specs.Hocon));

    private static TimeSpan PhaseTimeout(ActorSystem system) =>
        CoordinatedShutdown.Get(system).Timeout(CoordinatedShutdown.PhaseServiceRequestsDone);

    private static Task RunShutdown(ActorSystem system) =>
        CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClrExitReason.Instance);

    private static async Task EnqueueAsync(IActorRef queue, int count)
    {
        for (var i = 0; i < count; i++)
            Assert.IsType<EnqueueAccepted>(await queue.Ask<IEnqueueReply>(new Enqueue($"job-{i}", i), TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task The_shutdown_phase_is_given_the_drain_timeout_and_one_the_user_set_shorter_is_reported_at_start()
    {
        var system = ActorSystem.Create("phase", WithDrain("actor-queue.drain-timeout = 45s"));
        try
        {
            system.ActorQueues();
            Assert.Equal(TimeSpan.FromSeconds(50), PhaseTimeout(system));
        }
        finally { await system.Terminate(); }

        var user = ActorSystem.Create("user-phase", WithDrain("akka.coordinated-shutdown.phases.service-requests-done.timeout = 2s"));
        try
        {
            var log = LogCollector.Attach(user);
            user.ActorQueues();
            Assert.Equal(TimeSpan.FromSeconds(2), PhaseTimeout(user));
            var warning = Assert.Single(log.At(LogLevel.WarningLevel), w => w.Contains("drain-timeout", StringComparison.Ordinal));
            Assert.Contains("actor-queue.drain-timeout = 30s", warning);
            Assert.Contains("akka.coordinated-shutdown.phases.service-requests-done.timeout = 2s", warning);
            Assert.Contains("queues get 1.5s to drain", warning);
        }
        finally { await user.Terminate(); }
    }

    [Fact]
    public async Task A_queue_with_no_consumer_does_not_hold_up_shutdown_and_its_loss_is_logged_as_an_error_with_the_count()
    {
        var system = ActorSystem.Create("no-consumer", WithDrain("actor-queue.drain-timeout = 60s"));
        var log = LogCollector.Attach(system);
        var queue = await system.ActorQueues().CreateQueueAsync("idle", Specs.Queue());
        await EnqueueAsync(queue, 5);

        // Waiting for a consumer would take the whole minute; the test allows a third of it.
        await RunShutdown(system).WaitAsync(TimeSpan.FromSeconds(20));

        var error = Assert.Single(log.At(LogLevel.ErrorLevel));
        Assert.Contains("Queue idle stopped draining with 5 accepted messages not yet settled (no consumer is attached to settle them)", error);
        Assert.Contains("lost", error);
    }

    [Fact]
    public async Task A_drain_whose_time_is_up_stops_the_queue_and_logs_how_many_accepted_messages_were_lost()
    {
        var system = ActorSystem.Create("slow", WithDrain("actor-queue.drain-timeout = 1s"));
        var log = LogCollector.Attach(system);
        var never = new TaskCompletionSource();
        try
        {
            var queues = system.ActorQueues();
            var queue = await queues.CreateQueueAsync("stuck", Specs.Queue());
            var started = 0;
            await queues.StartConsumerAsync("stuck", QueueHandler.From(async (_, _) =>
            {
                Interlocked.Increment(ref started);
                await never.Task;
            }), new ConsumerSettings { Prefetch = 2, Concurrency = 2 });
            await EnqueueAsync(queue, 5);
            await AwaitConditionAsync(() => Task.FromResult(Volatile.Read(ref started) == 2));

            await RunShutdown(system).WaitAsync(TimeSpan.FromSeconds(20));

            var error = Assert.Single(log.At(LogLevel.ErrorLevel), e => e.Contains("stuck", StringComparison.Ordinal));
            Assert.Contains("Queue stuck stopped draining with 5 accepted messages not yet settled (its drain's time is up)", error);
        }
        finally { never.SetResult(); }
    }

    [Fact]
    public async Task A_durable_queue_with_no_consumer_stops_at_shutdown_and_keeps_what_it_held_for_the_next_start()
    {
        var config = WithDrain($$"""
            actor-queue.drain-timeout = 60s
            actor-queue.durable.data-dir = "{{_directory.Replace("\\", "/", StringComparison.Ordinal)}}"
            actor-queue.queues.kept.durable = on
            """);
        var first = ActorSystem.Create("first", config);
        var log = LogCollector.Attach(first);
        var queue = await first.ActorQueues().CreateQueueAsync("kept");
        await EnqueueAsync(queue, 4);

        await RunShutdown(first).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Empty(log.At(LogLevel.ErrorLevel));
        Assert.Contains(log.At(LogLevel.WarningLevel), w => w.Contains("Queue kept stopped draining with 4 accepted messages not yet settled", StringComparison.Ordinal)
                                                             && w.Contains("journal keeps them", StringComparison.Ordinal));

        var next = ActorSystem.Create("next", config);
        try
        {
            var again = await next.ActorQueues().CreateQueueAsync("kept");
            Assert.Equal(4, (await again.StatsAsync()).Held);
        }
        finally { await next.Terminate(); }
    }

    [Fact]
    public async Task DrainAll_reports_what_each_queue_still_held_when_it_stopped()
    {
        var queues = Sys.ActorQueues();
        var empty = await queues.CreateQueueAsync("report-empty", Specs.Queue());
        var idle = await queues.CreateQueueAsync("report-idle", Specs.Queue());
        await EnqueueAsync(idle, 3);

        var report = await queues.Guardian.Ask<AllDrained>(new DrainAll { StopWithoutConsumers = true, Timeout = TimeSpan.FromSeconds(30) }, TimeSpan.FromSeconds(10));

        Assert.Equal(new[] { new Drained("report-empty"), new Drained("report-idle", 3) }, report.Queues.OrderBy(q => q.QueueName));
        Assert.Empty(report.Unanswered);
        Assert.Equal(3, report.Left);
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try
        {
            if (Directory.Exists(_directory)) Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A file still held open by a pool is left for the temp directory's own cleanup.
        }
    }
}
