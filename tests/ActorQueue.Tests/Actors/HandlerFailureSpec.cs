using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using ActorQueue.Metrics;
using ActorQueue.Protocol;
using ActorQueue.Tests.Support;
using Akka.Event;
using Xunit;
using Xunit.Abstractions;

namespace ActorQueue.Tests.Actors;

/// <summary>Handler failures are visible: logged as warnings with their exception, rate-limited, and counted by type.</summary>
public sealed class HandlerFailureSpec : Akka.TestKit.Xunit2.TestKit, IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, long> _failuresByType = new();
    private readonly string _queue = $"failing-{Guid.NewGuid():N}";

    public HandlerFailureSpec(ITestOutputHelper output) : base(Specs.Hocon, output: output)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == ActorQueueMetrics.MeterName && instrument.Name == "actorqueue.handler.failures") listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            string? queue = null, type = null;
            foreach (var tag in tags)
            {
                if (tag.Key == ActorQueueMetrics.QueueTag) queue = tag.Value as string;
                if (tag.Key == "exception.type") type = tag.Value as string;
            }
            if (queue == _queue && type is not null) _failuresByType.AddOrUpdate(type, value, (_, n) => n + value);
        });
        _listener.Start();
    }

    [Fact]
    public async Task Handler_failures_are_logged_as_warnings_with_their_exception_rate_limited_and_counted_by_type()
    {
        var warnings = CreateTestProbe();
        Sys.EventStream.Subscribe(warnings.Ref, typeof(Warning));
        var queue = await Sys.ActorQueues().CreateQueueAsync(_queue, Specs.Queue(capacity: 500) with { MaxAttempts = 1 });
        await Sys.ActorQueues().StartConsumerAsync(_queue, QueueHandler.From((d, _) =>
            (int)d.Message % 2 == 0 ? throw new InvalidOperationException($"boom {d.Message}") : Task.FromException(new TimeoutException($"slow {d.Message}"))));
        var caller = CreateTestProbe();
        for (var i = 0; i < 300; i++) queue.Tell(new Enqueue(i, i), caller);
        await AwaitAssertAsync(async () => Assert.Equal(300, (await queue.StatsAsync()).Dead), TimeSpan.FromSeconds(20));

        // Counted by exception type, every one of them.
        await AwaitAssertAsync(() =>
        {
            Assert.Equal(150, _failuresByType.GetValueOrDefault(typeof(InvalidOperationException).FullName!));
            Assert.Equal(150, _failuresByType.GetValueOrDefault(typeof(TimeoutException).FullName!));
        });

        // Logged with the exception itself (type, message and stack), but far fewer than 300 lines.
        var logged = new List<Warning>();
        while (warnings.HasMessages) logged.Add(warnings.ExpectMsg<Warning>(TimeSpan.Zero));
        var failures = logged.Where(w => w.Message?.ToString()?.StartsWith("Consumer of", StringComparison.Ordinal) == true).ToList();
        Assert.NotEmpty(failures);
        Assert.InRange(failures.Count, 1, 100);
        var first = failures[0];
        Assert.NotNull(first.Cause);
        Assert.False(string.IsNullOrEmpty(first.Cause!.StackTrace), "the stack is logged");
        Assert.Contains(first.Cause.GetType().FullName!, first.Message!.ToString());

        // What the budget left out is counted in the next line logged.
        await AwaitAssertAsync(async () =>
        {
            queue.Tell(new Enqueue(1_000_001, 1), caller);
            var next = await warnings.FishForMessageAsync<Warning>(w => w.Message?.ToString()?.StartsWith("Consumer of", StringComparison.Ordinal) == true, TimeSpan.FromSeconds(2));
            Assert.Contains("more failures were not logged", next.Message!.ToString());
        }, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(300));
    }

    protected override void Dispose(bool disposing)
    {
        _listener.Dispose();
        base.Dispose(disposing);
    }
}
