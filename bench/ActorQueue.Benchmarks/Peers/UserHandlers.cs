using ActorQueue.Hosting;
using ActorQueue.Protocol;
using Akka.Actor;
using Akka.Hosting;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;

namespace ActorQueue.Benchmarks.Peers;

/// <summary>
/// The user-path scenarios' handler, the one place that knows its interface: today's untyped
/// <see cref="IQueueHandler"/>. When the typed <c>IQueueHandler&lt;T&gt;</c> arrives, switch this class to
/// <c>HandleAsync(Work message, DeliveryContext context, CancellationToken ct)</c> and the two registrations in
/// <see cref="UserPath"/> to it (<c>WithQueueConsumer&lt;WorkHandler, Work&gt;</c>).
/// </summary>
internal sealed class WorkHandler(Probe probe) : IQueueHandler
{
    public Task HandleAsync(Delivery delivery, CancellationToken cancellationToken)
    {
        probe.Handle((Work)delivery.Message);
        return Task.CompletedTask;
    }
}

/// <summary>How the user-path peers start ActorQueue consumers: directly, or through Akka.Hosting with a scoped handler.</summary>
internal static class UserPath
{
    /// <summary>One consumer of <paramref name="queueName"/> started through the extension, with one handler for every delivery.</summary>
    public static Task<IActorRef> StartConsumerAsync(ActorSystem system, string queueName, Probe probe, ConsumerSettings settings) =>
        system.ActorQueues().StartConsumerAsync(queueName, new WorkHandler(probe), settings);

    /// <summary>Registers the handler scoped, as a user would for <see cref="WithWorkConsumer"/>.</summary>
    public static IServiceCollection AddWorkHandler(this IServiceCollection services) => services.AddScoped<WorkHandler>();

    /// <summary>One consumer of <paramref name="queueName"/> that resolves the handler in a scope per delivery.</summary>
    public static AkkaConfigurationBuilder WithWorkConsumer(this AkkaConfigurationBuilder builder, string queueName) =>
        builder.WithQueueConsumer<WorkHandler>(queueName);
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
