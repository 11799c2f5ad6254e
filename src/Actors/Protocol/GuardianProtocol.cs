using Akka.Actor;

namespace ActorQueue.Protocol;

/// <summary>Marker for the requests the <see cref="QueueGuardian"/> answers. They hold local objects and stay in-process.</summary>
public interface IGuardianCommand;

/// <summary>
/// Creates the queue named <paramref name="Name"/> (or returns it if it exists); replies <see cref="QueueStarted"/>,
/// or a <see cref="Status.Failure"/> whose exception names the bad setting.
/// </summary>
/// <param name="Name">The queue's name: a valid actor name, unique in the system.</param>
/// <param name="Settings">Its settings; null to read them from HOCON (actor-queue.queue, overridden by actor-queue.queues.NAME).</param>
public sealed record CreateQueue(string Name, QueueSettings? Settings = null) : IGuardianCommand;

/// <summary>Looks a queue up by name; replies <see cref="QueueStarted"/> or a <see cref="Status.Failure"/>.</summary>
/// <param name="Name">The queue's name.</param>
public sealed record GetQueue(string Name) : IGuardianCommand;

/// <summary>A queue exists and this is its ref.</summary>
/// <param name="Name">The queue's name.</param>
/// <param name="Queue">The queue actor.</param>
public sealed record QueueStarted(string Name, IActorRef Queue)
{
    /// <summary>
    /// True for an in-memory <see cref="QueueActor"/> of this process, which registers a client's feed as a producer
    /// itself (the client's calls are then accepted on their callers' threads).
    /// </summary>
    internal bool ServesLocalFeeds { get; init; }
}

/// <summary>Starts a <see cref="ProducerActor"/> for a queue under the guardian; replies <see cref="ProducerStarted"/>.</summary>
/// <param name="QueueName">The queue to produce to (it must exist).</param>
/// <param name="ProducerId">The producer's stable id.</param>
/// <param name="Settings">Its settings; null for actor-queue.producer.</param>
public sealed record StartProducer(string QueueName, string ProducerId, ProducerSettings? Settings = null) : IGuardianCommand
{
    /// <summary>A client's buffer of calls, which the producer reads instead of being sent <see cref="Produce"/>.</summary>
    internal Client.ClientFeed? Feed { get; init; }
}

/// <summary>The producer that was started.</summary>
/// <param name="Producer">Send it <see cref="Produce"/>.</param>
public sealed record ProducerStarted(IActorRef Producer);

/// <summary>
/// Starts a <see cref="ConsumerActor"/> for a queue under the guardian, behind a backoff supervisor that starts it
/// again after a crash; replies <see cref="ConsumerStarted"/>.
/// </summary>
/// <param name="QueueName">The queue to consume (it must exist).</param>
/// <param name="Handler">The user code run for each delivery.</param>
/// <param name="Settings">Its settings; null for actor-queue.consumer.</param>
public sealed record StartConsumer(string QueueName, IQueueHandler Handler, ConsumerSettings? Settings = null) : IGuardianCommand;

/// <summary>The consumer that was started.</summary>
/// <param name="Consumer">The backoff supervisor around the consumer; stop it to stop the consumer for good.</param>
public sealed record ConsumerStarted(IActorRef Consumer);

/// <summary>
/// Drains every queue (see <see cref="Drain"/>); replies <see cref="AllDrained"/> once every queue has stopped, each
/// with what it still held. This is what CoordinatedShutdown runs when actor-queue.drain-on-shutdown is on.
/// </summary>
public sealed record DrainAll : IGuardianCommand
{
    /// <summary>A drain with no time limit that waits for consumers to settle everything.</summary>
    public static readonly DrainAll Instance = new();

    /// <summary>How long queues get to settle what they hold; past it each still running is stopped with what it holds. Null: no limit.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>A queue with no consumer attached stops at once instead of waiting for one (see <see cref="Drain.StopWithoutConsumers"/>).</summary>
    public bool StopWithoutConsumers { get; init; }
}

/// <summary>Every queue has stopped after a <see cref="DrainAll"/>.</summary>
/// <param name="Queues">One report per queue that answered, with what it still held when it stopped.</param>
/// <param name="Unanswered">Queues that stopped without saying what they held (they failed while draining).</param>
public sealed record AllDrained(IReadOnlyList<Drained> Queues, IReadOnlyList<string> Unanswered)
{
    /// <summary>Accepted messages the queues had not settled when they stopped, summed.</summary>
    public int Left => Queues.Sum(q => q.Left);
}
