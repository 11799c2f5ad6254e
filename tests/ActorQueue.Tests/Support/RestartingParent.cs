using Akka.Actor;

namespace ActorQueue.Tests.Support;

/// <summary>
/// Restarts its one child in place on any failure, Kill included, as a user's own supervisor might; answers any string
/// with the child's ref.
/// </summary>
internal sealed class RestartingParent : ReceiveActor
{
    public RestartingParent(Props child, string name)
    {
        var c = Context.ActorOf(child, name);
        Receive<string>(_ => Sender.Tell(c));
    }

    public static Props Props(Props child, string name = "child") => Akka.Actor.Props.Create(() => new RestartingParent(child, name));

    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Restart);
}
