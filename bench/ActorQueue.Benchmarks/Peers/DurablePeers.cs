using System.Threading.Channels;
using ActorQueue.Persistence;
using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Microsoft.Data.Sqlite;

namespace ActorQueue.Benchmarks.Peers;

/// <summary>A fresh SQLite file (WAL) per run, in a directory of its own, deleted when the run is over.</summary>
internal sealed class ScratchStore : IDisposable
{
    public ScratchStore()
    {
        Directory = Path.Combine(Path.GetTempPath(), "actor-queue-bench", Guid.NewGuid().ToString("N"));
        File = Path.Combine(Directory, "bench.db");
        DurableQueueFactory.PrepareSqlite(File);
    }

    public string Directory { get; }

    public string File { get; }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // Left for the temp directory's own cleanup.
        }
    }
}

/// <summary>A run whose teardown also removes its store.</summary>
internal sealed class StoreRun(IPeerRun inner, ScratchStore store) : IPeerRun
{
    public void Emit(long count, long emittedAt) => inner.Emit(count, emittedAt);

    public async ValueTask DisposeAsync()
    {
        await inner.DisposeAsync();
        store.Dispose();
    }
}

/// <summary>
/// The ceiling of the store itself: Microsoft.Data.Sqlite inserting the same payloads (Work, written by Akka's
/// serializer for it, as the queue writes them) into a WAL-mode file, 1,000 rows a transaction, one prepared command,
/// one writer; each message is handed to the consumer once its transaction has committed.
/// </summary>
internal sealed class SqliteCeilingPeer : Peer
{
    public override string Name => "Raw SQLite";

    public override string Description => "Microsoft.Data.Sqlite, WAL, prepared INSERT of the serialized payload, 1,000-row transactions, one writer; handled after commit";

    public override bool Supports(Shape shape) => shape is { Producers: 1, Consumers: 1 };

    public override async Task<IPeerRun> StartAsync(RunContext context)
    {
        var store = new ScratchStore();
        var system = CreateSystem("raw-sqlite");
        var connection = new SqliteConnection($"Data Source={store.File}");
        await connection.OpenAsync();
        await using (var create = connection.CreateCommand())
        {
            create.CommandText = "CREATE TABLE messages (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)";
            await create.ExecuteNonQueryAsync();
        }
        var emits = Channel.CreateUnbounded<Emit>(new UnboundedChannelOptions { SingleReader = true });
        var cancel = new CancellationTokenSource();
        var writer = Task.Run(() => WriteAsync(system, connection, emits.Reader, context.Probe, cancel.Token));
        return new StoreRun(new Run(system, connection, emits, cancel, writer), store);
    }

    private static async Task WriteAsync(ActorSystem system, SqliteConnection connection, ChannelReader<Emit> emits, Probe probe, CancellationToken ct)
    {
        var serializer = system.Serialization.FindSerializerForType(typeof(Work));
        await using var insert = connection.CreateCommand();
        insert.CommandText = "INSERT INTO messages (id, payload) VALUES ($id, $payload)";
        var id = insert.Parameters.Add("$id", SqliteType.Integer);
        var payload = insert.Parameters.Add("$payload", SqliteType.Blob);
        insert.Prepare();
        var batch = new List<Work>(1000);
        long seq = 0;
        var pending = 0L;
        long emittedAt = 0;
        while (await emits.WaitToReadAsync(ct))
        {
            while (emits.TryRead(out var e))
            {
                pending += e.Count;
                emittedAt = e.EmittedAt;
            }
            while (pending > 0)
            {
                var n = (int)Math.Min(1000, pending);
                pending -= n;
                await using (var tx = (SqliteTransaction)await connection.BeginTransactionAsync(ct))
                {
                    insert.Transaction = tx;
                    for (var i = 0; i < n; i++)
                    {
                        var w = new Work(++seq, emittedAt);
                        id.Value = w.Id;
                        payload.Value = serializer.ToBinary(w);
                        insert.ExecuteNonQuery();
                        batch.Add(w);
                    }
                    await tx.CommitAsync(ct);
                }
                foreach (var w in batch) probe.Handle(w);
                batch.Clear();
            }
        }
    }

    private sealed class Run(ActorSystem system, SqliteConnection connection, Channel<Emit> emits, CancellationTokenSource cancel, Task writer) : IPeerRun
    {
        public void Emit(long count, long emittedAt) => emits.Writer.TryWrite(new Emit(count, emittedAt));

        public async ValueTask DisposeAsync()
        {
            await cancel.CancelAsync();
            try
            {
                await writer;
            }
            catch (OperationCanceledException)
            {
                // Stopped.
            }
            await connection.DisposeAsync();
            await system.Terminate();
        }
    }
}

/// <summary>
/// The plugin's own ceiling: a persistent actor writing the same messages through Akka.Persistence.Sql on a SQLite file,
/// PersistAll of up to 1,000 events at a time (one write in flight), each handed to the consumer in its event's callback.
/// </summary>
internal sealed class PersistAllPeer : Peer
{
    public override string Name => "Akka.Persistence.Sql PersistAll";

    public override string Description => "a persistent actor on Akka.Persistence.Sql (SQLite, WAL): PersistAll of up to 1,000 events, handled in the callback";

    public override bool Supports(Shape shape) => shape is { Producers: 1, Consumers: 1 };

    public override Task<IPeerRun> StartAsync(RunContext context)
    {
        var store = new ScratchStore();
        var options = new DurableQueueOptions { DataDirectory = store.Directory, FileName = "bench.db" };
        var config = DurableQueueFactory.PluginConfig(options).WithFallback(ConfigurationFactory.ParseString("""
            akka.loglevel = WARNING
            akka.log-dead-letters = off
            akka.coordinated-shutdown.run-by-clr-shutdown-hook = off
            """));
        var system = ActorSystem.Create("persist-all", config);
        var writer = system.ActorOf(Props.Create(() => new Writer(context.Probe, options.JournalPluginId)), "writer");
        return Task.FromResult<IPeerRun>(new StoreRun(new ActorRun(system, [writer]), store));
    }

    private sealed class Writer : PersistentActor
    {
        private readonly Probe _probe;
        private readonly EmitBacklog _backlog = new();
        private long _seq;
        private bool _writing;

        public Writer(Probe probe, string journal)
        {
            _probe = probe;
            JournalPluginId = journal;
            SnapshotPluginId = journal.Replace("journal", "snapshot-store", StringComparison.Ordinal);
        }

        public override string PersistenceId => "bench-writer";

        protected override bool ReceiveRecover(object message) => true;

        protected override bool ReceiveCommand(object message)
        {
            if (message is not Emit e) return false;
            _backlog.Add(e);
            WriteMore();
            return true;
        }

        private void WriteMore()
        {
            if (_writing || _backlog.Available == 0) return;
            var n = (int)Math.Min(1000, _backlog.Available);
            var events = new Work[n];
            for (var i = 0; i < n; i++) events[i] = new Work(++_seq, _backlog.Take());
            _writing = true;
            PersistAll(events, w => _probe.Handle(w), () =>
            {
                _writing = false;
                WriteMore();
            });
        }
    }
}
