using ActorQueue.Client;
using ActorQueue.Persistence;
using ActorQueue.Protocol;
using ActorQueue.Tests.Support;
using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence.TestKit;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using Microsoft.Data.Sqlite;
using Xunit;
using Xunit.Abstractions;

namespace ActorQueue.Tests.Persistence;

/// <summary>
/// A durable queue on a real SQLite file: what it accepted survives the actor system that accepted it, and nothing is
/// acknowledged or delivered before the journal holds it.
/// </summary>
public sealed class DurableQueueSpec : Akka.TestKit.Xunit2.TestKit, IDisposable
{
    private readonly string _directory;

    public DurableQueueSpec(ITestOutputHelper output) : this(output, Path.Combine(Path.GetTempPath(), "actor-queue-tests", Guid.NewGuid().ToString("N"))) { }

    private DurableQueueSpec(ITestOutputHelper output, string directory) : base(Config(directory), output: output) => _directory = directory;

    private static Config Config(string directory) => ConfigurationFactory.ParseString($$"""
        actor-queue.durable.data-dir = "{{directory.Replace("\\", "/", StringComparison.Ordinal)}}"
        actor-queue.queues.orders.durable = on
        akka.persistence.journal.test {
          class = "Akka.Persistence.TestKit.TestJournal, Akka.Persistence.TestKit"
          plugin-dispatcher = "akka.actor.default-dispatcher"
        }
        akka.persistence.snapshot-store.test {
          class = "Akka.Persistence.TestKit.TestSnapshotStore, Akka.Persistence.TestKit"
          plugin-dispatcher = "akka.actor.default-dispatcher"
        }
        """).WithFallback(ConfigurationFactory.ParseString(Specs.Hocon));

    private string File => Path.Combine(_directory, "queues.db");

    // A second actor system on the same file: what a process started again after the first one died would see.
    private async Task<ActorSystem> NextIncarnationAsync()
    {
        var next = ActorSystem.Create("next", Config(_directory));
        await Task.Yield();
        return next;
    }

    [Fact]
    public async Task What_a_durable_queue_accepted_survives_its_actor_system_and_comes_back_with_its_attempts()
    {
        var queue = await Sys.ActorQueues().CreateQueueAsync("orders", Specs.Queue(capacity: 200) with { Durable = true });
        for (var i = 0; i < 50; i++) queue.Tell(new Enqueue($"order-{i}", i));
        for (var i = 0; i < 50; i++) await ExpectMsgAsync(new EnqueueAccepted(i));
        var consumer = CreateTestProbe();
        queue.Tell(new Pull(50), consumer);
        var registered = await consumer.ExpectMsgAsync<ConsumerRegistered>();
        var held = await consumer.ExpectDeliveriesAsync(50);
        // Forty handled; the consumer's window shrinks to the ten it still holds, so the next fifty stay in the queue.
        queue.Tell(new Pull(10, registered.Epoch), consumer);
        queue.Tell(new AckRange(held[0].DeliveryId, held[39].DeliveryId), consumer);
        await AwaitAssertAsync(async () => Assert.Equal(40, (await queue.StatsAsync()).Acked));
        for (var i = 50; i < 100; i++) queue.Tell(new Enqueue($"order-{i}", i));
        for (var i = 50; i < 100; i++) await ExpectMsgAsync(new EnqueueAccepted(i));
        await Sys.Terminate();

        var next = await NextIncarnationAsync();
        try
        {
            var again = await next.ActorQueues().CreateQueueAsync("orders");
            var stats = await again.StatsAsync();
            Assert.Equal((60, 0), (stats.Held, stats.Dead));
            var probe = new TestProbe(next, new XunitAssertions());
            await probe.PullAsync(again, 100);
            var redelivered = await probe.ExpectDeliveriesAsync(60);
            // The ten that were in flight come first (their handler may have run: attempt 2), then the fifty never delivered.
            Assert.Equal(Enumerable.Range(40, 10).Select(i => ($"order-{i}", 2)), redelivered.Take(10).Select(d => ((string)d.Message, d.Attempt)));
            Assert.Equal(Enumerable.Range(50, 50).Select(i => ($"order-{i}", 1)), redelivered.Skip(10).Select(d => ((string)d.Message, d.Attempt)));
            Assert.True(redelivered.Min(d => d.DeliveryId) > held.Max(d => d.DeliveryId), "delivery ids never repeat across incarnations");
        }
        finally
        {
            await next.Terminate();
        }
    }

