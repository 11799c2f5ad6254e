namespace ActorQueue.Core;

// The mutators: each is exactly one event, and the only code that changes the state. Operations call them
// after deciding; Apply calls them when replaying. Keeping one path is what makes replay rebuild an equal state.
internal sealed partial class QueueState
{
    /// <summary>
    /// Replays one event of a journal (see <see cref="QueueJournal"/>): as <see cref="Apply"/>, except that the transient
    /// facts the journal left out are not expected. Deliveries go to a consumer no longer known and producers are
    /// known as inactive from their first accepted message. Follow the replay with <see cref="Recover"/>.
    /// </summary>
    public void Restore(QueueEvent e)
    {
        _restoring = true;
        try
        {
            Apply(e);
        }
        finally
        {
            _restoring = false;
        }
    }

    /// <summary>Replays one recorded event; throws <see cref="QueueInvariantException"/> if it does not fit the state.</summary>
    public void Apply(QueueEvent e)
    {
        switch (e)
        {
            case ProducerRegistered x: OnProducerRegistered(x.ProducerId, x.DemandSeqNr); break;
            case CreditRequested x: OnCreditRequested(x.ProducerId, x.DemandSeqNr); break;
            case ProducerDeactivated x: OnProducerDeactivated(x.ProducerId); break;
            case ProducerForgotten x: OnProducerForgotten(x.ProducerId); break;
            case CreditGranted x: OnCreditGranted(x.ProducerId, x.CreditSeqNr); break;
            case CreditReclaimed x: OnCreditReclaimed(x.ProducerId); break;
            case MessageAccepted x: OnMessageAccepted(x.MessageId, x.Message, x.ProducerId, x.SeqNr, x.At, x.FromWaitList); break;
            case MessagesAccepted x: OnMessagesAccepted(x.FirstMessageId, x.Messages, x.Messages.Length, x.ProducerId, x.FirstSeqNr, x.At); break;
            case MessageParked x: OnMessageParked(new ParkedMessage(x.Message, x.ProducerId, x.SeqNr, x.CorrelationId, x.Deadline, x.ReplyTo)); break;
            case ParkedMessageRejected: OnParkedRejected(); break;
            case ProducerParkedRejected x: OnProducerParkedRejected(x.ProducerId); break;
            case MessageRejected: OnMessageRejected(); break;
            case InvalidRequestRecorded: OnInvalidRequest(); break;
            case MessageEvicted x: OnMessageEvicted(x.MessageId, x.Newest); break;
            case ConsumerAdded x: OnConsumerAdded(x.ConsumerId); break;
            case WindowSet x: OnWindowSet(x.ConsumerId, x.Window); break;
            case ConsumerRemoved x: OnConsumerRemoved(x.ConsumerId); break;
            case ConsumerReserved x: OnConsumerReserved(x.ConsumerId, x.Reserved); break;
            case ConsumerStalled x: OnConsumerStalled(x.ConsumerId, x.Stalled); break;
            case MessageDelivered x: OnMessageDelivered(x.DeliveryId, x.MessageId, ConsumerFor(x), x.Deadline, x.Isolated); break;
            case DeliveryAcked x: OnDeliveryAcked(x.DeliveryId); break;
            case DeliveriesAcked x: OnDeliveriesAcked(x.FromDeliveryId, x.ToDeliveryId); break;
            case DeliveryRequeued x: OnDeliveryRequeued(x.DeliveryId, x.DueAt, x.Why); break;
            case DeliveryDeadLettered x: OnDeliveryDeadLettered(x.DeliveryId, x.Reason, x.At, x.Nacked); break;
            case DeadlineExtended x: OnDeadlineExtended(x.DeliveryId, x.Deadline); break;
            case RetryDue x: OnRetryDue(x.MessageId); break;
            case DeadLetterRedriven x: OnDeadLetterRedriven(x.MessageId); break;
            case DeadLetterEvicted x: OnDeadLetterEvicted(x.MessageId); break;
            case DrainStarted: OnDrainStarted(); break;
            case Recovered x: OnRecovered(x.FirstDeliveryId, x.At); break;
            default: throw new QueueInvariantException($"Unknown queue event {e.GetType().Name}.");
        }
    }

