using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using Akka.Actor;
using ScottPlot;
using Spectre.Console;

namespace ActorQueue.Benchmarks;

/// <summary>A target the harness checks: a ratio or a figure measured in this run against its threshold.</summary>
internal sealed record TargetResult(string Scenario, string Target, double Value, string Comparison, double Threshold, bool Pass);

/// <summary>Where the figures came from.</summary>
internal sealed record MachineInfo(string Cpu, int Cores, string Os, string Runtime, string Akka, string Gc);

/// <summary>Everything one harness run measured; written as JSON.</summary>
internal sealed record BenchReport(
    DateTimeOffset Date, string Mode, MachineInfo Machine, int Rounds, int WarmupRounds, long WarmupMessages,
    IReadOnlyList<ScenarioResult> Scenarios, IReadOnlyList<TargetResult> Targets);

/// <summary>Checks the targets and writes the console table, the JSON file and the chart.</summary>
internal static class Report
{
    private const string Aq = Harness.ActorQueueName;

    public static List<TargetResult> CheckTargets(IReadOnlyList<ScenarioResult> scenarios)
    {
        var targets = new List<TargetResult>();
        var s1 = scenarios.FirstOrDefault(s => s.Id == "1");
        var aq1 = s1?.Find(Aq)?.MedianMessagesPerSecond ?? 0;
        if (s1 is not null)
        {
            Ratio(targets, s1, "ActorQueue / credit-window Tell", "Credit-window Tell", 0.5);
            Ratio(targets, s1, "ActorQueue / Akka.Delivery", "Akka.Delivery", 25);
            Ratio(targets, s1, "ActorQueue / Source.Queue", "Source.Queue", 3);
            var bytes = s1.Find(Aq)?.BytesPerMessage ?? double.NaN;
            targets.Add(new TargetResult("1", "ActorQueue bytes allocated per message", bytes, "<=", 64, bytes <= 64));
        }
        foreach (var s2 in scenarios.Where(s => s.Id.StartsWith("2 ", StringComparison.Ordinal)))
        {
            var rate = s2.Find(Aq)?.MedianMessagesPerSecond ?? 0;
            var ratio = aq1 > 0 ? rate / aq1 : double.NaN;
            targets.Add(new TargetResult(s2.Id, $"ActorQueue {s2.Shape} / ActorQueue scenario 1", ratio, ">=", 0.5, ratio >= 0.5));
        }
        var slow = scenarios.Where(s => s.Id.StartsWith("3 ", StringComparison.Ordinal)).ToList();
        if (slow.Count >= 2)
        {
            var small = slow[0].Find(Aq)?.PeakLiveMegabytes ?? double.NaN;
            var large = slow[^1].Find(Aq)?.PeakLiveMegabytes ?? double.NaN;
            // A floor of 1 MB keeps a near-zero small peak from making the ratio meaningless.
            var ratio = large / Math.Max(small, 1);
            targets.Add(new TargetResult("3", $"ActorQueue peak live heap at {slow[^1].Id[3..^1]} / at {slow[0].Id[3..^1]}", ratio, "<=", 1.2, ratio <= 1.2));
        }
        var s6 = scenarios.FirstOrDefault(s => s.Id == "6 (1x1)");
        if (s6 is not null)
        {
            var durable = s6.Find(Peers.ActorQueuePeer.DurableName)?.MedianMessagesPerSecond ?? 0;
            var raw = s6.Find("Raw SQLite")?.MedianMessagesPerSecond ?? 0;
            var ratio = raw > 0 ? durable / raw : double.NaN;
            targets.Add(new TargetResult("6 (1x1)", "ActorQueue durable / raw SQLite ceiling", ratio, ">=", 0.3, ratio >= 0.3));
            targets.Add(new TargetResult("6 (1x1)", "ActorQueue durable msgs/s, accepted after the write", durable, ">=", 50_000, durable >= 50_000));
        }
        var recovery = scenarios.FirstOrDefault(s => s.Id == "6 (recovery)");
        if (recovery?.Peers.FirstOrDefault() is { MedianMessagesPerSecond: > 0 } r && r.Messages >= 100_000)
        {
            var seconds = 100_000 / r.MedianMessagesPerSecond;
            targets.Add(new TargetResult("6 (recovery)", "seconds to recover 100k held messages", seconds, "<=", 5, seconds <= 5));
        }
        var u1 = scenarios.FirstOrDefault(s => s.Id == "U1");
        if (u1 is not null)
        {
            const string channel = Peers.ChannelWritersPeer.PeerName;
            foreach (var client in new[] { Peers.ClientPeer.DefaultName, Peers.ClientPeer.TunedName })
            {
                Ratio(targets, u1, $"{client} / {channel}", channel, 0.5, client);
                // The client may allocate twice what the channel does per message, plus a second copy of the message.
                var bytes = u1.Find(client)?.BytesPerMessage ?? double.NaN;
                var limit = 2 * (u1.Find(channel)?.BytesPerMessage ?? double.NaN) + Work.PayloadBytes;
                targets.Add(new TargetResult("U1", $"{client} bytes allocated per message (<= 2x {channel}'s + the {Work.PayloadBytes} B message)", bytes, "<=", limit, bytes <= limit));
            }
        }
        if (scenarios.FirstOrDefault(s => s.Id == "U2") is { } u2)
            Ratio(targets, u2, $"{u2.Reference} / {Peers.ChannelWritersPeer.PeerName}", Peers.ChannelWritersPeer.PeerName, 1, u2.Reference);
        if (scenarios.FirstOrDefault(s => s.Id == "U3") is { } u3)
        {
            Ratio(targets, u3, $"{u3.Reference} / {Peers.ChannelServicePeer.PeerName}", Peers.ChannelServicePeer.PeerName, 1, u3.Reference);
            Ratio(targets, u3, $"{u3.Reference} / {Peers.MassTransitPeer.PeerName}", Peers.MassTransitPeer.PeerName, 10, u3.Reference);
        }
        var s4 = scenarios.FirstOrDefault(s => s.Id == "4");
        if (s4?.Find(Aq)?.Latency is { } latency)
        {
            // The target is set at half the queue's own rate; a run at a fixed --latency-rate says so.
            var name = s4.Title.Contains("for every peer", StringComparison.Ordinal)
                ? "ActorQueue p99 latency (us), at the fixed --latency-rate" : "ActorQueue p99 latency (us)";
            targets.Add(new TargetResult("4", name, latency.P99, "<=", 1000, latency.P99 <= 1000));
        }
        return targets;
    }

