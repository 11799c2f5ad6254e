using ActorQueue.Protocol;
using ActorQueue.Tests.Support;
using Akka.Actor;
using Akka.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace ActorQueue.Tests.Actors;

public class QueueActorSpec : Akka.TestKit.Xunit2.TestKit
{
    public QueueActorSpec(ITestOutputHelper output) : base(Specs.Hocon, output: output) { }

    private IActorRef NewQueue(QueueSettings? settings = null) =>
        Sys.ActorOf(QueueActor.Props("q", settings ?? Specs.Queue()));

    private static async Task<ProducerCredit> ExpectAcceptedAsync(TestProbe producer, long seqNr)
    {
        while (true)
        {
            var credit = await producer.ExpectMsgAsync<ProducerCredit>();
            if (credit.AcceptedSeqNr >= seqNr) return credit;
        }
    }

    [Fact]
    public async Task Queue_must_grant_credit_on_registration_and_accept_within_it()
    {
        var queue = NewQueue(Specs.Queue(capacity: 10));
        var producer = CreateTestProbe();
        queue.Tell(new RegisterProducer("p"), producer);
        var credit = await producer.ExpectMsgAsync<ProducerCredit>();
        Assert.Equal(new ProducerCredit(0, 10), credit);
        for (var i = 1; i <= 5; i++) queue.Tell(new SequencedMessage("p", i, $"m{i}"), producer);
        var accepted = await ExpectAcceptedAsync(producer, 5);
        Assert.Equal(5, accepted.AcceptedSeqNr);
        Assert.Equal(5, (await queue.StatsAsync()).Ready);
    }

    [Fact]
    public async Task Queue_must_deduplicate_resent_sequence_numbers()
    {
        var queue = NewQueue();
        var producer = CreateTestProbe();
        queue.Tell(new RegisterProducer("p"), producer);
        await producer.ExpectMsgAsync<ProducerCredit>();
        for (var i = 1; i <= 3; i++) queue.Tell(new SequencedMessage("p", i, i), producer);
        await ExpectAcceptedAsync(producer, 3);
        for (var i = 1; i <= 3; i++) queue.Tell(new SequencedMessage("p", i, i), producer);
        var again = await producer.ExpectMsgAsync<ProducerCredit>();
        Assert.Equal(3, again.AcceptedSeqNr);
        var stats = await queue.StatsAsync();
        Assert.Equal(3, stats.Enqueued);
        Assert.Equal(3, stats.Ready);
    }

    private async Task<(IActorRef Queue, TestProbe Producer)> QueueWithProducerAsync()
    {
        var queue = NewQueue(Specs.Queue(capacity: 10));
        var producer = CreateTestProbe();
        queue.Tell(new RegisterProducer("p"), producer);
        await producer.ExpectMsgAsync<ProducerCredit>();
        return (queue, producer);
    }

    [Fact]
    public async Task Queue_must_take_a_sequenced_batch_as_if_each_message_came_alone()
    {
        var (queue, producer) = await QueueWithProducerAsync();
        queue.Tell(new SequencedBatch("p", 1, ["a", "b", "c"]), producer);
        Assert.Equal(3, (await ExpectAcceptedAsync(producer, 3)).AcceptedSeqNr);
        // A resend overlapping what was accepted is deduplicated; the new tail is taken.
        queue.Tell(new SequencedBatch("p", 2, ["b", "c", "d"]), producer);
        Assert.Equal(4, (await ExpectAcceptedAsync(producer, 4)).AcceptedSeqNr);
        var consumer = CreateTestProbe();
        await consumer.PullAsync(queue, 10);
        Assert.Equal(new object[] { "a", "b", "c", "d" }, (await consumer.ExpectDeliveriesAsync(4)).Select(d => d.Message));
    }