    // A journal's deliveries went to consumers of an earlier incarnation: they are held by one that is no longer known
    // (its window 0, never hungry), until the recovery step takes them back.
    private ConsumerState ConsumerFor(MessageDelivered x) =>
        _consumers.TryGetValue(x.ConsumerId, out var c) ? c
        : _restoring ? _gone
        : throw new QueueInvariantException($"Replay diverged: delivery {x.DeliveryId} names unknown consumer {x.ConsumerId}.");

    // A journal does not keep registrations: a producer is known from its first accepted message, inactive.
    private ProducerState ProducerFor(string producerId, long messageId, TimeSpan at)
    {
        if (_producers.TryGetValue(producerId, out var p)) return p;
        if (!_restoring) throw new QueueInvariantException($"Replay diverged: accepted message {messageId} names unknown producer '{producerId}'.");
        p = new ProducerState(producerId) { InactiveSince = at };
        _producers.Add(producerId, p);
        p.InactiveNode = _inactiveProducers.AddLast(p);
        return p;
    }

    private void OnProducerRegistered(string producerId, long demandSeqNr)
    {
        if (!_producers.TryGetValue(producerId, out var p))
        {
            p = new ProducerState(producerId);
            _producers.Add(producerId, p);
        }
        if (!p.Active)
        {
            p.Active = true;
            p.CreditSeqNr = p.LastSeqNr;
            _activeProducerList.Add(p);
            if (p.InactiveNode is not null)
            {
                _inactiveProducers.Remove(p.InactiveNode);
                p.InactiveNode = null;
            }
        }
        p.DemandSeqNr = demandSeqNr;
        MarkDirty(p);
    }

    private void OnCreditRequested(string producerId, long demandSeqNr)
    {
        var p = _producers[producerId];
        p.DemandSeqNr = demandSeqNr;
        var cap = Math.Max(demandSeqNr, p.LastSeqNr);
        if (p.CreditSeqNr <= cap) return;
        // Credit beyond what the producer still has to send goes back to the queue.
        var before = p.Outstanding;
        p.CreditSeqNr = cap;
        _outstandingCredit += p.Outstanding - before;
        MarkDirty(p);
    }

    private void OnProducerDeactivated(string producerId)
    {
        var p = _producers[producerId];
        if (!p.Active) return;
        _outstandingCredit -= p.Outstanding;
        p.Active = false;
        p.CreditSeqNr = p.LastSeqNr;
        _activeProducerList.Remove(p);
        p.InactiveNode = _inactiveProducers.AddLast(p);
        if (ReferenceEquals(_lastProducer, p)) _lastProducer = null;
    }

    private void OnProducerForgotten(string producerId)
    {
        // A journal knows a producer only from its first accepted message: one that never had any is unknown to it.
        if (_restoring && !_producers.ContainsKey(producerId)) return;
        if (!_producers.Remove(producerId, out var p) || p.Active)
            throw new QueueInvariantException($"Replay diverged: producer '{producerId}' was forgotten while unknown or active.");
        if (p.InactiveNode is not null) _inactiveProducers.Remove(p.InactiveNode);
        p.InactiveNode = null;
        if (ReferenceEquals(_lastProducer, p)) _lastProducer = null;
    }

    private void OnCreditGranted(string producerId, long creditSeqNr)
    {
        var p = _producers[producerId];
        var before = p.Outstanding;
        p.CreditSeqNr = creditSeqNr;
        _outstandingCredit += p.Outstanding - before;
        MarkDirty(p);
    }

    // The producer left its credit unused for credit-lease: it goes back to the queue, and the producer gets more only
    // when it asks again.
    private void OnCreditReclaimed(string producerId)
    {
        var p = _producers[producerId];
        _outstandingCredit -= p.Outstanding;
        p.CreditSeqNr = p.LastSeqNr;
        p.DemandSeqNr = p.LastSeqNr;
        MarkDirty(p);
    }

