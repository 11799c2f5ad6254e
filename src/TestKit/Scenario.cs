using System.Runtime.CompilerServices;
using Akka.Configuration;

namespace ActorQueue.TestKit;

/// <summary>How a simulated producer hands its messages to the queue.</summary>
public enum ProducerKind
{
    /// <summary>Through a <see cref="ProducerActor"/> (credit, sequence numbers, resends): what actors use.</summary>
    Actor,

    /// <summary>Through an <see cref="Client.IQueueClient{T}"/>: what code outside actors uses.</summary>
    Client,

    /// <summary>Plain <see cref="Protocol.Enqueue"/> messages to the queue, so its full mode decides what happens when it is full.</summary>
    Plain,
}

/// <summary>The message a simulation sends: its id, the producer that sent it and its place in that producer's order.</summary>
/// <param name="Id">A stable id, unique in the run (<c>p{producer}-{seq}</c>).</param>
/// <param name="Producer">The producer's index.</param>
/// <param name="Seq">Its position in what that producer sent (0 first).</param>
/// <param name="Body">The payload of your own, if the scenario makes one (see <see cref="Scenario.WithPayload"/>).</param>
public sealed record SimMessage(string Id, int Producer, long Seq, object? Body = null);

/// <summary>What handlers do with a delivery, decided per message and attempt from the seed (so a replay does the same).</summary>
public sealed record HandlerBehavior
{
    /// <summary>Shortest time a handler takes, in virtual time.</summary>
    public TimeSpan MinLatency { get; init; } = TimeSpan.FromMilliseconds(1);

    /// <summary>Longest time a handler takes, in virtual time; each delivery takes a uniform pick in between.</summary>
    public TimeSpan MaxLatency { get; init; } = TimeSpan.FromMilliseconds(20);

    /// <summary>Share of deliveries (0 to 1) whose handler throws: nacked, retried with backoff.</summary>
    public double FailureRate { get; init; }

    /// <summary>Share of deliveries (0 to 1) whose handler hangs for <see cref="HangFor"/> (unless cancelled first).</summary>
    public double HangRate { get; init; }

    /// <summary>How long a hanging handler hangs, in virtual time.</summary>
    public TimeSpan HangFor { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Share of messages (0 to 1) that fail every attempt, so they end in the dead-letter store.</summary>
    public double PoisonRate { get; init; }

    /// <summary>Your own handler, run after the simulated latency for each delivery the simulation lets succeed; it gets the message's <see cref="SimMessage.Body"/> (or the <see cref="SimMessage"/> when there is none).</summary>
    public IQueueHandler? Inner { get; init; }
}

/// <summary>A fault injected into a running simulation.</summary>
public abstract record Fault
{
    private Fault() { }

    /// <summary>Kills consumer <paramref name="Consumer"/>; its supervisor starts it again after a backoff, and the queue redelivers what it held.</summary>
    /// <param name="Consumer">The consumer's index.</param>
    public sealed record KillConsumer(int Consumer) : Fault;

    /// <summary>
    /// Kills producer <paramref name="Producer"/> (an <see cref="ProducerKind.Actor"/> producer); a new one under the same id
    /// starts a second later and sends again what had no answer, as a caller retrying would.
    /// </summary>
    /// <param name="Producer">The producer's index.</param>
    public sealed record KillProducer(int Producer) : Fault;

    /// <summary>
    /// Holds back everything consumer <paramref name="Consumer"/> sends its queue (acks, progress, pulls) for
    /// <paramref name="For"/>, as a frozen process or a partition would: past the ack timeout its deliveries are redelivered.
    /// </summary>
    /// <param name="Consumer">The consumer's index.</param>
    /// <param name="For">How long, in virtual time.</param>
    public sealed record PauseConsumer(int Consumer, TimeSpan For) : Fault;

    /// <summary>Crashes a durable queue, which recovers from its journal in place (durable queues only).</summary>
    public sealed record CrashQueue : Fault;
}

/// <summary>A fault and the virtual time, from the start of the run, at which it strikes.</summary>
/// <param name="At">When.</param>
/// <param name="Fault">What.</param>
public sealed record ScheduledFault(TimeSpan At, Fault Fault);

/// <summary>
/// A pipeline to simulate: a queue, producers, consumers, handler behaviour and faults over time, all decided by a seed.
/// Build one with <see cref="Create"/> and the <c>With...</c> methods, run it with <see cref="RunAsync"/>, and read the
/// run's <see cref="History"/> and <see cref="Verdict"/>. Time is virtual (Akka.TestKit's TestScheduler drives the queue's
/// clock, every timer and every simulated handler), so minutes of deadlines and backoff take seconds.
/// </summary>
public sealed record Scenario
{
    /// <summary>The environment variable that replays one seed: every seeded test runs that seed alone.</summary>
    public const string SeedVariable = "ACTORQUEUE_SEED";

