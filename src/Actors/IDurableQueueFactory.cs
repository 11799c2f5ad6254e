using Akka.Actor;

namespace ActorQueue;

/// <summary>
/// Makes the actors of durable queues (<see cref="QueueSettings.Durable"/>). ActorQueue.Persistence provides one; the
/// guardian finds it by the type name in <c>actor-queue.durable.factory</c> and creates it with the
/// <see cref="ActorSystem"/> as its only constructor argument, so the in-memory library needs no database driver.
/// </summary>
public interface IDurableQueueFactory
{
    /// <summary>The Props of the durable queue named <paramref name="name"/>, ready to be started under the guardian.</summary>
    /// <param name="name">The queue's name.</param>
    /// <param name="settings">Its settings.</param>
    Props QueueProps(string name, QueueSettings settings);
}
