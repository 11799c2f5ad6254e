using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using ActorQueue.Protocol;
using Akka.Actor;
using Akka.Configuration;

namespace ActorQueue.Host;

/// <summary>What a demo run saw, from the demo's own ledger and the queue's stats.</summary>
/// <param name="Produced">Messages the producers were asked to send.</param>
/// <param name="Accepted">Messages the queue confirmed as accepted.</param>
/// <param name="Rejected">Messages the queue refused (the demo's producers stay within credit, so normally 0).</param>
/// <param name="Delivered">Deliveries the queue made (redeliveries included).</param>
/// <param name="Redelivered">Deliveries after a failure, a crash or a missed deadline.</param>
/// <param name="Acked">Deliveries acked.</param>
/// <param name="Nacked">Deliveries nacked (handler failures).</param>
/// <param name="DeadLettered">Messages in the dead-letter store at the end.</param>
/// <param name="Handled">Distinct messages a handler completed.</param>
/// <param name="Duplicates">Handler completions of a message already completed (allowed at-least-once).</param>
/// <param name="Lost">Accepted messages neither handled nor dead-lettered: must be 0.</param>
/// <param name="Crashes">Consumer crashes injected.</param>
/// <param name="Completed">Whether everything accepted was settled before the timeout.</param>
/// <param name="Elapsed">How long the run took.</param>
public sealed record DemoSummary(
    int Produced, int Accepted, int Rejected, long Delivered, long Redelivered, long Acked, long Nacked,
    int DeadLettered, int Handled, int Duplicates, int Lost, int Crashes, bool Completed, TimeSpan Elapsed);

/// <summary>
/// The demo: a queue, producers and consumers in one ActorSystem, moving a fixed number of messages while
/// handlers fail now and then and consumers are killed mid-delivery; it keeps a ledger of what was accepted
/// and what the handlers saw, so it can tell whether anything was lost.
/// </summary>
public static class DemoRunner
{
    // The demo reports the faults it injects itself; Akka's own log of each killed consumer would bury the output.
    private const string Config = """
        akka.loglevel = OFF
        akka.stdout-loglevel = OFF
        akka.coordinated-shutdown.run-by-clr-shutdown-hook = off
        actor-queue.queue {
          ack-timeout = 3s
          max-attempts = 8
          tick-interval = 50ms
          retry { min-backoff = 10ms, max-backoff = 300ms }
        }
        actor-queue.consumer {
          prefetch = 32
          concurrency = 4
          restart { min-backoff = 100ms, max-backoff = 1s }
        }
        """;

