using ActorQueue.Protocol;

namespace ActorQueue.Core;

/// <summary>What a <see cref="QueueMachine"/> asks its host to do; the host decides nothing.</summary>
internal interface IQueueEffects
{
    /// <summary>Sends <paramref name="message"/> to <paramref name="to"/>; false when the send failed (the host logged it).</summary>
    bool Send(object to, object message);

    /// <summary>Watches <paramref name="actor"/>, so that its termination comes back as <see cref="QueueMachine.Terminated"/>.</summary>
    void Watch(object actor);

    /// <summary>Stops watching <paramref name="actor"/>.</summary>
    void Unwatch(object actor);

    /// <summary>Runs <see cref="QueueMachine.Flush"/> once the messages already received are handled.</summary>
    void RequestFlush();

    /// <summary>A drop full mode evicted <paramref name="evicted"/>: publish it.</summary>
    void Dropped(QueuedMessage evicted);

    /// <summary>The queue has drained: stop it.</summary>
    void Stop();

    /// <summary>A line for the log: 0 debug, 1 info, 2 warning, 3 error.</summary>
    void Log(int level, string line);
}

/// <summary>
/// The queue's protocol as a pure machine: it knows its consumers and producers by opaque keys (the host's actor refs),
/// decides every reply, registration, refusal and send over one <see cref="QueueState"/>, and releases them through
/// <see cref="IQueueEffects"/> in a fixed order. The <see cref="QueueActor"/> is its host; a durable host would hold
/// the effects back until the journal has the events.
/// </summary>
internal sealed class QueueMachine
{
    /// <summary>The most drain requesters a queue keeps waiting for its <see cref="Drained"/>; more are refused.</summary>
    public const int MaxDrainRequesters = 1024;

    private const int Debug = 0, Info = 1, Warning = 2, Error = 3;

    private readonly string _name;
    private readonly QueueState _state;
    private readonly Dictionary<object, int> _consumerIds = new();
    private readonly Dictionary<int, object> _consumerRefs = new();
    private readonly Dictionary<string, object> _producerRefs = new(StringComparer.Ordinal);
    private readonly Dictionary<object, string> _producerIds = new();
    // The latest RegisterProducer.Registration of each registered producer, repeated in its credit.
    private readonly Dictionary<string, long> _registrations = new(StringComparer.Ordinal);
    private readonly HashSet<object> _drainRequesters = new();
    // Set by a Drain that asks for it: stop once no consumer is attached, or stop now with what is held.
    private bool _stopWithoutConsumers, _stopNow;

    private List<ConsumerDispatch> _dispatches = new();
    private List<ConsumerDispatch> _sending = new();
    private readonly List<ProducerUpdate> _updates = new();
    private readonly List<ParkedOutcome> _parkedOutcomes = new();
    private readonly List<RefusedStretch> _refused = new();
    private readonly List<Revocation> _revoked = new();
    private readonly List<string> _idleKeepers = new();
    private readonly List<object> _idleLocalProducers = new();

    public QueueMachine(string name, QueueState state)
    {
        _name = name;
        _state = state;
    }

    public QueueState State => _state;

    /// <summary>
    /// Local producers (<see cref="RegisterLocalProducer"/>) whose credit went unused for credit-lease at the last
    /// <see cref="Tick"/>: the host asks each to give back what it does not use, then clears the list.
    /// </summary>
    public List<object> IdleLocalProducers => _idleLocalProducers;

