using ActorQueue.Protocol;
using ActorQueue.Tests.Support;
using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit;
using Akka.TestKit.Configs;
using Xunit;
using Xunit.Abstractions;

namespace ActorQueue.Tests.Actors;

/// <summary>The queue takes its time from the system's scheduler, so Akka.TestKit's TestScheduler drives it in virtual time.</summary>
public class VirtualTimeSpec : Akka.TestKit.Xunit2.TestKit
{
    public VirtualTimeSpec(ITestOutputHelper output)
        : base(TestConfigs.TestSchedulerConfig.WithFallback(ConfigurationFactory.ParseString(Specs.Hocon)), output: output) { }

    private TestScheduler Clock => (TestScheduler)Sys.Scheduler;

    [Fact]
    public async Task Retries_and_ack_deadlines_fall_due_in_virtual_time()
    {
        var queue = Sys.ActorOf(QueueActor.Props("q", Specs.Queue() with
        {
            AckTimeout = TimeSpan.FromSeconds(30), RetryMinBackoff = TimeSpan.FromSeconds(10), RetryMaxBackoff = TimeSpan.FromSeconds(10), RetryRandomFactor = 0,
        }));
        queue.Tell(new Enqueue("a", 1));
        queue.Tell(new Enqueue("b", 2));
        await ExpectMsgAsync(new EnqueueAccepted(1));
        await ExpectMsgAsync(new EnqueueAccepted(2));
        var consumer = CreateTestProbe();
        queue.Tell(new Pull(2), consumer);
        var registered = await consumer.ExpectMsgAsync<ConsumerRegistered>();
        var held = await consumer.ExpectDeliveriesAsync(2);
        queue.Tell(new Nack(held[1].DeliveryId, Reason: "later"), consumer);
        await queue.StatsAsync();

        // Ten virtual seconds bring the retry of "b"; nothing happens in real time meanwhile.
        await consumer.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(300));
        Clock.Advance(TimeSpan.FromSeconds(29));
        var retried = (await consumer.ExpectMsgAsync<DeliveryBatch>())[0];
        Assert.Equal(("b", 2), (retried.Message, retried.Attempt));
        await queue.StatsAsync();

        // Past thirty virtual seconds "a" misses its deadline: revoked, and delivered again once the consumer shows
        // it is alive (a consumer actor re-pulls every resync-interval).
        Clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(new[] { held[0].DeliveryId }, (await consumer.ExpectMsgAsync<Revoked>()).DeliveryIds);
        await consumer.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(100));
        queue.Tell(new Pull(2, registered.Epoch), consumer);
        var again = (await consumer.ExpectMsgAsync<DeliveryBatch>())[0];
        Assert.Equal(("a", 2), (again.Message, again.Attempt));
    }

    [Fact]
    public async Task A_handler_that_ends_while_the_consumer_checks_handler_timeouts_is_acked_never_nacked_as_timed_out()
    {
        // Every step of virtual time both ends the handlers that were waiting on it (on this thread) and fires the
        // consumer's tick (on the consumer's), which looks at what each handler slot is running: a slot read half before
        // and half after its handler ended once passed for a handler running since year 1 - nacked, and redelivered.
        var queue = CreateTestProbe();
        var started = 0;
        var handler = QueueHandler.From((_, _) =>
        {
            Interlocked.Increment(ref started);
            var done = new TaskCompletionSource();
            Clock.Advanced.ScheduleOnce(TimeSpan.FromSeconds(1), () => done.TrySetResult());
            return done.Task;
        });
        var settings = new ConsumerSettings { Prefetch = 2, Concurrency = 2, HandlerTimeout = TimeSpan.FromHours(1) };
        var consumer = Sys.ActorOf(ConsumerActor.Props(queue.Ref, handler, settings));
        await queue.ExpectMsgAsync<Pull>();
        queue.Reply(new ConsumerRegistered("q", TimeSpan.FromSeconds(6), 1));

        var next = 1L;
        for (var step = 0; step < 1000; step++)
        {
            consumer.Tell(new DeliveryBatch(next, [next, next + 1]), queue.Ref);
            var waiting = new HashSet<long> { next, next + 1 };
            next += 2;
            var expected = (int)next - 1;
            // Both handlers wait on virtual time before it moves (waiting in real time here, as nothing else marks it).
            for (var spin = 0; Volatile.Read(ref started) < expected; spin++)
            {
                Assert.True(spin < 5000, $"step {step}: the handlers did not start");
                await Task.Delay(1);
            }
            Clock.Advance(TimeSpan.FromSeconds(1));
            while (waiting.Count > 0)
            {
                switch (await queue.ReceiveOneAsync(TimeSpan.FromSeconds(3)))
                {
                    case Ack a: waiting.Remove(a.DeliveryId); break;
                    case AckRange r: for (var id = r.FromDeliveryId; id <= r.ToDeliveryId; id++) waiting.Remove(id); break;
                    case AckBatch b: foreach (var id in b.DeliveryIds) waiting.Remove(id); break;
                    case Nack n: Assert.Fail($"step {step}: delivery {n.DeliveryId} was nacked: {n.Reason}"); break;
                    case InProgress or Pull: break;
                    case null:
                        // A handler not yet started when time moved on waits for the next second.
                        Clock.Advance(TimeSpan.FromSeconds(1));
                        break;
                }
            }
        }
    }
}
