using Akka.Actor;

namespace ActorQueue.Tests.Support;

/// <summary>An actor ref whose Tell throws: replying to it makes the replying actor fail.</summary>
internal sealed class ThrowingActorRef(ActorSystem system) : MinimalActorRef
{
    public override ActorPath Path { get; } = new RootActorPath(((ExtendedActorSystem)system).Provider.DefaultAddress) / "throwing";

    public override IActorRefProvider Provider { get; } = ((ExtendedActorSystem)system).Provider;

    protected override void TellInternal(object message, IActorRef sender) =>
        throw new InvalidOperationException($"this ref refuses {message.GetType().Name}");
}
