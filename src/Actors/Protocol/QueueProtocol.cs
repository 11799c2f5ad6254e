namespace ActorQueue.Protocol;

/// <summary>Asks a queue for its <see cref="QueueStats"/>.</summary>
public sealed record GetStats
{
    /// <summary>The one instance.</summary>
    public static readonly GetStats Instance = new();
}

/// <summary>A queue's counts now and its totals since it started.</summary>
/// <param name="QueueName">The queue.</param>
/// <param name="Capacity">Its capacity.</param>
/// <param name="Ready">Messages waiting for a consumer (redeliveries included).</param>
/// <param name="InFlight">Deliveries held by consumers and not yet settled.</param>
/// <param name="Delayed">Messages waiting for a retry's due time.</param>
/// <param name="Dead">Messages in the dead-letter store.</param>
/// <param name="Waiting">Messages parked by full mode wait (not yet accepted).</param>
/// <param name="Producers">Registered producers that are alive.</param>
/// <param name="Consumers">Registered consumers.</param>
/// <param name="Enqueued">Messages accepted.</param>
/// <param name="Delivered">Deliveries made (first deliveries and redeliveries).</param>
/// <param name="Acked">Deliveries acked.</param>
/// <param name="Nacked">Deliveries nacked.</param>
/// <param name="Redelivered">Deliveries whose attempt was above 1.</param>
/// <param name="DeadLettered">Messages moved to the dead-letter store.</param>
/// <param name="Dropped">Accepted messages evicted by a drop full mode, plus dead letters evicted from a full store.</param>
/// <param name="Rejected">Messages refused (full, wait timed out, draining, out of order, unregistered, invalid).</param>
/// <param name="Invalid">Bad requests answered with an error (unknown delivery, wrong holder, bad pull, unknown message).</param>
/// <param name="Draining">Whether the queue has stopped accepting and is finishing what it holds.</param>
public sealed record QueueStats(
    string QueueName, int Capacity,
    int Ready, int InFlight, int Delayed, int Dead, int Waiting, int Producers, int Consumers,
    long Enqueued, long Delivered, long Acked, long Nacked, long Redelivered, long DeadLettered,
    long Dropped, long Rejected, long Invalid, bool Draining)
{
    /// <summary>Messages the queue holds: ready + in flight + delayed (never above capacity).</summary>
    public int Held => Ready + InFlight + Delayed;

    /// <summary>Credit granted to producers and not yet used: room reserved out of capacity for messages on their way.</summary>
    public long OutstandingCredit { get; init; }

    /// <summary>Producers the queue remembers, registered or gone within producer-retention (for deduplication).</summary>
    public int KnownProducers { get; init; }
}

/// <summary>Asks a queue to list its dead letters, oldest first.</summary>
/// <param name="Max">Most to list (at least 1); a listing holds at most <see cref="MaxItems"/> whatever is asked.</param>
public sealed record GetDeadLetters(int Max = 100)
{
    /// <summary>The most one listing returns, so that a reply stays a reasonable message.</summary>
    public const int MaxItems = 10_000;

    /// <summary>Most to list.</summary>
    public int Max { get; init; } = Max >= 1 ? Max : throw new ArgumentOutOfRangeException(nameof(Max), Max, "Max must be at least 1.");
}

/// <summary>One message in the dead-letter store.</summary>
/// <param name="MessageId">The queue's id of the message (use it to redrive it).</param>
/// <param name="Message">The payload.</param>
/// <param name="Attempts">Deliveries made before it was dead-lettered.</param>
/// <param name="Reason">Why it was dead-lettered (the last nack's reason, a crash or a missed deadline).</param>
/// <param name="DeadLetteredAt">When.</param>
public sealed record DeadLetteredMessage(long MessageId, object Message, int Attempts, string Reason, DateTimeOffset DeadLetteredAt);

/// <summary>The queue's answer to <see cref="GetDeadLetters"/>.</summary>
/// <param name="Items">The dead letters, oldest first.</param>
/// <param name="Total">How many the store holds in all.</param>
public sealed record DeadLetterList(IReadOnlyList<DeadLetteredMessage> Items, int Total);

/// <summary>Moves one dead letter back to the queue (its attempts start again); replies <see cref="Redriven"/>.</summary>
/// <param name="MessageId">The dead letter's message id.</param>
public sealed record RedriveDeadLetter(long MessageId);

/// <summary>Moves dead letters back to the queue, oldest first, as far as capacity allows; replies <see cref="Redriven"/>.</summary>
public sealed record RedriveAllDeadLetters
{
    /// <summary>The one instance.</summary>
    public static readonly RedriveAllDeadLetters Instance = new();
}

/// <summary>How many dead letters were moved back to the queue.</summary>
/// <param name="Count">Messages redriven (0 when the id is unknown or the queue has no room).</param>
/// <param name="Remaining">Dead letters still in the store.</param>
public sealed record Redriven(int Count, int Remaining);

/// <summary>
/// Asks a queue to stop accepting, finish what it holds, then stop; it replies <see cref="Drained"/> first (and tells its
/// consumers and producers the same, so they stop rather than wait for it to come back). Repeating it is harmless, and a
/// later one may add <see cref="StopWithoutConsumers"/> or <see cref="Now"/> to one already under way.
/// </summary>
public sealed record Drain
{
    /// <summary>A drain that waits until everything held is settled, however long that takes.</summary>
    public static readonly Drain Instance = new();

    /// <summary>
    /// Stop as soon as no consumer is attached, instead of waiting for one to come: with nobody to hand work to, waiting
    /// gains nothing. What the queue still holds then is counted in <see cref="Drained.Left"/>. Used at shutdown.
    /// </summary>
    public bool StopWithoutConsumers { get; init; }

    /// <summary>
    /// Stop now with whatever is still held (counted in <see cref="Drained.Left"/>): the drain's time is up. Acks that
    /// arrive later find no queue; a durable queue keeps everything unsettled in its journal.
    /// </summary>
    public bool Now { get; init; }
}

/// <summary>The queue has stopped accepting and is stopping: it settled everything it held, or says how much it did not.</summary>
/// <param name="QueueName">The queue.</param>
/// <param name="Left">
/// Accepted messages not yet settled when it stopped (ready, in flight or delayed): 0 for a complete drain. An in-memory
/// queue loses them; a durable queue keeps them (see <paramref name="Kept"/>).
/// </param>
/// <param name="Kept">True when the queue is durable, so that what is <paramref name="Left"/> stays in its journal and is delivered after it starts again.</param>
public sealed record Drained(string QueueName, int Left = 0, bool Kept = false);

/// <summary>The queue did not understand a message; it changed nothing.</summary>
/// <param name="Request">The message it could not use.</param>
/// <param name="Reason">A sentence saying what is wrong.</param>
public sealed record InvalidRequest(object Request, string Reason);
