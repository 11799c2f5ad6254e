using System.Diagnostics;
using ActorQueue.Core;
using ActorQueue.Metrics;
using ActorQueue.Protocol;
using Akka.Actor;
using Akka.Event;

namespace ActorQueue;

/// <summary>
/// A competing consumer: keeps up to prefetch deliveries pulled, runs the user's <see cref="IQueueHandler"/> on up
/// to concurrency of them at once, acks successes in batches and nacks failures. While a handler is still running
/// it reports it in progress well before the ack deadline, so a slow but live handler is not redelivered; a
/// handler that runs past handler-timeout is cancelled and nacked.
/// </summary>
public sealed class ConsumerActor : UntypedActor, IWithTimers
{
    private readonly IActorRef _queue;
    private readonly IQueueHandler _handler;
    private readonly ConsumerSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly long _startTimestamp = Stopwatch.GetTimestamp();

    private readonly RingBuffer<Delivery> _buffer = new();
    private readonly Dictionary<long, Running> _running = new();
    private readonly Stack<CancellationTokenSource> _tokens = new();
    private readonly List<long> _acks = new();
    private readonly List<long> _scratch = new();
    private int _requested;
    private int _timedOut;
    private bool _flushPending;
    private TimeSpan _ackTimeout;
    private KeyValuePair<string, object?> _queueTag = new(ActorQueueMetrics.QueueTag, "unregistered");
    private TimeSpan _lastExtension;

    private record struct Running(TimeSpan StartedAt, CancellationTokenSource Cancellation, Task Task, bool TimedOut);

