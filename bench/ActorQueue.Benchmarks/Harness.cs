using ActorQueue.Benchmarks.Peers;

namespace ActorQueue.Benchmarks;

/// <summary>One peer's runs in one scenario, summarised: medians and ranges over the rounds that completed.</summary>
internal sealed record PeerSummary(
    string Peer, string Description, long Messages, double Rate, double MedianMessagesPerSecond, double MinMessagesPerSecond,
    double MaxMessagesPerSecond, double BytesPerMessage, double PeakMegabytes, double PeakLiveMegabytes, double GcPauseMilliseconds,
    Latency? Latency, Latency? Stalls, int Failed, IReadOnlyList<RunResult> Runs, double? MaxBacklogMilliseconds = null, int RoundsBehind = 0);

/// <summary>A scenario's results: every peer on the same work, compared with the <paramref name="Reference"/> peer.</summary>
internal sealed record ScenarioResult(string Id, string Title, string Shape, int Capacity, string Work, IReadOnlyList<PeerSummary> Peers,
    string Reference = Harness.ActorQueueName)
{
    public PeerSummary? Find(string peer) => Peers.FirstOrDefault(p => p.Peer == peer);
}

/// <summary>Runs the scenarios: warm-up first, then every peer once per round, in an order that alternates.</summary>
internal sealed class Harness(HarnessOptions options, TextWriter log)
{
    private readonly Peer _actorQueue = new ActorQueuePeer(ActorQueuePeer.Producers.Protocol);
    private readonly Peer _viaProducerActor = new ActorQueuePeer(ActorQueuePeer.Producers.ProducerActor);
    private readonly Peer _rawTell = new RawTellPeer();
    private readonly Peer _creditWindow = new CreditWindowPeer();
    private readonly Peer _delivery = new DeliveryPeer();
    private readonly Peer _sourceQueue = new StreamsQueuePeer();
    private readonly Peer _channel = new ChannelPeer();
    private readonly Peer _durable = new ActorQueuePeer(ActorQueuePeer.Producers.Protocol, durable: true);
    private readonly Peer _rawSqlite = new SqliteCeilingPeer();
    private readonly Peer _persistAll = new PersistAllPeer();
    private readonly Peer _durableDelivery = new DeliveryPeer(durable: true);
    private readonly Peer _client = ClientPeer.Default();
    private readonly Peer _clientTuned = ClientPeer.Tuned(options.Capacity);
    private readonly Peer _clientBatched = ClientPeer.Batched(UserBatch);
    private readonly Peer _clientBatchedTuned = ClientPeer.BatchedTuned(UserBatch, options.Capacity);
    private readonly Peer _clientOpen = ClientPeer.Open(options.Capacity, UserOpen);
    private readonly Peer _userChannel = new ChannelWritersPeer();
    private readonly Peer _hosted = new HostedClientPeer();
    private readonly Peer _channelService = new ChannelServicePeer();
    private readonly Peer _massTransit = new MassTransitPeer();

    public const string ActorQueueName = "ActorQueue";

    /// <summary>The user-path scenarios' shape: writer tasks, and readers (or handlers at once) on the consuming side.</summary>
    private static readonly Shape UserShape = new(8, 4);

    /// <summary>Calls each writer keeps open in U1's informational variant.</summary>
    private const int UserOpen = 64;

    /// <summary>Messages per EnqueueManyAsync in U2.</summary>
    public const int UserBatch = 100;

    /// <summary>Forced live-heap samples per run in scenario 3 (every tenth of the run's messages).</summary>
    private const int LiveHeapSamples = 9;

