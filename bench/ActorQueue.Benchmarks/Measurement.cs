using System.Diagnostics;
using System.Runtime;
using System.Runtime.InteropServices;
using ActorQueue.Benchmarks.Peers;
using HdrHistogram;

namespace ActorQueue.Benchmarks;

/// <summary>Emit-to-handler latency of one run, in microseconds.</summary>
internal sealed record Latency(double P50, double P99, double P999, double Max);

/// <summary>One measured run of one peer.</summary>
internal sealed record RunResult(
    string Peer, int Round, long Messages, bool Completed, double Seconds, double MessagesPerSecond,
    double BytesPerMessage, double PeakMegabytes, double PeakLiveMegabytes, int Collections, double GcPauseMilliseconds,
    double CpuUtilization, Latency? Latency, Latency? Stalls, string? Error, double? BacklogMilliseconds = null, double JitMilliseconds = 0)
{
    /// <summary>
    /// A paced run whose backlog (messages emitted and not yet handled, in milliseconds of its pace) grew past twice the
    /// platform's worst stall, and past 1 ms: a stall leaves any peer that far behind, a peer with room to spare
    /// catches up within it, and one paced at its limit does not. Its latency tail is then mostly that wait.
    /// </summary>
    public bool FellBehind => BacklogMilliseconds is { } b && b > Math.Max(1, 2 * (Stalls?.Max ?? 0) / 1000);
}

/// <summary>
/// What one run does: how many messages through which shape, with how much work, at what rate. With
/// <paramref name="LiveHeapSamples"/> above 0 the live heap is measured that many times, evenly by messages handled,
/// each time by a full blocking collection whose time is taken out of the run's (see <see cref="MemorySampler"/>).
/// </summary>
internal sealed record RunSpec(Shape Shape, int Capacity, long Messages, TimeSpan Work, double Rate = 0, int LiveHeapSamples = 0);

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
            // What earlier runs (of any peer) and this one's start left for tiered compilation to recompile is done
            // before the clock starts, not on the other core while this peer is timed.
            await JitQuiet.WaitAsync();
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
            // Again: what the finalizers let go of (the last run's system) would otherwise count in the baseline, and
            // a live sample taken after it is collected would come out below the baseline.
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            var baseline = GC.GetTotalMemory(forceFullCollection: false);
            var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
            var collectionsBefore = GC.CollectionCount(0);
            var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
            var pauseBefore = GC.GetTotalPauseDuration();
            var jitBefore = JitInfo.GetCompilationTime();
            // Paced runs measure latency, and beside it the platform's own stalls rather than the heap.
            using var sampler = spec.Rate > 0 ? null : new MemorySampler(probe, spec.Messages, spec.LiveHeapSamples);
            using var stalls = spec.Rate > 0 ? new StallMeter() : null;
            using var pacing = new CancellationTokenSource();
            var started = Stopwatch.GetTimestamp();
            Thread? pacer = null;
            long backlog = 0;
            if (spec.Rate > 0)
            {
                pacer = new Thread(() => backlog = Pace(run, probe, spec.Messages, spec.Rate, pacing.Token)) { IsBackground = true, Name = "pacer" };
                pacer.Start();
            }
            else
            {
                run.Emit(spec.Messages, 0);
            }
            var completed = await Task.WhenAny(probe.Completed, Task.Delay(timeout)) == probe.Completed;
            var elapsed = Stopwatch.GetElapsedTime(started);
            var cpuTime = Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
            var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
            var collections = GC.CollectionCount(0) - collectionsBefore;
            var pause = GC.GetTotalPauseDuration() - pauseBefore;
            var jit = JitInfo.GetCompilationTime() - jitBefore;
            await pacing.CancelAsync();
            pacer?.Join();
            var platform = stalls?.Stop();
            var memory = sampler?.Stop() ?? MemorySampler.Sample.None;
            // The sampler's own collections are not the peer's: their time, pauses and count come off the run's.
            var seconds = (elapsed - memory.ForcedTime).TotalSeconds;
            collections -= memory.ForcedCollections;
            pause -= memory.ForcedPause;
            // Cores kept busy on average: 2.0 on a 2-core machine means the run was CPU-bound.
            var cpu = (cpuTime - memory.ForcedTime).TotalSeconds / seconds;
            var (peakHeap, peakLive) = sampler is null ? (GC.GetTotalMemory(false), GC.GetTotalMemory(false)) : (memory.Heap, memory.Live);
            var peak = Math.Max(0, peakHeap - baseline);
            var live = Math.Max(0, peakLive - baseline);
            var handled = completed ? spec.Messages : probe.Count;
            return new RunResult(peer.Name, round, spec.Messages, completed, seconds, handled / seconds,
                (double)allocated / Math.Max(1, handled), peak / 1048576.0, live / 1048576.0, collections, pause.TotalMilliseconds, cpu, Summarize(histogram), platform,
                completed ? null : $"timed out after {timeout.TotalSeconds:0}s with {handled} of {spec.Messages} handled",
                spec.Rate > 0 ? backlog * 1000.0 / spec.Rate : null, jit.TotalMilliseconds);
        }
        catch (Exception e)
        {
            return new RunResult(peer.Name, round, spec.Messages, false, 0, 0, 0, 0, 0, 0, 0, 0, null, null, e.GetBaseException().Message);
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

    internal static Latency? Summarize(LongHistogram? h) => h is null || h.TotalCount == 0
        ? null
        : new Latency(h.GetValueAtPercentile(50), h.GetValueAtPercentile(99), h.GetValueAtPercentile(99.9), h.GetMaxValue());

    // Emits what is due every ~50 us (1 ms where short sleeps are not available), stamping each batch when it
    // is emitted, so latency counts every wait a message has after it was meant to be sent. Small steps keep a
    // burst well below the queue's capacity even at millions of messages per second. (On a 2-core virtual machine
    // a 50 us sleep lasts about 100 us and the pacer alone keeps a fifth of a core busy.) Returns the largest
    // backlog it saw: messages emitted and not yet handled.
    private static long Pace(IPeerRun run, Probe probe, long total, double rate, CancellationToken ct)
    {
        if (OperatingSystem.IsLinux()) _ = prctl(PrSetTimerSlack, 1, 0, 0, 0); // 1 ns: wake when asked, not up to 50 us later
        var start = Stopwatch.GetTimestamp();
        long sent = 0, maxBacklog = 0;
        while (sent < total && !ct.IsCancellationRequested)
        {
            var now = Stopwatch.GetTimestamp();
            var due = Math.Min(total, (long)((now - start) * rate / Stopwatch.Frequency));
            if (due > sent)
            {
                run.Emit(due - sent, now);
                sent = due;
            }
            maxBacklog = Math.Max(maxBacklog, sent - probe.Count);
            Nap();
        }
        return maxBacklog;
    }

    private static void Nap()
    {
        if (OperatingSystem.IsLinux()) _ = usleep(PaceMicroseconds);
        else Thread.Sleep(1);
    }

    private const uint PaceMicroseconds = 50;
    private const int PrSetTimerSlack = 29;

    [DllImport("libc", SetLastError = false)]
    private static extern int usleep(uint microseconds);

    [DllImport("libc", SetLastError = false)]
    private static extern int prctl(int option, ulong arg2, ulong arg3, ulong arg4, ulong arg5);
}

