using System.Collections.Concurrent;

namespace ActorQueue.Host;

/// <summary>One message of the demo; the poison one fails every attempt.</summary>
/// <param name="Id">Unique per run.</param>
/// <param name="Poison">Whether every handler call for it throws.</param>
public sealed record DemoMessage(long Id, bool Poison = false);

/// <summary>
/// The demo's own account of what it produced, what the queue accepted and what the handlers saw, kept apart from
/// the queue's stats so that the two can be checked against each other: nothing accepted may go missing.
/// </summary>
public sealed class DemoLedger
{
    private readonly ConcurrentDictionary<long, byte> _accepted = new();
    private readonly ConcurrentDictionary<long, int> _handled = new();
    private readonly ConcurrentDictionary<long, byte> _dropped = new();
    private long _nextId, _produced, _rejected, _failures, _crashes, _waiting;

    /// <summary>Messages handed to the queue client.</summary>
    public long Produced => Interlocked.Read(ref _produced);

    /// <summary>Messages the queue accepted.</summary>
    public int Accepted => _accepted.Count;

    /// <summary>Messages the queue refused.</summary>
    public long Rejected => Interlocked.Read(ref _rejected);

    /// <summary>Accepted messages a drop full mode evicted (by design, not lost).</summary>
    public int Dropped => _dropped.Count;

    /// <summary>Distinct messages a handler completed.</summary>
    public int Handled => _handled.Count;

    /// <summary>Handler completions of a message already completed (at-least-once after a crash).</summary>
    public int Duplicates => _handled.Values.Sum(n => n - 1);

    /// <summary>Handler calls that threw on purpose.</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>Consumer crashes injected.</summary>
    public long Crashes => Interlocked.Read(ref _crashes);

    /// <summary>Enqueue calls still waiting for the queue: the producers held back by backpressure.</summary>
    public long Waiting => Interlocked.Read(ref _waiting);

    private DemoLedgerStore? _store;

    /// <summary>Messages accepted in earlier runs and not handled when this one started: what the durable queue kept.</summary>
    public int CameBack { get; private set; }

    /// <summary>
    /// Continues the account kept in <paramref name="store"/> (a durable run): what earlier runs accepted and handled
    /// counts here too, ids continue above theirs, and from now on every acceptance and completion is written there.
    /// </summary>
    /// <param name="store">The ledger file.</param>
    public void ContinueFrom(DemoLedgerStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        var accepted = store.Accepted();
        foreach (var id in accepted) _accepted.TryAdd(id, 0);
        foreach (var id in store.Handled()) _handled.TryAdd(id, 1);
        CameBack = accepted.Count(id => !_handled.ContainsKey(id));
        // Well above the highest accepted id: a message the queue kept just before a kill, whose acceptance the ledger
        // never heard of, has an id above it too, and must not share it with a new one.
        _nextId = Math.Max(_nextId, _accepted.Keys.DefaultIfEmpty(0).Max() + 1_000_000);
        _store = store;
    }

    /// <summary>Whether earlier runs left an account (a durable run after another).</summary>
    public bool HasHistory => !_accepted.IsEmpty;

    /// <summary>A new message id.</summary>
    public long NextId() => Interlocked.Increment(ref _nextId);

    /// <summary>A producer hands a message over and starts waiting.</summary>
    public void Producing()
    {
        Interlocked.Increment(ref _produced);
        Interlocked.Increment(ref _waiting);
    }

    /// <summary>The queue answered the producer.</summary>
    /// <param name="id">The message.</param>
    /// <param name="accepted">Whether it was accepted.</param>
    public void Answered(long id, bool accepted)
    {
        Interlocked.Decrement(ref _waiting);
        if (accepted)
        {
            _store?.RecordAccepted(id);
            _accepted.TryAdd(id, 0);
        }
        else Interlocked.Increment(ref _rejected);
    }

    /// <summary>A handler completed the message.</summary>
    /// <param name="id">The message.</param>
    public void Handle(long id)
    {
        _store?.RecordHandled(id);
        _handled.AddOrUpdate(id, 1, (_, n) => n + 1);
    }

    /// <summary>A handler threw on purpose.</summary>
    public void Fail() => Interlocked.Increment(ref _failures);

    /// <summary>A consumer was killed.</summary>
    public void Crash() => Interlocked.Increment(ref _crashes);

    /// <summary>The queue evicted the message under a drop full mode.</summary>
    /// <param name="id">The message.</param>
    public void Drop(long id) => _dropped.TryAdd(id, 0);

    /// <summary>Whether every accepted message is handled, dead-lettered or dropped.</summary>
    /// <param name="dead">How many messages are in the dead-letter store.</param>
    public bool Settled(int dead) => Handled + dead + Dropped >= Accepted;

    /// <summary>Accepted messages that were neither handled, dead-lettered nor dropped.</summary>
    /// <param name="deadIds">The ids in the dead-letter store.</param>
    public int Lost(IReadOnlySet<long> deadIds) =>
        _accepted.Keys.Count(id => !_handled.ContainsKey(id) && !deadIds.Contains(id) && !_dropped.ContainsKey(id));
}
