namespace ActorQueue.Core;

/// <summary>A delivery in flight when a snapshot was taken.</summary>
internal readonly record struct SnapshotDelivery(long DeliveryId, QueuedMessage Message, bool Isolated);

/// <summary>
/// What a journal would rebuild of a queue up to some point, taken at once: the messages held and where, dead letters,
/// producers' sequence numbers and the totals. Transient facts (consumers, credit, parked messages) are not in it.
/// </summary>
internal sealed record QueueSnapshot(
    long LastMessageId,
    long FirstDeliveryId,
    long LastDeliveryId,
    QueuedMessage[] Ready,
    QueuedMessage[] Redeliver,
    QueuedMessage[] Suspects,
    SnapshotDelivery[] InFlight,
    (QueuedMessage Message, TimeSpan Due)[] Delayed,
    DeadEntry[] Dead,
    (string ProducerId, long SeqNr)[] Producers,
    QueueCounters Counters);

internal sealed partial class QueueState
{
    /// <summary>
    /// The durable part of the state (see <see cref="QueueJournal"/>), for a snapshot: restoring it with
    /// <see cref="RestoreSnapshot"/> and then the journal's later events gives what replaying the whole journal gives.
    /// </summary>
    public QueueSnapshot TakeSnapshot()
    {
        var inFlight = new SnapshotDelivery[_inFlight.Count];
        var i = 0;
        foreach (var (id, d) in _inFlight) inFlight[i++] = new SnapshotDelivery(id, d.Message, d.Isolated);
        Array.Sort(inFlight, static (a, b) => a.DeliveryId.CompareTo(b.DeliveryId));
        var delayed = _delayed.UnorderedItems.Select(x => (x.Element, x.Priority.Due)).ToArray();
        var producers = _producers.Values.Where(p => p.LastSeqNr > 0).Select(p => (p.Id, p.LastSeqNr)).ToArray();
        return new QueueSnapshot(_lastMessageId, _firstDeliveryId, _lastDeliveryId, ToArray(_ready), ToArray(_redeliver),
            ToArray(_suspects), inFlight, delayed, ToArray(_dead), producers, _counters with { Rejected = 0, Invalid = 0 });

        static T[] ToArray<T>(RingBuffer<T> ring)
        {
            var items = new T[ring.Count];
            for (var n = 0; n < items.Length; n++) items[n] = ring[n];
            return items;
        }
    }

    /// <summary>
    /// Fills a new state from a snapshot, before the journal's later events are restored (see <see cref="Restore"/>)
    /// and the recovery step runs. Deliveries in flight are held by a consumer no longer known; producers are inactive.
    /// </summary>
    public void RestoreSnapshot(QueueSnapshot snapshot, TimeSpan now)
    {
        if (_lastMessageId != 0 || _lastDeliveryId != _firstDeliveryId - 1 || _producers.Count != 0)
            throw new InvalidOperationException("A snapshot is restored into a new state only.");
        _lastMessageId = snapshot.LastMessageId;
        _firstDeliveryId = snapshot.FirstDeliveryId;
        _lastDeliveryId = snapshot.LastDeliveryId;
        foreach (var m in snapshot.Ready) _ready.PushBack(m);
        foreach (var m in snapshot.Redeliver) _redeliver.PushBack(m);
        foreach (var m in snapshot.Suspects) _suspects.PushBack(m);
        foreach (var d in snapshot.InFlight)
        {
            _inFlight.Add(d.DeliveryId, new InFlightDelivery(d.Message, _gone.Id, TimeSpan.Zero, d.Isolated, _deadlineTail, 0));
            LinkAtTail(d.DeliveryId);
        }
        foreach (var (m, due) in snapshot.Delayed) _delayed.Enqueue(m, (due, m.MessageId));
        foreach (var d in snapshot.Dead) _dead.PushBack(d);
        foreach (var (id, seqNr) in snapshot.Producers)
        {
            var p = new ProducerState(id) { LastSeqNr = seqNr, CreditSeqNr = seqNr, DemandSeqNr = seqNr, InactiveSince = now };
            _producers.Add(id, p);
            p.InactiveNode = _inactiveProducers.AddLast(p);
        }
        _counters = snapshot.Counters;
    }
}