    // A queue on Akka.Persistence.TestKit's journal, whose writes the test holds until it opens the gate.
    private async Task<(IActorRef Queue, TaskCompletionSource Gate)> GatedQueueAsync(QueueSettings settings)
    {
        var options = new DurableQueueOptions { JournalPluginId = "akka.persistence.journal.test", SnapshotPluginId = "akka.persistence.snapshot-store.test" };
        var queue = Sys.ActorOf(new DurableQueueFactory(Sys, options).QueueProps("gated", settings with { Durable = true }), "gated");
        await queue.StatsAsync(); // recovered, and its recovery written
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var journal = TestJournal.FromRef(Akka.Persistence.Persistence.Instance.Apply(Sys).JournalFor("akka.persistence.journal.test"));
        await journal.OnWrite.FailIf(async _ =>
        {
            await gate.Task;
            return false;
        });
        return (queue, gate);
    }

    [Fact]
    public async Task Nothing_is_acknowledged_or_delivered_before_the_journal_holds_it()
    {
        var (queue, gate) = await GatedQueueAsync(Specs.Queue(capacity: 20));
        var consumer = CreateTestProbe();
        await consumer.PullAsync(queue, 5);
        var producer = CreateTestProbe();
        queue.Tell(new RegisterProducer("p", 5), producer);
        var credit = await producer.ExpectMsgAsync<ProducerCredit>();
        queue.Tell(new Enqueue("plain", 1));
        queue.Tell(new SequencedBatch("p", 1, ["a", "b"]), producer);

        // Held at the journal: no acceptance, no delivery.
        await ExpectNoMsgAsync(TimeSpan.FromMilliseconds(300));
        await producer.ExpectNoMsgAsync(TimeSpan.Zero);
        await consumer.ExpectNoMsgAsync(TimeSpan.Zero);
        Assert.Equal(0L, credit.AcceptedSeqNr);

        gate.SetResult();
        await ExpectMsgAsync(new EnqueueAccepted(1));
        await AwaitAssertAsync(async () => Assert.Equal(2L, (await producer.ExpectMsgAsync<ProducerCredit>()).AcceptedSeqNr));
        Assert.Equal(new object[] { "plain", "a", "b" }, (await consumer.ExpectDeliveriesAsync(3)).Select(d => d.Message));
    }

    [Fact]
    public async Task A_message_that_cannot_be_written_is_refused_at_enqueue_naming_its_type_and_the_rest_go_on()
    {
        var queue = await Sys.ActorQueues().CreateQueueAsync("orders");
        queue.Tell(new Enqueue(new Unwritable(), 1));
        var rejected = await ExpectMsgAsync<EnqueueRejected>();
        Assert.Equal(RejectReason.InvalidMessage, rejected.Reason);
        Assert.Contains(typeof(Unwritable).FullName!, rejected.Detail);

        // Through a client (a producer actor numbering its messages): the refused one fails alone, the others are taken.
        var client = new QueueClient<object>(Sys, "orders");
        var first = client.EnqueueAsync("before");
        var bad = client.EnqueueAsync(new Unwritable());
        var after = client.EnqueueAsync("after");
        await first;
        var error = await Assert.ThrowsAsync<EnqueueRejectedException>(() => bad);
        Assert.Equal(RejectReason.InvalidMessage, error.Reason);
        await after;
        var consumer = CreateTestProbe();
        await consumer.PullAsync(queue, 10);
        Assert.Equal(new object[] { "before", "after" }, (await consumer.ExpectDeliveriesAsync(2)).Select(d => d.Message));
        await client.DisposeAsync();
    }

    /// <summary>A message Akka's default (JSON) serializer cannot write: its property throws.</summary>
    public sealed class Unwritable
    {
        public string Value => throw new InvalidOperationException("not today");
    }

    [Fact]
    public async Task The_sqlite_file_is_created_in_wal_mode_in_the_configured_directory()
    {
        await Sys.ActorQueues().CreateQueueAsync("orders");
        Assert.True(System.IO.File.Exists(File), $"{File} was not created");
        await using var connection = new SqliteConnection($"Data Source={File};Mode=ReadOnly");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA journal_mode;";
        Assert.Equal("wal", (string?)await command.ExecuteScalarAsync());
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A file still held open by a pool is left for the temp directory's own cleanup.
        }
    }
}
