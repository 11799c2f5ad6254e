using ActorQueue.Client;
using ActorQueue.Core;
using ActorQueue.Metrics;
using ActorQueue.Protocol;
using Akka.Actor;
using Akka.Event;

namespace ActorQueue;

/// <summary>
/// The queue: the host of one <see cref="QueueMachine"/>, which decides everything; the actor only carries out what
/// it asks (sends, watches, logs, the flush at the end of each burst and the one timer for deadlines and retries).
/// Replies that can wait (producer credit, deliveries) are gathered and sent once per burst of messages, when a
/// self-sent flush comes round. Supervise it with Resume (as <see cref="QueueGuardian"/> does): a restart keeps
/// nothing it held.
/// </summary>
public sealed class QueueActor : UntypedActor, IWithTimers, IQueueEffects
{
    private readonly string _name;
    private readonly QueueMachine _machine;
    private readonly QueueMetrics _metrics;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly QueueHost _host;
    // Clients' feeds registered as producers in this process (one per connected client): they accept their callers'
    // messages against the credit this queue granted them, and hand them over once per burst.
    private readonly HashSet<ClientFeed> _feeds = new(ReferenceEqualityComparer.Instance);

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
        var state = new QueueState(settings, observer: _metrics, firstDeliveryId: QueueState.DeliveryIdEpoch(Now));
        _machine = new QueueMachine(name, state);
        _host = new QueueHost(name, _machine, _metrics, _log);
    }

    /// <summary>The actor's timers (set by Akka).</summary>
    public ITimerScheduler Timers { get; set; } = null!;

    private QueueState State => _machine.State;

    // Wall-clock time from the system's scheduler: instants keep their meaning across restarts, and a TestScheduler
    // drives the queue in virtual time.
    private TimeSpan Now => Context.System.Scheduler.Now - DateTimeOffset.UnixEpoch;

    /// <inheritdoc />
    protected override void PreStart() => ActorQueueMetrics.Register(_metrics);

    /// <inheritdoc />
    protected override void PostStop()
    {
        // Calls still waiting in clients' feeds are answered; what a feed accepted and had not handed over is lost with
        // everything else an in-memory queue holds.
        var lost = 0;
        foreach (var feed in _feeds)
        {
            feed.CloseByQueue(RejectReason.QueueStopped, $"Queue {_name} has stopped.");
            if (feed.TakeNumbered(out _, out var count, out _)) lost += count;
        }
        _machine.Stopped(this);
        _metrics.Publish(State);
        ActorQueueMetrics.Unregister(_metrics);
        if (State.Held + lost > 0 || State.DeadCount > 0)
            _log.Warning("Queue {0} stopped holding {1} messages and {2} dead letters; an in-memory queue loses them.", _name, State.Held + lost, State.DeadCount);
    }

    /// <inheritdoc />
    protected override void OnReceive(object message)
    {
        if (message is Terminated m) _machine.Terminated(m.ActorRef, Now, this);
        else if (message is LocalFeedReady ready) TakeFrom(ready.Feed);
        else if (message is AttachFeed attach) Attach(attach.Feed);
        else if (message is DetachFeed detach) Detach(detach.Feed);
        else if (message is FeedWantsCredit wants) WantsCredit(wants.Feed);
        else if (message is QueueFlush or QueueTick)
        {
            _host.HandleOwn(message, Now, this, Timers);
            if (_machine.IdleLocalProducers.Count > 0) ReleaseIdleFeeds();
        }
        else
        {
            var sender = Sender.IsNobody() ? null : Sender;
            // Draining accepts nothing new: feeds stop accepting first, and what they accepted is taken before the drain.
            if (message is Drain && !State.IsDraining) CloseFeeds();
            if (!_machine.Receive(message, sender, Now, this))
                _machine.Unknown(message, sender, message is Status || Sender.Equals(Self), this);
        }
        State.AssertInvariants();
    }

    private void Attach(ClientFeed feed)
    {
        if (State.IsDraining)
        {
            feed.CloseByQueue(RejectReason.Draining, DrainingDetail);
            return;
        }
        // Asked again by a client whose first attempt timed out: the registration's answer is on its way. A client that
        // closed before its request arrived is not registered at all.
        if (feed.Closed is not null || _feeds.Contains(feed)) return;
        if (!_machine.RegisterLocalProducer(feed.ProducerId, feed, Now, this))
        {
            var detail = $"Producer id '{feed.ProducerId}' is in use by another producer of queue {_name}; give each client its own ProducerId.";
            _log.Warning("Queue {0}: {1}", _name, detail);
            feed.CloseByQueue(RejectReason.NotRegistered, detail);
            return;
        }
        _feeds.Add(feed);
        feed.AttachQueue(Self);
    }

    private string DrainingDetail => $"Queue {_name} is draining and accepts nothing new.";

    private void TakeFrom(ClientFeed feed)
    {
        if (!_feeds.Contains(feed) || !feed.TakeNumbered(out var items, out var count, out var first)) return;
        _machine.ReceiveLocalRun(feed.ProducerId, feed, first, items, count, Now, this);
        feed.Recycle(items, count);
    }

    private void Detach(ClientFeed feed)
    {
        if (!_feeds.Contains(feed)) return;
        // Nothing more is numbered against its credit; what was numbered is taken before the producer goes inactive.
        feed.Detached();
        TakeFrom(feed);
        _feeds.Remove(feed);
        _machine.Terminated(feed, Now, this);
    }

    // Feeds whose credit went unused for credit-lease give it back (a busy one keeps it), so an idle client reserves nothing.
    private void ReleaseIdleFeeds()
    {
        var now = Now;
        var idle = _machine.IdleLocalProducers.ToArray();
        _machine.IdleLocalProducers.Clear();
        foreach (var producer in idle)
        {
            if (producer is not ClientFeed feed || !_feeds.Contains(feed)) continue;
            // A client closed without saying so to the queue (its DetachFeed lost to a stopping system): let it go.
            if (feed.Closed is not null) Detach(feed);
            else if (feed.TryRelease(out var upTo)) _machine.Receive(new RequestCredit(feed.ProducerId, upTo), feed, now, this);
        }
    }

    private void WantsCredit(ClientFeed feed)
    {
        if (!_feeds.Contains(feed) || State.IsDraining) return;
        if (feed.Closed is not null)
        {
            Detach(feed);
            return;
        }
        _machine.Receive(new RequestCredit(feed.ProducerId, long.MaxValue), feed, Now, this);
    }

    private void CloseFeeds()
    {
        foreach (var feed in _feeds)
        {
            feed.CloseByQueue(RejectReason.Draining, DrainingDetail);
            TakeFrom(feed);
        }
    }

    bool IQueueEffects.Send(object to, object message)
    {
        if (to is not ClientFeed feed) return _host.TrySend((IActorRef)to, message);
        switch (message)
        {
            case ProducerCredit c:
                feed.OnCredit(c.AcceptedSeqNr, c.CreditSeqNr);
                break;
            case SequenceRejected r:
                // A feed numbers only within the credit this queue granted and hands over in order: never refused.
                _log.Error("Queue {0} refused message {1} of client feed {2}, which its caller was told was accepted: {3} ({4}). This is a bug in ActorQueue.",
                    _name, r.SeqNr, feed.ProducerId, r.Reason, r.Detail);
                break;
            default:
                _log.Warning("Queue {0}: unexpected {1} for client feed {2}.", _name, message.GetType().Name, feed.ProducerId);
                break;
        }
        return true;
    }

    void IQueueEffects.Watch(object actor)
    {
        // A feed lives in this process and says when it goes (DetachFeed).
        if (actor is IActorRef r) Context.Watch(r);
    }

    void IQueueEffects.Unwatch(object actor)
    {
        if (actor is IActorRef r) Context.Unwatch(r);
    }

    void IQueueEffects.RequestFlush() => _host.RequestFlush(Self);

    void IQueueEffects.Dropped(QueuedMessage evicted) => _host.PublishDropped(Context.System, evicted);

    void IQueueEffects.Stop() => Context.Stop(Self);

    void IQueueEffects.Log(int level, string line) => _host.Log(level, line);
}
