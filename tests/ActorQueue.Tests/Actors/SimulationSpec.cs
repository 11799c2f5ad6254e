using System.Collections.Concurrent;
using ActorQueue.Core;
using ActorQueue.Protocol;
using ActorQueue.Tests.Support;
using Akka.Actor;
using Akka.Event;
using Xunit;
using Xunit.Abstractions;

namespace ActorQueue.Tests.Actors;

/// <summary>Whole pipelines of real producers, queue and consumers, with faults injected while they run.</summary>
public class SimulationSpec : Akka.TestKit.Xunit2.TestKit
{
    private readonly ConcurrentQueue<Error> _invariantErrors = new();

    public SimulationSpec(ITestOutputHelper output) : base(Specs.Hocon, output: output)
    {
        // The queue checks its invariants after every message in debug builds; a violation is logged as an error.
        var watcher = Sys.ActorOf(Props.Create(() => new ErrorWatcher(_invariantErrors)));
        Sys.EventStream.Subscribe(watcher, typeof(Error));
    }

    [Fact]
    public async Task Consumers_killed_mid_delivery_lose_nothing_and_duplicate_only_redeliveries()
    {
        const int perProducer = 1000, producers = 3, total = perProducer * producers, prefetch = 16;
        var queues = Sys.ActorQueues();
        var queue = await queues.CreateQueueAsync("chaos", Specs.Queue(capacity: 100) with { MaxAttempts = 20 });
        var handler = new RecordingHandler(fail: d => d.Attempt == 1 && (int)d.Message % 20 == 0, work: TimeSpan.FromMilliseconds(1));
        var consumerSettings = new ConsumerSettings { Prefetch = prefetch, Concurrency = 4, RestartMinBackoff = TimeSpan.FromMilliseconds(20), RestartMaxBackoff = TimeSpan.FromMilliseconds(100) };
        var supervised = new[] { await queues.StartConsumerAsync("chaos", handler, consumerSettings), await queues.StartConsumerAsync("chaos", handler, consumerSettings) };
        var plain = new[] { Sys.ActorOf(ConsumerActor.Props(queue, handler, consumerSettings)), Sys.ActorOf(ConsumerActor.Props(queue, handler, consumerSettings)) };

        var accepted = new AcceptCounter();
        var replies = Sys.ActorOf(Props.Create(() => new AcceptCounterActor(accepted)));
        for (var p = 0; p < producers; p++)
        {
            var producer = await queues.StartProducerAsync("chaos", $"producer-{p}", new ProducerSettings { BufferSize = perProducer });
            for (var i = 0; i < perProducer; i++) producer.Tell(new Produce(p * perProducer + i), replies);
        }

        // Faults at evenly spaced points while work flows: a graceful stop, two kills, a handler failure rate throughout.
        var faults = new Action[]
        {
            () => plain[0].Tell(PoisonPill.Instance),
            () => Sys.ActorSelection(supervised[0].Path / "consumer").Tell(Kill.Instance),
            () => plain[1].Tell(Kill.Instance),
            () => Sys.ActorSelection(supervised[1].Path / "consumer").Tell(Kill.Instance),
        };
        for (var f = 0; f < faults.Length; f++)
        {
            var threshold = (f + 1) * total / (faults.Length + 2);
            await AwaitConditionAsync(() => Task.FromResult(handler.DistinctCompleted >= threshold), TimeSpan.FromSeconds(20));
            faults[f]();
        }

        await AwaitAssertAsync(async () =>
        {
            var s = await queue.StatsAsync();
            Assert.Equal((total, 0), (handler.DistinctCompleted, s.Held));
        }, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(50));

        var stats = await queue.StatsAsync();
        Assert.Equal(total, accepted.Count);
        Assert.Equal(total, stats.Enqueued);
        Assert.Equal(0, stats.Dead);
        Assert.True(stats.Redelivered > 0, "the faults should have hit deliveries in flight");
        Assert.True(handler.Failures >= total / 20, "every 20th message fails its first attempt");
        foreach (var (message, attempts) in handler.Completed)
            Assert.True(attempts.Count(a => a == 1) <= 1, $"message {message} was completed twice on its first delivery");
        var duplicates = handler.Completed.Values.Sum(a => a.Count - 1);
        Assert.InRange(duplicates, 0, faults.Length * prefetch);
        Assert.Empty(_invariantErrors);
    }

