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
    public double? LatencyRate { get; init; }
    public HashSet<int> Scenarios { get; init; } = [1, 2, 3, 4, 5, 6];
    public string? OutputDirectory { get; init; }

    public const string Usage = """
        ActorQueue benchmark harness: ActorQueue against its peers, same work, same process, alternating order.

        Usage: dotnet run -c Release --project bench/ActorQueue.Benchmarks -- [options]

          --quick            quick mode (under 3 minutes): N = 1M, slow consumers at 1M and 2M, growth to 1M
          --full             full mode (the default): slow consumers at 1M and 10M, growth to 10M
          --n <count>        messages per run in scenarios 1 and 2 (default 1000000)
          --rounds <k>       measured rounds per scenario, at least 1 (default 5)
          --warmup <k>       throwaway warm-up rounds per peer (default 8)
          --scenario <list>  which scenarios to run, e.g. 1,2,4 (default all; 4 needs 1 and runs it; 6 is durable)
          --latency-rate <r> pace every peer at r msgs/s in scenario 4, instead of half its own scenario-1 rate
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
                    };
                    break;
                case "--rounds": o = o with { Rounds = (int)PositiveLong(Next(), "--rounds") }; break;
                case "--warmup": o = o with { WarmupRounds = (int)NonNegativeLong(Next(), "--warmup") }; break;
                case "--scenario":
                    var picked = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                        .Select(s => int.TryParse(s, out var k) && k is >= 1 and <= 6 ? k : throw new ArgumentException($"--scenario takes numbers 1 to 6, not '{s}'."))
                        .ToHashSet();
                    if (picked.Contains(4)) picked.Add(1);
                    o = o with { Scenarios = picked };
                    break;
                case "--out": o = o with { OutputDirectory = Next() }; break;
                case "--recovery-n": o = o with { RecoveryMessages = PositiveLong(Next(), "--recovery-n") }; break;
                case "--latency-rate": o = o with { LatencyRate = PositiveLong(Next(), "--latency-rate") }; break;
                default: throw new ArgumentException($"Unknown option '{args[i]}'; see --help.");
            }
        }
        return o;
    }

    private static long PositiveLong(string s, string option) =>
        long.TryParse(s, out var v) && v > 0 ? v : throw new ArgumentException($"{option} takes a whole number above 0, not '{s}'.");

    private static long NonNegativeLong(string s, string option) =>
        long.TryParse(s, out var v) && v >= 0 ? v : throw new ArgumentException($"{option} takes a whole number of at least 0, not '{s}'.");
}
