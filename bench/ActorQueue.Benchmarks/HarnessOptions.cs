namespace ActorQueue.Benchmarks;

/// <summary>Command-line options of the harness; the defaults are the full mode.</summary>
internal sealed record HarnessOptions
{
    public string Mode { get; init; } = "full";
    public long Messages { get; init; } = 1_000_000;
    public int Rounds { get; init; } = 5;
    public int WarmupRounds { get; init; } = 8;
    public long WarmupMessages { get; init; } = 100_000;
    public long DeliveryMessages { get; init; } = 1_000_000;
    public long[] SlowConsumerMessages { get; init; } = [1_000_000, 10_000_000];
    public long[] GrowthMessages { get; init; } = [100_000, 1_000_000, 10_000_000];
    public TimeSpan LatencyDuration { get; init; } = TimeSpan.FromSeconds(3);
    public TimeSpan SlowWork { get; init; } = TimeSpan.FromMicroseconds(1);
    public int Capacity { get; init; } = 1000;
    public long DurableMessages { get; init; } = 200_000;
    public long RecoveryMessages { get; init; } = 100_000;
    public long UserMessages { get; init; } = 3_000_000;
    public long MassTransitMessages { get; init; } = 100_000;
    public double? LatencyRate { get; init; }
    public HashSet<int> Scenarios { get; init; } = [1, 2, 3, 4, 5, 6, U1, U2, U3, U4];
    public string? OutputDirectory { get; init; }

    /// <summary>The user-path scenarios, numbered after the others: --scenario u1 is --scenario 7, and so on.</summary>
    public const int U1 = 7, U2 = 8, U3 = 9, U4 = 10;

    public const string Usage = """
        ActorQueue benchmark harness: ActorQueue against its peers, same work, same process, alternating order.

        Usage: dotnet run -c Release --project bench/ActorQueue.Benchmarks -- [options]

          --quick            quick mode (about 5 minutes on 2 cores, U1-U4 about 1.5 of them): N = 1M, slow consumers
                             at 1M and 2M, growth to 1M, MassTransit at 20k
          --full             full mode (the default): slow consumers at 1M and 10M, growth to 10M, user paths at 3M,
                             MassTransit at 100k
          --n <count>        messages per run in scenarios 1 and 2 (default 1000000)
          --user-n <count>   messages per run in scenarios U1-U3 (default 3000000, 1000000 in quick mode: a run of 1M
                             lasts a fifth of a second, which one stall of the machine can halve; MassTransit, at about 30k msgs/s,
                             gets a tenth of it, at most 100000)
          --rounds <k>       measured rounds per scenario, at least 1 (default 5)
          --warmup <k>       throwaway warm-up rounds per peer (default 8)
          --scenario <list>  which scenarios to run, e.g. 1,2,4 or u1,u3 (default all; 4 needs 1 and runs it, U4 needs U1;
                             6 is durable). U1-U4 may also be given as 7-10:
                               U1 (7)  8 writers await IQueueClient.EnqueueAsync -> queue (capacity 1,000) -> one consumer,
                                       default and tuned settings, against a bounded Channel (8 WriteAsync writers, 4 readers)
                               U2 (8)  the same with EnqueueManyAsync in batches of 100
                               U3 (9)  the hosting path (AddAkka + WithActorQueue + WithQueueConsumer, AddQueueClient)
                                       against Channel + BackgroundService and MassTransit's in-memory transport
                               U4 (10) latency EnqueueAsync -> handler start, each peer at half its own U1 rate
          --latency-rate <r> pace every peer at r msgs/s in scenarios 4 and U4, instead of half its own rate
          --recovery-n <n>   messages a durable queue holds when its recovery is timed in scenario 6 (default 100000)
          --out <dir>        where to write results.json and throughput.png (default bench/results)
          --bdn [args]       run the BenchmarkDotNet micro-benchmarks instead (args go to BenchmarkDotNet)
          --help             this text
        """;

    public static HarnessOptions Parse(string[] args)
    {
        var o = new HarnessOptions();
        if (args.Contains("--quick"))
        {
            o = o with
            {
                Mode = "quick",
                DeliveryMessages = 200_000,
                SlowConsumerMessages = [1_000_000, 2_000_000],
                GrowthMessages = [100_000, 1_000_000],
                LatencyDuration = TimeSpan.FromSeconds(1),
                DurableMessages = 50_000,
                RecoveryMessages = 100_000,
                UserMessages = 1_000_000,
                MassTransitMessages = 20_000,
            };
        }
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            switch (args[i])
            {
                case "--quick" or "--full": break;
                case "--n":
                    var n = PositiveLong(Next(), "--n");
                    o = o with
                    {
                        Messages = n,
                        DeliveryMessages = Math.Min(o.DeliveryMessages, n),
                        WarmupMessages = Math.Min(o.WarmupMessages, n),
                        SlowConsumerMessages = [Math.Max(1, n / 10), n],
                        GrowthMessages = [Math.Max(1, n / 10), n],
                        DurableMessages = Math.Min(o.DurableMessages, n),
                        RecoveryMessages = Math.Min(o.RecoveryMessages, n),
                        UserMessages = Math.Min(o.UserMessages, n),
                        MassTransitMessages = Math.Min(o.MassTransitMessages, n),
                    };
                    break;
                case "--rounds": o = o with { Rounds = (int)PositiveLong(Next(), "--rounds") }; break;
                case "--warmup": o = o with { WarmupRounds = (int)NonNegativeLong(Next(), "--warmup") }; break;
                case "--scenario":
                    var picked = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                        .Select(Scenario).ToHashSet();
                    if (picked.Contains(4)) picked.Add(1);
                    if (picked.Contains(U4)) picked.Add(U1);
                    o = o with { Scenarios = picked };
                    break;
                case "--user-n":
                    var u = PositiveLong(Next(), "--user-n");
                    o = o with { UserMessages = u, MassTransitMessages = Math.Min(100_000, Math.Max(1, u / 10)) };
                    break;
                case "--out": o = o with { OutputDirectory = Next() }; break;
                case "--recovery-n": o = o with { RecoveryMessages = PositiveLong(Next(), "--recovery-n") }; break;
                case "--latency-rate": o = o with { LatencyRate = PositiveLong(Next(), "--latency-rate") }; break;
                default: throw new ArgumentException($"Unknown option '{args[i]}'; see --help.");
            }
        }
        return o;
    }

    /// <summary>A scenario's number: 1 to 10, or U1 to U4 (any case) for 7 to 10.</summary>
    private static int Scenario(string s)
    {
        if (int.TryParse(s, out var k) && k is >= 1 and <= U4) return k;
        if (s.Length == 2 && char.ToUpperInvariant(s[0]) == 'U' && s[1] is >= '1' and <= '4') return U1 + s[1] - '1';
        throw new ArgumentException($"--scenario takes numbers 1 to 10 or U1 to U4, not '{s}'.");
    }

    /// <summary>How a scenario number is shown: 1 to 6 as they are, 7 to 10 as U1 to U4.</summary>
    public static string ScenarioName(int k) => k >= U1 ? $"U{k - U1 + 1}" : k.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static long PositiveLong(string s, string option) =>
        long.TryParse(s, out var v) && v > 0 ? v : throw new ArgumentException($"{option} takes a whole number above 0, not '{s}'.");

    private static long NonNegativeLong(string s, string option) =>
        long.TryParse(s, out var v) && v >= 0 ? v : throw new ArgumentException($"{option} takes a whole number of at least 0, not '{s}'.");
}
