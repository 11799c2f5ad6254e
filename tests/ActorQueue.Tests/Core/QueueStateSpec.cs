using ActorQueue.Core;
using ActorQueue.Protocol;
using Xunit;

namespace ActorQueue.Tests.Core;

public class QueueStateSpec
{
    private static QueueSettings Settings(int capacity = 10, FullMode mode = FullMode.Reject, int maxAttempts = 5) => new()
    {
        Capacity = capacity, FullMode = mode, MaxAttempts = maxAttempts, RetryRandomFactor = 0,
        AckTimeout = TimeSpan.FromSeconds(30), FullWaitTimeout = TimeSpan.FromSeconds(5),
    };

    public static TheoryData<int> Capacities => new() { 1, 10, 1000 };

    [Theory]
    [MemberData(nameof(Capacities))]
    public void Enqueue_accepts_up_to_capacity_then_applies_the_full_mode(int capacity)
    {
        var h = new CoreHarness(Settings(capacity));
        h.EnqueueMany(capacity);
        var r = h.Enqueue("one too many");
        Assert.Equal(EnqueueStatus.Rejected, r.Status);
        Assert.Equal(RejectReason.QueueFull, r.Reason);
        Assert.Equal(capacity, h.State.Held);
        Assert.Equal(1, h.State.Counters.Rejected);
        h.State.CheckInvariants();
    }

    [Fact]
    public void Dispatch_delivers_in_fifo_order_with_attempt_one()
    {
        var h = new CoreHarness(Settings());
        h.EnqueueMany(5);
        var c = h.Consumer(5);
        var delivered = h.Dispatch();
        Assert.Equal(new[] { "m0", "m1", "m2", "m3", "m4" }, delivered.Select(d => (string)d.Delivery.Message));
        Assert.All(delivered, d => Assert.Equal(1, d.Delivery.Attempt));
        Assert.All(delivered, d => Assert.Equal(c, d.Consumer));
        Assert.Equal(5, h.State.InFlightCount);
        Assert.Equal(0, h.State.ReadyCount);
    }

    [Fact]
    public void Dispatch_respects_demand_and_spreads_work_over_competing_consumers()
    {
        var h = new CoreHarness(Settings(capacity: 20));
        h.EnqueueMany(9);
        var a = h.Consumer(3);
        var b = h.Consumer(10);
        var delivered = h.Dispatch();
        Assert.Equal(9, delivered.Count);
        Assert.Equal(3, delivered.Count(d => d.Consumer == a));
        Assert.Equal(6, delivered.Count(d => d.Consumer == b));
        h.EnqueueMany(2, "x");
        var more = h.Dispatch();
        Assert.All(more, d => Assert.Equal(b, d.Consumer)); // a has no demand left
        h.State.CheckInvariants();
    }

    [Fact]
    public void Pull_of_zero_or_less_or_from_an_unknown_consumer_changes_nothing()
    {
        var h = new CoreHarness(Settings());
        var c = h.Consumer(0);
        Assert.False(h.State.Pull(c, 0));
        Assert.False(h.State.Pull(c, -3));
        Assert.False(h.State.Pull(999, 1));
        h.EnqueueMany(1);
        Assert.Empty(h.Dispatch());
    }

    [Fact]
    public void Ack_forgets_the_message_and_frees_capacity()
    {
        var h = new CoreHarness(Settings(capacity: 1));
        h.EnqueueMany(1);
        var c = h.Consumer(1);
        var d = h.Dispatch().Single().Delivery;
        Assert.Equal(EnqueueStatus.Rejected, h.Enqueue("full").Status);
        Assert.Null(h.State.Ack(c, d.DeliveryId));
        Assert.Equal(0, h.State.Held);
        Assert.Equal(EnqueueStatus.Accepted, h.Enqueue("room again").Status);
        Assert.Equal(1, h.State.Counters.Acked);
    }

    [Fact]
    public void Ack_of_unknown_settled_or_foreign_delivery_is_refused_with_the_reason()
    {
        var h = new CoreHarness(Settings());
        h.EnqueueMany(1);
        var a = h.Consumer(1);
        var b = h.Consumer(1);
        var d = h.Dispatch().Single();
        var other = d.Consumer == a ? b : a;
        Assert.Equal(SettleError.NotHolder, h.State.Ack(other, d.Delivery.DeliveryId));
        Assert.Equal(SettleError.UnknownDelivery, h.State.Ack(d.Consumer, 12345));
        Assert.Null(h.State.Ack(d.Consumer, d.Delivery.DeliveryId));
        Assert.Equal(SettleError.AlreadySettled, h.State.Ack(d.Consumer, d.Delivery.DeliveryId));
        Assert.Equal(SettleError.AlreadySettled, h.State.Nack(d.Consumer, d.Delivery.DeliveryId, null, null, h.Now, out _));
        Assert.Equal(1, h.State.Counters.Acked);
    }

    [Fact]
    public void Nack_with_a_delay_holds_the_message_until_due_then_redelivers_it_ahead_of_new_work()
    {
        var h = new CoreHarness(Settings());
        h.EnqueueMany(1, "first");
        var c = h.Consumer(1);
        var d = h.Dispatch().Single().Delivery;
        h.EnqueueMany(3, "new");
        Assert.Null(h.State.Nack(c, d.DeliveryId, TimeSpan.FromSeconds(2), "busy", h.Now, out var outcome));
        Assert.Equal(NackOutcome.Delayed, outcome);
        Assert.Equal(1, h.State.DelayedCount);
        Assert.Equal(4, h.State.Held);

        h.Tick(TimeSpan.FromSeconds(1));
        Assert.Equal(1, h.State.DelayedCount);
        h.Tick(TimeSpan.FromSeconds(1));
        Assert.Equal(0, h.State.DelayedCount);

        h.State.Pull(c, 1);
        var redelivered = h.Dispatch().Single().Delivery;
        Assert.Equal("first0", redelivered.Message);
        Assert.Equal(2, redelivered.Attempt);
        Assert.NotEqual(d.DeliveryId, redelivered.DeliveryId);
        Assert.Equal(1, h.State.Counters.Redelivered);
    }

