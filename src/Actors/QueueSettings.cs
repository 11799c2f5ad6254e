using Akka.Actor;
using Akka.Configuration;

namespace ActorQueue;

/// <summary>
/// One queue's settings (HOCON <c>actor-queue.queue</c>, overridable per queue under <c>actor-queue.queues.NAME</c>).
/// Every property validates when set; <see cref="Create(Config, string?)"/> names the HOCON key of a bad value.
/// </summary>
public sealed record QueueSettings
{
    private readonly int _capacity = 1000;
    private readonly TimeSpan _fullWaitTimeout = TimeSpan.FromSeconds(5);
    private readonly TimeSpan _ackTimeout = TimeSpan.FromSeconds(30);
    private readonly int _maxAttempts = 5;
    private readonly TimeSpan _retryMinBackoff = TimeSpan.FromMilliseconds(100);
    private readonly TimeSpan _retryMaxBackoff = TimeSpan.FromSeconds(30);
    private readonly double _retryRandomFactor = 0.2;
    private readonly int _producerCredit = 1000;
    private readonly int _deadLetterCapacity = 10_000;
    private readonly TimeSpan _tickInterval = TimeSpan.FromMilliseconds(100);
    private readonly TimeSpan _creditLease = TimeSpan.FromSeconds(1);
    private readonly TimeSpan _producerRetention = TimeSpan.FromMinutes(10);

    /// <summary>Most messages held at once (ready + in flight + delayed), credit reserved included; at least 1.</summary>
    public int Capacity { get => _capacity; init => _capacity = AtLeast<QueueSettings>(value, 1); }

    /// <summary>What a full queue does with a message beyond credit or from a plain enqueue.</summary>
    public FullMode FullMode { get; init; } = FullMode.Wait;

    /// <summary>How long full mode wait parks a message before rejecting it; positive.</summary>
    public TimeSpan FullWaitTimeout { get => _fullWaitTimeout; init => _fullWaitTimeout = Positive<QueueSettings>(value); }

    /// <summary>How long a consumer may hold a delivery without settling it or reporting progress; positive.</summary>
    public TimeSpan AckTimeout { get => _ackTimeout; init => _ackTimeout = Positive<QueueSettings>(value); }

    /// <summary>Deliveries of one message before it is dead-lettered; at least 1.</summary>
    public int MaxAttempts { get => _maxAttempts; init => _maxAttempts = AtLeast<QueueSettings>(value, 1); }

    /// <summary>Backoff after a message's first failed attempt; doubles with each attempt. Not negative.</summary>
    public TimeSpan RetryMinBackoff { get => _retryMinBackoff; init => _retryMinBackoff = NotNegative<QueueSettings>(value); }

    /// <summary>Longest retry backoff; not negative.</summary>
    public TimeSpan RetryMaxBackoff { get => _retryMaxBackoff; init => _retryMaxBackoff = NotNegative<QueueSettings>(value); }

    /// <summary>Jitter: each backoff is spread by up to +/- this fraction (0 to 1).</summary>
    public double RetryRandomFactor
    {
        get => _retryRandomFactor;
        init => _retryRandomFactor = Fraction<QueueSettings>(value);
    }

    /// <summary>Most credit one producer holds at once; at least 1.</summary>
    public int ProducerCredit { get => _producerCredit; init => _producerCredit = AtLeast<QueueSettings>(value, 1); }

    /// <summary>Most dead letters kept; the oldest is evicted beyond it. At least 1.</summary>
    public int DeadLetterCapacity { get => _deadLetterCapacity; init => _deadLetterCapacity = AtLeast<QueueSettings>(value, 1); }

    /// <summary>Period of the single timer driving deadlines, retries and wait timeouts; positive.</summary>
    public TimeSpan TickInterval { get => _tickInterval; init => _tickInterval = Positive<QueueSettings>(value); }

    /// <summary>
    /// How long credit granted to a producer may go unused (no message sent, no credit asked for) before the queue takes
    /// it back for others; positive.
    /// </summary>
    public TimeSpan CreditLease { get => _creditLease; init => _creditLease = Positive<QueueSettings>(value); }

    /// <summary>
    /// How long the queue remembers a producer that has gone (its sequence numbers, which deduplicate its resends);
    /// positive. A producer that comes back later with the same id starts a new sequence.
    /// </summary>
    public TimeSpan ProducerRetention { get => _producerRetention; init => _producerRetention = Positive<QueueSettings>(value); }

    /// <summary>
    /// Whether the queue keeps what it accepts in a journal (ActorQueue.Persistence, configured under
    /// <c>actor-queue.durable</c>), so that nothing accepted is lost when the process dies. Off: held in memory only.
    /// </summary>
    public bool Durable { get; init; }

    /// <summary>The settings in the embedded reference.conf.</summary>
    public static QueueSettings Default { get; } = Create(ActorQueueConfig.Default());