    /// <summary>
    /// Handles one message from <paramref name="sender"/> (null when there is none to answer). Returns false for a
    /// message that is not part of the protocol, which the caller answers with <see cref="Unknown"/>.
    /// </summary>
    public bool Receive(object message, object? sender, TimeSpan now, IQueueEffects fx)
    {
        switch (message)
        {
            case SequencedBatch m: HandleSequencedBatch(m, sender, now, fx); break;
            case AckRange m: HandleAckRange(m, sender, fx); break;
            case SequencedMessage m: HandleSequenced(m, sender, now, fx); break;
            case AckBatch m: HandleAckBatch(m, sender, fx); break;
            case Ack m: Settled(m, m.DeliveryId, _state.Ack(ConsumerOf(sender), m.DeliveryId), sender, fx); break;
            case Pull m: HandlePull(m, sender, fx); break;
            case Nack m: HandleNack(m, sender, now, fx); break;
            case InProgress m: Settled(m, m.DeliveryId, _state.Extend(ConsumerOf(sender), m.DeliveryId, now), sender, fx); break;
            case Return m: HandleReturn(m, sender, fx); break;
            case Enqueue m: HandleEnqueue(m, sender, now, fx); break;
            case RegisterProducer m: HandleRegisterProducer(m, sender, now, fx); break;
            case RequestCredit m: HandleRequestCredit(m, sender, now, fx); break;
            case Detach when sender is not null: Terminated(sender, now, fx, detached: true); break;
            case GetStats: Reply(sender, _state.GetStats(_name), fx); break;
            case GetDeadLetters m: HandleGetDeadLetters(m, sender, fx); break;
            case RedriveDeadLetter m: Redriven(_state.Redrive(m.MessageId) ? 1 : 0, sender, fx); break;
            case RedriveAllDeadLetters: Redriven(_state.RedriveAll(), sender, fx); break;
            case Drain m: HandleDrain(m, sender, fx); break;
            default: return false;
        }
        return true;
    }

    /// <summary>
    /// A message the queue does not understand. A reply-like one (<paramref name="isReply"/>: an answer sent back to the
    /// queue, or one from itself) is counted and ignored, never answered, so that no two queues bounce replies for ever.
    /// </summary>
    public void Unknown(object message, object? sender, bool isReply, IQueueEffects fx)
    {
        if (isReply || message is InvalidRequest or IEnqueueReply or IProducerReply or IConsumerReply or QueueStats or DeadLetterList or Protocol.Redriven or Drained)
        {
            _state.RecordInvalid();
            fx.Log(Warning, $"Queue {_name}: ignored a reply it did not ask for from {sender}: {message.GetType().Name}");
            return;
        }
        Invalid(message, $"Queue {_name} does not understand {message.GetType().FullName}.", sender, fx);
    }

    // ---------------------------------------------------------------- producers

    private void HandleSequenced(SequencedMessage m, object? sender, TimeSpan now, IQueueEffects fx)
    {
        if (string.IsNullOrEmpty(m.ProducerId))
        {
            Invalid(m, "SequencedMessage needs a producer id.", sender, fx);
            return;
        }
        if (m.SeqNr < 1)
        {
            // Numbers start at 1: anything lower would otherwise pass for a resend and vanish without a word.
            Invalid(m, $"SequencedMessage needs a sequence number of at least 1, not {m.SeqNr}.", sender, fx);
            return;
        }
        // Null cannot come through the constructor, but a deserialized or `with`-built message can carry one.
        TakeSequenced(m.ProducerId, m.SeqNr, m.Message, sender, now, fx);
        fx.RequestFlush();
    }

    private void HandleSequencedBatch(SequencedBatch m, object? sender, TimeSpan now, IQueueEffects fx)
    {
        if (string.IsNullOrEmpty(m.ProducerId) || m.Messages is null || m.Messages.Length == 0 || m.FirstSeqNr < 1)
        {
            Invalid(m, "SequencedBatch needs a producer id, a first sequence number of at least 1 and at least one message.", sender, fx);
            return;
        }
        // The common case, a run that follows on and fits the credit, is taken in one step; the rest one by one.
        var taken = _state.EnqueueSequencedRun(m.ProducerId, m.FirstSeqNr, m.Messages, now);
        for (var i = taken; i < m.Messages.Length; i++)
            if (!TakeSequenced(m.ProducerId, m.FirstSeqNr + i, m.Messages[i], sender, now, fx)) break;
        fx.RequestFlush();
    }

    /// <summary>Takes one numbered message; false when it was refused, and the producer has been told.</summary>
    private bool TakeSequenced(string producerId, long seqNr, object? message, object? sender, TimeSpan now, IQueueEffects fx)
    {
        var result = _state.EnqueueSequenced(producerId, seqNr, message, sender, now);
        switch (result.Status)
        {
            case EnqueueStatus.Accepted:
                if (result.Evicted is { } evicted) fx.Dropped(evicted);
                return true;
            case EnqueueStatus.Duplicate:
                // A resend of something accepted: tell the producer again where it stands.
                _state.ForgetReported(producerId);
                return true;
            case EnqueueStatus.Rejected:
                fx.Log(Debug, $"Queue {_name} rejected message {seqNr} of producer {producerId}: {result.Detail}");
                Reply(sender, new SequenceRejected(seqNr, result.Reason, result.Detail!), fx);
                return false;
            default:
                return true;
        }
    }

