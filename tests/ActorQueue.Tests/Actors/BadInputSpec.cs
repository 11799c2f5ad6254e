using ActorQueue.Protocol;
using ActorQueue.Tests.Support;
using Akka.Actor;
using Akka.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace ActorQueue.Tests.Actors;

/// <summary>
/// Each kind of bad input gets a clear reply, is counted, and leaves the queue working with nothing it had
/// accepted lost (every test ends by moving the held message through).
/// </summary>
public class BadInputSpec : Akka.TestKit.Xunit2.TestKit
{
    private readonly IActorRef _queue;
    private readonly TestProbe _consumer;

    public BadInputSpec(ITestOutputHelper output) : base(Specs.Hocon, output: output)
    {
        _queue = Sys.ActorOf(QueueActor.Props("q", Specs.Queue()));
        _consumer = CreateTestProbe();
    }

    private async Task<Delivery> HeldDeliveryAsync()
    {
        _queue.Tell(new Enqueue("precious", 1));
        await ExpectMsgAsync(new EnqueueAccepted(1));
        await _consumer.PullAsync(_queue, 1);
        return (await _consumer.ExpectMsgAsync<DeliveryBatch>()).ToArray().Single();
    }

    private async Task QueueStillWorksAsync(long expectedInvalid, long expectedRejected = 0)
    {
        _queue.Tell(new Enqueue("after", 99));
        await ExpectMsgAsync(new EnqueueAccepted(99));
        var stats = await _queue.StatsAsync();
        Assert.Equal((expectedInvalid, expectedRejected), (stats.Invalid, stats.Rejected));
        Assert.Equal(stats.Enqueued, stats.Held + stats.Acked);
    }

    [Fact]
    public void Null_message_is_refused_by_the_constructor()
    {
        Assert.Equal("Message", Assert.Throws<ArgumentNullException>(() => new Enqueue(null!)).ParamName);
        Assert.Throws<ArgumentNullException>(() => new SequencedMessage("p", 1, null!));
        Assert.Throws<ArgumentNullException>(() => new Produce(null!));
    }

    [Fact]
    public async Task Null_message_that_gets_through_is_rejected_as_invalid()
    {
        _queue.Tell(new Enqueue("x", 5) with { Message = null! });
        var rejected = await ExpectMsgAsync<EnqueueRejected>();
        Assert.Equal((5, RejectReason.InvalidMessage), (rejected.CorrelationId, rejected.Reason));
        await QueueStillWorksAsync(expectedInvalid: 0, expectedRejected: 1);
    }

    [Fact]
    public async Task Ack_of_an_unknown_delivery_id_is_refused()
    {
        var held = await HeldDeliveryAsync();
        _queue.Tell(new Ack(424242), _consumer);
        Assert.Equal(new SettleRejected(424242, SettleError.UnknownDelivery), await _consumer.ExpectMsgAsync<SettleRejected>());
        _queue.Tell(new Ack(held.DeliveryId), _consumer);
        await QueueStillWorksAsync(expectedInvalid: 1);
    }

    [Fact]
    public async Task Duplicate_ack_is_refused_as_already_settled()
    {
        var held = await HeldDeliveryAsync();
        _queue.Tell(new Ack(held.DeliveryId), _consumer);
        _queue.Tell(new Ack(held.DeliveryId), _consumer);
        Assert.Equal(SettleError.AlreadySettled, (await _consumer.ExpectMsgAsync<SettleRejected>()).Error);
        await QueueStillWorksAsync(expectedInvalid: 1);
        Assert.Equal(1, (await _queue.StatsAsync()).Acked);
    }

