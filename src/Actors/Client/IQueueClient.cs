using ActorQueue.Protocol;

namespace ActorQueue.Client;

/// <summary>
/// Puts messages of type <typeparamref name="T"/> on one queue from code that is not an actor. Safe to call from
/// many threads at once; nothing blocks a thread.
/// </summary>
/// <typeparam name="T">The message type.</typeparam>
public interface IQueueClient<in T> where T : notnull
{
    /// <summary>The queue this client writes to.</summary>
    string QueueName { get; }

    /// <summary>
    /// Completes once the queue has accepted <paramref name="message"/>, waiting (without blocking) while the queue
    /// is full, whatever the queue's full mode (the client sends within the credit the queue grants; call
    /// <see cref="TryEnqueueAsync"/> to fail fast instead). Cancelled while waiting, the message is withdrawn and <see cref="OperationCanceledException"/> is
    /// thrown; once the message has reached the queue, cancellation comes too late and the call completes normally.
    /// Either way nothing is half-enqueued and no credit is left held.
    /// </summary>
    /// <param name="message">The message.</param>
    /// <param name="cancellationToken">Stops waiting for room.</param>
    /// <exception cref="QueueClosedException">The queue is draining or has stopped, or the client was disposed.</exception>
    /// <exception cref="EnqueueRejectedException">The queue refused the message.</exception>
    /// <exception cref="OperationCanceledException">Cancelled before the message reached the queue (it was withdrawn).</exception>
    /// <exception cref="InvalidOperationException">The queue did not exist within the client's ask timeout (the host has not started, or it was never created).</exception>
    Task EnqueueAsync(T message, CancellationToken cancellationToken = default);

    /// <summary>
    /// Offers <paramref name="message"/> without waiting for room: true if the queue accepted it, false if it had no
    /// room. Full mode wait does not park it; the drop modes evict a ready message to make room and return true.
    /// It still waits for the queue's answer, which is immediate.
    /// </summary>
    /// <param name="message">The message.</param>
    /// <param name="cancellationToken">Stops the call before the message is sent.</param>
    /// <exception cref="QueueClosedException">The queue is draining or has stopped, or the client was disposed.</exception>
    /// <exception cref="EnqueueRejectedException">The queue refused the message for another reason than room.</exception>
    /// <exception cref="TimeoutException">The queue did not answer within the client's ask timeout; the outcome is unknown.</exception>
    /// <exception cref="InvalidOperationException">The queue did not exist within the client's ask timeout (the host has not started, or it was never created).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired first.</exception>
    Task<bool> TryEnqueueAsync(T message, CancellationToken cancellationToken = default);

    /// <summary>
    /// Enqueues <paramref name="messages"/> in order, pipelined, and returns how many the queue accepted: all of them,
    /// unless cancellation stopped it, in which case the first n were accepted and the rest were not enqueued.
    /// </summary>
    /// <param name="messages">The messages, in order.</param>
    /// <param name="cancellationToken">Stops handing over the rest.</param>
    /// <exception cref="QueueClosedException">The queue is draining or has stopped, or the client was disposed.</exception>
    /// <exception cref="EnqueueRejectedException">The queue refused one of the messages (those before it may be accepted).</exception>
    /// <exception cref="InvalidOperationException">The queue did not exist within the client's ask timeout (the host has not started, or it was never created).</exception>
    /// <exception cref="ArgumentNullException"><paramref name="messages"/> or one of them is null (nothing is sent).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired before anything was handed over.</exception>
    Task<int> EnqueueManyAsync(IEnumerable<T> messages, CancellationToken cancellationToken = default);

    /// <summary>The queue's current stats.</summary>
    /// <param name="cancellationToken">Stops waiting for the answer.</param>
    /// <exception cref="QueueClosedException">The queue has stopped, or the client was disposed.</exception>
    /// <exception cref="InvalidOperationException">The queue did not exist within the client's ask timeout (the host has not started, or it was never created).</exception>
    /// <exception cref="Akka.Actor.AskTimeoutException">The queue did not answer within the client's ask timeout.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired first.</exception>
    Task<QueueStats> GetStatsAsync(CancellationToken cancellationToken = default);
}
