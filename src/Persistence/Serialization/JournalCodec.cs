using ActorQueue.Core;
using ActorQueue.Persistence.Serialization.Proto;
using Akka.Actor;
using Google.Protobuf;
using AkkaSerialization = Akka.Serialization.Serialization;
using ProtoDead = ActorQueue.Persistence.Serialization.Proto.Dead;
using ProtoRecovered = ActorQueue.Persistence.Serialization.Proto.Recovered;

namespace ActorQueue.Persistence.Serialization;

/// <summary>One journal row: the durable events of one burst (see <see cref="QueueJournal"/>), already encoded.</summary>
internal sealed class JournalBatch(Batch batch)
{
    public Batch Batch { get; } = batch;
}

/// <summary>
/// A queue's snapshot. One taken by the queue is encoded when the snapshot store first asks for its bytes, on the store's
/// thread, so that serializing every held message again does not pause the queue; one read back is encoded already.
/// </summary>
internal sealed class JournalSnapshot
{
    private readonly Func<Snapshot>? _encode;
    private Snapshot? _snapshot;

    public JournalSnapshot(Snapshot snapshot) => _snapshot = snapshot;

    public JournalSnapshot(Func<Snapshot> encode) => _encode = encode;

    public Snapshot Snapshot => _snapshot ??= _encode!();
}

/// <summary>
/// Turns the core's durable events and snapshots into their journal form and back. User messages go through Akka's
/// serialization (whatever serializer their type is bound to) and are kept as serializer id + manifest + bytes, so the
/// journal never depends on how they are written. Runs on the queue actor's thread only (a snapshot's encoding excepted, see Encode).
/// </summary>
internal sealed class JournalCodec(ActorSystem system)
{
    private readonly AkkaSerialization _serialization = system.Serialization;

    // Messages checked at admission, by reference: their bytes are written as checked, not serialized twice.
    private readonly Dictionary<object, Payload> _checked = new(ReferenceEqualityComparer.Instance);
    private int _checkedLimit = 1024;

    /// <summary>
    /// Forgets the bytes kept from checks (after each command): a message checked but not accepted is not kept, and one
    /// accepted later (after waiting for room) is written as it is then.
    /// </summary>
    public void ForgetChecked() => _checked.Clear();

    /// <summary>Messages read back as <see cref="UnreadablePayload"/> so far.</summary>
    public int Unreadable { get; private set; }

    /// <summary>The payloads checked and not yet written are kept up to this many (more are serialized again).</summary>
    public int CheckedLimit { get => _checkedLimit; set => _checkedLimit = Math.Max(16, value); }

    /// <summary>
    /// Whether <paramref name="message"/> can be written: null when it can (its bytes are kept for the write), else a
    /// reason that names its type and the serializer's complaint.
    /// </summary>
    public string? Check(object message)
    {
        if (_checked.ContainsKey(message)) return null;
        try
        {
            var payload = ToPayload(message);
            if (_checked.Count >= _checkedLimit) _checked.Clear();
            _checked[message] = payload;
            return null;
        }
        catch (Exception e)
        {
            return $"A durable queue cannot write a {message.GetType().FullName}: its serializer failed ({e.GetType().Name}: {e.Message}). Bind the type to a serializer that can (akka.actor.serialization-bindings).";
        }
    }

    private Payload ToPayload(object message)
    {
        // What could not be read back is written back as it was, so nothing of it is lost.
        if (message is UnreadablePayload u)
            return new Payload { SerializerId = u.SerializerId, Manifest = u.Manifest, Bytes = ByteString.CopyFrom(u.Bytes) };
        var serializer = _serialization.FindSerializerFor(message);
        return new Payload
        {
            SerializerId = serializer.Identifier,
            Manifest = AkkaSerialization.ManifestFor(serializer, message),
            Bytes = ByteString.CopyFrom(serializer.ToBinary(message)),
        };
    }

    private Payload Write(object message) => _checked.Remove(message, out var payload) ? payload : ToPayload(message);

