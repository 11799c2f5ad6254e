using System.Diagnostics;
using ActorQueue.Client;
using ActorQueue.Hosting;
using ActorQueue.Persistence;
using ActorQueue.Persistence.Hosting;
using ActorQueue.Protocol;
using Akka.Actor;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace ActorQueue.Host;

/// <summary>What a demo run saw, from its own ledger and the queue's stats.</summary>
/// <param name="Produced">Messages the producers handed over.</param>
/// <param name="Accepted">Messages the queue accepted.</param>
/// <param name="Rejected">Messages the queue refused (only with a full mode other than wait).</param>
/// <param name="Dropped">Accepted messages a drop full mode evicted.</param>
/// <param name="Delivered">Deliveries the queue made, redeliveries included.</param>
/// <param name="Redelivered">Deliveries after a failure, a crash or a missed deadline.</param>
/// <param name="Acked">Deliveries acked.</param>
/// <param name="Nacked">Deliveries nacked (handler failures).</param>
/// <param name="DeadLettered">Messages in the dead-letter store at the end.</param>
/// <param name="Handled">Distinct messages a handler completed.</param>
/// <param name="Duplicates">Completions of a message already completed (allowed, at-least-once).</param>
/// <param name="Crashes">Consumer crashes injected.</param>
/// <param name="Lost">Accepted messages neither handled, dead-lettered nor dropped: must be 0.</param>
/// <param name="Completed">Whether everything accepted was settled before the drain timeout.</param>
/// <param name="Elapsed">How long the run took.</param>
/// <param name="QueueEnqueued">What the queue itself counted as accepted: it must match <paramref name="Accepted"/>.</param>
/// <param name="ProducerErrors">Producers that failed with an unexpected error.</param>
/// <param name="Durable">Whether the queue was durable (counts then cover every run on the same data directory).</param>
/// <param name="CameBack">Messages earlier runs had accepted and not handled, recovered by this run's durable queue.</param>
public sealed record DemoSummary(
    long Produced, int Accepted, long Rejected, int Dropped, long Delivered, long Redelivered, long Acked, long Nacked,
    int DeadLettered, int Handled, int Duplicates, long Crashes, int Lost, bool Completed, TimeSpan Elapsed,
    long QueueEnqueued = 0, int ProducerErrors = 0, bool Durable = false, int CameBack = 0)
{
    /// <summary>
    /// The demo's verdict: everything accepted was settled, nothing is missing, the queue and the ledger agree on
    /// what was accepted (a durable queue may have accepted a few more: a process killed after the queue's write and
    /// before the producer heard of it), and no producer failed.
    /// </summary>
    public bool Ok => Completed && Lost == 0 && (Durable ? QueueEnqueued >= Accepted : QueueEnqueued == Accepted) && ProducerErrors == 0;

    /// <summary>
    /// The demo's last line: OK or FAILED and why. Messages a drop full mode evicted are counted as what they are,
    /// dropped by the queue's policy (and published as MessageDropped), not as handled.
    /// </summary>
    public string Verdict => this switch
    {
        { Ok: true } => (Durable ? "OK: every message accepted, in this run and the runs before it on this data directory, was " : "OK: every accepted message was ")
                        + (Dropped > 0
                            ? $"handled, dead-lettered or dropped by the full mode ({Dropped} of {Accepted} dropped by policy, each published as MessageDropped); nothing else was lost."
                            : "handled or dead-lettered; nothing was lost."),
        { Completed: false } => "FAILED: the queue did not settle everything it accepted before the drain timeout.",
        { Lost: > 0 } => $"FAILED: {Lost} accepted messages were lost.",
        { ProducerErrors: > 0 } => $"FAILED: {ProducerErrors} producers failed.",
        _ => $"FAILED: the queue accepted {QueueEnqueued} messages but the producers were told {Accepted}.",
    };
}

