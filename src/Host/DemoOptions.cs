using System.Globalization;

namespace ActorQueue.Host;

/// <summary>What the demo run does; every value can be set on the command line.</summary>
public sealed record DemoOptions
{
    /// <summary>Producers, each sending bursts faster than the consumers can keep up with.</summary>
    public int Producers { get; init; } = 3;

    /// <summary>Consumers competing for the work.</summary>
    public int Consumers { get; init; } = 4;

    /// <summary>Most messages to produce; 0 for no limit other than <see cref="Duration"/>.</summary>
    public int Messages { get; init; }

    /// <summary>How long the producers produce; then the demo waits for the queue to empty.</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Queue capacity.</summary>
    public int Capacity { get; init; } = 500;

    /// <summary>The queue's full mode.</summary>
    public FullMode FullMode { get; init; } = FullMode.Wait;

    /// <summary>Fraction of handler calls that throw (retried with backoff).</summary>
    public double FailureRate { get; init; } = 0.02;

    /// <summary>Consumer crashes injected per second (a Kill to a running consumer).</summary>
    public double CrashRate { get; init; } = 0.15;

    /// <summary>Mean handler time; each call varies around it.</summary>
    public TimeSpan Latency { get; init; } = TimeSpan.FromMilliseconds(15);

    /// <summary>Whether to send one poison message, which fails every attempt and ends in the dead-letter store.</summary>
    public bool Poison { get; init; } = true;

    /// <summary>How long to wait, after producing stops, for everything accepted to be settled.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Whether the queue is durable: it journals what it accepts in a SQLite file under <see cref="DataDirectory"/>, and
    /// the demo keeps its ledger there too, so a run after a crash counts what came back.
    /// </summary>
    public bool Durable { get; init; }

    /// <summary>Where a durable run keeps the queue's journal and the demo's ledger.</summary>
    public string DataDirectory { get; init; } = "actor-queue-demo-data";

    /// <summary>Kills the demo's own process hard (no shutdown) this long after it starts; null for never.</summary>
    public TimeSpan? CrashAfter { get; init; }

    /// <summary>The options with their defaults, for --help.</summary>
    public static string Usage
    {
        get
        {
            var d = new DemoOptions();
            return string.Join(Environment.NewLine,
                "Usage: dotnet run --project src/Host -- [options]",
                $"  --producers N        producers sending bursts (default {d.Producers})",
                $"  --consumers N        competing consumers (default {d.Consumers})",
                $"  --messages N         stop after N messages, 0 = no limit (default {d.Messages})",
                $"  --duration SECONDS   how long to produce (default {d.Duration.TotalSeconds:0})",
                $"  --capacity N         queue capacity (default {d.Capacity})",
                $"  --full-mode MODE     wait | reject | drop-oldest | drop-newest (default {QueueSettings.ToHocon(d.FullMode)})",
                $"  --failure-rate F     fraction of handler calls that throw, 0 to <1 (default {d.FailureRate.ToString(CultureInfo.InvariantCulture)})",
                $"  --crash-rate R       consumer crashes injected per second (default {d.CrashRate.ToString(CultureInfo.InvariantCulture)})",
                $"  --latency MS         mean handler time in milliseconds (default {d.Latency.TotalMilliseconds:0})",
                $"  --no-poison          do not send the poison message",
                $"  --drain-timeout S    how long to wait for the queue to empty (default {d.DrainTimeout.TotalSeconds:0})",
                "  --durable            journal the queue in a SQLite file (and keep the demo's ledger beside it), so a run",
                "                       after a crash recovers what was accepted and counts it",
                $"  --data-dir DIR       where --durable keeps its files (default {d.DataDirectory})",
                "  --crash-after S      kill this process hard (no shutdown) after S seconds; run again with --durable to see",
                "                       nothing accepted was lost",
                "  --help               show this",
                "Akka and queue settings come from hocon/host.conf.");
        }
    }

    /// <summary>Parses the command line.</summary>
    /// <param name="args">The command-line arguments.</param>
    /// <exception cref="ArgumentException">An option is unknown or its value is not valid; the message names it.</exception>
    public static DemoOptions Parse(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var o = new DemoOptions();
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"Option {name} needs a value.");
            int Int(int min)
            {
                var raw = Value();
                return int.TryParse(raw, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= min
                    ? v : throw new ArgumentException($"Option {name} must be a whole number of at least {min}, not '{raw}'.");
            }
            double Number(double min, double max, string range)
            {
                var raw = Value();
                return double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v >= min && v < max
                    ? v : throw new ArgumentException($"Option {name} must be a number {range}, not '{raw}'.");
            }
            o = name switch
            {
                "--producers" => o with { Producers = Int(1) },
                "--consumers" => o with { Consumers = Int(1) },
                "--messages" => o with { Messages = Int(0) },
                "--duration" => o with { Duration = TimeSpan.FromSeconds(Number(0.1, 86_400, "of seconds above 0")) },
                "--capacity" => o with { Capacity = Int(1) },
                "--full-mode" => o with { FullMode = ParseFullMode(name, Value()) },
                "--failure-rate" => o with { FailureRate = Number(0, 1, "from 0 up to (not including) 1") },
                "--crash-rate" => o with { CrashRate = Number(0, 100, "of crashes per second, from 0 to 100") },
                "--latency" => o with { Latency = TimeSpan.FromMilliseconds(Number(0, 60_000, "of milliseconds from 0 to 60000")) },
                "--no-poison" => o with { Poison = false },
                "--drain-timeout" => o with { DrainTimeout = TimeSpan.FromSeconds(Number(0.1, 86_400, "of seconds above 0")) },
                "--durable" => o with { Durable = true },
                "--data-dir" => o with { DataDirectory = Value() is { Length: > 0 } dir ? dir : throw new ArgumentException($"Option {name} needs a directory.") },
                "--crash-after" => o with { CrashAfter = TimeSpan.FromSeconds(Number(0.1, 86_400, "of seconds above 0")) },
                _ => throw new ArgumentException($"Unknown option '{name}'. Run with --help to list the options."),
            };
        }
        return o;
    }

    private static FullMode ParseFullMode(string name, string raw)
    {
        foreach (var mode in Enum.GetValues<FullMode>())
            if (string.Equals(QueueSettings.ToHocon(mode), raw, StringComparison.OrdinalIgnoreCase)) return mode;
        throw new ArgumentException($"Option {name} must be one of wait, reject, drop-oldest, drop-newest, not '{raw}'.");
    }
}
