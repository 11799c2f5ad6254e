using ActorQueue.Core;
using ActorQueue.Metrics;
using ActorQueue.Persistence.Serialization;
using ActorQueue.Persistence.Serialization.Proto;
using ActorQueue.Protocol;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence;

namespace ActorQueue.Persistence;

/// <summary>
/// A queue that keeps what it accepted in an Akka.Persistence journal: the same <see cref="QueueMachine"/> as the
/// in-memory <see cref="QueueActor"/>, hosted so that nothing it decides is seen before the events behind it are
/// written. The durable events of a burst (see <see cref="QueueJournal"/>) go to the journal as one row, and every send
/// decided meanwhile (acceptances, credit, deliveries) waits for that write; while a write is in flight the next burst
/// gathers, so a busy queue writes in large groups. On start it replays its snapshot and journal into the core and runs
/// the recovery step: what was in flight is ready again with its attempt counted, dead letters and producers' sequence
/// numbers are kept, and deliveries continue under new ids. A journal failure stops it (Akka.Persistence's rule); run
/// it under a supervisor that starts it again, as <see cref="DurableQueueFactory"/> does.
/// </summary>
public sealed class DurableQueueActor : PersistentActor, IWithTimers, IQueueEffects
{
    private readonly string _name;
    private readonly DurableQueueOptions _options;
    private readonly QueueMachine _machine;
    private readonly QueueMetrics _metrics;
    private readonly JournalCodec _codec;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly QueueHost _host;

    // The burst being gathered: its encoded events and the effects that wait for them. Effects decided while a write is
    // in flight wait too, even without events of their own, so that nothing overtakes what was decided before it.
    private Batch _open = new();
    private List<HeldEffect> _openEffects = new();
    private List<HeldEffect> _writingEffects = new();
    private bool _writing;
    private long _eventsSinceSnapshot;
    private bool _recovered;

    private readonly bool _supervised;
    // Stopping or restarting: sends go out at once, nothing waits for a write any more.
    private bool _stopping;

    private readonly record struct HeldEffect(IActorRef? To, object? Message, QueuedMessage? Dropped, bool Stop);

