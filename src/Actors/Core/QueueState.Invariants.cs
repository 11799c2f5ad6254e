using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace ActorQueue.Core;

// The invariants, in one place. AssertInvariants is the cheap arithmetic the actor checks after every message in
// debug builds; CheckInvariants walks every structure and is what the core tests and simulations call.
internal sealed partial class QueueState
{
    [Conditional("DEBUG")]
    public void AssertInvariants() => CheckCounts();

    /// <summary>Throws <see cref="QueueInvariantException"/> naming the first invariant that does not hold.</summary>
    public void CheckInvariants()
    {
        CheckCounts();

        // Every accepted message is in exactly one place.
        var seen = new HashSet<long>();
        void See(long id, string where)
        {
            if (!seen.Add(id)) throw new QueueInvariantException($"Message {id} is held twice (again in {where}).");
        }
        for (var i = 0; i < _ready.Count; i++) See(_ready[i].MessageId, "ready");
        for (var i = 0; i < _redeliver.Count; i++) See(_redeliver[i].MessageId, "redeliver");
        for (var i = 0; i < _suspects.Count; i++) See(_suspects[i].MessageId, "suspects");
        foreach (var d in _inFlight.Values) See(d.Message.MessageId, "in flight");
        foreach (var (m, _) in _delayed.UnorderedItems) See(m.MessageId, "delayed");
        for (var i = 0; i < _dead.Count; i++) See(_dead[i].Message.MessageId, "dead");

        long outstanding = 0;
        var active = 0;
        var inactive = 0;
        foreach (var p in _producers.Values)
        {
            if (p.Active) active++;
            else inactive++;
            if ((p.InactiveNode is null) != p.Active) throw new QueueInvariantException($"Producer '{p.Id}' is misfiled among the inactive.");
            var parked = 0;
            for (var i = 0; i < _parked.Count; i++) if (_parked[i].ProducerId == p.Id) parked++;
            if (parked != p.Parked) throw new QueueInvariantException($"Producer '{p.Id}' counts {p.Parked} parked but {parked} are.");
            if (p.CreditSeqNr < p.LastSeqNr) throw new QueueInvariantException($"Producer '{p.Id}' has credit {p.CreditSeqNr} below its accepted {p.LastSeqNr}.");
            outstanding += p.Outstanding;
        }
        if (outstanding != _outstandingCredit) throw new QueueInvariantException($"Outstanding credit is {_outstandingCredit} but the producers hold {outstanding}.");
        if (active != _activeProducerList.Count) throw new QueueInvariantException($"{_activeProducerList.Count} producers listed active but {active} are.");
        if (inactive != _inactiveProducers.Count) throw new QueueInvariantException($"{_inactiveProducers.Count} producers listed inactive but {inactive} are.");

        foreach (var c in _consumers.Values)
        {
            var hungry = c.InFlight < c.Window && !c.Isolating && !c.Reserved && !c.Stalled;
            if (hungry != c.Hungry || hungry != _hungry.Contains(c)) throw new QueueInvariantException($"Consumer {c.Id} holding {c.InFlight} of window {c.Window} is misfiled among the hungry.");
            var held = 0;
            var isolated = 0;
            foreach (var d in _inFlight.Values)
            {
                if (d.ConsumerId != c.Id) continue;
                held++;
                if (d.Isolated) isolated++;
            }
            if (held != c.InFlight) throw new QueueInvariantException($"Consumer {c.Id} counts {c.InFlight} in flight but holds {held}.");
            if (c.Isolating != (isolated > 0) || (isolated > 0 && held != 1)) throw new QueueInvariantException($"Consumer {c.Id} holds {isolated} isolated deliveries among {held}.");
        }
        foreach (var d in _inFlight.Values)
            if (!_consumers.ContainsKey(d.ConsumerId)) throw new QueueInvariantException($"Message {d.Message.MessageId} is in flight to unknown consumer {d.ConsumerId}.");
        // The deadline list holds every delivery in flight, in deadline order.
        var linked = 0;
        var previous = 0L;
        var last = TimeSpan.MinValue;
        for (var id = _deadlineHead; id != 0; id = _inFlight[id].Next)
        {
            var d = _inFlight[id];
            if (d.Prev != previous) throw new QueueInvariantException($"Delivery {id} links back to {d.Prev}, not {previous}.");
            if (d.Deadline < last) throw new QueueInvariantException($"Delivery {id} is due before the delivery ahead of it.");
            if (++linked > _inFlight.Count) throw new QueueInvariantException("The deadline list has a cycle.");
            previous = id;
            last = d.Deadline;
        }
        if (linked != _inFlight.Count || previous != _deadlineTail) throw new QueueInvariantException($"The deadline list links {linked} of {_inFlight.Count} deliveries.");
        for (var i = 0; i < _suspects.Count; i++)
            if (!_suspects[i].Suspect) throw new QueueInvariantException($"Message {_suspects[i].MessageId} waits among suspects unmarked.");
        if (_dead.Count > _settings.DeadLetterCapacity) throw new QueueInvariantException($"{_dead.Count} dead letters exceed dead-letter-capacity {_settings.DeadLetterCapacity}.");
    }

