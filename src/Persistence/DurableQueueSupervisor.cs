using ActorQueue.Protocol;
using Akka.Actor;
using Akka.Event;

namespace ActorQueue.Persistence;

/// <summary>
/// The face of a durable queue: the actor its producers, consumers and clients talk to. It passes everything to the
/// <see cref="DurableQueueActor"/> it supervises. When a journal failure stops that actor (as Akka.Persistence always
/// does), it starts it again after a backoff that doubles from 200 ms up to 10 s, and the new one recovers exactly
/// what the journal holds. What arrives while the queue recovers waits here (up to 10,000 messages) and goes to it
/// once it has; while it is down, and for what waited when a recovery fails, plain enqueues are refused as <see cref="RejectReason.Unavailable"/> with the
/// reason, and the rest (producers' messages, pulls, settlements) is dropped: producers and consumers
/// repeat themselves until the queue is back. After a drain the queue stops for good, and so does this actor.
/// </summary>
internal sealed class DurableQueueSupervisor : UntypedActor, IWithTimers
{
    private static readonly TimeSpan MinBackoff = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(10);

    private readonly string _name;
    private readonly Props _queueProps;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private IActorRef? _queue;
    // Until the queue has recovered, what arrives waits here (a bounded number), so that a recovery that fails answers
    // it rather than losing it in the queue's own stash.
    private bool _ready;
    private readonly Queue<(object Message, IActorRef Sender)> _waiting = new();
    private const int MaxWaiting = 10_000;
    private bool _draining;
    private int _failures;
    private DateTime _upSince;

    private sealed class StartAgain
    {
        public static readonly StartAgain Instance = new();
    }

    public DurableQueueSupervisor(string name, Props queueProps)
    {
        _name = name;
        _queueProps = queueProps;
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(string name, Props queueProps) => Akka.Actor.Props.Create(() => new DurableQueueSupervisor(name, queueProps));

    // The journaled actor restarts in place on an exception (it recovers from the journal); it stops on a journal failure.
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Restart);

    protected override void PreStart() => Start();

    private void Start()
    {
        _ready = false;
        _queue = Context.ActorOf(_queueProps, "journaled");
        Context.Watch(_queue);
        _upSince = DateTime.UtcNow;
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case DurableQueueTerminated t when Sender.Equals(_queue):
                // A watched consumer or producer stopped: back to the queue behind what it sent before.
                if (_ready) _queue.Tell(t, Self);
                else _waiting.Enqueue((t, Self));
                return;
            case DurableQueueFailing when Sender.Equals(_queue):
                // It is stopping: what arrives from now on waits here, and is answered once it has stopped.
                _ready = false;
                return;
            case DurableQueueReady when Sender.Equals(_queue):
                _ready = true;
                while (_waiting.TryDequeue(out var w)) _queue!.Tell(w.Message, w.Sender);
                return;
            case Terminated t when t.ActorRef.Equals(_queue):
                _queue = null;
                while (_waiting.TryDequeue(out var w)) Unavailable(w.Message, w.Sender);
                if (_draining)
                {
                    Context.Stop(Self);
                    return;
                }
                // A queue that stayed up a while starts the count again: the backoff is for a store that keeps failing.
                if (DateTime.UtcNow - _upSince > MaxBackoff) _failures = 0;
                var delay = Backoff(_failures++);
                _log.Warning("Durable queue {0} stopped (its journal failed; the cause is logged above); starting it again in {1} ms.", _name, (int)delay.TotalMilliseconds);
                Timers.StartSingleTimer("start", StartAgain.Instance, delay);
                return;
            case StartAgain:
                if (_queue is null) Start();
                return;
            case Drain:
                _draining = true;
                break;
        }
        if (_queue is not null && _ready)
        {
            _queue.Forward(message);
            return;
        }
        if (_queue is not null && _waiting.Count < MaxWaiting)
        {
            _waiting.Enqueue((message, Sender));
            return;
        }
        Unavailable(message, Sender);
    }

    private void Unavailable(object message, IActorRef sender)
    {
        var detail = $"Durable queue {_name} is recovering from a journal failure; nothing was accepted. Try again shortly.";
        switch (message)
        {
            case Enqueue m:
                if (!sender.IsNobody()) sender.Tell(new EnqueueRejected(m.CorrelationId, RejectReason.Unavailable, detail));
                break;
            case Drain:
                // Nothing to drain while it is down: what it holds stays in the journal.
                if (!sender.IsNobody()) sender.Tell(new Drained(_name, Kept: true));
                Context.Stop(Self);
                break;
            default:
                // Producers and consumers repeat themselves (resend, re-pull) until the queue is back.
                break;
        }
    }

    private static TimeSpan Backoff(int failures)
    {
        var raw = MinBackoff.TotalMilliseconds * Math.Pow(2, Math.Min(failures, 10));
        var jittered = Math.Min(raw, MaxBackoff.TotalMilliseconds) * (0.8 + 0.4 * Random.Shared.NextDouble());
        return TimeSpan.FromMilliseconds(jittered);
    }
}

/// <summary>Told by a <see cref="DurableQueueActor"/> to its parent once it has recovered and written its recovery.</summary>
internal sealed class DurableQueueReady
{
    public static readonly DurableQueueReady Instance = new();
}

/// <summary>Told by a <see cref="DurableQueueActor"/> to its parent when a journal failure is about to stop it.</summary>
internal sealed class DurableQueueFailing
{
    public static readonly DurableQueueFailing Instance = new();
}

/// <summary>A consumer or producer the queue watched has terminated; passed back through the supervisor, in order.</summary>
internal sealed record DurableQueueTerminated(IActorRef Actor);
