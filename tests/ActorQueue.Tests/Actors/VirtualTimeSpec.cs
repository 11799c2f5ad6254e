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
}
