using Microsoft.Data.Sqlite;

namespace ActorQueue.Host;

/// <summary>
/// The demo ledger's copy on disk for durable runs: which messages were accepted and which were handled, in every
/// run so far. It lives beside the queue's journal but in a file of its own, written as each fact happens (an
/// acceptance after the queue confirmed it, a completion before the handler returns), so a run killed hard leaves
/// an account the next run can check the recovered queue against.
/// </summary>
public sealed class DemoLedgerStore : IDisposable
{
    private readonly SqliteConnection _connection;
    private readonly SqliteCommand _accepted;
    private readonly SqliteCommand _handled;
    private readonly object _gate = new();

    /// <summary>Opens (or creates) the ledger file in <paramref name="directory"/>.</summary>
    /// <param name="directory">The demo's data directory.</param>
    public DemoLedgerStore(string directory)
    {
        Directory.CreateDirectory(directory);
        _connection = new SqliteConnection($"Data Source={Path.Combine(directory, "demo-ledger.db")}");
        _connection.Open();
        Execute("PRAGMA journal_mode=WAL");
        Execute("CREATE TABLE IF NOT EXISTS accepted (id INTEGER PRIMARY KEY)");
        Execute("CREATE TABLE IF NOT EXISTS handled (id INTEGER PRIMARY KEY)");
        _accepted = Prepare("INSERT OR IGNORE INTO accepted (id) VALUES ($id)");
        _handled = Prepare("INSERT OR IGNORE INTO handled (id) VALUES ($id)");
    }

    /// <summary>The ids accepted in earlier runs.</summary>
    public IReadOnlyList<long> Accepted() => Ids("SELECT id FROM accepted");

    /// <summary>The ids handled in earlier runs.</summary>
    public IReadOnlyList<long> Handled() => Ids("SELECT id FROM handled");

    /// <summary>Records that the queue accepted <paramref name="id"/>.</summary>
    /// <param name="id">The message id.</param>
    public void RecordAccepted(long id) => Record(_accepted, id);

    /// <summary>Records that a handler completed <paramref name="id"/>.</summary>
    /// <param name="id">The message id.</param>
    public void RecordHandled(long id) => Record(_handled, id);

    private void Record(SqliteCommand command, long id)
    {
        lock (_gate)
        {
            command.Parameters["$id"].Value = id;
            command.ExecuteNonQuery();
        }
    }

    private List<long> Ids(string sql)
    {
        lock (_gate)
        {
            using var command = _connection.CreateCommand();
            command.CommandText = sql;
            using var reader = command.ExecuteReader();
            var ids = new List<long>();
            while (reader.Read()) ids.Add(reader.GetInt64(0));
            return ids;
        }
    }

    private void Execute(string sql)
    {
        using var command = _connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private SqliteCommand Prepare(string sql)
    {
        var command = _connection.CreateCommand();
        command.CommandText = sql;
        command.Parameters.Add("$id", SqliteType.Integer);
        command.Prepare();
        return command;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _accepted.Dispose();
        _handled.Dispose();
        _connection.Dispose();
    }
}