    private void HandleEnqueue(Enqueue m, object? sender, TimeSpan now, IQueueEffects fx)
    {
        var result = _state.Enqueue(m.Message, m.CorrelationId, sender, now, m.Wait);
        switch (result.Status)
        {
            case EnqueueStatus.Accepted:
                if (result.Evicted is { } evicted) fx.Dropped(evicted);
                Reply(sender, new EnqueueAccepted(m.CorrelationId), fx);
                fx.RequestFlush();
                break;
            case EnqueueStatus.Rejected:
                Reply(sender, new EnqueueRejected(m.CorrelationId, result.Reason, result.Detail!), fx);
                break;
            case EnqueueStatus.Parked:
                fx.RequestFlush();
                break;
        }
    }

    /// <summary>
    /// Registers a client's feed in the queue's own process as a producer (<paramref name="feed"/> is its key): it wants
    /// all the credit it can get, and keeps it (see <see cref="QueueState.RegisterProducer"/>), because it accepts its
    /// callers' messages against that credit before they reach the queue.
    /// </summary>
    public bool RegisterLocalProducer(string producerId, object feed, TimeSpan now, IQueueEffects fx)
    {
        // Another producer holds the id: taking it over would leave that one's accepted messages under numbers that are
        // no longer its own (a feed), or its resends deduplicated against the feed's (an actor).
        if (_producerRefs.TryGetValue(producerId, out var holder) && !holder.Equals(feed)) return false;
        HandleRegisterProducer(new RegisterProducer(producerId), feed, now, fx, keepsCredit: true);
        return true;
    }

    /// <summary>
    /// Takes the first <paramref name="count"/> of <paramref name="messages"/>, numbered from <paramref name="firstSeqNr"/>,
    /// from a local producer (<see cref="RegisterLocalProducer"/>): within its credit, so all are accepted; a refusal
    /// goes back to it like any producer's.
    /// </summary>
    public void ReceiveLocalRun(string producerId, object feed, long firstSeqNr, object[] messages, int count, TimeSpan now, IQueueEffects fx)
    {
        var taken = _state.EnqueueSequencedRun(producerId, firstSeqNr, messages, count, now);
        for (var i = taken; i < count; i++)
            if (!TakeSequenced(producerId, firstSeqNr + i, messages[i], feed, now, fx)) break;
        fx.RequestFlush();
    }

    private void HandleRegisterProducer(RegisterProducer m, object? sender, TimeSpan now, IQueueEffects fx, bool keepsCredit = false)
    {
        if (string.IsNullOrEmpty(m.ProducerId) || m.Demand < 0 || sender is null)
        {
            // Without a sender the queue could never see it terminate, and its credit would never come back.
            Invalid(m, "RegisterProducer needs a producer id, a demand of at least 0 and a sender to answer.", sender, fx);
            return;
        }
        if (!keepsCredit && _state.KeepsCredit(m.ProducerId) && _producerRefs.TryGetValue(m.ProducerId, out var feed) && !feed.Equals(sender))
        {
            // A client in this process holds the id and has accepted messages against its credit: it is not taken over.
            Invalid(m, $"Producer id '{m.ProducerId}' is in use by a client of queue {_name}; give each producer and client its own id.", sender, fx);
            return;
        }
        if (_producerRefs.TryGetValue(m.ProducerId, out var previous) && !previous.Equals(sender))
        {
            // Another actor takes the id (its death notice may not be here yet): the previous one is let go first, so its
            // parked messages cannot later take the numbers the new one gives its own.
            _producerIds.Remove(previous);
            if (!_consumerIds.ContainsKey(previous)) fx.Unwatch(previous);
            _state.DeactivateProducer(m.ProducerId, now, _parkedOutcomes);
            ReplyParked(fx);
        }
        else if (m.Registration > 0 && _registrations.TryGetValue(m.ProducerId, out var last) && m.Registration <= last)
        {
            // The same actor numbering its registrations from the start again: restarted in place, with a new window.
            _state.DeactivateProducer(m.ProducerId, now, _parkedOutcomes);
            ReplyParked(fx);
        }
        if (_producerIds.TryGetValue(sender, out var otherId) && otherId != m.ProducerId)
        {
            _producerRefs.Remove(otherId);
            _registrations.Remove(otherId);
            _state.DeactivateProducer(otherId, now, _parkedOutcomes);
            ReplyParked(fx);
        }
        _producerRefs[m.ProducerId] = sender;
        _producerIds[sender] = m.ProducerId;
        _registrations[m.ProducerId] = m.Registration;
        fx.Watch(sender);
        _state.RegisterProducer(m.ProducerId, m.Demand, now, keepsCredit);
        _state.ForgetReported(m.ProducerId);
        fx.RequestFlush();
        if (_state.IsDraining && m.Demand > 0 && _state.TryGetProducer(m.ProducerId, out var accepted, out _))
            fx.Send(sender, new SequenceRejected(accepted + 1, RejectReason.Draining, $"Queue {_name} is draining and accepts nothing new."));
    }