    private void OnMessageAccepted(long messageId, object message, string? producerId, long seqNr, TimeSpan at, bool fromWaitList)
    {
        if (messageId != _lastMessageId + 1) throw Diverged("accepted message", messageId, _lastMessageId + 1);
        _lastMessageId = messageId;
        if (fromWaitList) _parked.PopFront();
        if (producerId is not null)
        {
            var p = ProducerFor(producerId, messageId, at);
            if (fromWaitList) p.Parked--;
            AdvanceAccepted(p, seqNr);
        }
        _ready.PushBack(new QueuedMessage(messageId, message, 0, at));
        _counters.Enqueued++;
    }

    // A producer's run, taken whole: the same as OnMessageAccepted for each message, with the producer and the
    // counters updated once.
    private void OnMessagesAccepted(long firstMessageId, object?[] messages, int count, string producerId, long firstSeqNr, TimeSpan at)
    {
        if (firstMessageId != _lastMessageId + 1) throw Diverged("first accepted message", firstMessageId, _lastMessageId + 1);
        var p = ProducerFor(producerId, firstMessageId, at);
        if (firstSeqNr != p.LastSeqNr + 1) throw Diverged("first accepted sequence number", firstSeqNr, p.LastSeqNr + 1);
        for (var i = 0; i < count; i++) _ready.PushBack(new QueuedMessage(firstMessageId + i, messages[i]!, 0, at));
        _lastMessageId = firstMessageId + count - 1;
        AdvanceAccepted(p, firstSeqNr + count - 1);
        _counters.Enqueued += count;
    }

    // The producer's messages up to seqNr are accepted: the credit they used is no longer outstanding.
    private void AdvanceAccepted(ProducerState p, long seqNr)
    {
        var before = p.Outstanding;
        p.LastSeqNr = seqNr;
        if (p.CreditSeqNr < seqNr) p.CreditSeqNr = seqNr;
        _outstandingCredit += p.Outstanding - before;
        MarkDirty(p);
    }

    private void OnMessageParked(in ParkedMessage m)
    {
        _parked.PushBack(m);
        if (m.ProducerId is not null && _producers.TryGetValue(m.ProducerId, out var p)) p.Parked++;
    }

    private void OnProducerParkedRejected(string producerId)
    {
        if (!_producers.TryGetValue(producerId, out var p))
            throw new QueueInvariantException($"Replay diverged: parked messages of unknown producer '{producerId}' rejected.");
        for (var i = _parked.Count - 1; i >= 0; i--)
        {
            if (_parked[i].ProducerId != producerId) continue;
            _parked.RemoveAt(i);
            _counters.Rejected++;
        }
        p.Parked = 0;
    }

    private void OnParkedRejected()
    {
        var m = _parked.PopFront();
        if (m.ProducerId is not null && _producers.TryGetValue(m.ProducerId, out var p)) p.Parked--;
        _counters.Rejected++;
    }

    private void OnMessageRejected() => _counters.Rejected++;

    private void OnInvalidRequest() => _counters.Invalid++;

    private QueuedMessage PeekEvictable(bool newest) => newest
        ? (_ready.Count > 0 ? _ready[_ready.Count - 1] : _redeliver[_redeliver.Count - 1])
        : (_redeliver.Count > 0 ? _redeliver.PeekFront() : _ready.PeekFront());

    private void OnMessageEvicted(long messageId, bool newest)
    {
        var m = newest
            ? (_ready.Count > 0 ? _ready.PopBack() : _redeliver.PopBack())
            : (_redeliver.Count > 0 ? _redeliver.PopFront() : _ready.PopFront());
        if (m.MessageId != messageId) throw Diverged("evicted message", messageId, m.MessageId);
        _counters.Evicted++;
    }

    private void OnConsumerAdded(int consumerId)
    {
        _lastConsumerId = consumerId;
        _consumers.Add(consumerId, new ConsumerState(consumerId));
    }

    private void OnWindowSet(int consumerId, int window)
    {
        var c = _consumers[consumerId];
        c.Window = window;
        UpdateHungry(c);
    }

