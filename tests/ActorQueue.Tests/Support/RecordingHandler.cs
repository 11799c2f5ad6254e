using System.Collections.Concurrent;
using ActorQueue.Protocol;

namespace ActorQueue.Tests.Support;

/// <summary>
/// A handler that records every delivery it completes (message and attempt), can fail chosen first attempts,
/// and can be slowed down, for simulations that check nothing was lost or duplicated without cause.
/// </summary>
internal sealed class RecordingHandler : IQueueHandler
{
    private readonly Func<Delivery, bool> _fail;
    private readonly TimeSpan _work;

    public RecordingHandler(Func<Delivery, bool>? fail = null, TimeSpan work = default)
    {
        _fail = fail ?? (_ => false);
        _work = work;
    }

    public ConcurrentDictionary<object, ConcurrentBag<int>> Completed { get; } = new();

    public int Failures;

    public int DistinctCompleted => Completed.Count;

    public async Task HandleAsync(Delivery delivery, CancellationToken cancellationToken)
    {
        if (_work > TimeSpan.Zero) await Task.Delay(_work, cancellationToken);
        else await Task.Yield();
        if (_fail(delivery))
        {
            Interlocked.Increment(ref Failures);
            throw new InvalidOperationException($"injected failure for {delivery.Message}");
        }
        Completed.GetOrAdd(delivery.Message, _ => new ConcurrentBag<int>()).Add(delivery.Attempt);
    }
}
