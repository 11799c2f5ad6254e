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

/// <summary>
/// Thrown by a handler for a message that can never be handled (a payload of the wrong type, a malformed one): the
/// queue dead-letters it at once with this exception's type and message, instead of retrying it up to max-attempts.
/// </summary>
public sealed class UnprocessableMessageException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">Why the message can never be handled; kept with it in the dead-letter store.</param>
    public UnprocessableMessageException(string message) : base(message) { }

    /// <summary>Creates the exception with the error that shows the message cannot be handled.</summary>
    /// <param name="message">Why the message can never be handled; kept with it in the dead-letter store.</param>
    /// <param name="innerException">The error that shows it.</param>
    public UnprocessableMessageException(string message, Exception innerException) : base(message, innerException) { }
}

/// <summary>Why a handler's delivery failed, as the consumer reports it to the queue.</summary>
/// <param name="Reason">The exception's type and message (kept with the message if it is dead-lettered).</param>
/// <param name="DeadLetter">The handler said the message can never be handled (<see cref="UnprocessableMessageException"/>).</param>
/// <param name="Error">The exception, for the log (null for a cancellation or a timeout).</param>
internal readonly record struct HandlerFailure(string Reason, bool DeadLetter, Exception? Error = null)
{
    /// <summary>The failure a completed, unsuccessful handler task stands for.</summary>
    public static HandlerFailure Of(Task task)
    {
        if (task.IsCanceled) return new HandlerFailure("the handler was cancelled", false);
        var e = task.Exception?.GetBaseException();
        return e is null
            ? new HandlerFailure("the handler failed", false)
            : new HandlerFailure($"the handler failed: {e.GetType().FullName}: {e.Message}", e is UnprocessableMessageException, e);
    }

    /// <summary>The nack that reports this failure for <paramref name="deliveryId"/>.</summary>
    public Nack NackOf(long deliveryId) => new(deliveryId, null, Reason, DeadLetter);
}
