using ActorQueue.Hosting;
using ActorQueue.Protocol;
using Akka.Actor;
using Akka.Hosting;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;

namespace ActorQueue.Benchmarks.Peers;

/// <summary>The user-path scenarios' handler, typed as a user writes one: <see cref="IQueueHandler{T}"/> of the message.</summary>
internal sealed class WorkHandler(Probe probe) : IQueueHandler<Work>
{
    public Task HandleAsync(Work message, DeliveryContext context, CancellationToken cancellationToken)
    {
        probe.Handle(message);
        return Task.CompletedTask;
    }
}

/// <summary>How the user-path peers start ActorQueue consumers: directly, or through Akka.Hosting with a scoped handler.</summary>
internal static class UserPath
{
    /// <summary>One consumer of <paramref name="queueName"/> started through the extension, with one handler for every delivery.</summary>
    public static Task<IActorRef> StartConsumerAsync(ActorSystem system, string queueName, Probe probe, ConsumerSettings settings) =>
        system.ActorQueues().StartConsumerAsync<Work>(queueName, new WorkHandler(probe), settings);

    /// <summary>Registers the handler scoped, as a user would for <see cref="WithWorkConsumer"/>.</summary>
    public static IServiceCollection AddWorkHandler(this IServiceCollection services) => services.AddScoped<WorkHandler>();

    /// <summary>One consumer of <paramref name="queueName"/> that resolves the handler in a scope per delivery.</summary>
    public static AkkaConfigurationBuilder WithWorkConsumer(this AkkaConfigurationBuilder builder, string queueName) =>
        builder.WithQueueConsumer<WorkHandler, Work>(queueName);
}

/// <summary>The hand-rolled pattern's handler: what a BackgroundService resolves in a scope per message.</summary>
internal sealed class ChannelWorkHandler(Probe probe)
{
    public Task HandleAsync(Work message, CancellationToken cancellationToken)
    {
        probe.Handle(message);
        return Task.CompletedTask;
    }
}

/// <summary>MassTransit's consumer of the same message, resolved by MassTransit in a scope per message.</summary>
internal sealed class WorkConsumer(Probe probe) : IConsumer<Work>
{
    public Task Consume(ConsumeContext<Work> context)
    {
        probe.Handle(context.Message);
        return Task.CompletedTask;
    }
}
