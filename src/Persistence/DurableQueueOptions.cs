using Akka.Configuration;

namespace ActorQueue.Persistence;

/// <summary>Where durable queues keep their journal.</summary>
public enum DurableStore
{
    /// <summary>An embedded SQLite file (Microsoft.Data.Sqlite), created on first start; no server to run.</summary>
    Sqlite,

    /// <summary>A PostgreSQL server (Npgsql), reached with a connection string.</summary>
    PostgreSql,
}

/// <summary>
/// How durable queues keep their journal (HOCON <c>actor-queue.durable</c>): the store, where it is, and how often a
/// queue snapshots. Every property validates when set; <see cref="Create(Config)"/> names the HOCON key of a bad value.
/// </summary>
public sealed record DurableQueueOptions
{
    private readonly int _snapshotEvery = 100_000;
    private readonly string _dataDirectory = "actor-queue-data";
    private readonly string _fileName = "queues.db";
    private readonly string _journalPluginId = "akka.persistence.journal.actor-queue";
    private readonly string _snapshotPluginId = "akka.persistence.snapshot-store.actor-queue";

    /// <summary>The store: an embedded SQLite file (the default) or a PostgreSQL server.</summary>
    public DurableStore Store { get; init; } = DurableStore.Sqlite;

    /// <summary>The directory of the SQLite file, created if missing; relative paths are from the working directory.</summary>
    public string DataDirectory { get => _dataDirectory; init => _dataDirectory = QueueSettings.NotEmpty<DurableQueueOptions>(value); }

    /// <summary>The SQLite file's name within <see cref="DataDirectory"/>.</summary>
    public string FileName { get => _fileName; init => _fileName = QueueSettings.NotEmpty<DurableQueueOptions>(value); }

    /// <summary>
    /// The PostgreSQL connection string (required for <see cref="DurableStore.PostgreSql"/>), or for SQLite a full
    /// Microsoft.Data.Sqlite connection string that replaces <see cref="DataDirectory"/> and <see cref="FileName"/>.
    /// </summary>
    public string? ConnectionString { get; init; }

    /// <summary>A snapshot every this many journaled events bounds a queue's recovery time; at least 1.</summary>
    public int SnapshotEvery { get => _snapshotEvery; init => _snapshotEvery = QueueSettings.AtLeast<DurableQueueOptions>(value, 1); }

    /// <summary>After a snapshot is saved, delete the journal rows and older snapshots it makes redundant.</summary>
    public bool DeleteOnSnapshot { get; init; } = true;

    /// <summary>The Akka.Persistence journal plugin durable queues write to.</summary>
    public string JournalPluginId { get => _journalPluginId; init => _journalPluginId = QueueSettings.NotEmpty<DurableQueueOptions>(value); }

    /// <summary>The Akka.Persistence snapshot-store plugin durable queues write to.</summary>
    public string SnapshotPluginId { get => _snapshotPluginId; init => _snapshotPluginId = QueueSettings.NotEmpty<DurableQueueOptions>(value); }

    /// <summary>The SQLite file this configuration writes to (from the connection string when one is given), or null for PostgreSQL.</summary>
    public string? SqliteFile => Store != DurableStore.Sqlite ? null
        : string.IsNullOrEmpty(ConnectionString) ? Path.GetFullPath(Path.Combine(DataDirectory, FileName))
        : new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder(ConnectionString).DataSource is { Length: > 0 } file && file != ":memory:" ? Path.GetFullPath(file)
        : null;

    /// <summary>
    /// Reads <c>actor-queue.durable</c> from a configuration (reference.conf beneath it).
    /// </summary>
    /// <param name="config">A configuration with the <c>actor-queue</c> section.</param>
    /// <exception cref="ConfigurationException">A value is missing or invalid; the message names the key and value.</exception>
    public static DurableQueueOptions Create(Config config)
    {
        ArgumentNullException.ThrowIfNull(config);
        const string path = ActorQueueConfig.Root + ".durable";
        var r = new SettingsReader(ActorQueueConfig.WithDefaults(config).GetConfig(path), path);
        var store = r.String("store").Trim().ToLowerInvariant() switch
        {
            "sqlite" => DurableStore.Sqlite,
            "postgresql" or "postgres" => DurableStore.PostgreSql,
            var other => throw r.Invalid("store", other, "it must be sqlite or postgresql"),
        };
        var connectionString = r.String("connection-string");
        if (store == DurableStore.PostgreSql && string.IsNullOrWhiteSpace(connectionString))
            throw r.Invalid("connection-string", "\"\"", "store = postgresql needs the server's connection string");
        return new DurableQueueOptions
        {
            Store = store,
            DataDirectory = NotEmpty(r, "data-dir"),
            FileName = NotEmpty(r, "file-name"),
            ConnectionString = string.IsNullOrWhiteSpace(connectionString) ? null : connectionString,
            SnapshotEvery = r.Int("snapshot-every", 1),
            DeleteOnSnapshot = r.Bool("delete-on-snapshot"),
            JournalPluginId = NotEmpty(r, "journal-plugin-id"),
            SnapshotPluginId = NotEmpty(r, "snapshot-plugin-id"),
        };
    }

    /// <summary>These options as the HOCON section <c>actor-queue.durable</c>.</summary>
    public string ToHocon()
    {
        var store = Store == DurableStore.PostgreSql ? "postgresql" : "sqlite";
        return $$"""
            actor-queue.durable {
              store = {{store}}
              data-dir = {{Quote(DataDirectory)}}
              file-name = {{Quote(FileName)}}
              connection-string = {{Quote(ConnectionString ?? "")}}
              snapshot-every = {{SnapshotEvery.ToString(System.Globalization.CultureInfo.InvariantCulture)}}
              delete-on-snapshot = {{(DeleteOnSnapshot ? "on" : "off")}}
              journal-plugin-id = {{Quote(JournalPluginId)}}
              snapshot-plugin-id = {{Quote(SnapshotPluginId)}}
            }
            """;
    }

    internal static string Quote(string value) =>
        "\"" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";

    private static string NotEmpty(SettingsReader r, string key)
    {
        var value = r.String(key);
        return string.IsNullOrWhiteSpace(value) ? throw r.Invalid(key, "\"\"", "it must not be empty") : value;
    }
}