    public async Task<List<ScenarioResult>> RunAsync()
    {
        var all = new[] { _actorQueue, _viaProducerActor, _rawTell, _creditWindow, _delivery, _sourceQueue, _channel };
        // Scenario 6 warms its own peers up; the in-memory ones only when an in-memory scenario runs.
        if (options.Scenarios.Any(k => k <= 5))
        {
            await WarmUpAsync(all, new Shape(1, 1),
                p => p == _delivery ? Math.Min(options.WarmupMessages, 20_000) : options.WarmupMessages,
                p => p == _delivery ? Math.Min(options.DeliveryMessages, 200_000) : Math.Max(options.WarmupMessages, options.Messages));
        }
        var results = new List<ScenarioResult>();
        var one = new Shape(1, 1);
        var s = options.Scenarios;
        ScenarioResult? first = null;
        if (s.Contains(1))
        {
            first = await RunScenarioAsync("1", "1 producer -> 1 consumer, at-least-once with acks", one, all, p => p == _delivery ? options.DeliveryMessages : options.Messages, TimeSpan.Zero);
            results.Add(first);
        }
        if (s.Contains(2))
        {
            var multi = new[] { _actorQueue, _rawTell, _creditWindow, _channel };
            results.Add(await RunScenarioAsync("2 (4x4)", "4 producers -> 4 consumers", new Shape(4, 4), multi, _ => options.Messages, TimeSpan.Zero));
            results.Add(await RunScenarioAsync("2 (1x8)", "1 producer -> 8 consumers (work pulling)", new Shape(1, 8), multi, _ => options.Messages, TimeSpan.Zero));
        }
        if (s.Contains(3))
        {
            var slow = options.Mode == "quick" ? new[] { _actorQueue, _rawTell, _channel } : new[] { _actorQueue, _rawTell, _creditWindow, _channel };
            foreach (var n in options.SlowConsumerMessages)
                results.Add(await RunScenarioAsync($"3 ({Count(n)})", $"slow consumer ({options.SlowWork.TotalMicroseconds:0} us of work per message), N = {Count(n)}: peak memory", one, slow, _ => n, options.SlowWork,
                    liveHeapSamples: LiveHeapSamples));
        }
        if (s.Contains(4) && first is not null)
            results.Add(await LatencyScenarioAsync("4", "emit -> handler", one, first, [_actorQueue, _rawTell, _creditWindow, _delivery, _sourceQueue, _channel]));
        if (s.Contains(6))
        {
            // Durable: each run on a fresh SQLite file; a few throwaway runs first, the store's code being cold.
            var durable = new[] { _durable, _rawSqlite, _persistAll, _durableDelivery };
            foreach (var peer in durable)
                for (var i = 0; i < Math.Min(3, Math.Max(1, options.WarmupRounds)); i++)
                    await Measurement.RunAsync(peer, new RunSpec(one, options.Capacity, Math.Min(peer == _durableDelivery ? 1_000 : 20_000, options.DurableMessages), TimeSpan.Zero), -1, Timeout(options.DurableMessages, TimeSpan.Zero));
            // Akka.Delivery's durable producer writes one event per message (and one per confirmation): a smaller N keeps it in time.
            results.Add(await RunScenarioAsync("6 (1x1)", $"durable: 1 producer -> 1 consumer, accepted after the write, acks journaled, N = {Count(options.DurableMessages)}", one, durable,
                p => p == _durableDelivery ? Math.Min(options.DurableMessages, 5_000) : options.DurableMessages, TimeSpan.Zero));
            results.Add(await RunScenarioAsync("6 (4x4)", $"durable: 4 producers -> 4 consumers, N = {Count(options.DurableMessages)}", new Shape(4, 4), [_durable], _ => options.DurableMessages, TimeSpan.Zero));
            results.Add(await RecoveryScenarioAsync(options.RecoveryMessages));
        }
        if (s.Contains(5))
        {
            var growth = new[] { _actorQueue, _creditWindow, _channel };
            foreach (var n in options.GrowthMessages)
                results.Add(await RunScenarioAsync($"5 ({Count(n)})", $"throughput as N grows, N = {Count(n)}", one, growth, _ => n, TimeSpan.Zero));
        }
        if (s.Overlaps([HarnessOptions.U1, HarnessOptions.U2, HarnessOptions.U3, HarnessOptions.U4])) results.AddRange(await UserPathsAsync());
        return results;
    }

