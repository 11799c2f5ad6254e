namespace ActorQueue.Protocol;

/// <summary>Marker for the messages a consumer sends to a queue.</summary>
public interface IConsumerCommand;

/// <summary>Marker for the messages a queue sends to a consumer.</summary>
public interface IConsumerReply;

/// <summary>
/// Registers the sender as a consumer (the queue watches it and answers <see cref="ConsumerRegistered"/>) and says how
/// many deliveries it may hold at once: the queue keeps it topped up to <paramref name="Window"/> deliveries not yet
/// settled, so a consumer pulls once and then only acks. Both fields are absolute, so a consumer re-sends its pull
/// whenever it has heard nothing for a while: a lost or repeated pull costs nothing.
/// </summary>
/// <param name="Window">How many unsettled deliveries the consumer may hold (its prefetch; at least 1).</param>
/// <param name="Epoch">
/// The <see cref="ConsumerRegistered.Epoch"/> the consumer last heard, or 0 for none: a pull naming another epoch
/// (the answer was lost, or the queue restarted since) is answered with <see cref="ConsumerRegistered"/> again.
/// </param>
public sealed record Pull(int Window, long Epoch = 0) : IConsumerCommand
{
    /// <summary>How many unsettled deliveries the consumer may hold (at least 1).</summary>
    public int Window { get; init; } = Window >= 1 ? Window : throw new ArgumentOutOfRangeException(nameof(Window), Window, "A pull's window is at least 1 delivery.");
}

/// <summary>The queue's answer to a consumer's first pull (and to a pull naming another epoch).</summary>
/// <param name="QueueName">The queue's name.</param>
/// <param name="AckTimeout">How long a delivery may be held without an ack, nack or <see cref="InProgress"/>.</param>
/// <param name="Epoch">
/// This incarnation of the queue. When it changes (the queue restarted or recovered), deliveries the consumer holds from
/// before are no longer the queue's: it drops those it has not started, and their acks are refused.
/// </param>
public sealed record ConsumerRegistered(string QueueName, TimeSpan AckTimeout, long Epoch) : IConsumerReply;

/// <summary>One message handed to one consumer.</summary>
/// <param name="DeliveryId">Id to settle this delivery with (unique per delivery, so redeliveries get new ids).</param>
/// <param name="Message">The payload.</param>
/// <param name="Attempt">1 for the first delivery of this message; above 1 means it may have been seen before.</param>
/// <param name="MessageId">
/// The message's own id in its queue: the same in every redelivery, across restarts of a durable queue and in the
/// dead-letter store (where <see cref="RedriveDeadLetter"/> takes it), so an idempotent handler can key on it. 0 when
/// the sender of the delivery did not say.
/// </param>
public readonly record struct Delivery(long DeliveryId, object Message, int Attempt, long MessageId = 0);

/// <summary>
/// Deliveries for one consumer, sent together to save messages: their ids run from <paramref name="FirstDeliveryId"/>
/// without gaps, in queue order. Read them with <see cref="Count"/> and the indexer.
/// </summary>
/// <param name="FirstDeliveryId">The id of the first delivery; the i-th has id FirstDeliveryId + i.</param>
/// <param name="Messages">The payloads, in queue order.</param>
/// <param name="Attempts">Each delivery's attempt number, or null when every one is a first attempt.</param>
/// <param name="MessageIds">Each delivery's message id (see <see cref="Delivery.MessageId"/>), or null when not known.</param>
public sealed record DeliveryBatch(long FirstDeliveryId, object[] Messages, int[]? Attempts = null, long[]? MessageIds = null) : IConsumerReply
{
    /// <summary>The payloads in queue order; never null.</summary>
    public object[] Messages { get; init; } = Messages ?? throw new ArgumentNullException(nameof(Messages));

    /// <summary>Each delivery's attempt number (as long as <see cref="Messages"/>), or null when all are first attempts.</summary>
    public int[]? Attempts { get; init; } = Attempts is null || Attempts.Length == Messages?.Length ? Attempts
        : throw new ArgumentException("Attempts must have one entry per message.", nameof(Attempts));

    /// <summary>How many deliveries the batch holds.</summary>
    public int Count => Messages.Length;

    /// <summary>The delivery at <paramref name="index"/> (0-based, in queue order).</summary>
    /// <param name="index">From 0 to <see cref="Count"/> - 1.</param>
    public Delivery this[int index] =>
        new(FirstDeliveryId + index, Messages[index], Attempts is null ? 1 : Attempts[index], MessageIds is { } ids && index < ids.Length ? ids[index] : 0);