/// <summary>
/// Samples the managed heap every millisecond on its own thread and keeps two peaks: the heap with its garbage
/// (what the process holds at that moment) and the live heap.
/// </summary>
/// <remarks>
/// The live heap is only known right after a full collection. Asked for live samples (scenario 3, whose target is the
/// live heap), the sampler forces a full blocking, compacting collection each time another 1/(samples + 1) of the run's
/// messages has been handled, so a run of 1M and one of 10M are sampled alike, at the same points of their progress,
/// and reads the heap at once; the time those collections stop the process, their pauses and their count are reported
/// so that the run leaves them out. Without live samples (the throughput scenarios, which forced collections would
/// disturb) the live peak is, as before, the largest heap right after a collection during the run; a run that had no
/// collection gets one forced once it has ended, rather than its heap with all its garbage.
/// </remarks>
internal sealed class MemorySampler : IDisposable
{
    private readonly Thread _thread;
    private readonly Probe _probe;
    private readonly long _messages;
    private readonly int _liveSamples;
    private readonly long _startIndex;
    private volatile bool _stopped;
    private long _peak;
    private long _peakLive = -1;
    private int _taken;
    private TimeSpan _forcedTime;
    private TimeSpan _forcedPause;
    private int _forcedCollections;

    /// <summary>What the sampler measured, in bytes, and what its own collections cost.</summary>
    public readonly record struct Sample(long Heap, long Live, TimeSpan ForcedTime, TimeSpan ForcedPause, int ForcedCollections)
    {
        public static Sample None => new(0, 0, TimeSpan.Zero, TimeSpan.Zero, 0);
    }

    /// <param name="probe">The run's probe, whose count says how far the run has got.</param>
    /// <param name="messages">The messages the run handles.</param>
    /// <param name="liveSamples">How many forced live-heap samples to take, evenly over the run; 0 for none.</param>
    public MemorySampler(Probe probe, long messages, int liveSamples)
    {
        _probe = probe;
        _messages = messages;
        _liveSamples = liveSamples;
        _peak = GC.GetTotalMemory(false);
        _startIndex = GC.GetGCMemoryInfo(GCKind.Any).Index;
        _thread = new Thread(Run) { IsBackground = true, Name = "memory-sampler" };
        _thread.Start();
    }

