using ActorQueue.Protocol;
using ActorQueue.Tests.Support;
using Akka.Actor;
using Akka.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace ActorQueue.Tests.Actors;

public class ConsumerActorSpec : Akka.TestKit.Xunit2.TestKit
{
    public ConsumerActorSpec(ITestOutputHelper output) : base(Specs.Hocon, output: output) { }

    private static readonly ConsumerSettings Settings = new() { Prefetch = 4, Concurrency = 2, HandlerTimeout = TimeSpan.FromSeconds(10) };

    private static DeliveryBatch Batch(params object[] messages) => new(1, messages);

    private async Task<(TestProbe Queue, IActorRef Consumer)> StartAsync(IQueueHandler handler, ConsumerSettings? settings = null, TimeSpan? ackTimeout = null)
    {
        var s = settings ?? Settings;
        var queue = CreateTestProbe();
        var consumer = Sys.ActorOf(ConsumerActor.Props(queue.Ref, handler, s));
        Assert.Equal(new Pull(s.Prefetch, 0), await queue.ExpectMsgAsync<Pull>());
        queue.Reply(new ConsumerRegistered("q", ackTimeout ?? TimeSpan.FromSeconds(30), 1));
        return (queue, consumer);
    }

    /// <summary>Collects acked delivery ids (Ack, AckRange or AckBatch) until <paramref name="count"/> are in, skipping pulls.</summary>
    private static async Task<List<long>> ExpectAcksAsync(TestProbe queue, int count)
    {
        var acked = new List<long>();
        while (acked.Count < count)
        {
            switch (await queue.ReceiveOneAsync(TimeSpan.FromSeconds(3)))
            {
                case Ack a: acked.Add(a.DeliveryId); break;
                case AckBatch b: acked.AddRange(b.DeliveryIds); break;
                case AckRange r:
                    for (var id = r.FromDeliveryId; id <= r.ToDeliveryId; id++) acked.Add(id);
                    break;
                case Pull or InProgress: break;
                case var other: throw new Xunit.Sdk.XunitException($"Expected an ack but got {other}.");
            }
        }
        return acked;
    }

    /// <summary>
    /// Sends deliveries 1 to <paramref name="count"/> one at a time, each settled before the next (their messages are
    /// their ids), and returns the window of the last pull the consumer sent meanwhile (prefetch if none).
    /// </summary>
    private static async Task<int> SettleSinglesAsync(TestProbe queue, IActorRef consumer, int count)
    {
        var window = Settings.Prefetch;
        for (var id = 1; id <= count; id++)
        {
            consumer.Tell(new DeliveryBatch(id, [id]), queue.Ref);
            while (true)
            {
                var m = await queue.ReceiveOneAsync(TimeSpan.FromSeconds(3));
                if (m is Pull p) window = p.Window;
                if (m is Ack or AckRange or AckBatch) break;
            }
        }
        return window;
    }

    private static async Task<Nack> ExpectNackAsync(TestProbe queue) =>
        await queue.FishForMessageAsync<Nack>(m => m is Nack, TimeSpan.FromSeconds(3));

    [Fact]
    public async Task Consumer_must_settle_a_batch_handled_in_order_with_one_ack_range()
    {
        var (queue, consumer) = await StartAsync(QueueHandler.From((_, _) => Task.CompletedTask));
        // A few single deliveries first: the consumer measures its handler (the first call pays for JIT) as cheap.
        for (var i = 1; i <= 6; i++)
        {
            consumer.Tell(new DeliveryBatch(i, [i]), queue.Ref);
            Assert.Equal(i, (await queue.FishForMessageAsync<Ack>(m => m is Ack)).DeliveryId);
        }
        consumer.Tell(new DeliveryBatch(7, ["a", "b", "c", "d"]), queue.Ref);
        var range = await queue.FishForMessageAsync<AckRange>(m => m is AckRange);
        Assert.Equal((7, 10), (range.FromDeliveryId, range.ToDeliveryId));
    }

    [Fact]
    public async Task Consumer_must_ack_what_its_handler_completes_in_batches()
    {
        var handler = new RecordingHandler();
        var (queue, consumer) = await StartAsync(handler);
        consumer.Tell(Batch("a", "b", "c"), queue.Ref);
        var acked = await ExpectAcksAsync(queue, 3);
        Assert.Equal(new long[] { 1, 2, 3 }, acked.Order());
        Assert.Equal(3, handler.DistinctCompleted);
    }

