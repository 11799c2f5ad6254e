using Akka.Actor;
using Akka.Configuration;

namespace ActorQueue.Benchmarks.Peers;

/// <summary>How many producers and consumers a run has.</summary>
internal readonly record struct Shape(int Producers, int Consumers)
{
    public override string ToString() => $"{Producers}x{Consumers}";
}

/// <summary>What a peer is asked to set up for one run.</summary>
internal sealed record RunContext(Shape Shape, int Capacity, Probe Probe);

/// <summary>One set-up run of a peer: emits work into it, then tears it down.</summary>
internal interface IPeerRun : IAsyncDisposable
{
    /// <summary>Lets the producers create <paramref name="count"/> more messages, shared among them.</summary>
    void Emit(long count, long emittedAt);
}

/// <summary>A queue (or plain messaging) under test; every run is set up fresh, in a fresh ActorSystem.</summary>
internal abstract class Peer
{
    /// <summary>The name in tables, JSON and charts.</summary>
    public abstract string Name { get; }

    /// <summary>One line on what exactly is measured.</summary>
    public abstract string Description { get; }

    /// <summary>False for shapes the peer cannot do (point-to-point peers with several consumers).</summary>
    public virtual bool Supports(Shape shape) => true;

    /// <summary>Sets the peer up and returns once it is ready to take work.</summary>
    public abstract Task<IPeerRun> StartAsync(RunContext context);

    /// <summary>Starts <paramref name="count"/> actors named prefix-0, prefix-1, ..., each from its index.</summary>
    protected static IActorRef[] Spawn(ActorSystem system, int count, string prefix, Func<int, Props> props)
    {
        var actors = new IActorRef[count];
        for (var i = 0; i < count; i++) actors[i] = system.ActorOf(props(i), $"{prefix}-{i}");
        return actors;
    }

    /// <summary>A fresh ActorSystem with the same quiet configuration for every peer.</summary>
    protected static ActorSystem CreateSystem(string name) => ActorSystem.Create(name, BenchConfig);

    /// <summary>The quiet configuration of every peer's ActorSystem.</summary>
    protected static readonly Config BenchConfig = ConfigurationFactory.ParseString("""
        akka.loglevel = WARNING
        akka.stdout-loglevel = WARNING
        akka.log-dead-letters = off
        akka.log-dead-letters-during-shutdown = off
        akka.coordinated-shutdown.run-by-clr-shutdown-hook = off
        """);
}

/// <summary>An ActorSystem-backed run whose producers are actors told <see cref="Emit"/>.</summary>
internal sealed class ActorRun(ActorSystem system, IActorRef[] producers, Func<ValueTask>? stop = null) : IPeerRun
{
    private int _next;

    public ActorSystem System => system;

    public void Emit(long count, long emittedAt)
    {
        if (producers.Length == 1)
        {
            producers[0].Tell(new Emit(count, emittedAt));
            return;
        }
        if (count < producers.Length)
        {
            // Small paced batches go round-robin so that every producer gets its turn.
            for (var i = 0; i < count; i++) producers[_next++ % producers.Length].Tell(new Emit(1, emittedAt));
            return;
        }
        for (var i = 0; i < producers.Length; i++)
            producers[i].Tell(new Emit(Probe.Share(count, producers.Length, i), emittedAt));
    }

    public async ValueTask DisposeAsync()
    {
        if (stop is not null) await stop();
        await system.Terminate();
    }
}
