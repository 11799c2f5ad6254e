using System.Collections.Concurrent;
using ActorQueue.Protocol;
using Akka.Actor;
using Akka.TestKit;

namespace ActorQueue.TestKit;

/// <summary>Records the queue's answers to producers and plain enqueues as acceptances and rejections.</summary>
internal sealed class ReplyRecorder : UntypedActor
{
    private readonly History _history;
    private readonly ConcurrentDictionary<long, string> _correlations;
    private readonly ConcurrentDictionary<string, bool> _answered;

    private readonly ConcurrentDictionary<IActorRef, bool> _killed;

    public ReplyRecorder(History history, ConcurrentDictionary<long, string> correlations, ConcurrentDictionary<string, bool> answered,
        ConcurrentDictionary<IActorRef, bool> killed)
    {
        _history = history;
        _correlations = correlations;
        _answered = answered;
        _killed = killed;
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case EnqueueAccepted a when _correlations.TryGetValue(a.CorrelationId, out var id):
                _history.Add(HistoryKind.Accepted, id);
                _answered[id] = true;
                break;
            case EnqueueRejected r when _correlations.TryGetValue(r.CorrelationId, out var id):
                if (r.Reason == RejectReason.QueueStopped && _killed.ContainsKey(Sender))
                {
                    // A producer that was killed answers what it had sent without knowing whether the queue took it.
                    _history.Add(HistoryKind.Unknown, id, e => e with { Detail = r.Detail });
                    _answered.TryAdd(id, false);
                }
                else
                {
                    _history.Add(HistoryKind.Rejected, id, e => e with { Detail = $"{r.Reason}: {r.Detail}" });
                    _answered[id] = true;
                }
                break;
        }
    }
}

/// <summary>Records messages a drop full mode evicted (published on the event stream).</summary>
internal sealed class DropRecorder : ReceiveActor
{
    public DropRecorder(History history, Activity activity) =>
        Receive<MessageDropped>(d =>
        {
            history.Add(HistoryKind.Dropped, (d.Message as SimMessage)?.Id ?? d.Message.ToString());
            activity.Dropped();
        });
}

/// <summary>
/// What a consumer talks to instead of its queue. Each incarnation of the consumer gets a session child that speaks to
/// the queue in its place (so the queue watches the session, which stops when its consumer dies) and passes the queue's
/// answers back, recording when each delivery was dispatched. While held (a pause) what the consumer sends is kept,
/// bounded, and sent on release; the scenario's link filter may drop messages on the way to the queue.
/// </summary>
internal sealed class ConsumerLink : UntypedActor
{
    private const int MaxHeld = 100_000;

    private readonly IActorRef _queue;
    private readonly int _consumer;
    private readonly History _history;
    private readonly Func<object, bool>? _pass;
    private readonly Queue<(object Message, IActorRef Sender)> _held = new();
    private readonly Dictionary<IActorRef, IActorRef> _sessions = new();
    private bool _holding;
    private int _incarnations;

    private readonly Activity _activity;

    public ConsumerLink(IActorRef queue, int consumer, History history, Func<object, bool>? pass, Activity activity)
    {
        _activity = activity;
        _queue = queue;
        _consumer = consumer;
        _history = history;
        _pass = pass;
    }

    public sealed class Hold
    {
        public static readonly Hold Instance = new();
    }