    [Fact]
    public void Nack_without_delay_backs_off_exponentially_up_to_the_maximum()
    {
        var h = new CoreHarness(Settings() with { RetryMinBackoff = TimeSpan.FromMilliseconds(100), RetryMaxBackoff = TimeSpan.FromMilliseconds(500) });
        Assert.Equal(TimeSpan.FromMilliseconds(100), h.State.Backoff(1));
        Assert.Equal(TimeSpan.FromMilliseconds(200), h.State.Backoff(2));
        Assert.Equal(TimeSpan.FromMilliseconds(400), h.State.Backoff(3));
        Assert.Equal(TimeSpan.FromMilliseconds(500), h.State.Backoff(4));
        Assert.Equal(TimeSpan.FromMilliseconds(500), h.State.Backoff(60));
    }

    [Fact]
    public void Backoff_jitter_stays_within_the_random_factor_and_varies()
    {
        var h = new CoreHarness(Settings() with { RetryMinBackoff = TimeSpan.FromSeconds(1), RetryRandomFactor = 0.2 });
        var samples = Enumerable.Range(0, 200).Select(_ => h.State.Backoff(1)).ToList();
        Assert.All(samples, s => Assert.InRange(s, TimeSpan.FromMilliseconds(800), TimeSpan.FromMilliseconds(1200)));
        Assert.True(samples.Distinct().Count() > 10, "jitter should spread retries");
    }

    [Fact]
    public void Message_goes_to_the_dead_letter_store_after_max_attempts_with_the_reason()
    {
        var h = new CoreHarness(Settings(maxAttempts: 3));
        h.EnqueueMany(1, "poison");
        var c = h.Consumer(10);
        for (var attempt = 1; attempt <= 3; attempt++)
        {
            var d = h.Dispatch().Single().Delivery;
            Assert.Equal(attempt, d.Attempt);
            Assert.Null(h.State.Nack(c, d.DeliveryId, TimeSpan.Zero, "bad payload", h.Now, out var outcome));
            Assert.Equal(attempt < 3 ? NackOutcome.Requeued : NackOutcome.DeadLettered, outcome);
        }
        Assert.Equal(0, h.State.Held);
        var dead = new List<DeadEntry>();
        h.State.CopyDeadLetters(10, dead);
        var entry = Assert.Single(dead);
        Assert.Equal("poison0", entry.Message.Message);
        Assert.Equal(3, entry.Message.Attempts);
        Assert.Contains("bad payload", entry.Reason);
        Assert.Equal(1, h.State.Counters.DeadLettered);
    }

    [Fact]
    public void Consumer_lost_returns_its_deliveries_ahead_of_new_work_each_alone_with_a_higher_attempt()
    {
        var h = new CoreHarness(Settings());
        h.EnqueueMany(2, "held");
        var lost = h.Consumer(2);
        h.Dispatch();
        h.EnqueueMany(2, "new");
        Assert.Equal(2, h.State.RemoveConsumer(lost, h.Now));
        Assert.Equal(2, h.State.SuspectCount);
        var other = h.Consumer(4);
        // A suspect (it may have been running when its consumer died) goes alone to a consumer that holds nothing.
        var first = h.Dispatch();
        Assert.Equal(("held0", 2), (first.Single().Delivery.Message, first.Single().Delivery.Attempt));
        Assert.Empty(h.Dispatch());
        Assert.Null(h.State.Ack(other, first.Single().Delivery.DeliveryId));
        var second = h.Dispatch();
        Assert.Equal(("held1", 2), (second.Single().Delivery.Message, second.Single().Delivery.Attempt));
        Assert.Null(h.State.Ack(other, second.Single().Delivery.DeliveryId));
        var rest = h.Dispatch();
        Assert.Equal(new object[] { "new0", "new1" }, rest.Select(d => d.Delivery.Message));
        Assert.Equal(new[] { 1, 1 }, rest.Select(d => d.Delivery.Attempt));
        Assert.All(rest, d => Assert.Equal(other, d.Consumer));
        h.State.CheckInvariants();
    }

    [Fact]
    public void Missed_deadline_takes_the_delivery_back_unless_it_was_extended()
    {
        var h = new CoreHarness(Settings() with { AckTimeout = TimeSpan.FromSeconds(10) });
        h.EnqueueMany(2);
        var c = h.Consumer(2);
        var ds = h.Dispatch();
        h.Tick(TimeSpan.FromSeconds(6));
        Assert.Null(h.State.Extend(c, ds[1].Delivery.DeliveryId, h.Now));
        h.Tick(TimeSpan.FromSeconds(5)); // first past its deadline, second extended to 16s
        Assert.Equal(1, h.State.InFlightCount);
        Assert.Equal(1, h.State.ReadyCount);
        Assert.Equal(SettleError.AlreadySettled, h.State.Ack(c, ds[0].Delivery.DeliveryId));
        Assert.Null(h.State.Ack(c, ds[1].Delivery.DeliveryId));
        h.State.CheckInvariants();
    }

    [Fact]
    public void A_consumer_that_missed_a_deadline_gets_nothing_new_until_it_is_heard_from_again()
    {
        var h = new CoreHarness(Settings() with { AckTimeout = TimeSpan.FromSeconds(10) });
        h.EnqueueMany(2);
        var wedged = h.Consumer(2);
        Assert.All(h.Dispatch(), d => Assert.Equal(wedged, d.Consumer));
        var other = h.Consumer(2);
        h.Tick(TimeSpan.FromSeconds(11));
        Assert.Equal(2, h.Revoked.Count);
        // The wedged consumer has room again, but a consumer that let deadlines pass may still be stuck: the
        // redeliveries go to the one that is not.
        var redelivered = h.Dispatch();
        Assert.Equal(2, redelivered.Count);
        Assert.All(redelivered, d => Assert.Equal(other, d.Consumer));
        h.EnqueueMany(1, "x");
        Assert.Empty(h.Dispatch());
        h.State.CheckInvariants();
        // Any word from it (here a re-sent pull) shows it is alive: it is offered work again.
        Assert.True(h.State.Pull(wedged, 2));
        h.State.Heard(wedged);
        Assert.Equal(wedged, h.Dispatch().Single().Consumer);
        h.State.CheckInvariants();
        Assert.Equal(h.State.Describe(), h.Replay().Describe());
    }

