using Akka.Actor;

namespace ActorQueue.Benchmarks.Peers;

/// <summary>
/// Plain Tell with a credit window, the ceiling for any flow-controlled actor pipeline: each consumer grants each
/// producer 1,000 messages at start and 500 more each time it has processed 500 of that producer's.
/// </summary>
internal sealed class CreditWindowPeer : Peer
{
    private const int Window = 1000;
    private const int Refill = 500;

    public override string Name => "Credit-window Tell";

    public override string Description => "Tell within a credit window: 1,000 granted at start, 500 more per 500 processed";

    public override async Task<IPeerRun> StartAsync(RunContext context)
    {
        var system = CreateSystem("credit-window");
        var producers = Spawn(system, context.Shape.Producers, "producer", i => Props.Create(() => new Producer(i, context.Shape.Consumers)));
        var consumers = Spawn(system, context.Shape.Consumers, "consumer", i => Props.Create(() => new Consumer(i, producers, context.Probe)));
        await Ready.AllAsync(producers.Concat(consumers));
        return new ActorRun(system, producers);
    }

    private sealed record Credit(int Consumer, int Count);

    private sealed class Producer(int index, int consumerCount) : UntypedActor
    {
        private readonly IActorRef?[] _consumers = new IActorRef?[consumerCount];
        private readonly long[] _credit = new long[consumerCount];
        private readonly EmitBacklog _backlog = new();
        private long _seq = (long)index << Work.ProducerShift;
        private int _next;

        protected override void OnReceive(object message)
        {
            switch (message)
            {
                case Emit e: _backlog.Add(e); break;
                case Credit c:
                    _consumers[c.Consumer] = Sender;
                    _credit[c.Consumer] += c.Count;
                    break;
            }
            Send();
        }

        private void Send()
        {
            for (var tried = 0; _backlog.Available > 0 && tried < _credit.Length;)
            {
                if (_credit[_next] > 0)
                {
                    _credit[_next]--;
                    _consumers[_next]!.Tell(new Work(++_seq, _backlog.Take()));
                    tried = 0;
                }
                else tried++;
                if (++_next == _credit.Length) _next = 0;
            }
        }
    }

    private sealed class Consumer(int index, IActorRef[] producers, Probe probe) : UntypedActor
    {
        private readonly int[] _processed = new int[producers.Length];

        protected override void PreStart()
        {
            foreach (var p in producers) p.Tell(new Credit(index, Window));
        }

        protected override void OnReceive(object message)
        {
            if (message is not Work w) return;
            probe.Handle(w);
            var p = w.Producer;
            if (++_processed[p] < Refill) return;
            _processed[p] = 0;
            producers[p].Tell(new Credit(index, Refill));
        }
    }
}
