using ActorQueue.Client;
using Akka.Actor;
using Akka.Configuration;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace ActorQueue.Hosting;

/// <summary>ActorQueue for Akka.Hosting: queues, DI consumers and typed clients in a generic host.</summary>
public static class ActorQueueHostingExtensions
{
    /// <summary>Adds ActorQueue with one queue, configured by arguments (null keeps the HOCON value).</summary>
    /// <param name="builder">The Akka builder.</param>
    /// <param name="queueName">The queue to create at start-up.</param>
    /// <param name="capacity">Most messages the queue holds; null keeps actor-queue.queue.capacity (default 1000).</param>
    /// <param name="fullMode">What a plain enqueue meets when the queue is full; null keeps actor-queue.queue.full-mode (default wait).</param>
    /// <param name="maxAttempts">Deliveries of a message before a failing one is dead-lettered; null keeps actor-queue.queue.max-attempts (default 5).</param>
    /// <param name="ackTimeout">How long a delivery may go unsettled before it is redelivered; null keeps actor-queue.queue.ack-timeout (default 30 s).</param>
    public static AkkaConfigurationBuilder WithActorQueue(this AkkaConfigurationBuilder builder, string queueName,
        int? capacity = null, FullMode? fullMode = null, int? maxAttempts = null, TimeSpan? ackTimeout = null) =>
        builder.WithActorQueue(o => o.AddQueue(queueName, q =>
        {
            q.Capacity = capacity;
            q.FullMode = fullMode;
            q.MaxAttempts = maxAttempts;
            q.AckTimeout = ackTimeout;
        }));

    /// <summary>Adds ActorQueue, configured by a delegate.</summary>
    /// <param name="builder">The Akka builder.</param>
    /// <param name="configure">Sets the options and adds queues.</param>
    public static AkkaConfigurationBuilder WithActorQueue(this AkkaConfigurationBuilder builder, Action<ActorQueueOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        var options = new ActorQueueOptions();
        configure(options);
        return builder.WithActorQueue(options);
    }

