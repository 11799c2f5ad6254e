using Akka.Configuration;
using Akka.Hosting;

namespace ActorQueue.Persistence.Hosting;

/// <summary>Durable ActorQueue queues for Akka.Hosting.</summary>
public static class DurableQueueHostingExtensions
{
    /// <summary>
    /// Sets up the journal of durable queues (those with <c>durable = on</c>, e.g. <c>QueueOptions.Durable = true</c>):
    /// <c>actor-queue.durable</c> from <paramref name="options"/>, the Akka.Persistence.Sql journal and snapshot-store
    /// plugins it names (SQLite file by default, or PostgreSQL), and the serializer of the journal's rows. Plugins of
    /// your own at the same plugin ids take precedence.
    /// </summary>
    /// <param name="builder">The Akka builder.</param>
    /// <param name="options">The store and snapshot settings; null for the defaults (a SQLite file in actor-queue-data).</param>
    public static AkkaConfigurationBuilder WithDurableActorQueues(this AkkaConfigurationBuilder builder, DurableQueueOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var o = options ?? new DurableQueueOptions();
        builder.AddHocon(ConfigurationFactory.ParseString(o.ToHocon()), HoconAddMode.Prepend);
        builder.AddHocon(DurableQueueFactory.PluginConfig(o), HoconAddMode.Append);
        builder.AddHocon(DurableQueueFactory.SerializationConfig, HoconAddMode.Append);
        return builder;
    }
}
