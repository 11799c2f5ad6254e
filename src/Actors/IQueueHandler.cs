using ActorQueue.Protocol;

namespace ActorQueue;

/// <summary>User code that processes deliveries for a <see cref="ConsumerActor"/>.</summary>
public interface IQueueHandler
{
    /// <summary>
    /// Processes one delivery. Completing the task acks it; throwing or faulting nacks it (retried with backoff,
    /// dead-lettered after max-attempts). Honour <paramref name="cancellationToken"/>: it fires when the handler
    /// runs past handler-timeout or the consumer stops. A handler the consumer has measured cheap (microseconds,
    /// completing at once) runs on the consumer's thread, watched so that progress is still reported if it blocks; any
    /// other starts on a thread of its concurrency slot's own, off the shared thread pool, so blocking here (synchronous
    /// I/O) delays only this slot. After an await it continues on the thread pool as usual.
    /// </summary>
    /// <param name="delivery">The delivery: its message, id and attempt (above 1 means it may be a duplicate).</param>
    /// <param name="cancellationToken">Cancelled on handler timeout or consumer shutdown.</param>
    Task HandleAsync(Delivery delivery, CancellationToken cancellationToken);
}

/// <summary>Adapts a delegate to <see cref="IQueueHandler"/>.</summary>
public static class QueueHandler
{
    /// <summary>Wraps an async function as a handler.</summary>
    /// <param name="handler">Called once per delivery; see <see cref="IQueueHandler.HandleAsync"/>.</param>
    public static IQueueHandler From(Func<Delivery, CancellationToken, Task> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return new DelegateHandler(handler);
    }

    private sealed class DelegateHandler(Func<Delivery, CancellationToken, Task> handler) : IQueueHandler
    {
        public Task HandleAsync(Delivery delivery, CancellationToken cancellationToken) => handler(delivery, cancellationToken);
    }
}
