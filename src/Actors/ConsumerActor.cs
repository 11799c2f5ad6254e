using ActorQueue.Core;
using ActorQueue.Metrics;
using ActorQueue.Protocol;
using Akka.Actor;
using Akka.Event;

namespace ActorQueue;

/// <summary>
/// A competing consumer: tells its queue how many deliveries it may hold (prefetch) and runs the user's
/// <see cref="IQueueHandler"/> on up to concurrency of them at once. A handler of unknown or noticeable cost runs on a
/// thread of its slot's own (never this actor's, nor the shared pool's); one measured cheap, microseconds and completing
/// at once, runs here in a batch, watched by a process-wide thread that reports progress for it should it block. It acks
/// successes in batches and nacks failures; while handlers run it reports them in progress well before the ack deadline,
/// so a slow but live handler, blocking or not, is not redelivered, and a handler that runs past handler-timeout is
/// cancelled and nacked. Deliveries it never started go back with <see cref="Return"/> (their attempt does not count)
/// when it stops, is revoked or is wedged. It re-sends its pull while it hears nothing, follows its queue through a
/// restart, and when the queue terminates looks for a new one at the same path until reattach-timeout.
/// </summary>
public sealed class ConsumerActor : UntypedActor, IWithTimers
{
    private readonly IQueueHandler _handler;
    private readonly ConsumerSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    private readonly RingBuffer<Delivery> _buffer = new();
    private readonly HandlerWorker[] _workers;
    private readonly List<long> _acks = new();
    private readonly List<long> _scratch = new();
    private IActorRef _queue;
    private long _epoch;
    private TimeSpan _ackTimeout;
    private bool _flushPending;
    private bool _left;
    private TimeSpan _lastHeard;
    private TimeSpan _lastExtension;
    private TimeSpan? _lastAsync;
    // What one handler call costs (Stopwatch ticks, smoothed; unknown until measured): cheap handlers run here, watched,
    // the rest on the slots' own threads.
    private double _syncCost = double.PositiveInfinity;
    // Cheap enough to run here: under 100 µs a call on average (a run of them may be preempted on a busy machine, so the
    // bar is not set at the handler's true cost; the watchdog covers a run that goes on).
    private static readonly double CheapHandler = System.Diagnostics.Stopwatch.Frequency / 10_000.0; // 100 µs
    private const int ProbeSize = 1;
    // The fewest cheap deliveries worth handing to another thread.
    private const int MinShare = 16;
    // Runs shorter than this raise the cost estimate by a bounded step only.
    private const int ShortRun = 16;
    // The least a short run's sample may be clamped to (an estimate of zero from a coarse clock must be able to rise).
    private static readonly double EstimateFloor = System.Diagnostics.Stopwatch.Frequency / 5_000_000.0; // 200 ns
    // The least work a share must carry: handing it to another thread costs a work item on the pool and a report back,
    // a few microseconds, so a share pays when its handlers take well beyond that (64 of 125 ns, say).
    internal static readonly double ShareWork = System.Diagnostics.Stopwatch.Frequency / 125_000.0; // 8 µs
    // The least a handler must cost to be shared at all. Below it (an empty handler: tens of nanoseconds) one thread
    // keeps up with what the queue can deliver, and a share would add a pool thread's wake-up to some deliveries'
    // latency under a steady load; the 1 -> 1 pipeline of the benchmark's latency scenario is not shared.
    internal static readonly double ShareFloor = System.Diagnostics.Stopwatch.Frequency / 10_000_000.0; // 100 ns
    // The window asked of the queue: prefetch, widened while handlers are cheap and complete at once. Prefetch bounds the
    // work a consumer holds back from others; for handlers that take microseconds that work is a few microseconds even
    // at eight times as many, and the wider window lets the queue refill the consumer while it handles (at prefetch 32
    // a consumer of cheap handlers waits for a round trip after every 32). A handler that goes asynchronous or costly
    // narrows it back at once.
    private int _window;
    private readonly int _cheapWindow;
    /// <summary>The most a consumer widens its window to while its handlers are cheap (never below its prefetch).</summary>
    internal const int MaxCheapWindow = 256;
    private KeyValuePair<string, object?> _queueTag = new(ActorQueueMetrics.QueueTag, "unregistered");

