using System.Diagnostics;
using ActorQueue.Core;
using ActorQueue.Metrics;
using ActorQueue.Protocol;
using Akka.Actor;

namespace ActorQueue;

/// <summary>How far a <see cref="WorkerReport"/> takes its worker's chunk.</summary>
internal enum WorkerProgress : byte
{
    /// <summary>Part-way through the chunk; it carries on with the rest.</summary>
    Running,
    /// <summary>The chunk has run long (its handlers are slow, or its thread was held up): the rest not started may be handed to other workers.</summary>
    Slowed,
    /// <summary>A handler went asynchronous: the rest not started may be handed to other workers.</summary>
    WentAsync,
    /// <summary>The chunk is done; the worker is free.</summary>
    Finished,
}

/// <summary>
/// Sent by a <see cref="HandlerWorker"/> to its consumer: the handlers of chunk positions <see cref="From"/> to
/// <see cref="To"/> (exclusive) have completed, successfully but for <see cref="Failures"/> (null when none), so a
/// report allocates nothing per delivery.
/// </summary>
internal sealed class WorkerReport(HandlerWorker worker, int from, int to, List<(int Index, HandlerFailure Failure)>? failures, WorkerProgress progress, long elapsedTicks) : IInternalMessage
{
    public HandlerWorker Worker { get; } = worker;
    public int From { get; } = from;
    public int To { get; } = to;
    public List<(int Index, HandlerFailure Failure)>? Failures { get; } = failures;
    public WorkerProgress Progress { get; } = progress;

    /// <summary>Stopwatch ticks the reported handlers took, for the consumer's estimate of a handler's cost.</summary>
    public long ElapsedTicks { get; } = elapsedTicks;
}

/// <summary>
/// One handler slot of a <see cref="ConsumerActor"/> for handlers of unknown or noticeable cost: runs a chunk of
/// deliveries, one after another, on a thread of the slot's own, never on the consumer's thread nor on the shared thread
/// pool, so a handler that blocks (synchronous I/O, Thread.Sleep) can neither stop the consumer from reporting progress
/// nor starve the actors of threads. The exception is a <see cref="Share"/> of handlers measured cheap, which runs on
/// the shared pool as the consumer's own run of them does. A handler that awaits continues on the thread pool as usual. Each delivery is claimed with one interlocked step before its handler
/// starts, so the consumer can take back, at any moment, exactly the deliveries whose handler has not started
/// (<see cref="TakeBackUnstarted"/>).
/// </summary>
internal sealed class HandlerWorker
{
    /// <summary>The most deliveries one chunk holds.</summary>
    public const int MaxChunk = 1024;

    // A chunk running longer than this reports what it finished at once, so that slow handlers' acks are not held back;
    // a long chunk of quick ones reports every ProgressEvery, so that acks flow while it runs.
    private static readonly long ReportAfter = Stopwatch.Frequency / 200; // 5 ms
    private const int ProgressEvery = 256;

    private readonly IActorRef _consumer;
    private readonly IQueueHandler _handler;
    private readonly Delivery[] _chunk = new Delivery[MaxChunk];
    // Each position's outcome once its handler has ended (Succeeded or Failed, written last), so a consumer that stops
    // can settle what was finished but not yet reported.
    private readonly int[] _outcomes = new int[MaxChunk];
    private readonly HandlerFailure?[] _reasons = new HandlerFailure?[MaxChunk];
    private const int Succeeded = 1;
    private const int Failed = 2;
    private int _count;
    private int _next;
    private int _heldUntil;
    private int _reported;
    private List<(int Index, HandlerFailure Failure)>? _failures;
    // The delivery whose handler runs now, with its own token and start (milliseconds on the worker's clock): a cancel
    // can only ever reach that delivery, and whatever its handler left registered on the token goes with it.
    private Current? _current;

    private sealed record Current(long DeliveryId, long StartedMs, CancellationTokenSource Cancellation);

    // The clock handler-timeout is measured on: the system's scheduler when it keeps virtual time (a test's or a
    // simulation's), else the tick count, which reads in a quarter of the time of the wall clock the real-time scheduler
    // reads and measures the same durations.
    private readonly IScheduler? _virtualClock;
    private readonly SemaphoreSlim _go = new(0);
    private Thread? _thread;
    private volatile bool _abandoned;
    private long _reportStarted;

    public HandlerWorker(IActorRef consumer, IQueueHandler handler, IScheduler scheduler)
    {
        _consumer = consumer;
        _handler = handler;
        _virtualClock = scheduler is HashedWheelTimerScheduler ? null : scheduler;
    }

    private long NowMs() => _virtualClock is null ? Environment.TickCount64 : _virtualClock.Now.ToUnixTimeMilliseconds();

    /// <summary>Whether a chunk is running (set and read by the consumer only).</summary>
    public bool Busy { get; private set; }

    /// <summary>Whether the running chunk is a share of cheap handlers run beside the consumer's own (consumer only).</summary>
    public bool Share { get; set; }

