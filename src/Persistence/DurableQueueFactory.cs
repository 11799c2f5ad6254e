using ActorQueue.Persistence.Serialization;
using Akka.Actor;
using Akka.Configuration;
using Microsoft.Data.Sqlite;

namespace ActorQueue.Persistence;

/// <summary>
/// Makes durable queues for the guardian (named in <c>actor-queue.durable.factory</c>). On first use it sets up what
/// they need in the actor system: the journal's serializer, the Akka.Persistence.Sql journal and snapshot-store plugins
/// described by <c>actor-queue.durable</c> (unless those plugin paths are configured already), and for SQLite the data
/// directory and the file in WAL mode. Each queue runs under a supervisor that starts it again, with backoff, when a
/// journal failure stops it; it then recovers exactly what the journal holds.
/// </summary>
public sealed class DurableQueueFactory : IDurableQueueFactory
{
    /// <summary>Sets up <paramref name="system"/> for durable queues configured under <c>actor-queue.durable</c>.</summary>
    /// <param name="system">The actor system the queues run in.</param>
    public DurableQueueFactory(ActorSystem system) : this(system, DurableQueueOptions.Create(ActorQueueConfig.For(system))) { }

    /// <summary>Sets up <paramref name="system"/> for durable queues configured by <paramref name="options"/>.</summary>
    /// <param name="system">The actor system the queues run in.</param>
    /// <param name="options">Where the journal is and how often queues snapshot.</param>
    public DurableQueueFactory(ActorSystem system, DurableQueueOptions options)
    {
        ArgumentNullException.ThrowIfNull(system);
        Options = options ?? throw new ArgumentNullException(nameof(options));
        RegisterSerializer(system);
        if (options.SqliteFile is { } file) PrepareSqlite(file);
        if (!system.Settings.Config.HasPath(options.JournalPluginId) || !system.Settings.Config.HasPath(options.SnapshotPluginId))
            system.Settings.InjectTopLevelFallback(PluginConfig(options));
    }

    /// <summary>The options the queues are made with.</summary>
    public DurableQueueOptions Options { get; }

    /// <inheritdoc />
    public Props QueueProps(string name, QueueSettings settings)
    {
        // A drained queue stops for good; any other stop (a journal failure) is followed by a start from the journal.
        return DurableQueueSupervisor.Props(name, DurableQueueActor.SupervisedProps(name, settings, Options));
    }

    /// <summary>
    /// The HOCON of the journal and snapshot-store plugins for <paramref name="options"/>: Akka.Persistence.Sql on the
    /// SQLite file (provider SQLite.MS) or the PostgreSQL server (provider PostgreSQL.15), tables created on first use.
    /// </summary>
    /// <param name="options">The store and the plugin ids.</param>
    public static Config PluginConfig(DurableQueueOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var (connectionString, provider) = options.Store switch
        {
            DurableStore.PostgreSql => (options.ConnectionString!, "PostgreSQL.15"),
            _ => (options.ConnectionString ?? $"Data Source={options.SqliteFile}", "SQLite.MS"),
        };
        var quoted = DurableQueueOptions.Quote(connectionString);
        return ConfigurationFactory.ParseString($$"""
            {{options.JournalPluginId}} {
              class = "Akka.Persistence.Sql.Journal.SqlWriteJournal, Akka.Persistence.Sql"
              plugin-id = "{{options.JournalPluginId}}"
              connection-string = {{quoted}}
              provider-name = "{{provider}}"
              auto-initialize = on
              # The queue's supervisor backs off between attempts already: the breaker only keeps a dead store from
              # being hammered, and lets the first attempt through soon after the store is back.
              circuit-breaker { max-failures = 10, call-timeout = 10s, reset-timeout = 2s }
            }
            {{options.SnapshotPluginId}} {
              class = "Akka.Persistence.Sql.Snapshot.SqlSnapshotStore, Akka.Persistence.Sql"
              plugin-id = "{{options.SnapshotPluginId}}"
              connection-string = {{quoted}}
              provider-name = "{{provider}}"
              auto-initialize = on
              circuit-breaker { max-failures = 5, call-timeout = 20s, reset-timeout = 2s }
            }
            """);
    }


    // The journal's rows and snapshots are read and written by the queue's own serializer, under its fixed id. It is
    // bound in configuration, not only in the running Serialization: extensions that bring serializers of their own
    // (Akka.Persistence among them) rebuild it from configuration when they load.
    private static void RegisterSerializer(ActorSystem system)
    {
        system.Settings.InjectTopLevelFallback(SerializationConfig);
        var serialization = system.Serialization;
        var serializer = new JournalSerializer((ExtendedActorSystem)system);
        serialization.AddSerializer("actor-queue-journal", serializer);
        serialization.AddSerializationMap(typeof(JournalBatch), serializer);
        serialization.AddSerializationMap(typeof(JournalSnapshot), serializer);
    }

    /// <summary>The serializer bindings of a durable queue's journal rows and snapshots.</summary>
    public static Config SerializationConfig { get; } = ConfigurationFactory.ParseString($$"""
        akka.actor {
          serializers.actor-queue-journal = "{{typeof(JournalSerializer).AssemblyQualifiedName}}"
          serialization-bindings {
            "{{typeof(JournalBatch).FullName}}, {{typeof(JournalBatch).Assembly.GetName().Name}}" = actor-queue-journal
            "{{typeof(JournalSnapshot).FullName}}, {{typeof(JournalSnapshot).Assembly.GetName().Name}}" = actor-queue-journal
          }
        }
        """);

    /// <summary>Creates the SQLite file's directory and puts the file in WAL mode (kept in the file from then on).</summary>
    /// <param name="file">The SQLite file.</param>
    public static void PrepareSqlite(string file)
    {
        ArgumentException.ThrowIfNullOrEmpty(file);
        try
        {
            var directory = Path.GetDirectoryName(Path.GetFullPath(file));
            if (!string.IsNullOrEmpty(directory)) Directory.CreateDirectory(directory);
            using var connection = new SqliteConnection($"Data Source={file}");
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "PRAGMA journal_mode=WAL;";
            command.ExecuteScalar();
        }
        catch (Exception e) when (e is SqliteException or IOException or UnauthorizedAccessException)
        {
            throw new ConfigurationException(
                $"The durable queues' SQLite file {file} cannot be used ({e.Message}). Repair or move it, or point actor-queue.durable.data-dir / file-name elsewhere.", e);
        }
    }
}
