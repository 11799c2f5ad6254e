using ActorQueue.Protocol;
using ActorQueue.Tests.Support;
using Akka.Actor;
using Akka.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace ActorQueue.Tests.Actors;

public class ProducerActorSpec : Akka.TestKit.Xunit2.TestKit
{
    public ProducerActorSpec(ITestOutputHelper output) : base(Specs.Hocon, output: output) { }

    // Resends only where a test asks for them, so a slow machine does not see a re-registration it did not expect.
    private static readonly ProducerSettings Fast = new() { BufferSize = 100, ResendInterval = TimeSpan.FromSeconds(30) };

    private async Task<(TestProbe Queue, IActorRef Producer)> RegisteredAsync(long accepted, long credit, ProducerSettings? settings = null)
    {
        var queue = CreateTestProbe();
        var producer = Sys.ActorOf(ProducerActor.Props(queue.Ref, "p", settings ?? Fast));
        var registration = await queue.ExpectMsgAsync<RegisterProducer>();
        Assert.Equal("p", registration.ProducerId);
        queue.Reply(new ProducerCredit(accepted, credit, registration.Registration));
        return (queue, producer);
    }

    [Fact]
    public async Task Producer_must_never_send_beyond_its_credit()
    {
        var (queue, producer) = await RegisteredAsync(0, 2);
        for (var i = 0; i < 5; i++) producer.Tell(new Produce($"m{i}", i));
        // Sent together when the requests arrive together, one by one when they trickle in; never beyond credit.
        var sent = await queue.ExpectSequencedAsync(2);
        Assert.Equal(new[] { (1L, (object)"m0"), (2L, "m1") }, sent);
        // Out of credit with more to send: it asks, once, for what it holds at that moment.
        var ask = await queue.ExpectMsgAsync<RequestCredit>();
        Assert.InRange(ask.UpToSeqNr, 3, 5);
        await queue.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(150));
        producer.Tell(new ProducerCredit(2, 4), queue.Ref);
        await ExpectMsgAsync(new EnqueueAccepted(0));
        await ExpectMsgAsync(new EnqueueAccepted(1));
        Assert.Equal(new[] { (3L, (object)"m2"), (4L, "m3") }, await queue.ExpectSequencedAsync(2));
        if (ask.UpToSeqNr < 5) Assert.Equal(new RequestCredit("p", 5), await queue.ExpectMsgAsync<RequestCredit>());
        await queue.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(100));
    }

    [Fact]
    public async Task Producer_must_send_a_burst_of_requests_as_one_batch()
    {
        var (queue, producer) = await RegisteredAsync(0, 0);
        // Without credit nothing goes out; the requests gather, and the credit (arriving after all of them, since one
        // sender's messages keep their order) releases them at once.
        for (var i = 0; i < 10; i++) producer.Tell(new Produce(i, i));
        producer.Tell(new ProducerCredit(0, 10), queue.Ref);
        var batch = await queue.FishForMessageAsync<SequencedBatch>(m => m is SequencedBatch);
        Assert.Equal(1, batch.FirstSeqNr);
        Assert.Equal(Enumerable.Range(0, 10).Cast<object>(), batch.Messages);
    }

    [Fact]
    public async Task Producer_must_continue_the_sequence_of_an_earlier_producer_with_its_id()
    {
        var (queue, producer) = await RegisteredAsync(accepted: 7, credit: 10);
        producer.Tell(new Produce("after restart"));
        var m = await queue.ExpectMsgAsync<SequencedMessage>();
        Assert.Equal(8, m.SeqNr);
    }

    [Fact]
    public async Task Producer_must_resend_what_was_not_accepted_when_the_queue_restarts()
    {
        var (queue, producer) = await RegisteredAsync(0, 10, Fast with { ResendInterval = TimeSpan.FromMilliseconds(300) });
        for (var i = 1; i <= 3; i++) producer.Tell(new Produce($"m{i}", i));
        await queue.ExpectSequencedAsync(3);
        // The queue restarted having accepted only message 1: nothing more is confirmed, so the producer re-registers.
        var again = await queue.ExpectMsgAsync<RegisterProducer>(TimeSpan.FromSeconds(3));
        Assert.Equal("p", again.ProducerId);
        queue.Reply(new ProducerCredit(1, 10, again.Registration));
        await ExpectMsgAsync(new EnqueueAccepted(1));
        var resent = new SortedDictionary<long, object>();
        while (resent.Count < 2)
        {
            // On a slow machine the producer may give up waiting again; the restarted queue answers the same.
            switch (await queue.ReceiveOneAsync(TimeSpan.FromSeconds(3)))
            {
                case RegisterProducer r: queue.Reply(new ProducerCredit(1, 10, r.Registration)); break;
                case SequencedMessage m: resent[m.SeqNr] = m.Message; break;
                case SequencedBatch b:
                    for (var i = 0; i < b.Messages.Length; i++) resent[b.FirstSeqNr + i] = b.Messages[i];
                    break;
            }
        }
        Assert.Equal(new[] { (2L, (object)"m2"), (3L, "m3") }, resent.Select(r => (r.Key, r.Value)));
        queue.Reply(new ProducerCredit(3, 10));
        await ExpectMsgAsync(new EnqueueAccepted(2));
        await ExpectMsgAsync(new EnqueueAccepted(3));
    }

    [Fact]
    public async Task Producer_must_register_asking_only_for_what_it_holds()
    {
        var queue = CreateTestProbe();
        Sys.ActorOf(ProducerActor.Props(queue.Ref, "idle", Fast));
        Assert.Equal(new RegisterProducer("idle", 0, 1), await queue.ExpectMsgAsync<RegisterProducer>());
    }

    [Fact]
    public async Task Idle_producer_reserves_no_room_in_a_real_queue()
    {
        var queue = Sys.ActorOf(QueueActor.Props("q", Specs.Queue(capacity: 3)));
        var idle = Sys.ActorOf(ProducerActor.Props(queue, "idle", Fast));
        await AwaitAssertAsync(async () => Assert.Equal(1, (await queue.StatsAsync()).Producers));
        for (var i = 0; i < 3; i++) queue.Tell(new Enqueue(i, i));
        for (var i = 0; i < 3; i++) await ExpectMsgAsync(new EnqueueAccepted(i));
        idle.Tell(new Produce("later", 7));
        await ExpectNoMsgAsync(TimeSpan.FromMilliseconds(100)); // the queue is full: it waits for credit
        var consumer = CreateTestProbe();
        await consumer.PullAsync(queue, 1);
        queue.Tell(new Ack((await consumer.ExpectMsgAsync<DeliveryBatch>())[0].DeliveryId), consumer);
        await ExpectMsgAsync(new EnqueueAccepted(7));
    }

    [Fact]
    public async Task Producer_must_renumber_when_the_queue_forgot_what_it_confirmed()
    {
        var (queue, producer) = await RegisteredAsync(0, 10, Fast with { ResendInterval = TimeSpan.FromMilliseconds(300) });
        producer.Tell(new Produce("m1", 1));
        producer.Tell(new Produce("m2", 2));
        await queue.ExpectSequencedAsync(2);
        queue.Reply(new ProducerCredit(2, 10));
        await ExpectMsgAsync(new EnqueueAccepted(1));
        await ExpectMsgAsync(new EnqueueAccepted(2));
        producer.Tell(new Produce("m3", 3));
        Assert.Equal(3, (await queue.ExpectMsgAsync<SequencedMessage>()).SeqNr);
        var again = await queue.ExpectMsgAsync<RegisterProducer>(TimeSpan.FromSeconds(3));
        queue.Reply(new ProducerCredit(0, 10, again.Registration)); // a queue that lost its state
        var resent = await queue.FishForMessageAsync<SequencedMessage>(m => m is SequencedMessage);
        Assert.Equal((1L, (object)"m3"), (resent.SeqNr, resent.Message));
    }

    [Fact]
    public async Task Producer_must_resynchronise_when_the_queue_reports_a_gap()
    {
        var (queue, producer) = await RegisteredAsync(0, 10);
        producer.Tell(new Produce("a"));
        await queue.ExpectMsgAsync<SequencedMessage>();
        queue.Reply(new SequenceRejected(1, RejectReason.NotRegistered, "unknown producer"));
        var again = await queue.ExpectMsgAsync<RegisterProducer>();
        queue.Reply(new ProducerCredit(0, 10, again.Registration));
        Assert.Equal(1, (await queue.ExpectMsgAsync<SequencedMessage>()).SeqNr);
    }

    [Fact]
    public async Task Producer_must_reject_when_its_buffer_is_full()
    {
        var (queue, producer) = await RegisteredAsync(0, 0, Fast with { BufferSize = 2 });
        producer.Tell(new Produce("a", 1));
        producer.Tell(new Produce("b", 2));
        producer.Tell(new Produce("c", 3));
        var rejected = await ExpectMsgAsync<EnqueueRejected>();
        Assert.Equal((3, RejectReason.ProducerBufferFull), (rejected.CorrelationId, rejected.Reason));
        Assert.InRange((await queue.ExpectMsgAsync<RequestCredit>()).UpToSeqNr, 1, 2);
        await queue.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(100));
    }

    [Fact]
    public async Task Producer_must_fail_what_it_holds_when_the_queue_drains_or_stops()
    {
        var (queue, producer) = await RegisteredAsync(0, 1);
        producer.Tell(new Produce("a", 1));
        producer.Tell(new Produce("b", 2));
        await queue.ExpectMsgAsync<SequencedMessage>();
        queue.Reply(new SequenceRejected(1, RejectReason.Draining, "draining"));
        var rejected = new[] { await ExpectMsgAsync<EnqueueRejected>(), await ExpectMsgAsync<EnqueueRejected>() };
        Assert.All(rejected, r => Assert.Equal(RejectReason.Draining, r.Reason));

        // A queue that drained says so: what waits, and whatever comes later, is answered closed at once.
        producer.Tell(new Produce("c", 3));
        producer.Tell(new Drained("q"), queue.Ref);
        Assert.Equal(RejectReason.QueueStopped, (await ExpectMsgAsync<EnqueueRejected>()).Reason);
        producer.Tell(new Produce("d", 4));
        var late = await ExpectMsgAsync<EnqueueRejected>();
        Assert.Equal((4, RejectReason.QueueStopped), (late.CorrelationId, late.Reason));
    }

    [Fact]
    public async Task Producer_whose_queue_terminates_and_never_comes_back_answers_every_produce_closed()
    {
        var queue = CreateTestProbe();
        var producer = Sys.ActorOf(ProducerActor.Props(queue.Ref, "p", Fast with { ReattachTimeout = TimeSpan.FromMilliseconds(500) }));
        await queue.ExpectMsgAsync<RegisterProducer>();
        producer.Tell(new Produce("waiting", 1));
        queue.Ref.Tell(PoisonPill.Instance);
        var rejected = await ExpectMsgAsync<EnqueueRejected>(TimeSpan.FromSeconds(5));
        Assert.Equal((1, RejectReason.QueueStopped), (rejected.CorrelationId, rejected.Reason));
        producer.Tell(new Produce("late", 2));
        var late = await ExpectMsgAsync<EnqueueRejected>();
        Assert.Equal((2, RejectReason.QueueStopped), (late.CorrelationId, late.Reason));
    }

    [Fact]
    public async Task Producer_must_move_every_message_through_a_real_queue_within_credit()
    {
        var queue = Sys.ActorOf(QueueActor.Props("q", Specs.Queue(capacity: 20)));
        var producer = Sys.ActorOf(ProducerActor.Props(queue, "p", Fast with { BufferSize = 500 }));
        var consumer = CreateTestProbe();
        await consumer.PullAsync(queue, 500);
        for (var i = 0; i < 300; i++) producer.Tell(new Produce(i, i));
        var received = new List<Delivery>();
        while (received.Count < 300)
        {
            var batch = await consumer.ExpectMsgAsync<DeliveryBatch>();
            received.AddRange(batch.ToArray());
            queue.Tell(new AckBatch(batch.ToArray().Select(d => d.DeliveryId).ToArray()), consumer);
        }
        Assert.Equal(Enumerable.Range(0, 300), received.Select(d => (int)d.Message));
        for (var i = 0; i < 300; i++) Assert.Equal(i, (await ExpectMsgAsync<EnqueueAccepted>()).CorrelationId);
        Assert.Equal(0, (await queue.StatsAsync()).Rejected);
    }
}