    [Fact]
    public void Missed_deadlines_count_as_attempts_and_dead_letter_a_message_at_the_limit()
    {
        var h = new CoreHarness(Settings(maxAttempts: 2) with { AckTimeout = TimeSpan.FromSeconds(1) });
        h.EnqueueMany(1);
        var c = h.Consumer(5);
        h.Dispatch();
        h.Tick(TimeSpan.FromSeconds(2));
        h.State.Heard(c);
        Assert.Equal(2, h.Dispatch().Single().Delivery.Attempt);
        h.Tick(TimeSpan.FromSeconds(2));
        Assert.Equal(1, h.State.DeadCount);
        Assert.Equal(0, h.State.Held);
        Assert.True(h.State.HasConsumer(c));
    }

    [Theory]
    [InlineData(FullMode.DropOldest, "m0", "m1,m2,new")]
    [InlineData(FullMode.DropNewest, "m2", "m0,m1,new")]
    public void Drop_modes_evict_one_ready_message_to_accept_the_new_one(FullMode mode, string evicted, string remaining)
    {
        var h = new CoreHarness(Settings(capacity: 3, mode));
        h.EnqueueMany(3);
        var r = h.Enqueue("new");
        Assert.Equal(EnqueueStatus.Accepted, r.Status);
        Assert.Equal(evicted, r.Evicted!.Value.Message);
        Assert.Equal(3, h.State.Held);
        h.Consumer(3);
        Assert.Equal(remaining, string.Join(",", h.Dispatch().Select(d => d.Delivery.Message)));
        Assert.Equal(1, h.State.GetStats("q").Dropped);
        h.State.CheckInvariants();
    }

    [Theory]
    [InlineData(FullMode.DropOldest)]
    [InlineData(FullMode.DropNewest)]
    public void Drop_modes_reject_when_nothing_is_ready_to_evict(FullMode mode)
    {
        var h = new CoreHarness(Settings(capacity: 2, mode));
        h.EnqueueMany(2);
        h.Consumer(2);
        h.Dispatch();
        var r = h.Enqueue("new");
        Assert.Equal(EnqueueStatus.Rejected, r.Status);
        Assert.Equal(RejectReason.QueueFull, r.Reason);
    }

    [Fact]
    public void Wait_mode_parks_then_admits_in_order_as_room_frees()
    {
        var h = new CoreHarness(Settings(capacity: 2, FullMode.Wait));
        h.EnqueueMany(2);
        Assert.Equal(EnqueueStatus.Parked, h.State.Enqueue("p1", 1, "caller", h.Now).Status);
        Assert.Equal(EnqueueStatus.Parked, h.State.Enqueue("p2", 2, "caller", h.Now).Status);
        Assert.Equal(2, h.State.ParkedCount);
        var c = h.Consumer(2);
        var ds = h.Dispatch();
        h.State.Ack(c, ds[0].Delivery.DeliveryId);
        var outcomes = new List<ParkedOutcome>();
        h.State.AdmitParked(h.Now, outcomes);
        var admitted = Assert.Single(outcomes);
        Assert.True(admitted.Accepted);
        Assert.Equal(1, admitted.Parked.CorrelationId);
        Assert.Equal("caller", admitted.Parked.ReplyTo);
        Assert.Equal(1, h.State.ParkedCount);
        h.State.CheckInvariants();
    }

    [Fact]
    public void Wait_mode_rejects_parked_messages_after_the_wait_timeout_and_bounds_the_parked()
    {
        var h = new CoreHarness(Settings(capacity: 1, FullMode.Wait) with { FullWaitTimeout = TimeSpan.FromSeconds(5) });
        h.EnqueueMany(1);
        Assert.Equal(EnqueueStatus.Parked, h.Enqueue("parked").Status);
        var overflow = h.Enqueue("beyond the parking");
        Assert.Equal(EnqueueStatus.Rejected, overflow.Status);
        h.Tick(TimeSpan.FromSeconds(4));
        Assert.Empty(h.Parked);
        h.Tick(TimeSpan.FromSeconds(1));
        var rejected = Assert.Single(h.Parked);
        Assert.False(rejected.Accepted);
        Assert.Equal(RejectReason.WaitTimedOut, rejected.Reason);
        Assert.Equal(0, h.State.ParkedCount);
        Assert.Equal(2, h.State.Counters.Rejected);
    }

    [Fact]
    public void Null_message_is_rejected_as_invalid_and_counted()
    {
        var h = new CoreHarness(Settings());
        Assert.Equal(RejectReason.InvalidMessage, h.Enqueue(null!).Reason);
        h.State.RegisterProducer("p", long.MaxValue, h.Now);
        Assert.Equal(RejectReason.InvalidMessage, h.State.EnqueueSequenced("p", 1, null, null, h.Now).Reason);
        Assert.Equal(2, h.State.Counters.Rejected);
        Assert.Equal(0, h.State.Held);
    }

    [Fact]
    public void Producer_credit_is_its_fair_window_and_never_exceeds_free_capacity()
    {
        var h = new CoreHarness(Settings(capacity: 10) with { ProducerCredit = 100 });
        h.EnqueueMany(4);
        h.State.RegisterProducer("a", long.MaxValue, h.Now);
        h.State.GrantCredit(h.Now);
        var update = Assert.Single(h.CollectUpdates());
        Assert.Equal(new ProducerUpdate("a", 0, 6), update);
        Assert.Equal(0, h.State.FreeCapacity);
        h.State.RegisterProducer("b", long.MaxValue, h.Now);
        h.State.GrantCredit(h.Now);
        Assert.Equal(6, h.State.OutstandingCredit); // no room for b until something frees up
        Assert.Equal(EnqueueStatus.Rejected, h.Enqueue("plain").Status);
        h.State.CheckInvariants();
    }

