using System.Text;

namespace ActorQueue.TestKit;

/// <summary>Why a message was handled more than once.</summary>
public enum DuplicateCause
{
    /// <summary>Nothing in the history explains it: the queue broke its promise.</summary>
    Unexplained,

    /// <summary>A consumer, the queue or a producer crashed between the first handling and the next.</summary>
    Crash,

    /// <summary>The first handling outlived the ack timeout (a slow handler or a paused consumer), so the queue redelivered.</summary>
    MissedDeadline,
}

/// <summary>A message handled (acked) more than once.</summary>
/// <param name="MessageId">The message.</param>
/// <param name="Times">How many times a handler finished it.</param>
/// <param name="Cause">What explains the extra handlings; <see cref="DuplicateCause.Unexplained"/> fails the verdict.</param>
public sealed record Duplicate(string MessageId, int Times, DuplicateCause Cause);

/// <summary>Two messages of one producer whose first deliveries came in the opposite order to the one they were sent in.</summary>
/// <param name="Earlier">The message sent first.</param>
/// <param name="Later">The message sent after it, but delivered first.</param>
public sealed record OrderInversion(string Earlier, string Later);

/// <summary>What <see cref="HistoryChecker"/> found in a history; <see cref="Passed"/> when the queue kept every promise.</summary>
public sealed record Verdict
{
    /// <summary>Messages the queue accepted and then neither handled, dead-lettered nor dropped, although it ended empty.</summary>
    public IReadOnlyList<string> Lost { get; init; } = [];

    /// <summary>Messages handled more than once, each with what explains it.</summary>
    public IReadOnlyList<Duplicate> Duplicated { get; init; } = [];

    /// <summary>Messages delivered that no producer sent, or that the queue had rejected.</summary>
    public IReadOnlyList<string> Unexpected { get; init; } = [];

    /// <summary>First deliveries out of their producer's order with no crash or pause to explain it.</summary>
    public IReadOnlyList<OrderInversion> OutOfOrder { get; init; } = [];

    /// <summary>Samples in which the queue held more than its capacity.</summary>
    public IReadOnlyList<HistoryEvent> CapacityExceeded { get; init; } = [];

    /// <summary>Messages sent whose call was never answered (neither accepted nor rejected).</summary>
    public IReadOnlyList<string> Unanswered { get; init; } = [];

    /// <summary>Messages accepted and not settled while the queue, at its last sample, still held some: the run ended undrained.</summary>
    public IReadOnlyList<string> NotDrained { get; init; } = [];

    /// <summary>Messages accepted (each counted once).</summary>
    public int Accepted { get; init; }

    /// <summary>Messages handled at least once.</summary>
    public int Handled { get; init; }

    /// <summary>Messages in the dead-letter store at the end.</summary>
    public int DeadLettered { get; init; }

    /// <summary>Messages dropped by a drop full mode (reported, so not lost).</summary>
    public int Dropped { get; init; }

    /// <summary>Messages rejected (each counted once, and only if never accepted).</summary>
    public int Rejected { get; init; }

    /// <summary>True when nothing was lost, duplicated without cause, unexpected, reordered without cause, over capacity, unanswered or left undrained.</summary>
    public bool Passed =>
        Lost.Count == 0 && Duplicated.All(d => d.Cause != DuplicateCause.Unexplained) && Unexpected.Count == 0 &&
        OutOfOrder.Count == 0 && CapacityExceeded.Count == 0 && Unanswered.Count == 0 && NotDrained.Count == 0;

    /// <summary>The verdict in a few lines: the counts, then up to <paramref name="examples"/> examples of each problem.</summary>
    /// <param name="examples">How many ids to show per problem.</param>
    public string Describe(int examples = 5)
    {
        var explained = Duplicated.Count(d => d.Cause != DuplicateCause.Unexplained);
        var sb = new StringBuilder();
        sb.Append(Passed ? "PASSED" : "FAILED").Append(": accepted ").Append(Accepted).Append(", handled ").Append(Handled)
            .Append(", dead-lettered ").Append(DeadLettered).Append(", dropped ").Append(Dropped).Append(", rejected ").Append(Rejected)
            .Append(", duplicated ").Append(Duplicated.Count).Append(" (").Append(explained).Append(" explained by crashes or missed deadlines)");
        Problem("lost", Lost);
        Problem("duplicated without cause", Duplicated.Where(d => d.Cause == DuplicateCause.Unexplained).Select(d => $"{d.MessageId} x{d.Times}").ToList());
        Problem("unexpected", Unexpected);
        Problem("first deliveries out of order", OutOfOrder.Select(o => $"{o.Later} before {o.Earlier}").ToList());
        Problem("over capacity", CapacityExceeded.Select(e => $"{e.Held}/{e.Capacity} at {e.At.TotalSeconds:0.###}s").ToList());
        Problem("unanswered", Unanswered);
        Problem("not drained", NotDrained);
        return sb.ToString();

        void Problem(string what, IReadOnlyList<string> ids)
        {
            if (ids.Count == 0) return;
            sb.Append('\n').Append(what).Append(": ").Append(ids.Count).Append(" (").Append(string.Join(", ", ids.Take(examples)))
                .Append(ids.Count > examples ? ", ..." : "").Append(')');
        }
    }

