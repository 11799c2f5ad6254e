using Akka.Configuration;

namespace ActorQueue;

/// <summary>A <see cref="ProducerActor"/>'s settings (HOCON <c>actor-queue.producer</c>).</summary>
public sealed record ProducerSettings
{
    private readonly int _bufferSize = 1000;
    private readonly TimeSpan _resendInterval = TimeSpan.FromSeconds(2);
    private readonly TimeSpan _reattachTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Messages held that the queue has not accepted yet; beyond it Produce is rejected. At least 1.</summary>
    public int BufferSize { get => _bufferSize; init => _bufferSize = QueueSettings.AtLeast<ProducerSettings>(value, 1); }

    /// <summary>How long to go without an answer from the queue, while messages wait, before re-registering and resending; positive.</summary>
    public TimeSpan ResendInterval { get => _resendInterval; init => _resendInterval = QueueSettings.Positive<ProducerSettings>(value); }

    /// <summary>
    /// How long a producer whose queue terminated keeps looking for a new queue at the same path before it closes
    /// (answering every Produce with QueueStopped); positive.
    /// </summary>
    public TimeSpan ReattachTimeout { get => _reattachTimeout; init => _reattachTimeout = QueueSettings.Positive<ProducerSettings>(value); }

    /// <summary>A client's buffer of calls, which the producer reads instead of being sent Produce (set by the client).</summary>
    internal Client.ClientFeed? Feed { get; init; }

    /// <summary>The settings in the embedded reference.conf.</summary>
    public static ProducerSettings Default { get; } = Create(ActorQueueConfig.Default());

    /// <summary>Reads <c>actor-queue.producer</c>; a bad value fails with its key named.</summary>
    /// <param name="config">A configuration with the <c>actor-queue</c> section (reference.conf is used beneath it).</param>
    /// <exception cref="ConfigurationException">A value is missing or invalid.</exception>
    public static ProducerSettings Create(Config config)
    {
        ArgumentNullException.ThrowIfNull(config);
        const string path = ActorQueueConfig.Root + ".producer";
        var r = new SettingsReader(ActorQueueConfig.WithDefaults(config).GetConfig(path), path);
        return new ProducerSettings
        {
            BufferSize = r.Int("buffer-size", 1),
            ResendInterval = r.Duration("resend-interval"),
            ReattachTimeout = r.Duration("reattach-timeout"),
        };
    }
}