    [Fact]
    public void Idle_producer_reserves_nothing_and_credit_never_exceeds_demand()
    {
        var h = new CoreHarness(Settings(capacity: 10) with { ProducerCredit = 100 });
        h.State.RegisterProducer("idle", 0, h.Now);
        h.State.RegisterProducer("busy", 3, h.Now);
        h.State.GrantCredit(h.Now);
        Assert.Equal(new[] { new ProducerUpdate("busy", 0, 3), new ProducerUpdate("idle", 0, 0) }, h.CollectUpdates().OrderBy(u => u.ProducerId));
        Assert.Equal(3, h.State.OutstandingCredit);
        Assert.Equal(EnqueueStatus.Accepted, h.Enqueue("plain").Status);

        Assert.True(h.State.RequestCredit("busy", 20, h.Now));
        h.State.GrantCredit(h.Now);
        h.State.TryGetProducer("busy", out _, out var credit);
        Assert.Equal(9, credit); // its window is all of the free room: it is the only producer wanting any
        Assert.False(h.State.RequestCredit("ghost", 5, h.Now));
        h.State.CheckInvariants();
    }

    [Fact]
    public void Lowering_demand_gives_back_the_credit_beyond_it()
    {
        var h = new CoreHarness(Settings(capacity: 10) with { ProducerCredit = 100 });
        h.State.RegisterProducer("p", 8, h.Now);
        h.State.GrantCredit(h.Now);
        h.State.EnqueueSequenced("p", 1, "a", null, h.Now);
        Assert.Equal(7, h.State.OutstandingCredit);
        Assert.True(h.State.RequestCredit("p", 3, h.Now));
        h.State.TryGetProducer("p", out var accepted, out var credit);
        Assert.Equal((1, 3), (accepted, credit));
        Assert.Equal(2, h.State.OutstandingCredit);
        Assert.Equal(new ProducerUpdate("p", 1, 3), h.CollectUpdates().Single());
        h.State.RequestCredit("p", 0, h.Now); // never below what was accepted
        h.State.TryGetProducer("p", out _, out credit);
        Assert.Equal(1, credit);
        h.State.CheckInvariants();
    }

    [Fact]
    public void Nack_delay_is_capped_so_a_huge_delay_cannot_overflow()
    {
        var h = new CoreHarness(Settings());
        h.EnqueueMany(1);
        var c = h.Consumer(1);
        var d = h.Dispatch().Single().Delivery;
        Assert.Null(h.State.Nack(c, d.DeliveryId, TimeSpan.MaxValue, "someday", h.Now, out var outcome));
        Assert.Equal(NackOutcome.Delayed, outcome);
        h.Tick(QueueState.MaxNackDelay - TimeSpan.FromSeconds(1));
        Assert.Equal(1, h.State.DelayedCount);
        h.Tick(TimeSpan.FromSeconds(1));
        Assert.Equal(0, h.State.DelayedCount);
    }

    [Fact]
    public void Producers_share_capacity_fairly()
    {
        var h = new CoreHarness(Settings(capacity: 10) with { ProducerCredit = 100 });
        h.State.RegisterProducer("a", long.MaxValue, h.Now);
        h.State.RegisterProducer("b", long.MaxValue, h.Now);
        h.State.GrantCredit(h.Now);
        var updates = h.CollectUpdates().OrderBy(u => u.ProducerId).ToList();
        Assert.Equal(new[] { new ProducerUpdate("a", 0, 5), new ProducerUpdate("b", 0, 5) }, updates);
    }

    [Fact]
    public void A_producer_that_stops_with_a_message_parked_never_has_it_taken_in_place_of_its_successor_s()
    {
        // "old" waits for room as number 1 of producer p; p's actor stops, and a new one with the same id sends its own
        // number 1. The parked message must not be admitted later as p's number 1: the successor would count its own
        // message accepted (the queue's accepted number says so) while the queue holds the other one.
        var h = new CoreHarness(Settings(capacity: 1, FullMode.Wait));
        Assert.Equal(EnqueueStatus.Accepted, h.Enqueue("filler").Status);
        h.State.RegisterProducer("p", 10, h.Now);
        Assert.Equal(EnqueueStatus.Parked, h.State.EnqueueSequenced("p", 1, "old", "old actor", h.Now).Status);

        var outcomes = new List<ParkedOutcome>();
        h.State.DeactivateProducer("p", h.Now, outcomes);
        var rejected = Assert.Single(outcomes);
        Assert.Equal(("old", false, "old actor"), (rejected.Parked.Message, rejected.Accepted, rejected.Parked.ReplyTo));
        Assert.Contains("producer 'p' stopped", rejected.Detail);
        Assert.Equal(0, h.State.ParkedCount);

        h.State.RegisterProducer("p", 10, h.Now);
        Assert.Equal(EnqueueStatus.Parked, h.State.EnqueueSequenced("p", 1, "new", "new actor", h.Now).Status);
        var c = h.Consumer(1);
        var filler = Assert.Single(h.Dispatch());
        Assert.Null(h.State.Ack(c, filler.Delivery.DeliveryId));
        outcomes.Clear();
        h.State.AdmitParked(h.Now, outcomes);
        Assert.Equal(("new", true), (Assert.Single(outcomes).Parked.Message, outcomes[0].Accepted));
        Assert.Equal("new", Assert.Single(h.Dispatch()).Delivery.Message);
        h.State.CheckInvariants();
        Assert.Equal(h.State.Describe(), h.Replay().Describe());
    }

    [Fact]
    public void Sequenced_messages_are_accepted_within_credit_deduplicated_and_kept_in_order()
    {
        var h = new CoreHarness(Settings(capacity: 10) with { ProducerCredit = 3 });
        h.State.RegisterProducer("p", long.MaxValue, h.Now);
        h.State.GrantCredit(h.Now);
        Assert.Equal(EnqueueStatus.Accepted, h.State.EnqueueSequenced("p", 1, "a", null, h.Now).Status);
        Assert.Equal(EnqueueStatus.Duplicate, h.State.EnqueueSequenced("p", 1, "a", null, h.Now).Status);
        var gap = h.State.EnqueueSequenced("p", 3, "c", null, h.Now);
        Assert.Equal(RejectReason.OutOfOrder, gap.Reason);
        Assert.Contains("2 was expected", gap.Detail);
        Assert.Equal(EnqueueStatus.Accepted, h.State.EnqueueSequenced("p", 2, "b", null, h.Now).Status);
        Assert.Equal(2, h.State.Held);
        Assert.True(h.State.TryGetProducer("p", out var accepted, out var credit));
        Assert.Equal(2, accepted);
        Assert.Equal(3, credit);
        Assert.Equal(1, h.State.OutstandingCredit);
    }