    [Fact]
    public async Task Ack_or_nack_from_a_consumer_that_does_not_hold_the_delivery_is_refused()
    {
        var held = await HeldDeliveryAsync();
        var intruder = CreateTestProbe();
        _queue.Tell(new Ack(held.DeliveryId), intruder);
        Assert.Equal(SettleError.NotHolder, (await intruder.ExpectMsgAsync<SettleRejected>()).Error);
        _queue.Tell(new Nack(held.DeliveryId), intruder);
        Assert.Equal(SettleError.NotHolder, (await intruder.ExpectMsgAsync<SettleRejected>()).Error);
        Assert.Equal(1, (await _queue.StatsAsync()).InFlight);
        _queue.Tell(new Ack(held.DeliveryId), _consumer);
        await QueueStillWorksAsync(expectedInvalid: 2);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    public async Task Pull_of_zero_or_a_negative_window_is_refused(int count)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new Pull(count));
        _queue.Tell(new Pull(1) with { Window = count }, _consumer);
        var invalid = await _consumer.ExpectMsgAsync<InvalidRequest>();
        Assert.Contains($"not {count}", invalid.Reason);
        await QueueStillWorksAsync(expectedInvalid: 1);
        Assert.Equal(0, (await _queue.StatsAsync()).Consumers);
    }

    [Fact]
    public async Task Enqueue_from_an_unregistered_producer_is_rejected()
    {
        _queue.Tell(new SequencedMessage("stranger", 1, "x"));
        var rejected = await ExpectMsgAsync<SequenceRejected>();
        Assert.Equal(RejectReason.NotRegistered, rejected.Reason);
        Assert.Contains("stranger", rejected.Detail);
        await QueueStillWorksAsync(expectedInvalid: 0, expectedRejected: 1);
    }

    [Fact]
    public async Task Messages_with_missing_fields_are_refused_as_invalid()
    {
        _queue.Tell(new RegisterProducer("p") with { ProducerId = null! });
        Assert.Contains("producer id", (await ExpectMsgAsync<InvalidRequest>()).Reason);
        _queue.Tell(new SequencedMessage("p", 1, "x") with { ProducerId = "" });
        Assert.Contains("producer id", (await ExpectMsgAsync<InvalidRequest>()).Reason);
        _queue.Tell(new AckBatch(new long[] { 1 }) with { DeliveryIds = null! });
        Assert.Contains("delivery ids", (await ExpectMsgAsync<InvalidRequest>()).Reason);
        _queue.Tell(new SequencedBatch("p", 1, ["x"]) with { Messages = [] });
        Assert.Contains("at least one message", (await ExpectMsgAsync<InvalidRequest>()).Reason);
        await QueueStillWorksAsync(expectedInvalid: 4);
    }

    [Fact]
    public void Batches_and_ranges_that_make_no_sense_are_refused_by_their_constructors()
    {
        Assert.Throws<ArgumentException>(() => new SequencedBatch("p", 1, []));
        Assert.Throws<ArgumentNullException>(() => new SequencedBatch("p", 1, null!));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SequencedBatch("p", 0, ["x"]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new AckRange(5, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => new AckRange(1, 1 + AckRange.MaxLength));
        Assert.Throws<ArgumentException>(() => new DeliveryBatch(1, ["a", "b"], [1]));
    }

    [Fact]
    public async Task Ack_range_that_runs_backwards_or_too_far_is_refused_without_touching_the_queue()
    {
        var held = await HeldDeliveryAsync();
        _queue.Tell(new AckRange(1, 1) with { ToDeliveryId = long.MaxValue }, _consumer);
        Assert.Contains("at most", (await _consumer.ExpectMsgAsync<InvalidRequest>()).Reason);
        _queue.Tell(new AckRange(1, 1) with { FromDeliveryId = 2 }, _consumer);
        Assert.Contains("run forward", (await _consumer.ExpectMsgAsync<InvalidRequest>()).Reason);
        Assert.Equal(1, (await _queue.StatsAsync()).InFlight);
        _queue.Tell(new AckRange(held.DeliveryId, held.DeliveryId), _consumer);
        await QueueStillWorksAsync(expectedInvalid: 2);
    }

    [Fact]
    public async Task Ack_range_over_deliveries_the_consumer_does_not_hold_settles_only_its_own()
    {
        var held = await HeldDeliveryAsync();
        // The range covers the held delivery and two ids never delivered.
        _queue.Tell(new AckRange(held.DeliveryId, held.DeliveryId + 2), _consumer);
        // The ids never delivered are refused together, in one answer.
        Assert.Equal(new SettleRejected(held.DeliveryId + 1, SettleError.UnknownDelivery, 2), await _consumer.ExpectMsgAsync<SettleRejected>());
        await _consumer.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(100));
        Assert.Equal(1, (await _queue.StatsAsync()).Acked);
        await QueueStillWorksAsync(expectedInvalid: 1);
    }

    [Fact]
    public async Task Nack_with_an_enormous_delay_is_capped_rather_than_overflowing()
    {
        var held = await HeldDeliveryAsync();
        _queue.Tell(new Nack(held.DeliveryId, TimeSpan.MaxValue, "later"), _consumer);
        await AwaitAssertAsync(async () => Assert.Equal(1, (await _queue.StatsAsync()).Delayed));
        await QueueStillWorksAsync(expectedInvalid: 0);
    }

    [Fact]
    public async Task Reply_sent_back_to_the_queue_is_ignored_instead_of_answered()
    {
        _queue.Tell(GetStats.Instance, _queue); // its QueueStats comes back to itself
        await _queue.StatsAsync();
        Assert.Equal(1, (await _queue.StatsAsync()).Invalid);
        Assert.Equal(1, (await _queue.StatsAsync()).Invalid); // no echo loop
        await QueueStillWorksAsync(expectedInvalid: 1);
    }

    [Fact]
    public async Task Unknown_message_is_answered_and_counted()
    {
        _queue.Tell(new { Hello = "queue" });
        var invalid = await ExpectMsgAsync<InvalidRequest>();
        Assert.Contains("does not understand", invalid.Reason);
        await QueueStillWorksAsync(expectedInvalid: 1);
    }

    [Fact]
    public async Task Handler_that_throws_hangs_or_faults_never_loses_the_message()
    {
        var attempts = 0;
        var handler = QueueHandler.From(async (d, ct) =>
        {
            switch (Interlocked.Increment(ref attempts))
            {
                case 1: throw new InvalidOperationException("thrown");
                case 2: await Task.Delay(Timeout.Infinite, ct); break;
                case 3: await Task.FromException(new InvalidOperationException("faulted")); break;
            }
        });
        var consumer = Sys.ActorOf(ConsumerActor.Props(_queue, handler, new ConsumerSettings { HandlerTimeout = TimeSpan.FromMilliseconds(200) }));
        _queue.Tell(new Enqueue("survivor", 1));
        await ExpectMsgAsync(new EnqueueAccepted(1));
        await AwaitAssertAsync(async () => Assert.Equal(1, (await _queue.StatsAsync()).Acked), TimeSpan.FromSeconds(5));
        var stats = await _queue.StatsAsync();
        Assert.Equal((4, 3, 0), (attempts, (int)stats.Nacked, stats.Dead));
        Sys.Stop(consumer);
    }

    /// <summary>
    /// Every command with a field out of its range, built past its constructor's check (as `with` or a deserializer can):
    /// the answer names what is wrong, the refusal is counted, and the message the queue holds is neither settled nor lost.
    /// </summary>
    [Fact]
    public async Task Every_command_with_a_field_out_of_range_is_answered_and_changes_nothing_the_queue_holds()
    {
        var held = await HeldDeliveryAsync();
        var producer = CreateTestProbe();
        _queue.Tell(new RegisterProducer("p", 5), producer); // at most 5 reserved: the queue of 10 keeps room for QueueStillWorksAsync
        await producer.ExpectMsgAsync<ProducerCredit>();
        var stranger = CreateTestProbe();

        async Task Invalid(object command, TestProbe from, string says)
        {
            _queue.Tell(command, from);
            var answer = await from.ExpectMsgAsync<InvalidRequest>();
            Assert.Contains(says, answer.Reason);
            Assert.Same(command, answer.Request);
        }

        async Task Refused(object command, TestProbe from, SettleError error)
        {
            _queue.Tell(command, from);
            Assert.Equal(error, (await from.ExpectMsgAsync<SettleRejected>()).Error);
        }

        await Invalid(new SequencedMessage("p", 1, "x") with { SeqNr = 0 }, producer, "at least 1, not 0");
        await Invalid(new SequencedMessage("p", 1, "x") with { SeqNr = -3 }, producer, "not -3");
        await Invalid(new SequencedBatch("p", 1, ["x"]) with { FirstSeqNr = -1 }, producer, "first sequence number of at least 1");
        await Invalid(new SequencedBatch("p", 1, ["x"]) with { Messages = null! }, producer, "at least one message");
        await Invalid(new RequestCredit("p", 5) with { UpToSeqNr = -1 }, producer, "at least 0, not -1");
        await Invalid(new RequestCredit("p", 5) with { ProducerId = "" }, producer, "producer id");
        await Invalid(new RegisterProducer("q") with { ProducerId = "" }, stranger, "producer id");
        await Invalid(new RegisterProducer("q") with { Demand = -1 }, stranger, "demand of at least 0");
        await Invalid(new Nack(held.DeliveryId) with { Delay = TimeSpan.FromSeconds(-1) }, _consumer, "must not be negative");
        await Invalid(new Return([held.DeliveryId]) with { DeliveryIds = null! }, _consumer, "delivery ids");
        await Invalid(new Return([held.DeliveryId]) with { DeliveryIds = new long[Return.MaxLength + 1] }, _consumer, $"{Return.MaxLength} delivery ids");
        await Invalid(new Pull(1) with { Window = int.MinValue }, _consumer, $"not {int.MinValue}");

        await Refused(new Ack(0), _consumer, SettleError.UnknownDelivery);
        await Refused(new Ack(-1), _consumer, SettleError.UnknownDelivery);
        await Refused(new Ack(long.MaxValue), _consumer, SettleError.UnknownDelivery);
        await Refused(new Nack(0, TimeSpan.Zero), _consumer, SettleError.UnknownDelivery);
        await Refused(new InProgress(-7), _consumer, SettleError.UnknownDelivery);
        await Refused(new InProgress(held.DeliveryId), stranger, SettleError.NotHolder);
        await Refused(new Return([long.MinValue]), _consumer, SettleError.UnknownDelivery);
        await Refused(new AckBatch([0, -1]), _consumer, SettleError.UnknownDelivery);
        Assert.Equal(SettleError.UnknownDelivery, (await _consumer.ExpectMsgAsync<SettleRejected>()).Error); // the batch's second id

        // Lookups with ids that were never given out answer plainly.
        _queue.Tell(new RedriveDeadLetter(-1), stranger);
        Assert.Equal(0, (await stranger.ExpectMsgAsync<Redriven>()).Count);
        _queue.Tell(new GetDeadLetters(1) with { Max = int.MinValue }, stranger);
        Assert.Empty((await stranger.ExpectMsgAsync<DeadLetterList>()).Items);
        _queue.Tell(new AckBatch([]), _consumer); // nothing to settle: nothing to say
        await _consumer.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(100));

        // All of that left the held delivery held, and the producer's numbering where it was.
        var stats = await _queue.StatsAsync();
        Assert.Equal((1, 0L, 0L, 0), (stats.InFlight, stats.Acked, stats.Nacked, stats.Dead));
        _queue.Tell(new SequencedMessage("p", 1, "first"), producer);
        Assert.Equal(1, (await producer.FishForMessageAsync<ProducerCredit>(c => c is ProducerCredit { AcceptedSeqNr: 1 })).AcceptedSeqNr);
        _queue.Tell(new Ack(held.DeliveryId), _consumer);
        await QueueStillWorksAsync(expectedInvalid: 21);
    }

    /// <summary>A payload whose Equals, GetHashCode and ToString all throw, as a careless user type may.</summary>
    private sealed class Hostile(int n)
    {
        public int N { get; } = n;
        public override bool Equals(object? obj) => throw new InvalidOperationException("Equals of a hostile payload");
        public override int GetHashCode() => throw new InvalidOperationException("GetHashCode of a hostile payload");
        public override string ToString() => throw new InvalidOperationException("ToString of a hostile payload");
    }

    [Fact]
    public async Task A_payload_whose_Equals_GetHashCode_and_ToString_throw_travels_every_path_untouched()
    {
        // Enqueued, evicted by drop-oldest (published as MessageDropped), handled by a consumer
        // actor, failed into the dead-letter store, listed, redriven and handled again: the queue never calls them.
        var queue = Sys.ActorOf(QueueActor.Props("hostile", Specs.Queue(capacity: 2, mode: FullMode.DropOldest) with { MaxAttempts = 2 }));
        var drops = CreateTestProbe();
        Sys.EventStream.Subscribe(drops.Ref, typeof(MessageDropped));
        var first = new Hostile(1);
        queue.Tell(new Enqueue(first, 1));
        queue.Tell(new Enqueue(new Hostile(2), 2));
        queue.Tell(new Enqueue(new Hostile(3), 3));
        for (var i = 1; i <= 3; i++) await ExpectMsgAsync<EnqueueAccepted>();
        Assert.Same(first, (await drops.ExpectMsgAsync<MessageDropped>()).Message);

        var handled = new System.Collections.Concurrent.ConcurrentQueue<int>();
        var redriven = 0;
        var handler = QueueHandler.From((d, _) =>
        {
            var h = (Hostile)d.Message;
            // Message 2 fails until it is redriven; the others go through.
            if (h.N == 2 && Volatile.Read(ref redriven) == 0) throw new InvalidOperationException("not yet");
            handled.Enqueue(h.N);
            return Task.CompletedTask;
        });
        var consumer = Sys.ActorOf(ConsumerActor.Props(queue, handler, new ConsumerSettings()));
        await AwaitAssertAsync(async () => Assert.Equal(1, (await queue.StatsAsync()).Dead), TimeSpan.FromSeconds(5));
        queue.Tell(new GetDeadLetters());
        var dead = Assert.Single((await ExpectMsgAsync<DeadLetterList>()).Items);
        Assert.Equal(2, ((Hostile)dead.Message).N);
        Volatile.Write(ref redriven, 1);
        queue.Tell(new RedriveDeadLetter(dead.MessageId));
        Assert.Equal(1, (await ExpectMsgAsync<Redriven>()).Count);
        await AwaitAssertAsync(() => Assert.Equal(new[] { 2, 3 }, handled.Order()), TimeSpan.FromSeconds(5));
        // The consumer's ack of the redriven message follows its handler.
        await AwaitAssertAsync(async () =>
        {
            var stats = await queue.StatsAsync();
            Assert.Equal((0, 0, 2L), (stats.Held, stats.Dead, stats.Acked));
        }, TimeSpan.FromSeconds(5));
        Sys.Stop(consumer);
    }

    [Fact]
    public async Task A_handler_that_returns_a_cancelled_task_or_throws_its_own_cancellation_is_nacked_and_retried()
    {
        // Neither is success: the consumer nacks each, saying the handler was cancelled, and the queue retries the message.
        var calls = 0;
        var handler = QueueHandler.From((_, _) => Interlocked.Increment(ref calls) switch
        {
            1 => Task.FromCanceled(new CancellationToken(canceled: true)),
            2 => throw new OperationCanceledException("the handler gave up by itself"),
            _ => Task.CompletedTask,
        });
        var queue = Sys.ActorOf(QueueActor.Props("cancelled", Specs.Queue() with { RetryMinBackoff = TimeSpan.FromMilliseconds(10), RetryMaxBackoff = TimeSpan.FromMilliseconds(10) }));
        var consumer = Sys.ActorOf(ConsumerActor.Props(queue, handler, new ConsumerSettings()));
        queue.Tell(new Enqueue("work", 1));
        await ExpectMsgAsync(new EnqueueAccepted(1));
        await AwaitAssertAsync(async () => Assert.Equal(1, (await queue.StatsAsync()).Acked), TimeSpan.FromSeconds(5));
        var stats = await queue.StatsAsync();
        Assert.Equal((3, 2L, 0), (Volatile.Read(ref calls), stats.Nacked, stats.Dead));
        Sys.Stop(consumer);
    }
}
