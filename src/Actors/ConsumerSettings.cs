using Akka.Configuration;

namespace ActorQueue;

/// <summary>A <see cref="ConsumerActor"/>'s settings (HOCON <c>actor-queue.consumer</c>).</summary>
public sealed record ConsumerSettings
{
    private readonly int _prefetch = 32;
    private readonly int _concurrency = 4;
    private readonly TimeSpan _handlerTimeout = TimeSpan.FromSeconds(60);
    private readonly TimeSpan _restartMinBackoff = TimeSpan.FromMilliseconds(200);
    private readonly TimeSpan _restartMaxBackoff = TimeSpan.FromSeconds(10);
    private readonly double _restartRandomFactor = 0.2;
    private readonly TimeSpan _resyncInterval = TimeSpan.FromSeconds(2);
    private readonly TimeSpan _reattachTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Deliveries asked for ahead of the handlers; at least 1.</summary>
    public int Prefetch { get => _prefetch; init => _prefetch = QueueSettings.AtLeast<ConsumerSettings>(value, 1); }

    /// <summary>Handlers run at the same time; at least 1.</summary>
    public int Concurrency { get => _concurrency; init => _concurrency = QueueSettings.AtLeast<ConsumerSettings>(value, 1); }

    /// <summary>Longest a handler may run before it is cancelled and its delivery nacked; positive.</summary>
    public TimeSpan HandlerTimeout { get => _handlerTimeout; init => _handlerTimeout = QueueSettings.Positive<ConsumerSettings>(value); }

    /// <summary>Backoff before a crashed consumer starts again; positive.</summary>
    public TimeSpan RestartMinBackoff { get => _restartMinBackoff; init => _restartMinBackoff = QueueSettings.Positive<ConsumerSettings>(value); }

    /// <summary>Longest backoff before a crashed consumer starts again; positive.</summary>
    public TimeSpan RestartMaxBackoff { get => _restartMaxBackoff; init => _restartMaxBackoff = QueueSettings.Positive<ConsumerSettings>(value); }

    /// <summary>Jitter of the restart backoff (0 to 1).</summary>
    public double RestartRandomFactor
    {
        get => _restartRandomFactor;
        init => _restartRandomFactor = QueueSettings.Fraction<ConsumerSettings>(value);
    }

    /// <summary>
    /// How long a consumer goes without hearing from its queue (a delivery or its registration) before it sends its pull
    /// again, so that a lost message or a queue restarted in place costs a pause, never a stall; positive.
    /// </summary>
    public TimeSpan ResyncInterval { get => _resyncInterval; init => _resyncInterval = QueueSettings.Positive<ConsumerSettings>(value); }

    /// <summary>
    /// How long a consumer whose queue terminated keeps looking for a queue at the same path (with backoff) before it
    /// stops; positive. A queue that drained tells its consumers, and they stop at once.
    /// </summary>
    public TimeSpan ReattachTimeout { get => _reattachTimeout; init => _reattachTimeout = QueueSettings.Positive<ConsumerSettings>(value); }

    /// <summary>The settings in the embedded reference.conf.</summary>
    public static ConsumerSettings Default { get; } = Create(ActorQueueConfig.Default());

    /// <summary>Reads <c>actor-queue.consumer</c>; a bad value fails with its key named.</summary>
    /// <param name="config">A configuration with the <c>actor-queue</c> section (reference.conf is used beneath it).</param>
    /// <exception cref="ConfigurationException">A value is missing or invalid.</exception>
    public static ConsumerSettings Create(Config config)
    {
        ArgumentNullException.ThrowIfNull(config);
        const string path = ActorQueueConfig.Root + ".consumer";
        var r = new SettingsReader(ActorQueueConfig.WithDefaults(config).GetConfig(path), path);
        var minBackoff = r.Duration("restart.min-backoff");
        var maxBackoff = r.Duration("restart.max-backoff");
        if (maxBackoff < minBackoff)
            throw r.Invalid("restart.max-backoff", r.String("restart.max-backoff"), $"it must not be below restart.min-backoff ({r.String("restart.min-backoff")})");
        return new ConsumerSettings
        {
            Prefetch = r.Int("prefetch", 1),
            Concurrency = r.Int("concurrency", 1),
            HandlerTimeout = r.Duration("handler-timeout"),
            RestartMinBackoff = minBackoff,
            RestartMaxBackoff = maxBackoff,
            RestartRandomFactor = r.Double("restart.random-factor", 0, 1),
            ResyncInterval = r.Duration("resync-interval"),
            ReattachTimeout = r.Duration("reattach-timeout"),
        };
    }
}
