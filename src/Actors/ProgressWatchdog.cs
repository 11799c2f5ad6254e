using System.Diagnostics;
using ActorQueue.Protocol;
using Akka.Actor;

namespace ActorQueue;

/// <summary>
/// Reports progress for a consumer while it runs cheap handlers on its own thread, independently of that thread: if a
/// handler that used to complete at once blocks, the consumer cannot tick, so this watch sends its
/// <see cref="InProgress"/> for it (every third of the ack-timeout) and, once the run has lasted handler-timeout, cancels
/// its token and stops, so that a handler ignoring cancellation loses its deliveries to the queue's deadline. One background thread serves every consumer in the process (<see cref="ProgressWatchdog"/>); it wakes
/// every 50 ms and does nothing while runs are short.
/// </summary>
internal sealed class InlineRun
{
    private readonly IActorRef _consumer;
    private readonly object _gate = new();
    private IActorRef _queue = ActorRefs.Nobody;
    private Delivery[] _deliveries = [];
    private long[] _waiting = [];
    private int _count;
    private long _startedAt;
    private long _reportedAt;
    private long _extendEvery;
    private long _timeout;
    private CancellationTokenSource? _cancellation;
    private bool _cancelled;

    public InlineRun(IActorRef consumer) => _consumer = consumer;

    /// <summary>
    /// A run of <paramref name="count"/> deliveries begins on the consumer's thread; <paramref name="waiting"/> are the
    /// deliveries it holds besides (kept alive too while the run lasts).
    /// </summary>
    public void Begin(IActorRef queue, Delivery[] deliveries, int count, long[] waiting, TimeSpan ackTimeout, TimeSpan handlerTimeout, CancellationTokenSource cancellation)
    {
        var now = Stopwatch.GetTimestamp();
        lock (_gate)
        {
            _queue = queue;
            _deliveries = deliveries;
            _waiting = waiting;
            _count = count;
            _startedAt = _reportedAt = now;
            _extendEvery = (long)(ackTimeout.TotalSeconds / 3 * Stopwatch.Frequency);
            _timeout = (long)(handlerTimeout.TotalSeconds * Stopwatch.Frequency);
            _cancellation = cancellation;
            _cancelled = false;
        }
    }

    /// <summary>The run is over.</summary>
    public void End()
    {
        lock (_gate) _count = 0;
    }

    /// <summary>
    /// On the watch's thread: reports progress for a run that has gone on long (all of it: finished deliveries' acks wait
    /// for the thread too), and once it has lasted handler-timeout cancels its token and stops reporting, so that the
    /// queue takes back what a handler that ignores cancellation would otherwise hold for ever.
    /// </summary>
    public void Check(long now)
    {
        lock (_gate)
        {
            if (_count == 0 || _cancelled) return;
            if (now - _startedAt >= _timeout)
            {
                _cancelled = true;
                try
                {
                    // Under the lock, so that it cannot reach the next run's token.
                    _cancellation?.Cancel();
                }
                catch (Exception e) when (e is AggregateException or ObjectDisposedException)
                {
                    // A cancellation callback threw, or the run has just ended; the handler's own outcome reports the rest.
                }
                return;
            }
            if (now - _reportedAt < _extendEvery) return;
            _reportedAt = now;
            for (var i = 0; i < _count; i++) _queue.Tell(new InProgress(_deliveries[i].DeliveryId), _consumer);
            foreach (var id in _waiting) _queue.Tell(new InProgress(id), _consumer);
        }
    }
}

/// <summary>The one thread that checks every consumer's <see cref="InlineRun"/>.</summary>
internal static class ProgressWatchdog
{
    private static readonly List<InlineRun> Runs = new();
    private static Thread? _thread;

    public static void Watch(InlineRun run)
    {
        lock (Runs)
        {
            Runs.Add(run);
            if (_thread is not null) return;
            _thread = new Thread(Loop) { IsBackground = true, Name = "actor-queue-watchdog" };
            _thread.Start();
        }
    }

    public static void Forget(InlineRun run)
    {
        lock (Runs) Runs.Remove(run);
    }

    private static void Loop()
    {
        var snapshot = new List<InlineRun>();
        while (true)
        {
            Thread.Sleep(50);
            snapshot.Clear();
            lock (Runs) snapshot.AddRange(Runs);
            var now = Stopwatch.GetTimestamp();
            foreach (var run in snapshot) run.Check(now);
        }
    }
}