    // Looking for a new queue at the path of one that terminated.
    private Reattachment _reattach;

    // Cheap handlers run on this thread, watched by the process's watchdog; one that goes asynchronous continues off it.
    private readonly InlineRun _inline;
    private Delivery[] _inlineRun = new Delivery[16];
    private CancellationTokenSource _inlineCancellation = new();
    private readonly Dictionary<long, Running> _asyncRunning = new();

    private readonly record struct Running(TimeSpan StartedAt, CancellationTokenSource Cancellation, Task Task, bool TimedOut);

    /// <summary>Creates the Props of a consumer of <paramref name="queue"/>.</summary>
    /// <param name="queue">The queue to pull from.</param>
    /// <param name="handler">The user code run for each delivery.</param>
    /// <param name="settings">Prefetch, concurrency and timeouts; null to read actor-queue.consumer from the actor system's configuration.</param>
    public static Props Props(IActorRef queue, IQueueHandler handler, ConsumerSettings? settings = null)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(handler);
        return Akka.Actor.Props.Create(() => new ConsumerActor(queue, handler, settings));
    }

    /// <summary>Creates the Props of a consumer that runs an async function.</summary>
    /// <param name="queue">The queue to pull from.</param>
    /// <param name="handler">Called once per delivery; see <see cref="IQueueHandler.HandleAsync"/>.</param>
    /// <param name="settings">Prefetch, concurrency and timeouts; null to read actor-queue.consumer from the actor system's configuration.</param>
    public static Props Props(IActorRef queue, Func<Delivery, CancellationToken, Task> handler, ConsumerSettings? settings = null) =>
        Props(queue, QueueHandler.From(handler), settings);

    /// <summary>Creates a consumer; use <see cref="Props(IActorRef, IQueueHandler, ConsumerSettings?)"/> rather than calling this directly.</summary>
    /// <param name="queue">The queue to pull from.</param>
    /// <param name="handler">The user code run for each delivery.</param>
    /// <param name="settings">Prefetch, concurrency and timeouts; null to read actor-queue.consumer from the actor system's configuration.</param>
    public ConsumerActor(IActorRef queue, IQueueHandler handler, ConsumerSettings? settings)
    {
        settings ??= ConsumerSettings.Create(Context.System.Settings.Config);
        _queue = queue;
        _handler = handler;
        _settings = settings;
        _ackTimeout = settings.HandlerTimeout;
        _workers = new HandlerWorker[settings.Concurrency];
        _window = settings.Prefetch;
        _cheapWindow = CheapWindow(settings.Prefetch);
        for (var i = 0; i < _workers.Length; i++) _workers[i] = new HandlerWorker(Self, handler, Context.System.Scheduler) { QueueTag = _queueTag };
        _inline = new InlineRun(Self);
    }

    /// <summary>The actor's timers (set by Akka).</summary>
    public ITimerScheduler Timers { get; set; } = null!;

    private TimeSpan Now => Context.System.Scheduler.Now - DateTimeOffset.UnixEpoch;

    /// <inheritdoc />
    protected override void PreStart()
    {
        ProgressWatchdog.Watch(_inline);
        Context.Watch(_queue);
        StartTicking();
        SendPull();
    }

    /// <inheritdoc />
    protected override void PreRestart(Exception reason, object message)
    {
        // Restarted in place (same ref): the queue would otherwise wait for deadlines to take our deliveries back.
        Leave(detach: true);
        base.PreRestart(reason, message);
    }

    /// <inheritdoc />
    protected override void PostStop() => Leave(detach: false);

    /// <inheritdoc />
    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case DeliveryBatch m: HandleDeliveries(m); break;
            case WorkerReport m: HandleReport(m); break;
            case HandlerDone m: HandleDone(m); break;
            case ConsumerFlush: Flush(); break;
            case ConsumerTick: HandleTick(); break;
            case ConsumerRegistered m: HandleRegistered(m); break;
            case Revoked m: HandleRevoked(m); break;
            case SettleRejected m:
                // Already settled is the expected end of a race with the queue's own take-back; anything else is a bug.
                if (m.Error == SettleError.AlreadySettled) _log.Debug("Consumer of {0}: delivery {1} was already settled or taken back.", _queue, m.DeliveryId);
                else _log.Warning("Consumer of {0}: the queue refused to settle {1} deliveries from {2}: {3}", _queue, m.Count, m.DeliveryId, m.Error);
                break;
            case Drained:
                _log.Info("Consumer of {0}: the queue drained; stopping.", _queue);
                Context.Stop(Self);
                break;
            case Terminated m when m.ActorRef.Equals(_queue): HandleQueueLost(); break;
            case ActorIdentity m: HandleIdentity(m); break;
            default: Unhandled(message); break;
        }
    }

    private void HandleRegistered(ConsumerRegistered m)
    {
        _lastHeard = Now;
        if (_epoch != 0 && m.Epoch != _epoch)
        {
            // The queue restarted or recovered: what we hold from before is no longer its to settle; it has those
            // messages (or lost them) on its side. Running handlers finish, and their acks are refused.
            ReclaimUnstarted();
            _log.Info("Consumer of {0}: the queue is a new incarnation; dropping {1} deliveries from the old one.", _queue, _buffer.Count);
            _buffer.Clear();
        }
        _epoch = m.Epoch;
        _ackTimeout = m.AckTimeout;
        _queueTag = new KeyValuePair<string, object?>(ActorQueueMetrics.QueueTag, m.QueueName);
        foreach (var w in _workers) w.QueueTag = _queueTag;
        StartTicking();
    }

    private void HandleDeliveries(DeliveryBatch batch)
    {
        if (batch.Messages is null) return;
        _lastHeard = Now;
        for (var i = 0; i < batch.Count; i++) _buffer.PushBack(batch[i]);
        StartWorkers();
    }

    private void StartWorkers()
    {
        StartWorkersCore();
        AdjustWindow();
    }

    private void StartWorkersCore()
    {
        var busy = 0;
        var sharing = 0;
        var async = false;
        while (_buffer.Count > 0)
        {
            busy = _asyncRunning.Count;
            sharing = 0;
            foreach (var w in _workers)
                if (w.Busy)
                {
                    if (w.Share) sharing++;
                    else busy++;
                }
            async = _lastAsync is { } lastAsync && Now - lastAsync < TimeSpan.FromSeconds(1);
            var probing = double.IsPositiveInfinity(_syncCost);
            // Handlers measured cheap (microseconds, completing at once) run right here, a whole buffer at a time, while
            // the watchdog reports progress for us should one of them block after all. Until measured, one runs here
            // alone, as a probe: a slow one sends the rest to the workers at once.
            if (async || busy > 0 || !(probing || _syncCost < CheapHandler)) break;
            // A backlog of cheap ones is shared with idle slots, one per spare core, whose shares run on the thread pool
            // beside this run: concurrency means handlers at once, and one thread would cap them at one core.
            if (!probing) sharing += ShareCheap(sharing);
            if (_buffer.Count == 0) return;
            // A run cut short by handler-timeout stops here: the mailbox (revocations above all) is read before more
            // starts, and the flush that follows resumes the work.
            if (!RunInline(probing)) return;
        }
        if (_buffer.Count == 0) return;
        var idle = _workers.Length - busy - sharing;
        if (idle <= 0) return;
        // The rest run on the workers: costly ones spread over the free slots; once one has gone asynchronous, deliveries
        // are handed out singly so that one slow handler holds up no other.
        var costly = !async && !double.IsPositiveInfinity(_syncCost);
        foreach (var w in _workers)
        {
            if (_buffer.Count == 0 || idle == 0) break;
            if (w.Busy) continue;
            var chunk = async ? 1
                : costly ? Math.Clamp((_buffer.Count + idle - 1) / idle, 1, HandlerWorker.MaxChunk)
                : Math.Min(_buffer.Count, HandlerWorker.MaxChunk);
            w.Share = false;
            w.TimedOutId = 0;
            w.ProcessedUpTo = 0;
            w.Start(_buffer, chunk);
            idle--;
        }
    }

    // Cheap handlers with a backlog: idle slots, up to one per spare core, each take an equal share of the buffer to run
    // on the thread pool while the rest runs here. Returns how many shares were handed out.
    private int ShareCheap(int sharing)
    {
        var lanes = Math.Min(_workers.Length, Environment.ProcessorCount);
        // A core is spare only if no consumer of the process runs cheap handlers on it: with more consumers than cores
        // (eight consumers on two) every core is taken by their own runs, and a share would only queue on the pool behind
        // them, adding a hop to every chunk.
        var free = Math.Min(lanes - 1 - sharing, CheapLanes.Spare - 1);
        if (free <= 0 || _buffer.Count < 2 * MinShare) return 0;
        var share = Math.Max(MinShare, _buffer.Count / (free + 1));
        if (!ShareWorthIt(share, _syncCost)) return 0;
        var started = 0;
        foreach (var w in _workers)
        {
            if (started == free || _buffer.Count - share < MinShare) break;
            if (w.Busy) continue;
            w.Share = true;
            w.TimedOutId = 0;
            w.ProcessedUpTo = 0;
            w.Start(_buffer, share);
            started++;
        }
        return started;
    }

    /// <summary>
    /// Whether <paramref name="share"/> deliveries whose handlers cost <paramref name="cost"/> Stopwatch ticks each are
    /// worth handing to another thread: each handler costs at least <see cref="ShareFloor"/>, and all of them together
    /// at least <see cref="ShareWork"/>.
    /// </summary>
    internal static bool ShareWorthIt(int share, double cost) => cost >= ShareFloor && share * cost >= ShareWork;

    /// <summary>Runs a batch here; false when the run was cut short by handler-timeout.</summary>
    private bool RunInline(bool probing)
    {
        var n = Math.Min(_buffer.Count, probing ? ProbeSize : HandlerWorker.MaxChunk);
        if (_inlineRun.Length < n) _inlineRun = new Delivery[Math.Min(HandlerWorker.MaxChunk, Math.Max(n, _inlineRun.Length * 2))];
        for (var i = 0; i < n; i++) _inlineRun[i] = _buffer.PopFront();
        var cancellation = _inlineCancellation;
        var measure = probing || ActorQueueMetrics.HandlerTime.Enabled;
        var quickest = double.PositiveInfinity;
        var handled = 0;
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        // Acks gathered so far go out first (the flush cannot run while this thread is busy); the watchdog keeps alive the
        // run itself, what waits in the buffer and what shares running beside it hold (their reports wait for this
        // thread too).
        SendAcks();
        long[] waiting;
        var shares = false;
        foreach (var w in _workers) shares |= w.Busy && w.Share;
        if (!shares)
        {
            waiting = _buffer.Count == 0 ? [] : new long[_buffer.Count];
            for (var i = 0; i < waiting.Length; i++) waiting[i] = _buffer[i].DeliveryId;
        }
        else
        {
            _scratch.Clear();
            for (var i = 0; i < _buffer.Count; i++) _scratch.Add(_buffer[i].DeliveryId);
            foreach (var w in _workers)
                if (w.Busy && w.Share) w.CopyHeld(_scratch);
            waiting = _scratch.ToArray();
            _scratch.Clear();
        }
        _inline.Begin(_queue, _inlineRun, n, waiting, _ackTimeout, _settings.HandlerTimeout, cancellation);
        CheapLanes.Enter();
        try
        {
            for (var i = 0; i < n; i++)
            {
                var d = _inlineRun[i];
                var one = measure ? System.Diagnostics.Stopwatch.GetTimestamp() : 0;
                var task = HandlerWorker.Invoke(_handler, d, cancellation.Token);
                if (!task.IsCompleted)
                {
                    // It went asynchronous: it goes on off this thread with its token; the rest of the run goes back unstarted.
                    TrackAsync(d.DeliveryId, task, cancellation);
                    _inlineCancellation = new CancellationTokenSource();
                    for (var j = n - 1; j > i; j--) _buffer.PushFront(_inlineRun[j]);
                    _lastAsync = Now;
                    break;
                }
                if (cancellation.IsCancellationRequested && i + 1 < n)
                {
                    // The run outlived handler-timeout: the rest must not start with a cancelled token; they go back.
                    Settle(d.DeliveryId, task);
                    handled++;
                    for (var j = n - 1; j > i; j--) _buffer.PushFront(_inlineRun[j]);
                    break;
                }
                if (measure)
                {
                    var took = System.Diagnostics.Stopwatch.GetTimestamp() - one;
                    quickest = Math.Min(quickest, took);
                    if (ActorQueueMetrics.HandlerTime.Enabled) ActorQueueMetrics.HandlerTime.Record((double)took * 1000 / System.Diagnostics.Stopwatch.Frequency, _queueTag);
                }
                Settle(d.DeliveryId, task);
                handled++;
            }
        }
        finally
        {
            CheapLanes.Leave();
            _inline.End();
            Array.Clear(_inlineRun, 0, n);
        }
        if (probing) _syncCost = handled > 0 ? quickest : double.PositiveInfinity;
        else if (handled > 0)
        {
            var sample = (double)(System.Diagnostics.Stopwatch.GetTimestamp() - started) / handled;
            // A short run preempted once (a stall of a few milliseconds on a busy machine) must not pass for costly
            // handlers and send the next thousands to the slots; a handler that really is slow still shows within a
            // few runs, each of which counts for at most four times the estimate (raising it 2.5-fold at most).
            // (Never clamped to less than EstimateFloor, so that an estimate of zero from a coarse clock can rise;
            // and not for a run cut short by handler-timeout, which is no stall.)
            if (handled < ShortRun && !cancellation.IsCancellationRequested) sample = Math.Min(sample, 4 * Math.Max(_syncCost, EstimateFloor));
            _syncCost = 0.5 * _syncCost + 0.5 * sample;
        }
        RequestFlush();
        if (!ReferenceEquals(cancellation, _inlineCancellation) || !cancellation.IsCancellationRequested) return true;
        cancellation.Dispose();
        _inlineCancellation = new CancellationTokenSource();
        return false;
    }

    private void Settle(long deliveryId, Task task)
    {
        if (task.IsCompletedSuccessfully)
        {
            _acks.Add(deliveryId);
            return;
        }
        Failed(deliveryId, HandlerFailure.Of(task));
    }

    // A handler failure: nacked, counted by exception type, and logged as a warning with its exception (stack included),
    // at most FailureLogBudget a second per consumer so that a poison storm cannot flood the log; what the budget leaves
    // out is counted in the next line logged.
    private const int FailureLogBudget = 10;
    private long _failureWindow;
    private int _failuresLogged;
    private int _failuresNotLogged;

    private void Failed(long deliveryId, HandlerFailure failure)
    {
        _queue.Tell(failure.NackOf(deliveryId));
        if (ActorQueueMetrics.HandlerFailures.Enabled)
            ActorQueueMetrics.HandlerFailures.Add(1, _queueTag, new KeyValuePair<string, object?>("exception.type", failure.Error?.GetType().FullName ?? "cancelled"));
        var second = Environment.TickCount64 / 1000;
        if (second != _failureWindow)
        {
            _failureWindow = second;
            _failuresLogged = 0;
        }
        if (_failuresLogged >= FailureLogBudget)
        {
            _failuresNotLogged++;
            return;
        }
        _failuresLogged++;
        var skipped = _failuresNotLogged == 0 ? "" : $" ({_failuresNotLogged} more failures were not logged)";
        _failuresNotLogged = 0;
        var what = failure.DeadLetter ? "refused by its handler, dead-lettered at once" : "failed, nacked";
        if (failure.Error is { } error) _log.Warning(error, "Consumer of {0}: delivery {1} {2}: {3}{4}", _queue.Path.Name, deliveryId, what, failure.Reason, skipped);
        else _log.Warning("Consumer of {0}: delivery {1} {2}: {3}{4}", _queue.Path.Name, deliveryId, what, failure.Reason, skipped);
    }

    private void TrackAsync(long deliveryId, Task task, CancellationTokenSource cancellation)
    {
        _asyncRunning[deliveryId] = new Running(Now, cancellation, task, false);
        task.ContinueWith(static (t, state) =>
        {
            var done = (HandlerDone)state!;
            done.Consumer.Tell(done);
        }, new HandlerDone(Self, deliveryId, task), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private void HandleDone(HandlerDone done)
    {
        if (!_asyncRunning.Remove(done.DeliveryId, out var running)) return;
        if (ActorQueueMetrics.HandlerTime.Enabled) ActorQueueMetrics.HandlerTime.Record((Now - running.StartedAt).TotalMilliseconds, _queueTag);
        if (!running.TimedOut) Settle(done.DeliveryId, done.Task); // a timed-out one was nacked already
        running.Cancellation.Dispose();
        StartWorkers();
        RequestFlush();
    }

    private void HandleReport(WorkerReport report)
    {
        var w = report.Worker;
        w.ProcessedUpTo = report.To;
        var failures = report.Failures;
        var f = 0;
        for (var i = report.From; i < report.To; i++)
        {
            var id = w.DeliveryIdAt(i);
            if (failures is not null && f < failures.Count && failures[f].Index == i)
            {
                var failure = failures[f++].Failure;
                if (id == w.TimedOutId) continue; // already nacked when it timed out
                Failed(id, failure);
            }
            else if (id != w.TimedOutId) _acks.Add(id);
        }
        var handled = report.To - report.From;
        if (handled > 0)
        {
            var cost = (double)report.ElapsedTicks / handled;
            if (double.IsPositiveInfinity(_syncCost)) _syncCost = cost; // the first measurement
            else if (w.Share)
            {
                // A share of cheap handlers held up once (its thread preempted on a busy machine) must not pass for
                // costly handlers, as a short inline run must not: it counts for at most four times the estimate.
                _syncCost = 0.5 * _syncCost + 0.5 * Math.Min(cost, 4 * Math.Max(_syncCost, EstimateFloor));
            }
            else if (report.Progress is WorkerProgress.Slowed or WorkerProgress.WentAsync) _syncCost = Math.Max(_syncCost, cost); // slow: counts at once
            else _syncCost = 0.5 * _syncCost + 0.5 * cost; // quick to forget a first, JIT-heavy chunk
        }
        switch (report.Progress)
        {
            case WorkerProgress.Finished:
                w.Finished();
                w.Share = false;
                w.TimedOutId = 0;
                break;
            case WorkerProgress.WentAsync:
                // A handler went asynchronous: deliveries are handed out singly for a while, and what this chunk has not
                // started goes to free workers instead of waiting behind it.
                _lastAsync = Now;
                w.TakeBackUnstarted(_buffer);
                break;
            case WorkerProgress.Slowed:
                // The chunk is slow: what it has not started goes to free workers instead of waiting behind it.
                w.TakeBackUnstarted(_buffer);
                break;
        }
        StartWorkers();
        RequestFlush();
    }

    private void HandleRevoked(Revoked m)
    {
        if (m.DeliveryIds is null || m.DeliveryIds.Length == 0) return;
        ReclaimUnstarted();
        var revoked = new HashSet<long>(m.DeliveryIds);
        var dropped = 0;
        for (var i = _buffer.Count - 1; i >= 0; i--)
        {
            if (!revoked.Contains(_buffer[i].DeliveryId)) continue;
            _buffer.RemoveAt(i);
            dropped++;
        }
        _log.Info("Consumer of {0}: the queue took back {1} deliveries past their deadline; {2} had not started and are dropped.", _queue, m.DeliveryIds.Length, dropped);
        StartWorkers();
    }

    private void RequestFlush()
    {
        if (_flushPending) return;
        _flushPending = true;
        Self.Tell(ConsumerFlush.Instance);
    }

    private void Flush()
    {
        _flushPending = false;
        SendAcks();
        StartWorkers();
    }

    private void SendAcks()
    {
        var count = _acks.Count;
        if (count == 0) return;
        // Slots finish out of order; sorted, the acks of a batch are usually one range again.
        for (var i = 1; i < count; i++)
        {
            if (_acks[i] >= _acks[i - 1]) continue;
            _acks.Sort();
            break;
        }
        try
        {
            if (count == 1) _queue.Tell(new Ack(_acks[0]));
            else if (IsOneRun(_acks)) _queue.Tell(new AckRange(_acks[0], _acks[count - 1]));
            else _queue.Tell(new AckBatch(_acks.ToArray()));
        }
        finally
        {
            _acks.Clear();
        }
    }

    // Handlers that finish in delivery order (the common case) settle a whole batch as one range.
    private static bool IsOneRun(List<long> ids)
    {
        if (!AckRange.IsValid(ids[0], ids[^1]) || ids[^1] - ids[0] != ids.Count - 1) return false;
        for (var i = 1; i < ids.Count; i++)
            if (ids[i] != ids[i - 1] + 1) return false;
        return true;
    }

    private void HandleTick()
    {
        var now = Now;
        if (_reattach.Looking)
        {
            if (_reattach.Continue(_queue.Path, now, _settings.ReattachTimeout, Context)) return;
            _log.Warning("Consumer of {0}: no queue came back within reattach-timeout ({1}); stopping.", _queue, _settings.ReattachTimeout);
            Context.Stop(Self);
            return;
        }

        // Handlers past handler-timeout are cancelled and nacked; their slot stays taken until they end.
        var timedOut = 0;
        foreach (var w in _workers)
        {
            if (!w.Busy) continue;
            // One read of what the slot runs: its handler may end on its own thread while we look.
            if (w.TryGetCurrent(out var id, out var runningFor) && w.TimedOutId != id && runningFor >= _settings.HandlerTimeout)
            {
                w.TimedOutId = id;
                _log.Warning("Consumer of {0}: handler for delivery {1} ran past handler-timeout ({2}); cancelled and nacked.", _queue, id, _settings.HandlerTimeout);
                _queue.Tell(new Nack(id, null, $"the handler ran past handler-timeout ({_settings.HandlerTimeout})"));
                w.Cancel(id);
            }
            if (w.TimedOutId != 0 && w.TimedOutId == w.CurrentId) timedOut++;
        }
        foreach (var (id, r) in _asyncRunning.ToArray())
        {
            if (!r.TimedOut && now - r.StartedAt >= _settings.HandlerTimeout)
            {
                _asyncRunning[id] = r with { TimedOut = true };
                _log.Warning("Consumer of {0}: handler for delivery {1} ran past handler-timeout ({2}); cancelled and nacked.", _queue, id, _settings.HandlerTimeout);
                _queue.Tell(new Nack(id, null, $"the handler ran past handler-timeout ({_settings.HandlerTimeout})"));
                try
                {
                    r.Cancellation.Cancel();
                }
                catch (AggregateException e)
                {
                    _log.Warning(e, "Consumer of {0}: a handler's cancellation callback threw.", _queue);
                }
            }
        }
        foreach (var r in _asyncRunning.Values) if (r.TimedOut) timedOut++;
        if (timedOut > 0) ReturnFromWedged(timedOut);

        // Re-sync: a consumer that has heard nothing for a while says again what it can take (and who it thinks the
        // queue is), so that a lost pull, registration or delivery, or a queue restarted in place, costs a pause only.
        if (now - _lastHeard >= _settings.ResyncInterval)
        {
            _lastHeard = now;
            SendPull();
        }

        if (now - _lastExtension < _ackTimeout / 3) return;
        _lastExtension = now;
        _scratch.Clear();
        for (var i = 0; i < _buffer.Count; i++) _scratch.Add(_buffer[i].DeliveryId);
        // Everything a worker's chunk still holds, finished-but-unreported included (a handler that blocks after quick ones
        // holds back their report), except a handler already nacked for running past its timeout.
        foreach (var w in _workers)
        {
            w.CopyHeld(_scratch);
            if (w.TimedOutId != 0) _scratch.RemoveAll(id => id == w.TimedOutId);
        }
        foreach (var (id, r) in _asyncRunning)
            if (!r.TimedOut) _scratch.Add(id);
        foreach (var id in _scratch) _queue.Tell(new InProgress(id));
    }

    // Workers held by handlers past handler-timeout that ignore their cancellation: what waits behind them goes back.
    private void ReturnFromWedged(int timedOut)
    {
        foreach (var w in _workers)
            if (w.TimedOutId != 0 && w.TimedOutId == w.CurrentId) w.TakeBackUnstarted(_buffer);
        if (timedOut < _workers.Length || _buffer.Count == 0)
        {
            StartWorkers();
            return;
        }
        _log.Warning("Consumer of {0}: every handler slot is held by a handler past handler-timeout; returning {1} waiting deliveries.", _queue, _buffer.Count);
        ReturnBuffer();
    }

    private void SendPull() => _queue.Tell(new Pull(_window, _epoch));

    /// <summary>The window a consumer of cheap handlers asks for: eight times its prefetch, at most <see cref="MaxCheapWindow"/>, never below prefetch.</summary>
    internal static int CheapWindow(int prefetch) => Math.Max(prefetch, Math.Min(prefetch * 8, MaxCheapWindow));

    // Widens the window while handlers are measured cheap and none has gone asynchronous within a second; narrows it back
    // otherwise. The queue hears of a change at once.
    private void AdjustWindow()
    {
        var cheap = _syncCost < CheapHandler && !(_lastAsync is { } lastAsync && Now - lastAsync < TimeSpan.FromSeconds(1));
        var wanted = cheap ? _cheapWindow : _settings.Prefetch;
        if (wanted == _window) return;
        _window = wanted;
        if (_epoch != 0) SendPull();
    }

    private void ReclaimUnstarted()
    {
        foreach (var w in _workers) w.TakeBackUnstarted(_buffer);
    }

    // Gives back everything not started; the queue delivers it again without counting an attempt.
    private void ReturnBuffer()
    {
        while (_buffer.Count > 0)
        {
            var ids = new long[Math.Min(_buffer.Count, Return.MaxLength)];
            for (var i = 0; i < ids.Length; i++) ids[i] = _buffer.PopFront().DeliveryId;
            _queue.Tell(new Return(ids));
        }
    }

    private void Leave(bool detach)
    {
        if (_left) return;
        _left = true;
        // Finished work not yet acked (gathered here, or finished by a slot or an async handler whose report is still
        // on its way) would otherwise become redeliveries, and unstarted work would count an attempt it never had.
        // Only what is running when we stop is the queue's to redeliver, as a suspect.
        var failed = new List<(long DeliveryId, HandlerFailure Failure)>();
        foreach (var w in _workers)
        {
            w.TakeBackUnstarted(_buffer);
            w.CollectFinishedUnreported(_acks, failed);
            w.Abandon();
        }
        foreach (var (id, r) in _asyncRunning)
            if (!r.TimedOut && r.Task.IsCompleted) Settle(id, r.Task);
        SendAcks();
        foreach (var (id, failure) in failed) Failed(id, failure);
        ProgressWatchdog.Forget(_inline);
        foreach (var r in _asyncRunning.Values)
        {
            try
            {
                r.Cancellation.Cancel();
            }
            catch (AggregateException)
            {
                // Stopping: a callback's failure changes nothing now.
            }
        }
        ReturnBuffer();
        if (detach) _queue.Tell(Detach.Instance);
    }

    private void HandleQueueLost()
    {
        if (_reattach.Looking) return;
        _log.Warning("Consumer of {0}: the queue terminated; looking for it again for up to {1}.", _queue, _settings.ReattachTimeout);
        ReclaimUnstarted();
        _buffer.Clear();
        _acks.Clear();
        _epoch = 0;
        _reattach.Begin(_queue.Path, Now, Context);
    }

    private void HandleIdentity(ActorIdentity m)
    {
        if (_reattach.Found(m, _queue) is not { } queue) return;
        _log.Info("Consumer: a queue is back at {0}; attaching to it.", queue.Path);
        _queue = queue;
        Context.Watch(_queue);
        _lastHeard = Now;
        SendPull();
    }

    private void StartTicking()
    {
        var interval = TimeSpan.FromTicks(Math.Min(Math.Min(_settings.HandlerTimeout.Ticks / 4, _ackTimeout.Ticks / 6),
            Math.Min(TimeSpan.TicksPerSecond, _settings.ResyncInterval.Ticks / 2)));
        Timers.StartPeriodicTimer("tick", ConsumerTick.Instance, TimeSpan.FromTicks(Math.Max(interval.Ticks, TimeSpan.TicksPerMillisecond)));
    }
}