    public sealed class Release
    {
        public static readonly Release Instance = new();
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case Hold:
                _holding = true;
                return;
            case Release:
                _holding = false;
                while (_held.TryDequeue(out var h)) Pass(h.Message, h.Sender);
                return;
            case Terminated t:
                // The consumer is gone: its session stops too, so the queue sees it go and takes back what it held - after
                // passing on what the consumer sent on its way out (its returns), which is ahead of this in the session's mailbox.
                if (_sessions.Remove(t.ActorRef, out var ended)) ended.Tell(PoisonPill.Instance);
                return;
        }
        if (_pass is not null && !_pass(message))
        {
            _activity.Forwarded(message); // lost on the way: nothing more will come of it
            return;
        }
        if (!_holding) Pass(message, Sender);
        else
        {
            // Held back on purpose (a pause): the simulation does not wait for it, time moves on past its deadline.
            if (_held.Count < MaxHeld) _held.Enqueue((message, Sender));
            _activity.Forwarded(message);
        }
    }

    private void Pass(object message, IActorRef consumer)
    {
        if (consumer.IsNobody()) return;
        if (!_sessions.TryGetValue(consumer, out var session))
        {
            var queue = _queue;
            var (index, history, activity) = (_consumer, _history, _activity);
            session = Context.ActorOf(Props.Create(() => new Session(queue, consumer, index, history, activity)), $"session-{++_incarnations}");
            _sessions[consumer] = session;
            Context.Watch(consumer);
        }
        session.Tell(message);
    }

    private sealed class Session(IActorRef queue, IActorRef consumer, int index, History history, Activity activity) : UntypedActor
    {
        // Deliveries passed to the consumer and not yet settled through here: when the session ends (its consumer died)
        // their settlements will never come, and the simulation must not wait for them.
        private readonly HashSet<long> _outstanding = new();

        protected override void PostStop() => activity.Abandon(_outstanding);

        protected override void OnReceive(object message)
        {
            // From the link: the consumer's, for the queue. Anything else is the queue's answer (a durable queue answers
            // from the journaled actor below its supervisor, so the sender is not the queue's own ref).
            if (!Sender.Equals(Context.Parent))
            {
                if (message is DeliveryBatch batch)
                    for (var i = 0; i < batch.Count; i++)
                    {
                        var d = batch[i];
                        var id = (d.Message as SimMessage)?.Id ?? d.Message.ToString();
                        history.Add(HistoryKind.Dispatched, id, e => e with { Actor = index, Attempt = d.Attempt, DeliveryId = d.DeliveryId });
                    }
                if (message is DeliveryBatch counted)
                {
                    activity.Delivered(counted.Count);
                    for (var i = 0; i < counted.Count; i++) _outstanding.Add(counted.FirstDeliveryId + i);
                }
                // Taken back by the queue (deadline passed): whatever the consumer does with them, nothing is owed.
                if (message is Revoked { DeliveryIds: { } revoked })
                {
                    foreach (var id in revoked) _outstanding.Remove(id);
                    activity.Abandon(revoked);
                }
                consumer.Tell(message, Self);
            }
            else
            {
                queue.Tell(message, Self);
                activity.Forwarded(message);
                if (Activity.IsSettlement(message)) _outstanding.RemoveWhere(id => Activity.Settles(message, id));
            }
        }
    }
}

