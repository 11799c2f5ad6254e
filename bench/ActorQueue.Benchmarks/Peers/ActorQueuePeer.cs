using ActorQueue.Protocol;
using Akka.Actor;

namespace ActorQueue.Benchmarks.Peers;

/// <summary>
/// ActorQueue itself: a QueueActor of the run's capacity, ConsumerActors running a handler that completes at once
/// (acks in batches), and producers that are either actors speaking the producer protocol (credit, sequence
/// numbers, acceptance) or user actors going through a <see cref="ProducerActor"/>.
/// </summary>
internal sealed class ActorQueuePeer(ActorQueuePeer.Producers producers, bool durable = false) : Peer
{
    public enum Producers
    {
        /// <summary>Producer actors speaking the producer protocol: send within credit, accepted cumulatively.</summary>
        Protocol,
        /// <summary>User actors sending Produce to a ProducerActor and awaiting each EnqueueAccepted, a window at a time.</summary>
        ProducerActor,
    }

    public override string Name => durable ? DurableName : producers == Producers.Protocol ? "ActorQueue" : "ActorQueue via ProducerActor";

    /// <summary>The name of the durable variant in tables and targets.</summary>
    public const string DurableName = "ActorQueue durable";

    public override string Description => (durable ? "durable (SQLite file, WAL; accepted after the write, acks journaled): " : "") + (producers == Producers.Protocol
        ? "QueueActor + ConsumerActors (acks); producer actors speak the producer protocol (credit ahead, batches, sequence numbers)"
        : "QueueActor + ConsumerActors (acks); user actors send Produce to a ProducerActor, a window of replies at a time");

    public override async Task<IPeerRun> StartAsync(RunContext context)
    {
        var system = CreateSystem("actor-queue");
        var settings = QueueSettings.Default with { Capacity = context.Capacity, ProducerCredit = context.Capacity };
        ScratchStore? store = null;
        IActorRef queue;
        if (durable)
        {
            store = new ScratchStore();
            var factory = new Persistence.DurableQueueFactory(system, new Persistence.DurableQueueOptions { DataDirectory = store.Directory, FileName = "bench.db" });
            queue = system.ActorOf(factory.QueueProps("bench", settings with { Durable = true }), "queue");
        }
        else queue = system.ActorOf(QueueActor.Props("bench", settings), "queue");
        var consumerSettings = ConsumerSettings.Default with { Prefetch = Math.Max(1, context.Capacity / 2) };
        var probe = context.Probe;
        var handler = QueueHandler.From((delivery, _) =>
        {
            probe.Handle((Work)delivery.Message);
            return Task.CompletedTask;
        });
        for (var i = 0; i < context.Shape.Consumers; i++)
            system.ActorOf(ConsumerActor.Props(queue, handler, consumerSettings), $"consumer-{i}");

        var actors = new IActorRef[context.Shape.Producers];
        for (var i = 0; i < actors.Length; i++)
        {
            var index = i;
            if (producers == Producers.Protocol)
            {
                actors[i] = system.ActorOf(Props.Create(() => new ProtocolProducer(queue, index)), $"producer-{i}");
            }
            else
            {
                var producerActor = system.ActorOf(ProducerActor.Props(queue, $"producer-{i}",
                    ProducerSettings.Default with { BufferSize = context.Capacity }), $"producer-actor-{i}");
                actors[i] = system.ActorOf(Props.Create(() => new ProduceDriver(producerActor, index, context.Capacity)), $"driver-{i}");
            }
        }
        await WaitUntilRegisteredAsync(queue, context.Shape);
        return store is null ? new ActorRun(system, actors) : new StoreRun(new ActorRun(system, actors), store);
    }

    private static async Task WaitUntilRegisteredAsync(IActorRef queue, Shape shape)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            var stats = await queue.Ask<QueueStats>(GetStats.Instance, TimeSpan.FromSeconds(5));
            if (stats.Consumers == shape.Consumers && stats.Producers == shape.Producers) return;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"The queue has {stats.Consumers} consumers and {stats.Producers} producers, not {shape}.");
            await Task.Delay(5);
        }
    }

    /// <summary>
    /// Speaks the producer protocol directly, as a dedicated high-rate producer would: it registers with the default
    /// demand, so the queue keeps its credit topped up ahead of need, and sends whatever credit allows as one batch.
    /// </summary>
    private sealed class ProtocolProducer(IActorRef queue, int index) : UntypedActor
    {
        private readonly string _id = $"producer-{index}";
        private readonly EmitBacklog _backlog = new();
        private long _seq;
        private long _credit;
        private bool _reclaimed;
        private readonly long _base = (long)index << Work.ProducerShift;

        protected override void PreStart() => queue.Tell(new RegisterProducer(_id));

        protected override void OnReceive(object message)
        {
            switch (message)
            {
                case Emit e:
                    _backlog.Add(e);
                    break;
                case ProducerCredit c:
                    // Credit only shrinks when the queue took back what went unused for credit-lease (a run waits for
                    // the JIT to settle before it emits); the queue then grants more only when asked again.
                    if (c.CreditSeqNr < _credit) _reclaimed = true;
                    _credit = c.CreditSeqNr;
                    break;
                case SequenceRejected r:
                    throw new InvalidOperationException($"The queue rejected message {r.SeqNr}: {r.Reason} {r.Detail}");
                default:
                    Unhandled(message);
                    return;
            }
            if (_reclaimed && _backlog.Available > 0)
            {
                // Asks as it registered: for as much as its fair window allows.
                _reclaimed = false;
                queue.Tell(new RequestCredit(_id, long.MaxValue));
            }
            // Everything the credit allows goes out as one batch, as ProducerActor does.
            var count = (int)Math.Min(_credit - _seq, _backlog.Available);
            if (count <= 0) return;
            var messages = new object[count];
            for (var i = 0; i < count; i++) messages[i] = new Work(_base + _seq + i + 1, _backlog.Take());
            queue.Tell(new SequencedBatch(_id, _seq + 1, messages));
            _seq += count;
        }
    }

    /// <summary>User code that produces through a ProducerActor, keeping at most a window of requests unanswered.</summary>
    private sealed class ProduceDriver(IActorRef producer, int index, int window) : UntypedActor
    {
        private readonly EmitBacklog _backlog = new();
        private readonly long _base = (long)index << Work.ProducerShift;
        private long _seq;
        private int _outstanding;

        protected override void OnReceive(object message)
        {
            switch (message)
            {
                case Emit e: _backlog.Add(e); break;
                case EnqueueAccepted: _outstanding--; break;
                case EnqueueRejected r: throw new InvalidOperationException($"The producer rejected {r.CorrelationId}: {r.Reason} {r.Detail}");
                default:
                    Unhandled(message);
                    return;
            }
            while (_outstanding < window && _backlog.Available > 0)
            {
                _seq++;
                _outstanding++;
                producer.Tell(new Produce(new Work(_base + _seq, _backlog.Take()), _seq));
            }
        }
    }
}
