using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace ActorQueue.Metrics;

/// <summary>
/// ActorQueue's instruments on the meter named <see cref="MeterName"/>, each tagged with <c>queue</c>: counters of
/// what happened, gauges of what is held now, and histograms of time in queue and handler time. Watch them with
/// <c>dotnet-counters monitor --counters ActorQueue</c> or export them with OpenTelemetry's <c>AddMeter("ActorQueue")</c>.
/// </summary>
public static class ActorQueueMetrics
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "ActorQueue";

    /// <summary>The tag that names the queue on every measurement.</summary>
    public const string QueueTag = "queue";

    private static readonly Meter Meter = new(MeterName, typeof(ActorQueueMetrics).Assembly.GetName().Version?.ToString());
    private static readonly ConcurrentDictionary<QueueMetrics, byte> Live = new();

    internal static readonly Counter<long> Enqueued = Meter.CreateCounter<long>("actorqueue.enqueued", "{message}", "Messages accepted by the queue.");
    internal static readonly Counter<long> Delivered = Meter.CreateCounter<long>("actorqueue.delivered", "{delivery}", "Deliveries made to consumers, redeliveries included.");
    internal static readonly Counter<long> Acked = Meter.CreateCounter<long>("actorqueue.acked", "{delivery}", "Deliveries acked.");
    internal static readonly Counter<long> Nacked = Meter.CreateCounter<long>("actorqueue.nacked", "{delivery}", "Deliveries nacked.");
    internal static readonly Counter<long> Redelivered = Meter.CreateCounter<long>("actorqueue.redelivered", "{delivery}", "Deliveries of a message already delivered before.");
    internal static readonly Counter<long> DeadLettered = Meter.CreateCounter<long>("actorqueue.dead_lettered", "{message}", "Messages moved to the dead-letter store.");
    internal static readonly Counter<long> Dropped = Meter.CreateCounter<long>("actorqueue.dropped", "{message}", "Accepted messages evicted by a drop full mode or from a full dead-letter store.");
    internal static readonly Counter<long> Rejected = Meter.CreateCounter<long>("actorqueue.rejected", "{message}", "Messages refused.");
    internal static readonly Counter<long> HandlerFailures = Meter.CreateCounter<long>("actorqueue.handler.failures", "{delivery}", "Deliveries whose handler threw or faulted, tagged with the exception's type (exception.type).");
    internal static readonly Histogram<double> TimeInQueue = Meter.CreateHistogram<double>("actorqueue.time_in_queue", "ms", "From acceptance to each delivery.");
    internal static readonly Histogram<double> HandlerTime = Meter.CreateHistogram<double>("actorqueue.handler.duration", "ms", "How long a consumer's handler ran for one delivery.");

    static ActorQueueMetrics()
    {
        Gauge("actorqueue.ready", "{message}", "Messages waiting for a consumer.", q => q.Ready);
        Gauge("actorqueue.in_flight", "{delivery}", "Deliveries held by consumers.", q => q.InFlight);
        Gauge("actorqueue.delayed", "{message}", "Messages waiting for a retry.", q => q.Delayed);
        Gauge("actorqueue.dead", "{message}", "Messages in the dead-letter store.", q => q.Dead);
        Gauge("actorqueue.consumers", "{consumer}", "Registered consumers.", q => q.Consumers);
        Gauge("actorqueue.producers", "{producer}", "Registered producers.", q => q.Producers);
    }

    internal static void Register(QueueMetrics queue) => Live.TryAdd(queue, 0);

    internal static void Unregister(QueueMetrics queue) => Live.TryRemove(queue, out _);

    private static void Gauge(string name, string unit, string description, Func<QueueMetrics, int> read) =>
        Meter.CreateObservableGauge(name, () => Observe(read), unit, description);

    private static IEnumerable<Measurement<int>> Observe(Func<QueueMetrics, int> read)
    {
        foreach (var q in Live.Keys) yield return new Measurement<int>(read(q), q.Tag);
    }
}
