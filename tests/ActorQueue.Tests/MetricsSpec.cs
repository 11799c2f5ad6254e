using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using ActorQueue.Metrics;
using ActorQueue.Protocol;
using ActorQueue.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace ActorQueue.Tests;

public class MetricsSpec : Akka.TestKit.Xunit2.TestKit, IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, double> _sums = new();
    private readonly ConcurrentDictionary<string, int> _counts = new();
    private readonly ConcurrentDictionary<string, double> _last = new();
    private readonly string _queue = $"metrics-{Guid.NewGuid():N}";

    public MetricsSpec(ITestOutputHelper output) : base(Specs.Hocon, output: output)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == ActorQueueMetrics.MeterName) listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Record(i, v, tags));
        _listener.Start();
    }

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        foreach (var tag in tags)
        {
            if (tag.Key != ActorQueueMetrics.QueueTag || !Equals(tag.Value, _queue)) continue;
            _sums.AddOrUpdate(instrument.Name, value, (_, s) => s + value);
            _counts.AddOrUpdate(instrument.Name, 1, (_, n) => n + 1);
            _last[instrument.Name] = value;
        }
    }

    private double Sum(string name) => _sums.GetValueOrDefault(name);

    [Fact]
    public async Task Counters_histograms_and_gauges_report_a_queue_by_name()
    {
        var queue = await Sys.ActorQueues().CreateQueueAsync(_queue, Specs.Queue(capacity: 50));
        var failedOnce = new ConcurrentDictionary<object, bool>();
        var handler = new RecordingHandler(fail: d => (int)d.Message % 5 == 0 && failedOnce.TryAdd(d.Message, true));
        await Sys.ActorQueues().StartConsumerAsync(_queue, handler);
        for (var i = 0; i < 20; i++) queue.Tell(new Enqueue(i), Akka.Actor.ActorRefs.NoSender);
        queue.Tell(new Enqueue(100, 0, Wait: false), Akka.Actor.ActorRefs.NoSender);

        await AwaitAssertAsync(async () =>
        {
            Assert.Equal(21, handler.DistinctCompleted);
            Assert.Equal(21, (await queue.StatsAsync()).Acked);
            Assert.Equal(21, Sum("actorqueue.acked"));
        });
        var stats = await queue.StatsAsync();
        Assert.Equal(stats.Enqueued, Sum("actorqueue.enqueued"));
        Assert.Equal(stats.Delivered, Sum("actorqueue.delivered"));
        Assert.Equal(stats.Nacked, Sum("actorqueue.nacked"));
        Assert.Equal(stats.Redelivered, Sum("actorqueue.redelivered"));
        Assert.Equal(5, Sum("actorqueue.nacked")); // 0, 5, 10, 15 and 100 fail once each
        Assert.Equal(stats.Delivered, _counts.GetValueOrDefault("actorqueue.time_in_queue"));
        Assert.Equal(stats.Delivered, _counts.GetValueOrDefault("actorqueue.handler.duration"));

        _listener.RecordObservableInstruments();
        Assert.Equal(0, _last["actorqueue.ready"]);
        Assert.Equal(1, _last["actorqueue.consumers"]);
        Assert.Equal(0, _last["actorqueue.in_flight"]);
    }

    [Fact]
    public async Task Gauges_show_what_is_held_and_rejections_are_counted()
    {
        var queue = await Sys.ActorQueues().CreateQueueAsync(_queue, Specs.Queue(capacity: 3, FullMode.Reject));
        for (var i = 0; i < 5; i++) queue.Tell(new Enqueue(i), Akka.Actor.ActorRefs.NoSender);
        await AwaitAssertAsync(() =>
        {
            _listener.RecordObservableInstruments();
            Assert.Equal(3, _last.GetValueOrDefault("actorqueue.ready"));
            Assert.Equal(2, Sum("actorqueue.rejected"));
        });
    }

    void IDisposable.Dispose()
    {
        _listener.Dispose();
        Dispose();
    }
}
