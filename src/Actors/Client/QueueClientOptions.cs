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
    /// For a queue served by the client's producer (a durable one): how many messages the producer keeps sent or ready
    /// to send that the queue has not accepted; calls beyond it wait their turn in the client. A client of an in-memory
    /// queue holds no such window: its calls are accepted within the credit the queue grants it. At least 1.
    /// </summary>
    public int MaxPending { get => _maxPending; init => _maxPending = QueueSettings.AtLeast<QueueClientOptions>(value, 1); }

    /// <summary>How long to wait for the guardian while connecting, and for stats; positive.</summary>
    public TimeSpan AskTimeout { get => _askTimeout; init => _askTimeout = QueueSettings.Positive<QueueClientOptions>(value); }
}