    [Fact]
    public void A_run_is_taken_in_one_step_as_far_as_it_follows_on_fits_the_credit_and_holds_no_null()
    {
        var h = new CoreHarness(Settings(capacity: 10) with { ProducerCredit = 4 });
        h.State.RegisterProducer("p", long.MaxValue, h.Now);
        h.State.GrantCredit(h.Now);
        var events = h.Events.Count;
        Assert.Equal(3, h.State.EnqueueSequencedRun("p", 1, new object?[] { "a", "b", "c" }, h.Now));
        Assert.Single(h.Events.Skip(events)); // one event for the run
        // Credit 4: only one more fits; the caller hands the rest to EnqueueSequenced.
        Assert.Equal(1, h.State.EnqueueSequencedRun("p", 4, new object?[] { "d", "e" }, h.Now));
        Assert.True(h.State.TryGetProducer("p", out var accepted, out _));
        Assert.Equal(4, accepted);
        var c = h.Consumer(10);
        Assert.Equal(new[] { "a", "b", "c", "d" }, h.Dispatch().Select(d => (string)d.Delivery.Message));
        Assert.All(h.Dispatched, d => Assert.Equal(c, d.ConsumerId));

        h.State.GrantCredit(h.Now);
        Assert.Equal(1, h.State.EnqueueSequencedRun("p", 5, new object?[] { "e", null, "g" }, h.Now)); // stops at the null
        Assert.Equal(0, h.State.EnqueueSequencedRun("p", 5, new object?[] { "e" }, h.Now)); // a resend: one by one
        Assert.Equal(0, h.State.EnqueueSequencedRun("p", 7, new object?[] { "g" }, h.Now)); // a gap: one by one
        Assert.Equal(0, h.State.EnqueueSequencedRun("ghost", 1, new object?[] { "x" }, h.Now));
        Assert.Equal(5, h.State.Counters.Enqueued);
        h.State.CheckInvariants();
        Assert.Equal(h.State.Describe(), h.Replay().Describe());
    }

    [Fact]
    public void Ack_range_acks_what_the_consumer_holds_in_stretches_and_refuses_the_rest_with_reasons()
    {
        var h = new CoreHarness(Settings(capacity: 10));
        h.EnqueueMany(6);
        var a = h.Consumer(4);
        h.Dispatch(); // a holds 1..4
        var b = h.Consumer(2);
        Assert.All(h.Dispatch(), d => Assert.Equal(b, d.Consumer)); // b holds 5..6
        Assert.Null(h.State.Ack(a, 2));
        var events = h.Events.Count;
        var refused = new List<RefusedStretch>();
        h.State.AckRange(a, 1, 7, refused);
        Assert.Equal(new RefusedStretch[] { new(2, 2, SettleError.AlreadySettled), new(5, 6, SettleError.NotHolder), new(7, 7, SettleError.UnknownDelivery) }, refused);
        Assert.Equal(2, h.Events.Count - events); // stretches 1..1 and 3..4
        Assert.Equal(2, h.State.InFlightCount);
        Assert.Equal(4, h.State.Counters.Acked);
        h.State.CheckInvariants();
        Assert.Equal(h.State.Describe(), h.Replay().Describe());
    }

    [Fact]
    public void A_run_takes_nothing_while_messages_are_parked_or_the_queue_drains()
    {
        var h = new CoreHarness(Settings(capacity: 2, mode: FullMode.Wait) with { ProducerCredit = 2 });
        h.State.RegisterProducer("p", long.MaxValue, h.Now);
        h.State.Enqueue("x", 1, null, h.Now);
        h.State.Enqueue("y", 2, null, h.Now);
        Assert.Equal(EnqueueStatus.Parked, h.State.Enqueue("z", 3, null, h.Now).Status);
        Assert.Equal(0, h.State.EnqueueSequencedRun("p", 1, new object?[] { "a" }, h.Now));

        var drained = new CoreHarness(Settings(capacity: 5) with { ProducerCredit = 5 });
        drained.State.RegisterProducer("p", long.MaxValue, drained.Now);
        drained.State.GrantCredit(drained.Now);
        drained.State.BeginDrain(drained.Parked);
        Assert.Equal(0, drained.State.EnqueueSequencedRun("p", 1, new object?[] { "a" }, drained.Now));
        Assert.Equal(0, drained.State.Held);
    }

    [Fact]
    public void Sequenced_message_from_an_unregistered_producer_is_rejected()
    {
        var h = new CoreHarness(Settings());
        var r = h.State.EnqueueSequenced("ghost", 1, "x", null, h.Now);
        Assert.Equal(RejectReason.NotRegistered, r.Reason);
        Assert.Contains("ghost", r.Detail);
        Assert.Equal(0, h.State.Held);
    }

    [Fact]
    public void Beyond_credit_a_producer_meets_the_full_mode()
    {
        var h = new CoreHarness(Settings(capacity: 2) with { ProducerCredit = 2 });
        h.State.RegisterProducer("p", long.MaxValue, h.Now);
        h.State.GrantCredit(h.Now);
        h.State.EnqueueSequenced("p", 1, "a", null, h.Now);
        h.State.EnqueueSequenced("p", 2, "b", null, h.Now);
        Assert.Equal(RejectReason.QueueFull, h.State.EnqueueSequenced("p", 3, "c", null, h.Now).Reason);
    }

    [Fact]
    public void Credit_tops_up_in_batches_but_at_once_for_a_starved_producer()
    {
        var h = new CoreHarness(Settings(capacity: 10) with { ProducerCredit = 10 });
        h.State.RegisterProducer("p", long.MaxValue, h.Now);
        h.State.GrantCredit(h.Now);
        for (var i = 1; i <= 2; i++) h.State.EnqueueSequenced("p", i, i, null, h.Now);
        var c = h.Consumer(10);
        var ds = h.Dispatch();
        h.State.Ack(c, ds[0].Delivery.DeliveryId);
        h.State.GrantCredit(h.Now);
        Assert.True(h.State.TryGetProducer("p", out _, out var credit));
        Assert.Equal(10, credit); // 8 outstanding, 1 free: not worth a message yet
        for (var i = 3; i <= 10; i++) h.State.EnqueueSequenced("p", i, i, null, h.Now);
        h.State.GrantCredit(h.Now);
        h.State.TryGetProducer("p", out _, out credit);
        Assert.Equal(11, credit); // starved: the single free slot is granted
        h.State.CheckInvariants();
    }