    private void HandleRequestCredit(RequestCredit m, object? sender, TimeSpan now, IQueueEffects fx)
    {
        if (string.IsNullOrEmpty(m.ProducerId) || m.UpToSeqNr < 0)
        {
            Invalid(m, $"RequestCredit needs a producer id and a sequence number of at least 0, not {m.UpToSeqNr}.", sender, fx);
            return;
        }
        if (_state.IsDraining)
        {
            // No credit will ever come: tell the producer now rather than leave its callers waiting.
            Reply(sender, new SequenceRejected(m.UpToSeqNr, RejectReason.Draining, $"Queue {_name} is draining and accepts nothing new."), fx);
            return;
        }
        if (!_state.RequestCredit(m.ProducerId, m.UpToSeqNr, now))
        {
            _state.RecordInvalid();
            Reply(sender, new SequenceRejected(m.UpToSeqNr, RejectReason.NotRegistered,
                $"Producer '{m.ProducerId}' is not registered with this queue; send RegisterProducer first."), fx);
            return;
        }
        fx.RequestFlush();
    }

    // ---------------------------------------------------------------- consumers

    private void HandlePull(Pull m, object? sender, IQueueEffects fx)
    {
        if (m.Window < 1)
        {
            Invalid(m, $"Pull must give a window of at least 1 delivery, not {m.Window}.", sender, fx);
            return;
        }
        if (sender is null)
        {
            Invalid(m, "Pull needs a sender to deliver to.", sender, fx);
            return;
        }
        var epoch = _state.FirstDeliveryId;
        if (!_consumerIds.TryGetValue(sender, out var id))
        {
            // The first pull registers the sender as a consumer.
            id = _state.AddConsumer();
            _consumerIds.Add(sender, id);
            _consumerRefs.Add(id, sender);
            fx.Watch(sender);
            fx.Log(Debug, $"Queue {_name}: consumer {sender} registered as {id}");
            fx.Send(sender, new ConsumerRegistered(_name, _state.Settings.AckTimeout, epoch));
        }
        else if (m.Epoch != epoch)
        {
            // It did not hear its registration (lost on the way): say it again.
            fx.Send(sender, new ConsumerRegistered(_name, _state.Settings.AckTimeout, epoch));
        }
        _state.Heard(id);
        _state.Pull(id, m.Window);
        fx.RequestFlush();
    }

    private void HandleReturn(Return m, object? sender, IQueueEffects fx)
    {
        if (m.DeliveryIds is null || m.DeliveryIds.Length > Return.MaxLength)
        {
            Invalid(m, $"Return needs from 0 to {Return.MaxLength} delivery ids.", sender, fx);
            return;
        }
        var consumer = ConsumerOf(sender);
        foreach (var id in m.DeliveryIds)
        {
            // A return racing the queue's own take-back (a revocation) is expected, not an error worth a reply.
            if (_state.Return(consumer, id) is { } error && error != SettleError.AlreadySettled) Refuse(id, error, 1, sender, fx);
        }
        fx.RequestFlush();
    }

    private void HandleAckBatch(AckBatch m, object? sender, IQueueEffects fx)
    {
        if (m.DeliveryIds is null)
        {
            Invalid(m, "AckBatch needs delivery ids.", sender, fx);
            return;
        }
        var consumer = ConsumerOf(sender);
        var refused = 0;
        foreach (var id in m.DeliveryIds)
        {
            if (_state.Ack(consumer, id) is not { } error) continue;
            Refuse(id, error, 1, sender, fx);
            refused++;
        }
        SettledMany(m, refused, m.DeliveryIds.Length, sender, fx);
    }

