using ActorQueue.TestKit;
using Xunit;

namespace ActorQueue.Tests.Simulation;

/// <summary>The checker on hand-written histories: each promise broken once, and the ways a duplicate is explained.</summary>
public sealed class HistoryCheckerSpec
{
    private static readonly TimeSpan AckTimeout = TimeSpan.FromSeconds(30);

    private sealed class Script
    {
        private readonly List<HistoryEvent> _events = new();
        private TimeSpan _now;

        public Script At(double seconds)
        {
            _now = TimeSpan.FromSeconds(seconds);
            return this;
        }

        public Script Add(HistoryKind kind, string? id = null, int actor = -1, long seq = -1, long delivery = 0, int attempt = 0)
        {
            _events.Add(new HistoryEvent(_events.Count, _now, kind, id) { Actor = actor, Seq = seq, DeliveryId = delivery, Attempt = attempt });
            return this;
        }

        public Script SentAndAccepted(string id, int producer, long seq) =>
            Add(HistoryKind.Sent, id, producer, seq).Add(HistoryKind.Accepted, id);

        public Script Handled(string id, long delivery, int consumer = 0, int attempt = 1, double took = 0.01)
        {
            Add(HistoryKind.Dispatched, id, consumer, delivery: delivery, attempt: attempt).Add(HistoryKind.Delivered, id, consumer, delivery: delivery, attempt: attempt);
            var start = _now;
            _now += TimeSpan.FromSeconds(took);
            Add(HistoryKind.Acked, id, consumer, delivery: delivery, attempt: attempt);
            _now = start;
            return this;
        }

        public IReadOnlyList<HistoryEvent> Events => _events;

        public Verdict Check() => HistoryChecker.Check(_events, AckTimeout);
    }

    [Fact]
    public void A_clean_history_passes()
    {
        var v = new Script().SentAndAccepted("a", 0, 0).SentAndAccepted("b", 0, 1).Handled("a", 1).Handled("b", 2).Check();
        Assert.True(v.Passed, v.Describe());
        Assert.Equal((2, 2), (v.Accepted, v.Handled));
    }

    [Fact]
    public void An_accepted_message_never_settled_is_lost_once_the_queue_is_empty_and_not_drained_while_it_still_holds_some()
    {
        var lost = new Script().SentAndAccepted("a", 0, 0).SentAndAccepted("b", 0, 1).Handled("a", 1)
            .Add(HistoryKind.Sampled).Check();
        Assert.Equal(["b"], lost.Lost);
        Assert.False(lost.Passed);

        var script = new Script().SentAndAccepted("a", 0, 0);
        var held = HistoryChecker.Check([.. script.Events, new HistoryEvent(99, TimeSpan.Zero, HistoryKind.Sampled, null) { Held = 1, Capacity = 10 }], AckTimeout);
        Assert.Equal(["a"], held.NotDrained);
        Assert.Empty(held.Lost);
    }

    [Fact]
    public void Dead_letters_and_drops_are_settled_not_lost()
    {
        var v = new Script().SentAndAccepted("a", 0, 0).SentAndAccepted("b", 0, 1)
            .Add(HistoryKind.DeadLettered, "a").Add(HistoryKind.Dropped, "b").Check();
        Assert.True(v.Passed, v.Describe());
        Assert.Equal((1, 1), (v.DeadLettered, v.Dropped));
    }

    [Fact]
    public void A_duplicate_is_unexplained_unless_a_crash_a_pause_or_a_late_handling_explains_it()
    {
        var unexplained = new Script().SentAndAccepted("a", 0, 0).Handled("a", 1).At(40).Handled("a", 5, attempt: 2).Check();
        Assert.Equal([new Duplicate("a", 2, DuplicateCause.Unexplained)], unexplained.Duplicated);
        Assert.False(unexplained.Passed);

        var crash = new Script().SentAndAccepted("a", 0, 0).Handled("a", 1, consumer: 0).At(1).Add(HistoryKind.ConsumerCrashed, actor: 0)
            .At(40).Handled("a", 5, consumer: 1, attempt: 2).Check();
        Assert.Equal(DuplicateCause.Crash, Assert.Single(crash.Duplicated).Cause);
        Assert.True(crash.Passed, crash.Describe());

        var slow = new Script().SentAndAccepted("a", 0, 0).Handled("a", 1, took: 31).At(31).Handled("a", 5, attempt: 2).Check();
        Assert.Equal(DuplicateCause.MissedDeadline, Assert.Single(slow.Duplicated).Cause);

        var paused = new Script().SentAndAccepted("a", 0, 0).Handled("a", 1, consumer: 0)
            .Add(HistoryKind.ConsumerPaused, actor: 0).At(40).Handled("a", 5, consumer: 1, attempt: 2).Check();
        Assert.Equal(DuplicateCause.MissedDeadline, Assert.Single(paused.Duplicated).Cause);
    }

    [Fact]
    public void Deliveries_nobody_sent_or_of_rejected_messages_are_unexpected_and_unanswered_calls_are_reported()
    {
        var v = new Script().Add(HistoryKind.Sent, "a", 0, 0).Add(HistoryKind.Rejected, "a").Handled("a", 1)
            .Handled("ghost", 2).Add(HistoryKind.Sent, "c", 0, 1).Check();
        Assert.Equal(["a", "ghost"], v.Unexpected);
        Assert.Equal(["c"], v.Unanswered);
        Assert.False(v.Passed);
    }

    [Fact]
    public void A_message_whose_answer_was_unknown_may_be_delivered_and_must_then_be_handled()
    {
        var handled = new Script().Add(HistoryKind.Sent, "a", 0, 0).Add(HistoryKind.Unknown, "a").Handled("a", 1).Check();
        Assert.True(handled.Passed, handled.Describe());
        var never = new Script().Add(HistoryKind.Sent, "a", 0, 0).Add(HistoryKind.Unknown, "a").Check();
        Assert.True(never.Passed, never.Describe());
    }

    [Fact]
    public void First_deliveries_out_of_their_producers_order_and_samples_over_capacity_are_reported()
    {
        var v = new Script().SentAndAccepted("a", 0, 0).SentAndAccepted("b", 0, 1).SentAndAccepted("x", 1, 0)
            .Handled("b", 1).Handled("a", 2).Handled("x", 3)
            .Add(HistoryKind.Sampled).Check();
        Assert.Equal([new OrderInversion("a", "b")], v.OutOfOrder);

        var full = HistoryChecker.Check([new HistoryEvent(0, TimeSpan.Zero, HistoryKind.Sampled, null) { Held = 11, Capacity = 10 }], AckTimeout);
        Assert.Single(full.CapacityExceeded);
        Assert.False(full.Passed);
    }

    [Fact]
    public void The_checker_reads_a_history_recorded_by_code_of_your_own()
    {
        var history = new History();
        history.Add(HistoryKind.Sent, "order-1", e => e with { Actor = 0, Seq = 0 });
        history.Add(HistoryKind.Accepted, "order-1");
        history.Add(HistoryKind.Acked, "order-1", e => e with { DeliveryId = 1 });
        history.Add(HistoryKind.Sent, "order-2", e => e with { Actor = 0, Seq = 1 });
        history.Add(HistoryKind.Accepted, "order-2");

        var v = HistoryChecker.Check(history, AckTimeout);

        Assert.Equal(["order-2"], v.Lost);
        Assert.Contains("lost: 1 (order-2)", v.Describe());
    }
}