    /// <summary>The deliveries as a new array (allocates; the consumer's hot path uses the indexer).</summary>
    public Delivery[] ToArray()
    {
        var deliveries = new Delivery[Messages.Length];
        for (var i = 0; i < deliveries.Length; i++) deliveries[i] = this[i];
        return deliveries;
    }
}

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
/// Every delivery with an id from <paramref name="FromDeliveryId"/> to <paramref name="ToDeliveryId"/> (both
/// included) was processed: a whole <see cref="DeliveryBatch"/> settled in one small message. Each id in the range is
/// acked as by <see cref="Ack"/>, and refused the same way when it is not this consumer's to settle.
/// </summary>
/// <param name="FromDeliveryId">The first delivery id of the range (at least 1).</param>
/// <param name="ToDeliveryId">The last delivery id of the range; at least <paramref name="FromDeliveryId"/>, and at most <see cref="MaxLength"/> ids on.</param>
public sealed record AckRange(long FromDeliveryId, long ToDeliveryId) : IConsumerCommand
{
    /// <summary>The most ids one range may cover, so that a mistaken range cannot keep the queue busy.</summary>
    public const int MaxLength = 65_536;

    /// <summary>The last delivery id of the range (at least <see cref="FromDeliveryId"/>, at most <see cref="MaxLength"/> ids on).</summary>
    public long ToDeliveryId { get; init; } = IsValid(FromDeliveryId, ToDeliveryId) ? ToDeliveryId
        : throw new ArgumentOutOfRangeException(nameof(ToDeliveryId), ToDeliveryId, $"An ack range runs forward from {FromDeliveryId} over at most {MaxLength} ids.");

    /// <summary>How many ids the range covers.</summary>
    public int Length => (int)(ToDeliveryId - FromDeliveryId + 1);

    /// <summary>True when a range from <paramref name="from"/> to <paramref name="to"/> may be sent.</summary>
    /// <param name="from">The first id.</param>
    /// <param name="to">The last id.</param>
    public static bool IsValid(long from, long to) => from >= 1 && to >= from && to - from < MaxLength;
}

/// <summary>
/// The delivery failed: the queue retries it after <paramref name="Delay"/> (or its exponential backoff when
/// null), or dead-letters it when it has used max-attempts.
/// </summary>
/// <param name="DeliveryId">The delivery being settled.</param>
/// <param name="Delay">Delay before the retry (at most a day; longer is shortened to a day); null means the queue's backoff.</param>
/// <param name="Reason">Why it failed; kept with the message if it ends in the dead-letter store.</param>
/// <param name="DeadLetter">
/// True when the message can never be handled (a payload of the wrong type, malformed): it is dead-lettered at once
/// with <paramref name="Reason"/>, whatever its attempt, instead of being retried.
/// </param>
public sealed record Nack(long DeliveryId, TimeSpan? Delay = null, string? Reason = null, bool DeadLetter = false) : IConsumerCommand
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

/// <summary>The queue refused an ack, nack, return or in-progress; nothing changed.</summary>
/// <param name="DeliveryId">The (first) delivery named in the refused command.</param>
/// <param name="Error">Why.</param>
/// <param name="Count">How many consecutive ids from <paramref name="DeliveryId"/> were refused for this reason (an ack range).</param>
public sealed record SettleRejected(long DeliveryId, SettleError Error, int Count = 1) : IConsumerReply;

/// <summary>
/// The consumer gives back deliveries it has not started (its prefetch buffer, when it stops or has too much): they go
/// back ahead of new work and their attempt does not count, as the handler never saw them.
/// </summary>
/// <param name="DeliveryIds">The deliveries given back (at most <see cref="MaxLength"/>).</param>
public sealed record Return(long[] DeliveryIds) : IConsumerCommand
{
    /// <summary>The most ids one return may name.</summary>
    public const int MaxLength = AckRange.MaxLength;

    /// <summary>The deliveries given back; never null, at most <see cref="MaxLength"/>.</summary>
    public long[] DeliveryIds { get; init; } = DeliveryIds is null ? throw new ArgumentNullException(nameof(DeliveryIds))
        : DeliveryIds.Length <= MaxLength ? DeliveryIds : throw new ArgumentException($"A return names at most {MaxLength} deliveries.", nameof(DeliveryIds));
}

/// <summary>
/// The queue took these deliveries back from the consumer (their ack deadline passed) and will deliver them again: the
/// consumer must not start them. One already running finishes, but its settlement is refused.
/// </summary>
/// <param name="DeliveryIds">The deliveries taken back.</param>
public sealed record Revoked(long[] DeliveryIds) : IConsumerReply;

/// <summary>
/// The consumer leaves: the queue forgets it and takes back what it held, as if it had terminated (each with its
/// attempt counted: send <see cref="Return"/> first for what was never started). A consumer restarted in place sends
/// it so its old deliveries do not wait for their deadline.
/// </summary>
public sealed record Detach : IConsumerCommand
{
    /// <summary>The one instance.</summary>
    public static readonly Detach Instance = new();
}