    private void OnConsumerRemoved(int consumerId)
    {
        var c = _consumers[consumerId];
        _consumers.Remove(consumerId);
        if (c.Hungry) _hungry.Remove(c);
    }

    private void OnConsumerReserved(int consumerId, bool reserved)
    {
        var c = _consumers[consumerId];
        c.Reserved = reserved;
        UpdateHungry(c);
    }

    private void OnConsumerStalled(int consumerId, bool stalled)
    {
        var c = _consumers[consumerId];
        c.Stalled = stalled;
        UpdateHungry(c);
    }

    // A consumer is given new work while it has room in its window, holds no suspect, is not kept free for one and
    // has not let a deadline pass since it was last heard from.
    private void UpdateHungry(ConsumerState c)
    {
        var hungry = c.InFlight < c.Window && !c.Isolating && !c.Reserved && !c.Stalled;
        if (hungry == c.Hungry) return;
        c.Hungry = hungry;
        if (hungry) _hungry.Add(c);
        else _hungry.Remove(c);
    }

    private QueuedMessage NextReady() => _redeliver.Count > 0 ? _redeliver.PeekFront() : _ready.PeekFront();

    private QueuedMessage OnMessageDelivered(long deliveryId, long messageId, ConsumerState c, TimeSpan deadline, bool isolated)
    {
        var m = isolated ? _suspects.PopFront() : _redeliver.Count > 0 ? _redeliver.PopFront() : _ready.PopFront();
        if (m.MessageId != messageId) throw Diverged("delivered message", messageId, m.MessageId);
        if (deliveryId != _lastDeliveryId + 1) throw Diverged("delivery id", deliveryId, _lastDeliveryId + 1);
        m = m with { Attempts = m.Attempts + 1 };
        _inFlight.Add(deliveryId, new InFlightDelivery(m, c.Id, deadline, isolated, _deadlineTail, 0));
        LinkAtTail(deliveryId);
        _lastDeliveryId = deliveryId;
        c.InFlight++;
        if (isolated) c.Isolating = true;
        UpdateHungry(c);
        _counters.Delivered++;
        if (m.Attempts > 1) _counters.Redelivered++;
        return m;
    }

    // The deadline list: the entry's Prev is already set to the old tail.
    private void LinkAtTail(long deliveryId)
    {
        if (_deadlineTail != 0) InFlightRef(_deadlineTail).Next = deliveryId;
        else _deadlineHead = deliveryId;
        _deadlineTail = deliveryId;
    }

    private void Unlink(in InFlightDelivery d)
    {
        if (d.Prev != 0) InFlightRef(d.Prev).Next = d.Next;
        else _deadlineHead = d.Next;
        if (d.Next != 0) InFlightRef(d.Next).Prev = d.Prev;
        else _deadlineTail = d.Prev;
    }

    private InFlightDelivery Settle(long deliveryId)
    {
        _inFlight.Remove(deliveryId, out var d);
        Unlink(d);
        if (_consumers.TryGetValue(d.ConsumerId, out var c))
        {
            c.InFlight--;
            if (d.Isolated) c.Isolating = false;
            UpdateHungry(c);
        }
        return d;
    }

    private void OnDeliveryAcked(long deliveryId)
    {
        Settle(deliveryId);
        _counters.Acked++;
    }

    // A stretch of deliveries acked at once, all of them in flight: the same as OnDeliveryAcked for each.
    private void OnDeliveriesAcked(long from, long to)
    {
        ConsumerState? c = null;
        for (var id = from; id <= to; id++)
        {
            if (!_inFlight.Remove(id, out var d)) throw Diverged("acked delivery", id, -1);
            Unlink(d);
            if (c is null || c.Id != d.ConsumerId)
            {
                if (c is not null) UpdateHungry(c);
                _consumers.TryGetValue(d.ConsumerId, out c);
            }
            if (c is null) continue;
            c.InFlight--;
            if (d.Isolated) c.Isolating = false;
        }
        if (c is not null) UpdateHungry(c);
        _counters.Acked += to - from + 1;
    }

