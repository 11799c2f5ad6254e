using ActorQueue.Protocol;

namespace ActorQueue.Core;

/// <summary>
/// What a <see cref="QueueState"/> operation decided. Applying the events of a run, in order, to a new state
/// rebuilds an equal state (see <see cref="QueueState.Apply"/>); durability and simulations rely on that.
/// They are only allocated when a recorder is attached, so the hot path pays nothing for them.
/// Instants are wall-clock time since the Unix epoch, so they keep their meaning after a restart.
/// </summary>
internal abstract record QueueEvent;

internal sealed record ProducerRegistered(string ProducerId, long DemandSeqNr) : QueueEvent;
internal sealed record CreditRequested(string ProducerId, long DemandSeqNr) : QueueEvent;
internal sealed record ProducerDeactivated(string ProducerId) : QueueEvent;
internal sealed record ProducerForgotten(string ProducerId) : QueueEvent;
internal sealed record CreditGranted(string ProducerId, long CreditSeqNr) : QueueEvent;
internal sealed record CreditReclaimed(string ProducerId) : QueueEvent;
internal sealed record MessageAccepted(long MessageId, object Message, string? ProducerId, long SeqNr, TimeSpan At, bool FromWaitList) : QueueEvent;
internal sealed record MessagesAccepted(long FirstMessageId, object[] Messages, string ProducerId, long FirstSeqNr, TimeSpan At) : QueueEvent;
internal sealed record MessageParked(object Message, string? ProducerId, long SeqNr, long CorrelationId, TimeSpan Deadline, object? ReplyTo) : QueueEvent;
internal sealed record ParkedMessageRejected(RejectReason Reason) : QueueEvent;
internal sealed record ProducerParkedRejected(string ProducerId) : QueueEvent;
internal sealed record MessageRejected(RejectReason Reason) : QueueEvent;
internal sealed record InvalidRequestRecorded : QueueEvent;
internal sealed record MessageEvicted(long MessageId, bool Newest) : QueueEvent;
internal sealed record ConsumerAdded(int ConsumerId) : QueueEvent;
internal sealed record WindowSet(int ConsumerId, int Window) : QueueEvent;
internal sealed record ConsumerRemoved(int ConsumerId) : QueueEvent;
internal sealed record ConsumerReserved(int ConsumerId, bool Reserved) : QueueEvent;
internal sealed record ConsumerStalled(int ConsumerId, bool Stalled) : QueueEvent;
internal sealed record MessageDelivered(long DeliveryId, long MessageId, int ConsumerId, TimeSpan Deadline, bool Isolated) : QueueEvent;
internal sealed record DeliveryAcked(long DeliveryId) : QueueEvent;
internal sealed record DeliveriesAcked(long FromDeliveryId, long ToDeliveryId) : QueueEvent;
internal sealed record DeliveryRequeued(long DeliveryId, TimeSpan? DueAt, Requeue Why) : QueueEvent;
internal sealed record DeliveryDeadLettered(long DeliveryId, string Reason, TimeSpan At, bool Nacked) : QueueEvent;
internal sealed record DeadlineExtended(long DeliveryId, TimeSpan Deadline) : QueueEvent;
internal sealed record RetryDue(long MessageId) : QueueEvent;
internal sealed record DeadLetterRedriven(long MessageId) : QueueEvent;
internal sealed record DeadLetterEvicted(long MessageId) : QueueEvent;
internal sealed record DrainStarted : QueueEvent;
internal sealed record Recovered(long FirstDeliveryId, TimeSpan At) : QueueEvent;

/// <summary>
/// Which events a journal keeps. Durable facts (messages accepted, delivered, settled, requeued with their due time,
/// dead-lettered, redriven, evicted, retries falling due, producers forgotten, recoveries) are kept and replayed with
/// <see cref="QueueState.Restore"/>; transient ones (credit, demand, consumers, parked messages, drains, deadlines
/// extended, refusals) die with the incarnation, which the recovery step that follows makes consistent.
/// </summary>
internal static class QueueJournal
{
    /// <summary>The event as a journal keeps it, or null for a transient one.</summary>
    public static QueueEvent? Durable(QueueEvent e) => e switch
    {
        // A parked message was not accepted, so the journal never heard of it: its admission is a plain acceptance.
        MessageAccepted { FromWaitList: true } x => x with { FromWaitList = false },
        MessageAccepted or MessagesAccepted or MessageEvicted or MessageDelivered => e,
        DeliveryAcked or DeliveriesAcked or DeliveryRequeued or DeliveryDeadLettered => e,
        RetryDue or DeadLetterRedriven or DeadLetterEvicted or ProducerForgotten or Recovered => e,
        _ => null,
    };
}
