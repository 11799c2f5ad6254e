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

    // 3. A handler measured cheap runs on the consumer's thread; if it blocks after all, the watchdog reports for it.
    [Fact]
    public async Task A_cheap_handler_that_suddenly_blocks_is_kept_alive_by_the_watchdog_and_never_redelivered()
    {
        var queue = NewQueue(Specs.Queue(capacity: 400) with { AckTimeout = TimeSpan.FromSeconds(2), MaxAttempts = 2 });
        var handled = new ConcurrentQueue<(object Message, int Attempt)>();
        Sys.ActorOf(ConsumerActor.Props(queue, (d, _) =>
        {
            if (d.Message is "block") Thread.Sleep(7000); // on the consumer's own thread, three and a half ack-timeouts
            handled.Enqueue((d.Message, d.Attempt));
            return Task.CompletedTask;
        }, new ConsumerSettings { Prefetch = 8, Concurrency = 1 }));
        // Enough quick deliveries for the consumer to measure its handler as cheap and run it on its own thread.
        for (var i = 0; i < 300; i++) queue.Tell(new Enqueue(i), ActorRefs.NoSender);
        await AwaitAssertAsync(async () => Assert.Equal(300, (await queue.StatsAsync()).Acked), TimeSpan.FromSeconds(10));
        queue.Tell(new Enqueue("block"), ActorRefs.NoSender);
        for (var i = 300; i < 303; i++) queue.Tell(new Enqueue(i), ActorRefs.NoSender);
        await AwaitAssertAsync(async () => Assert.Equal(304, (await queue.StatsAsync()).Acked), TimeSpan.FromSeconds(20));
        var stats = await queue.StatsAsync();
        Assert.Equal((0L, 0), (stats.Redelivered, stats.Dead));
        Assert.All(handled, h => Assert.Equal(1, h.Attempt));
        Assert.Equal(304, handled.Count);
    }

    // 3. Found in review: quick deliveries finished before a blocking one in the same worker chunk were not kept alive.
    [Fact]
    public async Task Deliveries_finished_before_a_handler_blocks_in_the_same_chunk_are_kept_alive_and_not_redelivered()
    {
        var queue = NewQueue(Specs.Queue(capacity: 50) with { AckTimeout = TimeSpan.FromSeconds(2), MaxAttempts = 5 });
        var handled = new ConcurrentQueue<(object Message, int Attempt)>();
        Sys.ActorOf(ConsumerActor.Props(queue, (d, _) =>
        {
            if (d.Message is "probe") Thread.Sleep(2); // measured costly: later deliveries go to a worker in one chunk
            if (d.Message is "block") Thread.Sleep(7000);
            handled.Enqueue((d.Message, d.Attempt));
            return Task.CompletedTask;
        }, new ConsumerSettings { Prefetch = 20, Concurrency = 1 }));
        queue.Tell(new Enqueue("probe"), ActorRefs.NoSender);
        await AwaitAssertAsync(async () => Assert.Equal(1, (await queue.StatsAsync()).Acked));
        for (var i = 0; i < 10; i++) queue.Tell(new Enqueue(i), ActorRefs.NoSender);
        queue.Tell(new Enqueue("block"), ActorRefs.NoSender);
        await AwaitAssertAsync(async () => Assert.Equal(12, (await queue.StatsAsync()).Acked), TimeSpan.FromSeconds(15));
        Assert.Equal(0L, (await queue.StatsAsync()).Redelivered);
        Assert.Equal(12, handled.Count);
        Assert.All(handled, h => Assert.Equal(1, h.Attempt));
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

    // 4. Found in review: a consumer wedged past its deadlines kept its window, so its work was redelivered to it.
    [Fact]
    public async Task A_consumer_silent_past_its_deadlines_is_offered_nothing_until_it_speaks_again()
    {
        var queue = NewQueue(Specs.Queue(capacity: 100) with { AckTimeout = TimeSpan.FromMilliseconds(300), MaxAttempts = 10 });
        var wedged = CreateTestProbe();
        queue.Tell(new Pull(5), wedged);
        var registered = await wedged.ExpectMsgAsync<ConsumerRegistered>();
        for (var i = 0; i < 5; i++) queue.Tell(new Enqueue(i, i));
        var held = await wedged.ExpectDeliveriesAsync(5);
        var handled = new ConcurrentQueue<(object Message, int Attempt)>();
        Sys.ActorOf(ConsumerActor.Props(queue, (d, _) =>
        {
            handled.Enqueue((d.Message, d.Attempt));
            return Task.CompletedTask;
        }, Quick));

        // Past the deadline the queue takes the five back and tells the wedged consumer so; every redelivery goes to
        // the live consumer, none back into the wedged one's window.
        var revoked = (await wedged.ExpectMsgAsync<Revoked>(TimeSpan.FromSeconds(3))).DeliveryIds.ToList();
        while (revoked.Count < 5) revoked.AddRange((await wedged.ExpectMsgAsync<Revoked>()).DeliveryIds);
        Assert.Equal(held.Select(d => d.DeliveryId).Order(), revoked.Order());
        await AwaitAssertAsync(async () => Assert.Equal(5, (await queue.StatsAsync()).Acked), TimeSpan.FromSeconds(5));
        Assert.Equal(Enumerable.Range(0, 5).Select(i => ((object)i, 2)), handled.OrderBy(h => (int)h.Message));
        for (var i = 5; i < 20; i++) queue.Tell(new Enqueue(i, i));
        await AwaitAssertAsync(async () => Assert.Equal(20, (await queue.StatsAsync()).Acked), TimeSpan.FromSeconds(5));
        wedged.ExpectNoMsg(TimeSpan.Zero);

        // Once it speaks again it is live, and is offered its share of new work.
        queue.Tell(new Pull(5, registered.Epoch), wedged);
        for (var i = 20; i < 30; i++) queue.Tell(new Enqueue(i, i));
        Assert.NotEmpty((await wedged.ExpectMsgAsync<DeliveryBatch>(TimeSpan.FromSeconds(3))).ToArray());
    }

    // 5. A message that crashed its consumer had the innocent deliveries beside it dead-lettered, never handled.
    [Fact]
    public async Task A_message_that_crashes_its_consumer_is_dead_lettered_alone_and_its_neighbours_are_handled()
    {
        var queues = Sys.ActorQueues();
        var queue = await queues.CreateQueueAsync("poisoned", Specs.Queue(capacity: 50) with { MaxAttempts = 3 });
        for (var i = 0; i < 10; i++) queue.Tell(new Enqueue(i), ActorRefs.NoSender);
        queue.Tell(new Enqueue("poison"), ActorRefs.NoSender);
        for (var i = 10; i < 20; i++) queue.Tell(new Enqueue(i), ActorRefs.NoSender);
        var handled = new ConcurrentDictionary<int, int>();
        var supervisor = new TaskCompletionSource<IActorRef>(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = QueueHandler.From(async (d, ct) =>
        {
            if (d.Message is "poison")
            {
                // A native crash or a stack overflow: the message takes its consumer down while it runs.
                Sys.ActorSelection((await supervisor.Task).Path / "consumer").Tell(Kill.Instance);
                await Task.Delay(Timeout.Infinite, ct);
            }
            await Task.Delay(20, ct);
            handled.AddOrUpdate((int)d.Message, 1, (_, n) => n + 1);
        });
        supervisor.SetResult(await queues.StartConsumerAsync("poisoned", handler, Quick with { Prefetch = 21, Concurrency = 4 }));

        await AwaitAssertAsync(async () =>
        {
            var stats = await queue.StatsAsync();
            Assert.Equal((20L, 1), (stats.Acked, stats.Dead));
        }, TimeSpan.FromSeconds(20));
        var dead = (await queue.Ask<DeadLetterList>(new GetDeadLetters(), TimeSpan.FromSeconds(3))).Items.Single();
        Assert.Equal(("poison", 3), (dead.Message, dead.Attempts));
        Assert.Contains("crashes its consumer", dead.Reason);
        Assert.Equal(Enumerable.Range(0, 20), handled.Keys.Order());
    }

    // 5. An attempt counts only when a handler started: what a stopping consumer never started keeps its count.
    [Fact]
    public async Task Deliveries_a_stopping_consumer_never_started_go_back_with_their_attempt_uncounted()
    {
        var queue = NewQueue(Specs.Queue(capacity: 20) with { MaxAttempts = 1 });
        for (var i = 0; i < 6; i++) queue.Tell(new Enqueue(i), ActorRefs.NoSender);
        var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = Sys.ActorOf(ConsumerActor.Props(queue, async (_, ct) =>
        {
            running.TrySetResult();
            await Task.Delay(Timeout.Infinite, ct);
        }, new ConsumerSettings { Prefetch = 6, Concurrency = 1 }));
        await running.Task.WaitAsync(TimeSpan.FromSeconds(3));
        Sys.Stop(first);
        var attempts = new ConcurrentDictionary<int, int>();
        Sys.ActorOf(ConsumerActor.Props(queue, (d, _) =>
        {
            attempts[(int)d.Message] = d.Attempt;
            return Task.CompletedTask;
        }, Quick));
        // With max-attempts 1 only the one that was running is spent (dead-lettered); the five never started are handled.
        await AwaitAssertAsync(async () => Assert.Equal((5L, 1), ((await queue.StatsAsync()).Acked, (await queue.StatsAsync()).Dead)), TimeSpan.FromSeconds(5));
        Assert.Equal(5, attempts.Count);
        Assert.All(attempts.Values, a => Assert.Equal(1, a));
    }

    // 5. Found in review: a consumer stopping while a handler ran dropped what its slot had finished but not reported,
    // and the queue redelivered those as suspects: duplicates without a crash.
    [Fact]
    public async Task A_stopping_consumer_settles_what_it_finished_and_only_the_running_handler_is_redelivered()
    {
        var queue = NewQueue(Specs.Queue(capacity: 50) with { MaxAttempts = 5 });
        var handled = new ConcurrentQueue<(object Message, int Attempt)>();
        var blocking = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = Sys.ActorOf(ConsumerActor.Props(queue, (d, ct) =>
        {
            if (d.Message is "probe") Thread.Sleep(2); // measured costly: later deliveries go to a worker in one chunk
            if (d.Message is "block" && d.Attempt == 1)
            {
                blocking.TrySetResult();
                ct.WaitHandle.WaitOne(); // holds the chunk's report back until the consumer stops and cancels it
                ct.ThrowIfCancellationRequested();
            }
            handled.Enqueue((d.Message, d.Attempt));
            return Task.CompletedTask;
        }, new ConsumerSettings { Prefetch = 20, Concurrency = 1 }));
        queue.Tell(new Enqueue("probe"), ActorRefs.NoSender);
        await AwaitAssertAsync(async () => Assert.Equal(1, (await queue.StatsAsync()).Acked));
        for (var i = 0; i < 10; i++) queue.Tell(new Enqueue(i), ActorRefs.NoSender);
        queue.Tell(new Enqueue("block"), ActorRefs.NoSender);
        await blocking.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Sys.Stop(first);

        // The ten it finished are acked on its way out; only the handler it was running goes to the next consumer.
        await AwaitAssertAsync(async () => Assert.Equal((11L, 1L), ((await queue.StatsAsync()).Acked, (await queue.StatsAsync()).InFlight + (await queue.StatsAsync()).Ready)), TimeSpan.FromSeconds(5));
        Sys.ActorOf(ConsumerActor.Props(queue, (d, _) =>
        {
            handled.Enqueue((d.Message, d.Attempt));
            return Task.CompletedTask;
        }, Quick));
        await AwaitAssertAsync(async () => Assert.Equal(12, (await queue.StatsAsync()).Acked), TimeSpan.FromSeconds(5));
        Assert.Equal(1L, (await queue.StatsAsync()).Redelivered);
        Assert.Equal(("block", 2), handled.Single(h => h.Message is "block"));
        Assert.Equal(11, handled.Count(h => h.Attempt == 1));
    }

    // 6. Consumers never came back to a queue restarted by the user's supervisor.
    [Fact]
    public async Task Consumers_and_producers_reattach_by_themselves_to_a_queue_restarted_in_place()
    {
        var parent = Sys.ActorOf(RestartingParent.Props(QueueActor.Props("q", Specs.Queue(capacity: 50))));
        var queue = await parent.Ask<IActorRef>("child", TimeSpan.FromSeconds(3));
        var handled = new ConcurrentQueue<object>();
        Sys.ActorOf(ConsumerActor.Props(queue, (d, _) =>
        {
            handled.Enqueue(d.Message);
            return Task.CompletedTask;
        }, Quick));
        var producer = Sys.ActorOf(ProducerActor.Props(queue, "p", new ProducerSettings { ResendInterval = TimeSpan.FromMilliseconds(300) }));
        producer.Tell(new Produce("before", 1));
        await ExpectMsgAsync(new EnqueueAccepted(1));
        await AwaitConditionAsync(() => Task.FromResult(handled.Contains("before")));

        queue.Tell(Kill.Instance); // restarted in place: same ref, a new incarnation that knows no one
        await AwaitAssertAsync(async () => Assert.Equal(1, (await queue.StatsAsync()).Consumers), TimeSpan.FromSeconds(3));
        producer.Tell(new Produce("after", 2));
        await ExpectMsgAsync(new EnqueueAccepted(2), TimeSpan.FromSeconds(5));
        await AwaitConditionAsync(() => Task.FromResult(handled.Contains("after")), TimeSpan.FromSeconds(5));
    }

    // 6. Delivery ids are unique across incarnations: an ack from before a restart settles nothing after it.
    [Fact]
    public async Task A_late_ack_from_before_a_restart_never_settles_a_delivery_of_the_new_incarnation()
    {
        var parent = Sys.ActorOf(RestartingParent.Props(QueueActor.Props("q", Specs.Queue())));
        var queue = await parent.Ask<IActorRef>("child", TimeSpan.FromSeconds(3));
        var consumer = CreateTestProbe();
        queue.Tell(new Pull(5), consumer);
        var before = await consumer.ExpectMsgAsync<ConsumerRegistered>();
        queue.Tell(new Enqueue("old"));
        var old = (await consumer.ExpectMsgAsync<DeliveryBatch>())[0];

        queue.Tell(Kill.Instance);
        queue.Tell(new Enqueue("new"));
        queue.Tell(new Pull(5, before.Epoch), consumer);
        var after = await consumer.ExpectMsgAsync<ConsumerRegistered>();
        Assert.True(after.Epoch > old.DeliveryId, "the new incarnation delivers above every id the old one used");
        var fresh = (await consumer.ExpectMsgAsync<DeliveryBatch>())[0];
        Assert.Equal("new", fresh.Message);
        queue.Tell(new Ack(old.DeliveryId), consumer);
        Assert.Equal(new SettleRejected(old.DeliveryId, SettleError.UnknownDelivery), await consumer.ExpectMsgAsync<SettleRejected>());
        Assert.Equal(1, (await queue.StatsAsync()).InFlight);
    }

    // 6. A consumer stopped for good when its queue terminated; it now looks for a new one at the same path.
    [Fact]
    public async Task A_consumer_attaches_to_a_new_queue_at_the_same_path_after_its_queue_terminates()
    {
        var queue = NewQueue(Specs.Queue(), "reborn");
        var handled = new ConcurrentQueue<object>();
        var consumer = Sys.ActorOf(ConsumerActor.Props(queue, (d, _) =>
        {
            handled.Enqueue(d.Message);
            return Task.CompletedTask;
        }, Quick with { ReattachTimeout = TimeSpan.FromSeconds(10) }));
        await AwaitAssertAsync(async () => Assert.Equal(1, (await queue.StatsAsync()).Consumers));
        Watch(queue);
        Sys.Stop(queue);
        await ExpectTerminatedAsync(queue);
        IActorRef again = ActorRefs.Nobody;
        // The name is free once the parent has processed the termination too.
        await AwaitAssertAsync(() =>
        {
            again = NewQueue(Specs.Queue(), "reborn");
            return Task.CompletedTask;
        });
        again.Tell(new Enqueue("hello"), ActorRefs.NoSender);
        await AwaitConditionAsync(() => Task.FromResult(handled.Contains("hello")), TimeSpan.FromSeconds(10));
        Watch(consumer);
        await ExpectNoMsgAsync(TimeSpan.FromMilliseconds(100));
    }

    // 7. Silence after a drain: a late client got "no queue named", a producer's Produce no answer at all.
    [Fact]
    public async Task Every_call_after_a_drain_is_answered_closed()
    {
        var queues = Sys.ActorQueues();
        var queue = await queues.CreateQueueAsync("closing", Specs.Queue());
        var producer = await queues.StartProducerAsync("closing", "early");
        Watch(queue);
        queue.Tell(Drain.Instance);
        await ExpectMsgAsync(new Drained("closing"));
        await ExpectTerminatedAsync(queue);

        await using var client = new QueueClient<string>(Sys, "closing");
        await AwaitAssertAsync(async () => await Assert.ThrowsAsync<QueueClosedException>(() => client.EnqueueAsync("late")));
        await Assert.ThrowsAsync<QueueClosedException>(() => client.TryEnqueueAsync("late"));
        await Assert.ThrowsAsync<QueueClosedException>(() => client.GetStatsAsync());
        var reply = await producer.Ask<IEnqueueReply>(new Produce("late", 9), TimeSpan.FromSeconds(3));
        Assert.Equal(RejectReason.QueueStopped, Assert.IsType<EnqueueRejected>(reply).Reason);
    }

    // 8. DisposeAsync left callers hanging.
    [Fact]
    public async Task Disposing_a_client_answers_every_pending_call_promptly_and_half_enqueues_nothing()
    {
        var queues = Sys.ActorQueues();
        for (var round = 0; round < 5; round++)
        {
            var name = $"disposing-{round}";
            var queue = await queues.CreateQueueAsync(name, Specs.Queue(capacity: 20, FullMode.Wait) with { FullWaitTimeout = TimeSpan.FromSeconds(30) });
            var handled = new ConcurrentDictionary<int, int>();
            var consumer = QueueHandler.From(async (d, _) =>
            {
                await Task.Delay(2);
                handled.AddOrUpdate((int)d.Message, 1, (_, n) => n + 1);
            });
            // Odd rounds: no consumer until after the dispose, so the queue is full and callers wait for room.
            if (round % 2 == 0) await queues.StartConsumerAsync(name, consumer, Quick with { Prefetch = 4, Concurrency = 1 });
            // Rounds vary what callers are doing when the client goes: waiting for an answer, for room, for a pending slot,
            // still connecting, or with a cancellation token of their own.
            var client = new QueueClient<int>(Sys, name, new QueueClientOptions { MaxPending = round == 2 ? 2 : 1000 });
            using var callerToken = new CancellationTokenSource();
            var token = round == 4 ? callerToken.Token : CancellationToken.None;
            var accepted = new ConcurrentBag<int>();
            var next = 0;
            var callers = Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
            {
                while (true)
                {
                    var n = Interlocked.Increment(ref next);
                    try
                    {
                        await client.EnqueueAsync(n, token);
                        accepted.Add(n);
                    }
                    catch (Exception e) when (e is QueueClosedException or OperationCanceledException)
                    {
                        return;
                    }
                }
            })).ToArray();
            if (round != 3) await AwaitConditionAsync(() => Task.FromResult(accepted.Count >= 20), TimeSpan.FromSeconds(10));
            await client.DisposeAsync();
            var all = Task.WhenAll(callers);
            Assert.Same(all, await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(5))));
            if (round % 2 == 1) await queues.StartConsumerAsync(name, consumer, Quick with { Prefetch = 4, Concurrency = 1 });

            // Every message the queue took was reported accepted to its caller, and the other way round.
            await AwaitAssertAsync(async () => Assert.Equal(0, (await queue.StatsAsync()).Held), TimeSpan.FromSeconds(10));
            Assert.Equal(accepted.Order(), handled.Keys.Order());
        }
    }

    // 8. Found by reproducing it: a client disposed while it connects told its callers "closed", yet sent their messages
    // once connected; and a call between the dispose's withdrawal and its close was neither withdrawn nor answered.
    [Fact]
    public async Task Disposing_a_client_while_it_connects_enqueues_nothing_its_callers_were_told_was_closed()
    {
        var queues = Sys.ActorQueues();
        for (var round = 0; round < 3; round++)
        {
            var name = $"connecting-{round}";
            var queue = await queues.CreateQueueAsync(name, Specs.Queue(capacity: 1000));
            var client = new QueueClient<int>(Sys, name);
            // A backlog in the guardian's mailbox (a busy start-up): the client is still connecting when it is disposed.
            for (var i = 0; i < 300_000; i++) queues.Guardian.Tell(new GetQueue(name), ActorRefs.Nobody);
            var accepted = 0;
            var next = 0;
            var callers = Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
            {
                while (true)
                {
                    Interlocked.Increment(ref next);
                    try
                    {
                        await client.EnqueueAsync(round);
                        Interlocked.Increment(ref accepted);
                    }
                    catch (Exception e) when (e is QueueClosedException or OperationCanceledException)
                    {
                        return;
                    }
                }
            })).ToArray();
            while (Volatile.Read(ref next) < 1) await Task.Yield();
            await client.DisposeAsync();
            await Task.WhenAll(callers).WaitAsync(TimeSpan.FromSeconds(15));
            // Whatever the queue took, its caller was told so; nothing it was told was closed arrives later.
            await AwaitAssertAsync(async () => Assert.Equal(Volatile.Read(ref accepted), (await queue.StatsAsync()).Enqueued), TimeSpan.FromSeconds(3));
            await Task.Delay(300);
            Assert.Equal(Volatile.Read(ref accepted), (await queue.StatsAsync()).Enqueued);
        }
    }

    // 9. One lost message stalled the protocol for good.
    [Theory]
    [InlineData(0.01, 1)]
    [InlineData(0.05, 2)]
    [InlineData(0.20, 3)]
    public async Task Over_a_link_that_loses_messages_both_ways_nothing_is_lost_nothing_stalls_and_duplicates_say_so(double loss, int seed)
    {
        const int total = 300;
        var queue = NewQueue(Specs.Queue(capacity: 40, FullMode.Wait) with
        {
            AckTimeout = TimeSpan.FromMilliseconds(500), MaxAttempts = 1000, FullWaitTimeout = TimeSpan.FromSeconds(30),
            CreditLease = TimeSpan.FromMilliseconds(500),
        });
        var handled = new ConcurrentQueue<(int Message, int Attempt)>();
        var handler = QueueHandler.From((d, _) =>
        {
            handled.Enqueue(((int)d.Message, d.Attempt));
            return Task.CompletedTask;
        });
        for (var c = 0; c < 2; c++)
        {
            var link = Sys.ActorOf(LossyLink.Props(queue, loss, loss, seed * 10 + c));
            Sys.ActorOf(ConsumerActor.Props(link, handler, Quick with { Prefetch = 8 }));
        }
        var producerLink = Sys.ActorOf(LossyLink.Props(queue, loss, loss, seed * 10 + 9));
        var producer = Sys.ActorOf(ProducerActor.Props(producerLink, "lossy", new ProducerSettings { BufferSize = total, ResendInterval = TimeSpan.FromMilliseconds(300) }));
        for (var i = 0; i < total; i++) producer.Tell(new Produce(i, i));

        // Every message is accepted (the producer's callers all hear so) and handled.
        var accepted = new HashSet<long>();
        while (accepted.Count < total) accepted.Add(Assert.IsType<EnqueueAccepted>(await ExpectMsgAsync<IEnqueueReply>(TimeSpan.FromSeconds(30))).CorrelationId);
        await AwaitAssertAsync(() =>
        {
            Assert.Equal(total, handled.Select(h => h.Message).Distinct().Count());
            return Task.CompletedTask;
        }, TimeSpan.FromSeconds(60));
        await AwaitAssertAsync(async () => Assert.Equal(0, (await queue.StatsAsync()).Held), TimeSpan.FromSeconds(30));
        Assert.Equal(0, (await queue.StatsAsync()).Dead);
        // Each message is handled as a first attempt at most once: every duplicate says Attempt > 1.
        foreach (var group in handled.GroupBy(h => h.Message))
            Assert.True(group.Count(h => h.Attempt == 1) <= 1, $"message {group.Key} was handled twice as a first attempt");
    }

    // Weak point: a send that threw left the burst's pending sends in place, to be repeated by every later burst.
    [Fact]
    public async Task A_consumer_that_cannot_be_sent_to_is_dropped_and_its_work_goes_to_others_uncounted()
    {
        var queue = NewQueue(Specs.Queue(capacity: 10));
        await EventFilter.Error(contains: "could not deliver").ExpectOneAsync(async () =>
        {
            queue.Tell(new Pull(2), new ThrowingActorRef(Sys));
            queue.Tell(new Enqueue("x", 1));
            queue.Tell(new Enqueue("y", 2));
            await ExpectMsgAsync(new EnqueueAccepted(1));
            await ExpectMsgAsync(new EnqueueAccepted(2));
            await AwaitAssertAsync(async () => Assert.Equal(0, (await queue.StatsAsync()).Consumers));
        });
        var good = CreateTestProbe();
        await good.PullAsync(queue, 10);
        var delivered = await good.ExpectDeliveriesAsync(2);
        Assert.Equal(new object[] { "x", "y" }, delivered.Select(d => d.Message));
        Assert.All(delivered, d => Assert.Equal(1, d.Attempt));
    }

    // Weak point: every client left a producer entry behind for ever.
    [Fact]
    public async Task Ten_thousand_short_lived_clients_leave_nothing_behind_in_the_queue_or_the_heap()
    {
        var queues = Sys.ActorQueues();
        var queue = await queues.CreateQueueAsync("churn", Specs.Queue(capacity: 100) with { ProducerRetention = TimeSpan.FromSeconds(1) });
        await queues.StartConsumerAsync("churn", QueueHandler.From((_, _) => Task.CompletedTask), Quick);
        async Task ChurnAsync(int from, int count) => await Task.WhenAll(Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
        {
            for (var i = from + w; i < from + count; i += 8)
            {
                await using var client = new QueueClient<int>(Sys, "churn");
                await client.EnqueueAsync(i);
            }
        })));
        await ChurnAsync(0, 500); // warm-up
        await AwaitAssertAsync(async () => Assert.Equal(0, (await queue.StatsAsync()).KnownProducers), TimeSpan.FromSeconds(10));
        var before = GC.GetTotalMemory(forceFullCollection: true);

        await ChurnAsync(500, 10_000);
        Assert.InRange((await queue.StatsAsync()).KnownProducers, 1, 10_000);
        await AwaitAssertAsync(async () =>
        {
            var stats = await queue.StatsAsync();
            Assert.Equal((0, 0, 10_500L), (stats.KnownProducers, stats.Producers, stats.Acked));
        }, TimeSpan.FromSeconds(15));
        var grown = GC.GetTotalMemory(forceFullCollection: true) - before;
        Assert.True(grown < 8 * 1024 * 1024, $"the heap grew by {grown / 1024} KiB over 10,000 clients");
    }
}