    /// <summary>The delivery whose handler the consumer nacked for running past handler-timeout (consumer only).</summary>
    public long TimedOutId { get; set; }

    /// <summary>The metrics tag of the queue (set by the consumer when it learns the queue's name).</summary>
    public KeyValuePair<string, object?> QueueTag { get; set; }

    /// <summary>The delivery whose handler is running now, or 0.</summary>
    public long CurrentId => Volatile.Read(ref _current)?.DeliveryId ?? 0;

    /// <summary>
    /// The delivery whose handler is running now and how long it has run, read together in one step, so a handler that
    /// ends meanwhile can never pair one delivery with another's start (or with none); false when none runs.
    /// </summary>
    public bool TryGetCurrent(out long deliveryId, out TimeSpan runningFor)
    {
        var current = Volatile.Read(ref _current);
        deliveryId = current?.DeliveryId ?? 0;
        runningFor = current is null ? TimeSpan.Zero : TimeSpan.FromMilliseconds(NowMs() - current.StartedMs);
        return current is not null;
    }

    /// <summary>How far the consumer has taken this chunk's reports (consumer only): what lies beyond is still held.</summary>
    public int ProcessedUpTo { get; set; }

    /// <summary>Starts a chunk taken from the front of <paramref name="buffer"/> on the slot's own thread (consumer only).</summary>
    public void Start(RingBuffer<Delivery> buffer, int count)
    {
        count = Math.Min(Math.Min(count, MaxChunk), buffer.Count);
        for (var i = 0; i < count; i++) _chunk[i] = buffer.PopFront();
        Array.Clear(_outcomes, 0, count);
        _count = count;
        _heldUntil = count;
        Volatile.Write(ref _next, 0);
        Busy = true;
        if (Share)
        {
            // Handlers measured cheap run on the shared pool, as the consumer's own run does: a slot's thread would spin
            // between the many short chunks, taking the core the others need.
            // It holds a core from now until it ends or a handler goes asynchronous, so that no other consumer counts on
            // that core meanwhile.
            CheapLanes.Enter();
            _holdsLane = true;
            ThreadPool.UnsafeQueueUserWorkItem(static w => _ = w.RunAsync(), this, preferLocal: false);
            return;
        }
        if (_thread is null)
        {
            _thread = new Thread(Loop) { IsBackground = true, Name = "actor-queue-handler" };
            _thread.Start();
        }
        _go.Release();
    }

    // The slot's own thread: runs each chunk's synchronous part, and goes back to waiting when a handler awaits.
    private void Loop()
    {
        while (true)
        {
            _go.Wait();
            if (_abandoned) return;
            _ = RunAsync();
        }
    }

    /// <summary>
    /// Takes back the deliveries of the chunk whose handler has not started, in order, onto the front of
    /// <paramref name="buffer"/> (consumer only); none will start after this.
    /// </summary>
    public int TakeBackUnstarted(RingBuffer<Delivery> buffer)
    {
        if (!Busy) return 0;
        var from = Interlocked.Exchange(ref _next, _count);
        for (var i = _count - 1; i >= from; i--) buffer.PushFront(_chunk[i]);
        if (from < _heldUntil) _heldUntil = from;
        return Math.Max(0, _count - from);
    }

    /// <summary>
    /// The deliveries of the chunk the consumer still holds (a snapshot, for progress reports): those not reported yet,
    /// finished or running or not started.
    /// </summary>
    public void CopyHeld(List<long> output)
    {
        if (!Busy) return;
        for (var i = ProcessedUpTo; i < _heldUntil; i++) output.Add(_chunk[i].DeliveryId);
    }

    /// <summary>
    /// For a consumer on its way out, after <see cref="TakeBackUnstarted"/>: the deliveries whose handler has ended but
    /// whose report it has not taken, into <paramref name="succeeded"/> and <paramref name="failed"/>. A handler still
    /// running is left out: the queue redelivers it.
    /// </summary>
    public void CollectFinishedUnreported(List<long> succeeded, List<(long DeliveryId, HandlerFailure Failure)> failed)
    {
        if (!Busy) return;
        for (var i = ProcessedUpTo; i < _heldUntil; i++)
        {
            var id = _chunk[i].DeliveryId;
            if (id == TimedOutId) continue; // nacked already when it timed out
            switch (Volatile.Read(ref _outcomes[i]))
            {
                case Succeeded: succeeded.Add(id); break;
                case Failed: failed.Add((id, _reasons[i] ?? new HandlerFailure("the handler failed", false))); break;
            }
        }
    }

    /// <summary>The consumer took the report of a finished chunk: the worker is free again (consumer only).</summary>
    public void Finished() => Busy = false;

