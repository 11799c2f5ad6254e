using ActorQueue.Core;
using ActorQueue.Protocol;
using Xunit;

namespace ActorQueue.Tests.Core;

/// <summary>
/// The queue's decisions without an actor: registrations, refusals, the replies parked messages get and the order of a
/// burst's effects, as the <see cref="QueueMachine"/> hands them to its host.
/// </summary>
public class QueueMachineSpec
{
    private static readonly TimeSpan Now = TimeSpan.FromDays(20_000);

    private sealed class Effects : IQueueEffects
    {
        public readonly List<string> Log = new();
        public readonly List<(object To, object Message)> Sent = new();
        public int Flushes;
        public bool Stopped;

        public bool Send(object to, object message)
        {
            Sent.Add((to, message));
            Log.Add($"send {to} {message.GetType().Name}");
            return true;
        }

        public void Watch(object actor) => Log.Add($"watch {actor}");
        public void Unwatch(object actor) => Log.Add($"unwatch {actor}");
        public void RequestFlush() => Flushes++;
        public void Dropped(QueuedMessage evicted) => Log.Add($"dropped {evicted.MessageId}");
        public void Stop()
        {
            Stopped = true;
            Log.Add("stop");
        }

        void IQueueEffects.Log(int level, string line) { }

        public IEnumerable<T> To<T>(object to) => Sent.Where(s => s.To.Equals(to)).Select(s => s.Message).OfType<T>();

        public void Clear()
        {
            Log.Clear();
            Sent.Clear();
        }
    }

    private static QueueMachine Machine(QueueSettings? settings = null, long firstDeliveryId = 1) =>
        new("q", new QueueState(settings ?? new QueueSettings { Capacity = 4, FullMode = FullMode.Wait }, firstDeliveryId: firstDeliveryId));

    [Fact]
    public void A_first_pull_registers_and_watches_the_consumer_and_only_a_pull_naming_another_epoch_hears_it_again()
    {
        var m = Machine(firstDeliveryId: 77);
        var fx = new Effects();
        m.Receive(new Pull(2), "c1", Now, fx);
        Assert.Equal(new[] { "watch c1", "send c1 ConsumerRegistered" }, fx.Log);
        Assert.Equal(77, fx.To<ConsumerRegistered>("c1").Single().Epoch);
        fx.Clear();
        m.Receive(new Pull(3, 77), "c1", Now, fx);
        Assert.Empty(fx.Log);
        m.Receive(new Pull(3, 0), "c1", Now, fx); // its registration was lost
        Assert.Equal(new[] { "send c1 ConsumerRegistered" }, fx.Log);
        Assert.Equal(1, m.State.ConsumerCount);
    }

    [Fact]
    public void A_draining_queue_refuses_enqueues_and_credit_and_tells_a_producer_registering_with_work()
    {
        var m = Machine();
        var fx = new Effects();
        m.Receive(new RegisterProducer("p", 0), "producer", Now, fx);
        m.Receive(Drain.Instance, "operator", Now, fx);
        fx.Clear();
        m.Receive(new Enqueue("late", 7), "caller", Now, fx);
        Assert.Equal(RejectReason.Draining, fx.To<EnqueueRejected>("caller").Single().Reason);
        m.Receive(new RequestCredit("p", 5), "producer", Now, fx);
        Assert.Equal(RejectReason.Draining, fx.To<SequenceRejected>("producer").Single().Reason);
        m.Receive(new RegisterProducer("p2", 3), "producer2", Now, fx);
        Assert.Equal((1, RejectReason.Draining), (fx.To<SequenceRejected>("producer2").Single().SeqNr, fx.To<SequenceRejected>("producer2").Single().Reason));
    }

