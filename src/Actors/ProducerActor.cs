using ActorQueue.Core;
using ActorQueue.Protocol;
using Akka.Actor;
using Akka.Event;

namespace ActorQueue;

/// <summary>
/// Lets user code put messages on a queue without knowing the protocol: send it <see cref="Produce"/> and it
/// answers <see cref="EnqueueAccepted"/> once the queue holds the message. It never sends beyond the credit the
/// queue granted (and asks only for credit it has messages for, so an idle producer reserves nothing), numbers
/// what it sends, and keeps everything not yet accepted: if it hears nothing from the queue for resend-interval while
/// it has work outstanding (a lost message, a restarted queue) it re-registers and resends from what the queue last
/// accepted, and the queue drops the duplicates by sequence number. When its queue terminates it looks for a new one at
/// the same path until reattach-timeout; a queue that drained, or none found, leaves it closed: every
/// <see cref="Produce"/> is then answered <see cref="EnqueueRejected"/> with <see cref="RejectReason.QueueStopped"/>.
/// </summary>
public sealed class ProducerActor : UntypedActor, IWithTimers
{
    private IActorRef _queue;
    private readonly string _producerId;
    private readonly ProducerSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    // Not yet numbered (waiting for credit), and numbered but not yet accepted (contiguous from _acceptedSeqNr + 1).
    private readonly RingBuffer<Pending> _unsent = new();
    private readonly RingBuffer<Pending> _unaccepted = new();
    private long _acceptedSeqNr;
    private long _creditSeqNr;
    private long _sentSeqNr;
    private long _demandSeqNr;
    private long _registeredPending;
    private bool _demandInFlight;
    private bool _registering;
    private bool _everRegistered;
    private bool _flushPending;
    private readonly List<object> _outgoing = new();
    // Progress is measured from the queue's answers, and from when work became outstanding: callers producing fast
    // must not hide a lost registration or credit.
    private TimeSpan _lastHeard;
    private TimeSpan? _lostSince;
    private TimeSpan _reattachBackoff;
    private TimeSpan _lastLook;
    private string? _closed;

    private readonly record struct Pending(object Message, long CorrelationId, IActorRef ReplyTo, long SeqNr);