    [Fact]
    public async Task Consumer_must_pull_once_then_only_ack_while_it_hears_from_its_queue()
    {
        var (queue, consumer) = await StartAsync(QueueHandler.From((_, _) => Task.CompletedTask), Settings with { ResyncInterval = TimeSpan.FromSeconds(5) });
        var window = Settings.Prefetch;
        for (var i = 0; i < 3; i++)
        {
            consumer.Tell(new DeliveryBatch(1 + 4 * i, ["a", "b", "c", "d"]), queue.Ref);
            // Nothing but acks comes back: no pull after the first, no re-sync while deliveries arrive; only the one pull
            // that widens the window once the handler is measured cheap.
            var acked = new List<long>();
            while (acked.Count < 4)
            {
                switch (await queue.ReceiveOneAsync(TimeSpan.FromSeconds(3)))
                {
                    case AckRange r:
                        for (var id = r.FromDeliveryId; id <= r.ToDeliveryId; id++) acked.Add(id);
                        break;
                    case Ack a: acked.Add(a.DeliveryId); break;
                    case Pull p when p.Window != window && p.Window == ConsumerActor.CheapWindow(Settings.Prefetch):
                        window = p.Window;
                        break;
                    case var other: throw new Xunit.Sdk.XunitException($"Expected acks only but got {other}.");
                }
            }
            Assert.Equal(Enumerable.Range(1 + 4 * i, 4).Select(x => (long)x), acked.Order());
        }
        await queue.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public async Task Consumer_of_cheap_handlers_widens_its_window_and_narrows_it_back_when_a_handler_goes_asynchronous()
    {
        var (queue, consumer) = await StartAsync(QueueHandler.From((d, _) => (int)d.Message < 0 ? Task.Delay(50) : Task.CompletedTask));
        Assert.Equal(32, ConsumerActor.CheapWindow(Settings.Prefetch));
        // Cheap handlers, measured as such: the consumer asks for eight times its prefetch.
        var id = 0L;
        for (var i = 0; i < 4; i++) consumer.Tell(new DeliveryBatch(++id, [i]), queue.Ref);
        Assert.Equal(new Pull(32, 1), await queue.FishForMessageAsync<Pull>(m => m is Pull, TimeSpan.FromSeconds(3)));
        // One goes asynchronous: back to its prefetch at once.
        consumer.Tell(new DeliveryBatch(++id, [-1]), queue.Ref);
        Assert.Equal(new Pull(Settings.Prefetch, 1), await queue.FishForMessageAsync<Pull>(m => m is Pull, TimeSpan.FromSeconds(3)));
        // Eight times prefetch, at most 256, never below prefetch.
        Assert.Equal((8, 256, 500), (ConsumerActor.CheapWindow(1), ConsumerActor.CheapWindow(100), ConsumerActor.CheapWindow(500)));
    }

    [Fact]
    public async Task Consumer_of_cheap_handlers_keeps_its_wide_window_when_one_short_run_stalls_once()
    {
        // Message -1 stands for a run preempted for 5 ms on a busy machine: the handler itself is cheap.
        var (queue, consumer) = await StartAsync(QueueHandler.From((d, _) =>
        {
            if ((int)d.Message == -1) Thread.Sleep(5);
            return Task.CompletedTask;
        }));
        // Single cheap deliveries, each settled before the next: the consumer measures them cheap and widens, and its
        // estimate settles (the first calls pay for JIT, which it forgets by halves).
        var id = 40L;
        Assert.Equal(32, await SettleSinglesAsync(queue, consumer, (int)id));

        consumer.Tell(new DeliveryBatch(++id, [-1]), queue.Ref);
        consumer.Tell(new DeliveryBatch(++id, [100]), queue.Ref);
        // Both acked, and no pull narrowing the window back to prefetch: one stalled run is not a costly handler.
        var seen = new List<object>();
        var acked = 0;
        while (acked < 2)
        {
            var m = await queue.ReceiveOneAsync(TimeSpan.FromSeconds(3));
            seen.Add(m!);
            acked += m switch { Ack => 1, AckRange r => (int)(r.ToDeliveryId - r.FromDeliveryId + 1), AckBatch b => b.DeliveryIds.Length, _ => 0 };
        }
        await queue.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(300));
        Assert.DoesNotContain(seen, m => m is Pull);
    }

