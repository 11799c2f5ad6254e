namespace ActorQueue.TestKit;

/// <summary>What happened to a message, or to the pipeline, in a <see cref="History"/>.</summary>
public enum HistoryKind
{
    /// <summary>A producer asked for the message to be enqueued.</summary>
    Sent,

    /// <summary>The queue accepted the message: from here on it must not be lost.</summary>
    Accepted,

    /// <summary>The queue refused the message (<see cref="HistoryEvent.Detail"/> says why); it owes nothing for it.</summary>
    Rejected,

    /// <summary>The queue sent a delivery of the message to a consumer (it may wait there for a free handler).</summary>
    Dispatched,

    /// <summary>
    /// The call ended without a definite answer (its producer was killed after sending it): the message may or may not
    /// have been accepted. Delivering it is then no surprise, and a caller retrying it may cause a duplicate.
    /// </summary>
    Unknown,

    /// <summary>A handler started a delivery of the message.</summary>
    Delivered,

    /// <summary>The handler finished the delivery: the consumer acks it.</summary>
    Acked,

    /// <summary>The handler failed the delivery: the consumer nacks it.</summary>
    Nacked,

    /// <summary>The message reached the dead-letter store.</summary>
    DeadLettered,

    /// <summary>A drop full mode evicted the message: reported, not lost.</summary>
    Dropped,

    /// <summary>A consumer was killed (<see cref="HistoryEvent.Actor"/> says which).</summary>
    ConsumerCrashed,

    /// <summary>A producer was killed.</summary>
    ProducerCrashed,

    /// <summary>The queue crashed and recovered from its journal.</summary>
    QueueCrashed,

    /// <summary>What a consumer sends its queue was held back (a frozen link) until <see cref="HistoryEvent.Until"/>.</summary>
    ConsumerPaused,

    /// <summary>The queue's size was sampled (<see cref="HistoryEvent.Held"/> of <see cref="HistoryEvent.Capacity"/>).</summary>
    Sampled,
}

/// <summary>One entry of a <see cref="History"/>.</summary>
/// <param name="Index">Its position in the history (0 first).</param>
/// <param name="At">When it happened, on the run's clock (virtual time in a simulation).</param>
/// <param name="Kind">What happened.</param>
/// <param name="MessageId">The message's id as its producer named it, for message events; null otherwise.</param>
public sealed record HistoryEvent(long Index, TimeSpan At, HistoryKind Kind, string? MessageId)
{
    /// <summary>The producer (for <see cref="HistoryKind.Sent"/> and producer events) or consumer involved, by index.</summary>
    public int Actor { get; init; } = -1;

    /// <summary>The producer's sequence number of the message (its position in what that producer sent), for ordering.</summary>
    public long Seq { get; init; } = -1;

    /// <summary>The delivery's attempt (1 for a first delivery).</summary>
    public int Attempt { get; init; }

    /// <summary>The queue's delivery id, which grows with each delivery the queue makes.</summary>
    public long DeliveryId { get; init; }

    /// <summary>A reason or detail, e.g. a rejection's reason.</summary>
    public string? Detail { get; init; }

    /// <summary>For <see cref="HistoryKind.ConsumerPaused"/>: when the pause ends.</summary>
    public TimeSpan Until { get; init; }

    /// <summary>For <see cref="HistoryKind.Sampled"/>: messages held.</summary>
    public int Held { get; init; }

    /// <summary>For <see cref="HistoryKind.Sampled"/>: the queue's capacity.</summary>
    public int Capacity { get; init; }

    /// <inheritdoc />
    public override string ToString() =>
        $"#{Index} {At.TotalSeconds:0.000}s {Kind}{(MessageId is null ? "" : " " + MessageId)}" +
        $"{(Actor >= 0 ? $" actor={Actor}" : "")}{(Attempt > 0 ? $" attempt={Attempt}" : "")}{(DeliveryId > 0 ? $" delivery={DeliveryId}" : "")}" +
        $"{(Detail is null ? "" : $" ({Detail})")}";
}

/// <summary>
/// Every event of a run, in the order it was recorded, safe to add to from any thread. A simulation fills one; code of
/// your own (a crash test's ledger, a production log) can fill one too and have <see cref="HistoryChecker"/> judge it.
/// Bounded: past <see cref="MaxEvents"/> further events are counted in <see cref="Overflow"/> and not kept.
/// </summary>
public sealed class History
{
    /// <summary>The most events a history keeps.</summary>
    public const int MaxEvents = 10_000_000;

    // Numbering and keeping an event is one step under this lock, so a reader never sees an event without the ones
    // numbered before it (a thread preempted between the two would otherwise hide an earlier event from a check).
    private readonly object _gate = new();
    private readonly List<HistoryEvent> _events = new();
    private readonly Func<TimeSpan> _clock;
    private long _overflow;

    /// <summary>A history whose events are stamped by <paramref name="clock"/>.</summary>
    /// <param name="clock">The run's clock; null stamps every event with zero.</param>
    public History(Func<TimeSpan>? clock = null) => _clock = clock ?? (() => TimeSpan.Zero);

    /// <summary>The events, in the order they were recorded.</summary>
    public IReadOnlyList<HistoryEvent> Events
    {
        get
        {
            lock (_gate) return _events.ToList();
        }
    }

    /// <summary>Events recorded so far (kept ones).</summary>
    public long Count
    {
        get
        {
            lock (_gate) return _events.Count;
        }
    }

    /// <summary>Events not kept because the history was full.</summary>
    public long Overflow
    {
        get
        {
            lock (_gate) return _overflow;
        }
    }

    /// <summary>Records an event stamped with the run's clock; <paramref name="shape"/> fills in its details.</summary>
    /// <param name="kind">What happened.</param>
    /// <param name="messageId">The message, for message events.</param>
    /// <param name="shape">Sets the event's other fields, e.g. <c>e =&gt; e with { Attempt = 2 }</c>.</param>
    public void Add(HistoryKind kind, string? messageId = null, Func<HistoryEvent, HistoryEvent>? shape = null)
    {
        lock (_gate)
        {
            if (_events.Count >= MaxEvents)
            {
                _overflow++;
                return;
            }
            var e = new HistoryEvent(_events.Count, _clock(), kind, messageId);
            _events.Add(shape is null ? e : shape(e));
        }
    }
}