    private static void Ratio(List<TargetResult> targets, ScenarioResult s, string name, string peer, double threshold, string of = Aq)
    {
        var aq = s.Find(of)?.MedianMessagesPerSecond ?? 0;
        var other = s.Find(peer)?.MedianMessagesPerSecond ?? 0;
        var ratio = other > 0 ? aq / other : double.NaN;
        targets.Add(new TargetResult(s.Id, name, ratio, ">=", threshold, ratio >= threshold));
    }

    public static MachineInfo Machine()
    {
        var cpu = "unknown";
        if (File.Exists("/proc/cpuinfo"))
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            if (line is not null) cpu = line[(line.IndexOf(':') + 1)..].Trim();
        }
        return new MachineInfo(cpu, Environment.ProcessorCount, RuntimeInformation.OSDescription, RuntimeInformation.FrameworkDescription,
            typeof(ActorSystem).Assembly.GetName().Version?.ToString() ?? "?",
            System.Runtime.GCSettings.IsServerGC ? "server" : "workstation, concurrent");
    }

    public static void WriteTables(BenchReport report)
    {
        // Wide enough for every column when the output is a file or a pipe.
        if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 180;
        foreach (var s in report.Scenarios)
        {
            var aq = s.Find(s.Reference);
            var table = new Table().Title($"[bold]Scenario {Markup.Escape(s.Id)}[/]: {Markup.Escape(s.Title)} [grey]({s.Shape}, capacity {s.Capacity}, work: {s.Work})[/]");
            // Paced runs show the platform's stalls in place of the heap peaks, which matter for scenario 3.
            var paced = s.Peers.Any(p => p.Stalls is not null);
            table.AddColumns("Peer", "N", "msgs/s (median)", "min - max", $"{Markup.Escape(s.Reference)} / peer", "B/msg");
            if (paced) table.AddColumns("GC pause ms", "p50 / p99 / p99.9 us", "platform stalls p99 / p99.9 / max us", "backlog max ms (rounds behind)");
            else table.AddColumns("peak heap MB", "peak live MB", "GC pause ms");
            foreach (var p in s.Peers)
            {
                var ratio = aq is not null && p.MedianMessagesPerSecond > 0 ? $"{aq.MedianMessagesPerSecond / p.MedianMessagesPerSecond:0.00}x" : "-";
                var cells = new List<string>
                {
                    Markup.Escape(p.Peer), Harness.Count(p.Messages), $"{p.MedianMessagesPerSecond:N0}",
                    $"{p.MinMessagesPerSecond:N0} - {p.MaxMessagesPerSecond:N0}" + (p.Failed > 0 ? $" [red]({p.Failed} failed)[/]" : ""),
                    p.Peer == s.Reference ? "" : ratio, $"{p.BytesPerMessage:N1}",
                };
                if (paced)
                {
                    cells.Add($"{p.GcPauseMilliseconds:N1}");
                    cells.Add(p.Latency is { } l ? $"{l.P50:N0} / {l.P99:N0} / {l.P999:N0}" : "-");
                    cells.Add(p.Stalls is { } st ? $"{st.P99:N0} / {st.P999:N0} / {st.Max:N0}" : "-");
                    cells.Add(p.MaxBacklogMilliseconds is { } b ? $"{b:N1} ({p.RoundsBehind} of {p.Runs.Count})" : "-");
                }
                else cells.AddRange([$"{p.PeakMegabytes:N1}", $"{p.PeakLiveMegabytes:N1}", $"{p.GcPauseMilliseconds:N1}"]);
                table.AddRow(cells.ToArray());
            }
            AnsiConsole.Write(table);
        }
        var targets = new Table().Title("[bold]Targets[/]");
        targets.AddColumns("Scenario", "Target", "Measured", "Threshold", "Result");
        foreach (var t in report.Targets)
            targets.AddRow(Markup.Escape(t.Scenario), Markup.Escape(t.Target), $"{t.Value:N2}", $"{t.Comparison} {t.Threshold:N2}", t.Pass ? "[green]PASS[/]" : "[red]FAIL[/]");
        AnsiConsole.Write(targets);
    }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
    };

    public static string WriteJson(BenchReport report, string directory)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, "results.json");
        File.WriteAllText(path, JsonSerializer.Serialize(report, JsonOptions));
        return path;
    }

    /// <summary>Scenario 1 as horizontal bars (median, with the min-max range), labelled with the date and machine.</summary>
    public static string? WriteChart(BenchReport report, string directory)
    {
        var s1 = report.Scenarios.FirstOrDefault(s => s.Id == "1");
        if (s1 is null) return null;
        var peers = s1.Peers.Where(p => p.MedianMessagesPerSecond > 0).OrderBy(p => p.MedianMessagesPerSecond).ToList();
        var plot = new Plot();
        var bars = new List<Bar>();
        for (var i = 0; i < peers.Count; i++)
        {
            var p = peers[i];
            var color = p.Peer.StartsWith(Aq, StringComparison.Ordinal) ? Colors.DarkOrange : Colors.SteelBlue;
            bars.Add(new Bar
            {
                Position = i,
                Value = p.MedianMessagesPerSecond / 1e6,
                FillColor = color,
                Label = $"{p.MedianMessagesPerSecond / 1e6:0.00}M",
                Orientation = Orientation.Horizontal,
            });
        }
        var barPlot = plot.Add.Bars(bars);
        barPlot.Horizontal = true;
        for (var i = 0; i < peers.Count; i++)
        {
            // The range over the rounds: a line from the slowest to the fastest, with end caps.
            var (min, max) = (peers[i].MinMessagesPerSecond / 1e6, peers[i].MaxMessagesPerSecond / 1e6);
            foreach (var (x1, y1, x2, y2) in new[] { (min, i, max, i), (min, i - 0.15, min, i + 0.15), (max, i - 0.15, max, i + 0.15) })
            {
                var line = plot.Add.Line(x1, y1, x2, y2);
                line.LineColor = Colors.Black;
                line.LineWidth = 1.5f;
            }
        }
        barPlot.ValueLabelStyle.FontSize = 14;
        plot.Axes.Left.SetTicks(Enumerable.Range(0, peers.Count).Select(i => (double)i).ToArray(), peers.Select(p => p.Peer).ToArray());
        plot.Axes.Margins(left: 0, right: 0.15);
        plot.XLabel("million messages per second (bar: median over the rounds; line: slowest to fastest round)");
        plot.Title($"1 producer -> 1 consumer, capacity {s1.Capacity}, N = {Harness.Count(s1.Peers[0].Messages)}, {report.Rounds} rounds\n" +
                   $"{report.Date:yyyy-MM-dd}, {report.Machine.Cores} cores, {report.Machine.Cpu}, {report.Machine.Runtime}");
        var path = Path.Combine(directory, "throughput.png");
        plot.SavePng(path, 1000, 520);
        return path;
    }
}