    private void HandleAckRange(AckRange m, object? sender, IQueueEffects fx)
    {
        if (!AckRange.IsValid(m.FromDeliveryId, m.ToDeliveryId))
        {
            Invalid(m, $"AckRange must run forward over at most {AckRange.MaxLength} ids, not from {m.FromDeliveryId} to {m.ToDeliveryId}.", sender, fx);
            return;
        }
        _refused.Clear();
        _state.AckRange(ConsumerOf(sender), m.FromDeliveryId, m.ToDeliveryId, _refused);
        var refused = 0;
        foreach (var r in _refused)
        {
            Refuse(r.FromDeliveryId, r.Error, r.Count, sender, fx);
            refused += r.Count;
        }
        _refused.Clear();
        SettledMany(m, refused, m.Length, sender, fx);
    }

    private void SettledMany(object command, int refused, int total, object? sender, IQueueEffects fx)
    {
        if (refused > 0)
            fx.Log(Warning, $"Queue {_name}: {command.GetType().Name} from {sender} refused for {refused} of its {total} deliveries (each answered with SettleRejected).");
        fx.RequestFlush();
    }

    private void HandleNack(Nack m, object? sender, TimeSpan now, IQueueEffects fx)
    {
        if (m.Delay < TimeSpan.Zero)
        {
            // The constructor refuses it; one built with `with` or deserialized is refused here rather than retried at once.
            Invalid(m, $"Nack's delay must not be negative, not {m.Delay}; delivery {m.DeliveryId} stays held until it is settled or its deadline passes.", sender, fx);
            return;
        }
        // The message's own id, the one GetDeadLetters lists and RedriveDeadLetter takes, for the log.
        var messageId = _state.MessageIdOf(m.DeliveryId);
        var error = _state.Nack(ConsumerOf(sender), m.DeliveryId, m.Delay, m.Reason, now, out var outcome, m.DeadLetter);
        if (error is null && outcome == NackOutcome.DeadLettered)
            fx.Log(Warning, m.DeadLetter
                ? $"Queue {_name}: message {messageId} (delivery {m.DeliveryId}) dead-lettered, its handler says it can never be handled: {m.Reason ?? "no reason given"}"
                : $"Queue {_name}: message {messageId} (delivery {m.DeliveryId}) dead-lettered after max attempts ({_state.Settings.MaxAttempts}): {m.Reason ?? "no reason given"}");
        Settled(m, m.DeliveryId, error, sender, fx);
    }

    private void Settled(object command, long deliveryId, SettleError? error, object? sender, IQueueEffects fx)
    {
        if (error is not { } e)
        {
            fx.RequestFlush();
            return;
        }
        fx.Log(Warning, $"Queue {_name}: {command.GetType().Name} from {sender} refused: {e}");
        Refuse(deliveryId, e, 1, sender, fx);
    }

    // Counts and answers one refusal (a stretch of ids from a range counts once); batches log once for all of theirs.
    private void Refuse(long deliveryId, SettleError error, int count, object? sender, IQueueEffects fx)
    {
        _state.RecordInvalid();
        Reply(sender, new SettleRejected(deliveryId, error, count), fx);
    }

    /// <summary>
    /// <paramref name="actor"/> terminated (or, <paramref name="detached"/>, left as a consumer): what it held as a
    /// consumer is taken back, and as a producer it goes inactive.
    /// </summary>
    public void Terminated(object actor, TimeSpan now, IQueueEffects fx, bool detached = false)
    {
        if (_consumerIds.Remove(actor, out var consumerId))
        {
            _consumerRefs.Remove(consumerId);
            if (!_producerIds.ContainsKey(actor)) fx.Unwatch(actor);
            var held = _state.RemoveConsumer(consumerId, now);
            if (held > 0) fx.Log(Info, $"Queue {_name}: consumer {actor} left holding {held} deliveries it had started; they are redelivered, each alone.");
            fx.RequestFlush();
        }
        // Not else: one actor may both produce and consume.
        if (!detached && _producerIds.Remove(actor, out var producerId))
        {
            _producerRefs.Remove(producerId);
            _registrations.Remove(producerId);
            _state.DeactivateProducer(producerId, now, _parkedOutcomes);
            ReplyParked(fx);
            fx.RequestFlush();
        }
    }

