using Akka.Actor;

namespace ActorQueue.Benchmarks.Peers;

/// <summary>Plain Tell with no flow control: the producers send everything at once and mailboxes grow.</summary>
internal sealed class RawTellPeer : Peer
{
    public override string Name => "Raw Tell";

    public override string Description => "producer actors Tell each message to consumer actors, round-robin; no flow control";

    public override async Task<IPeerRun> StartAsync(RunContext context)
    {
        var system = CreateSystem("raw-tell");
        var consumers = Spawn(system, context.Shape.Consumers, "consumer", _ => Props.Create(() => new Consumer(context.Probe)));
        var producers = Spawn(system, context.Shape.Producers, "producer", i => Props.Create(() => new Producer(i, consumers)));
        await Ready.AllAsync(producers.Concat(consumers));
        return new ActorRun(system, producers);
    }

    private sealed class Producer(int index, IActorRef[] consumers) : UntypedActor
    {
        private long _seq = (long)index << Work.ProducerShift;
        private int _next;

        protected override void OnReceive(object message)
        {
            if (message is not Emit e) return;
            for (var i = 0; i < e.Count; i++)
            {
                consumers[_next].Tell(new Work(++_seq, e.EmittedAt));
                if (++_next == consumers.Length) _next = 0;
            }
        }
    }

    private sealed class Consumer(Probe probe) : UntypedActor
    {
        protected override void OnReceive(object message)
        {
            if (message is Work w) probe.Handle(w);
        }
    }
}
