using ActorQueue.Core;
using ActorQueue.Protocol;
using BenchmarkDotNet.Attributes;

namespace ActorQueue.Benchmarks.Micro;

/// <summary>
/// The core's hot path without actors: a producer's batch accepted, delivered to one consumer and acked, as the
/// queue actor does it per burst. Reports time and bytes allocated per message.
/// </summary>
[MemoryDiagnoser]
public class QueueStateBenchmarks
{
    private const int Batch = 500;
    private readonly object _payload = new();
    private readonly List<ConsumerDispatch> _dispatches = new();
    private readonly List<ProducerUpdate> _updates = new();
    private QueueState _state = null!;
    private int _consumer;
    private long _seqNr;

    /// <summary>A queue of capacity 1,000 with one registered producer and one consumer.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _state = new QueueState(QueueSettings.Default with { Capacity = 1000, ProducerCredit = 1000 });
        _state.RegisterProducer("p");
        _consumer = _state.AddConsumer();
        _seqNr = 0;
    }

    /// <summary>One burst: credit granted, 500 messages accepted, delivered in one batch and acked.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public void Accept_deliver_ack()
    {
        var now = TimeSpan.FromSeconds(1);
        _state.GrantCredit();
        for (var i = 0; i < Batch; i++) _state.EnqueueSequenced("p", ++_seqNr, _payload, null, now);
        _state.Pull(_consumer, Batch);
        _state.Dispatch(now, _dispatches);
        foreach (var d in _dispatches)
            for (var i = 0; i < d.Batch.Count; i++) _state.Ack(_consumer, d.Batch.FirstDeliveryId + i);
        _dispatches.Clear();
        _state.CollectProducerUpdates(_updates);
        _updates.Clear();
    }
}