/// <summary>
/// The demo: a generic host on Akka.Hosting with one queue, consumers resolved from DI, producers that are plain
/// tasks using <see cref="IQueueClient{T}"/> in bursts faster than the consumers, handler failures, consumers
/// killed now and then, and one poison message. It keeps a ledger so it can tell whether anything was lost.
/// </summary>
public static class DemoRunner
{
    /// <summary>The demo queue's name.</summary>
    public const string QueueName = "work";

    /// <summary>Runs the demo, showing it on <paramref name="view"/>.</summary>
    /// <param name="options">What to run.</param>
    /// <param name="view">Where progress and the summary go.</param>
    /// <param name="cancellationToken">Stops producing early (Ctrl+C); the run still drains and reports.</param>
    public static async Task<DemoSummary> RunAsync(DemoOptions options, DemoView view, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(view);
        var clock = Stopwatch.StartNew();
        var ledger = new DemoLedger();
        using var store = options.Durable ? new DemoLedgerStore(options.DataDirectory) : null;
        if (store is not null) ledger.ContinueFrom(store);
        var firstRun = !ledger.HasHistory;
        using var host = BuildHost(options, ledger);
        if (options.CrashAfter is { } crashAfter)
        {
            _ = Task.Run(async () =>
            {
                await Task.Delay(crashAfter, CancellationToken.None);
                view.ShowError($"--crash-after {crashAfter.TotalSeconds:0.#}s: killing this process hard now (no shutdown, no drain).");
                Process.GetCurrentProcess().Kill();
            }, CancellationToken.None);
        }
        await host.StartAsync(cancellationToken);
        var system = host.Services.GetRequiredService<ActorSystem>();
        system.EventStream.Subscribe(system.ActorOf(Props.Create(() => new DropWatcher(ledger)), "demo-drop-watcher"), typeof(MessageDropped));
        var queue = await system.ActorQueues().GetQueueAsync(QueueName, cancellationToken);

        using var stopProducing = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        stopProducing.CancelAfter(options.Duration);
        var producers = Enumerable.Range(0, options.Producers)
            .Select(p => Task.Run(() => ProduceAsync(system, p, options with { Poison = options.Poison && firstRun }, ledger, stopProducing.Token), CancellationToken.None))
            .ToArray();
        var chaos = Task.Run(() => CrashConsumersAsync(system, options, ledger, stopProducing.Token), CancellationToken.None);

        var snapshot = new DemoSnapshot(options);
        var completed = false;
        await view.ShowAsync(snapshot, async refresh =>
        {
            var drainDeadline = TimeSpan.MaxValue;
            while (true)
            {
                var s = await queue.Ask<QueueStats>(GetStats.Instance, TimeSpan.FromSeconds(10));
                var producing = !producers.All(t => t.IsCompleted);
                snapshot.Update(clock.Elapsed, s, ledger, producing);
                refresh();
                if (!producing)
                {
                    if (drainDeadline == TimeSpan.MaxValue) drainDeadline = clock.Elapsed + options.DrainTimeout;
                    if (s.Held == 0 && ledger.Settled(s.Dead)) { completed = true; break; }
                    if (clock.Elapsed > drainDeadline) break;
                }
                await Task.Delay(view.RefreshInterval, CancellationToken.None);
            }
        });
        await chaos;
        var producerErrors = 0;
        foreach (var p in producers)
        {
            try
            {
                await p;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                producerErrors++;
                view.ShowError($"a producer failed: {e.Message}");
            }
        }

        var dead = await queue.Ask<DeadLetterList>(new GetDeadLetters(GetDeadLetters.MaxItems), TimeSpan.FromSeconds(10));
        var final = await queue.Ask<QueueStats>(GetStats.Instance, TimeSpan.FromSeconds(10));
        var deadIds = dead.Items.Select(d => ((DemoMessage)d.Message).Id).ToHashSet();
        var summary = new DemoSummary(ledger.Produced, ledger.Accepted, ledger.Rejected, ledger.Dropped, final.Delivered,
            final.Redelivered, final.Acked, final.Nacked, dead.Total, ledger.Handled, ledger.Duplicates, ledger.Crashes,
            ledger.Lost(deadIds), completed, clock.Elapsed, final.Enqueued, producerErrors, options.Durable, ledger.CameBack);
        await host.StopAsync(CancellationToken.None);
        view.ShowSummary(summary, dead.Items);
        return summary;
    }