    [Fact]
    public async Task Consumer_of_cheap_handlers_keeps_its_wide_window_when_a_share_is_held_up_once()
    {
        // Message -1 stands for a share whose thread was preempted for 20 ms on a busy machine: the handler is cheap
        // (a couple of microseconds, worth sharing) and completes at once, so nothing went asynchronous. It first waits
        // (up to 5 s) for message -2, the last of the backlog, which the consumer's own run handles: it can see it only
        // if it runs in a share beside that run.
        var sharing = Environment.ProcessorCount > 1;
        var lastHandled = 0;
        var heldUpSawLast = false;
        var (queue, consumer) = await StartAsync(QueueHandler.From((d, _) =>
        {
            if ((int)d.Message == -1 && sharing)
            {
                var patience = System.Diagnostics.Stopwatch.GetTimestamp() + System.Diagnostics.Stopwatch.Frequency * 5;
                while (Volatile.Read(ref lastHandled) == 0 && System.Diagnostics.Stopwatch.GetTimestamp() < patience) Thread.Yield();
                heldUpSawLast = Volatile.Read(ref lastHandled) == 1;
                Thread.Sleep(20);
            }
            if ((int)d.Message == -2) Volatile.Write(ref lastHandled, 1);
            var until = System.Diagnostics.Stopwatch.GetTimestamp() + System.Diagnostics.Stopwatch.Frequency / 500_000;
            while (System.Diagnostics.Stopwatch.GetTimestamp() < until) { }
            return Task.CompletedTask;
        }));
        var id = 20L;
        Assert.Equal(32, await SettleSinglesAsync(queue, consumer, (int)id));

        // A backlog: the share beside the consumer's own run takes its front half, the held-up one among it.
        const int backlog = 200;
        var messages = Enumerable.Range(0, backlog).Select(i => (object)(i == 4 ? -1 : i == backlog - 1 ? -2 : i)).ToArray();
        consumer.Tell(new DeliveryBatch(id + 1, messages), queue.Ref);
        var seen = new List<object>();
        var acked = 0;
        while (acked < backlog)
        {
            var m = await queue.ReceiveOneAsync(TimeSpan.FromSeconds(3));
            seen.Add(m!);
            acked += m switch { Ack => 1, AckRange r => (int)(r.ToDeliveryId - r.FromDeliveryId + 1), AckBatch b => b.DeliveryIds.Length, _ => 0 };
        }
        await queue.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(300));
        if (sharing) Assert.True(heldUpSawLast, "the held-up delivery did not run in a share beside the consumer's own run");
        // No pull narrowing the window back to prefetch: a share held up once is neither asynchronous nor costly.
        Assert.DoesNotContain(seen, m => m is Pull);
    }

    [Theory]
    // A DI scope per message (125-250 ns) in the shares a window of 256 makes on two cores: worth a hand-over.
    [InlineData(128, 125, true)]
    [InlineData(64, 250, true)]
    // An empty handler (15-90 ns) is not, even in the largest share; nor a share too small for its handlers' cost.
    [InlineData(128, 40, false)]
    [InlineData(256, 90, false)]
    [InlineData(16, 250, false)]
    public void Consumer_shares_only_a_share_whose_work_pays_for_handing_it_to_another_thread(int share, int nanoseconds, bool worth)
    {
        var ticks = nanoseconds * (double)System.Diagnostics.Stopwatch.Frequency / 1e9;
        Assert.Equal(worth, ConsumerActor.ShareWorthIt(share, ticks));
    }

    [Fact]
    public async Task Consumer_shares_a_backlog_of_cheap_but_not_trivial_handlers_with_a_second_thread_and_settles_each_once()
    {
        var measuring = true;
        int running = 0, overlapped = 0;
        var handled = new System.Collections.Concurrent.ConcurrentDictionary<long, int>();
        var (queue, consumer) = await StartAsync(QueueHandler.From((d, _) =>
        {
            var now = Interlocked.Increment(ref running);
            if (now > 1) Volatile.Write(ref overlapped, 1);
            // A few microseconds of work that completes at once, as a handler resolving from a DI scope does; once the
            // backlog is in, the first handlers also wait (up to 5 s) for one running beside them, so that the test does
            // not depend on how soon a second thread is scheduled.
            var until = System.Diagnostics.Stopwatch.GetTimestamp() + System.Diagnostics.Stopwatch.Frequency / 500_000;
            var patience = System.Diagnostics.Stopwatch.GetTimestamp() + System.Diagnostics.Stopwatch.Frequency * 5;
            while (System.Diagnostics.Stopwatch.GetTimestamp() < until
                   || (!Volatile.Read(ref measuring) && Volatile.Read(ref overlapped) == 0 && System.Diagnostics.Stopwatch.GetTimestamp() < patience))
                if (Volatile.Read(ref running) > 1) Volatile.Write(ref overlapped, 1);
            Interlocked.Decrement(ref running);
            handled.AddOrUpdate(d.DeliveryId, 1, (_, n) => n + 1);
            return Task.CompletedTask;
        }), Settings with { Prefetch = 400 });
        // Measured cheap first, one at a time (the first calls pay for JIT, and the estimate forgets them by halves);
        // then a backlog arrives at once.
        const int singles = 20, backlog = 400;
        for (var i = 1; i <= singles; i++)
        {
            consumer.Tell(new DeliveryBatch(i, [i]), queue.Ref);
            await ExpectAcksAsync(queue, 1);
        }
        Volatile.Write(ref measuring, false);
        consumer.Tell(new DeliveryBatch(singles + 1, Enumerable.Range(0, backlog).Select(i => (object)i).ToArray()), queue.Ref);
        var acked = await ExpectAcksAsync(queue, backlog);
        Assert.Equal(Enumerable.Range(singles + 1, backlog).Select(i => (long)i), acked.Order());
        Assert.All(handled.Values, n => Assert.Equal(1, n));
        // Two ran at once: the consumer's own run and a share beside it (a 2-core machine has one spare core).
        if (Environment.ProcessorCount > 1) Assert.Equal(1, overlapped);
    }

    [Fact]
    public async Task Consumer_must_repeat_its_pull_while_it_hears_nothing_so_a_lost_pull_or_registration_costs_a_pause()
    {
        var queue = CreateTestProbe();
        Sys.ActorOf(ConsumerActor.Props(queue.Ref, new RecordingHandler(), Settings with { ResyncInterval = TimeSpan.FromMilliseconds(200) }));
        // The first pull and its answer are "lost": the consumer says the same again, with no epoch heard.
        Assert.Equal(new Pull(Settings.Prefetch, 0), await queue.ExpectMsgAsync<Pull>());
        Assert.Equal(new Pull(Settings.Prefetch, 0), await queue.ExpectMsgAsync<Pull>(TimeSpan.FromSeconds(2)));
        queue.Reply(new ConsumerRegistered("q", TimeSpan.FromSeconds(30), 7));
        // Still silent: it re-syncs with the epoch it now knows.
        Assert.Equal(new Pull(Settings.Prefetch, 7), await queue.FishForMessageAsync<Pull>(m => m is Pull, TimeSpan.FromSeconds(2)));
    }

    [Fact]
    public async Task Consumer_must_run_no_more_handlers_at_once_than_its_concurrency()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var running = 0;
        var peak = 0;
        var handler = QueueHandler.From(async (_, _) =>
        {
            var now = Interlocked.Increment(ref running);
            InterlockedMax(ref peak, now);
            await release.Task;
            Interlocked.Decrement(ref running);
        });
        var (queue, consumer) = await StartAsync(handler);
        consumer.Tell(Batch(1, 2, 3, 4), queue.Ref);
        await AwaitConditionAsync(() => Task.FromResult(Volatile.Read(ref running) == 2));
        await queue.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(150));
        Assert.Equal(2, Volatile.Read(ref running));
        release.SetResult();
        Assert.Equal(4, (await ExpectAcksAsync(queue, 4)).Count);
        Assert.Equal(2, peak);
    }

    [Fact]
    public async Task Consumer_must_nack_when_the_handler_throws()
    {
        var (queue, consumer) = await StartAsync(QueueHandler.From((d, _) => throw new FormatException($"cannot read {d.Message}")));
        consumer.Tell(Batch("x"), queue.Ref);
        var nack = await ExpectNackAsync(queue);
        Assert.Equal(1, nack.DeliveryId);
        Assert.Null(nack.Delay); // the queue's backoff applies
        Assert.Contains("cannot read x", nack.Reason);
    }

    [Fact]
    public async Task Consumer_must_nack_when_the_handler_returns_a_faulted_task()
    {
        var (queue, consumer) = await StartAsync(QueueHandler.From(async (_, _) =>
        {
            await Task.Yield();
            throw new TimeoutException("downstream timed out");
        }));
        consumer.Tell(Batch("x"), queue.Ref);
        Assert.Contains("downstream timed out", (await ExpectNackAsync(queue)).Reason);
    }

    [Fact]
    public async Task Consumer_must_nack_when_the_handler_returns_a_null_task()
    {
        var (queue, consumer) = await StartAsync(QueueHandler.From((_, _) => null!));
        consumer.Tell(Batch("x"), queue.Ref);
        Assert.Contains("null Task", (await ExpectNackAsync(queue)).Reason);
    }

    [Fact]
    public async Task Consumer_must_report_progress_while_a_slow_handler_runs()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var (queue, consumer) = await StartAsync(QueueHandler.From((_, _) => release.Task), ackTimeout: TimeSpan.FromMilliseconds(600));
        consumer.Tell(Batch("slow"), queue.Ref);
        var first = await queue.FishForMessageAsync<InProgress>(m => m is InProgress, TimeSpan.FromSeconds(2));
        var second = await queue.FishForMessageAsync<InProgress>(m => m is InProgress, TimeSpan.FromSeconds(2));
        Assert.Equal((1L, 1L), (first.DeliveryId, second.DeliveryId));
        release.SetResult();
        Assert.Equal(new long[] { 1 }, await ExpectAcksAsync(queue, 1));
    }

    [Fact]
    public async Task Consumer_must_cancel_and_nack_a_handler_that_hangs()
    {
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = QueueHandler.From(async (_, ct) =>
        {
            await using var registration = ct.Register(() => cancelled.TrySetResult());
            await Task.Delay(Timeout.Infinite, ct);
        });
        var (queue, consumer) = await StartAsync(handler, Settings with { HandlerTimeout = TimeSpan.FromMilliseconds(200) });
        consumer.Tell(Batch("stuck"), queue.Ref);
        var nack = await ExpectNackAsync(queue);
        Assert.Contains("handler-timeout", nack.Reason);
        await cancelled.Task.WaitAsync(TimeSpan.FromSeconds(3));
        // Its slot is free again once the cancelled task ends: a new delivery is handled.
        consumer.Tell(new DeliveryBatch(2, ["next"]), queue.Ref);
        Assert.Contains("handler-timeout", (await ExpectNackAsync(queue)).Reason);
    }

    [Fact]
    public async Task Consumer_whose_handlers_all_hang_hands_its_waiting_deliveries_back()
    {
        var never = new TaskCompletionSource();
        var settings = new ConsumerSettings { Prefetch = 3, Concurrency = 1, HandlerTimeout = TimeSpan.FromMilliseconds(200) };
        var (queue, consumer) = await StartAsync(QueueHandler.From((_, _) => never.Task), settings); // ignores cancellation
        consumer.Tell(Batch("hung", "waiting-1", "waiting-2"), queue.Ref);
        var nack = await ExpectNackAsync(queue);
        Assert.Contains("handler-timeout", nack.Reason);
        // The two it never started go back unstarted: their attempt does not count.
        var returned = await queue.FishForMessageAsync<Return>(m => m is Return, TimeSpan.FromSeconds(3));
        Assert.Equal(new long[] { 2, 3 }, returned.DeliveryIds);
        never.SetResult();
    }

    [Fact]
    public async Task Consumer_must_detach_from_the_queue_when_restarted_in_place()
    {
        var queue = CreateTestProbe();
        var supervisor = Sys.ActorOf(RestartingParent.Props(ConsumerActor.Props(queue.Ref, new RecordingHandler(), Settings), "consumer"));
        await queue.ExpectMsgAsync<Pull>();
        var consumer = await supervisor.Ask<IActorRef>("child");
        consumer.Tell(Kill.Instance);
        await queue.FishForMessageAsync(m => m is Detach);
        Assert.Equal(Settings.Prefetch, (await queue.FishForMessageAsync<Pull>(m => m is Pull)).Window);
    }

    [Fact]
    public async Task Consumer_must_stop_at_once_when_its_queue_drains()
    {
        var (queue, consumer) = await StartAsync(new RecordingHandler());
        Watch(consumer);
        consumer.Tell(new Drained("q"), queue.Ref);
        await ExpectTerminatedAsync(consumer);
    }

    [Fact]
    public async Task Consumer_must_stop_when_its_queue_terminates_and_none_comes_back_within_reattach_timeout()
    {
        var (queue, consumer) = await StartAsync(new RecordingHandler(), Settings with { ReattachTimeout = TimeSpan.FromMilliseconds(500) });
        Watch(consumer);
        queue.Ref.Tell(PoisonPill.Instance);
        await ExpectNoMsgAsync(TimeSpan.FromMilliseconds(200)); // still looking
        await ExpectTerminatedAsync(consumer, TimeSpan.FromSeconds(3));
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current) { }
    }
}