    [Fact]
    public async Task Queue_must_stop_taking_a_batch_at_its_first_refused_message()
    {
        var (queue, producer) = await QueueWithProducerAsync();
        // The second payload is null (as a bad serializer might produce): refused, and nothing after it is taken.
        queue.Tell(new SequencedBatch("p", 1, ["a", null!, "c"]), producer);
        var rejected = await producer.FishForMessageAsync<SequenceRejected>(m => m is SequenceRejected);
        Assert.Equal((2, RejectReason.InvalidMessage), (rejected.SeqNr, rejected.Reason));
        Assert.Equal(1, (await ExpectAcceptedAsync(producer, 1)).AcceptedSeqNr);
        var stats = await queue.StatsAsync();
        Assert.Equal((1, 1L), (stats.Ready, stats.Rejected));
    }

    [Fact]
    public async Task Queue_must_settle_a_whole_batch_with_one_ack_range()
    {
        var queue = NewQueue();
        for (var i = 0; i < 5; i++) queue.Tell(new Enqueue(i, i));
        for (var i = 0; i < 5; i++) await ExpectMsgAsync(new EnqueueAccepted(i));
        var consumer = CreateTestProbe();
        await consumer.PullAsync(queue, 5);
        var batch = await consumer.ExpectMsgAsync<DeliveryBatch>();
        Assert.Equal(5, batch.Count);
        Assert.Equal(Enumerable.Range(0, 5).Select(i => batch.FirstDeliveryId + i), batch.ToArray().Select(d => d.DeliveryId));
        Assert.Null(batch.Attempts);
        queue.Tell(new AckRange(batch.FirstDeliveryId, batch.FirstDeliveryId + 4), consumer);
        await AwaitAssertAsync(async () => Assert.Equal(5, (await queue.StatsAsync()).Acked));
        Assert.Equal(0, (await queue.StatsAsync()).Held);
        await consumer.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(100));
    }

    [Fact]
    public async Task Queue_must_register_a_pulling_consumer_and_deliver_in_batches()
    {
        var queue = NewQueue();
        for (var i = 0; i < 5; i++) queue.Tell(new Enqueue($"m{i}", i));
        var consumer = CreateTestProbe();
        queue.Tell(new Pull(3), consumer);
        var registered = await consumer.ExpectMsgAsync<ConsumerRegistered>();
        Assert.Equal(TimeSpan.FromSeconds(5), registered.AckTimeout);
        var batch = await consumer.ExpectMsgAsync<DeliveryBatch>();
        Assert.Equal(new object[] { "m0", "m1", "m2" }, batch.ToArray().Select(d => d.Message));
        // A window of 3: nothing more until the consumer holds fewer.
        await consumer.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(100));
        queue.Tell(new Ack(batch.FirstDeliveryId), consumer);
        Assert.Equal("m3", (await consumer.ExpectDeliveriesAsync(1)).Single().Message);
        // A repeated pull changes nothing; a wider window is topped up at once.
        queue.Tell(new Pull(3, registered.Epoch), consumer);
        await consumer.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(100));
        queue.Tell(new Pull(4, registered.Epoch), consumer);
        Assert.Equal("m4", (await consumer.ExpectDeliveriesAsync(1)).Single().Message);
        var stats = await queue.StatsAsync();
        Assert.Equal((1, 4, 1), (stats.Acked, stats.InFlight, stats.Consumers));
    }

    [Fact]
    public async Task Queue_must_share_work_between_competing_consumers()
    {
        var queue = NewQueue(Specs.Queue(capacity: 100));
        var a = CreateTestProbe();
        var b = CreateTestProbe();
        await a.PullAsync(queue, 10);
        await b.PullAsync(queue, 10);
        for (var i = 0; i < 20; i++) queue.Tell(new Enqueue(i));
        var fromA = await a.ExpectDeliveriesAsync(10);
        var fromB = await b.ExpectDeliveriesAsync(10);
        Assert.Equal(Enumerable.Range(0, 20), fromA.Concat(fromB).Select(d => (int)d.Message).Order());
    }

    [Fact]
    public async Task Queue_must_redeliver_when_consumer_dies_before_ack()
    {
        var queue = NewQueue();
        var doomed = CreateTestProbe();
        await doomed.PullAsync(queue, 2);
        queue.Tell(new Enqueue("a"));
        queue.Tell(new Enqueue("b"));
        var held = await doomed.ExpectDeliveriesAsync(2);
        queue.Tell(new Ack(held[0].DeliveryId), doomed);
        var survivor = CreateTestProbe();
        await survivor.PullAsync(queue, 5);
        Sys.Stop(doomed.Ref);
        var redelivered = (await survivor.ExpectMsgAsync<DeliveryBatch>()).ToArray().Single();
        Assert.Equal("b", redelivered.Message);
        Assert.Equal(2, redelivered.Attempt);
        Assert.Equal(1, (await queue.StatsAsync()).Redelivered);
    }

    [Fact]
    public async Task Queue_must_redeliver_after_a_missed_deadline_unless_in_progress_is_reported()
    {
        var queue = NewQueue(Specs.Queue() with { AckTimeout = TimeSpan.FromSeconds(1) });
        var slow = CreateTestProbe();
        await slow.PullAsync(queue, 2);
        queue.Tell(new Enqueue("forgotten"));
        queue.Tell(new Enqueue("worked-on"));
        var held = await slow.ExpectDeliveriesAsync(2);
        var other = CreateTestProbe();
        await other.PullAsync(queue, 5);
        for (var i = 0; i < 7; i++)
        {
            await Task.Delay(200); // the consumer's own pace of reporting progress, not an assertion wait
            queue.Tell(new InProgress(held[1].DeliveryId), slow);
        }
        var redelivered = (await other.ExpectMsgAsync<DeliveryBatch>()).ToArray().Single();
        Assert.Equal("forgotten", redelivered.Message);
        Assert.Equal(2, redelivered.Attempt);
        queue.Tell(new Ack(held[1].DeliveryId), slow);
        await AwaitAssertAsync(async () => Assert.Equal(1, (await queue.StatsAsync()).Acked));
    }

    [Fact]
    public async Task Queue_must_retry_a_nack_after_its_delay_and_dead_letter_at_max_attempts()
    {
        var queue = NewQueue(Specs.Queue() with { MaxAttempts = 3 });
        var consumer = CreateTestProbe();
        await consumer.PullAsync(queue, 10);
        queue.Tell(new Enqueue("poison"));
        for (var attempt = 1; attempt <= 3; attempt++)
        {
            var d = (await consumer.ExpectMsgAsync<DeliveryBatch>()).ToArray().Single();
            Assert.Equal(attempt, d.Attempt);
            queue.Tell(new Nack(d.DeliveryId, TimeSpan.FromMilliseconds(30), "cannot parse"), consumer);
        }
        await consumer.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(200));
        var dead = await queue.Ask<DeadLetterList>(new GetDeadLetters());
        var letter = Assert.Single(dead.Items);
        Assert.Equal(("poison", 3), (letter.Message, letter.Attempts));
        Assert.Contains("cannot parse", letter.Reason);
        var stats = await queue.StatsAsync();
        Assert.Equal((1, 3, 0), (stats.DeadLettered, stats.Nacked, stats.Held));
    }

    [Fact]
    public async Task Queue_must_redrive_dead_letters_back_to_consumers()
    {
        var queue = NewQueue(Specs.Queue() with { MaxAttempts = 1 });
        var consumer = CreateTestProbe();
        await consumer.PullAsync(queue, 10);
        queue.Tell(new Enqueue("x"));
        queue.Tell(new Enqueue("y"));
        foreach (var d in await consumer.ExpectDeliveriesAsync(2)) queue.Tell(new Nack(d.DeliveryId, null, "down"), consumer);
        await AwaitAssertAsync(async () => Assert.Equal(2, (await queue.StatsAsync()).Dead));
        var dead = await queue.Ask<DeadLetterList>(new GetDeadLetters(1));
        Assert.Equal(2, dead.Total);
        Assert.Equal(new Redriven(1, 1), await queue.Ask<Redriven>(new RedriveDeadLetter(dead.Items[0].MessageId)));
        Assert.Equal("x", (await consumer.ExpectMsgAsync<DeliveryBatch>()).ToArray().Single().Message);
        Assert.Equal(new Redriven(1, 0), await queue.Ask<Redriven>(RedriveAllDeadLetters.Instance));
        var y = (await consumer.ExpectMsgAsync<DeliveryBatch>()).ToArray().Single();
        Assert.Equal(("y", 1), (y.Message, y.Attempt));
        Assert.Equal(new Redriven(0, 0), await queue.Ask<Redriven>(new RedriveDeadLetter(12345)));
    }

    public static TheoryData<FullMode, int> FullModesAndCapacities()
    {
        var data = new TheoryData<FullMode, int>();
        foreach (var mode in Enum.GetValues<FullMode>())
            foreach (var capacity in new[] { 1, 10, 1000 })
                data.Add(mode, capacity);
        return data;
    }

    [Theory]
    [MemberData(nameof(FullModesAndCapacities))]
    public async Task Queue_must_answer_every_enqueue_beyond_capacity_by_its_full_mode(FullMode mode, int capacity)
    {
        var queue = NewQueue(Specs.Queue(capacity, mode) with { FullWaitTimeout = TimeSpan.FromMilliseconds(300) });
        Sys.EventStream.Subscribe(TestActor, typeof(MessageDropped));
        for (var i = 0; i < capacity; i++) queue.Tell(new Enqueue(i, i));
        for (var i = 0; i < capacity; i++) Assert.Equal(i, (await ExpectMsgAsync<EnqueueAccepted>()).CorrelationId);

        queue.Tell(new Enqueue("extra", -1));
        switch (mode)
        {
            case FullMode.Reject:
                Assert.Equal(RejectReason.QueueFull, (await ExpectMsgAsync<EnqueueRejected>()).Reason);
                break;
            case FullMode.Wait:
                await ExpectNoMsgAsync(TimeSpan.FromMilliseconds(100));
                Assert.Equal(RejectReason.WaitTimedOut, (await ExpectMsgAsync<EnqueueRejected>(TimeSpan.FromSeconds(2))).Reason);
                break;
            case FullMode.DropOldest or FullMode.DropNewest:
                var dropped = await ExpectMsgAsync<MessageDropped>();
                Assert.Equal(mode == FullMode.DropOldest ? 0 : capacity - 1, dropped.Message);
                Assert.Equal(-1, (await ExpectMsgAsync<EnqueueAccepted>()).CorrelationId);
                break;
        }
        var stats = await queue.StatsAsync();
        Assert.Equal(capacity, stats.Held);
        Assert.Equal(mode is FullMode.DropOldest or FullMode.DropNewest ? (0, 1) : (1, 0), (stats.Rejected, stats.Dropped));
    }

    [Fact]
    public async Task Queue_must_accept_a_waiting_enqueue_when_room_frees_up()
    {
        var queue = NewQueue(Specs.Queue(1, FullMode.Wait) with { FullWaitTimeout = TimeSpan.FromSeconds(5) });
        queue.Tell(new Enqueue("first", 1));
        await ExpectMsgAsync(new EnqueueAccepted(1));
        queue.Tell(new Enqueue("second", 2));
        await ExpectNoMsgAsync(TimeSpan.FromMilliseconds(100));
        var consumer = CreateTestProbe();
        await consumer.PullAsync(queue, 1);
        var d = (await consumer.ExpectMsgAsync<DeliveryBatch>()).ToArray().Single();
        queue.Tell(new Ack(d.DeliveryId), consumer);
        await ExpectMsgAsync(new EnqueueAccepted(2));
    }

    [Fact]
    public async Task Queue_must_report_stats()
    {
        var queue = NewQueue(Specs.Queue() with { ProducerCredit = 5 });
        var producer = CreateTestProbe();
        queue.Tell(new RegisterProducer("p"), producer);
        await producer.ExpectMsgAsync<ProducerCredit>();
        queue.Tell(new SequencedMessage("p", 1, "a"), producer);
        queue.Tell(new Enqueue("b"));
        var consumer = CreateTestProbe();
        await consumer.PullAsync(queue, 1);
        await consumer.ExpectDeliveriesAsync(1);
        var stats = await queue.StatsAsync();
        Assert.Equal(("q", 10, 1, 1, 1, 1, 2, 1), (stats.QueueName, stats.Capacity, stats.Ready, stats.InFlight, stats.Producers, stats.Consumers, stats.Enqueued, stats.Delivered));
    }

    [Fact]
    public async Task Queue_must_drain_by_refusing_new_work_finishing_held_work_then_stopping()
    {
        var queue = NewQueue();
        Watch(queue);
        queue.Tell(new Enqueue("held", 1));
        await ExpectMsgAsync(new EnqueueAccepted(1));
        var requester = CreateTestProbe();
        queue.Tell(Drain.Instance, requester);
        queue.Tell(new Enqueue("late", 2));
        Assert.Equal(RejectReason.Draining, (await ExpectMsgAsync<EnqueueRejected>()).Reason);
        var consumer = CreateTestProbe();
        await consumer.PullAsync(queue, 5);
        var d = (await consumer.ExpectMsgAsync<DeliveryBatch>()).ToArray().Single();
        await requester.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(100));
        queue.Tell(new Ack(d.DeliveryId), consumer);
        await requester.ExpectMsgAsync(new Drained("q"));
        await ExpectTerminatedAsync(queue);
    }

    [Fact]
    public async Task Queue_must_keep_its_buffer_when_it_fails_under_the_guardian()
    {
        var queue = await Sys.ActorQueues().CreateQueueAsync("resilient", Specs.Queue());
        for (var i = 0; i < 3; i++) queue.Tell(new Enqueue(i, i));
        for (var i = 0; i < 3; i++) await ExpectMsgAsync<EnqueueAccepted>();
        await EventFilter.Exception<InvalidOperationException>().ExpectOneAsync(async () =>
        {
            queue.Tell(GetStats.Instance, new ThrowingActorRef(Sys));
            await Task.CompletedTask;
        });
        var stats = await queue.StatsAsync();
        Assert.Equal(3, stats.Ready);
        Assert.Equal(3, stats.Enqueued);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_producer_id_taken_over_before_the_old_actor_is_seen_to_stop_never_lets_its_parked_message_take_the_new_one_s_number(bool newActor)
    {
        // "old" waits for room as number 1 of producer p. Then p registers again, from a new actor (its death notice not
        // yet here) or from the same actor restarted in place (numbering its registrations from 1 again), and sends its
        // own number 1. The old message is refused; the new one is the one delivered.
        var queue = NewQueue(Specs.Queue(capacity: 1, mode: FullMode.Wait) with { FullWaitTimeout = TimeSpan.FromMinutes(1) });
        queue.Tell(new Enqueue("filler", 1));
        await ExpectMsgAsync(new EnqueueAccepted(1));
        var first = CreateTestProbe();
        queue.Tell(new RegisterProducer("p", 10, Registration: 1), first);
        queue.Tell(new RegisterProducer("p", 10, Registration: 2), first);
        queue.Tell(new SequencedMessage("p", 1, "old"), first);
        Assert.Equal(1, (await queue.StatsAsync()).Waiting);

        var second = newActor ? CreateTestProbe() : first;
        queue.Tell(new RegisterProducer("p", 10, Registration: 1), second.Ref);
        var refused = await first.FishForMessageAsync<SequenceRejected>(m => m is SequenceRejected);
        Assert.Equal((1L, RejectReason.NotRegistered), (refused.SeqNr, refused.Reason));
        Assert.Contains("stopped before room freed up", refused.Detail);
        queue.Tell(new SequencedMessage("p", 1, "new"), second.Ref);
        Assert.Equal(1, (await queue.StatsAsync()).Waiting);

        var consumer = CreateTestProbe();
        queue.Tell(new Pull(1), consumer);
        await consumer.ExpectMsgAsync<ConsumerRegistered>();
        var filler = (await consumer.ExpectMsgAsync<DeliveryBatch>())[0];
        queue.Tell(new Ack(filler.DeliveryId), consumer);
        Assert.Equal("new", (await consumer.ExpectMsgAsync<DeliveryBatch>())[0].Message);
    }
}
