using System.Threading.Channels;
using ActorQueue.Client;
using ActorQueue.Hosting;
using Akka.Hosting;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace ActorQueue.Benchmarks.Peers;

/// <summary>
/// A generic host for one run: no logging providers, no configuration files (the defaults disabled), the run's
/// probe registered as a singleton for the handlers to take.
/// </summary>
internal static class BenchHost
{
    public static HostApplicationBuilder Builder(Probe probe)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddSingleton(probe);
        return builder;
    }

    /// <summary>Builds and starts the host, and starts the writers once it has.</summary>
    public static async Task<IPeerRun> StartAsync(HostApplicationBuilder builder, Func<IHost, Task<Writers>> writers)
    {
        var host = builder.Build();
        try
        {
            await host.StartAsync();
            return new Run(host, await writers(host));
        }
        catch
        {
            await StopAsync(host);
            throw;
        }
    }

    private static async Task StopAsync(IHost host)
    {
        await host.StopAsync();
        if (host is IAsyncDisposable d) await d.DisposeAsync();
        else host.Dispose();
    }

    private sealed class Run(IHost host, Writers writers) : IPeerRun
    {
        public void Emit(long count, long emittedAt) => writers.Emit(count, emittedAt);

        public async ValueTask DisposeAsync()
        {
            await writers.DisposeAsync();
            await StopAsync(host);
        }
    }
}

/// <summary>
/// ActorQueue through Akka.Hosting: <c>AddAkka</c> with <c>WithActorQueue</c> and <c>WithQueueConsumer&lt;THandler&gt;</c>
/// (the handler scoped, resolved in a scope per delivery), and writer tasks calling the <see cref="IQueueClient{T}"/>
/// that <c>AddQueueClient</c> registered.
/// </summary>
internal sealed class HostedClientPeer : Peer
{
    private const string QueueName = "user-path";

    public const string PeerName = "ActorQueue hosted";

    public override string Name => PeerName;

    public override string Description => "generic host: AddAkka + WithActorQueue + WithQueueConsumer<THandler> (scoped handler, a scope per delivery, " +
                                          "default consumer settings) + AddQueueClient<T>; writer tasks await EnqueueAsync on the resolved IQueueClient<T>";

    public override Task<IPeerRun> StartAsync(RunContext context)
    {
        var builder = BenchHost.Builder(context.Probe);
        builder.Services
            .AddWorkHandler()
            .AddQueueClient<Work>(QueueName)
            .AddAkka("user-path-hosted", akka => akka
                .AddHocon(BenchConfig, HoconAddMode.Prepend)
                .WithActorQueue(QueueName, capacity: context.Capacity)
                .WithWorkConsumer(QueueName));
        return BenchHost.StartAsync(builder, async host =>
        {
            var client = host.Services.GetRequiredService<IQueueClient<Work>>();
            await ClientPeer.WaitUntilReadyAsync(client, consumers: 1);
            return Writers.OneAtATime(context.Shape.Producers, (w, ct) => new ValueTask(client.EnqueueAsync(w, ct)));
        });
    }
}

/// <summary>
/// The hand-rolled pattern: a bounded Channel registered as a singleton, written by the writer tasks, and a
/// BackgroundService whose reader loops (one per consumer) create a DI scope per message and resolve a scoped handler.
/// </summary>
internal sealed class ChannelServicePeer : Peer
{
    public const string PeerName = "Channel + BackgroundService";

    public override string Name => PeerName;

    public override string Description => "generic host: bounded Channel<T> (FullMode.Wait, capacity as the queue's) singleton, writer tasks await WriteAsync; " +
                                          "a BackgroundService with one ReadAllAsync loop per consumer, a scope and a scoped handler per message";

    public override Task<IPeerRun> StartAsync(RunContext context)
    {
        var builder = BenchHost.Builder(context.Probe);
        builder.Services
            .AddSingleton(Channel.CreateBounded<Work>(new BoundedChannelOptions(context.Capacity) { FullMode = BoundedChannelFullMode.Wait }))
            .AddSingleton(new ChannelWorkService.Readers(context.Shape.Consumers))
            .AddScoped<ChannelWorkHandler>()
            .AddHostedService<ChannelWorkService>();
        return BenchHost.StartAsync(builder, host =>
        {
            var writer = host.Services.GetRequiredService<Channel<Work>>().Writer;
            return Task.FromResult(Writers.OneAtATime(context.Shape.Producers, writer.WriteAsync));
        });
    }

    /// <summary>Reads the channel until the host stops; each message is handled in a scope of its own.</summary>
    private sealed class ChannelWorkService(Channel<Work> channel, IServiceScopeFactory scopes, ChannelWorkService.Readers readers) : BackgroundService
    {
        /// <summary>How many reader loops the service runs.</summary>
        public sealed record Readers(int Count);

        protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
            Task.WhenAll(Enumerable.Range(0, readers.Count).Select(_ => Task.Run(() => ReadAsync(stoppingToken), stoppingToken)));

        private async Task ReadAsync(CancellationToken stoppingToken)
        {
            await foreach (var work in channel.Reader.ReadAllAsync(stoppingToken))
            {
                await using var scope = scopes.CreateAsyncScope();
                await scope.ServiceProvider.GetRequiredService<ChannelWorkHandler>().HandleAsync(work, stoppingToken);
            }
        }
    }
}

/// <summary>
/// MassTransit 8 on its in-memory transport: <c>AddMassTransit</c> with the consumer and <c>ConfigureEndpoints</c>,
/// writer tasks awaiting <c>Publish</c> on the bus (an <see cref="IPublishEndpoint"/>). No retry is configured, so a
/// consumer's exception would fault the message at once; the endpoint keeps MassTransit's default concurrency.
/// </summary>
internal sealed class MassTransitPeer : Peer
{
    public const string PeerName = "MassTransit in-memory";

    public override string Name => PeerName;

    public override string Description => "generic host: AddMassTransit + UsingInMemory + ConfigureEndpoints, no retry; writer tasks await " +
                                          "IPublishEndpoint.Publish -> IConsumer<T> (scoped, a scope per message)";

    public override Task<IPeerRun> StartAsync(RunContext context)
    {
        var builder = BenchHost.Builder(context.Probe);
        builder.Services
            .Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true)
            .AddMassTransit(x =>
            {
                x.AddConsumer<WorkConsumer>();
                x.UsingInMemory((registration, bus) => bus.ConfigureEndpoints(registration));
            });
        return BenchHost.StartAsync(builder, host =>
        {
            IPublishEndpoint publish = host.Services.GetRequiredService<IBus>();
            return Task.FromResult(Writers.OneAtATime(context.Shape.Producers, (w, ct) => new ValueTask(publish.Publish(w, ct))));
        });
    }
}