    [Fact]
    public async Task Producers_far_faster_than_consumers_are_held_back_by_credit_and_lose_nothing()
    {
        const int capacity = 20, total = 600;
        var queue = Sys.ActorOf(QueueActor.Props("slow", Specs.Queue(capacity, FullMode.Reject)));
        var handler = new RecordingHandler(work: TimeSpan.FromMilliseconds(1));
        Sys.ActorOf(ConsumerActor.Props(queue, handler, new ConsumerSettings { Prefetch = 4, Concurrency = 1 }));
        var accepted = new AcceptCounter();
        var replies = Sys.ActorOf(Props.Create(() => new AcceptCounterActor(accepted)));
        for (var p = 0; p < 2; p++)
        {
            // Each producer is handed its whole share at once: thousands of times the consumer's pace.
            var producer = Sys.ActorOf(ProducerActor.Props(queue, $"fast-{p}", new ProducerSettings { BufferSize = total }));
            for (var i = 0; i < total / 2; i++) producer.Tell(new Produce(p * total + i), replies);
        }

        var maxHeld = 0;
        var maxAhead = 0L;
        while (handler.DistinctCompleted < total)
        {
            // What producers got accepted but consumers have not finished is bounded by capacity
            // (accepted is read first: replies only lag behind the queue, so this never overstates it).
            var acceptedSoFar = accepted.Count;
            var s = await queue.StatsAsync();
            maxHeld = Math.Max(maxHeld, s.Held);
            maxAhead = Math.Max(maxAhead, acceptedSoFar - s.Acked);
            Assert.True(s.Held <= capacity, $"held {s.Held} exceeds capacity {capacity}");
            await Task.Delay(10);
        }
        var final = await queue.StatsAsync();
        Assert.Equal(capacity, maxHeld); // the queue really was full ...
        Assert.InRange(maxAhead, 1, capacity); // ... and producers were kept to the credit it had room for
        Assert.Equal((total, 0L), (final.Enqueued, final.Rejected));
        await AwaitConditionAsync(() => Task.FromResult(accepted.Count == total));
        Assert.Empty(_invariantErrors);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(10)]
    [InlineData(1000)]
    public async Task Pipeline_delivers_everything_in_order_at_any_capacity(int capacity)
    {
        const int total = 300;
        var queue = Sys.ActorOf(QueueActor.Props("fifo", Specs.Queue(capacity)));
        var seen = new ConcurrentQueue<int>();
        Sys.ActorOf(ConsumerActor.Props(queue, (d, _) =>
        {
            seen.Enqueue((int)d.Message);
            return Task.CompletedTask;
        }, new ConsumerSettings { Prefetch = 8, Concurrency = 1 }));
        var producer = Sys.ActorOf(ProducerActor.Props(queue, "p", new ProducerSettings { BufferSize = total }));
        for (var i = 0; i < total; i++) producer.Tell(new Produce(i), ActorRefs.NoSender);
        await AwaitConditionAsync(() => Task.FromResult(seen.Count == total), TimeSpan.FromSeconds(10));
        Assert.Equal(Enumerable.Range(0, total), seen);
        await AwaitAssertAsync(async () => Assert.Equal(0, (await queue.StatsAsync()).Held));
    }

    private sealed class AcceptCounter
    {
        private int _count;
        public int Count => Volatile.Read(ref _count);
        public void Add() => Interlocked.Increment(ref _count);
    }

    private sealed class AcceptCounterActor : ReceiveActor
    {
        public AcceptCounterActor(AcceptCounter counter) => Receive<EnqueueAccepted>(_ => counter.Add());
    }

    private sealed class ErrorWatcher : ReceiveActor
    {
        public ErrorWatcher(ConcurrentQueue<Error> errors)
        {
            Receive<Error>(e => e.Cause is QueueInvariantException, errors.Enqueue);
            ReceiveAny(_ => { });
        }
    }
}
