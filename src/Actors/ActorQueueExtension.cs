using ActorQueue.Protocol;
using Akka;
using Akka.Actor;
using Akka.Configuration;
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
        foreach (var (key, didYouMean) in ActorQueueConfig.UnknownKeys(config))
            system.Log.Warning("Unknown ActorQueue setting {0} is ignored{1}; every setting is listed in ActorQueue's reference.conf.",
                key, didYouMean is null ? "" : $" (did you mean {didYouMean}?)");
        var guardianName = r.String("guardian-name");
        if (!ActorPath.IsValidPathElement(guardianName))
            throw r.Invalid("guardian-name", guardianName, "it must be a valid actor name (letters, digits and -_.*+:@&=,!~';, not starting with $)");
        var drainOnShutdown = r.Bool("drain-on-shutdown");
        var drainTimeout = r.Duration("drain-timeout");
        Guardian = system.ActorOf(QueueGuardian.Props(config), guardianName);
        if (drainOnShutdown) DrainOnShutdown(system, Guardian, drainTimeout);
    }

    /// <summary>The CoordinatedShutdown phase whose timeout bounds the drain at shutdown.</summary>
    internal const string ShutdownPhaseTimeoutKey = "akka.coordinated-shutdown.phases.service-requests-done.timeout";

    /// <summary>
    /// Time the shutdown phase needs beyond drain-timeout: for queues told to stop now to answer, and for the report.
    /// </summary>
    internal static readonly TimeSpan DrainMargin = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Drains every queue in CoordinatedShutdown's service-requests-done phase. The phase's timeout is raised to cover
    /// drain-timeout when nobody set it (the extension starts before CoordinatedShutdown reads it, or Akka.Hosting wrote
    /// it); a shorter one set by the user bounds the drain, and start-up says so.
    /// </summary>
    private static void DrainOnShutdown(ExtendedActorSystem system, IActorRef guardian, TimeSpan drainTimeout)
    {
        var log = system.Log;
        if (!system.HasExtension<CoordinatedShutdown>())
            system.Settings.InjectTopLevelFallback(ConfigurationFactory.ParseString(
                $"{ShutdownPhaseTimeoutKey} = {(long)(drainTimeout + DrainMargin).TotalMilliseconds}ms"));
        var shutdown = CoordinatedShutdown.Get(system);
        var phaseTimeout = shutdown.Timeout(CoordinatedShutdown.PhaseServiceRequestsDone);
        var timeout = drainTimeout;
        if (phaseTimeout < drainTimeout + DrainMargin)
        {
            var margin = TimeSpan.FromTicks(Math.Min(DrainMargin.Ticks, phaseTimeout.Ticks / 4));
            timeout = phaseTimeout - margin;
            log.Warning("ActorQueue: actor-queue.drain-timeout = {0} does not fit in {1} = {2}, which ends the drain at shutdown; " +
                        "queues get {3} to drain. Set {1} to at least drain-timeout + {4}, or lower drain-timeout.",
                Seconds(drainTimeout), ShutdownPhaseTimeoutKey, Seconds(phaseTimeout), Seconds(timeout), Seconds(DrainMargin));
        }
        var request = new DrainAll { Timeout = timeout, StopWithoutConsumers = true };
        shutdown.AddTask(CoordinatedShutdown.PhaseServiceRequestsDone, "actor-queue-drain", async () =>
        {
            try
            {
                var report = await guardian.Ask<AllDrained>(request, phaseTimeout).ConfigureAwait(false);
                // Each queue that stopped with work unsettled has logged it, with its count, itself.
                if (report.Left == 0 && report.Unanswered.Count == 0) log.Info("ActorQueue: every queue drained.");
                foreach (var name in report.Unanswered)
                    log.Error("ActorQueue: queue {0} stopped while draining without saying what it held; an in-memory queue's unsettled messages are lost.", name);
            }
            catch (Exception e) when (e is AskTimeoutException or TaskCanceledException)
            {
                log.Error("ActorQueue: the queues did not finish draining within {0} ({1}); what in-memory queues still hold is lost, durable queues keep theirs in their journal.",
                    Seconds(phaseTimeout), ShutdownPhaseTimeoutKey);
            }
            return Done.Instance;
        });
    }

    private static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture) + "s";

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
