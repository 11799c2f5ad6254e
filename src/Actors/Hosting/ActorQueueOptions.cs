using System.Text;

namespace ActorQueue.Hosting;

/// <summary>
/// ActorQueue's settings for Akka.Hosting: system-wide keys and the queues to create at start-up. Null keeps the
/// HOCON value; everything is written as HOCON in front of the system's configuration.
/// </summary>
public sealed class ActorQueueOptions
{
    /// <summary>actor-queue.guardian-name.</summary>
    public string? GuardianName { get; set; }

    /// <summary>actor-queue.drain-on-shutdown.</summary>
    public bool? DrainOnShutdown { get; set; }

    /// <summary>actor-queue.consumer.prefetch: the default for consumers.</summary>
    public int? ConsumerPrefetch { get; set; }

    /// <summary>actor-queue.consumer.concurrency: the default for consumers.</summary>
    public int? ConsumerConcurrency { get; set; }

    /// <summary>actor-queue.consumer.handler-timeout: the default for consumers.</summary>
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

    /// <summary>The options as HOCON, under <c>actor-queue</c>.</summary>
    public string ToHocon()
    {
        var sb = new StringBuilder("actor-queue {\n");
        if (GuardianName is not null) sb.Append("guardian-name = ").Append(Quote(GuardianName)).Append('\n');
        if (DrainOnShutdown is { } drain) sb.Append("drain-on-shutdown = ").Append(drain ? "on" : "off").Append('\n');
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
