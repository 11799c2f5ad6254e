using System.Globalization;
using ActorQueue.Protocol;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace ActorQueue.Host;

/// <summary>What the live view shows, refreshed from the queue's stats and the demo's ledger.</summary>
/// <param name="options">The run's options (for the progress bar).</param>
public sealed class DemoSnapshot(DemoOptions options)
{
    private TimeSpan _lastAt;
    private long _lastAcked;

    /// <summary>Time since the start.</summary>
    public TimeSpan Elapsed { get; private set; }

    /// <summary>Whether the producers are still producing.</summary>
    public bool Producing { get; private set; } = true;

    /// <summary>The queue's latest stats.</summary>
    public QueueStats? Stats { get; private set; }

    /// <summary>The demo's ledger.</summary>
    public DemoLedger? Ledger { get; private set; }

    /// <summary>Acks per second since the previous refresh.</summary>
    public double Throughput { get; private set; }

    /// <summary>Share of the producing time that has passed (0 to 1).</summary>
    public double Progress => Math.Min(1, Elapsed / options.Duration);

    /// <summary>Takes a new reading.</summary>
    /// <param name="elapsed">Time since the start.</param>
    /// <param name="stats">The queue's stats.</param>
    /// <param name="ledger">The demo's ledger.</param>
    /// <param name="producing">Whether producers are still running.</param>
    public void Update(TimeSpan elapsed, QueueStats stats, DemoLedger ledger, bool producing)
    {
        var dt = (elapsed - _lastAt).TotalSeconds;
        if (dt > 0) Throughput = (stats.Acked - _lastAcked) / dt;
        _lastAt = elapsed;
        _lastAcked = stats.Acked;
        Elapsed = elapsed;
        Stats = stats;
        Ledger = ledger;
        Producing = producing;
    }
}

/// <summary>
/// Shows the demo: a live table redrawn several times a second on a terminal, or a plain line a second when the
/// output is redirected (CI, pipes); then a summary table.
/// </summary>
public sealed class DemoView
{
    private readonly IAnsiConsole _console;
    private readonly bool _live;

    /// <summary>A view on <paramref name="console"/>.</summary>
    /// <param name="console">Where to draw.</param>
    /// <param name="live">True for the live table (a terminal); false for plain periodic lines.</param>
    public DemoView(IAnsiConsole console, bool live)
    {
        ArgumentNullException.ThrowIfNull(console);
        _console = console;
        _live = live;
        // Redirected output has no width; keep each plain line on one line.
        if (!live) _console.Profile.Width = Math.Max(_console.Profile.Width, 200);
    }

    /// <summary>How often the view is refreshed.</summary>
    public TimeSpan RefreshInterval => _live ? TimeSpan.FromMilliseconds(200) : TimeSpan.FromMilliseconds(250);

    /// <summary>The view for this process's console: live on a terminal, plain lines otherwise.</summary>
    public static DemoView ForConsole() =>
        new(AnsiConsole.Console, !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Ansi);

