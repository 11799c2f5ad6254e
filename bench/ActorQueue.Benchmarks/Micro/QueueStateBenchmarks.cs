using ActorQueue.Core;
using ActorQueue.Protocol;
using BenchmarkDotNet.Attributes;

namespace ActorQueue.Benchmarks.Micro;

/// <summary>
/// The core's hot path without actors: a producer's batch accepted, delivered to one consumer and acked, as the
/// queue actor does it per burst (the batch taken as one run, the acks one range). Reports time and bytes
/// allocated per message.
/// </summary>
[MemoryDiagnoser]
public class QueueStateBenchmarks
{
    private const int Batch = 500;
    private readonly object[] _batch = Enumerable.Range(0, Batch).Select(_ => new object()).ToArray();
    private readonly List<ConsumerDispatch> _dispatches = new();
    private readonly List<ProducerUpdate> _updates = new();
    private readonly List<RefusedStretch> _refused = new();
    private QueueState _state = null!;
    private int _consumer;
    private long _seqNr;

    /// <summary>A queue of capacity 1,000 with one registered producer and one consumer with a window of one batch.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _state = new QueueState(QueueSettings.Default with { Capacity = 1000, ProducerCredit = 1000 });
        _state.RegisterProducer("p", long.MaxValue, TimeSpan.FromSeconds(1));
        _consumer = _state.AddConsumer();
        _state.Pull(_consumer, Batch);
        _seqNr = 0;
    }

    /// <summary>One burst: credit granted, 500 messages accepted, delivered in one batch and acked.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public void Accept_deliver_ack()
    {
        var now = TimeSpan.FromSeconds(1);
        _state.GrantCredit(now);
        _seqNr += _state.EnqueueSequencedRun("p", _seqNr + 1, _batch, now);
        _state.Dispatch(now, _dispatches);
        foreach (var d in _dispatches)
            _state.AckRange(_consumer, d.Batch.FirstDeliveryId, d.Batch.FirstDeliveryId + d.Batch.Count - 1, _refused);
        _dispatches.Clear();
        _state.CollectProducerUpdates(_updates);
        _updates.Clear();
    }
}
