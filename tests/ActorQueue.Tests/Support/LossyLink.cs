using Akka.Actor;

namespace ActorQueue.Tests.Support;

/// <summary>
/// Stands between one client (a producer or consumer) and a queue and drops messages at random in either direction,
/// as a network or a restart in between could: the queue sees the link as the client, the client sees it as the
/// queue. Seeded, so a failing run can be replayed; a "blocked" predicate drops matching client messages (a stall).
/// </summary>
internal sealed class LossyLink : UntypedActor
{
    private readonly IActorRef _queue;
    private readonly double _lossToQueue;
    private readonly double _lossToClient;
    private readonly Random _random;
    private readonly Func<object, bool>? _blocked;
    private IActorRef? _client;

    public LossyLink(IActorRef queue, double lossToQueue, double lossToClient, int seed, Func<object, bool>? blocked)
    {
        _queue = queue;
        _lossToQueue = lossToQueue;
        _lossToClient = lossToClient;
        _random = new Random(seed);
        _blocked = blocked;
    }

    /// <summary>A link to <paramref name="queue"/> losing the given fractions; <paramref name="blocked"/> drops matching client messages.</summary>
    public static Props Props(IActorRef queue, double lossToQueue, double lossToClient, int seed = 1, Func<object, bool>? blocked = null) =>
        Akka.Actor.Props.Create(() => new LossyLink(queue, lossToQueue, lossToClient, seed, blocked));

    protected override void PreStart() => Context.Watch(_queue);

    protected override void OnReceive(object message)
    {
        if (message is Terminated t && t.ActorRef.Equals(_queue))
        {
            Context.Stop(Self);
            return;
        }
        if (Sender.Equals(_queue))
        {
            if (_client is not null && _random.NextDouble() >= _lossToClient) _client.Tell(message, Self);
            return;
        }
        if (!Sender.IsNobody()) _client ??= Sender;
        if (_blocked?.Invoke(message) == true || _random.NextDouble() < _lossToQueue) return;
        _queue.Tell(message, Self);
    }
}
