using ActorQueue.Protocol;
using Akka;
using Akka.Actor;
using Akka.Event;

namespace ActorQueue;

/// <summary>
/// ActorQueue in one ActorSystem: starts the <see cref="QueueGuardian"/> at /user/actor-queue (actor-queue.guardian-name)
/// and offers task-based ways to create queues, producers and consumers. Get it with
/// <see cref="ActorQueueExtension.Get(ActorSystem)"/> or <c>system.ActorQueues()</c>.
/// </summary>
public sealed class ActorQueueExtension : IExtension
{
    private readonly TimeSpan _askTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Starts the guardian; called once per system by Akka.</summary>
    /// <param name="system">The system to extend.</param>
    public ActorQueueExtension(ExtendedActorSystem system)
    {
        var config = ActorQueueConfig.For(system);
        var r = new SettingsReader(config.GetConfig(ActorQueueConfig.Root), ActorQueueConfig.Root);
        Guardian = system.ActorOf(QueueGuardian.Props(config), r.String("guardian-name"));
        if (r.Bool("drain-on-shutdown"))
        {
            var guardian = Guardian;
            var log = system.Log;
            var shutdown = CoordinatedShutdown.Get(system);
            var timeout = shutdown.Timeout(CoordinatedShutdown.PhaseServiceRequestsDone);
            shutdown.AddTask(CoordinatedShutdown.PhaseServiceRequestsDone, "actor-queue-drain", async () =>
            {
                try
                {
                    await guardian.Ask<Done>(DrainAll.Instance, timeout).ConfigureAwait(false);
                }
                catch (Exception e) when (e is AskTimeoutException or TaskCanceledException)
                {
                    log.Warning("ActorQueue: not every queue drained within {0}; what they still hold is lost.", timeout);
                }
                return Done.Instance;
            });
        }
    }

    /// <summary>The guardian actor; it answers the messages in <see cref="IGuardianCommand"/>.</summary>
    public IActorRef Guardian { get; }

    /// <summary>The extension of <paramref name="system"/>, started on first use.</summary>
    /// <param name="system">The actor system.</param>
    public static ActorQueueExtension Get(ActorSystem system) =>
        system.WithExtension<ActorQueueExtension, ActorQueueExtensionProvider>();

    /// <summary>Creates a queue (or returns the one with that name).</summary>
    /// <param name="name">The queue's name.</param>
    /// <param name="settings">Its settings; null to read HOCON.</param>
    /// <param name="cancellationToken">Stops waiting for the guardian.</param>
    /// <exception cref="Akka.Configuration.ConfigurationException">A setting is invalid; the message names its key and value.</exception>
    public async Task<IActorRef> CreateQueueAsync(string name, QueueSettings? settings = null, CancellationToken cancellationToken = default) =>
        (await Guardian.Ask<QueueStarted>(new CreateQueue(name, settings), _askTimeout, cancellationToken).ConfigureAwait(false)).Queue;

    /// <summary>Looks up an existing queue.</summary>
    /// <param name="name">The queue's name.</param>
    /// <param name="cancellationToken">Stops waiting for the guardian.</param>
    public async Task<IActorRef> GetQueueAsync(string name, CancellationToken cancellationToken = default) =>
        (await Guardian.Ask<QueueStarted>(new GetQueue(name), _askTimeout, cancellationToken).ConfigureAwait(false)).Queue;

    /// <summary>Starts a supervised producer for an existing queue.</summary>
    /// <param name="queueName">The queue.</param>
    /// <param name="producerId">The producer's stable id.</param>
    /// <param name="settings">Its settings; null for actor-queue.producer.</param>
    /// <param name="cancellationToken">Stops waiting for the guardian.</param>
    public async Task<IActorRef> StartProducerAsync(string queueName, string producerId, ProducerSettings? settings = null, CancellationToken cancellationToken = default) =>
        (await Guardian.Ask<ProducerStarted>(new StartProducer(queueName, producerId, settings), _askTimeout, cancellationToken).ConfigureAwait(false)).Producer;

    /// <summary>Starts a supervised consumer (restarted with backoff after a crash) for an existing queue.</summary>
    /// <param name="queueName">The queue.</param>
    /// <param name="handler">The user code run for each delivery.</param>
    /// <param name="settings">Its settings; null for actor-queue.consumer.</param>
    /// <param name="cancellationToken">Stops waiting for the guardian.</param>
    public async Task<IActorRef> StartConsumerAsync(string queueName, IQueueHandler handler, ConsumerSettings? settings = null, CancellationToken cancellationToken = default) =>
        (await Guardian.Ask<ConsumerStarted>(new StartConsumer(queueName, handler, settings), _askTimeout, cancellationToken).ConfigureAwait(false)).Consumer;

    /// <summary>
    /// Starts a supervised consumer whose typed handler gets each message as a <typeparamref name="T"/>; a delivery whose
    /// message is not one is dead-lettered at once ("expected T, got U"), never retried.
    /// </summary>
    /// <typeparam name="T">The message type.</typeparam>
    /// <param name="queueName">The queue.</param>
    /// <param name="handler">The user code run for each message.</param>
    /// <param name="settings">Its settings; null for actor-queue.consumer.</param>
    /// <param name="cancellationToken">Stops waiting for the guardian.</param>
    public Task<IActorRef> StartConsumerAsync<T>(string queueName, IQueueHandler<T> handler, ConsumerSettings? settings = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return StartConsumerAsync(queueName, new TypedHandler<T>(queueName, handler), settings, cancellationToken);
    }
}

/// <summary>Akka's provider for <see cref="ActorQueueExtension"/>.</summary>
public sealed class ActorQueueExtensionProvider : ExtensionIdProvider<ActorQueueExtension>
{
    /// <inheritdoc />
    public override ActorQueueExtension CreateExtension(ExtendedActorSystem system) => new(system);
}

/// <summary>Shortcuts on <see cref="ActorSystem"/>.</summary>
public static class ActorSystemActorQueueExtensions
{
    /// <summary>The system's <see cref="ActorQueueExtension"/>, started on first use.</summary>
    /// <param name="system">The actor system.</param>
    public static ActorQueueExtension ActorQueues(this ActorSystem system) => ActorQueueExtension.Get(system);
}