    /// <summary>Shows <paramref name="snapshot"/> while <paramref name="run"/> runs; run calls refresh after each reading.</summary>
    /// <param name="snapshot">The readings to show.</param>
    /// <param name="run">The monitoring loop.</param>
    public async Task ShowAsync(DemoSnapshot snapshot, Func<Action, Task> run)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        ArgumentNullException.ThrowIfNull(run);
        if (_live)
        {
            await _console.Live(Render(snapshot)).AutoClear(false).StartAsync(async ctx =>
                await run(() => ctx.UpdateTarget(Render(snapshot))));
            return;
        }
        var nextLine = TimeSpan.Zero;
        await run(() =>
        {
            if (snapshot.Elapsed < nextLine || snapshot.Stats is not { } s || snapshot.Ledger is not { } l) return;
            nextLine = snapshot.Elapsed + TimeSpan.FromSeconds(1);
            _console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{snapshot.Elapsed.TotalSeconds,6:F1}s {(snapshot.Producing ? "producing" : "draining "),-9} produced={l.Produced,-7} waiting={l.Waiting,-5} ready={s.Ready,-5} in-flight={s.InFlight,-4} delayed={s.Delayed,-4} dead={s.Dead,-3} acked/s={snapshot.Throughput,7:F0} redelivered={s.Redelivered,-5} crashes={l.Crashes}"));
        });
    }

    /// <summary>Shows an error of the run itself.</summary>
    /// <param name="message">What went wrong.</param>
    public void ShowError(string message) => _console.WriteLine($"error: {message}");

    /// <summary>Shows the final summary and the dead letters.</summary>
    /// <param name="s">The run's summary.</param>
    /// <param name="deadLetters">The queue's dead letters.</param>
    public void ShowSummary(DemoSummary s, IReadOnlyList<DeadLetteredMessage> deadLetters)
    {
        ArgumentNullException.ThrowIfNull(s);
        ArgumentNullException.ThrowIfNull(deadLetters);
        var table = new Table().Title("ActorQueue demo: summary").AddColumn("").AddColumn(new TableColumn("count").RightAligned());
        void Row(string name, object value) => table.AddRow(name, Convert.ToString(value, CultureInfo.InvariantCulture)!);
        Row("produced", s.Produced);
        Row("accepted", s.Accepted);
        Row("rejected (full)", s.Rejected);
        Row("dropped (full mode)", s.Dropped);
        Row("delivered", s.Delivered);
        Row("redelivered", s.Redelivered);
        Row("acked", s.Acked);
        Row("nacked", s.Nacked);
        Row("dead-lettered", s.DeadLettered);
        Row("handled", s.Handled);
        Row("duplicates (after crashes)", s.Duplicates);
        Row("consumer crashes", s.Crashes);
        if (s.Durable) Row("came back from earlier runs (durable)", s.CameBack);
        Row("lost", s.Lost);
        Row("accepted, as the queue counts it", s.QueueEnqueued);
        Row("elapsed", string.Create(CultureInfo.InvariantCulture, $"{s.Elapsed.TotalSeconds:F1}s"));
        _console.Write(table);
        foreach (var d in deadLetters.Take(5))
            _console.WriteLine($"dead letter (queue id {d.MessageId}) after {d.Attempts} attempts: {d.Reason}");
        _console.WriteLine(s.Verdict);
    }

    private static IRenderable Render(DemoSnapshot snapshot)
    {
        var table = new Table().Border(TableBorder.Rounded).Title("ActorQueue demo").HideHeaders().AddColumn("").AddColumn(new TableColumn("").RightAligned());
        var filled = (int)(snapshot.Progress * 30);
        table.AddRow(snapshot.Producing ? "producing" : "draining", $"[green]{new string('#', filled)}[/]{new string('.', 30 - filled)} {snapshot.Elapsed.TotalSeconds:F1}s");
        if (snapshot.Stats is { } s && snapshot.Ledger is { } l)
        {
            table.AddRow("produced / accepted", $"{l.Produced} / {l.Accepted}");
            table.AddRow("producers waiting (backpressure)", l.Waiting.ToString(CultureInfo.InvariantCulture));
            table.AddRow("ready", $"{s.Ready} of {s.Capacity}");
            table.AddRow("in flight", s.InFlight.ToString(CultureInfo.InvariantCulture));
            table.AddRow("delayed (retry backoff)", s.Delayed.ToString(CultureInfo.InvariantCulture));
            table.AddRow("dead letters", s.Dead.ToString(CultureInfo.InvariantCulture));
            table.AddRow("acked per second", snapshot.Throughput.ToString("F0", CultureInfo.InvariantCulture));
            table.AddRow("redelivered", s.Redelivered.ToString(CultureInfo.InvariantCulture));
            table.AddRow("nacked (handler failures)", s.Nacked.ToString(CultureInfo.InvariantCulture));
            table.AddRow("consumers / crashes", $"{s.Consumers} / {l.Crashes}");
        }
        return table;
    }
}
