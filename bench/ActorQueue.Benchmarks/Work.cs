using System.Diagnostics;
using HdrHistogram;

namespace ActorQueue.Benchmarks;

/// <summary>The small message every peer moves: an id (producer index in the top bits) and when it was emitted.</summary>
internal sealed record Work(long Id, long EmittedAt)
{
    public const int ProducerShift = 48;

    /// <summary>Bytes one message takes on the heap, measured once (32 on a 64-bit runtime: header, type, two longs).</summary>
    public static long PayloadBytes { get; } = MeasurePayload();

    private static long MeasurePayload()
    {
        const int count = 1000;
        var keep = new Work[count];
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < count; i++) keep[i] = new Work(i, i);
        var bytes = GC.GetAllocatedBytesForCurrentThread() - before;
        GC.KeepAlive(keep);
        return bytes / count;
    }

    public int Producer => (int)(Id >> ProducerShift);
}

/// <summary>
/// Lets a producer create <paramref name="Count"/> more messages, stamped with <paramref name="EmittedAt"/>
/// (a Stopwatch timestamp; 0 when latency is not measured).
/// </summary>
internal sealed record Emit(long Count, long EmittedAt);

/// <summary>
/// What every consumer of every peer calls once per message: simulated work, latency, and the count that
/// completes the run. The same code for all peers, so it costs them all the same.
/// </summary>
internal sealed class Probe
{
    private readonly long _expected;
    private readonly long _workTicks;
    private readonly LongHistogram? _latency;
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _count;

    /// <param name="expected">Messages that complete the run.</param>
    /// <param name="work">Busy work per message (zero for none).</param>
    /// <param name="latency">Records emit-to-handler latency in microseconds; only for one consumer at a time.</param>
    public Probe(long expected, TimeSpan work, LongHistogram? latency)
    {
        _expected = expected;
        _workTicks = (long)(work.TotalSeconds * Stopwatch.Frequency);
        _latency = latency;
    }

    /// <summary>
    /// Latency is read on one message in eight (by id, so evenly spread): reading the clock costs 25-35 ns on a
    /// virtual machine, which at millions of messages per second would take a sizeable part of the very stage
    /// being measured. Paced runs still take hundreds of thousands of samples or more, plenty for p99.9.
    /// </summary>
    public const long LatencySampleMask = 7;

    public Task Completed => _done.Task;

    public long Count => Volatile.Read(ref _count);

    public void Handle(Work work)
    {
        if (_latency is not null && work.EmittedAt != 0 && (work.Id & LatencySampleMask) == 0)
        {
            var micros = (Stopwatch.GetTimestamp() - work.EmittedAt) * 1_000_000 / Stopwatch.Frequency;
            _latency.RecordValue(Math.Max(0, micros));
        }
        if (_workTicks > 0)
        {
            var until = Stopwatch.GetTimestamp() + _workTicks;
            while (Stopwatch.GetTimestamp() < until) Thread.SpinWait(1);
        }
        if (Interlocked.Increment(ref _count) == _expected) _done.TrySetResult();
    }

    /// <summary>Splits <paramref name="total"/> across <paramref name="parts"/>, the remainder to the first.</summary>
    public static long Share(long total, int parts, int index) => total / parts + (index == 0 ? total % parts : 0);
}
