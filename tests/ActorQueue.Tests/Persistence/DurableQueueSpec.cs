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

    /// <summary>The PostgreSQL server the durable tests also run against (.ci/run starts one and sets this).</summary>
    public const string PostgresVariable = "ACTORQUEUE_TEST_POSTGRES";

    // An actor system on the store: the SQLite file of this test, or the PostgreSQL server CI starts.
    private static Config StoreConfig(string store, string directory, string queue)
    {
        var durable = store == "postgresql"
            ? $"actor-queue.durable {{ store = postgresql, connection-string = \"{Environment.GetEnvironmentVariable(PostgresVariable)}\" }}"
            : "";
        return ConfigurationFactory.ParseString($"""
            {durable}
            actor-queue.queues."{queue}".durable = on
            """).WithFallback(Config(directory));
    }

    internal static void SkipWithoutPostgres(string store) =>
        Skip.If(store == "postgresql" && string.IsNullOrEmpty(Environment.GetEnvironmentVariable(PostgresVariable)),
            $"No PostgreSQL server: set {PostgresVariable} to a connection string (\"Host=127.0.0.1;Port=54329;Username=postgres;Database=postgres\"), as .ci/run does after starting one.");

    [SkippableTheory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task What_a_durable_queue_accepted_survives_its_actor_system_and_comes_back_with_its_attempts(string store)
    {
        SkipWithoutPostgres(store);
        var name = $"orders-{Guid.NewGuid():N}";
        var first = ActorSystem.Create("first", StoreConfig(store, _directory, name));
        List<Delivery> held;
        try
        {
            var queue = await first.ActorQueues().CreateQueueAsync(name, Specs.Queue(capacity: 200) with { Durable = true });
            var producer = new TestProbe(first, new XunitAssertions());
            for (var i = 0; i < 50; i++) queue.Tell(new Enqueue($"order-{i}", i), producer);
            for (var i = 0; i < 50; i++) await producer.ExpectMsgAsync(new EnqueueAccepted(i));
            var consumer = new TestProbe(first, new XunitAssertions());
            queue.Tell(new Pull(50), consumer);
            var registered = await consumer.ExpectMsgAsync<ConsumerRegistered>();
            held = await consumer.ExpectDeliveriesAsync(50);
            // Forty handled; the consumer's window shrinks to the ten it still holds, so the next fifty stay in the queue.
            queue.Tell(new Pull(10, registered.Epoch), consumer);
            queue.Tell(new AckRange(held[0].DeliveryId, held[39].DeliveryId), consumer);
            await AwaitAssertAsync(async () => Assert.Equal(40, (await queue.StatsAsync()).Acked));
            for (var i = 50; i < 100; i++) queue.Tell(new Enqueue($"order-{i}", i), producer);
            for (var i = 50; i < 100; i++) await producer.ExpectMsgAsync(new EnqueueAccepted(i));
        }
        finally
        {
            await first.Terminate();
        }

        var next = ActorSystem.Create("next", StoreConfig(store, _directory, name));
        try
        {
            var again = await next.ActorQueues().CreateQueueAsync(name);
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

    [SkippableTheory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task Snapshots_bound_the_journal_and_a_restart_from_one_recovers_the_same_messages(string store)
    {
        SkipWithoutPostgres(store);
        var name = store == "postgresql" ? $"snapshotted-{Guid.NewGuid():N}" : "snapshotted";
        var config = ConfigurationFactory.ParseString("actor-queue.durable.snapshot-every = 20").WithFallback(StoreConfig(store, _directory, name));
        var first = ActorSystem.Create("first", config);
        var acked = new HashSet<int>();
        try
        {
            var queue = await first.ActorQueues().CreateQueueAsync(name, Specs.Queue(capacity: 500) with { Durable = true });
            var producer = new TestProbe(first, new XunitAssertions());
            var consumer = new TestProbe(first, new XunitAssertions());
            await consumer.PullAsync(queue, 1);
            // Many small bursts, each a journal row: after every second message, the consumer settles what it holds.
            for (var i = 0; i < 200; i++)
            {
                queue.Tell(new Enqueue(i, i), producer);
                await producer.ExpectMsgAsync(new EnqueueAccepted(i));
                if (i % 2 == 1) continue;
                var d = (await consumer.ExpectMsgAsync<DeliveryBatch>())[0];
                acked.Add(Convert.ToInt32(d.Message, System.Globalization.CultureInfo.InvariantCulture));
                queue.Tell(new Ack(d.DeliveryId), consumer);
            }
            await AwaitAssertAsync(async () => Assert.Equal(100, (await queue.StatsAsync()).Acked));
            if (store == "sqlite") await AwaitAssertAsync(async () =>
            {
                var (rows, snapshots) = await CountRowsAsync("actor-queue-snapshotted");
                Assert.True(snapshots is >= 1 and <= 2, $"{snapshots} snapshots kept");
                Assert.True(rows < 60, $"{rows} journal rows kept after snapshots of every 20 events");
            });
        }
        finally
        {
            await first.Terminate();
        }

        var next = ActorSystem.Create("next", config);
        try
        {
            var again = await next.ActorQueues().CreateQueueAsync(name);
            var stats = await again.StatsAsync();
            Assert.Equal(100, stats.Held);
            var probe = new TestProbe(next, new XunitAssertions());
            await probe.PullAsync(again, 200);
            var messages = (await probe.ExpectDeliveriesAsync(100)).Select(d => Convert.ToInt32(d.Message, System.Globalization.CultureInfo.InvariantCulture)).Order();
            Assert.Equal(Enumerable.Range(0, 200).Where(i => !acked.Contains(i)), messages);
        }
        finally
        {
            await next.Terminate();
        }
    }

    private async Task<(long Rows, long Snapshots)> CountRowsAsync(string persistenceId)
    {
        await using var connection = new SqliteConnection($"Data Source={File}");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT (SELECT COUNT(*) FROM journal WHERE persistence_id = $id), (SELECT COUNT(*) FROM snapshot WHERE persistence_id = $id)";
        command.Parameters.AddWithValue("$id", persistenceId);
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    [Fact]
    public async Task A_journal_failure_refuses_new_work_keeps_what_was_held_and_the_queue_comes_back_by_itself()
    {
        // A short busy timeout, so that a locked file fails a write in a second rather than thirty.
        var config = ConfigurationFactory.ParseString($"actor-queue.durable.connection-string = \"Data Source={File.Replace("\\", "/", StringComparison.Ordinal)};Default Timeout=1\"")
            .WithFallback(StoreConfig("sqlite", _directory, "fragile"));
        var system = ActorSystem.Create("fragile", config);
        var logs = new TestProbe(system, new XunitAssertions());
        system.EventStream.Subscribe(logs.Ref, typeof(Akka.Event.Warning));
        system.EventStream.Subscribe(logs.Ref, typeof(Akka.Event.Error));
        try
        {
            var queue = await system.ActorQueues().CreateQueueAsync("fragile", Specs.Queue(capacity: 100) with { Durable = true });
            var caller = new TestProbe(system, new XunitAssertions());
            for (var i = 0; i < 10; i++) queue.Tell(new Enqueue(i, i), caller);
            for (var i = 0; i < 10; i++) await caller.ExpectMsgAsync(new EnqueueAccepted(i));

            // Another process takes the file's write lock and keeps it.
            var locker = new SqliteConnection($"Data Source={File};Pooling=False");
            await locker.OpenAsync();
            await using (var begin = locker.CreateCommand())
            {
                begin.CommandText = "BEGIN EXCLUSIVE;";
                await begin.ExecuteNonQueryAsync();
            }
            queue.Tell(new Enqueue("during", 100), caller);
            var refused = await caller.ExpectMsgAsync<EnqueueRejected>(TimeSpan.FromSeconds(15));
            Assert.Equal((100L, RejectReason.Unavailable), (refused.CorrelationId, refused.Reason));
            Assert.Contains("journal", refused.Detail);
            // While it is down, new work is refused with the reason, not left unanswered.
            queue.Tell(new Enqueue("still", 101), caller);
            Assert.Equal(RejectReason.Unavailable, (await caller.ExpectMsgAsync<EnqueueRejected>(TimeSpan.FromSeconds(15))).Reason);

            // The lock goes: the queue starts again by itself, holding what it had accepted.
            await using (var rollback = locker.CreateCommand())
            {
                rollback.CommandText = "ROLLBACK;";
                await rollback.ExecuteNonQueryAsync();
            }
            await locker.DisposeAsync();
            await AwaitAssertAsync(async () =>
            {
                queue.Tell(new Enqueue("after", 102), caller);
                Assert.Equal(new EnqueueAccepted(102), await caller.ExpectMsgAsync<IEnqueueReply>(TimeSpan.FromSeconds(3)));
            }, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(500));
            var consumer = new TestProbe(system, new XunitAssertions());
            await consumer.PullAsync(queue, 100);
            var messages = (await consumer.ExpectDeliveriesAsync(11)).Select(d => d.Message.ToString()).ToList();
            Assert.Equal(Enumerable.Range(0, 10).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append("after"), messages);
        }
        finally
        {
            while (logs.HasMessages)
            {
                var l = logs.ReceiveOne(TimeSpan.Zero);
                Output?.WriteLine("LOG " + l + " " + (l as Akka.Event.Error)?.Cause?.GetBaseException().Message);
            }
            await system.Terminate();
        }
    }

    [Fact]
    public async Task A_message_that_cannot_be_read_back_after_a_restart_comes_back_as_an_unreadable_payload_and_the_queue_starts()
    {
        var config = ConfigurationFactory.ParseString($$"""
            akka.actor {
              serializers.fragile = "{{typeof(FragileSerializer).AssemblyQualifiedName}}"
              serialization-bindings { "{{typeof(FragileOrder).FullName}}, {{typeof(FragileOrder).Assembly.GetName().Name}}" = fragile }
            }
            """).WithFallback(StoreConfig("sqlite", _directory, "fragile-reads"));
        var first = ActorSystem.Create("first", config);
        try
        {
            var queue = await first.ActorQueues().CreateQueueAsync("fragile-reads", Specs.Queue(capacity: 10) with { Durable = true });
            var caller = new TestProbe(first, new XunitAssertions());
            queue.Tell(new Enqueue(new FragileOrder("kept"), 1), caller);
            queue.Tell(new Enqueue("plain", 2), caller);
            await caller.ExpectMsgAsync(new EnqueueAccepted(1));
            await caller.ExpectMsgAsync(new EnqueueAccepted(2));
        }
        finally
        {
            await first.Terminate();
        }

        // The next version of the application cannot read the type back.
        FragileSerializer.FailReads = true;
        var next = ActorSystem.Create("next", config);
        try
        {
            var queue = await next.ActorQueues().CreateQueueAsync("fragile-reads");
            Assert.Equal(2, (await queue.StatsAsync()).Held);
            var consumer = new TestProbe(next, new XunitAssertions());
            await consumer.PullAsync(queue, 10);
            var delivered = await consumer.ExpectDeliveriesAsync(2);
            var unreadable = Assert.IsType<UnreadablePayload>(delivered[0].Message);
            Assert.Equal(FragileSerializer.Id, unreadable.SerializerId);
            Assert.Equal("kept", System.Text.Encoding.UTF8.GetString(unreadable.Bytes));
            Assert.Contains("cannot read", unreadable.Error);
            Assert.Equal("plain", delivered[1].Message);
        }
        finally
        {
            FragileSerializer.FailReads = false;
            await next.Terminate();
        }
    }

    /// <summary>A message of the application's own, written by its own serializer.</summary>
    public sealed record FragileOrder(string Name);

    /// <summary>Writes <see cref="FragileOrder"/> as its name; told to, it cannot read one back, as after a breaking change.</summary>
    public sealed class FragileSerializer(ExtendedActorSystem system) : Akka.Serialization.Serializer(system)
    {
        public const int Id = 9123;

        public static volatile bool FailReads;

        public override int Identifier => Id;

        public override bool IncludeManifest => false;

        public override byte[] ToBinary(object obj) => System.Text.Encoding.UTF8.GetBytes(((FragileOrder)obj).Name);

        public override object FromBinary(byte[] bytes, Type? type) =>
            FailReads ? throw new System.Runtime.Serialization.SerializationException("this version cannot read a FragileOrder") : new FragileOrder(System.Text.Encoding.UTF8.GetString(bytes));
    }

    [Fact]
    public async Task On_a_read_only_file_the_queue_refuses_work_with_the_reason_and_keeps_what_the_file_holds()
    {
        var config = StoreConfig("sqlite", _directory, "read-only");
        var first = ActorSystem.Create("first", config);
        try
        {
            var queue = await first.ActorQueues().CreateQueueAsync("read-only", Specs.Queue(capacity: 10) with { Durable = true });
            var caller = new TestProbe(first, new XunitAssertions());
            for (var i = 0; i < 3; i++) queue.Tell(new Enqueue(i, i), caller);
            for (var i = 0; i < 3; i++) await caller.ExpectMsgAsync(new EnqueueAccepted(i));
        }
        finally
        {
            await first.Terminate();
        }

        // Mode=ReadOnly stands for a file the process may no longer write (chmod does not stop root).
        var readOnly = ConfigurationFactory.ParseString($"actor-queue.durable.connection-string = \"Data Source={File.Replace("\\", "/", StringComparison.Ordinal)};Mode=ReadOnly\"").WithFallback(config);
        var next = ActorSystem.Create("next", readOnly);
        var logs = new TestProbe(next, new XunitAssertions());
        next.EventStream.Subscribe(logs.Ref, typeof(Akka.Event.Error));
        try
        {
            var queue = await next.ActorQueues().CreateQueueAsync("read-only");
            var caller = new TestProbe(next, new XunitAssertions());
            await AwaitAssertAsync(async () =>
            {
                queue.Tell(new Enqueue("new", 9), caller);
                var refused = await caller.ExpectMsgAsync<EnqueueRejected>(TimeSpan.FromSeconds(3));
                Assert.Equal(RejectReason.Unavailable, refused.Reason);
            }, TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(200));
            // The cause is in the log, named as SQLite names it.
            await AwaitAssertAsync(() =>
            {
                var error = logs.ExpectMsg<Akka.Event.Error>(TimeSpan.FromSeconds(5));
                Assert.Contains("readonly", error.Cause?.ToString() ?? "", StringComparison.OrdinalIgnoreCase);
            }, TimeSpan.FromSeconds(20));
        }
        finally
        {
            await next.Terminate();
        }
        SqliteConnection.ClearAllPools();
        await using var check = new SqliteConnection($"Data Source={File};Mode=ReadOnly");
        await check.OpenAsync();
        await using var count = check.CreateCommand();
        count.CommandText = "SELECT COUNT(*) FROM journal WHERE persistence_id = 'actor-queue-read-only'";
        Assert.True((long)(await count.ExecuteScalarAsync())! >= 2, "the journal kept what it held");
    }

    [SkippableFact]
    public async Task A_full_disk_refuses_new_work_loses_nothing_accepted_and_the_queue_comes_back_when_space_does()
    {
        // A real full disk: the SQLite file lives on a tmpfs of 1 MiB, which the test grows once the queue has filled it.
        using var disk = SmallDisk.Mount(Path.Combine(_directory, "disk"), "1m");
        Skip.If(disk.Unavailable is not null, disk.Unavailable);
        var file = Path.Combine(disk.Path, "queues.db").Replace("\\", "/", StringComparison.Ordinal);
        var config = ConfigurationFactory.ParseString($"actor-queue.durable.connection-string = \"Data Source={file}\"")
            .WithFallback(StoreConfig("sqlite", _directory, "full"));
        var system = ActorSystem.Create("full", config);
        try
        {
            var queue = await system.ActorQueues().CreateQueueAsync("full", Specs.Queue(capacity: 1_000) with { Durable = true });
            var caller = new TestProbe(system, new XunitAssertions());
            var accepted = new List<string>();
            EnqueueRejected? refused = null;
            // 8 KiB messages, one at a time, until the disk is full: about a hundred fit.
            for (var i = 0; refused is null; i++)
            {
                Assert.True(i < 1_000, "the disk never filled");
                var body = $"{i:D5}:" + new string((char)('a' + i % 26), 8 * 1024);
                queue.Tell(new Enqueue(body, i), caller);
                switch (await caller.ExpectMsgAsync<IEnqueueReply>(TimeSpan.FromSeconds(30)))
                {
                    case EnqueueAccepted ok:
                        Assert.Equal(i, ok.CorrelationId);
                        accepted.Add(body);
                        break;
                    case EnqueueRejected no:
                        refused = no;
                        break;
                }
            }
            Assert.Equal(RejectReason.Unavailable, refused.Reason);
            Assert.Contains("journal", refused.Detail);
            Assert.True(accepted.Count >= 10, $"only {accepted.Count} fitted before the disk was full");

            // Space comes back: the queue starts again by itself, with every message it had accepted.
            disk.Resize("64m");
            await AwaitAssertAsync(async () =>
            {
                queue.Tell(new Enqueue("after", 5_000), caller);
                Assert.Equal(new EnqueueAccepted(5_000), await caller.ExpectMsgAsync<IEnqueueReply>(TimeSpan.FromSeconds(5)));
            }, TimeSpan.FromSeconds(45), TimeSpan.FromMilliseconds(500));
            var consumer = new TestProbe(system, new XunitAssertions());
            await consumer.PullAsync(queue, 1_000);
            var messages = (await consumer.ExpectDeliveriesAsync(accepted.Count + 1)).Select(d => (string)d.Message).ToList();
            Assert.Equal(accepted.Append("after"), messages);
        }
        finally
        {
            await system.Terminate();
            SqliteConnection.ClearAllPools();
        }
    }

    [SkippableFact]
    public async Task A_postgresql_server_stopped_mid_run_costs_refusals_not_messages_and_the_queue_comes_back_when_it_does()
    {
        var unavailable = PostgresServer.Unavailable();
        Skip.If(unavailable is not null, unavailable);
        using var server = PostgresServer.Create();
        var config = ConfigurationFactory.ParseString($"actor-queue.durable {{ store = postgresql, connection-string = \"{server.ConnectionString}\" }}")
            .WithFallback(StoreConfig("sqlite", _directory, "pg-outage"));
        var system = ActorSystem.Create("pg-outage", config);
        try
        {
            var queue = await system.ActorQueues().CreateQueueAsync("pg-outage", Specs.Queue(capacity: 100) with { Durable = true });
            var caller = new TestProbe(system, new XunitAssertions());
            for (var i = 0; i < 5; i++) queue.Tell(new Enqueue(i, i), caller);
            for (var i = 0; i < 5; i++) await caller.ExpectMsgAsync(new EnqueueAccepted(i));

            server.Stop();
            queue.Tell(new Enqueue("during", 10), caller);
            var refused = await caller.ExpectMsgAsync<EnqueueRejected>(TimeSpan.FromSeconds(30));
            Assert.Equal((10L, RejectReason.Unavailable), (refused.CorrelationId, refused.Reason));

            server.Start();
            await AwaitAssertAsync(async () =>
            {
                queue.Tell(new Enqueue("after", 11), caller);
                Assert.Equal(new EnqueueAccepted(11), await caller.ExpectMsgAsync<IEnqueueReply>(TimeSpan.FromSeconds(5)));
            }, TimeSpan.FromSeconds(45), TimeSpan.FromMilliseconds(500));
            var consumer = new TestProbe(system, new XunitAssertions());
            await consumer.PullAsync(queue, 100);
            var messages = (await consumer.ExpectDeliveriesAsync(6)).Select(d => d.Message.ToString()).ToList();
            Assert.Equal(new[] { "0", "1", "2", "3", "4", "after" }, messages);
        }
        finally
        {
            await system.Terminate();
        }
    }

    [Fact]
    public async Task A_corrupt_file_fails_the_durable_queue_with_an_error_naming_it_and_the_rest_of_the_system_runs_on()
    {
        Directory.CreateDirectory(_directory);
        // Not a database at all: what a disk fault or a stray copy can leave behind.
        await System.IO.File.WriteAllBytesAsync(File, Enumerable.Range(0, 8192).Select(i => (byte)(i * 31 % 251)).ToArray());
        var config = ConfigurationFactory.ParseString($"actor-queue.durable.connection-string = \"Data Source={File.Replace("\\", "/", StringComparison.Ordinal)}\"")
            .WithFallback(StoreConfig("sqlite", _directory, "corrupt"));
        var system = ActorSystem.Create("corrupt", config);
        try
        {
            var queues = system.ActorQueues();
            var error = await Assert.ThrowsAsync<ConfigurationException>(() => queues.CreateQueueAsync("corrupt", Specs.Queue(capacity: 10) with { Durable = true }));
            Assert.Contains(File, error.Message);
            Assert.Contains("not a database", error.Message);
            Assert.Contains("actor-queue.durable.data-dir", error.Message);
            // An in-memory queue beside it is not held up.
            var caller = new TestProbe(system, new XunitAssertions());
            var other = await queues.CreateQueueAsync("beside", Specs.Queue(capacity: 10));
            other.Tell(new Enqueue("fine", 2), caller);
            await caller.FishForMessageAsync(m => m is EnqueueAccepted { CorrelationId: 2 }, TimeSpan.FromSeconds(5));
        }
        finally
        {
            await system.Terminate();
        }
    }

    // Found in review: the queue watches its consumers directly, but their messages reach it through its supervisor, so
    // a consumer's termination could overtake the acks it sent just before stopping.
    [Fact]
    public async Task Acks_a_consumer_sends_just_before_it_stops_are_never_overtaken_by_its_termination()
    {
        var queue = await Sys.ActorQueues().CreateQueueAsync("orders", Specs.Queue(capacity: 500) with { Durable = true });
        for (var round = 0; round < 20; round++)
        {
            for (var i = 0; i < 5; i++) queue.Tell(new Enqueue(i, i), TestActor);
            for (var i = 0; i < 5; i++) await ExpectMsgAsync<EnqueueAccepted>();
            var consumer = CreateTestProbe();
            await consumer.PullAsync(queue, 5);
            var held = await consumer.ExpectDeliveriesAsync(5);
            queue.Tell(new AckRange(held[0].DeliveryId, held[^1].DeliveryId), consumer);
            Sys.Stop(consumer);
            var expected = 5L * (round + 1);
            await AwaitConditionAsync(async () => (await queue.StatsAsync()).Acked >= expected, TimeSpan.FromSeconds(15));
            var stats = await queue.StatsAsync();
            Assert.True((stats.Acked, stats.Held, stats.Redelivered) == (expected, 0, 0L), $"round {round}: {stats}");
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
    public async Task TryEnqueue_against_a_queue_whose_journal_hangs_times_out_saying_the_outcome_is_unknown()
    {
        var config = ConfigurationFactory.ParseString("""
            actor-queue.durable.journal-plugin-id = "akka.persistence.journal.test"
            actor-queue.durable.snapshot-plugin-id = "akka.persistence.snapshot-store.test"
            """).WithFallback(StoreConfig("sqlite", _directory, "hanging"));
        var system = ActorSystem.Create("hanging", config);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            var queue = await system.ActorQueues().CreateQueueAsync("hanging", Specs.Queue(capacity: 10) with { Durable = true });
            await queue.StatsAsync(); // recovered, its recovery written
            var journal = TestJournal.FromRef(Akka.Persistence.Persistence.Instance.Apply(system).JournalFor("akka.persistence.journal.test"));
            await journal.OnWrite.FailIf(async _ =>
            {
                await gate.Task;
                return false;
            });
            await using var client = new QueueClient<string>(system, "hanging", new QueueClientOptions { AskTimeout = TimeSpan.FromMilliseconds(500) });
            var error = await Assert.ThrowsAsync<TimeoutException>(() => client.TryEnqueueAsync("held"));
            Assert.Contains("may or may not have been accepted", error.Message);
        }
        finally
        {
            gate.TrySetResult();
            await system.Terminate();
        }
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
        // What the README promises about power loss: this SQLite build syncs every commit (synchronous = FULL, 2).
        command.CommandText = "PRAGMA synchronous;";
        Assert.Equal(2L, (long)(await command.ExecuteScalarAsync())!);
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