    // The user paths: writer tasks awaiting the client (or the peer's own write) per message, in a fresh system or host
    // per run. They warm up on their own shape, the code being different from the actor peers'.
    private async Task<List<ScenarioResult>> UserPathsAsync()
    {
        var s = options.Scenarios;
        var u1 = new[] { _client, _clientTuned, _clientOpen, _userChannel };
        var u2 = new[] { _clientBatched, _clientBatchedTuned, _userChannel };
        var u3 = new[] { _hosted, _channelService, _massTransit };
        var peers = new List<Peer>();
        if (s.Contains(HarnessOptions.U1)) peers.AddRange(u1);
        if (s.Contains(HarnessOptions.U2)) peers.AddRange(u2);
        if (s.Contains(HarnessOptions.U3)) peers.AddRange(u3);
        await WarmUpAsync(peers.Distinct().ToList(), UserShape, p => Math.Max(1, Math.Min(options.WarmupMessages, UserMessages(p) / 4)), UserMessages);
        var results = new List<ScenarioResult>();
        const string writers = "8 writers await";
        ScenarioResult? first = null;
        if (s.Contains(HarnessOptions.U1))
        {
            first = await RunScenarioAsync("U1", $"user path: {writers} IQueueClient.EnqueueAsync -> queue -> one consumer (StartConsumerAsync), handler completing at once; " +
                                                 "Channel: 8 WriteAsync writers, 4 readers", UserShape, u1, UserMessages, TimeSpan.Zero, reference: ClientPeer.DefaultName);
            results.Add(first);
        }
        if (s.Contains(HarnessOptions.U2))
        {
            results.Add(await RunScenarioAsync("U2", $"user path: {writers} IQueueClient.EnqueueManyAsync of {UserBatch} -> queue -> one consumer; Channel: 8 WriteAsync writers, 4 readers",
                UserShape, u2, UserMessages, TimeSpan.Zero, reference: _clientBatched.Name));
        }
        if (s.Contains(HarnessOptions.U3))
        {
            results.Add(await RunScenarioAsync("U3", $"hosting path: {writers} the IQueueClient from AddQueueClient -> WithQueueConsumer<THandler> (a scope per message), " +
                                                 $"against Channel + BackgroundService and MassTransit in-memory (N = {Count(options.MassTransitMessages)} for MassTransit)",
                UserShape, u3, UserMessages, TimeSpan.Zero, reference: HostedClientPeer.PeerName));
        }
        if (s.Contains(HarnessOptions.U4) && first is not null)
            results.Add(await LatencyScenarioAsync("U4", "EnqueueAsync -> handler start", UserShape, first, u1.Where(p => p != _clientOpen).ToArray(), ClientPeer.DefaultName));
        return results;
    }

    private long UserMessages(Peer peer) => peer == _massTransit ? options.MassTransitMessages : options.UserMessages;

    // Scenario 4 and U4: each peer paced at half its own rate in the scenario given, or every peer at --latency-rate.
    private async Task<ScenarioResult> LatencyScenarioAsync(string id, string what, Shape shape, ScenarioResult rates, Peer[] candidates,
        string reference = ActorQueueName)
    {
        var paced = candidates
            .Where(p => options.LatencyRate is not { } r || (rates.Find(p.Name)?.MedianMessagesPerSecond ?? 0) >= 1.5 * r).ToArray();
        if (options.LatencyRate is { } fixedRate)
            log.WriteLine($"Scenario {id} at {fixedRate:N0} msgs/s leaves out the peers whose scenario-{rates.Id} rate is below 1.5 times that.");
        // The paced path (pacer, histogram) has not run yet: one throwaway paced run each, so round 1 is not cold.
        foreach (var peer in paced)
            await Measurement.RunAsync(peer, new RunSpec(shape, options.Capacity, (long)(PacedRate(rates, peer) / 4), TimeSpan.Zero, PacedRate(rates, peer)), -1, Timeout(options.Messages, TimeSpan.Zero));
        var at = options.LatencyRate is { } r ? $"{r:N0} msgs/s for every peer" : $"half each peer's scenario-{rates.Id} rate";
        return await RunScenarioAsync(id, $"latency {what} at {at}, {options.LatencyDuration.TotalSeconds:0.#} s", shape, paced,
            p => (long)Math.Max(1000, PacedRate(rates, p) * options.LatencyDuration.TotalSeconds), TimeSpan.Zero, p => PacedRate(rates, p), reference: reference);
    }

