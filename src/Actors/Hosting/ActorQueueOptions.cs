using System.Text;

namespace ActorQueue.Hosting;

/// <summary>
/// ActorQueue's settings for Akka.Hosting: system-wide keys and the queues to create at start-up. Null keeps the
/// HOCON value; everything is written as HOCON in front of the system's configuration.
/// </summary>
public sealed class ActorQueueOptions
{
    /// <summary>
    /// Name of the guardian actor under /user that owns every queue, producer and consumer (actor-queue.guardian-name,
    /// default "actor-queue"). Null keeps the HOCON value.
    /// </summary>
    public string? GuardianName { get; set; }

    /// <summary>
    /// Whether CoordinatedShutdown (the host's StopAsync) drains every queue before the system stops: accepting nothing
    /// new, handing what is held to consumers (actor-queue.drain-on-shutdown, default on). Null keeps the HOCON value.
    /// </summary>
    public bool? DrainOnShutdown { get; set; }

    /// <summary>
    /// How long that drain may take (actor-queue.drain-timeout, default 30 s). Past it each queue stops with what it
    /// still holds, logged with the count: lost for an in-memory queue, kept in the journal for a durable one. A queue
    /// with no consumer stops at once. The CoordinatedShutdown phase that runs the drain is given this plus 5 s unless
    /// its timeout is set elsewhere. Null keeps the HOCON value.
    /// </summary>
    public TimeSpan? DrainTimeout { get; set; }

    /// <summary>
    /// Deliveries a consumer asks for ahead of its handlers, for every consumer that does not set its own
    /// (actor-queue.consumer.prefetch, default 32). Null keeps the HOCON value.
    /// </summary>
    public int? ConsumerPrefetch { get; set; }

    /// <summary>
    /// Handlers a consumer runs at once, for every consumer that does not set its own (actor-queue.consumer.concurrency,
    /// default 4). Null keeps the HOCON value.
    /// </summary>
    public int? ConsumerConcurrency { get; set; }

    /// <summary>
    /// Longest a handler may run before its CancellationToken is cancelled and the delivery nacked, for every consumer
    /// that does not set its own (actor-queue.consumer.handler-timeout, default 60 s). Null keeps the HOCON value.
    /// </summary>
    public TimeSpan? HandlerTimeout { get; set; }

    /// <summary>The queues to create when the system starts.</summary>
    public IList<QueueOptions> Queues { get; } = new List<QueueOptions>();

    /// <summary>Adds a queue to create at start-up.</summary>
    /// <param name="name">The queue's name.</param>
    /// <param name="configure">Sets its options; null keeps HOCON's.</param>
    public ActorQueueOptions AddQueue(string name, Action<QueueOptions>? configure = null)
    {
        var queue = new QueueOptions(name);
        configure?.Invoke(queue);
        Queues.Add(queue);
        return this;
    }

    /// <summary>Adds a queue to create at start-up, registered in the actor registry under <typeparamref name="TKey"/>.</summary>
    /// <typeparam name="TKey">The registry key: inject the queue as <c>IRequiredActor&lt;TKey&gt;</c>.</typeparam>
    /// <param name="name">The queue's name.</param>
    /// <param name="configure">Sets its options; null keeps HOCON's.</param>
    public ActorQueueOptions AddQueue<TKey>(string name, Action<QueueOptions>? configure = null) =>
        AddQueue(name, q =>
        {
            q.RegistryKey = typeof(TKey);
            configure?.Invoke(q);
        });

    /// <summary>
    /// The CoordinatedShutdown phase timeout that fits <see cref="DrainTimeout"/> (or the default drain-timeout), as
    /// HOCON; <see cref="ActorQueueHostingExtensions.WithActorQueue(Akka.Hosting.AkkaConfigurationBuilder, ActorQueueOptions)"/>
    /// adds it behind the configuration, so a timeout set elsewhere wins.
    /// </summary>
    public string ShutdownHocon()
    {
        var drain = DrainTimeout ?? ActorQueueConfig.Default().GetTimeSpan("actor-queue.drain-timeout");
        // A bad value is left for start-up to report with its key; no phase timeout is derived from it.
        if (drain <= TimeSpan.Zero) return "";
        return $"{ActorQueueExtension.ShutdownPhaseTimeoutKey} = {(long)(drain + ActorQueueExtension.DrainMargin).TotalMilliseconds}ms\n";
    }

    /// <summary>The options as HOCON, under <c>actor-queue</c>.</summary>
    public string ToHocon()
    {
        var sb = new StringBuilder("actor-queue {\n");
        if (GuardianName is not null) sb.Append("guardian-name = ").Append(Quote(GuardianName)).Append('\n');
        if (DrainOnShutdown is { } drain) sb.Append("drain-on-shutdown = ").Append(drain ? "on" : "off").Append('\n');
        QueueOptions.Key(sb, "drain-timeout", DrainTimeout);
        sb.Append("consumer {\n");
        QueueOptions.Key(sb, "prefetch", ConsumerPrefetch);
        QueueOptions.Key(sb, "concurrency", ConsumerConcurrency);
        QueueOptions.Key(sb, "handler-timeout", HandlerTimeout);
        sb.Append("}\nqueues {\n");
        foreach (var q in Queues)
        {
            sb.Append(Quote(q.Name)).Append(" {\n");
            q.AppendHocon(sb);
            sb.Append("}\n");
        }
        return sb.Append("}\n}\n").ToString();
    }

    private static string Quote(string value) =>
        "\"" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
}