    /// <summary>Cancels the running handler's token if it is still running <paramref name="deliveryId"/> (0: whatever runs).</summary>
    public void Cancel(long deliveryId = 0)
    {
        var current = Volatile.Read(ref _current);
        if (current is null || (deliveryId != 0 && current.DeliveryId != deliveryId)) return;
        try
        {
            current.Cancellation.Cancel();
        }
        catch (Exception e) when (e is AggregateException or ObjectDisposedException)
        {
            // A handler's cancellation callback threw (its own outcome reports that), or the handler has just ended.
        }
    }

    /// <summary>The consumer stopped: take nothing more, report nothing, and let the thread end.</summary>
    public void Abandon()
    {
        _abandoned = true;
        Interlocked.Exchange(ref _next, _count);
        Cancel();
        if (_thread is not null) _go.Release();
    }

    /// <summary>Calls the user's handler: a throw or a null task becomes a faulted task, never an exception here.</summary>
    public static Task Invoke(IQueueHandler handler, Delivery delivery, CancellationToken cancellationToken)
    {
        try
        {
            return handler.HandleAsync(delivery, cancellationToken)
                   ?? Task.FromException(new InvalidOperationException("The handler returned a null Task."));
        }
        catch (Exception e)
        {
            return Task.FromException(e);
        }
    }

    /// <summary>The delivery at position <paramref name="index"/> of the chunk a report is about (consumer only).</summary>
    public long DeliveryIdAt(int index) => _chunk[index].DeliveryId;

    // Set when a share is started, cleared by the share's own run when it stops holding a core: when a handler goes
    // asynchronous or, at the latest, before it reports the chunk finished (after which the consumer may start another).
    private bool _holdsLane;

    private void ReleaseLane()
    {
        if (!_holdsLane) return;
        _holdsLane = false;
        CheapLanes.Leave();
    }

    private async Task RunAsync()
    {
        _reportStarted = Stopwatch.GetTimestamp();
        _reported = 0;
        var done = 0;
        while (true)
        {
            var i = Interlocked.Increment(ref _next) - 1;
            if (i >= _count || _abandoned) break;
            var delivery = _chunk[i];
            var current = new Current(delivery.DeliveryId, NowMs(), new CancellationTokenSource());
            Volatile.Write(ref _current, current);
            var timed = ActorQueueMetrics.HandlerTime.Enabled;
            var started = timed ? Stopwatch.GetTimestamp() : 0;
            var task = Invoke(_handler, delivery, current.Cancellation.Token);
            if (!task.IsCompleted)
            {
                // Asynchronous: report what is done so far, so the consumer can hand the rest of the chunk to others.
                // Waiting holds no core: a handler that never ends must not keep one counted for ever (and the consumer
                // may share onto it as soon as it reads the report).
                ReleaseLane();
                Report(done, WorkerProgress.WentAsync);
                try
                {
                    await task.ConfigureAwait(false);
                }
                catch
                {
                    // The outcome is read from the task below.
                }
            }
            if (timed)
                ActorQueueMetrics.HandlerTime.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds, QueueTag);
            if (task.IsCompletedSuccessfully) Volatile.Write(ref _outcomes[i], Succeeded);
            else
            {
                var reason = HandlerFailure.Of(task);
                (_failures ??= new()).Add((i, reason));
                _reasons[i] = reason;
                Volatile.Write(ref _outcomes[i], Failed);
            }
            done = i + 1;
            Volatile.Write(ref _current, null);
            current.Cancellation.Dispose();
            if (Volatile.Read(ref _next) >= _count) continue;
            // A share of cheap handlers looks at the clock every few deliveries only: each look costs as much as one.
            if (Share && (done & 15) != 0) continue;
            if (Stopwatch.GetTimestamp() - _reportStarted > ReportAfter) Report(done, WorkerProgress.Slowed);
            else if (done - _reported >= ProgressEvery) Report(done, WorkerProgress.Running);
        }
        ReleaseLane();
        Report(done, WorkerProgress.Finished);
    }

    private void Report(int done, WorkerProgress progress)
    {
        if (_abandoned) return;
        var failures = _failures;
        _failures = null;
        var now = Stopwatch.GetTimestamp();
        var report = new WorkerReport(this, _reported, done, failures, progress, now - _reportStarted);
        _reported = done;
        _reportStarted = now;
        // The last touch of the worker's state: once the consumer reads a finished report it may start the next chunk.
        _consumer.Tell(report);
    }
}

/// <summary>
/// How many threads of the process are running cheap handlers for consumers now (a consumer's own run, or a share
/// beside it), so that a consumer hands a share to another thread only while a core is left for it.
/// </summary>
internal static class CheapLanes
{
    private static int _busy;

    /// <summary>Cores not running cheap handlers now (may be zero or less when the consumers outnumber the cores).</summary>
    public static int Spare => Environment.ProcessorCount - Volatile.Read(ref _busy);

    /// <summary>A run of cheap handlers starts on this thread.</summary>
    public static void Enter() => Interlocked.Increment(ref _busy);

    /// <summary>The run that <see cref="Enter"/> counted has ended.</summary>
    public static void Leave() => Interlocked.Decrement(ref _busy);
}
