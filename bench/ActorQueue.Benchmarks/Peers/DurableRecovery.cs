using System.Diagnostics;
using ActorQueue.Persistence;
using ActorQueue.Protocol;
using Akka.Actor;

namespace ActorQueue.Benchmarks.Peers;

/// <summary>Stands for the recovery measurement in tables: it is not a peer that moves messages.</summary>
internal sealed class RecoveryPeer : Peer
{
    public override string Name => "ActorQueue durable recovery";

    public override string Description => "a durable queue holding N messages on a SQLite file, started in a new actor system: time to its first answer";

    public override Task<IPeerRun> StartAsync(RunContext context) => throw new NotSupportedException("Recovery is measured by DurableRecovery.");
}

/// <summary>How long a durable queue holding N messages takes to recover them in a new actor system.</summary>
internal static class DurableRecovery
{
    public static async Task<RunResult> RunAsync(long messages, int round, int credit)
    {
        const string name = "ActorQueue durable recovery";
        using var store = new ScratchStore();
        var options = new DurableQueueOptions { DataDirectory = store.Directory, FileName = "bench.db" };
        var settings = QueueSettings.Default with { Capacity = (int)messages + 1, ProducerCredit = credit, Durable = true };
        try
        {
            var filling = ActorSystem.Create("fill", BenchConfig);
            try
            {
                var queue = filling.ActorOf(new DurableQueueFactory(filling, options).QueueProps("bench", settings), "queue");
                await queue.Ask<QueueStats>(GetStats.Instance, TimeSpan.FromSeconds(60)); // recovered (empty): ready for work
                for (var i = 0L; i < messages; i++) queue.Tell(new Enqueue(new Work(i + 1, 0), i), ActorRefs.NoSender);
                while ((await queue.Ask<QueueStats>(GetStats.Instance, TimeSpan.FromSeconds(60))).Enqueued < messages) await Task.Delay(50);
            }
            finally
            {
                await filling.Terminate();
            }
            var started = Stopwatch.GetTimestamp();
            var recovering = ActorSystem.Create("recover", BenchConfig);
            try
            {
                var queue = recovering.ActorOf(new DurableQueueFactory(recovering, options).QueueProps("bench", settings), "queue");
                var stats = await queue.Ask<QueueStats>(GetStats.Instance, TimeSpan.FromMinutes(5));
                var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
                if (stats.Held != messages) throw new InvalidOperationException($"Recovered {stats.Held} of {messages} messages.");
                return new RunResult(name, round, messages, true, seconds, messages / seconds, 0, 0, 0, 0, 0, 0, null, null, null);
            }
            finally
            {
                await recovering.Terminate();
            }
        }
        catch (Exception e)
        {
            return new RunResult(name, round, messages, false, 0, 0, 0, 0, 0, 0, 0, 0, null, null, e.GetBaseException().Message);
        }
    }

    private static readonly Akka.Configuration.Config BenchConfig = Akka.Configuration.ConfigurationFactory.ParseString("""
        akka.loglevel = WARNING
        akka.log-dead-letters = off
        akka.log-dead-letters-during-shutdown = off
        akka.coordinated-shutdown.run-by-clr-shutdown-hook = off
        """);
}