    [Fact]
    public void Parked_messages_are_answered_as_their_senders_expect_when_they_time_out_or_the_queue_stops()
    {
        var m = Machine(new QueueSettings { Capacity = 2, FullMode = FullMode.Wait, FullWaitTimeout = TimeSpan.FromSeconds(1) });
        var fx = new Effects();
        m.Receive(new Enqueue("fills", 1), "a", Now, fx);
        m.Receive(new Enqueue("fills too", 0), "a", Now, fx);
        m.Receive(new Enqueue("waits", 2), "b", Now, fx);
        m.Receive(new RegisterProducer("p"), "producer", Now, fx);
        m.Receive(new SequencedMessage("p", 1, "beyond credit"), "producer", Now, fx);
        fx.Clear();
        // A plain enqueue hears EnqueueRejected; a producer's numbered message, SequenceRejected with its number.
        m.Tick(Now + TimeSpan.FromSeconds(2), fx);
        Assert.Equal((2, RejectReason.WaitTimedOut), (fx.To<EnqueueRejected>("b").Single().CorrelationId, fx.To<EnqueueRejected>("b").Single().Reason));
        Assert.Equal((1, RejectReason.WaitTimedOut), (fx.To<SequenceRejected>("producer").Single().SeqNr, fx.To<SequenceRejected>("producer").Single().Reason));

        m.Receive(new Enqueue("waits again", 3), "b", Now + TimeSpan.FromSeconds(2), fx);
        m.Stopped(fx);
        Assert.Equal(RejectReason.QueueStopped, fx.To<EnqueueRejected>("b").Last().Reason);
    }

    [Fact]
    public void A_burst_ends_in_a_fixed_order_parked_replies_then_credit_then_deliveries_and_a_drained_queue_tells_everyone_then_stops()
    {
        var m = Machine(new QueueSettings { Capacity = 1, FullMode = FullMode.Wait });
        var fx = new Effects();
        m.Receive(new Enqueue("first", 1), "a", Now, fx);
        m.Receive(new Enqueue("parked", 2), "b", Now, fx);
        m.Receive(new RegisterProducer("p", 0), "producer", Now, fx);
        m.Receive(new Pull(1), "consumer", Now, fx);
        m.Flush(Now, fx);
        var first = fx.To<DeliveryBatch>("consumer").Single();
        m.Receive(new Ack(first.FirstDeliveryId), "consumer", Now, fx);
        fx.Clear();
        m.Flush(Now, fx);
        // Room freed: the parked message is accepted and answered before anything is delivered.
        Assert.Equal(new[] { "send b EnqueueAccepted", "send consumer DeliveryBatch" }, fx.Log);

        m.Receive(Drain.Instance, "operator", Now, fx);
        m.Receive(new Ack(fx.To<DeliveryBatch>("consumer").Single().FirstDeliveryId), "consumer", Now, fx);
        fx.Clear();
        m.Flush(Now, fx);
        Assert.Equal(new[] { "send operator Drained", "send consumer Drained", "send producer Drained", "stop" }, fx.Log);
    }

    [Fact]
    public void A_consumer_that_cannot_be_sent_to_is_dropped_and_its_batch_goes_back_uncounted()
    {
        var m = Machine();
        var failing = new FailingEffects();
        m.Receive(new Enqueue("x", 1), "a", Now, failing);
        m.Receive(new Pull(1), "broken", Now, failing);
        m.Flush(Now, failing);
        Assert.Equal(0, m.State.ConsumerCount);
        Assert.Contains("unwatch broken", failing.Log);
        var fx = new Effects();
        m.Receive(new Pull(1), "good", Now, fx);
        m.Flush(Now, fx);
        var batch = fx.To<DeliveryBatch>("good").Single();
        Assert.Equal(("x", 1), (batch[0].Message, batch[0].Attempt));
    }

    // Deliveries to "broken" fail; everything else is recorded.
    private sealed class FailingEffects : IQueueEffects
    {
        public readonly List<string> Log = new();
        public bool Send(object to, object message) => !(to.Equals("broken") && message is DeliveryBatch);
        public void Watch(object actor) => Log.Add($"watch {actor}");
        public void Unwatch(object actor) => Log.Add($"unwatch {actor}");
        public void RequestFlush() { }
        public void Dropped(QueuedMessage evicted) { }
        public void Stop() { }
        void IQueueEffects.Log(int level, string line) { }
    }
}
