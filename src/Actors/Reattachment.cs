using Akka.Actor;

namespace ActorQueue;

/// <summary>
/// Looking for a queue again at the path of one that terminated: an Identify now, then with backoff (100 ms doubling to
/// 5 s) until reattach-timeout. Shared by <see cref="ConsumerActor"/> and <see cref="ProducerActor"/>.
/// </summary>
internal struct Reattachment
{
    private static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(5);

    private TimeSpan? _since;
    private TimeSpan _lastLook;
    private TimeSpan _backoff;

    /// <summary>Whether the queue is lost and being looked for.</summary>
    public readonly bool Looking => _since is not null;

    /// <summary>The queue terminated: looks for a new one at its path at once.</summary>
    public void Begin(ActorPath path, TimeSpan now, IActorContext context)
    {
        _since = _lastLook = now;
        _backoff = FirstBackoff;
        Identify(path, context);
    }

    /// <summary>
    /// One step of the search, on the caller's timer: false once <paramref name="timeout"/> has passed (give up), else
    /// true, having looked again if the backoff is over.
    /// </summary>
    public bool Continue(ActorPath path, TimeSpan now, TimeSpan timeout, IActorContext context)
    {
        if (_since is not { } since) return true;
        if (now - since >= timeout) return false;
        if (now - _lastLook < _backoff) return true;
        _lastLook = now;
        _backoff = _backoff * 2 < MaxBackoff ? _backoff * 2 : MaxBackoff;
        Identify(path, context);
        return true;
    }

    /// <summary>
    /// An answer to a look: the new queue when a different actor now lives at the path (and the search is over), else null.
    /// </summary>
    public IActorRef? Found(ActorIdentity identity, IActorRef lost)
    {
        if (_since is null || identity.Subject is null || identity.Subject.Equals(lost)) return null;
        _since = null;
        return identity.Subject;
    }

    /// <summary>Stops looking.</summary>
    public void End() => _since = null;

    private static void Identify(ActorPath path, IActorContext context) =>
        context.ActorSelection(path).Tell(new Identify(path.ToString()), context.Self);
}