    /// <summary>The environment variable that turns on soak mode: <see cref="Seeds"/> gives this many times more seeds.</summary>
    public const string SoakVariable = "ACTORQUEUE_SOAK";

    private Scenario(string name, int seed, string replay)
    {
        Name = name;
        Seed = seed;
        Replay = replay;
    }

    /// <summary>The scenario's name (also the queue's).</summary>
    public string Name { get; }

    /// <summary>The seed every random choice of the run is drawn from.</summary>
    public int Seed { get; }

    /// <summary>The command that runs this scenario's test again with the same seed.</summary>
    public string Replay { get; }

    /// <summary>The queue's settings; defaults to capacity 100 and a 30 s ack timeout.</summary>
    public QueueSettings Queue { get; init; } = new() { Capacity = 100, MaxAttempts = 5 };

    /// <summary>How many producers send, how many messages each, and how.</summary>
    public (int Count, int Messages, double PerSecond, int Burst, ProducerKind Via) Producers { get; init; } = (2, 100, 200, 10, ProducerKind.Actor);

    /// <summary>How many consumers run, with what prefetch and concurrency.</summary>
    public (int Count, int Prefetch, int Concurrency) Consumers { get; init; } = (2, 8, 2);

    /// <summary>What handlers do.</summary>
    public HandlerBehavior Handler { get; init; } = new();

    /// <summary>The faults and when they strike.</summary>
    public IReadOnlyList<ScheduledFault> Faults { get; init; } = [];

    /// <summary>How far virtual time moves in one step of the run while work is moving (it moves further while nothing happens).</summary>
    public TimeSpan Step { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Most virtual time a run may take; a run that has not drained by then ends with what is left reported as not drained.</summary>
    public TimeSpan Limit { get; init; } = TimeSpan.FromHours(1);

    /// <summary>HOCON laid over the simulation's own (e.g. a durable store's settings).</summary>
    public string Hocon { get; init; } = "";

    /// <summary>Makes the payload of each message (producer, seq) for your handler; null sends none.</summary>
    public Func<int, long, object>? Payload { get; init; }

    /// <summary>
    /// Decides, for each message a consumer sends its queue, whether it arrives (true) or is lost (false): a lossy
    /// link, or a deliberately broken pipeline to show that the checker notices. Null lets everything through.
    /// </summary>
    public Func<object, bool>? ConsumerLink { get; init; }

    /// <summary>
    /// A scenario with the defaults: 2 actor producers of 100 messages, a queue of capacity 100, 2 consumers, handlers
    /// taking 1-20 ms, no failures, no faults. Tests that run many seeds take them from <see cref="Seeds"/> or <see cref="SeedBlocks"/>, which honour ACTORQUEUE_SEED.
    /// </summary>
    /// <param name="name">The scenario's name (also its queue's).</param>
    /// <param name="seed">The seed to use.</param>
    /// <param name="test">The calling test, for the replay command (filled in by the compiler).</param>
    public static Scenario Create(string name, int seed, [CallerMemberName] string test = "")
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return new Scenario(name, seed, $"{SeedVariable}={seed} dotnet test --filter \"FullyQualifiedName~{test}\"");
    }

    /// <summary>
    /// The seeds a seeded test runs: <paramref name="count"/> of them from <paramref name="first"/>, or only the one
    /// ACTORQUEUE_SEED names (to replay a failure), or, with ACTORQUEUE_SOAK=N, N times as many.
    /// </summary>
    /// <param name="count">Seeds in a normal run.</param>
    /// <param name="first">The first seed.</param>
    public static IEnumerable<int> Seeds(int count, int first = 1)
    {
        if (int.TryParse(Environment.GetEnvironmentVariable(SeedVariable), out var only))
        {
            yield return only;
            yield break;
        }
        for (var i = 0; i < count * SoakFactor; i++) yield return first + i;
    }