    [Fact]
    public void Deactivated_producer_returns_its_credit_and_keeps_its_sequence()
    {
        var h = new CoreHarness(Settings(capacity: 10));
        h.State.RegisterProducer("p", long.MaxValue, h.Now);
        h.State.GrantCredit(h.Now);
        h.State.EnqueueSequenced("p", 1, "a", null, h.Now);
        h.State.DeactivateProducer("p", h.Now, new List<ParkedOutcome>());
        Assert.Equal(0, h.State.OutstandingCredit);
        Assert.Equal(RejectReason.NotRegistered, h.State.EnqueueSequenced("p", 2, "b", null, h.Now).Reason);
        h.State.RegisterProducer("p", long.MaxValue, h.Now);
        Assert.Equal(EnqueueStatus.Duplicate, h.State.EnqueueSequenced("p", 1, "a", null, h.Now).Status);
    }

    [Fact]
    public void Dead_letters_can_be_redriven_one_or_all_as_far_as_capacity_allows()
    {
        var h = new CoreHarness(Settings(capacity: 3, maxAttempts: 1));
        h.EnqueueMany(3);
        var c = h.Consumer(3);
        foreach (var (_, d) in h.Dispatch()) h.State.Nack(c, d.DeliveryId, null, "fail", h.Now, out _);
        Assert.Equal(3, h.State.DeadCount);
        var dead = new List<DeadEntry>();
        h.State.CopyDeadLetters(10, dead);

        Assert.True(h.State.Redrive(dead[1].Message.MessageId));
        Assert.False(h.State.Redrive(dead[1].Message.MessageId));
        h.EnqueueMany(1, "fresh");
        Assert.Equal(1, h.State.RedriveAll()); // only one slot left
        Assert.Equal(1, h.State.DeadCount);
        h.State.Pull(c, 3);
        var again = h.Dispatch();
        Assert.Equal(new object[] { "m1", "fresh0", "m0" }, again.Select(d => d.Delivery.Message));
        Assert.All(again, d => Assert.Equal(1, d.Delivery.Attempt));
        h.State.CheckInvariants();
    }

    [Fact]
    public void Dead_letter_store_is_bounded_by_evicting_the_oldest()
    {
        var h = new CoreHarness(Settings(maxAttempts: 1) with { DeadLetterCapacity = 2 });
        h.EnqueueMany(3);
        var c = h.Consumer(3);
        foreach (var (_, d) in h.Dispatch()) h.State.Nack(c, d.DeliveryId, null, "fail", h.Now, out _);
        var dead = new List<DeadEntry>();
        h.State.CopyDeadLetters(10, dead);
        Assert.Equal(new object[] { "m1", "m2" }, dead.Select(d => d.Message.Message));
        Assert.Equal(1, h.State.GetStats("q").Dropped);
        h.State.CheckInvariants();
    }

    [Fact]
    public void Drain_stops_accepting_revokes_credit_and_is_done_when_nothing_is_held()
    {
        var h = new CoreHarness(Settings(capacity: 2, FullMode.Wait));
        h.State.RegisterProducer("p", long.MaxValue, h.Now);
        h.EnqueueMany(1);
        h.State.GrantCredit(h.Now);
        Assert.Equal(EnqueueStatus.Parked, h.Enqueue("parked").Status);
        var outcomes = new List<ParkedOutcome>();
        h.State.BeginDrain(outcomes);
        Assert.Equal(RejectReason.Draining, Assert.Single(outcomes).Reason);
        Assert.Equal(0, h.State.OutstandingCredit);
        Assert.Equal(RejectReason.Draining, h.Enqueue("late").Reason);
        Assert.False(h.State.IsDrained);
        var c = h.Consumer(1);
        var d = h.Dispatch().Single().Delivery;
        Assert.False(h.State.IsDrained);
        h.State.Ack(c, d.DeliveryId);
        Assert.True(h.State.IsDrained);
    }

    [Fact]
    public void Stats_report_counts_and_totals()
    {
        var h = new CoreHarness(Settings(maxAttempts: 1));
        h.EnqueueMany(4);
        var c = h.Consumer(3);
        var ds = h.Dispatch();
        h.State.Ack(c, ds[0].Delivery.DeliveryId);
        h.State.Nack(c, ds[1].Delivery.DeliveryId, null, "x", h.Now, out _);
        h.State.RecordInvalid();
        var s = h.State.GetStats("orders");
        Assert.Equal(new QueueStats("orders", 10, 1, 1, 0, 1, 0, 0, 1, 4, 3, 1, 1, 0, 1, 0, 0, 1, false), s);
        Assert.Equal(2, s.Held);
    }

    [Fact]
    public void Replaying_the_events_of_a_run_rebuilds_an_equal_state()
    {
        var h = new CoreHarness(Settings(capacity: 4, FullMode.Wait, maxAttempts: 2) with { ProducerCredit = 2, DeadLetterCapacity = 1 });
        h.State.RegisterProducer("p", 1, h.Now);
        h.State.RequestCredit("p", 2, h.Now);
        h.State.GrantCredit(h.Now);
        h.State.EnqueueSequenced("p", 1, "s1", null, h.Now);
        h.State.EnqueueSequenced("p", 2, "s2", null, h.Now);
        h.EnqueueMany(2);
        h.Enqueue("parked");
        var a = h.Consumer(2);
        var b = h.Consumer(2);
        var ds = h.Dispatch();
        h.State.Ack(ds[0].Consumer, ds[0].Delivery.DeliveryId);
        h.State.Nack(ds[1].Consumer, ds[1].Delivery.DeliveryId, TimeSpan.FromSeconds(1), "later", h.Now, out _);
        h.State.Extend(ds[2].Consumer, ds[2].Delivery.DeliveryId, h.Now);
        h.State.AdmitParked(h.Now, new List<ParkedOutcome>());
        h.State.RemoveConsumer(a, h.Now);
        h.Tick(TimeSpan.FromSeconds(2));
        h.State.Pull(b, 5);
        foreach (var (_, d) in h.Dispatch()) h.State.Nack(b, d.DeliveryId, TimeSpan.Zero, "poison", h.Now, out _);
        h.State.RedriveAll();
        h.State.DeactivateProducer("p", h.Now, new List<ParkedOutcome>());
        h.State.RecordInvalid();
        h.State.BeginDrain(new List<ParkedOutcome>());
        h.Enqueue("late");

        Assert.True(h.Events.Select(e => e.GetType()).Distinct().Count() >= 19, "the run should cover nearly every event kind");
        var replayed = h.Replay();
        Assert.Equal(h.State.Describe(), replayed.Describe());
        replayed.CheckInvariants();
    }