    /// <inheritdoc />
    public override string ToString() => Describe();
}

/// <summary>
/// Judges a <see cref="History"/> against ActorQueue's promises: nothing accepted lost, duplicates only where a crash or
/// a missed deadline explains them, nothing delivered that was not sent, first deliveries in each producer's order,
/// never more held than capacity, every call answered, and the queue drained at the end. It reads only the history, so
/// it judges any run that records one: a simulation, a crash test's ledger, your own pipeline's log.
/// </summary>
public static class HistoryChecker
{
    /// <summary>Checks <paramref name="history"/>.</summary>
    /// <param name="history">The run's events.</param>
    /// <param name="ackTimeout">The queue's ack timeout: a handling that took longer explains a redelivery.</param>
    public static Verdict Check(History history, TimeSpan ackTimeout)
    {
        ArgumentNullException.ThrowIfNull(history);
        return Check(history.Events, ackTimeout);
    }

    /// <summary>Checks a list of events, in the order they were recorded.</summary>
    /// <param name="events">The run's events.</param>
    /// <param name="ackTimeout">The queue's ack timeout: a handling that took longer explains a redelivery.</param>
    public static Verdict Check(IReadOnlyList<HistoryEvent> events, TimeSpan ackTimeout)
    {
        ArgumentNullException.ThrowIfNull(events);
        var sent = new Dictionary<string, HistoryEvent>(StringComparer.Ordinal);
        var accepted = new HashSet<string>(StringComparer.Ordinal);
        var rejected = new HashSet<string>(StringComparer.Ordinal);
        var unknown = new HashSet<string>(StringComparer.Ordinal);
        var deliveries = new Dictionary<long, HistoryEvent>();
        var firstDelivery = new Dictionary<string, HistoryEvent>(StringComparer.Ordinal);
        var firstDispatch = new Dictionary<string, HistoryEvent>(StringComparer.Ordinal);
        var acks = new Dictionary<string, List<HistoryEvent>>(StringComparer.Ordinal);
        var dead = new HashSet<string>(StringComparer.Ordinal);
        var dropped = new HashSet<string>(StringComparer.Ordinal);
        var crashes = new List<HistoryEvent>();
        var pauses = new List<HistoryEvent>();
        var unexpected = new SortedSet<string>(StringComparer.Ordinal);
        var overCapacity = new List<HistoryEvent>();
        HistoryEvent? lastSample = null;

        foreach (var e in events)
        {
            var id = e.MessageId;
            switch (e.Kind)
            {
                case HistoryKind.Sent when id is not null: sent.TryAdd(id, e); break;
                case HistoryKind.Accepted when id is not null: accepted.Add(id); break;
                case HistoryKind.Rejected when id is not null: rejected.Add(id); break;
                case HistoryKind.Unknown when id is not null: unknown.Add(id); break;
                case HistoryKind.Dispatched when id is not null:
                    // When the queue sent it: its deadline runs from here, and dispatches come in the queue's order.
                    deliveries[e.DeliveryId] = e;
                    if (!firstDispatch.TryGetValue(id, out var firstSent) || e.DeliveryId < firstSent.DeliveryId) firstDispatch[id] = e;
                    break;
                case HistoryKind.Delivered when id is not null:
                    deliveries.TryAdd(e.DeliveryId, e);
                    if (!firstDelivery.TryGetValue(id, out var first) || e.DeliveryId < first.DeliveryId) firstDelivery[id] = e;
                    break;
                case HistoryKind.Acked when id is not null:
                    if (!acks.TryGetValue(id, out var list)) acks[id] = list = new List<HistoryEvent>();
                    list.Add(e);
                    break;
                case HistoryKind.DeadLettered when id is not null: dead.Add(id); break;
                case HistoryKind.Dropped when id is not null: dropped.Add(id); break;
                case HistoryKind.ConsumerCrashed or HistoryKind.ProducerCrashed or HistoryKind.QueueCrashed: crashes.Add(e); break;
                case HistoryKind.ConsumerPaused: pauses.Add(e); break;
                case HistoryKind.Sampled:
                    lastSample = e;
                    if (e.Held > e.Capacity) overCapacity.Add(e);
                    break;
            }
        }

        foreach (var id in firstDelivery.Keys.Concat(firstDispatch.Keys).Concat(acks.Keys))
            if (!sent.ContainsKey(id) || (rejected.Contains(id) && !accepted.Contains(id) && !unknown.Contains(id))) unexpected.Add(id);
        // A message whose fate was unknown and that was delivered had been accepted after all: from then on it must not be lost.
        foreach (var id in unknown)
            if (firstDispatch.ContainsKey(id) || firstDelivery.ContainsKey(id)) accepted.Add(id);

        var unsettled = accepted.Where(id => !acks.ContainsKey(id) && !dead.Contains(id) && !dropped.Contains(id)).Order(StringComparer.Ordinal).ToList();
        var undrained = lastSample is { Held: > 0 };

        var duplicates = new List<Duplicate>();
        foreach (var (id, list) in acks)
        {
            if (list.Count < 2) continue;
            // In the order the queue made the deliveries: each later one must be explained by what became of the one before.
            list.Sort((a, b) => a.DeliveryId.CompareTo(b.DeliveryId));
            var cause = DuplicateCause.Crash;
            // Each handling after the first must be explained by what happened to the one before it.
            for (var i = 1; i < list.Count && cause != DuplicateCause.Unexplained; i++)
            {
                var pairCause = Explain(list[i - 1], list[i], deliveries, crashes, pauses, ackTimeout, sent, id);
                if (pairCause == DuplicateCause.Unexplained || pairCause == DuplicateCause.MissedDeadline) cause = pairCause;
            }
            duplicates.Add(new Duplicate(id, list.Count, cause));
        }

        return new Verdict
        {
            Lost = undrained ? [] : unsettled,
            NotDrained = undrained ? unsettled : [],
            Duplicated = duplicates.OrderBy(d => d.MessageId, StringComparer.Ordinal).ToList(),
            Unexpected = unexpected.ToList(),
            OutOfOrder = firstDispatch.Count > 0 ? Inversions(sent, firstDispatch, [], []) : Inversions(sent, firstDelivery, crashes, pauses),
            CapacityExceeded = overCapacity,
            Unanswered = sent.Keys.Where(id => !accepted.Contains(id) && !rejected.Contains(id) && !unknown.Contains(id)).Order(StringComparer.Ordinal).ToList(),
            Accepted = accepted.Count,
            Handled = acks.Count,
            DeadLettered = dead.Count,
            Dropped = dropped.Count,
            Rejected = rejected.Count(id => !accepted.Contains(id)),
        };
    }