    /// <summary>Creates the Props of a producer for <paramref name="queue"/>.</summary>
    /// <param name="queue">The queue to produce to.</param>
    /// <param name="producerId">A stable id: a producer started again with the same id continues its sequence.</param>
    /// <param name="settings">Buffer size and resend interval; null for the defaults in reference.conf.</param>
    public static Props Props(IActorRef queue, string producerId, ProducerSettings? settings = null)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentException.ThrowIfNullOrEmpty(producerId);
        var s = settings ?? ProducerSettings.Default;
        return Akka.Actor.Props.Create(() => new ProducerActor(queue, producerId, s));
    }

    /// <summary>Creates a producer; use <see cref="Props(IActorRef, string, ProducerSettings?)"/> rather than calling this directly.</summary>
    /// <param name="queue">The queue to produce to.</param>
    /// <param name="producerId">The producer's stable id.</param>
    /// <param name="settings">Buffer size and resend interval.</param>
    public ProducerActor(IActorRef queue, string producerId, ProducerSettings settings)
    {
        _queue = queue;
        _producerId = producerId;
        _settings = settings;
    }

    /// <summary>The actor's timers (set by Akka).</summary>
    public ITimerScheduler Timers { get; set; } = null!;

    private TimeSpan Now => Context.System.Scheduler.Now - DateTimeOffset.UnixEpoch;

    private bool HasWork => _unsent.Count + _unaccepted.Count > 0;

    /// <inheritdoc />
    protected override void PreStart()
    {
        Context.Watch(_queue);
        Timers.StartPeriodicTimer("resend", ProducerTick.Instance, _settings.ResendInterval / 2);
        Register();
    }

    /// <inheritdoc />
    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case Produce m: HandleProduce(m); break;
            case ProducerFlush:
                _flushPending = false;
                SendWithinCredit();
                break;
            case WithdrawProduce m: HandleWithdraw(m); break;
            case ProducerCredit m: HandleCredit(m); break;
            case SequenceRejected m: HandleRejected(m); break;
            case ProducerTick: HandleTick(); break;
            case Drained:
                Close($"Queue {_queue.Path.Name} drained and stopped; it accepts nothing more.");
                break;
            case Terminated m when m.ActorRef.Equals(_queue): HandleQueueLost(); break;
            case ActorIdentity m: HandleIdentity(m); break;
            default: Unhandled(message); break;
        }
    }

    private void HandleProduce(Produce m)
    {
        if (_closed is not null)
        {
            Reply(Sender, new EnqueueRejected(m.CorrelationId, RejectReason.QueueStopped, _closed));
            return;
        }
        if (_unsent.Count + _unaccepted.Count >= _settings.BufferSize)
        {
            Reply(Sender, new EnqueueRejected(m.CorrelationId, RejectReason.ProducerBufferFull,
                $"Producer '{_producerId}' already holds buffer-size ({_settings.BufferSize}) messages the queue has not accepted."));
            return;
        }
        if (!HasWork) _lastHeard = Now;
        _unsent.PushBack(new Pending(m.Message, m.CorrelationId, Sender, 0));
        // Send once the burst of Produce requests in the mailbox is in, as one batch.
        if (_flushPending) return;
        _flushPending = true;
        Self.Tell(ProducerFlush.Instance);
    }

    private void HandleWithdraw(WithdrawProduce m)
    {
        // Only what has not been sent can be withdrawn; a sent message gets its real answer from the queue.
        if (m.CorrelationIds is null || m.CorrelationIds.Length == 0) return;
        var withdraw = m.CorrelationIds.Length == 1 ? null : new HashSet<long>(m.CorrelationIds);
        var removed = false;
        for (var i = _unsent.Count - 1; i >= 0; i--)
        {
            var id = _unsent[i].CorrelationId;
            if (withdraw is null ? id != m.CorrelationIds[0] : !withdraw.Contains(id)) continue;
            var p = _unsent.RemoveAt(i);
            Reply(p.ReplyTo, new EnqueueRejected(p.CorrelationId, RejectReason.Withdrawn, "Withdrawn before it reached the queue."));
            removed = true;
        }
        if (!removed) return;
        // Give back the credit asked for what is gone, so it does not sit reserved in the queue.
        var wanted = _acceptedSeqNr + _unaccepted.Count + _unsent.Count;
        if (wanted >= _demandSeqNr || _registering) return;
        _demandSeqNr = wanted;
        _creditSeqNr = Math.Min(_creditSeqNr, Math.Max(wanted, _sentSeqNr));
        _queue.Tell(new RequestCredit(_producerId, wanted));
    }

    private void HandleCredit(ProducerCredit m)
    {
        _demandInFlight = false;
        _lastHeard = Now;
        if (m.CreditSeqNr < _creditSeqNr && m.CreditSeqNr < _demandSeqNr)
        {
            // The queue took back credit (unused past its lease, or a drain): what we still have is asked for again.
            _demandSeqNr = m.CreditSeqNr;
        }
        if (_registering)
        {
            _registering = false;
            if (!_everRegistered)
            {
                // Nothing is numbered before the first registration, so numbering continues where the id left off.
                _everRegistered = true;
                _acceptedSeqNr = Math.Max(_acceptedSeqNr, m.AcceptedSeqNr);
            }
            else if (m.AcceptedSeqNr < _acceptedSeqNr)
            {
                Renumber(m.AcceptedSeqNr);
            }
            // Resend everything the queue has not accepted.
            _sentSeqNr = m.AcceptedSeqNr;
            _demandSeqNr = m.AcceptedSeqNr + _registeredPending;
        }
        while (_unaccepted.Count > 0 && _unaccepted.PeekFront().SeqNr <= m.AcceptedSeqNr)
        {
            var p = _unaccepted.PopFront();
            Reply(p.ReplyTo, new EnqueueAccepted(p.CorrelationId));
        }
        if (m.AcceptedSeqNr > _acceptedSeqNr) _acceptedSeqNr = m.AcceptedSeqNr;
        _creditSeqNr = m.CreditSeqNr;
        SendWithinCredit();
    }

    /// <summary>
    /// The queue knows less than it once confirmed (it lost its state): what it confirmed is gone with it, so
    /// number the unaccepted messages again from where the queue now stands.
    /// </summary>
    private void Renumber(long queueAcceptedSeqNr)
    {
        _log.Warning("Producer {0}: the queue reports {1} accepted but had confirmed {2}; renumbering {3} unaccepted messages.",
            _producerId, queueAcceptedSeqNr, _acceptedSeqNr, _unaccepted.Count);
        var count = _unaccepted.Count;
        for (var i = 0; i < count; i++)
            _unaccepted.PushBack(_unaccepted.PopFront() with { SeqNr = queueAcceptedSeqNr + i + 1 });
        _acceptedSeqNr = queueAcceptedSeqNr;
    }

    private void SendWithinCredit()
    {
        if (_registering || _lostSince is not null || _closed is not null) return;
        // First resends (after a re-registration), then new messages, never beyond credit, all in one batch (their
        // numbers run on without a gap). _unaccepted holds sequence numbers _acceptedSeqNr + 1 onwards, so the
        // first one not yet sent is found by index.
        _outgoing.Clear();
        var first = _sentSeqNr + 1;
        for (var i = (int)Math.Max(0, _sentSeqNr - _acceptedSeqNr); i < _unaccepted.Count; i++)
        {
            var p = _unaccepted[i];
            if (p.SeqNr > _creditSeqNr) break;
            if (_outgoing.Count == 0) first = p.SeqNr;
            _outgoing.Add(p.Message);
            _sentSeqNr = p.SeqNr;
        }
        while (_unsent.Count > 0 && _acceptedSeqNr + _unaccepted.Count < _creditSeqNr)
        {
            var p = _unsent.PopFront() with { SeqNr = _acceptedSeqNr + _unaccepted.Count + 1 };
            _unaccepted.PushBack(p);
            if (_outgoing.Count == 0) first = p.SeqNr;
            _outgoing.Add(p.Message);
            _sentSeqNr = p.SeqNr;
        }
        if (_outgoing.Count == 1) _queue.Tell(new SequencedMessage(_producerId, first, _outgoing[0]));
        else if (_outgoing.Count > 1) _queue.Tell(new SequencedBatch(_producerId, first, _outgoing.ToArray()));
        _outgoing.Clear();

        // Ask for credit for what is still waiting, at most one request per answer from the queue.
        var wanted = _acceptedSeqNr + _unaccepted.Count + _unsent.Count;
        if (wanted > _creditSeqNr && wanted > _demandSeqNr && !_demandInFlight)
        {
            _demandSeqNr = wanted;
            _demandInFlight = true;
            _queue.Tell(new RequestCredit(_producerId, wanted));
        }
    }

    private void HandleRejected(SequenceRejected m)
    {
        _lastHeard = Now;
        switch (m.Reason)
        {
            case RejectReason.Draining or RejectReason.QueueStopped:
                // Earlier numbers were answered before this one and may still be accepted; fail from here on.
                FailFrom(m.SeqNr, m.Reason, m.Detail);
                break;
            default:
                // Out of order, unregistered or beyond credit: resynchronise with what the queue has.
                _log.Debug("Producer {0}: message {1} rejected ({2}); re-registering to resend.", _producerId, m.SeqNr, m.Reason);
                Register();
                break;
        }
    }

    private void HandleTick()
    {
        var now = Now;
        if (_lostSince is { } since)
        {
            LookForQueue(now, since);
            return;
        }
        if (!HasWork && !_registering) return;
        if (now - _lastHeard < _settings.ResendInterval) return;
        // Every exchange carries absolute values, so re-registering re-syncs whatever was lost on the way.
        _log.Debug("Producer {0}: heard nothing for {1}; re-registering to resend {2} messages.", _producerId, _settings.ResendInterval, _unaccepted.Count);
        _lastHeard = now;
        Register();
    }

    private void HandleQueueLost()
    {
        if (_lostSince is not null || _closed is not null) return;
        _log.Warning("Producer {0}: the queue terminated; looking for it again for up to {1}.", _producerId, _settings.ReattachTimeout);
        _lostSince = _lastLook = Now;
        _reattachBackoff = TimeSpan.FromMilliseconds(100);
        _registering = false;
        Context.ActorSelection(_queue.Path).Tell(new Identify(_producerId), Self);
        // Looked for on a finer timer than the resend one, which may be seconds apart.
        Timers.StartPeriodicTimer("reattach", ProducerTick.Instance, TimeSpan.FromMilliseconds(100));
    }

    private void LookForQueue(TimeSpan now, TimeSpan since)
    {
        if (now - since >= _settings.ReattachTimeout)
        {
            Close($"Queue {_queue.Path.Name} stopped and none came back within reattach-timeout ({_settings.ReattachTimeout}).");
            return;
        }
        if (now - _lastLook < _reattachBackoff) return;
        _lastLook = now;
        _reattachBackoff = TimeSpan.FromTicks(Math.Min(_reattachBackoff.Ticks * 2, TimeSpan.TicksPerSecond * 5));
        Context.ActorSelection(_queue.Path).Tell(new Identify(_producerId), Self);
    }

    private void HandleIdentity(ActorIdentity m)
    {
        if (_lostSince is null || m.Subject is null || m.Subject.Equals(_queue)) return;
        _log.Info("Producer {0}: a queue is back at {1}; re-registering.", _producerId, m.Subject.Path);
        _queue = m.Subject;
        _lostSince = null;
        Timers.Cancel("reattach");
        Context.Watch(_queue);
        _lastHeard = Now;
        Register();
    }

    // The queue is gone for good: everything waiting is answered, and so is everything that comes later.
    private void Close(string reason)
    {
        _lostSince = null;
        _closed = reason;
        _log.Info("Producer {0}: {1}", _producerId, reason);
        FailAll(RejectReason.QueueStopped, reason);
        Timers.CancelAll();
    }

    private void Register()
    {
        _registering = true;
        _registeredPending = _unaccepted.Count + _unsent.Count;
        _queue.Tell(new RegisterProducer(_producerId, _registeredPending));
    }

    private void FailAll(RejectReason reason, string detail) => FailFrom(0, reason, detail);

    private void FailFrom(long seqNr, RejectReason reason, string detail)
    {
        var keep = 0;
        while (keep < _unaccepted.Count && _unaccepted[keep].SeqNr < seqNr) keep++;
        for (var i = keep; i < _unaccepted.Count; i++)
            Reply(_unaccepted[i].ReplyTo, new EnqueueRejected(_unaccepted[i].CorrelationId, reason, detail));
        while (_unaccepted.Count > keep) _unaccepted.PopBack();
        _sentSeqNr = Math.Min(_sentSeqNr, _acceptedSeqNr + _unaccepted.Count);
        while (_unsent.Count > 0)
        {
            var p = _unsent.PopFront();
            Reply(p.ReplyTo, new EnqueueRejected(p.CorrelationId, reason, detail));
        }
    }

    private static void Reply(IActorRef to, object message)
    {
        if (!to.IsNobody()) to.Tell(message);
    }
}
