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
        _machine.Stopped(this);
        _metrics.Publish(State);
        ActorQueueMetrics.Unregister(_metrics);
        if (State.Held > 0 || State.DeadCount > 0)
            _log.Warning("Queue {0} stopped holding {1} messages and {2} dead letters; an in-memory queue loses them.", _name, State.Held, State.DeadCount);
    }

    /// <inheritdoc />
    protected override void OnReceive(object message)
    {
        if (message is Terminated m) _machine.Terminated(m.ActorRef, Now, this);
        else if (!_host.HandleOwn(message, Now, this, Timers))
        {
            var sender = Sender.IsNobody() ? null : Sender;
            if (!_machine.Receive(message, sender, Now, this))
                _machine.Unknown(message, sender, message is Status || Sender.Equals(Self), this);
        }
        State.AssertInvariants();
    }

    bool IQueueEffects.Send(object to, object message) => _host.TrySend((IActorRef)to, message);

    void IQueueEffects.Watch(object actor) => Context.Watch((IActorRef)actor);

    void IQueueEffects.Unwatch(object actor) => Context.Unwatch((IActorRef)actor);

    void IQueueEffects.RequestFlush() => _host.RequestFlush(Self);

    void IQueueEffects.Dropped(QueuedMessage evicted) => _host.PublishDropped(Context.System, evicted);

    void IQueueEffects.Stop() => Context.Stop(Self);

    void IQueueEffects.Log(int level, string line) => _host.Log(level, line);
}
