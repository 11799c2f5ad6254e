using System.Threading.Channels;
using Akka.Actor;
using Akka.Streams;
using Akka.Streams.Dsl;

namespace ActorQueue.Benchmarks.Peers;

/// <summary>
/// Akka.Streams Source.Queue with OverflowStrategy.Backpressure into Sink.ForEach; one producer awaiting each
/// OfferAsync in turn (a second concurrent offer would fail), so point-to-point only.
/// </summary>
internal sealed class StreamsQueuePeer : Peer
{
    public override string Name => "Source.Queue";

    public override string Description => "Akka.Streams Source.Queue(capacity, Backpressure) -> Sink.ForEach; OfferAsync awaited per message";

    public override bool Supports(Shape shape) => shape is { Producers: 1, Consumers: 1 };

    public override Task<IPeerRun> StartAsync(RunContext context)
    {
        var system = CreateSystem("streams-queue");
        var materializer = system.Materializer();
        var queue = Source.Queue<Work>(context.Capacity, OverflowStrategy.Backpressure)
            .To(Sink.ForEach<Work>(context.Probe.Handle))
            .Run(materializer);
        var emits = Channel.CreateUnbounded<Emit>(new UnboundedChannelOptions { SingleReader = true });
        var producer = Task.Run(() => ProduceAsync(emits.Reader, queue));
        return Task.FromResult<IPeerRun>(new Run(system, emits, queue, producer));
    }

    private static async Task ProduceAsync(ChannelReader<Emit> emits, ISourceQueueWithComplete<Work> queue)
    {
        long seq = 0;
        await foreach (var e in emits.ReadAllAsync())
        {
            for (var i = 0; i < e.Count; i++)
            {
                var result = await queue.OfferAsync(new Work(++seq, e.EmittedAt));
                if (result is not QueueOfferResult.Enqueued) throw new InvalidOperationException($"Source.Queue refused an offer: {result}");
            }
        }
    }

    private sealed class Run(ActorSystem system, Channel<Emit> emits, ISourceQueueWithComplete<Work> queue, Task producer) : IPeerRun
    {
        public void Emit(long count, long emittedAt) => emits.Writer.TryWrite(new Emit(count, emittedAt));

        public async ValueTask DisposeAsync()
        {
            emits.Writer.TryComplete();
            await producer;
            queue.Complete();
            await system.Terminate();
        }
    }
}