    // ---------------------------------------------------------------- dead letters and drain

    private void HandleGetDeadLetters(GetDeadLetters m, object? sender, IQueueEffects fx)
    {
        var entries = new List<DeadEntry>();
        _state.CopyDeadLetters(Math.Clamp(m.Max, 1, GetDeadLetters.MaxItems), entries);
        var items = new DeadLetteredMessage[entries.Count];
        for (var i = 0; i < items.Length; i++)
        {
            var e = entries[i];
            items[i] = new DeadLetteredMessage(e.Message.MessageId, e.Message.Message, e.Message.Attempts, e.Reason, DateTimeOffset.UnixEpoch + e.At);
        }
        Reply(sender, new DeadLetterList(items, _state.DeadCount), fx);
    }

    private void Redriven(int count, object? sender, IQueueEffects fx)
    {
        Reply(sender, new Protocol.Redriven(count, _state.DeadCount), fx);
        if (count > 0) fx.RequestFlush();
    }

    private void HandleDrain(Drain m, object? sender, IQueueEffects fx)
    {
        _stopWithoutConsumers |= m.StopWithoutConsumers;
        _stopNow |= m.Now;
        if (sender is not null && !_drainRequesters.Contains(sender))
        {
            if (_drainRequesters.Count >= MaxDrainRequesters)
                Invalid(Drain.Instance, $"Queue {_name} already has {MaxDrainRequesters} requesters waiting for its drain; watch it instead.", sender, fx);
            else _drainRequesters.Add(sender);
        }
        if (!_state.IsDraining)
        {
            fx.Log(Info, $"Queue {_name} draining: {_state.Held} held, accepting nothing new.");
            _state.BeginDrain(_parkedOutcomes);
            ReplyParked(fx);
        }
        fx.RequestFlush();
    }

    // ---------------------------------------------------------------- the burst and the clock

    /// <summary>
    /// The end of a burst, in a fixed order: parked messages admitted while there is room, credit granted, producers
    /// told where they stand, deliveries made; when drained, everyone waiting is told and the queue stops. Each list of
    /// sends is emptied before it is sent from, so a failing send cannot make a later flush repeat it.
    /// </summary>
    public void Flush(TimeSpan now, IQueueEffects fx)
    {
        _state.AdmitParked(now, _parkedOutcomes);
        ReplyParked(fx);
        _state.GrantCredit(now);

        _state.CollectProducerUpdates(_updates);
        var updates = _updates.Count;
        for (var i = 0; i < updates; i++)
        {
            var u = _updates[i];
            if (_producerRefs.TryGetValue(u.ProducerId, out var producer))
                fx.Send(producer, new ProducerCredit(u.AcceptedSeqNr, u.CreditSeqNr, _registrations.GetValueOrDefault(u.ProducerId)));
        }
        _updates.Clear();

        _state.Dispatch(now, _dispatches);
        // Taken out of the list before they are sent (the two lists swap), so nothing can be sent twice.
        (_sending, _dispatches) = (_dispatches, _sending);
        foreach (var d in _sending)
        {
            if (_consumerRefs.TryGetValue(d.ConsumerId, out var consumer) && fx.Send(consumer, d.Batch)) continue;
            // A consumer that cannot be sent to (or one the core knows and the actor does not, a bug) is dropped: the
            // batch never reached it, so it goes back uncounted, and the rest it held is taken back.
            fx.Log(Error, $"Queue {_name}: could not deliver to consumer {consumer ?? d.ConsumerId}; it is dropped and its deliveries taken back.");
            for (var i = 0; i < d.Batch.Count; i++) _state.Return(d.ConsumerId, d.Batch.FirstDeliveryId + i);
            _state.RemoveConsumer(d.ConsumerId, now);
            if (consumer is not null)
            {
                _consumerRefs.Remove(d.ConsumerId);
                _consumerIds.Remove(consumer);
                if (!_producerIds.ContainsKey(consumer)) fx.Unwatch(consumer);
            }
            fx.RequestFlush();
        }
        _sending.Clear();

        if (!_state.IsDraining) return;
        var left = _state.Held;
        if (_state.IsDrained) fx.Log(Info, $"Queue {_name} drained; stopping.");
        else if (_stopNow) LogUnsettled(left, "its drain's time is up", fx);
        else if (_stopWithoutConsumers && _state.ConsumerCount == 0) LogUnsettled(left, "no consumer is attached to settle them", fx);
        else return;
        var drained = new Drained(_name, left, _state.IsJournaled);
        // Consumers and producers are told too: they stop instead of waiting for the queue to come back.
        foreach (var r in _drainRequesters) fx.Send(r, drained);
        foreach (var c in _consumerRefs.Values) fx.Send(c, drained);
        foreach (var p in _producerRefs.Values) fx.Send(p, drained);
        _drainRequesters.Clear();
        fx.Stop();
    }