    // A message that cannot be read back must not stop the queue from starting: it comes back as an UnreadablePayload.
    private object Read(Payload p)
    {
        var bytes = p.Bytes.ToByteArray();
        try
        {
            return _serialization.Deserialize(bytes, p.SerializerId, p.Manifest);
        }
        catch (Exception e)
        {
            Unreadable++;
            return new UnreadablePayload(p.SerializerId, p.Manifest, bytes, $"{e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>
    /// Appends the journal form of <paramref name="e"/> (a durable event) to <paramref name="batch"/>, folding a delivery
    /// or an ack that follows on from the one before into it.
    /// </summary>
    public void Append(Batch batch, QueueEvent e)
    {
        var events = batch.Events;
        var last = events.Count > 0 ? events[^1] : null;
        switch (e)
        {
            case MessageDelivered x:
                if (last?.Delivered is { Isolated: false } run && !x.Isolated && run.FirstDeliveryId + run.MessageIds.Count == x.DeliveryId)
                {
                    run.MessageIds.Add(x.MessageId);
                    return;
                }
                var delivered = new Delivered { FirstDeliveryId = x.DeliveryId, Isolated = x.Isolated };
                delivered.MessageIds.Add(x.MessageId);
                events.Add(new Event { Delivered = delivered });
                return;
            case DeliveryAcked x:
                AppendAcked(events, last, x.DeliveryId, x.DeliveryId);
                return;
            case DeliveriesAcked x:
                AppendAcked(events, last, x.FromDeliveryId, x.ToDeliveryId);
                return;
            case MessageAccepted x:
                var accepted = new Accepted { MessageId = x.MessageId, Payload = Write(x.Message), SeqNr = x.SeqNr, At = x.At.Ticks };
                if (x.ProducerId is not null) accepted.ProducerId = x.ProducerId;
                events.Add(new Event { Accepted = accepted });
                return;
            case MessagesAccepted x:
                var run2 = new AcceptedRun { FirstMessageId = x.FirstMessageId, ProducerId = x.ProducerId, FirstSeqNr = x.FirstSeqNr, At = x.At.Ticks };
                foreach (var m in x.Messages) run2.Payloads.Add(Write(m));
                events.Add(new Event { AcceptedRun = run2 });
                return;
            case MessageEvicted x:
                events.Add(new Event { Evicted = new Evicted { MessageId = x.MessageId, Newest = x.Newest } });
                return;
            case DeliveryRequeued x:
                var requeued = new Requeued { DeliveryId = x.DeliveryId, Why = (int)x.Why };
                if (x.DueAt is { } due) requeued.DueAt = due.Ticks;
                events.Add(new Event { Requeued = requeued });
                return;
            case DeliveryDeadLettered x:
                events.Add(new Event { DeadLettered = new DeadLettered { DeliveryId = x.DeliveryId, Reason = x.Reason, At = x.At.Ticks, Nacked = x.Nacked } });
                return;
            case RetryDue x:
                events.Add(new Event { RetryDue = x.MessageId });
                return;
            case DeadLetterRedriven x:
                events.Add(new Event { Redriven = x.MessageId });
                return;
            case DeadLetterEvicted x:
                events.Add(new Event { DeadEvicted = x.MessageId });
                return;
            case ProducerForgotten x:
                events.Add(new Event { ProducerForgotten = x.ProducerId });
                return;
            case Core.Recovered x:
                events.Add(new Event { Recovered = new ProtoRecovered { FirstDeliveryId = x.FirstDeliveryId, At = x.At.Ticks } });
                return;
            default:
                throw new ArgumentException($"{e.GetType().Name} is not a durable queue event.", nameof(e));
        }
    }

    private static void AppendAcked(Google.Protobuf.Collections.RepeatedField<Event> events, Event? last, long from, long to)
    {
        if (last?.Acked is { } acked && acked.ToDeliveryId + 1 == from)
        {
            acked.ToDeliveryId = to;
            return;
        }
        events.Add(new Event { Acked = new Acked { FromDeliveryId = from, ToDeliveryId = to } });
    }

    /// <summary>The core's events a journal row holds, in order, user messages deserialized.</summary>
    public IEnumerable<QueueEvent> Decode(Batch batch)
    {
        foreach (var e in batch.Events)
        {
            switch (e.KindCase)
            {
                case Event.KindOneofCase.Accepted:
                    var a = e.Accepted;
                    yield return new MessageAccepted(a.MessageId, Read(a.Payload), a.HasProducerId ? a.ProducerId : null, a.SeqNr, TimeSpan.FromTicks(a.At), false);
                    break;
                case Event.KindOneofCase.AcceptedRun:
                    var r = e.AcceptedRun;
                    var messages = new object[r.Payloads.Count];
                    for (var i = 0; i < messages.Length; i++) messages[i] = Read(r.Payloads[i]);
                    yield return new MessagesAccepted(r.FirstMessageId, messages, r.ProducerId, r.FirstSeqNr, TimeSpan.FromTicks(r.At));
                    break;
                case Event.KindOneofCase.Evicted:
                    yield return new MessageEvicted(e.Evicted.MessageId, e.Evicted.Newest);
                    break;
                case Event.KindOneofCase.Delivered:
                    var d = e.Delivered;
                    for (var i = 0; i < d.MessageIds.Count; i++)
                        yield return new MessageDelivered(d.FirstDeliveryId + i, d.MessageIds[i], 0, TimeSpan.Zero, d.Isolated);
                    break;
                case Event.KindOneofCase.Acked:
                    yield return new DeliveriesAcked(e.Acked.FromDeliveryId, e.Acked.ToDeliveryId);
                    break;
                case Event.KindOneofCase.Requeued:
                    var q = e.Requeued;
                    yield return new DeliveryRequeued(q.DeliveryId, q.HasDueAt ? TimeSpan.FromTicks(q.DueAt) : null, (Requeue)q.Why);
                    break;
                case Event.KindOneofCase.DeadLettered:
                    var dl = e.DeadLettered;
                    yield return new DeliveryDeadLettered(dl.DeliveryId, dl.Reason, TimeSpan.FromTicks(dl.At), dl.Nacked);
                    break;
                case Event.KindOneofCase.RetryDue:
                    yield return new RetryDue(e.RetryDue);
                    break;
                case Event.KindOneofCase.Redriven:
                    yield return new DeadLetterRedriven(e.Redriven);
                    break;
                case Event.KindOneofCase.DeadEvicted:
                    yield return new DeadLetterEvicted(e.DeadEvicted);
                    break;
                case Event.KindOneofCase.ProducerForgotten:
                    yield return new ProducerForgotten(e.ProducerForgotten);
                    break;
                case Event.KindOneofCase.Recovered:
                    yield return new Core.Recovered(e.Recovered.FirstDeliveryId, TimeSpan.FromTicks(e.Recovered.At));
                    break;
                default:
                    throw new InvalidOperationException($"A journal row holds an event of unknown kind {e.KindCase}; it was written by a newer version.");
            }
        }
    }

    /// <summary>
    /// The journal form of a snapshot; every user message is serialized again. Touches no state of this codec but the
    /// actor system's serialization, so it may run on any one thread.
    /// </summary>
    public Snapshot Encode(QueueSnapshot s)
    {
        var snapshot = new Snapshot { LastMessageId = s.LastMessageId, FirstDeliveryId = s.FirstDeliveryId, LastDeliveryId = s.LastDeliveryId };
        foreach (var m in s.Ready) snapshot.Ready.Add(ToHeld(m));
        foreach (var m in s.Redeliver) snapshot.Redeliver.Add(ToHeld(m));
        foreach (var m in s.Suspects) snapshot.Suspects.Add(ToHeld(m));
        foreach (var d in s.InFlight) snapshot.InFlight.Add(new InFlight { DeliveryId = d.DeliveryId, Message = ToHeld(d.Message), Isolated = d.Isolated });
        foreach (var (m, due) in s.Delayed) snapshot.Delayed.Add(new Delayed { Message = ToHeld(m), DueAt = due.Ticks });
        foreach (var d in s.Dead) snapshot.Dead.Add(new ProtoDead { Message = ToHeld(d.Message), Reason = d.Reason, At = d.At.Ticks });
        foreach (var (id, seqNr) in s.Producers) snapshot.Producers.Add(new ProducerSeq { ProducerId = id, SeqNr = seqNr });
        var c = s.Counters;
        snapshot.Counters = new Counters
        {
            Enqueued = c.Enqueued, Delivered = c.Delivered, Acked = c.Acked, Nacked = c.Nacked, Redelivered = c.Redelivered,
            DeadLettered = c.DeadLettered, Evicted = c.Evicted, DeadEvicted = c.DeadEvicted, Redriven = c.Redriven,
        };
        return snapshot;
    }

    /// <summary>A snapshot read back, user messages deserialized.</summary>
    public QueueSnapshot Decode(Snapshot s)
    {
        var c = s.Counters ?? new Counters();
        return new QueueSnapshot(
            s.LastMessageId, s.FirstDeliveryId, s.LastDeliveryId,
            s.Ready.Select(FromHeld).ToArray(),
            s.Redeliver.Select(FromHeld).ToArray(),
            s.Suspects.Select(FromHeld).ToArray(),
            s.InFlight.Select(d => new SnapshotDelivery(d.DeliveryId, FromHeld(d.Message), d.Isolated)).ToArray(),
            s.Delayed.Select(d => (FromHeld(d.Message), TimeSpan.FromTicks(d.DueAt))).ToArray(),
            s.Dead.Select(d => new DeadEntry(FromHeld(d.Message), d.Reason, TimeSpan.FromTicks(d.At))).ToArray(),
            s.Producers.Select(p => (p.ProducerId, p.SeqNr)).ToArray(),
            new QueueCounters
            {
                Enqueued = c.Enqueued, Delivered = c.Delivered, Acked = c.Acked, Nacked = c.Nacked, Redelivered = c.Redelivered,
                DeadLettered = c.DeadLettered, Evicted = c.Evicted, DeadEvicted = c.DeadEvicted, Redriven = c.Redriven,
            });
    }

    private Held ToHeld(QueuedMessage m) =>
        new() { MessageId = m.MessageId, Payload = ToPayload(m.Message), Attempts = m.Attempts, AcceptedAt = m.AcceptedAt.Ticks, Suspect = m.Suspect };

    private QueuedMessage FromHeld(Held h) => new(h.MessageId, Read(h.Payload), h.Attempts, TimeSpan.FromTicks(h.AcceptedAt), h.Suspect);
}
