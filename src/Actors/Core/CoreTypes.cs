using ActorQueue.Protocol;

namespace ActorQueue.Core;

/// <summary>
/// A message the queue holds. <see cref="Attempts"/> counts deliveries whose handler started (or may have);
/// <see cref="Suspect"/> marks a message whose consumer terminated while its handler ran: it is redelivered alone,
/// so a message that crashes its consumer is told apart from the innocent deliveries beside it.
/// </summary>
internal readonly record struct QueuedMessage(long MessageId, object Message, int Attempts, TimeSpan AcceptedAt, bool Suspect = false);

/// <summary>
/// A delivery a consumer holds, linked into the deadline list (<see cref="Prev"/>/<see cref="Next"/> are delivery ids,
/// 0 for none) so that a tick visits only what is due. <see cref="Isolated"/>: a suspect delivered alone.
/// </summary>
internal record struct InFlightDelivery(QueuedMessage Message, int ConsumerId, TimeSpan Deadline, bool Isolated, long Prev, long Next);

/// <summary>A message in the dead-letter store; <see cref="At"/> is wall-clock time since the Unix epoch.</summary>
internal readonly record struct DeadEntry(QueuedMessage Message, string Reason, TimeSpan At);

/// <summary>A message parked by full mode wait; not accepted yet.</summary>
internal readonly record struct ParkedMessage(object Message, string? ProducerId, long SeqNr, long CorrelationId, TimeSpan Deadline, object? ReplyTo);

/// <summary>What became of an enqueue.</summary>
internal enum EnqueueStatus
{
    Accepted,
    Duplicate,
    Parked,
    Rejected,
}

/// <summary>The outcome of an enqueue; <see cref="Evicted"/> is set when a drop mode made room.</summary>
internal readonly record struct EnqueueResult(EnqueueStatus Status, RejectReason Reason = default, string? Detail = null, QueuedMessage? Evicted = null)
{
    public static readonly EnqueueResult Accepted = new(EnqueueStatus.Accepted);
    public static readonly EnqueueResult Duplicate = new(EnqueueStatus.Duplicate);
    public static readonly EnqueueResult Parked = new(EnqueueStatus.Parked);

    public static EnqueueResult Rejected(RejectReason reason, string detail) => new(EnqueueStatus.Rejected, reason, detail);
}

/// <summary>A parked message that was accepted or rejected later; the actor answers its ReplyTo.</summary>
internal readonly record struct ParkedOutcome(ParkedMessage Parked, bool Accepted, RejectReason Reason, string? Detail);

/// <summary>Deliveries for one consumer decided by a dispatch.</summary>
internal readonly record struct ConsumerDispatch(int ConsumerId, DeliveryBatch Batch);

/// <summary>A delivery taken back from a consumer that is still registered (its deadline passed): the consumer must drop it.</summary>
internal readonly record struct Revocation(int ConsumerId, long DeliveryId);

/// <summary>Consecutive delivery ids a settlement named that were refused for one reason.</summary>
internal readonly record struct RefusedStretch(long FromDeliveryId, long ToDeliveryId, SettleError Error)
{
    public int Count => (int)(ToDeliveryId - FromDeliveryId + 1);
}

/// <summary>A producer whose accepted or credit sequence number changed since it was last told.</summary>
internal readonly record struct ProducerUpdate(string ProducerId, long AcceptedSeqNr, long CreditSeqNr);

/// <summary>The outcome of a nack.</summary>
internal enum NackOutcome
{
    Requeued,
    Delayed,
    DeadLettered,
}

/// <summary>Why a delivery goes back to the queue.</summary>
internal enum Requeue : byte
{
    /// <summary>The consumer nacked it: the attempt counts.</summary>
    Nacked,
    /// <summary>Its ack deadline passed: the attempt counts (the queue cannot know whether it started).</summary>
    Expired,
    /// <summary>Its consumer terminated or detached holding it: the attempt counts and the message becomes a suspect.</summary>
    ConsumerLost,
    /// <summary>The consumer gave it back without starting it: the attempt does not count.</summary>
    Returned,
}

/// <summary>The totals a queue keeps.</summary>
internal struct QueueCounters
{
    public long Enqueued;
    public long Delivered;
    public long Acked;
    public long Nacked;
    public long Redelivered;
    public long DeadLettered;
    public long Evicted;
    public long DeadEvicted;
    public long Rejected;
    public long Invalid;
    public long Redriven;
}

/// <summary>A producer as the queue knows it.</summary>
internal sealed class ProducerState(string id)
{
    public string Id { get; } = id;
    public long LastSeqNr;
    public long CreditSeqNr;
    public long DemandSeqNr;
    public bool Active;
    public int Parked;
    public long ReportedAccepted = -1;
    public long ReportedCredit = -1;
    public bool Dirty;

    // Scheduling hints, not replayed: when the producer last used or asked for credit (for the credit lease), and its
    // place among the inactive producers waiting to be forgotten.
    public TimeSpan LastActive;
    // The producer's own lease: credit-lease, doubled each time its credit is taken back unused (a round trip longer than
    // the lease must not make grant and reclaim chase each other for ever), back to credit-lease once it sends.
    public TimeSpan Lease;
    public TimeSpan InactiveSince;
    public LinkedListNode<ProducerState>? InactiveNode;
    // A client's feed in the queue's own process: it accepts its callers' messages against its credit before the queue
    // sees them, so that credit is never taken back behind its back (no lease); it gives it back itself, or goes away.
    public bool KeepsCredit;

    public long Outstanding => Active ? Math.Max(0, CreditSeqNr - LastSeqNr) : 0;
}

/// <summary>A consumer as the queue knows it: it may hold up to <see cref="Window"/> deliveries.</summary>
internal sealed class ConsumerState(int id)
{
    public int Id { get; } = id;
    public int Window;
    public int InFlight;
    public bool Hungry;
    // Holds a suspect delivered alone: it gets nothing else until that is settled.
    public bool Isolating;
    // Picked to run a waiting suspect: it gets nothing new until it holds nothing.
    public bool Reserved;
    // Let a deadline pass: it may be wedged, so it gets nothing new until it is heard from again.
    public bool Stalled;
}

/// <summary>Told of decisions as they are made, for metrics; never consulted, so it cannot change them.</summary>
internal interface IQueueObserver
{
    /// <summary>A message was delivered <paramref name="waited"/> after it was accepted.</summary>
    void Delivered(TimeSpan waited);
}

/// <summary>The core found its own state inconsistent: a bug, never a user error.</summary>
internal sealed class QueueInvariantException(string message) : Exception(message);
