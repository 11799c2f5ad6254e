using System.Collections.Concurrent;
using ActorQueue.Client;
using ActorQueue.Protocol;
using ActorQueue.Tests.Support;
using Akka.Actor;
using Xunit;
using Xunit.Abstractions;

namespace ActorQueue.Tests.Client;

public class QueueClientSpec : Akka.TestKit.Xunit2.TestKit
{
    public QueueClientSpec(ITestOutputHelper output) : base(Specs.Hocon, output: output) { }

    private async Task<(IActorRef Queue, QueueClient<int> Client)> ClientAsync(string name, int capacity, FullMode mode = FullMode.Wait, QueueClientOptions? options = null)
    {
        var queue = await Sys.ActorQueues().CreateQueueAsync(name, Specs.Queue(capacity, mode));
        return (queue, new QueueClient<int>(Sys, name, options));
    }

    private ConcurrentDictionary<int, int> Consume(IActorRef queue)
    {
        var seen = new ConcurrentDictionary<int, int>();
        Sys.ActorOf(ConsumerActor.Props(queue, (d, _) =>
        {
            seen.AddOrUpdate((int)d.Message, 1, (_, n) => n + 1);
            return Task.CompletedTask;
        }));
        return seen;
    }

    [Fact]
    public async Task Many_concurrent_callers_wait_on_a_full_queue_and_every_message_arrives_once()
    {
        var (queue, client) = await ClientAsync("busy", capacity: 5);
        var calls = Enumerable.Range(0, 200).Select(i => Task.Run(() => client.EnqueueAsync(i))).ToArray();
        await AwaitAssertAsync(async () => Assert.Equal(5, (await queue.StatsAsync()).Held));
        Assert.Equal(5, calls.Count(c => c.IsCompletedSuccessfully)); // the rest are waiting, not failing
        Assert.DoesNotContain(calls, c => c.IsFaulted);

        var seen = Consume(queue);
        await Task.WhenAll(calls).WaitAsync(TimeSpan.FromSeconds(20));
        await AwaitConditionAsync(() => Task.FromResult(seen.Count == 200), TimeSpan.FromSeconds(10));
        Assert.All(seen.Values, n => Assert.Equal(1, n));
        var stats = await queue.StatsAsync();
        Assert.Equal((200, 0L), (stats.Enqueued, stats.Rejected));
    }