    /// <summary>Runs the demo and writes its progress and summary to <paramref name="output"/>.</summary>
    /// <param name="options">What to run.</param>
    /// <param name="output">Where to write.</param>
    public static async Task<DemoSummary> RunAsync(DemoOptions options, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(output);
        var clock = Stopwatch.StartNew();
        using var system = ActorSystem.Create("actor-queue-demo", ConfigurationFactory.ParseString(Config));
        var queues = system.ActorQueues();
        var queue = await queues.CreateQueueAsync("work", QueueSettings.Create(system, "work") with { Capacity = options.Capacity });

        var handled = new ConcurrentDictionary<int, int>();
        var handler = new DemoHandler(options.FailureRate, handled);
        var consumers = new List<IActorRef>();
        for (var i = 0; i < options.Consumers; i++)
            consumers.Add(await queues.StartConsumerAsync("work", handler));

        var accepted = new ConcurrentDictionary<int, bool>();
        var rejected = 0;
        var producing = new List<Task>();
        for (var p = 0; p < options.Producers; p++)
        {
            var producer = await queues.StartProducerAsync("work", $"demo-producer-{p}");
            var first = p;
            producing.Add(Task.Run(async () =>
            {
                using var window = new SemaphoreSlim(256);
                var pending = new List<Task>();
                for (var id = first; id < options.Messages; id += options.Producers)
                {
                    await window.WaitAsync();
                    var messageId = id;
                    pending.Add(producer.Ask<IEnqueueReply>(new Produce(messageId, messageId), TimeSpan.FromSeconds(30)).ContinueWith(t =>
                    {
                        window.Release();
                        if (t.IsCompletedSuccessfully && t.Result is EnqueueAccepted) accepted[messageId] = true;
                        else Interlocked.Increment(ref rejected);
                    }, TaskScheduler.Default));
                }
                await Task.WhenAll(pending);
            }));
        }

        output.WriteLine($"ActorQueue demo: {options.Messages} messages, {options.Producers} producers, {options.Consumers} consumers, capacity {options.Capacity}, failure rate {options.FailureRate:P0}, {options.Crashes} consumer crashes");
        var crashes = 0;
        var completed = false;
        var nextReport = TimeSpan.Zero;
        QueueStats stats;
        while (true)
        {
            stats = await queue.Ask<QueueStats>(GetStats.Instance, TimeSpan.FromSeconds(5));
            var producersDone = producing.All(t => t.IsCompleted);
            if (producersDone && stats.Held == 0 && handled.Count + stats.Dead >= accepted.Count) { completed = true; break; }
            if (clock.Elapsed > options.Timeout) break;

            // Kill a consumer at evenly spaced points of the run, while it holds deliveries.
            if (crashes < options.Crashes && handled.Count >= (crashes + 1) * options.Messages / (options.Crashes + 1))
            {
                var victim = consumers[crashes % consumers.Count];
                system.ActorSelection(victim.Path / "consumer").Tell(Kill.Instance);
                crashes++;
                output.WriteLine($"  ! killed consumer {victim.Path.Name} mid-delivery (crash {crashes} of {options.Crashes})");
            }
            if (clock.Elapsed >= nextReport)
            {
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {clock.Elapsed.TotalSeconds,5:F1}s accepted={accepted.Count,-7} handled={handled.Count,-7} ready={stats.Ready,-5} in-flight={stats.InFlight,-4} delayed={stats.Delayed,-4} redelivered={stats.Redelivered,-5} dead={stats.Dead}"));
                nextReport = clock.Elapsed + TimeSpan.FromSeconds(1);
            }
            await Task.Delay(20);
        }

        var dead = await queue.Ask<DeadLetterList>(new GetDeadLetters(int.MaxValue), TimeSpan.FromSeconds(5));
        var deadIds = dead.Items.Select(d => (int)d.Message).ToHashSet();
        var lost = accepted.Keys.Count(id => !handled.ContainsKey(id) && !deadIds.Contains(id));
        var duplicates = handled.Values.Sum(n => n - 1);
        var summary = new DemoSummary(options.Messages, accepted.Count, rejected, stats.Delivered, stats.Redelivered, stats.Acked,
            stats.Nacked, dead.Total, handled.Count, duplicates, lost, crashes, completed, clock.Elapsed);
        await CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClrExitReason.Instance);
        Print(summary, output);
        return summary;
    }

    private static void Print(DemoSummary s, TextWriter output)
    {
        output.WriteLine();
        output.WriteLine("  Summary");
        output.WriteLine($"  produced       {s.Produced,10}");
        output.WriteLine($"  accepted       {s.Accepted,10}");
        output.WriteLine($"  rejected       {s.Rejected,10}");
        output.WriteLine($"  delivered      {s.Delivered,10}");
        output.WriteLine($"  redelivered    {s.Redelivered,10}");
        output.WriteLine($"  acked          {s.Acked,10}");
        output.WriteLine($"  nacked         {s.Nacked,10}");
        output.WriteLine($"  dead-lettered  {s.DeadLettered,10}");
        output.WriteLine($"  handled        {s.Handled,10}  (+{s.Duplicates} duplicates after crashes)");
        output.WriteLine($"  crashes        {s.Crashes,10}");
        output.WriteLine($"  lost           {s.Lost,10}");
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  elapsed        {s.Elapsed.TotalSeconds,9:F1}s"));
        output.WriteLine(s.Completed && s.Lost == 0 ? "  OK: nothing accepted was lost." : "  FAILED: the run did not settle everything it accepted.");
    }

    private sealed class DemoHandler(double failureRate, ConcurrentDictionary<int, int> handled) : IQueueHandler
    {
        public async Task HandleAsync(Delivery delivery, CancellationToken cancellationToken)
        {
            // Variable work: most messages are quick, some wait on "I/O".
            if (Random.Shared.NextDouble() < 0.3) await Task.Delay(1, cancellationToken);
            if (Random.Shared.NextDouble() < failureRate)
                throw new InvalidOperationException($"simulated failure handling message {delivery.Message}");
            handled.AddOrUpdate((int)delivery.Message, 1, (_, n) => n + 1);
        }
    }
}