    [Fact]
    public void Replay_detects_events_that_do_not_fit_the_state()
    {
        var h = new CoreHarness(Settings());
        h.EnqueueMany(2);
        h.Consumer(1);
        h.Dispatch();
        var tampered = h.Events.Select(e => e is MessageDelivered d ? d with { MessageId = 2 } : e).ToList();
        var replay = new QueueState(h.Settings);
        var error = Assert.Throws<QueueInvariantException>(() => tampered.ForEach(replay.Apply));
        Assert.Contains("diverged", error.Message);
    }

    [Fact]
    public void Invariant_check_names_a_broken_capacity_bound()
    {
        var state = new QueueState(Settings(capacity: 1));
        state.Apply(new MessageAccepted(1, "a", null, 0, TimeSpan.Zero, false));
        state.Apply(new MessageAccepted(2, "b", null, 0, TimeSpan.Zero, false));
        var error = Assert.Throws<QueueInvariantException>(state.CheckInvariants);
        Assert.Contains("exceeds capacity", error.Message);
    }

    [Fact]
    public void Extended_deliveries_keep_their_new_deadlines_whatever_order_they_are_extended_and_settled_in()
    {
        var h = new CoreHarness(Settings() with { AckTimeout = TimeSpan.FromSeconds(2) });
        h.EnqueueMany(3);
        var c = h.Consumer(3);
        var ids = h.Dispatch().Select(d => d.Delivery.DeliveryId).ToArray();
        for (var round = 0; round < 5; round++)
        {
            h.Tick(TimeSpan.FromSeconds(1));
            foreach (var i in new[] { 1, 2, 0 }) Assert.Null(h.State.Extend(c, ids[i], h.Now));
            h.State.CheckInvariants();
        }
        Assert.Null(h.State.Ack(c, ids[0]));
        for (var round = 0; round < 3; round++)
        {
            h.Tick(TimeSpan.FromSeconds(1));
            Assert.Empty(h.Revoked);
            foreach (var i in new[] { 2, 1 }) Assert.Null(h.State.Extend(c, ids[i], h.Now));
            h.State.CheckInvariants();
        }
        h.Tick(TimeSpan.FromSeconds(1.5));
        Assert.Empty(h.Revoked);
        h.Tick(TimeSpan.FromSeconds(0.5));
        Assert.Equal(new[] { ids[2], ids[1] }, h.Revoked.Select(r => r.DeliveryId));
        h.State.CheckInvariants();
    }

    [Fact]
    public void An_idle_queue_needs_no_timer_and_a_busy_one_only_for_what_waits_on_time()
    {
        var h = new CoreHarness(Settings() with { AckTimeout = TimeSpan.FromSeconds(5), CreditLease = TimeSpan.FromSeconds(2) });
        Assert.Null(h.State.NextDue());
        h.EnqueueMany(1);
        Assert.Null(h.State.NextDue()); // ready work waits for a consumer, not for time
        var c = h.Consumer(1);
        var d = h.Dispatch().Single().Delivery;
        Assert.Equal(h.Now + TimeSpan.FromSeconds(5), h.State.NextDue());
        Assert.Null(h.State.Ack(c, d.DeliveryId));
        Assert.Null(h.State.NextDue());
        Assert.False(h.State.Tick(h.Now + TimeSpan.FromHours(1), h.Parked, h.Revoked));

        h.State.RegisterProducer("p", 3, h.Now);
        h.State.GrantCredit(h.Now);
        Assert.Equal(h.Now + TimeSpan.FromSeconds(2), h.State.NextDue()); // the credit lease
        h.Tick(TimeSpan.FromSeconds(2));
        Assert.Equal(0, h.State.OutstandingCredit);
        Assert.Equal(new ProducerUpdate("p", 0, 0), h.CollectUpdates().Single());
    }

    [Fact]
    public void A_returned_delivery_keeps_its_attempt_count_and_goes_ahead_of_new_work()
    {
        var h = new CoreHarness(Settings() with { MaxAttempts = 1 });
        h.EnqueueMany(2);
        var c = h.Consumer(1);
        var first = h.Dispatch().Single().Delivery;
        Assert.Equal(SettleError.NotHolder, h.State.Return(c + 1, first.DeliveryId));
        Assert.Null(h.State.Return(c, first.DeliveryId));
        Assert.Equal(SettleError.AlreadySettled, h.State.Return(c, first.DeliveryId));
        var again = h.Dispatch().Single().Delivery;
        Assert.Equal((first.Message, 1), (again.Message, again.Attempt));
        Assert.Equal(0, h.State.DeadCount);
        h.State.CheckInvariants();
    }

