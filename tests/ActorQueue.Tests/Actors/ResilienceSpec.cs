using System.Collections.Concurrent;
using ActorQueue.Client;
using ActorQueue.Protocol;
using ActorQueue.Tests.Support;
using Akka.Actor;
using Akka.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace ActorQueue.Tests.Actors;

/// <summary>
/// The queue's promises under a demanding user: hostile input, credit hogs, blocking and poison handlers, stalls,
/// restarts, drains and lost messages. Each test is a failure once seen on the public API.
/// </summary>
public class ResilienceSpec : Akka.TestKit.Xunit2.TestKit
{
    public ResilienceSpec(ITestOutputHelper output) : base(Specs.Hocon, output: output) { }

    private static readonly ConsumerSettings Quick = new()
    {
        Prefetch = 8, Concurrency = 2, ResyncInterval = TimeSpan.FromMilliseconds(200),
        RestartMinBackoff = TimeSpan.FromMilliseconds(20), RestartMaxBackoff = TimeSpan.FromMilliseconds(50),
    };

    private IActorRef NewQueue(QueueSettings settings, string name = "q") => Sys.ActorOf(QueueActor.Props(name, settings), name);

    // 1. One message wedged the queue: a range whose length overflowed its own check.
    [Fact]
    public async Task Ack_range_from_minus_one_to_long_max_is_refused_at_once_and_the_queue_keeps_working()
    {
        var queue = NewQueue(Specs.Queue());
        var consumer = CreateTestProbe();
        queue.Tell(new Enqueue("precious", 1));
        await ExpectMsgAsync(new EnqueueAccepted(1));
        await consumer.PullAsync(queue, 1);
        var held = (await consumer.ExpectMsgAsync<DeliveryBatch>()).ToArray().Single();

        queue.Tell(new AckRange(1, 1) with { FromDeliveryId = -1, ToDeliveryId = long.MaxValue }, consumer);
        Assert.Contains("at most", (await consumer.ExpectMsgAsync<InvalidRequest>(TimeSpan.FromSeconds(3))).Reason);
        // The longest valid range over ids never delivered costs one answer, not one per id.
        queue.Tell(new AckRange(1, AckRange.MaxLength), consumer);
        Assert.Equal(new SettleRejected(1, SettleError.UnknownDelivery, AckRange.MaxLength), await consumer.ExpectMsgAsync<SettleRejected>());
        await consumer.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(100));