    [Fact]
    public async Task Calls_from_many_threads_are_batched_and_each_writer_s_messages_arrive_once_in_the_order_it_called()
    {
        var (queue, client) = await ClientAsync("batched", capacity: 1_000);
        // Handlers run concurrently, so the queue's order is read from the delivery ids, which follow it.
        var order = new ConcurrentQueue<(long DeliveryId, int Message)>();
        Sys.ActorOf(ConsumerActor.Props(queue, (d, _) =>
        {
            order.Enqueue((d.DeliveryId, (int)d.Message));
            return Task.CompletedTask;
        }));
        const int writers = 8, each = 2_000;
        // Each writer keeps up to 50 calls open at once, as a request handler fanning out would.
        var tasks = Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            var open = new List<Task>();
            for (var i = 0; i < each; i++)
            {
                open.Add(client.EnqueueAsync(w * each + i));
                if (open.Count == 50)
                {
                    await Task.WhenAll(open);
                    open.Clear();
                }
            }
            await Task.WhenAll(open);
        })).ToArray();
        await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(30));
        await AwaitAssertAsync(() => Assert.Equal(writers * each, order.Count), TimeSpan.FromSeconds(20));
        var seen = order.OrderBy(d => d.DeliveryId).Select(d => d.Message).ToArray();
        Assert.Equal(writers * each, seen.Distinct().Count());
        for (var w = 0; w < writers; w++)
            Assert.Equal(Enumerable.Range(w * each, each), seen.Where(m => m / each == w));
        var stats = await queue.StatsAsync();
        Assert.Equal((writers * each, 0L), (stats.Enqueued, stats.Rejected));
    }

    // Found in review: a first call that fills the buffer waited for room before connecting, and nothing ever read it.
    [Fact]
    public async Task A_fresh_client_s_first_calls_larger_than_its_buffer_connect_and_complete()
    {
        var (queue, client) = await ClientAsync("overfull", capacity: 1_000, options: new QueueClientOptions { MaxPending = 10 });
        var seen = Consume(queue);
        Assert.Equal(100, await client.EnqueueManyAsync(Enumerable.Range(0, 100)).WaitAsync(TimeSpan.FromSeconds(10)));
        var (_, second) = await ClientAsync("overfull-singles", capacity: 1_000, options: new QueueClientOptions { MaxPending = 2 });
        await Task.WhenAll(Enumerable.Range(0, 20).Select(i => second.EnqueueAsync(i))).WaitAsync(TimeSpan.FromSeconds(10));
        await AwaitAssertAsync(() => Assert.Equal(100, seen.Count));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task Calls_cancelled_at_random_moments_are_either_accepted_and_handled_once_or_cancelled_and_never_handled(int seed)
    {
        var random = new Random(seed);
        var (queue, client) = await ClientAsync($"random-cancel-{seed}", capacity: 20);
        var handled = new ConcurrentDictionary<int, int>();
        // A slow consumer keeps the queue full, so calls wait at every stage: for room in the client, for credit, for acceptance.
        Sys.ActorOf(ConsumerActor.Props(queue, async (d, ct) =>
        {
            await Task.Delay(1, ct);
            handled.AddOrUpdate((int)d.Message, 1, (_, n) => n + 1);
        }, ConsumerSettings.Default with { Prefetch = 4, Concurrency = 2 }));
        var singles = new List<(int Message, Task Call)>();
        var batches = new List<(int First, int Count, Task<int> Call)>();
        var cancellations = new List<CancellationTokenSource>();
        var next = 0;
        for (var round = 0; round < 60; round++)
        {
            var cts = new CancellationTokenSource();
            cancellations.Add(cts);
            if (random.Next(3) == 0)
            {
                var count = random.Next(1, 30);
                batches.Add((next, count, client.EnqueueManyAsync(Enumerable.Range(next, count), cts.Token)));
                next += count;
            }
            else singles.Add((next, client.EnqueueAsync(next++, cts.Token)));
            cts.CancelAfter(TimeSpan.FromMilliseconds(random.Next(0, 40)));
            if (random.Next(4) == 0) await Task.Delay(random.Next(0, 5));
        }
        var accepted = new HashSet<int>();
        foreach (var (message, call) in singles)
        {
            var outcome = await Record.ExceptionAsync(() => call.WaitAsync(TimeSpan.FromSeconds(30)));
            if (outcome is null) accepted.Add(message);
            else Assert.IsAssignableFrom<OperationCanceledException>(outcome);
        }
        foreach (var (first, count, call) in batches)
        {
            // A batch keeps a prefix: the first n were accepted, the rest never enqueued.
            var n = await call.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.InRange(n, 0, count);
            for (var i = 0; i < n; i++) accepted.Add(first + i);
        }
        await AwaitAssertAsync(() => Assert.Equal(accepted.Order(), handled.Keys.Order()), TimeSpan.FromSeconds(30));
        Assert.All(handled.Values, n => Assert.Equal(1, n));
        Assert.Equal(accepted.Count, (int)(await queue.StatsAsync()).Enqueued);
        // The client, idle now, gives back the room it held reserved once credit-lease (1 s) has passed.
        await AwaitAssertAsync(async () => Assert.Equal(0L, (await queue.StatsAsync()).OutstandingCredit), TimeSpan.FromSeconds(10));
        foreach (var c in cancellations) c.Dispose();
    }

    [Fact]
    public async Task Cancelled_callers_enqueue_nothing_and_leave_no_credit_behind()
    {
        var (queue, client) = await ClientAsync("cancel", capacity: 3);
        for (var i = 0; i < 3; i++) await client.EnqueueAsync(i);
        using var cts = new CancellationTokenSource();
        var waiting = Enumerable.Range(100, 10).Select(i => client.EnqueueAsync(i, cts.Token)).ToArray();
        await Task.Delay(100); // let them queue up behind the full queue before cancelling them all
        cts.Cancel();
        foreach (var w in waiting) await Assert.ThrowsAnyAsync<OperationCanceledException>(() => w.WaitAsync(TimeSpan.FromSeconds(10)));

        var seen = Consume(queue);
        await AwaitConditionAsync(() => Task.FromResult(seen.Count == 3));
        for (var i = 3; i < 6; i++) await client.EnqueueAsync(i); // the whole capacity is usable again
        await AwaitConditionAsync(() => Task.FromResult(seen.Count == 6));
        Assert.Equal(Enumerable.Range(0, 6), seen.Keys.Order());
        Assert.Equal(6, (await queue.StatsAsync()).Enqueued);
    }

    [Fact]
    public async Task Withdrawn_calls_give_their_credit_back_to_other_producers()
    {
        var (queue, a) = await ClientAsync("shared", capacity: 3);
        var b = new QueueClient<int>(Sys, "shared");
        for (var i = 0; i < 3; i++) await a.EnqueueAsync(i);
        using var cts = new CancellationTokenSource();
        var waiting = Enumerable.Range(100, 10).Select(i => a.EnqueueAsync(i, cts.Token)).ToArray();
        await AwaitAssertAsync(async () => Assert.Equal(1, (await queue.StatsAsync()).Producers));
        cts.Cancel();
        foreach (var w in waiting) await Assert.ThrowsAnyAsync<OperationCanceledException>(() => w.WaitAsync(TimeSpan.FromSeconds(10)));

        var seen = Consume(queue);
        // a no longer wants anything, so all of the room that frees up can go to b.
        await Task.WhenAll(Enumerable.Range(10, 6).Select(i => b.EnqueueAsync(i))).WaitAsync(TimeSpan.FromSeconds(10));
        await AwaitConditionAsync(() => Task.FromResult(seen.Count == 9));
        Assert.Equal(0, (await queue.StatsAsync()).Held);
    }

    [Fact]
    public async Task Client_used_before_its_queue_exists_waits_for_it_then_says_what_to_do()
    {
        // A host still starting: the call waits for the queue (up to the ask timeout) and completes once it exists.
        var client = new QueueClient<int>(Sys, "later", new QueueClientOptions { AskTimeout = TimeSpan.FromSeconds(5) });
        var early = client.EnqueueAsync(1);
        var queue = await Sys.ActorQueues().CreateQueueAsync("later", Specs.Queue());
        await early.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(1, (await queue.StatsAsync()).Enqueued);

        // No queue at all: after the ask timeout the call fails naming the queue and what to do; the next call tries again.
        var lost = new QueueClient<int>(Sys, "never", new QueueClientOptions { AskTimeout = TimeSpan.FromMilliseconds(300) });
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => lost.EnqueueAsync(1));
        Assert.Contains("Queue never does not exist", error.Message);
        Assert.Contains("once the host has started", error.Message);
        var created = await Sys.ActorQueues().CreateQueueAsync("never", Specs.Queue());
        await lost.EnqueueAsync(2).WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(1, (await created.StatsAsync()).Enqueued);
    }

    [Fact]
    public async Task Disposed_client_withdraws_what_it_has_not_sent_and_refuses_new_calls()
    {
        var (queue, client) = await ClientAsync("disposed", capacity: 1);
        await client.EnqueueAsync(1);
        var waiting = client.EnqueueAsync(2);
        await client.DisposeAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(10)));
        await Assert.ThrowsAsync<QueueClosedException>(() => client.EnqueueAsync(3));
        Assert.Equal(1, (await queue.StatsAsync()).Enqueued);
    }

    [Fact]
    public async Task A_client_disposed_after_its_actor_system_stopped_returns_at_once_and_refuses_new_calls()
    {
        // The order a host's shutdown takes: the actor system stops first, then the DI container disposes the client.
        var system = ActorSystem.Create("gone", Akka.Configuration.ConfigurationFactory.ParseString(Specs.Hocon));
        await system.ActorQueues().CreateQueueAsync("gone", Specs.Queue());
        var client = new QueueClient<int>(system, "gone", new QueueClientOptions { AskTimeout = TimeSpan.FromSeconds(30) });
        await client.EnqueueAsync(1);
        await system.Terminate();

        await client.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(5));
        await Assert.ThrowsAsync<QueueClosedException>(() => client.EnqueueAsync(2));
    }

    [Fact]
    public async Task Cancellation_before_the_call_sends_nothing()
    {
        var (queue, client) = await ClientAsync("precancelled", capacity: 3);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.EnqueueAsync(1, new CancellationToken(true)));
        Assert.Equal(0, (await queue.StatsAsync()).Enqueued);
    }

    [Fact]
    public async Task Try_enqueue_does_not_wait_for_room()
    {
        var (queue, client) = await ClientAsync("try", capacity: 2, FullMode.Wait);
        Assert.True(await client.TryEnqueueAsync(1));
        Assert.True(await client.TryEnqueueAsync(2));
        Assert.False(await client.TryEnqueueAsync(3));
        var stats = await queue.StatsAsync();
        Assert.Equal((2, 0), (stats.Held, stats.Waiting));
    }

    [Fact]
    public async Task Enqueue_many_returns_how_many_were_accepted_in_order()
    {
        var (queue, client) = await ClientAsync("many", capacity: 100);
        Assert.Equal(50, await client.EnqueueManyAsync(Enumerable.Range(0, 50)));
        Assert.Equal(50, (await queue.StatsAsync()).Ready);

        var (small, smallClient) = await ClientAsync("many-small", capacity: 4);
        using var cts = new CancellationTokenSource();
        var batch = smallClient.EnqueueManyAsync(Enumerable.Range(0, 20), cts.Token);
        await AwaitAssertAsync(async () => Assert.Equal(4, (await small.StatsAsync()).Held));
        cts.Cancel();
        Assert.Equal(4, await batch);
        var seen = Consume(small);
        await AwaitConditionAsync(() => Task.FromResult(seen.Count == 4));
        Assert.Equal(Enumerable.Range(0, 4), seen.Keys.Order());
        Assert.Equal(4, (await small.StatsAsync()).Enqueued);
    }

    [Fact]
    public async Task Draining_or_stopped_queue_raises_queue_closed()
    {
        var (queue, client) = await ClientAsync("closing", capacity: 5);
        await client.EnqueueAsync(1);
        queue.Tell(Drain.Instance);
        // A call accepted before the queue began draining is drained with the rest; once it drains, calls are refused.
        await AwaitAssertAsync(async () => Assert.True((await queue.StatsAsync()).Draining));
        var draining = await Assert.ThrowsAsync<QueueClosedException>(() => client.EnqueueAsync(2));
        Assert.Equal(RejectReason.Draining, draining.Reason);
        Consume(queue);
        await AwaitConditionAsync(async () =>
            await Record.ExceptionAsync(() => client.EnqueueAsync(3)) is QueueClosedException { Reason: RejectReason.QueueStopped });
    }

    [Fact]
    public async Task Stats_come_from_the_queue()
    {
        var (_, client) = await ClientAsync("stats", capacity: 5);
        await client.EnqueueAsync(7);
        var stats = await client.GetStatsAsync();
        Assert.Equal(("stats", 1, 1L), (stats.QueueName, stats.Ready, stats.Enqueued));
    }
}