    private void OnDeliveryRequeued(long deliveryId, TimeSpan? dueAt, Requeue why)
    {
        var d = Settle(deliveryId);
        var m = d.Message;
        if (why == Requeue.Nacked) _counters.Nacked++;
        // A delivery given back unstarted keeps its attempt count and its suspicion; one lost with its consumer becomes
        // a suspect; one that was handled to a verdict (a nack) or timed out is cleared.
        m = why switch
        {
            Requeue.Returned => m with { Attempts = m.Attempts - 1 },
            Requeue.ConsumerLost => m with { Suspect = true },
            _ => m with { Suspect = false },
        };
        if (dueAt is { } due) _delayed.Enqueue(m, (due, m.MessageId));
        else if (m.Suspect) _suspects.PushBack(m);
        else _redeliver.PushBack(m);
    }

    private void OnDeliveryDeadLettered(long deliveryId, string reason, TimeSpan at, bool nacked)
    {
        var m = Settle(deliveryId).Message;
        if (nacked) _counters.Nacked++;
        _dead.PushBack(new DeadEntry(m with { Suspect = false }, reason, at));
        _counters.DeadLettered++;
    }

    private void OnDeadlineExtended(long deliveryId, TimeSpan deadline)
    {
        ref var d = ref InFlightRef(deliveryId);
        d.Deadline = deadline;
        if (_deadlineTail == deliveryId) return;
        // Move to the tail: now + ack-timeout is never earlier than any deadline already there.
        Unlink(d);
        d.Prev = _deadlineTail;
        d.Next = 0;
        LinkAtTail(deliveryId);
    }

    private void OnRetryDue(long messageId)
    {
        var m = _delayed.Dequeue();
        if (m.MessageId != messageId) throw Diverged("retried message", messageId, m.MessageId);
        _redeliver.PushBack(m);
    }

    private void OnDeadLetterRedriven(long messageId)
    {
        for (var i = 0; i < _dead.Count; i++)
        {
            if (_dead[i].Message.MessageId != messageId) continue;
            var m = _dead.RemoveAt(i).Message;
            _ready.PushBack(m with { Attempts = 0 });
            _counters.Redriven++;
            return;
        }
        throw Diverged("redriven dead letter", messageId, -1);
    }

    private void OnDeadLetterEvicted(long messageId)
    {
        var d = _dead.PopFront();
        if (d.Message.MessageId != messageId) throw Diverged("evicted dead letter", messageId, d.Message.MessageId);
        _counters.DeadEvicted++;
    }

    private void OnDrainStarted()
    {
        _draining = true;
        foreach (var p in _activeProducerList)
        {
            _outstandingCredit -= p.Outstanding;
            p.CreditSeqNr = p.LastSeqNr;
            MarkDirty(p);
        }
    }

    // A new incarnation: what was in flight goes back (attempt counted), consumers are forgotten, producers go inactive.
    private void OnRecovered(long firstDeliveryId, TimeSpan at)
    {
        var ids = _inFlight.Keys.ToArray();
        Array.Sort(ids);
        foreach (var id in ids) _redeliver.PushBack(Settle(id).Message with { Suspect = false });
        _consumers.Clear();
        _hungry.Clear();
        foreach (var p in _activeProducerList.ToArray()) OnProducerDeactivated(p.Id);
        // Every producer is gone as of the recovery (a replayed one was last seen whenever its messages were): each gets
        // producer-retention from now to come back and have its resends deduplicated.
        foreach (var p in _inactiveProducers) p.InactiveSince = at;
        _firstDeliveryId = firstDeliveryId;
        _lastDeliveryId = firstDeliveryId - 1;
    }

    private void MarkDirty(ProducerState p)
    {
        if (p.Dirty) return;
        p.Dirty = true;
        _dirtyProducers.Add(p);
    }

    private static QueueInvariantException Diverged(string what, long expected, long actual) =>
        new($"Replay diverged: the {what} was {expected} in the event but {actual} in the state.");
}