    private void LogUnsettled(int left, string why, IQueueEffects fx)
    {
        if (_state.IsJournaled)
            fx.Log(Warning, $"Queue {_name} stopped draining with {left} accepted messages not yet settled ({why}); its journal keeps them, and they are delivered when the queue starts again.");
        else
            fx.Log(Error, $"Queue {_name} stopped draining with {left} accepted messages not yet settled ({why}); it holds them in memory only, so they are lost.");
    }

    /// <summary>
    /// The clock: deliveries past their deadline are taken back and revoked in their consumers, retries fall due,
    /// waits time out, leases end. A flush follows only when something changed, so an idle queue stays quiet.
    /// </summary>
    public void Tick(TimeSpan now, IQueueEffects fx)
    {
        var changed = _state.Tick(now, _parkedOutcomes, _revoked, _idleKeepers);
        foreach (var id in _idleKeepers)
            if (_producerRefs.TryGetValue(id, out var producer)) _idleLocalProducers.Add(producer);
        _idleKeepers.Clear();
        ReplyParked(fx);
        if (_revoked.Count > 0)
        {
            var revoked = _revoked.ToArray();
            _revoked.Clear();
            // Grouped by consumer, in the order the core took them back (deadline order).
            foreach (var group in revoked.GroupBy(r => r.ConsumerId))
            {
                var ids = group.Select(r => r.DeliveryId).ToArray();
                fx.Log(Info, $"Queue {_name}: took back {ids.Length} deliveries from consumer {group.Key} past their ack deadline; revoked.");
                if (_consumerRefs.TryGetValue(group.Key, out var consumer)) fx.Send(consumer, new Revoked(ids));
            }
        }
        if (changed) fx.RequestFlush();
    }

    /// <summary>The queue is stopping: whatever is parked (never accepted) is rejected, and the callers told.</summary>
    public void Stopped(IQueueEffects fx)
    {
        _state.RejectAllParked(RejectReason.QueueStopped, $"Queue {_name} stopped.", _parkedOutcomes);
        ReplyParked(fx);
    }

    private void ReplyParked(IQueueEffects fx)
    {
        if (_parkedOutcomes.Count == 0) return;
        var outcomes = _parkedOutcomes.ToArray();
        _parkedOutcomes.Clear();
        foreach (var o in outcomes)
        {
            var p = o.Parked;
            if (p.ReplyTo is null) continue;
            if (p.ProducerId is not null)
            {
                // An accepted sequenced message is acknowledged cumulatively by the next ProducerCredit.
                if (!o.Accepted) fx.Send(p.ReplyTo, new SequenceRejected(p.SeqNr, o.Reason, o.Detail!));
            }
            else if (o.Accepted) fx.Send(p.ReplyTo, new EnqueueAccepted(p.CorrelationId));
            else fx.Send(p.ReplyTo, new EnqueueRejected(p.CorrelationId, o.Reason, o.Detail!));
        }
    }

    private void Invalid(object message, string reason, object? sender, IQueueEffects fx)
    {
        _state.RecordInvalid();
        fx.Log(Warning, $"Queue {_name}: invalid request from {sender}: {reason}");
        Reply(sender, new InvalidRequest(message, reason), fx);
    }

    // Every message from a known consumer shows it is alive, so it goes through here.
    private int ConsumerOf(object? sender)
    {
        if (sender is null || !_consumerIds.TryGetValue(sender, out var id)) return -1;
        _state.Heard(id);
        return id;
    }

    private static void Reply(object? to, object message, IQueueEffects fx)
    {
        if (to is not null) fx.Send(to, message);
    }
}