    // A durable queue filled with N messages (no consumer), its actor system stopped, then a new one started on the
    // same file: the time from creating the queue to its first answer, which it gives once it has recovered.
    private async Task<ScenarioResult> RecoveryScenarioAsync(long messages)
    {
        log.WriteLine($"Scenario 6 (recovery): recovery of {Count(messages)} held messages");
        var runs = new List<RunResult>();
        for (var round = 0; round < options.Rounds; round++)
        {
            var result = await DurableRecovery.RunAsync(messages, round, options.Capacity);
            runs.Add(result);
            log.WriteLine(result.Completed
                ? $"  round {round + 1}: recovered {Count(messages)} in {result.Seconds:N2} s ({result.MessagesPerSecond:N0} msgs/s)"
                : $"  round {round + 1}: FAILED: {result.Error}");
        }
        var summary = Summarize(new RecoveryPeer(), messages, 0, runs);
        return new ScenarioResult("6 (recovery)", $"durable: recovery of {Count(messages)} held messages (rate = messages / seconds to recover)", "1x0", (int)messages + 1, "none", [summary]);
    }

    // Scenarios 4 and U4 pace each peer at half its own rate in scenario 1 or U1, or every peer at --latency-rate.
    private double PacedRate(ScenarioResult first, Peer peer) => options.LatencyRate is { } fixedRate ? fixedRate :
        first.Find(peer.Name) is { MedianMessagesPerSecond: > 0 } p ? p.MedianMessagesPerSecond / 2 : 10_000;

    // Tiered compilation and PGO make the first runs several times slower than steady state. Recompilation runs in
    // the background once a method has been called enough and no new code has been compiled for a moment, which
    // back-to-back runs of one peer (each starting a new ActorSystem) keep putting off. So the peers warm up in
    // turns, like the measured rounds, for at least the rounds asked and then until each one's last three rounds
    // agree within 20% (at most 40 rounds). Short rounds can agree while the code is still unoptimised (each new
    // ActorSystem compiles something, so the quiet moment may never come), so each peer then does one long round,
    // during which nothing new is compiled.
    private async Task WarmUpAsync(IReadOnlyList<Peer> peers, Shape shape, Func<Peer, long> messages, Func<Peer, long> longMessages)
    {
        if (options.WarmupRounds == 0 || peers.Count == 0) return;
        log.WriteLine($"Warming up [{shape}]: at least {options.WarmupRounds} throwaway rounds of {Count(messages(peers[0]))} per peer, in turns, until steady");
        var rates = peers.ToDictionary(p => p, _ => new List<double>());
        var failed = new HashSet<Peer>();
        for (var round = 0; round < 40; round++)
        {
            var pending = peers.Where(p => !failed.Contains(p) && (round < options.WarmupRounds || !Steady(rates[p]))).ToList();
            if (pending.Count == 0) break;
            foreach (var peer in pending)
            {
                var n = messages(peer);
                var result = await Measurement.RunAsync(peer, new RunSpec(shape, options.Capacity, n, TimeSpan.Zero), -1, Timeout(n, TimeSpan.Zero));
                if (result.Completed) rates[peer].Add(result.MessagesPerSecond);
                else
                {
                    log.WriteLine($"  warm-up of {peer.Name} failed: {result.Error}");
                    failed.Add(peer);
                }
            }
        }
        foreach (var peer in peers.Where(p => !failed.Contains(p)))
        {
            var n = longMessages(peer);
            var result = await Measurement.RunAsync(peer, new RunSpec(shape, options.Capacity, n, TimeSpan.Zero), -1, Timeout(n, TimeSpan.Zero));
            if (result.Completed) rates[peer].Add(result.MessagesPerSecond);
            else log.WriteLine($"  long warm-up round of {peer.Name} failed: {result.Error}");
        }
        foreach (var peer in peers)
            log.WriteLine($"  {peer.Name,-28} {rates[peer].Count,3} rounds, last (long) {(rates[peer].Count > 0 ? rates[peer][^1] : 0),14:N0} msgs/s");
    }

    private static bool Steady(List<double> rates)
    {
        if (rates.Count < 3) return false;
        var last = rates.TakeLast(3).ToArray();
        var median = Median(last);
        return last.All(r => Math.Abs(r - median) <= 0.2 * median);
    }

