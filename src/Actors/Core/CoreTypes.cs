using ActorQueue.Protocol;

namespace ActorQueue.Core;

/// <summary>A message the queue holds, with the deliveries made of it so far.</summary>
internal readonly record struct QueuedMessage(long MessageId, object Message, int Attempts, TimeSpan AcceptedAt);

/// <summary>A delivery a consumer holds.</summary>
internal readonly record struct InFlightDelivery(QueuedMessage Message, int ConsumerId, TimeSpan Deadline);

/// <summary>A message in the dead-letter store.</summary>
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

/// <summary>A producer whose accepted or credit sequence number changed since it was last told.</summary>
internal readonly record struct ProducerUpdate(string ProducerId, long AcceptedSeqNr, long CreditSeqNr);

/// <summary>The outcome of a nack.</summary>
internal enum NackOutcome
{
    Requeued,
    Delayed,
    DeadLettered,
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
    public long ReportedAccepted = -1;
    public long ReportedCredit = -1;
    public bool Dirty;
    public long Outstanding => Active ? Math.Max(0, CreditSeqNr - LastSeqNr) : 0;
}

/// <summary>A consumer as the queue knows it.</summary>
internal sealed class ConsumerState(int id)
{
    public int Id { get; } = id;
    public long Demand;
    public int InFlight;
}

/// <summary>Told of decisions as they are made, for metrics; never consulted, so it cannot change them.</summary>
internal interface IQueueObserver
{
    /// <summary>A message was delivered <paramref name="waited"/> after it was accepted.</summary>
    void Delivered(TimeSpan waited);
}

/// <summary>The core found its own state inconsistent: a bug, never a user error.</summary>
internal sealed class QueueInvariantException(string message) : Exception(message);
