// Hangfire 1.8 with Hangfire.Storage.SQLite: N fire-and-forget jobs enqueued into a fresh SQLite file, then processed
// by a BackgroundJobServer; the time from the first enqueue to the last job done gives jobs/s, the figure to hold
// ActorQueue's durable mode against. Configured fairly: as many workers as the durable bench's consumers (4 by
// default) and the shortest poll interval the storage takes, so the server is not left waiting between jobs.
// Usage: dotnet run -c Release --project bench/ActorQueue.Benchmarks.Hangfire -- [--n 2000] [--workers 4] [--rounds 3]
using System.Diagnostics;
using System.Globalization;
using Hangfire;
using Hangfire.Storage.SQLite;

var n = Option("--n", 2_000);
var workers = Option("--workers", 4);
var rounds = Option("--rounds", 3);
var rates = new List<double>();
for (var round = 1; round <= rounds; round++)
{
    var directory = Path.Combine(Path.GetTempPath(), "actor-queue-bench-hangfire", Guid.NewGuid().ToString("N"));
    Directory.CreateDirectory(directory);
    try
    {
        var storage = new SQLiteStorage(Path.Combine(directory, "hangfire.db"), new SQLiteStorageOptions { QueuePollInterval = TimeSpan.FromMilliseconds(10) });
        GlobalConfiguration.Configuration.UseStorage(storage).UseRecommendedSerializerSettings();
        Job.Reset(n);
        var client = new BackgroundJobClient(storage);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < n; i++) client.Enqueue(() => Job.Run(i));
        var enqueued = clock.Elapsed;
        using (new BackgroundJobServer(new BackgroundJobServerOptions { WorkerCount = workers, SchedulePollingInterval = TimeSpan.FromMilliseconds(10) }, storage))
        {
            if (!Job.Done.Wait(TimeSpan.FromMinutes(5))) throw new TimeoutException($"Only {Job.Count} of {n} jobs ran in 5 minutes.");
        }
        var rate = n / clock.Elapsed.TotalSeconds;
        rates.Add(rate);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"round {round}: {n} jobs enqueued in {enqueued.TotalSeconds:F2} s, all done in {clock.Elapsed.TotalSeconds:F2} s: {rate:F0} jobs/s with {workers} workers"));
    }
    finally
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
            // Left for the temp directory's own cleanup.
        }
    }
}
rates.Sort();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Hangfire + SQLite: median {rates[rates.Count / 2]:F0} jobs/s over {rounds} rounds (N = {n}, {workers} workers)"));
return 0;

int Option(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], CultureInfo.InvariantCulture, out var v) && v > 0 ? v : fallback;
}

/// <summary>The job: counts itself done.</summary>
public static class Job
{
    private static int _expected;
    private static int _count;

    /// <summary>Set once every expected job has run.</summary>
    public static ManualResetEventSlim Done { get; private set; } = new();

    /// <summary>Jobs run so far in this round.</summary>
    public static int Count => Volatile.Read(ref _count);

    /// <summary>Starts a round of <paramref name="expected"/> jobs.</summary>
    /// <param name="expected">How many jobs the round enqueues.</param>
    public static void Reset(int expected)
    {
        _expected = expected;
        _count = 0;
        Done = new ManualResetEventSlim();
    }

    /// <summary>One job's work: nothing but counting.</summary>
    /// <param name="id">The job's number.</param>
    public static void Run(int id)
    {
        _ = id;
        if (Interlocked.Increment(ref _count) == _expected) Done.Set();
    }
}
