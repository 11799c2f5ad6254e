namespace ActorQueue.Protocol;

/// <summary>Marker for timer and self messages; never sent by users.</summary>
internal interface IInternalMessage;

/// <summary>The queue's one periodic timer: deadlines, retries, wait timeouts.</summary>
internal sealed class QueueTick : IInternalMessage
{
    public static readonly QueueTick Instance = new();
}

/// <summary>Sent by the queue to itself once per burst: everything received before it is answered in batches.</summary>
internal sealed class QueueFlush : IInternalMessage
{
    public static readonly QueueFlush Instance = new();
}

/// <summary>The consumer's periodic timer: deadline extensions and handler timeouts.</summary>
internal sealed class ConsumerTick : IInternalMessage
{
    public static readonly ConsumerTick Instance = new();
}

/// <summary>Sent by a consumer to itself: the acks gathered so far go out in one message.</summary>
internal sealed class ConsumerFlush : IInternalMessage
{
    public static readonly ConsumerFlush Instance = new();
}

/// <summary>A handler's task finished (the consumer reads the outcome from the task).</summary>
internal sealed class HandlerDone(Akka.Actor.IActorRef consumer, long deliveryId, Task task) : IInternalMessage
{
    public Akka.Actor.IActorRef Consumer { get; } = consumer;
    public long DeliveryId { get; } = deliveryId;
    public Task Task { get; } = task;
}

/// <summary>Sent by a producer to itself: the Produce requests gathered so far go out in one batch.</summary>
internal sealed class ProducerFlush : IInternalMessage
{
    public static readonly ProducerFlush Instance = new();
}

/// <summary>The producer's periodic timer: resend what the queue has not accepted in time.</summary>
internal sealed class ProducerTick : IInternalMessage
{
    public static readonly ProducerTick Instance = new();
}
