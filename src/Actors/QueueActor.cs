using ActorQueue.Core;
using ActorQueue.Metrics;
using ActorQueue.Protocol;
using Akka.Actor;
using Akka.Event;

namespace ActorQueue;

/// <summary>
/// The queue: owns one <see cref="QueueState"/>, turns protocol messages into core calls and the core's outcomes
/// into sends. Replies that can wait (producer credit, deliveries) are gathered and sent once per burst of
/// messages, when a self-sent flush comes round; one periodic tick drives every deadline and retry.
/// Supervise it with Resume (as <see cref="QueueGuardian"/> does): a restart would lose its buffer.
/// </summary>
public sealed class QueueActor : UntypedActor, IWithTimers
{
    private readonly string _name;
    private readonly QueueState _state;
    private readonly QueueMetrics _metrics;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    private readonly Dictionary<IActorRef, int> _consumerIds = new();
    private readonly Dictionary<int, IActorRef> _consumerRefs = new();
    private readonly Dictionary<string, IActorRef> _producerRefs = new(StringComparer.Ordinal);
    private readonly Dictionary<IActorRef, string> _producerIds = new();
    private readonly HashSet<IActorRef> _drainRequesters = new();

    private readonly List<ConsumerDispatch> _dispatches = new();
    private readonly List<ProducerUpdate> _updates = new();
    private readonly List<ParkedOutcome> _parkedOutcomes = new();
    private readonly List<RefusedStretch> _refused = new();
    private readonly List<Revocation> _revoked = new();
    private bool _flushPending;
    private TimeSpan? _tickAt;

    /// <summary>The most drain requesters a queue keeps waiting for its <see cref="Drained"/>; more are refused.</summary>
    internal const int MaxDrainRequesters = 1024;