    private static IHost BuildHost(DemoOptions options, DemoLedger ledger)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services
            .AddSingleton(options)
            .AddSingleton(ledger)
            .AddTransient<DemoHandler>()
            .AddAkka("actor-queue-demo", akka => akka
                .AddHoconFile(Path.Combine(AppContext.BaseDirectory, "host.conf"), HoconAddMode.Prepend)
                .WithDurableActorQueues(new DurableQueueOptions { DataDirectory = options.DataDirectory })
                .WithActorQueue(o => o.AddQueue(QueueName, q =>
                {
                    q.Capacity = options.Capacity;
                    q.FullMode = options.FullMode;
                    q.Durable = options.Durable;
                }))
                .WithQueueConsumer<DemoHandler>(QueueName, instances: options.Consumers));
        return builder.Build();
    }

    /// <summary>One producer: bursts of messages, faster than the consumers can take them, with pauses between.</summary>
    private static async Task ProduceAsync(ActorSystem system, int index, DemoOptions options, DemoLedger ledger, CancellationToken stop)
    {
        var client = new QueueClient<DemoMessage>(system, QueueName, new QueueClientOptions { ProducerId = $"demo-producer-{index}", MaxPending = 256 });
        try
        {
            if (index == 0 && options.Poison) await SendAsync(client, new DemoMessage(ledger.NextId(), Poison: true), options, ledger);
            var random = new Random(index);
            while (!stop.IsCancellationRequested)
            {
                var burst = new List<Task>();
                var limitReached = false;
                for (var n = random.Next(100, 400); n > 0 && !stop.IsCancellationRequested; n--)
                {
                    if (options.Messages > 0 && ledger.Produced >= options.Messages)
                    {
                        limitReached = true;
                        break;
                    }
                    burst.Add(SendAsync(client, new DemoMessage(ledger.NextId()), options, ledger));
                }
                // A burst is over when the queue has taken all of it: under backpressure that is when consumers catch up.
                await Task.WhenAll(burst);
                if (limitReached) return;
                try
                {
                    await Task.Delay(random.Next(100, 500), stop);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
        finally
        {
            await client.DisposeAsync();
        }
    }

    private static async Task SendAsync(QueueClient<DemoMessage> client, DemoMessage message, DemoOptions options, DemoLedger ledger)
    {
        ledger.Producing();
        try
        {
            // In full mode wait the producer waits for room; in the others it offers and takes no for an answer.
            var accepted = options.FullMode == FullMode.Wait
                ? await EnqueueAsync(client, message)
                : await client.TryEnqueueAsync(message);
            ledger.Answered(message.Id, accepted);
        }
        catch (ActorQueueException)
        {
            ledger.Answered(message.Id, accepted: false);
        }
    }

    private static async Task<bool> EnqueueAsync(QueueClient<DemoMessage> client, DemoMessage message)
    {
        await client.EnqueueAsync(message);
        return true;
    }

    /// <summary>Kills a random consumer now and then, while the producers run.</summary>
    private static async Task CrashConsumersAsync(ActorSystem system, DemoOptions options, DemoLedger ledger, CancellationToken stop)
    {
        if (options.CrashRate <= 0) return;
        var random = new Random(42);
        var tick = TimeSpan.FromMilliseconds(100);
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(tick, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            if (random.NextDouble() >= options.CrashRate * tick.TotalSeconds) continue;
            var victim = random.Next(1, options.Consumers + 1);
            system.ActorSelection($"/user/actor-queue/consumer-{QueueName}-{victim}/consumer").Tell(Kill.Instance);
            ledger.Crash();
        }
    }

    /// <summary>Counts what a drop full mode evicts, so the ledger does not call it lost.</summary>
    private sealed class DropWatcher : ReceiveActor
    {
        public DropWatcher(DemoLedger ledger) => Receive<MessageDropped>(m => ledger.Drop(((DemoMessage)m.Message).Id));
    }
}
