using Akka.Actor;
using Akka.Configuration;

namespace ActorQueue;

/// <summary>ActorQueue's HOCON: the embedded reference.conf and how a system's config is merged over it.</summary>
public static class ActorQueueConfig
{
    /// <summary>The root path of every ActorQueue setting.</summary>
    public const string Root = "actor-queue";

    private static readonly Lazy<Config> Reference = new(() => ConfigurationFactory.FromResource<QueueSettings>("ActorQueue.reference.conf"));

    /// <summary>The embedded reference.conf: every setting with its default.</summary>
    public static Config Default() => Reference.Value;

    /// <summary>The system's configuration with ActorQueue's defaults beneath it.</summary>
    /// <param name="system">The actor system whose configuration is read.</param>
    public static Config For(ActorSystem system)
    {
        ArgumentNullException.ThrowIfNull(system);
        return WithDefaults(system.Settings.Config);
    }

    /// <summary><paramref name="config"/> with ActorQueue's defaults beneath it.</summary>
    /// <param name="config">Any configuration; the defaults themselves are returned as they are.</param>
    public static Config WithDefaults(Config config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return ReferenceEquals(config, Default()) ? config : config.WithFallback(Default());
    }
}
