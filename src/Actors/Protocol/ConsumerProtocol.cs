namespace ActorQueue.Protocol;

/// <summary>Marker for the messages a consumer sends to a queue.</summary>
public interface IConsumerCommand;

/// <summary>Marker for the messages a queue sends to a consumer.</summary>
public interface IConsumerReply;

/// <summary>
/// Asks for up to <paramref name="Count"/> more deliveries. The first pull registers the sender as a consumer
/// (the queue watches it and answers <see cref="ConsumerRegistered"/>); deliveries use up the demand.
/// </summary>
/// <param name="Count">How many more deliveries the consumer can take (at least 1).</param>
public sealed record Pull(int Count) : IConsumerCommand
{
    /// <summary>How many more deliveries the consumer can take (at least 1).</summary>
    public int Count { get; init; } = Count >= 1 ? Count : throw new ArgumentOutOfRangeException(nameof(Count), Count, "A pull asks for at least 1 delivery.");
}

/// <summary>The queue's answer to a consumer's first pull.</summary>
/// <param name="QueueName">The queue's name.</param>
/// <param name="AckTimeout">How long a delivery may be held without an ack, nack or <see cref="InProgress"/>.</param>
public sealed record ConsumerRegistered(string QueueName, TimeSpan AckTimeout) : IConsumerReply;

/// <summary>One message handed to one consumer.</summary>
/// <param name="DeliveryId">Id to settle this delivery with (unique per delivery, so redeliveries get new ids).</param>
/// <param name="Message">The payload.</param>
/// <param name="Attempt">1 for the first delivery of this message; above 1 means it may have been seen before.</param>
public readonly record struct Delivery(long DeliveryId, object Message, int Attempt);

/// <summary>Deliveries for one consumer, sent together to save messages.</summary>
/// <param name="Deliveries">The deliveries, in queue order.</param>
public sealed record DeliveryBatch(Delivery[] Deliveries) : IConsumerReply;

/// <summary>The delivery was processed; the queue forgets the message.</summary>
/// <param name="DeliveryId">The delivery being settled.</param>
public sealed record Ack(long DeliveryId) : IConsumerCommand;

/// <summary>Several deliveries were processed; one message instead of many.</summary>
/// <param name="DeliveryIds">The deliveries being settled.</param>
public sealed record AckBatch(long[] DeliveryIds) : IConsumerCommand
{
    /// <summary>The deliveries being settled; never null.</summary>
    public long[] DeliveryIds { get; init; } = DeliveryIds ?? throw new ArgumentNullException(nameof(DeliveryIds));
}

/// <summary>
/// The delivery failed: the queue retries it after <paramref name="Delay"/> (or its exponential backoff when
/// null), or dead-letters it when it has used max-attempts.
/// </summary>
/// <param name="DeliveryId">The delivery being settled.</param>
/// <param name="Delay">Delay before the retry (at most a day; longer is shortened to a day); null means the queue's backoff.</param>
/// <param name="Reason">Why it failed; kept with the message if it ends in the dead-letter store.</param>
public sealed record Nack(long DeliveryId, TimeSpan? Delay = null, string? Reason = null) : IConsumerCommand
{
    /// <summary>Delay before the retry (never negative); null means the queue's backoff.</summary>
    public TimeSpan? Delay { get; init; } = Delay is { } d && d < TimeSpan.Zero
        ? throw new ArgumentOutOfRangeException(nameof(Delay), d, "A nack delay must not be negative.") : Delay;
}

/// <summary>The consumer is still working on the delivery: its ack deadline moves to now + ack-timeout.</summary>
/// <param name="DeliveryId">The delivery still in progress.</param>
public sealed record InProgress(long DeliveryId) : IConsumerCommand;

/// <summary>Why a consumer command was refused.</summary>
public enum SettleError
{
    /// <summary>No delivery with that id was ever made.</summary>
    UnknownDelivery,
    /// <summary>The delivery was already acked, nacked or taken back (a duplicate or late settlement).</summary>
    AlreadySettled,
    /// <summary>The delivery is held by another consumer (or the sender is not a registered consumer).</summary>
    NotHolder,
}

/// <summary>The queue refused an ack, nack or in-progress; nothing changed.</summary>
/// <param name="DeliveryId">The delivery named in the refused command.</param>
/// <param name="Error">Why.</param>
public sealed record SettleRejected(long DeliveryId, SettleError Error) : IConsumerReply;

/// <summary>
/// The consumer leaves: the queue forgets its demand and redelivers what it held, as if it had terminated.
/// A consumer that is restarted in place sends it so its old deliveries do not wait for their deadline.
/// </summary>
public sealed record Detach : IConsumerCommand
{
    /// <summary>The one instance.</summary>
    public static readonly Detach Instance = new();
}
