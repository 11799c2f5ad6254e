namespace ActorQueue.Protocol;

/// <summary>Marker for the replies to <see cref="Enqueue"/> and <see cref="Produce"/>.</summary>
public interface IEnqueueReply
{
    /// <summary>The correlation id of the request this answers.</summary>
    long CorrelationId { get; }
}

/// <summary>
/// Puts one message on a queue without a producer: the queue replies <see cref="EnqueueAccepted"/> or
/// <see cref="EnqueueRejected"/> to the sender. It only uses room not reserved as producer credit, and the
/// queue's full mode decides what happens when there is none.
/// </summary>
/// <param name="Message">The payload.</param>
/// <param name="CorrelationId">Echoed in the reply so a caller can match replies to requests.</param>
/// <param name="Wait">
/// False to be answered at once: with no room the message is rejected (QueueFull) even when the full mode is wait.
/// </param>
public sealed record Enqueue(object Message, long CorrelationId = 0, bool Wait = true)
{
    /// <summary>The payload; never null.</summary>
    public object Message { get; init; } = Message ?? throw new ArgumentNullException(nameof(Message));
}

/// <summary>
/// Asks a <see cref="ProducerActor"/> to put a message on its queue within credit; the producer replies
/// <see cref="EnqueueAccepted"/> once the queue has accepted it, or <see cref="EnqueueRejected"/>.
/// </summary>
/// <param name="Message">The payload.</param>
/// <param name="CorrelationId">Echoed in the reply.</param>
public sealed record Produce(object Message, long CorrelationId = 0)
{
    /// <summary>The payload; never null.</summary>
    public object Message { get; init; } = Message ?? throw new ArgumentNullException(nameof(Message));
}

/// <summary>
/// Withdraws <see cref="Produce"/> requests that a <see cref="ProducerActor"/> has not yet sent to the queue, all
/// at once: each is answered <see cref="EnqueueRejected"/> with <see cref="RejectReason.Withdrawn"/>, and the
/// credit asked for them is given back. A message already on its way is not affected; its answer follows as usual.
/// Since a producer sends in order, what a batch withdrawal leaves sent is always a prefix of the batch.
/// </summary>
/// <param name="CorrelationIds">The correlation ids of the requests to withdraw.</param>
public sealed record WithdrawProduce(params long[] CorrelationIds)
{
    /// <summary>The correlation ids of the requests to withdraw; never null.</summary>
    public long[] CorrelationIds { get; init; } = CorrelationIds ?? throw new ArgumentNullException(nameof(CorrelationIds));
}

/// <summary>The message is accepted: the queue holds it until it is acked or dead-lettered.</summary>
/// <param name="CorrelationId">The request's correlation id.</param>
public sealed record EnqueueAccepted(long CorrelationId) : IEnqueueReply;

/// <summary>The message was not accepted and the queue holds nothing of it.</summary>
/// <param name="CorrelationId">The request's correlation id.</param>
/// <param name="Reason">Why.</param>
/// <param name="Detail">A sentence for logs.</param>
public sealed record EnqueueRejected(long CorrelationId, RejectReason Reason, string Detail) : IEnqueueReply;

/// <summary>
/// Published on the event stream when a drop full mode evicts an accepted message to make room for a new one.
/// </summary>
/// <param name="QueueName">The queue that evicted it.</param>
/// <param name="MessageId">The queue's id of the evicted message.</param>
/// <param name="Message">The evicted payload.</param>
/// <param name="FullMode">The full mode that evicted it.</param>
public sealed record MessageDropped(string QueueName, long MessageId, object Message, FullMode FullMode);
