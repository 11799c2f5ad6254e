namespace ActorQueue;

/// <summary>What a full queue does with a message that arrives beyond credit or by a plain enqueue.</summary>
public enum FullMode
{
    /// <summary>Park the message until room frees up, at most full-wait-timeout; then reject it (WaitTimedOut).</summary>
    Wait,
    /// <summary>Reject the message at once (QueueFull).</summary>
    Reject,
    /// <summary>Evict the oldest ready message (published as MessageDropped) to accept the new one.</summary>
    DropOldest,
    /// <summary>Evict the newest ready message (published as MessageDropped) to accept the new one.</summary>
    DropNewest,
}
