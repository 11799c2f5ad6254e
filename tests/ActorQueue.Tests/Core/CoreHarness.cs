using ActorQueue.Core;
using ActorQueue.Protocol;
using Xunit;

namespace ActorQueue.Tests.Core;

/// <summary>A QueueState with its events recorded, a clock to move, and short-hands for the common steps.</summary>
internal sealed class CoreHarness
{
    public readonly List<QueueEvent> Events = new();
    // How many of the events came from a journal (a restart from it): those are restored, not applied.
    private int _journalLength;
    public QueueState State { get; private set; }
    public readonly List<ConsumerDispatch> Dispatched = new();
    public readonly List<ProducerUpdate> Updates = new();
    public readonly List<ParkedOutcome> Parked = new();
    public readonly List<Revocation> Revoked = new();
    public TimeSpan Now = TimeSpan.FromSeconds(1);

    public CoreHarness(QueueSettings? settings = null, int seed = 42, Func<object, string?>? payloadCheck = null)
    {
        Settings = settings ?? new QueueSettings { Capacity = 10, RetryRandomFactor = 0 };
        _payloadCheck = payloadCheck;
        State = new QueueState(Settings, new Random(seed), Events.Add) { PayloadCheck = payloadCheck };
    }

    // What the queue refuses to take (a durable queue: what it cannot write); kept across restarts.
    private readonly Func<object, string?>? _payloadCheck;

    public QueueSettings Settings { get; }

    public EnqueueResult Enqueue(object message, long correlationId = 0) => State.Enqueue(message, correlationId, null, Now);

    public void EnqueueMany(int count, string prefix = "m")
    {
        for (var i = 0; i < count; i++)
        {
            var r = Enqueue($"{prefix}{i}");
            if (r.Status != EnqueueStatus.Accepted) throw new InvalidOperationException($"{prefix}{i} was {r.Status}: {r.Detail}");
        }
    }

    public int Consumer(int demand)
    {
        var id = State.AddConsumer();
        if (demand > 0) State.Pull(id, demand);
        return id;
    }

    /// <summary>Dispatches and returns every delivery made, in order.</summary>
    public List<(int Consumer, Delivery Delivery)> Dispatch()
    {
        Dispatched.Clear();
        State.Dispatch(Now, Dispatched);
        var all = new List<(int, Delivery)>();
        foreach (var d in Dispatched)
            foreach (var x in d.Batch.ToArray()) all.Add((d.ConsumerId, x));
        return all;
    }

    public List<ProducerUpdate> CollectUpdates()
    {
        Updates.Clear();
        State.CollectProducerUpdates(Updates);
        return Updates;
    }

    public void Tick(TimeSpan advance)
    {
        Now += advance;
        Parked.Clear();
        Revoked.Clear();
        State.Tick(Now, Parked, Revoked);
    }

    /// <summary>
    /// A restart that recovers: a new state replays every event so far, then runs the recovery step under a new epoch
    /// and carries on recording. Returns the parked messages the recovery rejected.
    /// </summary>
    public List<ParkedOutcome> Restart()
    {
        var next = new QueueState(Settings, new Random(Events.Count), Events.Add) { PayloadCheck = _payloadCheck };
        var all = Events.ToList();
        for (var i = 0; i < all.Count; i++)
        {
            if (i < _journalLength) next.Restore(all[i]);
            else next.Apply(all[i]);
        }
        var parked = new List<ParkedOutcome>();
        next.Recover(QueueState.DeliveryIdEpoch(Now), Now, parked);
        State = next;
        return parked;
    }

    /// <summary>
    /// A restart from what a journal keeps, as a durable queue recovers after a crash: a new state restores the durable
    /// events only, then runs the recovery step. It must hold what a restart from every event would hold (asserted
    /// here); what was parked or reserved is gone with the process.
    /// </summary>
    public void RestartFromJournal()
    {
        var all = Events.ToList();
        var epoch = QueueState.DeliveryIdEpoch(Now);
        var full = new QueueState(Settings, new Random(0));
        for (var i = 0; i < all.Count; i++)
        {
            if (i < _journalLength) full.Restore(all[i]);
            else full.Apply(all[i]);
        }
        full.Recover(epoch, Now, new List<ParkedOutcome>());
        // From here on the journal is the history: what it left out is forgotten.
        Events.Clear();
        foreach (var e in all)
            if (QueueJournal.Durable(e) is { } kept) Events.Add(kept);
        _journalLength = Events.Count;
        var next = new QueueState(Settings, new Random(all.Count), Events.Add) { PayloadCheck = _payloadCheck };
        foreach (var e in Events.ToList()) next.Restore(e);
        next.Recover(epoch, Now, new List<ParkedOutcome>());
        next.CheckInvariants();
        Assert.Equal(full.DescribeDurable(), next.DescribeDurable());

        // A snapshot of the live state, then the journal's later events, rebuild the same again.
        if (_snapshot is { } snap)
        {
            var fromSnapshot = new QueueState(Settings, new Random(0));
            fromSnapshot.RestoreSnapshot(snap.Snapshot, Now);
            for (var i = snap.Position; i < all.Count; i++)
                if (QueueJournal.Durable(all[i]) is { } kept) fromSnapshot.Restore(kept);
            fromSnapshot.Recover(epoch, Now, new List<ParkedOutcome>());
            fromSnapshot.CheckInvariants();
            Assert.Equal(full.DescribeDurable(), fromSnapshot.DescribeDurable());
            _snapshot = null;
        }
        State = next;
    }

    private (QueueSnapshot Snapshot, int Position)? _snapshot;

    /// <summary>Takes a snapshot of the live state, checked by the next <see cref="RestartFromJournal"/>.</summary>
    public void TakeSnapshot() => _snapshot = (State.TakeSnapshot(), Events.Count);

    /// <summary>A fresh state with the recorded events applied: it must describe itself as the live one does.</summary>
    public QueueState Replay()
    {
        var replayed = new QueueState(Settings, new Random(0));
        for (var i = 0; i < Events.Count; i++)
        {
            if (i < _journalLength) replayed.Restore(Events[i]);
            else replayed.Apply(Events[i]);
        }
        return replayed;
    }
}
