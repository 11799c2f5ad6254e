using ActorQueue.Client;
using Akka.Actor;

namespace ActorQueue.Benchmarks.Peers;

/// <summary>
/// ActorQueue as user code meets it: a queue created with <c>CreateQueueAsync</c>, one consumer started with
/// <c>StartConsumerAsync</c>, and writer tasks calling a <see cref="QueueClient{T}"/>, awaiting each
/// <c>EnqueueAsync</c> or each <c>EnqueueManyAsync</c> of a batch.
/// </summary>
internal sealed class ClientPeer : Peer
{
    private const string QueueName = "user-path";
    private readonly int _batch;
    private readonly ConsumerSettings _consumer;
    private readonly string _settings;

    private readonly int _open;

    private ClientPeer(string name, int batch, ConsumerSettings consumer, string settings, int open = 1)
    {
        Name = name;
        _batch = batch;
        _consumer = consumer;
        _settings = settings;
        _open = open;
    }

    /// <summary>EnqueueAsync per message; the consumer with the default settings.</summary>
    public static ClientPeer Default() => new(DefaultName, 0, ConsumerSettings.Default, $"default consumer settings ({Describe(ConsumerSettings.Default)})");

    /// <summary>
    /// EnqueueAsync per message; the consumer's prefetch raised to half the queue's capacity (as the protocol peer of
    /// scenario 1 has it), so deliveries go out in large batches and acks come back in ranges; concurrency stays the
    /// default. While the client waits for one answer per message (8 writers, 8 messages in flight) the consumer is not
    /// what limits the rate, and prefetch 500, 100 or 32 with concurrency 1 or 4 measured alike; it counts once the
    /// client keeps more in flight.
    /// </summary>
    public static ClientPeer Tuned(int capacity)
    {
        var settings = ConsumerSettings.Default with { Prefetch = Math.Max(1, capacity / 2) };
        return new(TunedName, 0, settings, $"tuned consumer ({Describe(settings)})");
    }

    /// <summary>
    /// EnqueueAsync with <paramref name="open"/> calls open per writer (no target: it shows what the client moves once
    /// callers do not wait one round trip per message); the tuned consumer.
    /// </summary>
    public static ClientPeer Open(int capacity, int open)
    {
        var settings = ConsumerSettings.Default with { Prefetch = Math.Max(1, capacity / 2) };
        return new($"{DefaultName}, {open} open per writer", 0, settings, $"tuned consumer ({Describe(settings)})", open);
    }

    /// <summary>EnqueueManyAsync of <paramref name="batch"/> messages at a time, with the tuned consumer.</summary>
    public static ClientPeer BatchedTuned(int batch, int capacity)
    {
        var settings = ConsumerSettings.Default with { Prefetch = Math.Max(1, capacity / 2) };
        return new($"{DefaultName}, batches of {batch}, tuned", batch, settings, $"tuned consumer ({Describe(settings)})");
    }

    /// <summary>EnqueueManyAsync of <paramref name="batch"/> messages at a time; the consumer with the default settings.</summary>
    public static ClientPeer Batched(int batch) => new($"{DefaultName}, batches of {batch}", batch, ConsumerSettings.Default,
        $"default consumer settings ({Describe(ConsumerSettings.Default)})");

    private static string Describe(ConsumerSettings s) => $"prefetch {s.Prefetch}, concurrency {s.Concurrency}";

    /// <summary>The name of the default variant, the reference of its scenarios.</summary>
    public const string DefaultName = "ActorQueue client";

    /// <summary>The name of the tuned variant.</summary>
    public const string TunedName = "ActorQueue client, tuned";

    public override string Name { get; }

    public override string Description => $"QueueClient<T> from writer tasks ({(_batch > 0 ? $"EnqueueManyAsync of {_batch} awaited" : _open > 1 ? $"EnqueueAsync, {_open} open per writer" : "EnqueueAsync awaited")}) " +
                                          $"-> queue -> one consumer from StartConsumerAsync, {_settings}, handler completing at once";

    public override async Task<IPeerRun> StartAsync(RunContext context)
    {
        var system = CreateSystem("user-path");
        var queues = system.ActorQueues();
        await queues.CreateQueueAsync(QueueName, QueueSettings.Default with { Capacity = context.Capacity });
        await UserPath.StartConsumerAsync(system, QueueName, context.Probe, _consumer);
        var client = new QueueClient<Work>(system, QueueName);
        // Connects the client (its producer registers) before the clock starts, as every peer's set-up is untimed.
        await WaitUntilReadyAsync(client, consumers: 1);
        var writers = _batch > 0
            ? Writers.Batched(context.Shape.Producers, _batch, (batch, ct) => new ValueTask(client.EnqueueManyAsync(batch, ct)))
            : _open > 1
                ? Writers.Open(context.Shape.Producers, _open, (w, ct) => new ValueTask(client.EnqueueAsync(w, ct)))
                : Writers.OneAtATime(context.Shape.Producers, (w, ct) => new ValueTask(client.EnqueueAsync(w, ct)));
        return new Run(system, client, writers);
    }

    /// <summary>Waits until the client's producer and <paramref name="consumers"/> consumers are registered with the queue.</summary>
    public static async Task WaitUntilReadyAsync(IQueueClient<Work> client, int consumers)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            var stats = await client.GetStatsAsync();
            if (stats.Consumers == consumers && stats.Producers == 1) return;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"The queue has {stats.Consumers} consumers and {stats.Producers} producers, not {consumers} and 1.");
            await Task.Delay(5);
        }
    }

    private sealed class Run(ActorSystem system, QueueClient<Work> client, Writers writers) : IPeerRun
    {
        public void Emit(long count, long emittedAt) => writers.Emit(count, emittedAt);

        public async ValueTask DisposeAsync()
        {
            await writers.DisposeAsync();
            await client.DisposeAsync();
            await system.Terminate();
        }
    }
}
