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

    /// <summary>Calls waiting for the queue at once; further callers wait their turn (without blocking). At least 1.</summary>
    public int MaxPending { get => _maxPending; init => _maxPending = QueueSettings.AtLeast(value, 1); }

    /// <summary>How long to wait for the guardian while connecting, and for stats; positive.</summary>
    public TimeSpan AskTimeout { get => _askTimeout; init => _askTimeout = QueueSettings.Positive(value); }
}