    /// <summary>Creates the Props of a queue.</summary>
    /// <param name="name">The queue's name, used in stats, logs and errors.</param>
    /// <param name="settings">Its settings; see <see cref="QueueSettings.Create(Akka.Configuration.Config, string?)"/>.</param>
    public static Props Props(string name, QueueSettings settings)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(settings);
        return Akka.Actor.Props.Create(() => new QueueActor(name, settings));
    }

    /// <summary>Creates a queue; use <see cref="Props(string, QueueSettings)"/> rather than calling this directly.</summary>
    /// <param name="name">The queue's name.</param>
    /// <param name="settings">Its settings.</param>
    public QueueActor(string name, QueueSettings settings)
    {
        _name = name;
        _metrics = new QueueMetrics(name);
        // A new incarnation (first start or a restart) delivers under ids no earlier one used.
        _state = new QueueState(settings, observer: _metrics, firstDeliveryId: QueueState.DeliveryIdEpoch(Now));
    }

    /// <summary>The actor's timers (set by Akka).</summary>
    public ITimerScheduler Timers { get; set; } = null!;

    // Wall-clock time from the system's scheduler: instants keep their meaning across restarts, and a TestScheduler
    // drives the queue in virtual time.
    private TimeSpan Now => Context.System.Scheduler.Now - DateTimeOffset.UnixEpoch;

    /// <inheritdoc />
    protected override void PreStart()
    {
        ActorQueueMetrics.Register(_metrics);
    }

    /// <inheritdoc />
    protected override void PostStop()
    {
        _state.RejectAllParked(RejectReason.QueueStopped, $"Queue {_name} stopped.", _parkedOutcomes);
        ReplyParked();
        _metrics.Publish(_state);
        ActorQueueMetrics.Unregister(_metrics);
        if (_state.Held > 0 || _state.DeadCount > 0)
            _log.Warning("Queue {0} stopped holding {1} messages and {2} dead letters; an in-memory queue loses them.", _name, _state.Held, _state.DeadCount);
    }

    /// <inheritdoc />
    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case SequencedBatch m: HandleSequencedBatch(m); break;
            case AckRange m: HandleAckRange(m); break;
            case SequencedMessage m: HandleSequenced(m); break;
            case AckBatch m: HandleAckBatch(m); break;
            case Ack m: Settled(m, m.DeliveryId, _state.Ack(ConsumerOf(Sender), m.DeliveryId)); break;
            case Pull m: HandlePull(m); break;
            case QueueFlush: Flush(); break;
            case Nack m: HandleNack(m); break;
            case InProgress m: Settled(m, m.DeliveryId, _state.Extend(ConsumerOf(Sender), m.DeliveryId, Now)); break;
            case Return m: HandleReturn(m); break;
            case Enqueue m: HandleEnqueue(m); break;
            case RegisterProducer m: HandleRegisterProducer(m); break;
            case RequestCredit m: HandleRequestCredit(m); break;
            case QueueTick: HandleTick(); break;
            case Terminated m: HandleTerminated(m.ActorRef, detached: false); break;
            case Detach: HandleTerminated(Sender, detached: true); break;
            case GetStats: Sender.Tell(_state.GetStats(_name)); break;
            case GetDeadLetters m: HandleGetDeadLetters(m); break;
            case RedriveDeadLetter m: Redriven(_state.Redrive(m.MessageId) ? 1 : 0); break;
            case RedriveAllDeadLetters: Redriven(_state.RedriveAll()); break;
            case Drain: HandleDrain(); break;
            default: HandleUnknown(message); break;
        }
        _state.AssertInvariants();
    }

    private void HandleSequenced(SequencedMessage m)
    {
        if (string.IsNullOrEmpty(m.ProducerId))
        {
            Invalid(m, "SequencedMessage needs a producer id.");
            return;
        }
        // Null cannot come through the constructor, but a deserialized or `with`-built message can carry one.
        TakeSequenced(m.ProducerId, m.SeqNr, m.Message, Now);
        RequestFlush();
    }

    private void HandleSequencedBatch(SequencedBatch m)
    {
        if (string.IsNullOrEmpty(m.ProducerId) || m.Messages is null || m.Messages.Length == 0 || m.FirstSeqNr < 1)
        {
            Invalid(m, "SequencedBatch needs a producer id, a first sequence number of at least 1 and at least one message.");
            return;
        }
        var now = Now;
        // The common case, a run that follows on and fits the credit, is taken in one step; the rest one by one.
        var taken = _state.EnqueueSequencedRun(m.ProducerId, m.FirstSeqNr, m.Messages, now);
        for (var i = taken; i < m.Messages.Length; i++)
            if (!TakeSequenced(m.ProducerId, m.FirstSeqNr + i, m.Messages[i], now)) break;
        RequestFlush();
    }

    /// <summary>Takes one numbered message; false when it was refused, and the producer has been told.</summary>
    private bool TakeSequenced(string producerId, long seqNr, object? message, TimeSpan now)
    {
        var result = _state.EnqueueSequenced(producerId, seqNr, message, Sender, now);
        switch (result.Status)
        {
            case EnqueueStatus.Accepted:
                if (result.Evicted is { } evicted) PublishDropped(evicted);
                return true;
            case EnqueueStatus.Duplicate:
                // A resend of something accepted: tell the producer again where it stands.
                _state.ForgetReported(producerId);
                return true;
            case EnqueueStatus.Rejected:
                _log.Debug("Queue {0} rejected message {1} of producer {2}: {3}", _name, seqNr, producerId, result.Detail);
                Sender.Tell(new SequenceRejected(seqNr, result.Reason, result.Detail!));
                return false;
            default:
                return true;
        }
    }

    private void HandleEnqueue(Enqueue m)
    {
        var result = _state.Enqueue(m.Message, m.CorrelationId, Sender, Now, m.Wait);
        switch (result.Status)
        {
            case EnqueueStatus.Accepted:
                if (result.Evicted is { } evicted) PublishDropped(evicted);
                Reply(Sender, new EnqueueAccepted(m.CorrelationId));
                RequestFlush();
                break;
            case EnqueueStatus.Rejected:
                Reply(Sender, new EnqueueRejected(m.CorrelationId, result.Reason, result.Detail!));
                break;
            case EnqueueStatus.Parked:
                RequestFlush();
                break;
        }
    }

    private void HandleRegisterProducer(RegisterProducer m)
    {
        if (string.IsNullOrEmpty(m.ProducerId) || m.Demand < 0 || Sender.IsNobody())
        {
            // Without a sender the queue could never see it terminate, and its credit would never come back.
            Invalid(m, "RegisterProducer needs a producer id, a demand of at least 0 and a sender to answer.");
            return;
        }
        if (_producerRefs.TryGetValue(m.ProducerId, out var previous) && !previous.Equals(Sender))
        {
            _producerIds.Remove(previous);
            Context.Unwatch(previous);
        }
        var now = Now;
        if (_producerIds.TryGetValue(Sender, out var otherId) && otherId != m.ProducerId)
        {
            _producerRefs.Remove(otherId);
            _state.DeactivateProducer(otherId, now);
        }
        _producerRefs[m.ProducerId] = Sender;
        _producerIds[Sender] = m.ProducerId;
        Context.Watch(Sender);
        _state.RegisterProducer(m.ProducerId, m.Demand, now);
        _state.ForgetReported(m.ProducerId);
        RequestFlush();
        if (_state.IsDraining && m.Demand > 0 && _state.TryGetProducer(m.ProducerId, out var accepted, out _))
            Sender.Tell(new SequenceRejected(accepted + 1, RejectReason.Draining, $"Queue {_name} is draining and accepts nothing new."));
    }

    private void HandleRequestCredit(RequestCredit m)
    {
        if (string.IsNullOrEmpty(m.ProducerId))
        {
            Invalid(m, "RequestCredit needs a producer id.");
            return;
        }
        if (_state.IsDraining)
        {
            // No credit will ever come: tell the producer now rather than leave its callers waiting.
            Sender.Tell(new SequenceRejected(m.UpToSeqNr, RejectReason.Draining, $"Queue {_name} is draining and accepts nothing new."));
            return;
        }
        if (!_state.RequestCredit(m.ProducerId, m.UpToSeqNr, Now))
        {
            _state.RecordInvalid();
            Sender.Tell(new SequenceRejected(m.UpToSeqNr, RejectReason.NotRegistered,
                $"Producer '{m.ProducerId}' is not registered with this queue; send RegisterProducer first."));
            return;
        }
        RequestFlush();
    }

    private void HandlePull(Pull m)
    {
        if (m.Window < 1)
        {
            Invalid(m, $"Pull must give a window of at least 1 delivery, not {m.Window}.");
            return;
        }
        var epoch = _state.FirstDeliveryId;
        if (!_consumerIds.TryGetValue(Sender, out var id))
        {
            if (Sender.IsNobody())
            {
                Invalid(m, "Pull needs a sender to deliver to.");
                return;
            }
            id = _state.AddConsumer();
            _consumerIds.Add(Sender, id);
            _consumerRefs.Add(id, Sender);
            Context.Watch(Sender);
            _log.Debug("Queue {0}: consumer {1} registered as {2}", _name, Sender, id);
            Send(Sender, new ConsumerRegistered(_name, _state.Settings.AckTimeout, epoch));
        }
        else if (m.Epoch != epoch)
        {
            // It did not hear its registration (lost on the way): say it again.
            Send(Sender, new ConsumerRegistered(_name, _state.Settings.AckTimeout, epoch));
        }
        _state.Pull(id, m.Window);
        RequestFlush();
    }

    private void HandleReturn(Return m)
    {
        if (m.DeliveryIds is null || m.DeliveryIds.Length > Return.MaxLength)
        {
            Invalid(m, $"Return needs from 0 to {Return.MaxLength} delivery ids.");
            return;
        }
        var consumer = ConsumerOf(Sender);
        foreach (var id in m.DeliveryIds)
        {
            // A return racing the queue's own take-back (a revocation) is expected, not an error worth a reply.
            if (_state.Return(consumer, id) is { } error && error != SettleError.AlreadySettled) Refuse(id, error, 1);
        }
        RequestFlush();
    }

    private void HandleAckBatch(AckBatch m)
    {
        if (m.DeliveryIds is null)
        {
            Invalid(m, "AckBatch needs delivery ids.");
            return;
        }
        var consumer = ConsumerOf(Sender);
        var refused = 0;
        foreach (var id in m.DeliveryIds) refused += AckOne(consumer, id);
        SettledMany(m, refused, m.DeliveryIds.Length);
    }

    private void HandleAckRange(AckRange m)
    {
        if (!AckRange.IsValid(m.FromDeliveryId, m.ToDeliveryId))
        {
            Invalid(m, $"AckRange must run forward over at most {AckRange.MaxLength} ids, not from {m.FromDeliveryId} to {m.ToDeliveryId}.");
            return;
        }
        _refused.Clear();
        _state.AckRange(ConsumerOf(Sender), m.FromDeliveryId, m.ToDeliveryId, _refused);
        var refused = 0;
        foreach (var r in _refused)
        {
            Refuse(r.FromDeliveryId, r.Error, r.Count);
            refused += r.Count;
        }
        _refused.Clear();
        SettledMany(m, refused, m.Length);
    }

    // Returns 1 when the ack was refused (and answered), 0 when it was taken.
    private int AckOne(int consumer, long deliveryId)
    {
        if (_state.Ack(consumer, deliveryId) is not { } error) return 0;
        Refuse(deliveryId, error, 1);
        return 1;
    }

    private void SettledMany(object command, int refused, int total)
    {
        if (refused > 0)
            _log.Warning("Queue {0}: {1} from {2} refused for {3} of its {4} deliveries (each answered with SettleRejected).", _name, command.GetType().Name, Sender, refused, total);
        RequestFlush();
    }

    private void HandleNack(Nack m)
    {
        var error = _state.Nack(ConsumerOf(Sender), m.DeliveryId, m.Delay, m.Reason, Now, out var outcome);
        if (error is null && outcome == NackOutcome.DeadLettered)
            _log.Warning("Queue {0}: delivery {1} dead-lettered after max attempts ({2}): {3}", _name, m.DeliveryId, _state.Settings.MaxAttempts, m.Reason ?? "no reason given");
        Settled(m, m.DeliveryId, error);
    }

    private void Settled(object command, long deliveryId, SettleError? error)
    {
        if (error is { } e) SettleFailed(command, deliveryId, e);
        else RequestFlush();
    }

    private void SettleFailed(object command, long deliveryId, SettleError error)
    {
        _log.Warning("Queue {0}: {1} from {2} refused: {3}", _name, command.GetType().Name, Sender, error);
        Refuse(deliveryId, error, 1);
    }

    // Counts and answers one refusal (a stretch of ids from a range counts once); batches log once for all of theirs.
    private void Refuse(long deliveryId, SettleError error, int count)
    {
        _state.RecordInvalid();
        Reply(Sender, new SettleRejected(deliveryId, error, count));
    }

    private void HandleTick()
    {
        _tickAt = null;
        var changed = _state.Tick(Now, _parkedOutcomes, _revoked);
        ReplyParked();
        SendRevocations();
        // An idle queue stays quiet: no flush, and no timer until something waits on time again.
        if (changed) RequestFlush();
        else ScheduleTick();
    }

    private void SendRevocations()
    {
        if (_revoked.Count == 0) return;
        try
        {
            // Grouped by consumer, in the order the core took them back (deadline order).
            foreach (var group in _revoked.GroupBy(r => r.ConsumerId))
            {
                var ids = group.Select(r => r.DeliveryId).ToArray();
                _log.Info("Queue {0}: took back {1} deliveries from consumer {2} past their ack deadline; revoked.", _name, ids.Length, group.Key);
                if (_consumerRefs.TryGetValue(group.Key, out var consumer)) Send(consumer, new Revoked(ids));
            }
        }
        finally
        {
            _revoked.Clear();
        }
    }

    private void HandleTerminated(IActorRef actor, bool detached)
    {
        var now = Now;
        if (_consumerIds.Remove(actor, out var consumerId))
        {
            _consumerRefs.Remove(consumerId);
            if (!_producerIds.ContainsKey(actor)) Context.Unwatch(actor);
            var returned = _state.RemoveConsumer(consumerId, now);
            if (returned > 0) _log.Info("Queue {0}: consumer {1} left holding {2} deliveries it had started; they are redelivered, each alone.", _name, actor, returned);
            RequestFlush();
        }
        // Not else: one actor may both produce and consume.
        if (!detached && _producerIds.Remove(actor, out var producerId))
        {
            _producerRefs.Remove(producerId);
            _state.DeactivateProducer(producerId, now);
            RequestFlush();
        }
    }

    private void HandleGetDeadLetters(GetDeadLetters m)
    {
        var entries = new List<DeadEntry>();
        _state.CopyDeadLetters(Math.Clamp(m.Max, 1, GetDeadLetters.MaxItems), entries);
        var items = new DeadLetteredMessage[entries.Count];
        for (var i = 0; i < items.Length; i++)
        {
            var e = entries[i];
            items[i] = new DeadLetteredMessage(e.Message.MessageId, e.Message.Message, e.Message.Attempts, e.Reason, DateTimeOffset.UnixEpoch + e.At);
        }
        Sender.Tell(new DeadLetterList(items, _state.DeadCount));
    }

    private void Redriven(int count)
    {
        Sender.Tell(new Redriven(count, _state.DeadCount));
        if (count > 0) RequestFlush();
    }

    private void HandleDrain()
    {
        if (!Sender.IsNobody() && !_drainRequesters.Contains(Sender))
        {
            if (_drainRequesters.Count >= MaxDrainRequesters)
                Invalid(Drain.Instance, $"Queue {_name} already has {MaxDrainRequesters} requesters waiting for its drain; watch it instead.");
            else _drainRequesters.Add(Sender);
        }
        if (!_state.IsDraining)
        {
            _log.Info("Queue {0} draining: {1} held, accepting nothing new.", _name, _state.Held);
            _state.BeginDrain(_parkedOutcomes);
            ReplyParked();
        }
        RequestFlush();
    }

    private void RequestFlush()
    {
        if (_flushPending) return;
        _flushPending = true;
        Self.Tell(QueueFlush.Instance);
    }

    private void Flush()
    {
        _flushPending = false;
        var now = Now;
        _state.AdmitParked(now, _parkedOutcomes);
        ReplyParked();
        _state.GrantCredit(now);

        // Each list is emptied even if a send throws, so that no later flush repeats what was sent.
        try
        {
            _state.CollectProducerUpdates(_updates);
            foreach (var u in _updates)
                if (_producerRefs.TryGetValue(u.ProducerId, out var producer))
                    Send(producer, new ProducerCredit(u.AcceptedSeqNr, u.CreditSeqNr));
        }
        finally
        {
            _updates.Clear();
        }
        try
        {
            _state.Dispatch(now, _dispatches);
            foreach (var d in _dispatches)
            {
                if (_consumerRefs.TryGetValue(d.ConsumerId, out var consumer) && Send(consumer, d.Batch)) continue;
                // A consumer that cannot be sent to (or one the core knows and the actor does not, a bug) is dropped:
                // the batch never reached it, so it goes back uncounted, and the rest it held is taken back.
                _log.Error("Queue {0}: could not deliver to consumer {1}; it is dropped and its deliveries taken back.", _name, consumer ?? (object)d.ConsumerId);
                for (var i = 0; i < d.Batch.Count; i++) _state.Return(d.ConsumerId, d.Batch.FirstDeliveryId + i);
                _state.RemoveConsumer(d.ConsumerId, now);
                if (consumer is not null)
                {
                    _consumerRefs.Remove(d.ConsumerId);
                    _consumerIds.Remove(consumer);
                    if (!_producerIds.ContainsKey(consumer)) Context.Unwatch(consumer);
                }
                RequestFlush();
            }
        }
        finally
        {
            _dispatches.Clear();
        }
        _metrics.Publish(_state);

        if (_state.IsDrained)
        {
            _log.Info("Queue {0} drained; stopping.", _name);
            var drained = new Drained(_name);
            foreach (var r in _drainRequesters) Send(r, drained);
            // Consumers and producers are told too: they stop instead of waiting for the queue to come back.
            foreach (var c in _consumerRefs.Values) Send(c, drained);
            foreach (var p in _producerRefs.Values) Send(p, drained);
            _drainRequesters.Clear();
            Context.Stop(Self);
            return;
        }
        ScheduleTick();
    }

    // One single timer, armed for the earliest instant something waits on (never sooner than tick-interval from now).
    private void ScheduleTick()
    {
        if (_state.NextDue() is not { } due) return;
        var now = Now;
        var delay = due - now;
        if (delay < _state.Settings.TickInterval) delay = _state.Settings.TickInterval;
        var at = now + delay;
        if (_tickAt is { } armed && armed <= at) return;
        _tickAt = at;
        Timers.StartSingleTimer("tick", QueueTick.Instance, delay);
    }

    // A send that throws (a broken remote ref, a test double) is logged and skipped: it must not stop the others.
    private bool Send(IActorRef to, object message)
    {
        try
        {
            to.Tell(message);
            return true;
        }
        catch (Exception e)
        {
            _log.Error(e, "Queue {0}: sending {1} to {2} failed.", _name, message.GetType().Name, to);
            return false;
        }
    }

    private void ReplyParked()
    {
        if (_parkedOutcomes.Count == 0) return;
        try
        {
            foreach (var o in _parkedOutcomes)
            {
                var p = o.Parked;
                if (p.ReplyTo is not IActorRef replyTo || replyTo.IsNobody()) continue;
                if (p.ProducerId is not null)
                {
                    // An accepted sequenced message is acknowledged cumulatively by the next ProducerCredit.
                    if (!o.Accepted) Send(replyTo, new SequenceRejected(p.SeqNr, o.Reason, o.Detail!));
                }
                else if (o.Accepted) Send(replyTo, new EnqueueAccepted(p.CorrelationId));
                else Send(replyTo, new EnqueueRejected(p.CorrelationId, o.Reason, o.Detail!));
            }
        }
        finally
        {
            _parkedOutcomes.Clear();
        }
    }

    private void PublishDropped(QueuedMessage evicted)
    {
        _log.Debug("Queue {0} evicted message {1} ({2})", _name, evicted.MessageId, _state.Settings.FullMode);
        Context.System.EventStream.Publish(new MessageDropped(_name, evicted.MessageId, evicted.Message, _state.Settings.FullMode));
    }

    private void HandleUnknown(object message)
    {
        // Never answer an answer: a reply sent back to a queue (or between two queues) would bounce for ever.
        if (message is InvalidRequest or IEnqueueReply or IProducerReply or IConsumerReply or QueueStats or DeadLetterList
            or Protocol.Redriven or Drained or Status || Sender.Equals(Self))
        {
            _state.RecordInvalid();
            _log.Warning("Queue {0}: ignored a reply it did not ask for from {1}: {2}", _name, Sender, message.GetType().Name);
            return;
        }
        Invalid(message, $"Queue {_name} does not understand {message.GetType().FullName}.");
    }

    private void Invalid(object message, string reason)
    {
        _state.RecordInvalid();
        _log.Warning("Queue {0}: invalid request from {1}: {2}", _name, Sender, reason);
        Reply(Sender, new InvalidRequest(message, reason));
    }

    private int ConsumerOf(IActorRef sender) => _consumerIds.TryGetValue(sender, out var id) ? id : -1;

    private static void Reply(IActorRef to, object message)
    {
        if (!to.IsNobody()) to.Tell(message);
    }
}
