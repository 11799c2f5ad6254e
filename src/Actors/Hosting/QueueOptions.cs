using System.Globalization;
using System.Text;

namespace ActorQueue.Hosting;

/// <summary>
/// One queue's settings for Akka.Hosting. Every property is nullable: null keeps the HOCON value
/// (actor-queue.queue, then reference.conf). Values are checked when the queue is created, and a bad one fails
/// start-up with the HOCON key named.
/// </summary>
public sealed class QueueOptions
{
    /// <summary>Options for the queue named <paramref name="name"/>.</summary>
    /// <param name="name">The queue's name (a valid actor name).</param>
    public QueueOptions(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Name = name;
    }

    /// <summary>The queue's name.</summary>
    public string Name { get; }

    /// <summary>The actor registry key the queue is registered under (inject it as <c>IRequiredActor&lt;TKey&gt;</c>); null for none.</summary>
    public Type? RegistryKey { get; set; }

    /// <summary>Most messages the queue holds (ready, in flight, delayed); null keeps actor-queue.queue.capacity (default 1000).</summary>
    public int? Capacity { get; set; }

    /// <summary>
    /// What a plain enqueue meets when the queue is full (wait, reject, drop-oldest, drop-newest; producers and the client
    /// wait for credit whatever it is); null keeps actor-queue.queue.full-mode (default wait).
    /// </summary>
    public FullMode? FullMode { get; set; }

    /// <summary>How long a parked message waits for room in full mode wait before it is rejected; null keeps actor-queue.queue.full-wait-timeout (default 5 s).</summary>
    public TimeSpan? FullWaitTimeout { get; set; }

    /// <summary>How long a delivery may go without an ack, nack or progress before it is taken back and redelivered; null keeps actor-queue.queue.ack-timeout (default 30 s).</summary>
    public TimeSpan? AckTimeout { get; set; }

    /// <summary>Deliveries of a message before a failing one is dead-lettered; null keeps actor-queue.queue.max-attempts (default 5).</summary>
    public int? MaxAttempts { get; set; }

    /// <summary>Backoff after a first failed attempt, doubling with each attempt; null keeps actor-queue.queue.retry.min-backoff (default 100 ms).</summary>
    public TimeSpan? RetryMinBackoff { get; set; }

    /// <summary>The longest backoff between attempts; null keeps actor-queue.queue.retry.max-backoff (default 30 s).</summary>
    public TimeSpan? RetryMaxBackoff { get; set; }

    /// <summary>How far each backoff is spread at random (0.2 = ±20 %), so failed batches do not retry together; null keeps actor-queue.queue.retry.random-factor (default 0.2).</summary>
    public double? RetryRandomFactor { get; set; }

    /// <summary>Most credit one producer holds at once (also limited to a fair share of capacity); null keeps actor-queue.queue.producer-credit (default 1000).</summary>
    public int? ProducerCredit { get; set; }

    /// <summary>Most dead letters kept (the oldest is evicted beyond it, counted as dropped); null keeps actor-queue.queue.dead-letter-capacity (default 10000).</summary>
    public int? DeadLetterCapacity { get; set; }

    /// <summary>How often at most the queue's one timer looks at deadlines, retries and waits; null keeps actor-queue.queue.tick-interval (default 100 ms).</summary>
    public TimeSpan? TickInterval { get; set; }

    /// <summary>
    /// actor-queue.queue.durable for this queue: keep what it accepts in a journal (add ActorQueue.Persistence and call
    /// its <c>WithDurableActorQueues</c>).
    /// </summary>
    public bool? Durable { get; set; }

    /// <summary>Writes the non-null settings as the body of a HOCON object.</summary>
    internal void AppendHocon(StringBuilder sb)
    {
        Key(sb, "capacity", Capacity);
        if (FullMode is { } mode) sb.Append("full-mode = ").Append(QueueSettings.ToHocon(mode)).Append('\n');
        Key(sb, "full-wait-timeout", FullWaitTimeout);
        Key(sb, "ack-timeout", AckTimeout);
        Key(sb, "max-attempts", MaxAttempts);
        Key(sb, "retry.min-backoff", RetryMinBackoff);
        Key(sb, "retry.max-backoff", RetryMaxBackoff);
        if (RetryRandomFactor is { } f) sb.Append("retry.random-factor = ").Append(f.ToString(CultureInfo.InvariantCulture)).Append('\n');
        Key(sb, "producer-credit", ProducerCredit);
        Key(sb, "dead-letter-capacity", DeadLetterCapacity);
        Key(sb, "tick-interval", TickInterval);
        if (Durable is { } durable) sb.Append("durable = ").Append(durable ? "on" : "off").Append('\n');
    }

    internal static void Key(StringBuilder sb, string key, int? value)
    {
        if (value is { } v) sb.Append(key).Append(" = ").Append(v.ToString(CultureInfo.InvariantCulture)).Append('\n');
    }

    internal static void Key(StringBuilder sb, string key, TimeSpan? value)
    {
        // Milliseconds with their fraction, so nothing is rounded away; a negative value is written as it is so
        // validation can name it.
        if (value is { } v) sb.Append(key).Append(" = ").Append(v.TotalMilliseconds.ToString("0.####", CultureInfo.InvariantCulture)).Append("ms\n");
    }
}