        queue.Tell(new Ack(held.DeliveryId), consumer);
        await AwaitAssertAsync(async () => Assert.Equal(1, (await queue.StatsAsync()).Acked));
    }

    // 2. A registered producer that sent nothing kept all the credit it was given, for ever.
    [Fact]
    public async Task Credit_a_producer_leaves_unused_is_taken_back_so_others_get_in()
    {
        var queue = NewQueue(Specs.Queue(capacity: 4, FullMode.Wait) with { CreditLease = TimeSpan.FromMilliseconds(300) });
        var hog = CreateTestProbe();
        queue.Tell(new RegisterProducer("hog"), hog);
        Assert.Equal(new ProducerCredit(0, 4), await hog.ExpectMsgAsync<ProducerCredit>());
        Assert.Equal(4, (await queue.StatsAsync()).OutstandingCredit);
        queue.Tell(new Enqueue("plain", 1, Wait: false));
        Assert.Equal(RejectReason.QueueFull, (await ExpectMsgAsync<EnqueueRejected>()).Reason);

        // Past the lease the hog is told its credit is gone, and reserves nothing.
        Assert.Equal(new ProducerCredit(0, 0), await hog.ExpectMsgAsync<ProducerCredit>(TimeSpan.FromSeconds(2)));
        Assert.Equal(0, (await queue.StatsAsync()).OutstandingCredit);
        queue.Tell(new Enqueue("plain", 2, Wait: false));
        await ExpectMsgAsync(new EnqueueAccepted(2));

        // A real producer and consumer move 40 messages through while the hog stays registered and silent.
        Sys.ActorOf(ConsumerActor.Props(queue, (_, _) => Task.CompletedTask, Quick));
        var producer = Sys.ActorOf(ProducerActor.Props(queue, "worker"));
        for (var i = 0; i < 40; i++) producer.Tell(new Produce(i, 100 + i));
        for (var i = 0; i < 40; i++) Assert.IsType<EnqueueAccepted>(await ExpectMsgAsync<IEnqueueReply>(TimeSpan.FromSeconds(5)));
        await AwaitAssertAsync(async () => Assert.Equal(41, (await queue.StatsAsync()).Acked), TimeSpan.FromSeconds(5));
        Assert.Equal(2, (await queue.StatsAsync()).Producers);
    }

    // 3. A handler that blocked its thread was treated as dead: redelivered on every attempt, dead-lettered unhandled.
    [Fact]
    public async Task A_handler_that_blocks_its_thread_past_ack_timeout_is_never_redelivered()
    {
        var queue = NewQueue(Specs.Queue() with { AckTimeout = TimeSpan.FromSeconds(2), MaxAttempts = 2 });
        var handled = new ConcurrentQueue<(object Message, int Attempt)>();
        Sys.ActorOf(ConsumerActor.Props(queue, (d, _) =>
        {
            Thread.Sleep(4500); // synchronous I/O on both handler slots at once, over two ack-timeouts long
            handled.Enqueue((d.Message, d.Attempt));
            return Task.CompletedTask;
        }, new ConsumerSettings { Prefetch = 3, Concurrency = 2 }));
        for (var i = 0; i < 3; i++) queue.Tell(new Enqueue(i, i));
        await AwaitAssertAsync(async () => Assert.Equal(3, (await queue.StatsAsync()).Acked), TimeSpan.FromSeconds(15));
        var stats = await queue.StatsAsync();
        Assert.Equal((0L, 0, 3L), (stats.Redelivered, stats.Dead, stats.Delivered));
        Assert.Equal(new (object, int)[] { (0, 1), (1, 1), (2, 1) }, handled.OrderBy(h => h.Message).ToArray());
    }

    // 4. After a stall, a consumer ran its stale first copy after the redelivered copy had been handled.
    [Fact]
    public async Task Deliveries_taken_back_after_a_stall_are_revoked_and_never_run_after_their_redelivery()
    {
        var queue = NewQueue(Specs.Queue() with { AckTimeout = TimeSpan.FromMilliseconds(400), MaxAttempts = 10 });
        var stalled = 0; // while set, everything the first consumer sends is lost: the queue hears nothing from it
        var link = Sys.ActorOf(LossyLink.Props(queue, 0, 0, blocked: _ => Volatile.Read(ref stalled) == 1));
        var started = new ConcurrentQueue<(object Message, int Attempt)>();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var firstDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Sys.ActorOf(ConsumerActor.Props(link, async (d, _) =>
        {
            started.Enqueue((d.Message, d.Attempt));
            if ((int)d.Message == 0 && d.Attempt == 1)
            {
                await release.Task; // holds the consumer's only slot through the stall
                firstDone.SetResult();
            }
        }, new ConsumerSettings { Prefetch = 5, Concurrency = 1, ResyncInterval = TimeSpan.FromSeconds(30) }));
        for (var i = 0; i < 5; i++) queue.Tell(new Enqueue(i, i));
        await AwaitAssertAsync(async () => Assert.Equal(5, (await queue.StatsAsync()).InFlight));

        Volatile.Write(ref stalled, 1);
        Sys.ActorOf(ConsumerActor.Props(queue, (d, _) =>
        {
            started.Enqueue((d.Message, d.Attempt));
            return Task.CompletedTask;
        }, Quick));
        // Past the deadline the queue takes all five back and a second consumer handles them as second attempts.
        await AwaitAssertAsync(async () => Assert.Equal(5, (await queue.StatsAsync()).Acked), TimeSpan.FromSeconds(10));
        Volatile.Write(ref stalled, 0);
        release.SetResult();
        await firstDone.Task.WaitAsync(TimeSpan.FromSeconds(3));
        await Task.Delay(300); // room for the first consumer to run whatever it still holds (it must hold nothing)

        // Only the delivery that had started before the stall ran as a first attempt; the rest were revoked unstarted.
        Assert.Equal(new object[] { 0 }, started.Where(s => s.Attempt == 1).Select(s => s.Message));
        foreach (var group in started.GroupBy(s => s.Message))
        {
            var attempts = group.Select(s => s.Attempt).ToList();
            Assert.Equal(attempts.Order(), attempts);
        }
        Assert.Equal(5, (await queue.StatsAsync()).Acked);
    }
}
