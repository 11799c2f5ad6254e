using ActorQueue.Protocol;

namespace ActorQueue.Client;

/// <summary>A queue did not take a message; <see cref="Reason"/> says why.</summary>
public class ActorQueueException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="queueName">The queue.</param>
    /// <param name="reason">Why the message was not taken.</param>
    /// <param name="message">A sentence for logs.</param>
    public ActorQueueException(string queueName, RejectReason reason, string message) : base(message)
    {
        QueueName = queueName;
        Reason = reason;
    }

    /// <summary>The queue.</summary>
    public string QueueName { get; }

    /// <summary>Why the message was not taken.</summary>
    public RejectReason Reason { get; }
}

/// <summary>The queue is draining or has stopped: it takes nothing more, now or later.</summary>
public sealed class QueueClosedException(string queueName, RejectReason reason, string message)
    : ActorQueueException(queueName, reason, message);

/// <summary>The queue refused this message (full, invalid, out of order); another attempt may succeed.</summary>
public sealed class EnqueueRejectedException(string queueName, RejectReason reason, string message)
    : ActorQueueException(queueName, reason, message);