    /// <summary>
    /// Adds ActorQueue: the options as HOCON in front of the configuration, reference.conf behind it; at start-up
    /// the guardian is registered under <see cref="QueueGuardian"/> and each queue is created (and registered under
    /// its registry key, if it has one). A bad setting fails start-up naming its HOCON key.
    /// </summary>
    /// <param name="builder">The Akka builder.</param>
    /// <param name="options">The options.</param>
    public static AkkaConfigurationBuilder WithActorQueue(this AkkaConfigurationBuilder builder, ActorQueueOptions options)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(options);
        var hocon = ConfigurationFactory.ParseString(options.ToHocon());
        Validate(hocon, options);
        builder.AddHocon(hocon, HoconAddMode.Prepend);
        builder.AddHocon(ActorQueueConfig.Default(), HoconAddMode.Append);
        builder.AddHocon(ConfigurationFactory.ParseString(options.ShutdownHocon()), HoconAddMode.Append);
        var queues = options.Queues.ToArray();
        return builder.WithActors(async (system, registry, _) =>
        {
            var extension = system.ActorQueues();
            registry.TryRegister<QueueGuardian>(extension.Guardian);
            foreach (var q in queues)
            {
                var queue = await extension.CreateQueueAsync(q.Name).ConfigureAwait(false);
                if (q.RegistryKey is not null) registry.TryRegister(q.RegistryKey, queue);
            }
        });
    }

    // A value set in code is checked where it is set, so a bad one fails once, as the host builds, with its key named
    // (the same message HOCON gets), instead of failing the actor system's start. Rules that tie two keys together
    // wait for start-up: the other key may come from the application's HOCON.
    private static void Validate(Config hocon, ActorQueueOptions options)
    {
        var config = ActorQueueConfig.WithDefaults(hocon);
        new SettingsReader(config.GetConfig(ActorQueueConfig.Root), ActorQueueConfig.Root).Duration("drain-timeout");
        ConsumerSettings.Create(config);
        foreach (var q in options.Queues)
        {
            try
            {
                QueueSettings.Create(config, q.Name);
            }
            catch (SettingConflictException)
            {
                // Checked at start-up, against the whole configuration.
            }
        }
    }

    /// <summary>
    /// Starts a consumer of <paramref name="queueName"/> whose handler is resolved from the service provider for each
    /// delivery, in a scope of its own (register <typeparamref name="THandler"/> as scoped or transient). Its
    /// cancellation token fires on handler timeout and when the consumer stops at shutdown.
    /// </summary>
    /// <typeparam name="THandler">The handler type.</typeparam>
    /// <param name="builder">The Akka builder.</param>
    /// <param name="queueName">The queue (created from HOCON if it does not exist yet).</param>
    /// <param name="concurrency">Handlers at once; null for actor-queue.consumer.concurrency.</param>
    /// <param name="prefetch">Deliveries asked for ahead; null for actor-queue.consumer.prefetch.</param>
    /// <param name="instances">How many consumers to start.</param>
    public static AkkaConfigurationBuilder WithQueueConsumer<THandler>(this AkkaConfigurationBuilder builder, string queueName,
        int? concurrency = null, int? prefetch = null, int instances = 1) where THandler : class, IQueueHandler =>
        WithScopedConsumer<THandler>(builder, queueName, concurrency, prefetch, instances, scopes => new ScopedHandler<THandler>(scopes));

    /// <summary>
    /// Starts a consumer of <paramref name="queueName"/> whose typed handler is resolved from the service provider for
    /// each message, in a scope of its own (register <typeparamref name="THandler"/> as scoped or transient). A delivery
    /// whose message is not a <typeparamref name="T"/> is dead-lettered at once ("expected T, got U"), never retried.
    /// </summary>
    /// <typeparam name="THandler">The handler type.</typeparam>
    /// <typeparam name="T">The message type.</typeparam>
    /// <param name="builder">The Akka builder.</param>
    /// <param name="queueName">The queue (created from HOCON if it does not exist yet).</param>
    /// <param name="concurrency">Handlers at once; null for actor-queue.consumer.concurrency.</param>
    /// <param name="prefetch">Deliveries asked for ahead; null for actor-queue.consumer.prefetch.</param>
    /// <param name="instances">How many consumers to start.</param>
    public static AkkaConfigurationBuilder WithQueueConsumer<THandler, T>(this AkkaConfigurationBuilder builder, string queueName,
        int? concurrency = null, int? prefetch = null, int instances = 1) where THandler : class, IQueueHandler<T> =>
        WithScopedConsumer<THandler>(builder, queueName, concurrency, prefetch, instances, scopes => new ScopedTypedHandler<THandler, T>(queueName, scopes));

    private static AkkaConfigurationBuilder WithScopedConsumer<THandler>(AkkaConfigurationBuilder builder, string queueName,
        int? concurrency, int? prefetch, int instances, Func<IServiceScopeFactory, IQueueHandler> handlerFor) where THandler : class
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(queueName);
        AtLeastOne(queueName, concurrency, nameof(concurrency));
        AtLeastOne(queueName, prefetch, nameof(prefetch));
        AtLeastOne(queueName, instances, nameof(instances));
        return builder.WithActors(async (system, _, resolver) =>
        {
            var extension = system.ActorQueues();
            await extension.CreateQueueAsync(queueName).ConfigureAwait(false);
            var defaults = ConsumerSettings.Create(system.Settings.Config);
            var settings = defaults with
            {
                Concurrency = concurrency ?? defaults.Concurrency,
                Prefetch = prefetch ?? defaults.Prefetch,
            };
            var scopes = resolver.GetService<IServiceScopeFactory>();
            // Fail start-up, not every delivery, when the handler is not registered. Disposed as deliveries' scopes are,
            // asynchronously: a scoped dependency may be IAsyncDisposable only.
            var probe = scopes.CreateAsyncScope();
            await using (probe.ConfigureAwait(false)) probe.ServiceProvider.GetRequiredService<THandler>();
            var handler = handlerFor(scopes);
            for (var i = 0; i < instances; i++)
                await extension.StartConsumerAsync(queueName, handler, settings).ConfigureAwait(false);
        });
    }

    private static void AtLeastOne(string queueName, int? value, string parameter)
    {
        if (value < 1)
            throw new ArgumentOutOfRangeException(parameter, value, $"Invalid WithQueueConsumer(\"{queueName}\", {parameter}: {value}): it must be at least 1.");
    }

    /// <summary>
    /// Registers an <see cref="IQueueClient{T}"/> of <paramref name="queueName"/>: keyed by the queue's name, and
    /// unkeyed for the first queue of <typeparamref name="T"/> registered.
    /// </summary>
    /// <typeparam name="T">The message type.</typeparam>
    /// <param name="services">The service collection.</param>
    /// <param name="queueName">The queue the client writes to.</param>
    /// <param name="options">Producer id, pending limit and timeouts; null for the defaults.</param>
    public static IServiceCollection AddQueueClient<T>(this IServiceCollection services, string queueName, QueueClientOptions? options = null)
        where T : notnull
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrEmpty(queueName);
        services.AddKeyedSingleton<IQueueClient<T>>(queueName, (sp, _) =>
            new QueueClient<T>(sp.GetRequiredService<ActorSystem>, queueName, options));
        services.TryAddSingleton(sp => sp.GetRequiredKeyedService<IQueueClient<T>>(queueName));
        return services;
    }

    /// <summary>
    /// Resolves a fresh typed handler in its own scope for each message; a message of the wrong type is refused before a
    /// scope is created. The scope is the only allocation it adds per message.
    /// </summary>
    private sealed class ScopedTypedHandler<THandler, T>(string queueName, IServiceScopeFactory scopes) : IQueueHandler where THandler : class, IQueueHandler<T>
    {
        public Task HandleAsync(Protocol.Delivery delivery, CancellationToken cancellationToken)
        {
            if (delivery.Message is not T message) return Task.FromException(TypedHandler<T>.Mismatch(delivery.Message));
            var scope = scopes.CreateAsyncScope();
            Task handled;
            try
            {
                handled = scope.ServiceProvider.GetRequiredService<THandler>()
                    .HandleAsync(message, new DeliveryContext(queueName, delivery.MessageId, delivery.DeliveryId, delivery.Attempt), cancellationToken);
            }
            catch (Exception e)
            {
                handled = Task.FromException(e);
            }
            return InScope.End(scope, handled);
        }
    }

    /// <summary>Resolves a fresh handler in its own scope for each delivery.</summary>
    private sealed class ScopedHandler<THandler>(IServiceScopeFactory scopes) : IQueueHandler where THandler : class, IQueueHandler
    {
        public Task HandleAsync(Protocol.Delivery delivery, CancellationToken cancellationToken)
        {
            var scope = scopes.CreateAsyncScope();
            Task handled;
            try
            {
                handled = scope.ServiceProvider.GetRequiredService<THandler>().HandleAsync(delivery, cancellationToken);
            }
            catch (Exception e)
            {
                handled = Task.FromException(e);
            }
            return InScope.End(scope, handled);
        }
    }

    /// <summary>How a handler run in a scope of its own ends: the scope is disposed once the handler's task has.</summary>
    private static class InScope
    {
        /// <summary>
        /// Disposes <paramref name="scope"/> once <paramref name="handled"/> has ended, and ends as it did (or as the
        /// disposal failed, if it did). A handler that completed at once, in a scope that disposes at once, costs no
        /// state machine: the handler's own task is returned.
        /// </summary>
        public static Task End(AsyncServiceScope scope, Task? handled)
        {
            handled ??= Task.FromException(new InvalidOperationException("The handler returned a null Task."));
            if (!handled.IsCompleted) return AfterHandler(scope, handled);
            ValueTask disposed;
            try
            {
                disposed = scope.DisposeAsync();
                if (disposed.IsCompletedSuccessfully)
                {
                    disposed.GetAwaiter().GetResult(); // consumed, as an await would, so a pooled source is released
                    return handled;
                }
            }
            catch (Exception e)
            {
                _ = handled.Exception; // observed: the disposal's failure is the one reported, as after an await
                return Task.FromException(e);
            }
            return AfterDisposal(disposed, handled);
        }

        private static async Task AfterHandler(AsyncServiceScope scope, Task handled)
        {
            try
            {
                await handled.ConfigureAwait(false);
            }
            finally
            {
                await scope.DisposeAsync().ConfigureAwait(false);
            }
        }

        private static async Task AfterDisposal(ValueTask disposed, Task handled)
        {
            await disposed.ConfigureAwait(false);
            await handled.ConfigureAwait(false);
        }
    }
}
