namespace ActorQueue.Host;

/// <summary>What the demo run does; every value can be set on the command line.</summary>
public sealed record DemoOptions
{
    /// <summary>Messages produced in all.</summary>
    public int Messages { get; init; } = 20_000;

    /// <summary>Producers running at once.</summary>
    public int Producers { get; init; } = 3;

    /// <summary>Consumers competing for the work.</summary>
    public int Consumers { get; init; } = 4;

    /// <summary>Queue capacity.</summary>
    public int Capacity { get; init; } = 500;

    /// <summary>Fraction of handler calls that throw (and are retried with backoff).</summary>
    public double FailureRate { get; init; } = 0.02;

    /// <summary>Consumer crashes injected (a Kill to a running consumer) during the run.</summary>
    public int Crashes { get; init; } = 2;

    /// <summary>Longest the run may take before it gives up and reports what it has.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>The options with their defaults, for --help.</summary>
    public static string Usage
    {
        get
        {
            var d = new DemoOptions();
            return string.Join(Environment.NewLine,
                "Usage: dotnet run --project src/Host -- [options]",
                $"  --messages N        messages to produce (default {d.Messages})",
                $"  --producers N       producers (default {d.Producers})",
                $"  --consumers N       competing consumers (default {d.Consumers})",
                $"  --capacity N        queue capacity (default {d.Capacity})",
                $"  --failure-rate F    fraction of handler calls that throw, 0 to <1 (default {d.FailureRate.ToString(System.Globalization.CultureInfo.InvariantCulture)})",
                $"  --crashes N         consumers killed mid-delivery during the run (default {d.Crashes})",
                $"  --timeout SECONDS   give up after this long (default {d.Timeout.TotalSeconds:0})",
                "  --help              show this");
        }
    }

    /// <summary>Parses --messages N, --producers N, --consumers N, --capacity N, --failure-rate F, --crashes N, --timeout SECONDS.</summary>
    /// <param name="args">The command-line arguments.</param>
    /// <exception cref="ArgumentException">An option is unknown or its value is not valid.</exception>
    public static DemoOptions Parse(string[] args)
    {
        var o = new DemoOptions();
        for (var i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"Option {args[i]} needs a value.");
            int Int(int min)
            {
                var name = args[i];
                var raw = Value();
                return int.TryParse(raw, out var v) && v >= min ? v : throw new ArgumentException($"Option {name} must be a whole number of at least {min}, not '{raw}'.");
            }
            o = args[i] switch
            {
                "--messages" => o with { Messages = Int(1) },
                "--producers" => o with { Producers = Int(1) },
                "--consumers" => o with { Consumers = Int(1) },
                "--capacity" => o with { Capacity = Int(1) },
                "--crashes" => o with { Crashes = Int(0) },
                "--timeout" => o with { Timeout = TimeSpan.FromSeconds(Int(1)) },
                "--failure-rate" => o with { FailureRate = ParseRate(args[i], Value()) },
                _ => throw new ArgumentException($"Unknown option '{args[i]}'. Options: --messages, --producers, --consumers, --capacity, --failure-rate, --crashes, --timeout."),
            };
        }
        return o;
    }

    private static double ParseRate(string name, string raw) =>
        double.TryParse(raw, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v) && v is >= 0 and < 1
            ? v : throw new ArgumentException($"Option {name} must be a number from 0 up to (not including) 1, not '{raw}'.");
}
