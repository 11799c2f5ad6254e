using System.Diagnostics;
using System.Globalization;
using Xunit;
using Xunit.Abstractions;

namespace ActorQueue.Tests.Persistence;

/// <summary>
/// The promise of a durable queue, tested with a real kill: a child process with a durable queue on a SQLite file works
/// under load until it is killed (Process.Kill, no shutdown) at a seeded random moment, then starts again on the same
/// file; after the last round it drains. A ledger kept here, from the child's reports, proves that every accepted
/// message was handled, that a message handled twice says so (attempt above 1), and that nothing was handled that was
/// never sent. ACTORQUEUE_CRASH_ROUNDS sets the rounds (10 by default; more for a soak), ACTORQUEUE_CRASH_SEED the seed.
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

        public void Read(string line)
        {
            var parts = line.Split(' ');
            lock (this)
            {
                Lines++;
                switch (parts[0])
                {
                    case "sent": Sent.Add(long.Parse(parts[1], CultureInfo.InvariantCulture)); break;
                    case "accepted": Accepted.Add(long.Parse(parts[1], CultureInfo.InvariantCulture)); break;
                    case "handled":
                        var id = long.Parse(parts[1], CultureInfo.InvariantCulture);
                        if (!Handled.TryGetValue(id, out var attempts)) Handled[id] = attempts = new List<int>();
                        attempts.Add(int.Parse(parts[2], CultureInfo.InvariantCulture));
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
            output.WriteLine($"round {round}: killed {killAfter.TotalMilliseconds:0} ms after ready; accepted {ledger.Accepted.Count - before} more");
        }
        await RunAsync(ledger, rounds + 1, null, drain: true);

        var lost = ledger.Accepted.Where(id => !ledger.Handled.ContainsKey(id)).ToList();
        var unexpected = ledger.Handled.Keys.Where(id => !ledger.Sent.Contains(id)).ToList();
        var duplicates = ledger.Handled.Where(h => h.Value.Count > 1).ToList();
        var unexplained = duplicates.Where(h => h.Value.Skip(1).Any(a => a <= 1) || h.Value.Distinct().Count() != h.Value.Count).ToList();
        output.WriteLine($"accepted {ledger.Accepted.Count}, handled {ledger.Handled.Count}, duplicates {duplicates.Count}, lost {lost.Count}, unexpected {unexpected.Count}");
        Assert.True(ledger.Accepted.Count > rounds * 10, $"too little work to prove anything: {ledger.Accepted.Count} accepted (seed {seed})");
        Assert.True(lost.Count == 0, $"lost {lost.Count} accepted messages, e.g. {string.Join(", ", lost.Take(5))} (seed {seed})");
        Assert.True(unexpected.Count == 0, $"handled {unexpected.Count} messages never sent (seed {seed})");
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
