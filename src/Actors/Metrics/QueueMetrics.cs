using ActorQueue.Core;

namespace ActorQueue.Metrics;

/// <summary>
/// One queue's link to <see cref="ActorQueueMetrics"/>. The queue actor publishes its counters as deltas once per
/// flush or tick (never per message) and a snapshot of its counts for the gauges, which read it from another thread.
/// </summary>
internal sealed class QueueMetrics : IQueueObserver
{
    private QueueCounters _published;
    private volatile int _ready, _inFlight, _delayed, _dead, _consumers, _producers;

    public QueueMetrics(string queueName) => Tag = new KeyValuePair<string, object?>(ActorQueueMetrics.QueueTag, queueName);

    public KeyValuePair<string, object?> Tag { get; }
    public int Ready => _ready;
    public int InFlight => _inFlight;
    public int Delayed => _delayed;
    public int Dead => _dead;
    public int Consumers => _consumers;
    public int Producers => _producers;

    public void Publish(QueueState state)
    {
        var now = state.Counters;
        Add(ActorQueueMetrics.Enqueued, now.Enqueued - _published.Enqueued);
        Add(ActorQueueMetrics.Delivered, now.Delivered - _published.Delivered);
        Add(ActorQueueMetrics.Acked, now.Acked - _published.Acked);
        Add(ActorQueueMetrics.Nacked, now.Nacked - _published.Nacked);
        Add(ActorQueueMetrics.Redelivered, now.Redelivered - _published.Redelivered);
        Add(ActorQueueMetrics.DeadLettered, now.DeadLettered - _published.DeadLettered);
        Add(ActorQueueMetrics.Dropped, now.Evicted + now.DeadEvicted - _published.Evicted - _published.DeadEvicted);
        Add(ActorQueueMetrics.Rejected, now.Rejected - _published.Rejected);
        _published = now;
        _ready = state.ReadyCount;
        _inFlight = state.InFlightCount;
        _delayed = state.DelayedCount;
        _dead = state.DeadCount;
        _consumers = state.ConsumerCount;
        _producers = state.ActiveProducerCount;
    }

    public void Delivered(TimeSpan waited)
    {
        if (ActorQueueMetrics.TimeInQueue.Enabled) ActorQueueMetrics.TimeInQueue.Record(waited.TotalMilliseconds, Tag);
    }

    private void Add(System.Diagnostics.Metrics.Counter<long> counter, long delta)
    {
        if (delta != 0) counter.Add(delta, Tag);
    }
}