    private async Task<ScenarioResult> RunScenarioAsync(
        string id, string title, Shape shape, IReadOnlyList<Peer> candidates, Func<Peer, long> messages, TimeSpan work, Func<Peer, double>? rate = null,
        int liveHeapSamples = 0, string reference = ActorQueueName)
    {
        var peers = candidates.Where(p => p.Supports(shape)).ToList();
        log.WriteLine($"Scenario {id}: {title} [{shape}, capacity {options.Capacity}]");
        var runs = peers.ToDictionary(p => p, _ => new List<RunResult>());
        for (var round = 0; round < options.Rounds; round++)
        {
            foreach (var peer in Order(peers, round))
            {
                var n = messages(peer);
                var spec = new RunSpec(shape, options.Capacity, n, work, rate?.Invoke(peer) ?? 0, liveHeapSamples);
                var result = await Measurement.RunAsync(peer, spec, round, Timeout(n, work));
                runs[peer].Add(result);
                log.WriteLine(result.Completed
                    ? $"  round {round + 1}: {peer.Name,-28} {result.MessagesPerSecond,14:N0} msgs/s {result.BytesPerMessage,9:N1} B/msg {result.PeakMegabytes,8:N1} MB peak {result.PeakLiveMegabytes,8:N1} MB live {result.Collections,4} GCs {result.GcPauseMilliseconds,6:N1} ms GC {result.CpuUtilization,5:N2} cores {result.JitMilliseconds,4:N0} ms JIT" +
                      (result.Latency is { } l ? $"  p50 {l.P50:N0} us  p99 {l.P99:N0} us  p99.9 {l.P999:N0} us" : "") +
                      (result.Stalls is { } st ? $"  (platform stalls p99.9 {st.P999:N0} us, max {st.Max:N0} us)" : "") +
                      (result.BacklogMilliseconds is { } b ? $"  backlog max {b:N1} ms{(result.FellBehind ? ": fell behind the pace" : "")}" : "")
                    : $"  round {round + 1}: {peer.Name,-28} FAILED: {result.Error}");
            }
        }
        var summaries = peers.Select(p => Summarize(p, messages(p), rate?.Invoke(p) ?? 0, runs[p])).ToList();
        return new ScenarioResult(id, title, shape.ToString(), options.Capacity, work == TimeSpan.Zero ? "none" : $"{work.TotalMicroseconds:0} us spin per message", summaries, reference);
    }

    // Rotates the start each round and reverses every other round, so no peer always runs first or after the same one.
    private static IEnumerable<Peer> Order(List<Peer> peers, int round)
    {
        var rotated = peers.Skip(round % peers.Count).Concat(peers.Take(round % peers.Count));
        return round % 2 == 1 ? rotated.Reverse() : rotated;
    }

    private static PeerSummary Summarize(Peer peer, long messages, double rate, List<RunResult> runs)
    {
        var ok = runs.Where(r => r.Completed).ToList();
        var latency = MedianLatency(ok.Select(r => r.Latency).ToList());
        var stalls = MedianLatency(ok.Select(r => r.Stalls).ToList());
        return new PeerSummary(peer.Name, peer.Description, messages, rate,
            Median(ok.Select(r => r.MessagesPerSecond)), ok.Count > 0 ? ok.Min(r => r.MessagesPerSecond) : 0,
            ok.Count > 0 ? ok.Max(r => r.MessagesPerSecond) : 0, Median(ok.Select(r => r.BytesPerMessage)),
            Median(ok.Select(r => r.PeakMegabytes)), Median(ok.Select(r => r.PeakLiveMegabytes)), Median(ok.Select(r => r.GcPauseMilliseconds)),
            latency, stalls, runs.Count - ok.Count, runs,
            ok.Any(r => r.BacklogMilliseconds is not null) ? ok.Max(r => r.BacklogMilliseconds ?? 0) : null, ok.Count(r => r.FellBehind));
    }

    // Each percentile's median over the rounds, and the highest maximum.
    private static Latency? MedianLatency(List<Latency?> rounds) => rounds.Count == 0 || rounds.Any(l => l is null)
        ? null
        : new Latency(Median(rounds.Select(l => l!.P50)), Median(rounds.Select(l => l!.P99)), Median(rounds.Select(l => l!.P999)), rounds.Max(l => l!.Max));

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0) return 0;
        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    private static TimeSpan Timeout(long messages, TimeSpan work) =>
        TimeSpan.FromSeconds(30 + messages / 50_000.0 + messages * work.TotalSeconds * 3);

    public static string Count(long n) => n switch
    {
        >= 1_000_000 when n % 1_000_000 == 0 => $"{n / 1_000_000}M",
        >= 1_000 when n % 1_000 == 0 => $"{n / 1_000}k",
        _ => n.ToString("N0"),
    };
}
