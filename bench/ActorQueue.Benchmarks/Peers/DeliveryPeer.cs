using Akka.Actor;
using Akka.Delivery;
using Akka.Util;

namespace ActorQueue.Benchmarks.Peers;

/// <summary>
/// Akka.Delivery point-to-point reliable delivery: a producer actor behind a ProducerController sends one message
/// per RequestNext; the consumer confirms each Delivery to its ConsumerController.
/// </summary>
internal sealed class DeliveryPeer(bool durable = false) : Peer
{
    public override string Name => durable ? "Akka.Delivery durable" : "Akka.Delivery";

    public override string Description => durable
        ? "Akka.Delivery ProducerController with EventSourcedProducerQueue on Akka.Persistence.Sql (the same SQLite set-up) -> ConsumerController, each confirmed"
        : "Akka.Delivery ProducerController -> ConsumerController, one message per RequestNext, each confirmed";

    public override bool Supports(Shape shape) => shape is { Producers: 1, Consumers: 1 };

    public override async Task<IPeerRun> StartAsync(RunContext context)
    {
        ScratchStore? store = null;
        ActorSystem system;
        var durableQueue = Option<Props>.None;
        if (durable)
        {
            store = new ScratchStore();
            var options = new ActorQueue.Persistence.DurableQueueOptions { DataDirectory = store.Directory, FileName = "bench.db" };
            system = ActorSystem.Create("akka-delivery-durable", ActorQueue.Persistence.DurableQueueFactory.PluginConfig(options)
                .WithFallback(Akka.Configuration.ConfigurationFactory.ParseString("""
                    akka.loglevel = WARNING
                    akka.log-dead-letters = off
                    akka.coordinated-shutdown.run-by-clr-shutdown-hook = off
                    # Akka.Delivery's own serializer (it ships in Akka.Cluster): the default JSON one cannot write its events.
                    akka.actor {
                      serializers.reliable-delivery = "Akka.Cluster.Serialization.ReliableDeliverySerializer, Akka.Cluster"
                      serialization-bindings { "Akka.Delivery.Internal.IDeliverySerializable, Akka" = reliable-delivery }
                      serialization-identifiers { "Akka.Cluster.Serialization.ReliableDeliverySerializer, Akka.Cluster" = 36 }
                    }
                    """)));
            var settings = Akka.Persistence.Delivery.EventSourcedProducerQueue.Settings.Create(system) with
            {
                JournalPluginId = options.JournalPluginId,
                SnapshotPluginId = options.SnapshotPluginId,
            };
            durableQueue = Option<Props>.Create(Akka.Persistence.Delivery.EventSourcedProducerQueue.Create<Work>("bench-producer", settings));
        }
        else system = CreateSystem("akka-delivery");
        var consumer = system.ActorOf(Props.Create(() => new Consumer(context.Probe)), "consumer");
        var consumerController = system.ActorOf(ConsumerController.Create<Work>(system, Option<IActorRef>.None), "consumer-controller");
        consumerController.Tell(new ConsumerController.Start<Work>(consumer));
        var producer = system.ActorOf(Props.Create(() => new Producer()), "producer");
        var producerController = system.ActorOf(ProducerController.Create<Work>(system, "bench", durableQueue), "producer-controller");
        producerController.Tell(new ProducerController.Start<Work>(producer));
        consumerController.Tell(new ConsumerController.RegisterToProducerController<Work>(producerController));
        // Ready once the producer has been asked for its first message.
        await producer.Ask<bool>(Producer.IsReady.Instance, TimeSpan.FromSeconds(30));
        return store is null ? new ActorRun(system, [producer]) : new StoreRun(new ActorRun(system, [producer]), store);
    }

    private sealed class Producer : UntypedActor
    {
        private readonly EmitBacklog _backlog = new();
        private IActorRef? _sendNextTo;
        private IActorRef? _readyAsker;
        private long _seq;

        public sealed class IsReady
        {
            public static readonly IsReady Instance = new();
        }

        protected override void OnReceive(object message)
        {
            switch (message)
            {
                case ProducerController.RequestNext<Work> next:
                    _sendNextTo = next.SendNextTo;
                    _readyAsker?.Tell(true);
                    _readyAsker = null;
                    break;
                case Emit e: _backlog.Add(e); break;
                case IsReady:
                    if (_sendNextTo is null) _readyAsker = Sender;
                    else Sender.Tell(true);
                    return;
            }
            if (_sendNextTo is null || _backlog.Available == 0) return;
            _sendNextTo.Tell(new Work(++_seq, _backlog.Take()));
            _sendNextTo = null;
        }
    }

    private sealed class Consumer(Probe probe) : UntypedActor
    {
        protected override void OnReceive(object message)
        {
            if (message is not ConsumerController.Delivery<Work> d) return;
            probe.Handle(d.Message);
            d.ConfirmTo.Tell(ConsumerController.Confirmed.Instance);
        }
    }
}
