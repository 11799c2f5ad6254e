using ActorQueue.Client;
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
    private readonly ProducerWindow<Pending> _window;
    private readonly List<Pending> _pending = new();
    private bool _flushPending;
    // Progress is measured from the queue's answers, and from when work became outstanding: callers producing fast
    // must not hide a lost registration or credit.
    private TimeSpan _lastHeard;
    private Reattachment _reattach;
    private string? _closed;
    // A client's buffer of calls, read in bursts (null for a producer that is sent Produce).
    private readonly ClientFeed? _feed;
    private readonly Func<bool> _feedRoom;
    private readonly Action<FeedItem> _takeFromFeed;
    private IActorRef? _feedCloser;
    private bool _feedRefused;

    private static readonly EnqueueRejected WithdrawnAnswer = new(0, RejectReason.Withdrawn, "Withdrawn before it reached the queue.");

    // What the producer holds per message: whom to answer, by message (CorrelationId, ReplyTo) or by call (Call).
    private readonly record struct Pending(object Message, long CorrelationId, IActorRef ReplyTo, EnqueueCall? Call = null);

    /// <summary>Creates the Props of a producer for <paramref name="queue"/>.</summary>
    /// <param name="queue">The queue to produce to.</param>
    /// <param name="producerId">A stable id: a producer started again with the same id continues its sequence.</param>
    /// <param name="settings">Buffer size and resend interval; null to read actor-queue.producer from the actor system's configuration.</param>
    public static Props Props(IActorRef queue, string producerId, ProducerSettings? settings = null)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentException.ThrowIfNullOrEmpty(producerId);
        return Akka.Actor.Props.Create(() => new ProducerActor(queue, producerId, settings));
    }

    /// <summary>Creates a producer; use <see cref="Props(IActorRef, string, ProducerSettings?)"/> rather than calling this directly.</summary>
    /// <param name="queue">The queue to produce to.</param>
    /// <param name="producerId">The producer's stable id.</param>
    /// <param name="settings">Buffer size and resend interval; null to read actor-queue.producer from the actor system's configuration.</param>
    public ProducerActor(IActorRef queue, string producerId, ProducerSettings? settings)
    {
        settings ??= ProducerSettings.Create(Context.System.Settings.Config);
        _queue = queue;
        _producerId = producerId;
        _settings = settings;
        _window = new ProducerWindow<Pending>(settings.BufferSize);
        _feed = settings.Feed;
        _feedRoom = () => _window.Count < _settings.BufferSize && _closed is null;
        _takeFromFeed = item =>
        {
            if (!_window.HasWork) _lastHeard = Now;
            _window.TryAdd(new Pending(item.Message, 0, ActorRefs.Nobody, item.Call));
        };
    }

    /// <summary>The Props of a client's producer, which reads the client's calls from <paramref name="feed"/>.</summary>
    internal static Props Props(IActorRef queue, string producerId, ProducerSettings settings, ClientFeed feed)
    {
        var fed = settings with { Feed = feed };
        return Akka.Actor.Props.Create(() => new ProducerActor(queue, producerId, fed));
    }

    /// <summary>The actor's timers (set by Akka).</summary>
    public ITimerScheduler Timers { get; set; } = null!;

    private TimeSpan Now => Context.System.Scheduler.Now - DateTimeOffset.UnixEpoch;

    /// <inheritdoc />
    protected override void PreStart()
    {
        // A client's producer attaches itself to the client's buffer; should another already read it, this one leaves it
        // alone and stops (its client connected twice; the first producer serves it).
        if (_feed is not null && !_feed.Attach(Self))
        {
            _feedRefused = true;
            Context.Stop(Self);
            return;
        }
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
            case FeedReady:
                DrainFeed();
                SendWithinCredit();
                break;
            case FeedWithdraw: WithdrawCancelled(); break;
            case CloseFeed m: HandleCloseFeed(m); break;
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
        var idle = !_window.HasWork;
        if (!_window.TryAdd(new Pending(m.Message, m.CorrelationId, Sender)))
        {
            Reply(Sender, new EnqueueRejected(m.CorrelationId, RejectReason.ProducerBufferFull,
                $"Producer '{_producerId}' already holds buffer-size ({_settings.BufferSize}) messages the queue has not accepted."));
            return;
        }
        if (idle) _lastHeard = Now;
        // Send once the burst of Produce requests in the mailbox is in, as one batch.
        if (_flushPending) return;
        _flushPending = true;
        Self.Tell(ProducerFlush.Instance);
    }

    private void HandleWithdraw(WithdrawProduce m)
    {
        // Only what has not been sent can be withdrawn; a sent message gets its real answer from the queue.
        if (m.CorrelationIds is null || m.CorrelationIds.Length == 0) return;
        var ids = m.CorrelationIds.Length == 1 ? null : new HashSet<long>(m.CorrelationIds);
        var single = m.CorrelationIds[0];
        var lower = _window.Withdraw(p => ids is null ? p.CorrelationId == single : ids.Contains(p.CorrelationId), _pending);
        WithdrawnFromWindow(lower);
    }

    private void WithdrawnFromWindow(long? lower)
    {
        var freed = _pending.Count > 0;
        foreach (var p in _pending) Refuse(p, WithdrawnAnswer);
        _pending.Clear();
        // Give back the credit asked for what is gone, so it does not sit reserved in the queue.
        if (lower is { } wanted && !_reattach.Looking) _queue.Tell(new RequestCredit(_producerId, wanted));
        // Room freed in the window: callers waiting in the buffer come in.
        if (freed && _feedCloser is null) DrainFeed();
    }

    // Calls cancelled after some of their messages were taken: those not yet sent are withdrawn.
    private void WithdrawCancelled() =>
        WithdrawnFromWindow(_window.Withdraw(static p => p.Call is { WithdrawRequested: true }, _pending));

    private void DrainFeed()
    {
        _feed?.Drain(_feedRoom, _takeFromFeed);
    }

    // The client closes: nothing more is taken, and what was not sent is withdrawn; the closer hears once nothing sent waits.
    private void HandleCloseFeed(CloseFeed m)
    {
        _feed?.Close(m.Reason, answer: null);
        WithdrawnFromWindow(_window.Withdraw(static p => p.Call is not null, _pending));
        _feedCloser = Sender;
        AnswerCloserIfSettled();
    }

    private void AnswerCloserIfSettled()
    {
        if (_feedCloser is null || _window.HasWork) return;
        _feedCloser.Tell(Akka.Done.Instance);
        _feedCloser = null;
    }

    private void HandleCredit(ProducerCredit m)
    {
        _lastHeard = Now;
        var renumbered = _window.OnCredit(m.AcceptedSeqNr, m.CreditSeqNr, _pending, m.Registration);
        if (renumbered > 0)
            _log.Warning("Producer {0}: the queue reports {1} accepted but had confirmed more; renumbered {2} unaccepted messages.", _producerId, m.AcceptedSeqNr, renumbered);
        // A batch call's messages come in runs: each run is settled at once.
        EnqueueCall? run = null;
        var runLength = 0;
        foreach (var p in _pending)
        {
            if (p.Call is { } call)
            {
                if (!ReferenceEquals(call, run))
                {
                    run?.Accepted(runLength);
                    (run, runLength) = (call, 0);
                }
                runLength++;
            }
            else Reply(p.ReplyTo, new EnqueueAccepted(p.CorrelationId));
        }
        run?.Accepted(runLength);
        _pending.Clear();
        DrainFeed();
        SendWithinCredit();
        AnswerCloserIfSettled();
    }

    private void SendWithinCredit()
    {
        if (_reattach.Looking || _closed is not null) return;
        var first = _window.CollectSends(_pending, out var requestCredit);
        if (_pending.Count == 1) _queue.Tell(new SequencedMessage(_producerId, first, _pending[0].Message));
        else if (_pending.Count > 1)
        {
            var messages = new object[_pending.Count];
            for (var i = 0; i < messages.Length; i++) messages[i] = _pending[i].Message;
            _queue.Tell(new SequencedBatch(_producerId, first, messages));
        }
        _pending.Clear();
        if (requestCredit is { } upTo) _queue.Tell(new RequestCredit(_producerId, upTo));
    }

    private void HandleRejected(SequenceRejected m)
    {
        _lastHeard = Now;
        switch (m.Reason)
        {
            case RejectReason.Draining or RejectReason.QueueStopped:
                // Earlier numbers were answered before this one and may still be accepted; fail from here on.
                Fail(m.SeqNr, m.Reason, m.Detail);
                break;
            case RejectReason.InvalidMessage:
                // Refused for good (a durable queue cannot write it): its caller is told, and the rest are renumbered.
                // Registering again fences off a repeated refusal of the same number (from a resend of the refused
                // message) until the queue has answered; the rest are then sent again from where it stands.
                if (_window.DropRefused(m.SeqNr, out var refused))
                {
                    _log.Warning("Producer {0}: message {1} refused: {2}", _producerId, m.SeqNr, m.Detail);
                    Refuse(refused, new EnqueueRejected(refused.CorrelationId, m.Reason, m.Detail));
                    Register();
                    DrainFeed();
                    AnswerCloserIfSettled();
                }
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
        if (_reattach.Looking)
        {
            if (!_reattach.Continue(_queue.Path, now, _settings.ReattachTimeout, Context))
                Close($"Queue {_queue.Path.Name} stopped and none came back within reattach-timeout ({_settings.ReattachTimeout}).");
            return;
        }
        DrainFeed();
        SendWithinCredit();
        if (!_window.HasWork && !_window.IsRegistering) return;
        if (now - _lastHeard < _settings.ResendInterval) return;
        // Every exchange carries absolute values, so re-registering re-syncs whatever was lost on the way.
        _log.Debug("Producer {0}: heard nothing for {1}; re-registering to resend {2} messages.", _producerId, _settings.ResendInterval, _window.Count);
        _lastHeard = now;
        Register();
    }

    private void HandleQueueLost()
    {
        if (_reattach.Looking || _closed is not null) return;
        _log.Warning("Producer {0}: the queue terminated; looking for it again for up to {1}.", _producerId, _settings.ReattachTimeout);
        _reattach.Begin(_queue.Path, Now, Context);
        // Looked for on a finer timer than the resend one, which may be seconds apart.
        Timers.StartPeriodicTimer("reattach", ProducerTick.Instance, TimeSpan.FromMilliseconds(100));
    }

    private void HandleIdentity(ActorIdentity m)
    {
        if (_reattach.Found(m, _queue) is not { } queue) return;
        _log.Info("Producer {0}: a queue is back at {1}; re-registering.", _producerId, queue.Path);
        _queue = queue;
        Timers.Cancel("reattach");
        Context.Watch(_queue);
        _lastHeard = Now;
        Register();
    }

    // The queue is gone for good: everything waiting is answered, and so is everything that comes later.
    private void Close(string reason)
    {
        _reattach.End();
        _closed = reason;
        _log.Info("Producer {0}: {1}", _producerId, reason);
        Fail(0, RejectReason.QueueStopped, reason);
        Timers.CancelAll();
    }

    /// <inheritdoc />
    protected override void PostStop()
    {
        // Stopped (its client closed it, or the system is stopping): no call of its client is left waiting.
        // One that refused its client's buffer never read it: nothing to answer, and the buffer is not its to close.
        if (!_feedRefused)
        {
            _closed ??= $"The producer of queue {_queue.Path.Name} stopped before the queue answered (a message it had sent may still have been accepted).";
            Fail(0, RejectReason.QueueStopped, _closed);
        }
        base.PostStop();
    }

    private void Register()
    {
        var demand = _window.Register();
        _queue.Tell(new RegisterProducer(_producerId, demand, _window.Registration));
    }

    private void Fail(long fromSeqNr, RejectReason reason, string detail)
    {
        _window.FailFrom(fromSeqNr, _pending);
        var answer = new EnqueueRejected(0, reason, detail);
        foreach (var p in _pending) Refuse(p, p.Call is null ? answer with { CorrelationId = p.CorrelationId } : answer);
        _pending.Clear();
        // Closed for good: the client's calls still waiting in its feed fail the same way, and so do later ones.
        if (_closed is not null)
            _feed?.Close(EnqueueCall.Exception(_queue.Path.Name, answer), answer);
        AnswerCloserIfSettled();
    }

    private static void Refuse(Pending p, EnqueueRejected answer)
    {
        if (p.Call is { } call) call.NotAccepted(answer);
        else Reply(p.ReplyTo, answer.CorrelationId == p.CorrelationId ? answer : answer with { CorrelationId = p.CorrelationId });
    }

    private static void Reply(IActorRef to, object message)
    {
        if (!to.IsNobody()) to.Tell(message);
    }
}