    private void CheckCounts()
    {
        var held = Held;
        if (held > _settings.Capacity) throw new QueueInvariantException($"Held {held} exceeds capacity {_settings.Capacity}.");
        if (_outstandingCredit < 0) throw new QueueInvariantException($"Outstanding credit {_outstandingCredit} is negative.");
        if (held + _outstandingCredit > _settings.Capacity)
            throw new QueueInvariantException($"Credit {_outstandingCredit} exceeds free capacity {_settings.Capacity - held}.");
        if (_parked.Count > _settings.Capacity) throw new QueueInvariantException($"{_parked.Count} parked messages exceed capacity {_settings.Capacity}.");
        var c = _counters;
        var expectedHeld = c.Enqueued + c.Redriven - c.Acked - c.Evicted - c.DeadLettered;
        if (expectedHeld != held) throw new QueueInvariantException($"Counters account for {expectedHeld} held messages but {held} are held.");
        var expectedDead = c.DeadLettered - c.Redriven - c.DeadEvicted;
        if (expectedDead != _dead.Count) throw new QueueInvariantException($"Counters account for {expectedDead} dead letters but {_dead.Count} are stored.");
    }

    /// <summary>
    /// A canonical text of what a journal keeps: the messages held and where, dead letters and producers' sequence
    /// numbers. A state restored from its journal describes itself as the state it was recorded from.
    /// </summary>
    public string DescribeDurable()
    {
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        sb.Append(inv, $"lastMessage={_lastMessageId} firstDelivery={_firstDeliveryId} lastDelivery={_lastDeliveryId}\nready");
        AppendWaiting(sb);
        sb.Append("\ninflight");
        foreach (var (id, d) in _inFlight.OrderBy(kv => kv.Key)) sb.Append(inv, $" {id}:{Show(d.Message)}");
        AppendDelayedAndDead(sb);
        sb.Append("\nproducers");
        // A producer that never had a message accepted is as good as unknown: its next number is 1 either way.
        foreach (var p in _producers.Values.Where(x => x.LastSeqNr > 0).OrderBy(x => x.Id, StringComparer.Ordinal)) sb.Append(inv, $" {p.Id}:{p.LastSeqNr}");
        return sb.ToString();
    }

    // The ready, redelivery and suspect rings, as both descriptions show them (after "ready").
    private void AppendWaiting(StringBuilder sb)
    {
        for (var i = 0; i < _ready.Count; i++) sb.Append(' ').Append(Show(_ready[i]));
        sb.Append("\nredeliver");
        for (var i = 0; i < _redeliver.Count; i++) sb.Append(' ').Append(Show(_redeliver[i]));
        sb.Append("\nsuspects");
        for (var i = 0; i < _suspects.Count; i++) sb.Append(' ').Append(Show(_suspects[i]));
    }

    private void AppendDelayedAndDead(StringBuilder sb)
    {
        var inv = CultureInfo.InvariantCulture;
        sb.Append("\ndelayed");
        foreach (var (m, due) in _delayed.UnorderedItems.OrderBy(x => x.Priority)) sb.Append(inv, $" {Show(m)}@{due.Due.Ticks}");
        sb.Append("\ndead");
        for (var i = 0; i < _dead.Count; i++) sb.Append(inv, $" {Show(_dead[i].Message)}:{_dead[i].Reason}@{_dead[i].At.Ticks}");
    }

    private static string Show(QueuedMessage m) => string.Create(CultureInfo.InvariantCulture, $"m{m.MessageId}[{m.Message}]x{m.Attempts}@{m.AcceptedAt.Ticks}{(m.Suspect ? "?" : "")}");

    /// <summary>
    /// A canonical text of the whole state (everything but scheduling hints and what producers were last told),
    /// so two states can be compared: replay tests assert the replayed state describes the same.
    /// </summary>
    public string Describe()
    {
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        sb.Append(inv, $"capacity={_settings.Capacity} draining={_draining} lastMessage={_lastMessageId} firstDelivery={_firstDeliveryId} lastDelivery={_lastDeliveryId} lastConsumer={_lastConsumerId} outstanding={_outstandingCredit}\n");
        var c = _counters;
        sb.Append(inv, $"counters enq={c.Enqueued} del={c.Delivered} ack={c.Acked} nack={c.Nacked} redel={c.Redelivered} dead={c.DeadLettered} evicted={c.Evicted} deadEvicted={c.DeadEvicted} rej={c.Rejected} inv={c.Invalid} redriven={c.Redriven}\n");
        sb.Append("ready");
        AppendWaiting(sb);
        sb.Append("\ninflight");
        foreach (var (id, d) in _inFlight.OrderBy(kv => kv.Key)) sb.Append(inv, $" {id}:{Show(d.Message)}@c{d.ConsumerId}<{d.Deadline.Ticks}{(d.Isolated ? "(alone)" : "")}");
        AppendDelayedAndDead(sb);
        sb.Append("\nparked");
        for (var i = 0; i < _parked.Count; i++) sb.Append(inv, $" {_parked[i].ProducerId}#{_parked[i].SeqNr}/{_parked[i].CorrelationId}<{_parked[i].Deadline.Ticks}");
        sb.Append("\nproducers");
        foreach (var p in _producers.Values.OrderBy(x => x.Id, StringComparer.Ordinal)) sb.Append(inv, $" {p.Id}:{p.LastSeqNr}/{p.CreditSeqNr}/{p.DemandSeqNr}{(p.Active ? "" : "(inactive)")}");
        sb.Append(" active");
        foreach (var p in _activeProducerList) sb.Append(inv, $" {p.Id}");
        sb.Append("\nconsumers");
        foreach (var con in _consumers.Values.OrderBy(x => x.Id)) sb.Append(inv, $" c{con.Id}:window={con.Window},inflight={con.InFlight}{(con.Reserved ? ",reserved" : "")}{(con.Stalled ? ",stalled" : "")}");
        return sb.ToString();
    }
}
