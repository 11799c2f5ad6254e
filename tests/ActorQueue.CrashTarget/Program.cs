// A process the crash test kills without warning: a durable queue on a SQLite file, producers and a consumer at work.
// It reports on stdout, one line per fact, each written before the fact is acted on:
//   sent ID        before EnqueueAsync is called
//   accepted ID    after EnqueueAsync completed (the queue has written it)
//   handled ID A   in the handler, before it returns (so before the ack), A being the delivery's attempt
// and "ready HELD" once the queue has recovered (HELD messages), "drained" when a draining run has nothing left.
// Usage: ActorQueue.CrashTarget DATA-DIR RUN [--drain] [--postgres CONNECTION-STRING --queue NAME]
using ActorQueue;
using ActorQueue.Client;
using ActorQueue.Protocol;
using Akka.Actor;
using Akka.Configuration;

var dataDir = args[0];
var run = int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture);
var drain = args.Contains("--drain");
var postgres = Array.IndexOf(args, "--postgres") is var pg and >= 0 ? args[pg + 1] : null;
var queueName = Array.IndexOf(args, "--queue") is var q and >= 0 ? args[q + 1] : "crash";
var store = postgres is null ? "" : $"durable {{ store = postgresql, connection-string = \"{postgres}\" }}";
var output = Console.Out;
var gate = new object();
void Report(string line)
{
    lock (gate) output.WriteLine(line);
}

var config = ConfigurationFactory.ParseString($$"""
    akka.loglevel = WARNING
    actor-queue {
      drain-on-shutdown = off
      durable.data-dir = "{{dataDir.Replace("\\", "/", StringComparison.Ordinal)}}"
      {{store}}
      queues."{{queueName}}" { durable = on, capacity = 500, ack-timeout = 5s, max-attempts = 100 }
      consumer.resync-interval = 500ms
    }
    """);
using var system = ActorSystem.Create("crash-target", config);
var queues = system.ActorQueues();
var queue = await queues.CreateQueueAsync(queueName);
var stats = await queue.Ask<QueueStats>(GetStats.Instance, TimeSpan.FromSeconds(30));
Report($"ready {stats.Held}");

await queues.StartConsumerAsync(queueName, QueueHandler.From(async (d, ct) =>
{
    if (Random.Shared.Next(10) == 0) await Task.Delay(Random.Shared.Next(1, 5), ct);
    Report($"handled {d.Message} {d.Attempt}");
}), new ConsumerSettings { Prefetch = 16, Concurrency = 4 });

if (drain)
{
    while ((await queue.Ask<QueueStats>(GetStats.Instance, TimeSpan.FromSeconds(10))).Held > 0) await Task.Delay(50);
    Report("drained");
    return;
}

// Producers run until the process is killed; ids are unique across runs.
var client = new QueueClient<long>(system, queueName);
var next = run * 10_000_000L;
var producers = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
{
    while (true)
    {
        var id = Interlocked.Increment(ref next);
        Report($"sent {id}");
        try
        {
            await client.EnqueueAsync(id);
            Report($"accepted {id}");
        }
        catch (EnqueueRejectedException)
        {
            // Not accepted: it is not in the ledger as accepted, so its absence is no loss.
        }
        if (Random.Shared.Next(4) == 0) await Task.Delay(1);
    }
})).ToArray();
await Task.WhenAll(producers);
