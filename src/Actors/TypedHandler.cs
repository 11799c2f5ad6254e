using ActorQueue.Protocol;

namespace ActorQueue;

/// <summary>What a typed handler is told about one delivery besides its message.</summary>
/// <param name="QueueName">The queue the message came from.</param>
/// <param name="MessageId">
/// The message's stable id: the same in every redelivery, across restarts of a durable queue and in the dead-letter
/// store, so an idempotent handler can key on it.
/// </param>
/// <param name="DeliveryId">This delivery's id (a redelivery gets a new one).</param>
/// <param name="Attempt">1 for the first delivery; above 1 means the message may have been handled before.</param>
public readonly record struct DeliveryContext(string QueueName, long MessageId, long DeliveryId, int Attempt);

/// <summary>
/// User code that processes messages of type <typeparamref name="T"/> from a queue. Completing the task acks the
/// delivery; throwing or faulting nacks it (retried with backoff, dead-lettered after max-attempts); throwing
/// <see cref="UnprocessableMessageException"/> dead-letters it at once. A delivery whose message is not a
/// <typeparamref name="T"/> never reaches the handler: it is dead-lettered at once, naming both types.
/// </summary>
/// <typeparam name="T">The message type.</typeparam>
public interface IQueueHandler<in T>
{
    /// <summary>Processes one message; see <see cref="IQueueHandler.HandleAsync"/> for threads and cancellation.</summary>
    /// <param name="message">The message.</param>
    /// <param name="context">The message's stable id, the delivery id and the attempt.</param>
    /// <param name="cancellationToken">Cancelled on handler timeout or consumer shutdown.</param>
    Task HandleAsync(T message, DeliveryContext context, CancellationToken cancellationToken);
}

/// <summary>Runs an <see cref="IQueueHandler{T}"/> as the untyped handler a consumer runs.</summary>
/// <typeparam name="T">The message type.</typeparam>
internal sealed class TypedHandler<T>(string queueName, IQueueHandler<T> handler) : IQueueHandler
{
    public Task HandleAsync(Delivery delivery, CancellationToken cancellationToken) =>
        delivery.Message is T message
            ? handler.HandleAsync(message, new DeliveryContext(queueName, delivery.MessageId, delivery.DeliveryId, delivery.Attempt), cancellationToken)
            : Task.FromException(Mismatch(delivery.Message));

    /// <summary>The error for a message that is not a <typeparamref name="T"/>: dead-lettered at once, never retried.</summary>
    public static UnprocessableMessageException Mismatch(object message) =>
        new($"expected {typeof(T).Name}, got {message.GetType().Name} ({typeof(T).FullName} vs {message.GetType().FullName})");
}
