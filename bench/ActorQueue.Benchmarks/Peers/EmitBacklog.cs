namespace ActorQueue.Benchmarks.Peers;

/// <summary>A producer's messages still to create, in emission order, each with its emission stamp.</summary>
internal sealed class EmitBacklog
{
    private readonly Queue<Emit> _emits = new();
    private long _takenOfHead;

    public long Available { get; private set; }

    public void Add(Emit emit)
    {
        if (emit.Count <= 0) return;
        _emits.Enqueue(emit);
        Available += emit.Count;
    }

    /// <summary>Takes the next message to create and returns its emission stamp; only when <see cref="Available"/> is above 0.</summary>
    public long Take()
    {
        var head = _emits.Peek();
        if (++_takenOfHead == head.Count)
        {
            _emits.Dequeue();
            _takenOfHead = 0;
        }
        Available--;
        return head.EmittedAt;
    }
}