    [Fact]
    public void Recovery_puts_what_was_in_flight_back_with_its_attempt_counted_and_forgets_consumers_and_producers()
    {
        var h = new CoreHarness(Settings() with { MaxAttempts = 2 });
        h.State.RegisterProducer("p", long.MaxValue, h.Now);
        h.State.GrantCredit(h.Now);
        Assert.Equal(EnqueueStatus.Accepted, h.State.EnqueueSequenced("p", 1, "a", null, h.Now).Status);
        Assert.Equal(EnqueueStatus.Accepted, h.State.EnqueueSequenced("p", 2, "b", null, h.Now).Status);
        var c = h.Consumer(2);
        var before = h.Dispatch().Select(x => x.Delivery).ToList();
        Assert.Null(h.State.Nack(c, before[1].DeliveryId, TimeSpan.Zero, "retry", h.Now, out _));
        var retried = h.Dispatch().Single().Delivery; // "b" on its second and last attempt
        h.Restart();
        var s = h.State;
        Assert.Equal((0, 0, 0L), (s.ConsumerCount, s.ActiveProducerCount, s.OutstandingCredit));
        Assert.True(s.TryGetProducer("p", out var accepted, out _));
        Assert.Equal(2, accepted); // resends after the restart are still deduplicated
        Assert.Equal(1, s.DeadCount); // "b" was on its last attempt when the queue went down
        var c2 = h.Consumer(5);
        var after = h.Dispatch().Single().Delivery;
        Assert.Equal(("a", 2), (after.Message, after.Attempt));
        Assert.True(after.DeliveryId > retried.DeliveryId);
        Assert.Equal(SettleError.UnknownDelivery, s.Ack(c2, before[0].DeliveryId));
        s.CheckInvariants();
        Assert.Equal(s.Describe(), h.Replay().Describe());
    }

    [Fact]
    public void A_snapshot_restored_then_the_later_journal_rebuilds_every_message_where_it_was()
    {
        var h = new CoreHarness(Settings(capacity: 20) with { MaxAttempts = 2 });
        h.State.RegisterProducer("p", long.MaxValue, h.Now);
        h.State.GrantCredit(h.Now);
        Assert.Equal(6, h.State.EnqueueSequencedRun("p", 1, ["a", "b", "c", "d", "e", "f"], h.Now));
        var c = h.Consumer(4);
        var held = h.Dispatch().Select(x => x.Delivery).ToList(); // a b c d
        Assert.Null(h.State.Nack(c, held[0].DeliveryId, TimeSpan.FromMinutes(1), "later", h.Now, out _)); // a delayed
        Assert.Null(h.State.Nack(c, held[1].DeliveryId, TimeSpan.Zero, "again", h.Now, out _)); // b redelivered next
        var second = h.Dispatch().Select(x => x.Delivery).ToList(); // b (last attempt) and e
        Assert.Null(h.State.Nack(c, second.Single(d => (string)d.Message == "b").DeliveryId, null, "broken", h.Now, out var outcome));
        Assert.Equal(NackOutcome.DeadLettered, outcome);
        var snapshot = h.State.TakeSnapshot();
        var position = h.Events.Count;
        // After the snapshot: c and e acked, f delivered, g accepted.
        Assert.Null(h.State.Ack(c, held[2].DeliveryId));
        Assert.Null(h.State.Ack(c, second.Single(d => (string)d.Message == "e").DeliveryId));
        h.Dispatch();
        Assert.Equal(EnqueueStatus.Accepted, h.State.EnqueueSequenced("p", 7, "g", null, h.Now).Status);

        var restored = new QueueState(h.Settings, new Random(0));
        restored.RestoreSnapshot(snapshot, h.Now);
        foreach (var e in h.Events.Skip(position))
            if (QueueJournal.Durable(e) is { } kept) restored.Restore(kept);
        Assert.Equal(h.State.DescribeDurable(), restored.DescribeDurable());
        Assert.Equal(1, restored.DeadCount);
        Assert.Equal(1, restored.DelayedCount);
        Assert.True(restored.TryGetProducer("p", out var accepted, out _));
        Assert.Equal(7, accepted);
    }

    [Fact]
    public void A_restart_from_the_journal_keeps_every_producer_for_its_retention_and_takes_a_forgotten_one_it_never_knew_in_its_stride()
    {
        var h = new CoreHarness(Settings(capacity: 20) with { ProducerRetention = TimeSpan.FromMinutes(10) });
        // A producer that never sent anything (a client used only for stats), gone and forgotten.
        h.State.RegisterProducer("idle", 0, h.Now);
        h.State.DeactivateProducer("idle", h.Now, new List<ParkedOutcome>());
        h.Tick(TimeSpan.FromMinutes(11));
        Assert.Contains(h.Events, e => e is ProducerForgotten { ProducerId: "idle" });
        // One that sent, long before the restart.
        h.State.RegisterProducer("p", long.MaxValue, h.Now);
        h.State.GrantCredit(h.Now);
        Assert.Equal(EnqueueStatus.Accepted, h.State.EnqueueSequenced("p", 1, "a", null, h.Now).Status);
        h.Tick(TimeSpan.FromMinutes(20));
        h.RestartFromJournal();
        // Its sequence is kept for producer-retention from the recovery, not from when it was last seen.
        h.Tick(TimeSpan.FromMinutes(9));
        Assert.True(h.State.TryGetProducer("p", out var accepted, out _));
        Assert.Equal(1, accepted);
        h.Tick(TimeSpan.FromMinutes(2));
        Assert.False(h.State.TryGetProducer("p", out _, out _));
    }

    [Fact]
    public void Credit_reclaimed_before_it_could_be_used_gets_a_longer_lease_so_grants_and_reclaims_cannot_chase_each_other()
    {
        var h = new CoreHarness(Settings() with { CreditLease = TimeSpan.FromSeconds(1) });
        h.State.RegisterProducer("slow-link", 2, h.Now);
        for (var lease = 1; lease <= 4; lease *= 2)
        {
            h.State.GrantCredit(h.Now);
            Assert.Equal(2, h.State.OutstandingCredit);
            h.Tick(TimeSpan.FromSeconds(lease) - TimeSpan.FromMilliseconds(1));
            Assert.Equal(2, h.State.OutstandingCredit); // still within this round's lease
            h.Tick(TimeSpan.FromMilliseconds(1));
            Assert.Equal(0, h.State.OutstandingCredit); // reclaimed; the producer asks again
            Assert.True(h.State.RequestCredit("slow-link", 2, h.Now));
        }
        // Once it sends, its lease is back to credit-lease.
        h.State.GrantCredit(h.Now);
        Assert.Equal(EnqueueStatus.Accepted, h.State.EnqueueSequenced("slow-link", 1, "m", null, h.Now).Status);
        h.Tick(TimeSpan.FromSeconds(1));
        Assert.Equal(0, h.State.OutstandingCredit);
    }
}
