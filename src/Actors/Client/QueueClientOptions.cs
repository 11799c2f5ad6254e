namespace ActorQueue.Client;

/// <summary>How a <see cref="QueueClient{T}"/> talks to its queue.</summary>
public sealed record QueueClientOptions
{
    private readonly int _maxPending = 1000;
    private readonly TimeSpan _askTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The client's producer id. Null gives each client instance its own; set a stable one to continue a sequence
    /// (and its deduplication) across process restarts.
    /// </summary>
    public string? ProducerId { get; init; }

    /// <summary>
    /// How many messages the client's buffer holds before callers wait their turn (without blocking), and how many its
    /// producer keeps sent or ready to send: a client holds at most twice this many messages the queue has not accepted.
    /// At least 1.
    /// </summary>
    public int MaxPending { get => _maxPending; init => _maxPending = QueueSettings.AtLeast<QueueClientOptions>(value, 1); }

    /// <summary>How long to wait for the guardian while connecting, and for stats; positive.</summary>
    public TimeSpan AskTimeout { get => _askTimeout; init => _askTimeout = QueueSettings.Positive<QueueClientOptions>(value); }
}
