using Akka.Actor;

namespace ActorQueue.Benchmarks.Peers;

/// <summary>Waits until actors have started, so that no run times its own set-up.</summary>
internal static class Ready
{
    public static Task AllAsync(IEnumerable<IActorRef> actors) =>
        Task.WhenAll(actors.Select(a => a.Ask<ActorIdentity>(new Identify(null), TimeSpan.FromSeconds(10))));
}
