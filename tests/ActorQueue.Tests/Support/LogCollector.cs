using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Event;

namespace ActorQueue.Tests.Support;

/// <summary>
/// Keeps every log event of a system, for specs that run a system of their own and stop it: the events are taken as
/// they are published (no actor mailbox in between), so none is lost to the system's termination.
/// </summary>
internal sealed class LogCollector : MinimalActorRef
{
    private readonly ConcurrentQueue<LogEvent> _events = new();

    private LogCollector(ActorSystem system)
    {
        Provider = ((ExtendedActorSystem)system).Provider;
        Path = new RootActorPath(Provider.DefaultAddress) / "temp" / $"log-collector-{Guid.NewGuid():N}";
    }

    /// <inheritdoc />
    public override ActorPath Path { get; }

    /// <inheritdoc />
    public override IActorRefProvider Provider { get; }

    /// <summary>Starts collecting the log events of <paramref name="system"/> (its log level still applies).</summary>
    public static LogCollector Attach(ActorSystem system)
    {
        var collector = new LogCollector(system);
        system.EventStream.Subscribe(collector, typeof(LogEvent));
        return collector;
    }

    /// <summary>The messages of the events collected so far at <paramref name="level"/>.</summary>
    public IReadOnlyList<string> At(LogLevel level) =>
        _events.Where(e => e.LogLevel() == level).Select(e => e.Message?.ToString() ?? "").ToList();

    /// <inheritdoc />
    protected override void TellInternal(object message, IActorRef sender)
    {
        if (message is LogEvent e) _events.Enqueue(e);
    }
}