    /// <summary>Creates the Props of a consumer of <paramref name="queue"/>.</summary>
    /// <param name="queue">The queue to pull from.</param>
    /// <param name="handler">The user code run for each delivery.</param>
    /// <param name="settings">Prefetch, concurrency and timeouts; null for the defaults in reference.conf.</param>
    public static Props Props(IActorRef queue, IQueueHandler handler, ConsumerSettings? settings = null)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(handler);
        var s = settings ?? ConsumerSettings.Default;
        return Akka.Actor.Props.Create(() => new ConsumerActor(queue, handler, s));
    }

    /// <summary>Creates the Props of a consumer that runs an async function.</summary>
    /// <param name="queue">The queue to pull from.</param>
    /// <param name="handler">Called once per delivery; see <see cref="IQueueHandler.HandleAsync"/>.</param>
    /// <param name="settings">Prefetch, concurrency and timeouts; null for the defaults in reference.conf.</param>
    public static Props Props(IActorRef queue, Func<Delivery, CancellationToken, Task> handler, ConsumerSettings? settings = null) =>
        Props(queue, QueueHandler.From(handler), settings);

    /// <summary>Creates a consumer; use <see cref="Props(IActorRef, IQueueHandler, ConsumerSettings?)"/> rather than calling this directly.</summary>
    /// <param name="queue">The queue to pull from.</param>
    /// <param name="handler">The user code run for each delivery.</param>
    /// <param name="settings">Prefetch, concurrency and timeouts.</param>
    public ConsumerActor(IActorRef queue, IQueueHandler handler, ConsumerSettings settings)
    {
        _queue = queue;
        _handler = handler;
        _settings = settings;
        _ackTimeout = settings.HandlerTimeout;
    }

    /// <summary>The actor's timers (set by Akka).</summary>
    public ITimerScheduler Timers { get; set; } = null!;

    private TimeSpan Now => Stopwatch.GetElapsedTime(_startTimestamp);

    // What fills the prefetch window: buffered deliveries and running handlers, timed-out ones included
    // (they still occupy a slot, so pulling more for them would only strand work in the buffer).
    private int Held => _buffer.Count + _running.Count;

    // Every slot is taken by a handler that ran past handler-timeout and ignores its cancellation.
    private bool Wedged => _timedOut >= _settings.Concurrency;

    /// <inheritdoc />
    protected override void PreStart()
    {
        Context.Watch(_queue);
        StartTicking();
        _requested = _settings.Prefetch;
        _queue.Tell(new Pull(_settings.Prefetch));
    }

    /// <inheritdoc />
    protected override void PreRestart(Exception reason, object message)
    {
        // Restarted in place (same ref): the queue would otherwise wait for deadlines to take our deliveries back.
        SendAcks();
        _queue.Tell(Detach.Instance);
        CancelRunning();
        base.PreRestart(reason, message);
    }

    /// <inheritdoc />
    protected override void PostStop()
    {
        // Acks gathered but not yet sent would otherwise turn finished work into redeliveries.
        SendAcks();
        CancelRunning();
    }

    /// <inheritdoc />
    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case DeliveryBatch m: HandleDeliveries(m); break;
            case HandlerDone m: HandleDone(m); break;
            case ConsumerFlush: Flush(); break;
            case ConsumerTick: HandleTick(); break;
            case ConsumerRegistered m:
                _ackTimeout = m.AckTimeout;
                _queueTag = new KeyValuePair<string, object?>(ActorQueueMetrics.QueueTag, m.QueueName);
                StartTicking();
                break;
            case SettleRejected m:
                _log.Warning("Consumer of {0}: the queue refused to settle delivery {1}: {2}", _queue, m.DeliveryId, m.Error);
                break;
            case Terminated m when m.ActorRef.Equals(_queue):
                _log.Info("Consumer of {0}: the queue stopped; stopping.", _queue);
                Context.Stop(Self);
                break;
            default: Unhandled(message); break;
        }
    }

    private void HandleDeliveries(DeliveryBatch batch)
    {
        if (batch.Messages is null) return;
        _requested = Math.Max(0, _requested - batch.Count);
        for (var i = 0; i < batch.Count; i++) _buffer.PushBack(batch[i]);
        StartHandlers();
    }

    private void StartHandlers()
    {
        while (_buffer.Count > 0 && _running.Count < _settings.Concurrency)
            Start(_buffer.PopFront());
    }

    private void Start(Delivery delivery)
    {
        var cancellation = _tokens.Count > 0 ? _tokens.Pop() : new CancellationTokenSource();
        var started = ActorQueueMetrics.HandlerTime.Enabled ? Stopwatch.GetTimestamp() : 0;
        Task task;
        try
        {
            task = _handler.HandleAsync(delivery, cancellation.Token)
                   ?? Task.FromException(new InvalidOperationException("The handler returned a null Task."));
        }
        catch (Exception e)
        {
            task = Task.FromException(e);
        }
        if (task.IsCompleted)
        {
            // The common fast path: no continuation, no self message.
            if (started != 0) ActorQueueMetrics.HandlerTime.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds, _queueTag);
            Finish(delivery.DeliveryId, task);
            Recycle(cancellation);
            return;
        }
        _running.Add(delivery.DeliveryId, new Running(Now, cancellation, task, false));
        task.ContinueWith(static (t, state) =>
        {
            var done = (HandlerDone)state!;
            done.Consumer.Tell(done);
        }, new HandlerDone(Self, delivery.DeliveryId, task), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private void HandleDone(HandlerDone done)
    {
        if (!_running.Remove(done.DeliveryId, out var running)) return;
        if (ActorQueueMetrics.HandlerTime.Enabled) ActorQueueMetrics.HandlerTime.Record((Now - running.StartedAt).TotalMilliseconds, _queueTag);
        if (running.TimedOut)
        {
            // Already nacked when it timed out; it only held a slot until now.
            _timedOut--;
            running.Cancellation.Dispose();
        }
        else
        {
            Finish(done.DeliveryId, done.Task);
            Recycle(running.Cancellation);
        }
        StartHandlers();
        RequestFlush();
    }

    private void Finish(long deliveryId, Task task)
    {
        if (task.IsCompletedSuccessfully)
        {
            _acks.Add(deliveryId);
        }
        else
        {
            var reason = task.IsCanceled ? "the handler was cancelled" : $"the handler failed: {task.Exception?.GetBaseException().Message}";
            _log.Debug("Consumer of {0}: delivery {1} nacked, {2}", _queue, deliveryId, reason);
            _queue.Tell(new Nack(deliveryId, null, reason));
        }
        RequestFlush();
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
        if (Wedged) return;

        // Top the prefetch window up in batches, or at once when there is nothing left to work on.
        var deficit = _settings.Prefetch - Held - _requested;
        if (deficit > 0 && (deficit >= Math.Max(1, _settings.Prefetch / 2) || (_buffer.Count == 0 && _requested == 0)))
        {
            _requested += deficit;
            _queue.Tell(new Pull(deficit));
        }
    }

    private void SendAcks()
    {
        var count = _acks.Count;
        if (count == 0) return;
        if (count == 1) _queue.Tell(new Ack(_acks[0]));
        else if (IsOneRun(_acks)) _queue.Tell(new AckRange(_acks[0], _acks[count - 1]));
        else _queue.Tell(new AckBatch(_acks.ToArray()));
        _acks.Clear();
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
        _scratch.Clear();
        foreach (var (id, r) in _running)
        {
            // A handler that has finished is not timed out, even if its HandlerDone is still on its way.
            if (!r.TimedOut && !r.Task.IsCompleted && now - r.StartedAt >= _settings.HandlerTimeout) _scratch.Add(id);
        }
        foreach (var id in _scratch)
        {
            var r = _running[id];
            _running[id] = r with { TimedOut = true };
            _timedOut++;
            _log.Warning("Consumer of {0}: handler for delivery {1} ran past handler-timeout ({2}); cancelled and nacked.", _queue, id, _settings.HandlerTimeout);
            _queue.Tell(new Nack(id, null, $"the handler ran past handler-timeout ({_settings.HandlerTimeout})"));
            Cancel(r.Cancellation);
        }
        if (_scratch.Count > 0) RequestFlush();
        if (Wedged && _buffer.Count > 0)
        {
            // No slot will free up until a hung handler ends: hand the waiting deliveries back for others to take.
            _log.Warning("Consumer of {0}: every handler slot is held by a handler past handler-timeout; returning {1} waiting deliveries.", _queue, _buffer.Count);
            while (_buffer.Count > 0)
            {
                var d = _buffer.PopFront();
                _queue.Tell(new Nack(d.DeliveryId, TimeSpan.Zero, "the consumer has no free handler slot: every one is held by a handler past handler-timeout"));
            }
        }

        if (now - _lastExtension < _ackTimeout / 3) return;
        _lastExtension = now;
        for (var i = 0; i < _buffer.Count; i++) _queue.Tell(new InProgress(_buffer[i].DeliveryId));
        foreach (var (id, r) in _running)
            if (!r.TimedOut) _queue.Tell(new InProgress(id));
    }

    private void StartTicking()
    {
        var interval = TimeSpan.FromTicks(Math.Min(Math.Min(_settings.HandlerTimeout.Ticks / 4, _ackTimeout.Ticks / 6), TimeSpan.TicksPerSecond));
        Timers.StartPeriodicTimer("tick", ConsumerTick.Instance, TimeSpan.FromTicks(Math.Max(interval.Ticks, TimeSpan.TicksPerMillisecond)));
    }

    private void Recycle(CancellationTokenSource cancellation)
    {
        if (cancellation.TryReset()) _tokens.Push(cancellation);
        else cancellation.Dispose();
    }

    private void CancelRunning()
    {
        foreach (var r in _running.Values) Cancel(r.Cancellation);
    }

    private void Cancel(CancellationTokenSource cancellation)
    {
        // Cancellation runs the handler's callbacks here; one that throws must not take the consumer down.
        try
        {
            cancellation.Cancel();
        }
        catch (Exception e)
        {
            _log.Warning(e, "Consumer of {0}: a handler's cancellation callback threw.", _queue);
        }
    }
}
