using System.Collections.Concurrent;
using ActorQueue.Client;
using ActorQueue.Protocol;
using ActorQueue.Tests.Support;
using Akka.Actor;
using Xunit;
using Xunit.Abstractions;

namespace ActorQueue.Tests.Client;

/// <summary>
/// A client of an in-memory queue in the same process: the queue registers the client's feed as a producer and grants it
/// credit, and calls are accepted on their callers' threads while credit lasts. These specs hold it to the promise that
/// an accepted message is never lost, whatever the queue does next (drain, stop, release idle credit).
/// </summary>
public class CallerThreadAcceptanceSpec : Akka.TestKit.Xunit2.TestKit
{
    public CallerThreadAcceptanceSpec(ITestOutputHelper output) : base(Specs.Hocon, output: output) { }

    private async Task<(IActorRef Queue, QueueClient<int> Client)> ClientAsync(string name, int capacity, QueueClientOptions? options = null)
    {
        var queue = await Sys.ActorQueues().CreateQueueAsync(name, Specs.Queue(capacity, FullMode.Wait));
        return (queue, new QueueClient<int>(Sys, name, options));
    }

    // Records each handled message with its delivery id, which follows the queue's order.
    private ConcurrentQueue<(long DeliveryId, int Message)> Consume(IActorRef queue, int concurrency = 1)
    {
        var handled = new ConcurrentQueue<(long, int)>();
        Sys.ActorOf(ConsumerActor.Props(queue, (d, _) =>
        {
            handled.Enqueue((d.DeliveryId, (int)d.Message));
            return Task.CompletedTask;
        }, ConsumerSettings.Default with { Concurrency = concurrency }));
        return handled;
    }

    [Fact]
    public async Task Once_connected_a_call_within_credit_completes_before_it_returns_and_the_queue_holds_it()
    {
        var (queue, client) = await ClientAsync("sync", capacity: 100);
        await client.EnqueueAsync(0); // connects: the queue registers the feed and grants it the free room
        Assert.True((await queue.StatsAsync()).OutstandingCredit > 0);

        var calls = Enumerable.Range(1, 50).Select(i => client.EnqueueAsync(i)).ToArray();
        Assert.All(calls, c => Assert.True(c.IsCompletedSuccessfully));
        var batch = client.EnqueueManyAsync(Enumerable.Range(51, 49));
        Assert.True(batch.IsCompletedSuccessfully);
        Assert.Equal(49, await batch);

        await AwaitAssertAsync(async () => Assert.Equal(100, (await queue.StatsAsync()).Ready));
        var handled = Consume(queue);
        await AwaitAssertAsync(() => Assert.Equal(100, handled.Count));
        Assert.Equal(Enumerable.Range(0, 100), handled.OrderBy(h => h.DeliveryId).Select(h => h.Message));
    }