    private static DuplicateCause Explain(HistoryEvent firstAck, HistoryEvent nextAck, Dictionary<long, HistoryEvent> deliveries,
        List<HistoryEvent> crashes, List<HistoryEvent> pauses, TimeSpan ackTimeout, Dictionary<string, HistoryEvent> sent, string id)
    {
        // The same message sent (and accepted) twice, by a producer resending after it crashed, is handled twice by design.
        if (sent.TryGetValue(id, out var s) && crashes.Any(c => c.Kind == HistoryKind.ProducerCrashed && c.Actor == s.Actor)) return DuplicateCause.Crash;
        // When the first delivery was made: its dispatch if the history has it (the deadline runs from there, also while
        // it waits in the consumer for a free handler), else when its handler started.
        if (!deliveries.TryGetValue(firstAck.DeliveryId, out var delivered)) return DuplicateCause.Unexplained;
        // The ack of the first handling may not have reached the queue: its consumer, or the queue, crashed after it started.
        if (crashes.Any(c => c.At >= delivered.At && c.At <= nextAck.At &&
                             (c.Kind == HistoryKind.QueueCrashed || (c.Kind == HistoryKind.ConsumerCrashed && c.Actor == delivered.Actor))))
            return DuplicateCause.Crash;
        // It outlived its deadline, by itself or because its consumer's link to the queue was held back.
        if (firstAck.At - delivered.At >= ackTimeout) return DuplicateCause.MissedDeadline;
        if (pauses.Any(p => p.Actor == delivered.Actor && p.At <= firstAck.At && p.Until >= delivered.At)) return DuplicateCause.MissedDeadline;
        return DuplicateCause.Unexplained;
    }

    // Per producer, messages whose first delivery came before that of a message sent earlier. Dispatches are exact (the
    // queue hands out in order); handler starts are not (a delivery handed back unstarted after a crash or a pause is
    // started later), so with only those a crash or a pause before either excuses it.
    private static List<OrderInversion> Inversions(Dictionary<string, HistoryEvent> sent, Dictionary<string, HistoryEvent> firstDelivery,
        List<HistoryEvent> crashes, List<HistoryEvent> pauses)
    {
        var inversions = new List<OrderInversion>();
        foreach (var producer in sent.Values.Where(e => e.Seq >= 0).GroupBy(e => e.Actor))
        {
            // Only messages whose first delivery is in the history (attempt 1): one whose first went to a consumer that died
            // on receipt shows up first as a redelivery, which may rightly come after later messages.
            var delivered = producer.Where(e => firstDelivery.TryGetValue(e.MessageId!, out var d) && d.Attempt == 1)
                .OrderBy(e => e.Seq).Select(e => firstDelivery[e.MessageId!]).ToList();
            var latest = (HistoryEvent?)null;
            foreach (var d in delivered)
            {
                if (latest is not null && d.DeliveryId < latest.DeliveryId &&
                    !crashes.Concat(pauses).Any(c => c.At <= d.At || c.At <= latest.At))
                    inversions.Add(new OrderInversion(latest.MessageId!, d.MessageId!));
                if (latest is null || d.DeliveryId > latest.DeliveryId) latest = d;
            }
        }
        return inversions;
    }
}