    /// <summary>
    /// The seeds of a seeded test split into blocks of <paramref name="blockSize"/>, one test case each (xunit's
    /// <c>MemberData</c>), so that a soak run reports as it goes and no single case runs for long: <paramref name="count"/>
    /// seeds in a normal run, ACTORQUEUE_SOAK=N times as many in a soak, only the one ACTORQUEUE_SEED names when it is set.
    /// </summary>
    /// <param name="count">Seeds in a normal run.</param>
    /// <param name="blockSize">Seeds per block.</param>
    public static IEnumerable<int[]> SeedBlocks(int count, int blockSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        return Seeds(count).Chunk(blockSize);
    }

    private static int SoakFactor => int.TryParse(Environment.GetEnvironmentVariable(SoakVariable), out var n) && n > 1 ? n : 1;

    /// <summary>A scenario whose shape (capacity, full mode, producers, consumers, handler failures and faults) is drawn from its seed.</summary>
    /// <param name="name">The scenario's name.</param>
    /// <param name="seed">The seed the shape and the run are drawn from.</param>
    /// <param name="maxMessages">Most messages each producer sends (at least a tenth of it, and at least 1); smaller runs are quicker, so more seeds fit.</param>
    /// <param name="test">The calling test, for the replay command (filled in by the compiler).</param>
    public static Scenario Random(string name, int seed, int maxMessages = 200, [CallerMemberName] string test = "")
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxMessages, 1);
        var r = new SimRandom(seed);
        var via = (ProducerKind)r.Next(3);
        var producers = 1 + r.Next(3);
        var consumers = 1 + r.Next(3);
        var least = Math.Max(1, maxMessages / 10);
        var messages = least + r.Next(Math.Max(1, maxMessages - least));
        var perSecond = 50 + r.Next(500);
        var scenario = Create(name, seed, test) with
        {
            Queue = new QueueSettings
            {
                Capacity = new[] { 3, 10, 50, 200 }[r.Next(4)],
                FullMode = via == ProducerKind.Plain ? (FullMode)r.Next(4) : FullMode.Wait,
                AckTimeout = TimeSpan.FromSeconds(5 + r.Next(30)),
                MaxAttempts = 2 + r.Next(5),
                RetryMaxBackoff = TimeSpan.FromSeconds(1 + r.Next(5)),
            },
            Producers = (producers, messages, perSecond, 1 + r.Next(20), via),
            Consumers = (consumers, 1 + r.Next(16), 1 + r.Next(4)),
            Handler = new HandlerBehavior
            {
                MaxLatency = TimeSpan.FromMilliseconds(1 + r.Next(100)),
                FailureRate = r.Next(3) == 0 ? 0 : r.NextDouble() * 0.2,
                HangRate = r.Next(4) == 0 ? r.NextDouble() * 0.02 : 0,
                HangFor = TimeSpan.FromSeconds(10 + r.Next(50)),
                PoisonRate = r.Next(4) == 0 ? r.NextDouble() * 0.02 : 0,
            },
        };
        var span = TimeSpan.FromSeconds(messages / (double)perSecond);
        var faults = new List<ScheduledFault>();
        for (var i = r.Next(4); i > 0; i--)
        {
            var at = span * r.NextDouble() * 1.2;
            Fault fault = r.Next(3) switch
            {
                0 => new Fault.KillConsumer(r.Next(consumers)),
                1 when via == ProducerKind.Actor => new Fault.KillProducer(r.Next(producers)),
                _ => new Fault.PauseConsumer(r.Next(consumers), scenario.Queue.AckTimeout * (0.5 + r.NextDouble())),
            };
            faults.Add(new ScheduledFault(at, fault));
        }
        return scenario with { Faults = faults };
    }

    /// <summary>Sets the queue's settings.</summary>
    /// <param name="configure">Returns the settings to use from the current ones, e.g. <c>q =&gt; q with { Capacity = 10 }</c>.</param>
    public Scenario WithQueue(Func<QueueSettings, QueueSettings> configure) => this with { Queue = configure(Queue) };

    /// <summary>Sets the producers.</summary>
    /// <param name="count">How many.</param>
    /// <param name="messages">Messages each sends.</param>
    /// <param name="perSecond">Each producer's rate, in messages per virtual second.</param>
    /// <param name="burst">Most messages a producer sends at once (each burst is a pick from 1 to this).</param>
    /// <param name="via">How they reach the queue.</param>
    public Scenario WithProducers(int count, int messages, double perSecond = 200, int burst = 10, ProducerKind via = ProducerKind.Actor)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(messages);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(perSecond);
        ArgumentOutOfRangeException.ThrowIfLessThan(burst, 1);
        return this with { Producers = (count, messages, perSecond, burst, via) };
    }

    /// <summary>Sets the consumers.</summary>
    /// <param name="count">How many.</param>
    /// <param name="prefetch">Deliveries each asks for ahead.</param>
    /// <param name="concurrency">Handlers each runs at once.</param>
    public Scenario WithConsumers(int count, int prefetch = 8, int concurrency = 2)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(prefetch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(concurrency, 1);
        return this with { Consumers = (count, prefetch, concurrency) };
    }

    /// <summary>Sets what handlers do.</summary>
    /// <param name="configure">Returns the behaviour from the current one, e.g. <c>h =&gt; h with { FailureRate = 0.1 }</c>.</param>
    public Scenario WithHandler(Func<HandlerBehavior, HandlerBehavior> configure) => this with { Handler = configure(Handler) };

    /// <summary>Adds a fault that strikes at <paramref name="at"/> (virtual time from the start).</summary>
    /// <param name="at">When.</param>
    /// <param name="fault">What.</param>
    public Scenario WithFault(TimeSpan at, Fault fault) => this with { Faults = [.. Faults, new ScheduledFault(at, fault)] };

    /// <summary>Makes each message's payload for your handler.</summary>
    /// <param name="payload">From the producer's index and the message's place in its order.</param>
    public Scenario WithPayload(Func<int, long, object> payload) => this with { Payload = payload };

    /// <summary>Lays HOCON over the simulation's own configuration.</summary>
    /// <param name="hocon">The HOCON, e.g. a durable store's settings.</param>
    public Scenario WithHocon(string hocon) => this with { Hocon = Hocon + "\n" + hocon };

    /// <summary>Runs the scenario in an actor system of its own, on virtual time, and judges its history.</summary>
    /// <param name="cancellationToken">Stops the run early; what ran so far is judged.</param>
    public Task<ScenarioResult> RunAsync(CancellationToken cancellationToken = default) => new ScenarioRunner(this).RunAsync(cancellationToken);

    /// <summary>The scenario in one line, for failure messages.</summary>
    public string Describe() =>
        $"{Name} (seed {Seed}): capacity {Queue.Capacity} {QueueSettings.ToHocon(Queue.FullMode)}{(Queue.Durable ? " durable" : "")}, ack-timeout {Queue.AckTimeout.TotalSeconds:0.#}s, " +
        $"{Producers.Count} {Producers.Via} producers x {Producers.Messages} at {Producers.PerSecond:0}/s, {Consumers.Count} consumers (prefetch {Consumers.Prefetch}, " +
        $"concurrency {Consumers.Concurrency}), failures {Handler.FailureRate:P0}, hangs {Handler.HangRate:P1}, poison {Handler.PoisonRate:P1}, " +
        $"faults [{string.Join(", ", Faults.Select(f => $"{f.Fault.GetType().Name}@{f.At.TotalSeconds:0.#}s"))}]";

    internal Config Config() => ConfigurationFactory.ParseString(Hocon);
}

/// <summary>A small deterministic random source (SplitMix64), the same on every platform and run for a seed.</summary>
internal sealed class SimRandom(long seed)
{
    private ulong _state = (ulong)seed;

    public ulong NextULong()
    {
        var z = _state += 0x9E3779B97F4A7C15;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }

    public int Next(int max) => (int)(NextULong() % (ulong)max);

    public double NextDouble() => (NextULong() >> 11) * (1.0 / (1UL << 53));

    /// <summary>A number in [0, 1) fixed by the seed and the parts: the same question always gets the same answer.</summary>
    public static double Pick(int seed, string id, int attempt, int salt)
    {
        var h = 14695981039346656037UL;
        foreach (var c in id)
        {
            h ^= c;
            h *= 1099511628211UL;
        }
        var r = new SimRandom((long)(h ^ ((ulong)(uint)seed << 32) ^ ((ulong)(uint)attempt << 8) ^ (uint)salt));
        return r.NextDouble();
    }
}
