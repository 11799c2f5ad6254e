using System.Diagnostics;
using System.Runtime.InteropServices;
using ActorQueue.Benchmarks.Peers;
using HdrHistogram;

namespace ActorQueue.Benchmarks;

/// <summary>Emit-to-handler latency of one run, in microseconds.</summary>
internal sealed record Latency(double P50, double P99, double P999, double Max);

/// <summary>One measured run of one peer.</summary>
internal sealed record RunResult(
    string Peer, int Round, long Messages, bool Completed, double Seconds, double MessagesPerSecond,
    double BytesPerMessage, double PeakMegabytes, Latency? Latency, string? Error);

/// <summary>What one run does: how many messages through which shape, with how much work, at what rate.</summary>
internal sealed record RunSpec(Shape Shape, int Capacity, long Messages, TimeSpan Work, double Rate = 0);

/// <summary>Runs a peer once on a spec and measures it: time, allocation, peak heap and, when paced, latency.</summary>
internal static class Measurement
{
    public static async Task<RunResult> RunAsync(Peer peer, RunSpec spec, int round, TimeSpan timeout)
    {
        var histogram = spec.Rate > 0 ? new LongHistogram(60_000_000, 3) : null;
        var probe = new Probe(spec.Messages, spec.Work, histogram);
        IPeerRun? run = null;
        try
        {
            run = await peer.StartAsync(new RunContext(spec.Shape, spec.Capacity, probe));
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
            var baseline = GC.GetTotalMemory(forceFullCollection: false);
            var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
            using var sampler = new MemorySampler();
            using var pacing = new CancellationTokenSource();
            var started = Stopwatch.GetTimestamp();
            Thread? pacer = null;
            if (spec.Rate > 0)
            {
                pacer = new Thread(() => Pace(run, spec.Messages, spec.Rate, pacing.Token)) { IsBackground = true, Name = "pacer" };
                pacer.Start();
            }
            else
            {
                run.Emit(spec.Messages, 0);
            }
            var completed = await Task.WhenAny(probe.Completed, Task.Delay(timeout)) == probe.Completed;
            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
            await pacing.CancelAsync();
            pacer?.Join();
            var peak = Math.Max(0, sampler.Stop() - baseline);
            var handled = completed ? spec.Messages : probe.Count;
            return new RunResult(peer.Name, round, spec.Messages, completed, seconds, handled / seconds,
                (double)allocated / Math.Max(1, handled), peak / 1048576.0, Summarize(histogram),
                completed ? null : $"timed out after {timeout.TotalSeconds:0}s with {handled} of {spec.Messages} handled");
        }
        catch (Exception e)
        {
            return new RunResult(peer.Name, round, spec.Messages, false, 0, 0, 0, 0, null, e.GetBaseException().Message);
        }
        finally
        {
            if (run is not null) await TearDownAsync(run, peer);
        }
    }

    private static async Task TearDownAsync(IPeerRun run, Peer peer)
    {
        try
        {
            await run.DisposeAsync();
        }
        catch (Exception e)
        {
            // A run that failed may also fail to stop; its result already says so, and the next run starts afresh.
            Console.Error.WriteLine($"  {peer.Name}: tear-down failed: {e.GetBaseException().Message}");
        }
    }

    private static Latency? Summarize(LongHistogram? h) => h is null || h.TotalCount == 0
        ? null
        : new Latency(h.GetValueAtPercentile(50), h.GetValueAtPercentile(99), h.GetValueAtPercentile(99.9), h.GetMaxValue());

    // Emits what is due every ~100 µs (1 ms where short sleeps are not available), stamping each batch when it
    // is emitted, so latency counts every wait a message has after it was meant to be sent.
    private static void Pace(IPeerRun run, long total, double rate, CancellationToken ct)
    {
        var start = Stopwatch.GetTimestamp();
        long sent = 0;
        while (sent < total && !ct.IsCancellationRequested)
        {
            var now = Stopwatch.GetTimestamp();
            var due = Math.Min(total, (long)((now - start) * rate / Stopwatch.Frequency));
            if (due > sent)
            {
                run.Emit(due - sent, now);
                sent = due;
            }
            Nap();
        }
    }

    private static void Nap()
    {
        if (OperatingSystem.IsLinux()) _ = usleep(100);
        else Thread.Sleep(1);
    }

    [DllImport("libc", SetLastError = false)]
    private static extern int usleep(uint microseconds);
}

/// <summary>Samples the managed heap every millisecond on its own thread and keeps the peak.</summary>
internal sealed class MemorySampler : IDisposable
{
    private readonly Thread _thread;
    private volatile bool _stopped;
    private long _peak;

    public MemorySampler()
    {
        _peak = GC.GetTotalMemory(false);
        _thread = new Thread(Sample) { IsBackground = true, Name = "memory-sampler" };
        _thread.Start();
    }

    /// <summary>Stops sampling and returns the peak heap size in bytes.</summary>
    public long Stop()
    {
        _stopped = true;
        _thread.Join();
        return Math.Max(_peak, GC.GetTotalMemory(false));
    }

    private void Sample()
    {
        while (!_stopped)
        {
            var now = GC.GetTotalMemory(false);
            if (now > _peak) _peak = now;
            Thread.Sleep(1);
        }
    }

    public void Dispose()
    {
        if (!_stopped) Stop();
    }
}