    [Fact]
    public async Task Calls_beyond_credit_wait_behind_each_other_and_keep_their_order_as_room_frees()
    {
        var (queue, client) = await ClientAsync("beyond", capacity: 5);
        await client.EnqueueAsync(0);
        // One caller with calls open: the first four fit, the rest wait their turn in the order they were made.
        var calls = Enumerable.Range(1, 39).Select(i => client.EnqueueAsync(i)).ToArray();
        Assert.All(calls.Take(4), c => Assert.True(c.IsCompletedSuccessfully));
        Assert.All(calls.Skip(4), c => Assert.False(c.IsCompleted));

        var handled = Consume(queue);
        await Task.WhenAll(calls).WaitAsync(TimeSpan.FromSeconds(10));
        await AwaitAssertAsync(() => Assert.Equal(40, handled.Count));
        Assert.Equal(Enumerable.Range(0, 40), handled.OrderBy(h => h.DeliveryId).Select(h => h.Message));
        Assert.Equal(0L, (await queue.StatsAsync()).Rejected);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task Every_call_accepted_before_a_drain_begins_is_handled_and_every_later_one_is_refused_as_closed(int seed)
    {
        var (queue, client) = await ClientAsync($"drain-race-{seed}", capacity: 500);
        await client.EnqueueAsync(-1);
        var handled = Consume(queue, concurrency: 4);
        var accepted = new ConcurrentBag<int>();
        var refused = new ConcurrentBag<Exception>();
        using var stop = new CancellationTokenSource();
        // Writers keep calling, on their own threads, while the queue begins to drain under them.
        var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            for (var i = 0; ; i++)
            {
                var message = w * 1_000_000 + i;
                try
                {
                    await client.EnqueueAsync(message);
                    accepted.Add(message);
                }
                catch (Exception e)
                {
                    refused.Add(e);
                    return;
                }
            }
        })).ToArray();
        await AwaitConditionAsync(() => Task.FromResult(accepted.Count > 2_000 * seed));
        Watch(queue);
        queue.Tell(Drain.Instance);
        await Task.WhenAll(writers).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(0, (await ExpectMsgAsync<Drained>(TimeSpan.FromSeconds(20))).Left);
        await ExpectTerminatedAsync(queue, TimeSpan.FromSeconds(20));

        // Nothing accepted was lost or handled twice, and every writer stopped on a refusal that says the queue closed.
        var seen = handled.Select(h => h.Message).Where(m => m >= 0).ToList();
        Assert.Equal(seen.Count, seen.Distinct().Count());
        Assert.Equal(accepted.Order(), seen.Order());
        Assert.Equal(4, refused.Count);
        Assert.All(refused, e => Assert.True(e is QueueClosedException { Reason: RejectReason.Draining or RejectReason.QueueStopped }, e.ToString()));
        var late = await Assert.ThrowsAsync<QueueClosedException>(() => client.EnqueueAsync(0));
        Assert.Equal(RejectReason.QueueStopped, late.Reason);
    }

    [Fact]
    public async Task A_queue_that_stops_fails_the_calls_waiting_for_room_as_closed()
    {
        var (queue, client) = await ClientAsync("stopping", capacity: 2);
        await client.EnqueueAsync(1);
        await client.EnqueueAsync(2);
        var waiting = Enumerable.Range(3, 5).Select(i => client.EnqueueAsync(i)).ToArray();
        Assert.All(waiting, c => Assert.False(c.IsCompleted));

        queue.Tell(PoisonPill.Instance);
        foreach (var call in waiting)
        {
            var closed = await Assert.ThrowsAsync<QueueClosedException>(() => call.WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.Equal(RejectReason.QueueStopped, closed.Reason);
        }
        await Assert.ThrowsAsync<QueueClosedException>(() => client.EnqueueAsync(9));
        Assert.Equal(0, await client.EnqueueManyAsync(Array.Empty<int>()));
        await Assert.ThrowsAsync<QueueClosedException>(() => client.EnqueueManyAsync([9, 10]));
    }

    [Fact]
    public async Task An_idle_client_gives_back_the_room_it_reserved_and_asks_again_when_a_call_must_wait()
    {
        var (queue, client) = await ClientAsync("idle", capacity: 10);
        await client.EnqueueAsync(1);
        await AwaitAssertAsync(async () => Assert.Equal(9L, (await queue.StatsAsync()).OutstandingCredit));

        // Unused for credit-lease (1 s): the room goes back, and anyone may use it.
        await AwaitAssertAsync(async () => Assert.Equal(0L, (await queue.StatsAsync()).OutstandingCredit), TimeSpan.FromSeconds(5));
        var other = new QueueClient<int>(Sys, "idle");
        Assert.True(await other.TryEnqueueAsync(100));
        await other.DisposeAsync();

        // The next call waits for credit the queue grants again, then the ones after it are accepted on the spot.
        var first = client.EnqueueAsync(2);
        Assert.False(first.IsCompleted);
        await first.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(client.EnqueueAsync(3).IsCompletedSuccessfully);
        await AwaitAssertAsync(async () => Assert.Equal(4, (await queue.StatsAsync()).Ready));
    }

    [Fact]
    public async Task A_disposed_client_s_accepted_messages_reach_the_queue_and_its_producer_and_credit_are_let_go()
    {
        var (queue, client) = await ClientAsync("dispose-local", capacity: 50);
        await client.EnqueueAsync(0);
        for (var i = 1; i < 30; i++) Assert.True(client.EnqueueAsync(i).IsCompletedSuccessfully);
        var waiting = client.EnqueueManyAsync(Enumerable.Range(30, 40));
        await client.DisposeAsync();

        // The batch kept a prefix: what fitted in the credit, and nothing after it.
        var kept = await waiting.WaitAsync(TimeSpan.FromSeconds(5));
        await AwaitAssertAsync(async () =>
        {
            var stats = await queue.StatsAsync();
            Assert.Equal((30 + kept, 0, 0L), ((int)stats.Enqueued, stats.Producers, stats.OutstandingCredit));
        });
        var handled = Consume(queue);
        await AwaitAssertAsync(() => Assert.Equal(30 + kept, handled.Count));
        Assert.Equal(Enumerable.Range(0, 30 + kept), handled.OrderBy(h => h.DeliveryId).Select(h => h.Message));
    }

    [Fact]
    public async Task A_client_with_a_stable_producer_id_continues_its_sequence_after_another_used_it()
    {
        var (queue, first) = await ClientAsync("stable", capacity: 50, new QueueClientOptions { ProducerId = "orders" });
        Assert.Equal(3, await first.EnqueueManyAsync([1, 2, 3]));
        await first.DisposeAsync();
        await AwaitAssertAsync(async () => Assert.Equal(0, (await queue.StatsAsync()).Producers));

        var second = new QueueClient<int>(Sys, "stable", new QueueClientOptions { ProducerId = "orders" });
        Assert.Equal(3, await second.EnqueueManyAsync([4, 5, 6]));
        var handled = Consume(queue);
        await AwaitAssertAsync(() => Assert.Equal(6, handled.Count));
        Assert.Equal([1, 2, 3, 4, 5, 6], handled.OrderBy(h => h.DeliveryId).Select(h => h.Message));
        Assert.Equal(1, (await queue.StatsAsync()).KnownProducers);
    }

    [Fact]
    public async Task A_second_client_or_producer_under_a_client_s_producer_id_is_refused_and_the_first_keeps_its_messages()
    {
        var (queue, first) = await ClientAsync("same-id", capacity: 50, new QueueClientOptions { ProducerId = "orders" });
        await first.EnqueueAsync(1);
        var second = new QueueClient<int>(Sys, "same-id", new QueueClientOptions { ProducerId = "orders" });
        var refused = await Assert.ThrowsAsync<EnqueueRejectedException>(() => second.EnqueueAsync(2).WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(RejectReason.NotRegistered, refused.Reason);
        Assert.Contains("'orders'", refused.Message);

        // A producer actor asking for the id is refused too, with a reply naming it.
        var actor = CreateTestProbe();
        queue.Tell(new RegisterProducer("orders", 10, 1), actor.Ref);
        Assert.Contains("'orders'", (await actor.ExpectMsgAsync<InvalidRequest>()).Reason);

        for (var i = 2; i <= 5; i++) await first.EnqueueAsync(i);
        var handled = Consume(queue);
        await AwaitAssertAsync(() => Assert.Equal(5, handled.Count));
        Assert.Equal([1, 2, 3, 4, 5], handled.OrderBy(h => h.DeliveryId).Select(h => h.Message));
        Assert.Equal(1, (await queue.StatsAsync()).Producers);
    }

    [Fact]
    public async Task A_feed_let_go_by_its_queue_accepts_nothing_more_and_one_closed_before_its_request_arrives_is_never_registered()
    {
        var queue = await Sys.ActorQueues().CreateQueueAsync("feeds", Specs.Queue(20, FullMode.Wait));
        var feed = new ClientFeed("feeds", "feed-a");
        queue.Tell(new AttachFeed(feed));
        await feed.Registered.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(feed.TryAcceptNow(1));
        queue.Tell(new DetachFeed(feed));
        await AwaitAssertAsync(async () =>
        {
            var stats = await queue.StatsAsync();
            Assert.Equal((1L, 0, 0L), (stats.Enqueued, stats.Producers, stats.OutstandingCredit));
        });
        // The credit it held went back with it: nothing is accepted against it any more.
        Assert.False(feed.TryAcceptNow(2));

        var closed = new ClientFeed("feeds", "feed-b");
        closed.Close(new QueueClosedException("feeds", RejectReason.QueueStopped, "disposed"), answer: null);
        queue.Tell(new AttachFeed(closed));
        queue.Tell(new AttachFeed(new ClientFeed("feeds", "feed-c")));
        await AwaitAssertAsync(async () => Assert.Equal(1, (await queue.StatsAsync()).Producers));
        Assert.Equal(1L, (await queue.StatsAsync()).Enqueued);
    }

    [Fact]
    public async Task Two_busy_clients_share_a_small_queue_and_every_message_arrives_once()
    {
        var queue = await Sys.ActorQueues().CreateQueueAsync("shared-local", Specs.Queue(4, FullMode.Wait));
        var a = new QueueClient<int>(Sys, "shared-local");
        var b = new QueueClient<int>(Sys, "shared-local");
        var handled = Consume(queue, concurrency: 2);
        var calls = Enumerable.Range(0, 300).Select(i => Task.Run(() => (i % 2 == 0 ? a : b).EnqueueAsync(i))).ToArray();
        await Task.WhenAll(calls).WaitAsync(TimeSpan.FromSeconds(20));
        await AwaitAssertAsync(() => Assert.Equal(300, handled.Count));
        Assert.Equal(Enumerable.Range(0, 300), handled.Select(h => h.Message).Order());
        Assert.Equal(0L, (await queue.StatsAsync()).Rejected);
    }

    [Fact]
    public async Task Calls_cancelled_while_waiting_do_not_pile_up_in_the_client()
    {
        var (queue, client) = await ClientAsync("cancel-pile", capacity: 1);
        await client.EnqueueAsync(0);
        // A caller that times out every call against a queue that never frees room: cancelled calls leave the line.
        for (var i = 0; i < 2_000; i++)
        {
            using var cts = new CancellationTokenSource();
            var call = client.EnqueueAsync(i + 1, cts.Token);
            cts.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        }
        Assert.InRange(client.WaitingCalls, 0, 64);
        var handled = Consume(queue);
        await client.EnqueueAsync(-1).WaitAsync(TimeSpan.FromSeconds(5));
        await AwaitAssertAsync(() => Assert.Equal(2, handled.Count));
        Assert.Equal([0, -1], handled.OrderBy(h => h.DeliveryId).Select(h => h.Message));
    }
}
