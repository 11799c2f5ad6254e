using System.Diagnostics;
using System.Globalization;
using ActorQueue.TestKit;
using Xunit;
using Xunit.Abstractions;

namespace ActorQueue.Tests.Persistence;

/// <summary>
/// The promise of a durable queue, tested with a real kill: a child process with a durable queue on a SQLite file works
/// under load until it is killed (Process.Kill, no shutdown) at a seeded random moment, then starts again on the same
/// file; after the last round it drains. A ledger kept here, from the child's reports, is also written as a TestKit
/// <see cref="History"/> (each kill a queue crash, each send cut off by one a call without answer) and judged by the
/// same <see cref="HistoryChecker"/> the simulations use: every accepted message handled, every duplicate explained by a
/// crash, nothing handled that was never sent. A message handled twice must also say so (attempt above 1). ACTORQUEUE_CRASH_ROUNDS sets the rounds (10 by default; more for a soak), ACTORQUEUE_CRASH_SEED the seed.
/// </summary>
public sealed class CrashSpec(ITestOutputHelper output) : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "actor-queue-crash", Guid.NewGuid().ToString("N"));
    // The store's arguments to the child: none for its SQLite file, the server and a queue of its own for PostgreSQL.
    private string[] _extra = [];

    private sealed class Ledger
    {
        public readonly HashSet<long> Sent = new();
        public readonly HashSet<long> Accepted = new();
        public readonly Dictionary<long, List<int>> Handled = new();
        public int Lines;
        private static readonly Stopwatch Clock = Stopwatch.StartNew();
        public readonly History History = new(() => Clock.Elapsed);
        private long _handlings;

        // The child was killed: the queue crashed, and what it had been sent without answering may or may not be in it.
        public void Killed()
        {
            lock (this)
            {
                History.Add(HistoryKind.QueueCrashed);
                foreach (var id in Sent.Where(id => !Accepted.Contains(id) && _undecided.Add(id)))
                    History.Add(HistoryKind.Unknown, Id(id), e => e with { Detail = "its process was killed before it answered" });
            }
        }

        private readonly HashSet<long> _undecided = new();

        private static string Id(long id) => id.ToString(CultureInfo.InvariantCulture);

        public void Read(string line)
        {
            var parts = line.Split(' ');
            lock (this)
            {
                Lines++;
                switch (parts[0])
                {
                    case "sent":
                        var sent = long.Parse(parts[1], CultureInfo.InvariantCulture);
                        Sent.Add(sent);
                        // No sequence number: the child's handlers run side by side and report when done, so the order
                        // of the reports is not the order of delivery, and the checker is not asked about order.
                        History.Add(HistoryKind.Sent, Id(sent), e => e with { Actor = 0 });
                        break;
                    case "accepted":
                        var accepted = long.Parse(parts[1], CultureInfo.InvariantCulture);
                        Accepted.Add(accepted);
                        History.Add(HistoryKind.Accepted, Id(accepted));
                        break;
                    case "handled":
                        var id = long.Parse(parts[1], CultureInfo.InvariantCulture);
                        var attempt = int.Parse(parts[2], CultureInfo.InvariantCulture);
                        if (!Handled.TryGetValue(id, out var attempts)) Handled[id] = attempts = new List<int>();
                        attempts.Add(attempt);
                        // The child reports a handling when it is done; each is its own delivery to the checker.
                        var delivery = ++_handlings;
                        History.Add(HistoryKind.Delivered, Id(id), e => e with { Attempt = attempt, DeliveryId = delivery });
                        History.Add(HistoryKind.Acked, Id(id), e => e with { Attempt = attempt, DeliveryId = delivery });
                        break;
                }
            }
        }
    }

    [SkippableTheory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task Killed_hard_again_and_again_a_durable_queue_loses_nothing_it_accepted(string store)
    {
        DurableQueueSpec.SkipWithoutPostgres(store);
        _extra = store == "postgresql"
            ? ["--postgres", Environment.GetEnvironmentVariable(DurableQueueSpec.PostgresVariable)!, "--queue", $"crash-{Guid.NewGuid():N}"]
            : [];
        var rounds = int.TryParse(Environment.GetEnvironmentVariable("ACTORQUEUE_CRASH_ROUNDS"), out var r) ? r : 10;
        var seed = int.TryParse(Environment.GetEnvironmentVariable("ACTORQUEUE_CRASH_SEED"), out var s) ? s : Environment.TickCount & 0xFFFF;
        output.WriteLine($"{store}, seed {seed} (replay: ACTORQUEUE_CRASH_SEED={seed} dotnet test --filter FullyQualifiedName~CrashSpec)");
        var random = new Random(seed);
        var ledger = new Ledger();
        for (var round = 1; round <= rounds; round++)
        {
            var killAfter = TimeSpan.FromMilliseconds(random.Next(300, 1500));
            var before = ledger.Accepted.Count;
            await RunAsync(ledger, round, killAfter, drain: false);
            ledger.Killed();
            output.WriteLine($"round {round}: killed {killAfter.TotalMilliseconds:0} ms after ready; accepted {ledger.Accepted.Count - before} more");
        }
        await RunAsync(ledger, rounds + 1, null, drain: true);

        // The checker's verdict on the ledger.
        var verdict = HistoryChecker.Check(ledger.History, TimeSpan.FromSeconds(30));
        output.WriteLine(verdict.Describe());
        var duplicates = ledger.Handled.Where(h => h.Value.Count > 1).ToList();
        var unexplained = duplicates.Where(h => h.Value.Skip(1).Any(a => a <= 1) || h.Value.Distinct().Count() != h.Value.Count).ToList();
        Assert.True(ledger.Accepted.Count > rounds * 10, $"too little work to prove anything: {ledger.Accepted.Count} accepted (seed {seed})");
        Assert.True(verdict.Lost.Count == 0, $"lost {verdict.Lost.Count} accepted messages, e.g. {string.Join(", ", verdict.Lost.Take(5))} (seed {seed})");
        Assert.True(verdict.Unexpected.Count == 0, $"handled {verdict.Unexpected.Count} messages never sent (seed {seed})");
        Assert.True(verdict.Duplicated.All(d => d.Cause == DuplicateCause.Crash), $"duplicates not explained by a kill: {verdict.Describe()} (seed {seed})");
        Assert.True(unexplained.Count == 0,
            $"{unexplained.Count} duplicates not marked by a higher attempt, e.g. {string.Join("; ", unexplained.Take(3).Select(d => $"{d.Key}: {string.Join(",", d.Value)}"))} (seed {seed})");
    }

    // One life of the child: until killed killAfter past its "ready", or (drain) until it reports it has drained.
    private async Task RunAsync(Ledger ledger, int run, TimeSpan? killAfter, bool drain)
    {
        var target = Path.Combine(AppContext.BaseDirectory, "ActorQueue.CrashTarget.dll");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { target, _directory, run.ToString(CultureInfo.InvariantCulture) }) start.ArgumentList.Add(a);
        if (drain) start.ArgumentList.Add("--drain");
        foreach (var a in _extra) start.ArgumentList.Add(a);
        using var process = Process.Start(start) ?? throw new InvalidOperationException("The crash target did not start.");
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var errors = process.StandardError.ReadToEndAsync();
        var reading = Task.Run(async () =>
        {
            while (await process.StandardOutput.ReadLineAsync() is { } line)
            {
                if (line.StartsWith("ready", StringComparison.Ordinal)) ready.TrySetResult();
                else if (line == "drained") drained.TrySetResult();
                else ledger.Read(line);
            }
        });
        try
        {
            await ready.Task.WaitAsync(TimeSpan.FromSeconds(60));
            if (killAfter is { } wait)
            {
                await Task.Delay(wait);
                process.Kill(entireProcessTree: true);
            }
            else await drained.Task.WaitAsync(TimeSpan.FromSeconds(60));
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            await reading.WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (TimeoutException)
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            throw new TimeoutException($"The crash target's run {run} did not get on: {await errors}");
        }
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Left for the temp directory's own cleanup.
        }
    }
}