/// <summary>
/// The simulated handler of one consumer: records each delivery, takes its latency in virtual time, and fails, hangs or
/// poisons as the seed decides for that message and attempt; then runs the scenario's own handler, if any.
/// </summary>
internal sealed class SimHandler(int consumer, int seed, HandlerBehavior behavior, History history, TestScheduler clock, Activity activity) : IQueueHandler
{
    public async Task HandleAsync(Delivery delivery, CancellationToken cancellationToken)
    {
        activity.Begin();
        try
        {
            await HandleCountedAsync(delivery, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            activity.End();
        }
    }

    private async Task HandleCountedAsync(Delivery delivery, CancellationToken cancellationToken)
    {
        var m = delivery.Message as SimMessage;
        var id = m?.Id ?? delivery.Message.ToString() ?? "?";
        history.Add(HistoryKind.Delivered, id, e => e with { Actor = consumer, Attempt = delivery.Attempt, DeliveryId = delivery.DeliveryId });
        try
        {
            var span = behavior.MaxLatency - behavior.MinLatency;
            var latency = behavior.MinLatency + span * SimRandom.Pick(seed, id, delivery.Attempt, 1);
            await DelayAsync(latency, cancellationToken).ConfigureAwait(false);
            if (SimRandom.Pick(seed, id, delivery.Attempt, 2) < behavior.HangRate) await DelayAsync(behavior.HangFor, cancellationToken).ConfigureAwait(false);
            if (SimRandom.Pick(seed, id, 0, 3) < behavior.PoisonRate) throw new SimulatedFailure($"{id} is a poison message");
            if (SimRandom.Pick(seed, id, delivery.Attempt, 4) < behavior.FailureRate) throw new SimulatedFailure($"{id} failed attempt {delivery.Attempt}");
            if (behavior.Inner is { } inner)
                await inner.HandleAsync(delivery with { Message = m?.Body ?? delivery.Message }, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            history.Add(HistoryKind.Nacked, id, x => x with { Actor = consumer, Attempt = delivery.Attempt, DeliveryId = delivery.DeliveryId, Detail = e.Message });
            activity.Completed(delivery.DeliveryId);
            throw;
        }
        history.Add(HistoryKind.Acked, id, e => e with { Actor = consumer, Attempt = delivery.Attempt, DeliveryId = delivery.DeliveryId });
        activity.Completed(delivery.DeliveryId);
    }

    // A pause in virtual time: done when the test scheduler's clock passes it. While it waits the handler does not count
    // as busy; it counts again from the moment its time comes until it next waits or ends.
    private async Task DelayAsync(TimeSpan delay, CancellationToken cancellationToken)
    {
        if (delay <= TimeSpan.Zero) return;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        activity.End();
        clock.Advanced.ScheduleOnce(delay, () =>
        {
            if (done.Task.IsCompleted) return;
            activity.Begin();
            if (!done.TrySetResult()) activity.End();
        });
        await using var registration = cancellationToken.Register(() =>
        {
            activity.Begin();
            if (!done.TrySetCanceled(cancellationToken)) activity.End();
        });
        await done.Task.ConfigureAwait(false);
    }
}

/// <summary>The failure a simulated handler throws.</summary>
public sealed class SimulatedFailure : Exception
{
    /// <summary>A failure with a message saying which message and attempt failed.</summary>
    /// <param name="message">What failed.</param>
    public SimulatedFailure(string message) : base(message) { }
}

/// <summary>
/// What the simulation is still doing in real time: handlers running (not waiting on virtual time), and handlings
/// finished whose ack or nack the consumer has not yet passed to its queue. Virtual time moves on only when both are
/// done, or a settlement has been awaited long enough to be one the consumer will never send (its delivery timed out).
/// </summary>
internal sealed class Activity
{
    // Settlements that will never come are dropped when their delivery is revoked or their consumer dies (Abandon); this
    // is the last resort for any other, long enough that a busy machine's stall does not pass for one.
    private static readonly long GiveUpAfter = System.Diagnostics.Stopwatch.Frequency; // 1 s

    private readonly ConcurrentDictionary<long, long> _unsent = new();
    // Deliveries abandoned before their handler finished: its completion is not waited for.
    private readonly ConcurrentDictionary<long, byte> _abandoned = new();
    private int _busy;
    private long _dispatched;

    /// <summary>Deliveries the sessions have passed on to their consumers.</summary>
    public long Dispatched => Interlocked.Read(ref _dispatched);

    private long _drops;

    /// <summary>Drops recorded in the history (each arrives on the event stream, after the queue counted it).</summary>
    public long Drops => Interlocked.Read(ref _drops);

    public void Dropped() => Interlocked.Increment(ref _drops);

    public void Delivered(int count) => Interlocked.Add(ref _dispatched, count);

    public int Busy => Volatile.Read(ref _busy);

    public void Begin() => Interlocked.Increment(ref _busy);

    public void End() => Interlocked.Decrement(ref _busy);

    public void Completed(long deliveryId)
    {
        if (_abandoned.TryRemove(deliveryId, out _)) return;
        _unsent[deliveryId] = System.Diagnostics.Stopwatch.GetTimestamp();
    }

    /// <summary>These deliveries' settlements will never reach the queue (revoked, or their consumer died): do not wait for them.</summary>
    public void Abandon(IEnumerable<long> deliveryIds)
    {
        foreach (var id in deliveryIds)
            if (!_unsent.TryRemove(id, out _)) _abandoned[id] = 0;
    }

    public void Forwarded(object message)
    {
        if (!IsSettlement(message)) return;
        foreach (var id in _unsent.Keys)
            if (Settles(message, id)) _unsent.TryRemove(id, out _);
    }

    /// <summary>Whether a consumer's message settles deliveries (acks, nacks, returns).</summary>
    public static bool IsSettlement(object message) => message is Ack or Nack or AckBatch or AckRange or Return;

    /// <summary>Whether a consumer's message settles delivery <paramref name="deliveryId"/>.</summary>
    public static bool Settles(object message, long deliveryId) => message switch
    {
        Ack a => a.DeliveryId == deliveryId,
        Nack n => n.DeliveryId == deliveryId,
        AckBatch { DeliveryIds: { } ids } => Array.IndexOf(ids, deliveryId) >= 0,
        AckRange r => deliveryId >= r.FromDeliveryId && deliveryId <= r.ToDeliveryId,
        Return { DeliveryIds: { } ids } => Array.IndexOf(ids, deliveryId) >= 0,
        _ => false,
    };

    /// <summary>True while a handler runs or a settlement is on its way; settlements awaited too long are forgotten.</summary>
    public bool Pending()
    {
        if (Busy > 0) return true;
        if (_unsent.IsEmpty) return false;
        var now = System.Diagnostics.Stopwatch.GetTimestamp();
        var pending = false;
        foreach (var (id, at) in _unsent)
        {
            if (now - at > GiveUpAfter) _unsent.TryRemove(id, out _);
            else pending = true;
        }
        return pending;
    }
}