    /// <summary>Stops sampling and returns the peaks; see the remarks for how the live one is taken.</summary>
    public Sample Stop()
    {
        if (!_stopped)
        {
            _stopped = true;
            _thread.Join();
            SampleHeap();
            if (_peakLive < 0)
            {
                // No collection during the run (nor a live sample, the run being too short): one now, after the timed
                // part, so that live means live here too.
                GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
                _peakLive = GC.GetTotalMemory(false);
            }
        }
        return new Sample(_peak, Math.Max(0, _peakLive), _forcedTime, _forcedPause, _forcedCollections);
    }

    private void Run()
    {
        while (!_stopped)
        {
            SampleHeap();
            if (_taken < _liveSamples && _probe.Count >= (_taken + 1) * _messages / (_liveSamples + 1)) SampleLive();
            Thread.Sleep(1);
        }
    }

    private void SampleHeap()
    {
        var now = GC.GetTotalMemory(false);
        if (now > _peak) _peak = now;
        if (_liveSamples > 0) return;
        var info = GC.GetGCMemoryInfo(GCKind.Any);
        if (info.Index > _startIndex && info.HeapSizeBytes > _peakLive) _peakLive = info.HeapSizeBytes;
    }

    private void SampleLive()
    {
        _taken++;
        var pauseBefore = GC.GetTotalPauseDuration();
        var collectionsBefore = GC.CollectionCount(0);
        var started = Stopwatch.GetTimestamp();
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        var live = GC.GetTotalMemory(false);
        _forcedTime += Stopwatch.GetElapsedTime(started);
        _forcedPause += GC.GetTotalPauseDuration() - pauseBefore;
        _forcedCollections += GC.CollectionCount(0) - collectionsBefore;
        if (live > _peakLive) _peakLive = live;
    }

    public void Dispose() => Stop();
}

/// <summary>
/// The platform's own stalls during a paced run, measured as jHiccup does: a thread sleeps 1 ms at a time and
/// records by how much it woke late. Whatever delays it (the OS scheduler, the hypervisor, a GC pause) delays the
/// pipeline under test as well, so these figures are a floor under the latency tail any peer can show.
/// </summary>
internal sealed class StallMeter : IDisposable
{
    private readonly LongHistogram _histogram = new(60_000_000, 3);
    private readonly Thread _thread;
    private volatile bool _stopped;

    public StallMeter()
    {
        _thread = new Thread(Run) { IsBackground = true, Name = "stall-meter" };
        _thread.Start();
    }

    /// <summary>Stops measuring and returns how late the thread woke, in microseconds beyond the 1 ms asked for.</summary>
    public Latency? Stop()
    {
        _stopped = true;
        _thread.Join();
        return Measurement.Summarize(_histogram);
    }

    private void Run()
    {
        while (!_stopped)
        {
            var before = Stopwatch.GetTimestamp();
            Thread.Sleep(1);
            var late = Stopwatch.GetElapsedTime(before).TotalMicroseconds - 1000;
            _histogram.RecordValue(Math.Max(0, (long)late));
        }
    }

    public void Dispose()
    {
        if (!_stopped) Stop();
    }
}

/// <summary>
/// Waits for the JIT to go quiet. Tiered compilation recompiles a method in the background once it has been called
/// often enough and no new code has been compiled for a moment; a run that follows another peer's (or its own start:
/// a new host, a new ActorSystem) would otherwise share the machine with that work, on one of two cores for hundreds
/// of milliseconds, and pay for code that is not its own.
/// </summary>
internal static class JitQuiet
{
    /// <summary>How long no method may have been compiled: past tiering's 100 ms call-counting delay, with room for its batch.</summary>
    public static readonly TimeSpan QuietFor = TimeSpan.FromMilliseconds(250);

    /// <summary>The longest it waits: a peer that keeps compiling code (MassTransit does, in its runs) is measured as it is.</summary>
    public static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(5);

    public static async Task WaitAsync()
    {
        var started = Stopwatch.GetTimestamp();
        var count = JitInfo.GetCompiledMethodCount();
        var quietSince = started;
        while (Stopwatch.GetElapsedTime(started) < MaxWait)
        {
            await Task.Delay(20);
            var now = Stopwatch.GetTimestamp();
            var c = JitInfo.GetCompiledMethodCount();
            if (c != count)
            {
                count = c;
                quietSince = now;
            }
            else if (Stopwatch.GetElapsedTime(quietSince, now) >= QuietFor) return;
        }
    }
}