    /// <summary>
    /// Reads a queue's settings from a configuration holding the <c>actor-queue</c> section: the defaults under
    /// <c>actor-queue.queue</c>, overridden by <c>actor-queue.queues.NAME</c> when <paramref name="queueName"/> is given.
    /// </summary>
    /// <param name="config">A configuration with the <c>actor-queue</c> section (reference.conf is used beneath it).</param>
    /// <param name="queueName">The queue whose overrides apply, or null for the defaults alone.</param>
    /// <exception cref="ConfigurationException">A value is missing or invalid; the message names the key and value.</exception>
    public static QueueSettings Create(Config config, string? queueName = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        var merged = ActorQueueConfig.WithDefaults(config);
        const string defaultsPath = ActorQueueConfig.Root + ".queue";
        var defaults = merged.GetConfig(defaultsPath);
        Config? overrides = null;
        string? overridePath = null;
        if (queueName is not null)
        {
            overridePath = $"{ActorQueueConfig.Root}.queues.\"{queueName}\"";
            overrides = merged.HasPath(overridePath) ? merged.GetConfig(overridePath) : null;
        }
        var r = new SettingsReader(overrides is null ? defaults : overrides.WithFallback(defaults), defaultsPath, overrides, overridePath);
        var minBackoff = r.Duration("retry.min-backoff", allowZero: true);
        var maxBackoff = r.Duration("retry.max-backoff", allowZero: true);
        if (maxBackoff < minBackoff)
            throw new SettingConflictException(r.Invalid("retry.max-backoff", maxBackoff.ToString(), $"it must not be below retry.min-backoff ({minBackoff})").Message);
        return new QueueSettings
        {
            Capacity = r.Int("capacity", 1),
            FullMode = ParseFullMode(r),
            FullWaitTimeout = r.Duration("full-wait-timeout"),
            AckTimeout = r.Duration("ack-timeout"),
            MaxAttempts = r.Int("max-attempts", 1),
            RetryMinBackoff = minBackoff,
            RetryMaxBackoff = maxBackoff,
            RetryRandomFactor = r.Double("retry.random-factor", 0, 1),
            ProducerCredit = r.Int("producer-credit", 1),
            DeadLetterCapacity = r.Int("dead-letter-capacity", 1),
            TickInterval = r.Duration("tick-interval"),
            CreditLease = r.Duration("credit-lease"),
            ProducerRetention = r.Duration("producer-retention"),
            Durable = r.Bool("durable"),
        };
    }

    /// <summary>Reads a queue's settings from the system's configuration (see <see cref="Create(Config, string?)"/>).</summary>
    /// <param name="system">The actor system whose configuration is read.</param>
    /// <param name="queueName">The queue whose overrides apply, or null for the defaults alone.</param>
    public static QueueSettings Create(ActorSystem system, string? queueName = null) => Create(ActorQueueConfig.For(system), queueName);

    /// <summary>The HOCON spelling of each full mode.</summary>
    public static string ToHocon(FullMode mode) => mode switch
    {
        FullMode.Wait => "wait",
        FullMode.Reject => "reject",
        FullMode.DropOldest => "drop-oldest",
        FullMode.DropNewest => "drop-newest",
        _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown full mode."),
    };

    private static FullMode ParseFullMode(SettingsReader r)
    {
        var raw = r.String("full-mode");
        foreach (var mode in Enum.GetValues<FullMode>())
            if (string.Equals(ToHocon(mode), raw, StringComparison.OrdinalIgnoreCase)) return mode;
        throw r.Invalid("full-mode", raw, "it must be one of wait, reject, drop-oldest, drop-newest");
    }

    // Errors from code name the type, the property (the caller, an init accessor) and the value, as HOCON errors name the key.
    internal static int AtLeast<TOwner>(int value, int min, [System.Runtime.CompilerServices.CallerMemberName] string property = "") =>
        value >= min ? value : throw Invalid<TOwner>(property, value, $"it must be at least {min}");

    internal static TimeSpan Positive<TOwner>(TimeSpan value, [System.Runtime.CompilerServices.CallerMemberName] string property = "") =>
        value > TimeSpan.Zero ? value : throw Invalid<TOwner>(property, value, "it must be positive");

    internal static TimeSpan NotNegative<TOwner>(TimeSpan value, [System.Runtime.CompilerServices.CallerMemberName] string property = "") =>
        value >= TimeSpan.Zero ? value : throw Invalid<TOwner>(property, value, "it must not be negative");

    internal static double Fraction<TOwner>(double value, [System.Runtime.CompilerServices.CallerMemberName] string property = "") =>
        value is >= 0 and <= 1 ? value : throw Invalid<TOwner>(property, value, "it must be between 0 and 1");

    internal static string NotEmpty<TOwner>(string value, [System.Runtime.CompilerServices.CallerMemberName] string property = "") =>
        string.IsNullOrWhiteSpace(value) ? throw new ArgumentException($"Invalid {typeof(TOwner).Name}.{property} = \"{value}\": it must not be empty.", property) : value;

    private static ArgumentOutOfRangeException Invalid<TOwner>(string property, object value, string rule) =>
        new(property, value, $"Invalid {typeof(TOwner).Name}.{property} = {value}: {rule}.");
}