    /// <summary>Creates the Props of a durable queue.</summary>
    /// <param name="name">The queue's name: its persistence id is <c>actor-queue-NAME</c>.</param>
    /// <param name="settings">Its settings.</param>
    /// <param name="options">Where its journal is and how often it snapshots.</param>
    public static Props Props(string name, QueueSettings settings, DurableQueueOptions options)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(options);
        return Akka.Actor.Props.Create(() => new DurableQueueActor(name, settings, options, false));
    }

    // Under a DurableQueueSupervisor, which every message to the queue passes through.
    internal static Props SupervisedProps(string name, QueueSettings settings, DurableQueueOptions options) =>
        Akka.Actor.Props.Create(() => new DurableQueueActor(name, settings, options, true));

    /// <summary>Creates a durable queue; use <see cref="Props"/> rather than calling this directly.</summary>
    /// <param name="name">The queue's name.</param>
    /// <param name="settings">Its settings.</param>
    /// <param name="options">Where its journal is and how often it snapshots.</param>
    /// <param name="supervised">
    /// Whether it runs under a <see cref="DurableQueueSupervisor"/> that forwards everything to it: then the
    /// termination of a consumer or producer is passed back through the supervisor, so that it comes after whatever that
    /// consumer or producer sent before it stopped.
    /// </param>
    public DurableQueueActor(string name, QueueSettings settings, DurableQueueOptions options, bool supervised)
    {
        _name = name;
        _options = options;
        _supervised = supervised;
        _metrics = new QueueMetrics(name);
        _codec = new JournalCodec(Context.System) { CheckedLimit = 2 * settings.Capacity };
        var state = new QueueState(settings, recorder: Record, observer: _metrics) { PayloadCheck = _codec.Check };
        _machine = new QueueMachine(name, state);
        _host = new QueueHost(name, _machine, _metrics, _log);
        JournalPluginId = options.JournalPluginId;
        SnapshotPluginId = options.SnapshotPluginId;
    }

    /// <inheritdoc />
    public override string PersistenceId => PersistenceIdOf(_name);

    /// <summary>The persistence id of the durable queue named <paramref name="name"/>.</summary>
    /// <param name="name">The queue's name.</param>
    public static string PersistenceIdOf(string name) => $"actor-queue-{name}";

    /// <summary>The actor's timers (set by Akka).</summary>
    public ITimerScheduler Timers { get; set; } = null!;

    private QueueState State => _machine.State;

    private TimeSpan Now => Context.System.Scheduler.Now - DateTimeOffset.UnixEpoch;

    private void Record(QueueEvent e)
    {
        if (QueueJournal.Durable(e) is { } kept) _codec.Append(_open, kept);
    }

    /// <inheritdoc />
    protected override void PreStart()
    {
        ActorQueueMetrics.Register(_metrics);
        base.PreStart();
    }

    /// <inheritdoc />
    protected override void PreRestart(Exception reason, object message)
    {
        // Restarted in place (recovering from the journal again): the supervisor holds what arrives meanwhile.
        Context.Parent.Tell(DurableQueueFailing.Instance);
        AnswerHeld($"Durable queue {_name} restarted ({reason.GetType().Name}: {reason.Message}) before it could confirm writing it to its journal. Treat it as not accepted.");
        base.PreRestart(reason, message);
    }

    /// <inheritdoc />
    protected override void PostStop()
    {
        AnswerHeld($"Durable queue {_name} stopped before it could confirm writing it to its journal. Treat it as not accepted.");
        if (_recovered) _machine.Stopped(this);
        ActorQueueMetrics.Unregister(_metrics);
        base.PostStop();
    }

    /// <inheritdoc />
    protected override bool ReceiveRecover(object message)
    {
        switch (message)
        {
            case SnapshotOffer { Snapshot: JournalSnapshot s }:
                State.RestoreSnapshot(_codec.Decode(s.Snapshot), Now);
                return true;
            case JournalBatch b:
                foreach (var e in _codec.Decode(b.Batch)) State.Restore(e);
                _eventsSinceSnapshot += b.Batch.Events.Count;
                return true;
            case RecoveryCompleted:
                Recovered();
                return true;
            default:
                return false;
        }
    }

    // The recovery step, written before anything else is handled (Persist holds commands back until it is).
    private void Recovered()
    {
        var now = Now;
        var epoch = Math.Max(QueueState.DeliveryIdEpoch(now), State.LastDeliveryId + (1L << 20));
        State.Recover(epoch, now, new List<ParkedOutcome>());
        _recovered = true;
        _log.Info("Durable queue {0} recovered {1} messages ({2} ready, {3} delayed) and {4} dead letters.",
            _name, State.Held, State.ReadyCount, State.DelayedCount, State.DeadCount);
        if (_codec.Unreadable > 0)
            _log.Warning("Durable queue {0}: {1} messages could not be read back from the journal (their type or serializer changed); they are delivered as {2}.",
                _name, _codec.Unreadable, nameof(UnreadablePayload));
        var batch = _open;
        _open = new Batch();
        Persist(new JournalBatch(batch), _ =>
        {
            Written(batch.Events.Count);
            // Its supervisor holds back what arrived meanwhile until now.
            Context.Parent.Tell(DurableQueueReady.Instance);
        });
        _writing = true;
        _metrics.Publish(State);
        _host.ScheduleTick(Now, Timers);
    }

    /// <inheritdoc />
    protected override bool ReceiveCommand(object message)
    {
        switch (message)
        {
            case QueueFlush or QueueTick: _host.HandleOwn(message, Now, this, Timers); break;
            case Terminated m when _supervised:
                // Back through the supervisor, behind anything the actor sent before it stopped.
                Context.Parent.Tell(new DurableQueueTerminated(m.ActorRef));
                break;
            case Terminated m: _machine.Terminated(m.ActorRef, Now, this); break;
            case DurableQueueTerminated m when Sender.Equals(Context.Parent): _machine.Terminated(m.Actor, Now, this); break;
            case SaveSnapshotSuccess m: SnapshotSaved(m.Metadata); break;
            case SaveSnapshotFailure m:
                _log.Warning(m.Cause, "Durable queue {0}: a snapshot could not be saved; the journal still holds everything.", _name);
                break;
            case DeleteMessagesSuccess or DeleteSnapshotsSuccess: break;
            case DeleteMessagesFailure m:
                _log.Warning(m.Cause, "Durable queue {0}: old journal rows could not be deleted; they will be on the next snapshot.", _name);
                break;
            case DeleteSnapshotsFailure m:
                _log.Warning(m.Cause, "Durable queue {0}: old snapshots could not be deleted.", _name);
                break;
            default:
                var sender = Sender.IsNobody() ? null : Sender;
                if (!_machine.Receive(message, sender, Now, this))
                    _machine.Unknown(message, sender, message is Status || Sender.Equals(Self), this);
                break;
        }
        State.AssertInvariants();
        // Accepted messages were encoded as they were recorded: the bytes kept from their checks have served.
        _codec.ForgetChecked();
        WriteIfDue();
        return true;
    }

    // One write in flight at a time: what gathers meanwhile goes in the next, so a busy queue writes in large groups.
    private void WriteIfDue()
    {
        if (_writing || _open.Events.Count == 0) return;
        var batch = _open;
        _open = new Batch();
        (_writingEffects, _openEffects) = (_openEffects, _writingEffects);
        _writing = true;
        var count = batch.Events.Count;
        // A snapshot must be taken of exactly what the journal holds: the write before it holds commands back.
        if (_eventsSinceSnapshot + count >= _options.SnapshotEvery) Persist(new JournalBatch(batch), _ => Written(count));
        else PersistAsync(new JournalBatch(batch), _ => Written(count));
    }

    private void Written(int count)
    {
        _writing = false;
        _eventsSinceSnapshot += count;
        Release(_writingEffects);
        if (_open.Events.Count > 0)
        {
            WriteIfDue();
            return;
        }
        // Nothing else waits to be written: effects decided behind the write go now, and the state is what the journal holds.
        (_writingEffects, _openEffects) = (_openEffects, _writingEffects);
        Release(_writingEffects);
        if (_eventsSinceSnapshot >= _options.SnapshotEvery)
        {
            _eventsSinceSnapshot = 0;
            // The state is copied here (references only); its messages are serialized by the snapshot store.
            var taken = State.TakeSnapshot();
            var codec = new JournalCodec(Context.System);
            SaveSnapshot(new JournalSnapshot(() => codec.Encode(taken)));
        }
    }

    private void Release(List<HeldEffect> effects)
    {
        foreach (var e in effects)
        {
            if (e.Stop) Context.Stop(Self);
            else if (e.Dropped is { } dropped) PublishDropped(dropped);
            else TrySend(e.To!, e.Message!);
        }
        effects.Clear();
    }

    private void SnapshotSaved(SnapshotMetadata metadata)
    {
        _log.Debug("Durable queue {0}: snapshot saved at {1}.", _name, metadata.SequenceNr);
        if (!_options.DeleteOnSnapshot) return;
        DeleteMessages(metadata.SequenceNr);
        DeleteSnapshots(new SnapshotSelectionCriteria(metadata.SequenceNr - 1));
    }

    /// <inheritdoc />
    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        // Nothing decided since the last write was seen: producers resend what was not acknowledged, and the queue
        // started again recovers exactly what the journal holds.
        _log.Error(cause, "Durable queue {0}: the journal failed to write; stopping, to be started again from what it holds.", _name);
        // Told first, so that whatever a caller sends after hearing of the failure is held by the supervisor, not lost here.
        Context.Parent.Tell(DurableQueueFailing.Instance);
        AnswerHeld($"Durable queue {_name} could not confirm writing it to its journal ({cause.GetType().Name}: {cause.Message}). " +
                   "Treat it as not accepted (a write that timed out may still have kept it).");
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    // Every call is answered: a plain enqueue waiting on a write that will not be confirmed (or behind it) hears so.
    // Credit, deliveries and the rest are left to the protocol's own repeats.
    private void AnswerHeld(string detail)
    {
        _stopping = true;
        foreach (var effects in new[] { _writingEffects, _openEffects })
        {
            foreach (var e in effects)
                if (e.Message is EnqueueAccepted accepted) TrySend(e.To!, new EnqueueRejected(accepted.CorrelationId, RejectReason.Unavailable, detail));
            effects.Clear();
        }
    }

    /// <inheritdoc />
    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        // Messages are checked before they are accepted, so this is a bug; the state is ahead of the journal, so start
        // again from the journal rather than carry on.
        _log.Error(cause, "Durable queue {0}: the journal rejected a write; restarting from what it holds.", _name);
        throw new InvalidOperationException($"Durable queue {_name}: the journal rejected write {sequenceNr}.", cause);
    }

    /// <inheritdoc />
    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        _log.Error(reason, "Durable queue {0}: recovery from the journal failed; stopping.", _name);
        base.OnRecoveryFailure(reason, message);
    }

    private bool MustWait => !_stopping && (_writing || _open.Events.Count > 0);

    private bool TrySend(IActorRef to, object message) => _host.TrySend(to, message);

    bool IQueueEffects.Send(object to, object message)
    {
        if (!MustWait) return TrySend((IActorRef)to, message);
        _openEffects.Add(new HeldEffect((IActorRef)to, message, null, false));
        return true;
    }

    void IQueueEffects.Watch(object actor) => Context.Watch((IActorRef)actor);

    void IQueueEffects.Unwatch(object actor) => Context.Unwatch((IActorRef)actor);

    void IQueueEffects.RequestFlush() => _host.RequestFlush(Self);

    void IQueueEffects.Dropped(QueuedMessage evicted)
    {
        if (MustWait) _openEffects.Add(new HeldEffect(null, null, evicted, false));
        else PublishDropped(evicted);
    }

    private void PublishDropped(QueuedMessage evicted) => _host.PublishDropped(Context.System, evicted);

    void IQueueEffects.Stop()
    {
        if (MustWait) _openEffects.Add(new HeldEffect(null, null, null, true));
        else Context.Stop(Self);
    }

    void IQueueEffects.Log(int level, string line) => _host.Log(level, line);
}
