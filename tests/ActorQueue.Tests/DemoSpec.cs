using ActorQueue.Host;
using Spectre.Console;
using Xunit;

namespace ActorQueue.Tests;

public class DemoSpec
{
    private static (DemoView View, StringWriter Output) PlainView()
    {
        var output = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(output),
        });
        return (new DemoView(console, live: false), output);
    }

    [Fact]
    public async Task Demo_survives_crashes_failures_and_a_poison_message_and_loses_nothing()
    {
        var (view, output) = PlainView();
        var options = new DemoOptions { Duration = TimeSpan.FromSeconds(3), CrashRate = 2, FailureRate = 0.05, Latency = TimeSpan.FromMilliseconds(2), Capacity = 200 };
        var summary = await DemoRunner.RunAsync(options, view);
        var text = output.ToString();
        Assert.True(summary.Ok, text);
        Assert.Equal(0, summary.Lost);
        Assert.Equal(summary.Accepted, summary.Handled + summary.DeadLettered);
        Assert.Equal(1, summary.DeadLettered); // the poison message, after max-attempts
        Assert.True(summary.Crashes > 0 && summary.Redelivered > 0 && summary.Nacked > 0, text);
        Assert.Contains("producing", text);
        Assert.Contains("is poison", text);
        Assert.Contains("OK: every accepted message was handled or dead-lettered; nothing was lost.", text);
    }

    [Fact]
    public async Task Demo_in_reject_mode_counts_rejections_and_still_loses_nothing()
    {
        var (view, output) = PlainView();
        var options = new DemoOptions { Duration = TimeSpan.FromSeconds(2), FullMode = FullMode.Reject, Capacity = 20, CrashRate = 0, Poison = false, Latency = TimeSpan.FromMilliseconds(3) };
        var summary = await DemoRunner.RunAsync(options, view);
        Assert.True(summary.Ok, output.ToString());
        Assert.True(summary.Rejected > 0, output.ToString());
        Assert.Equal(summary.Produced, summary.Accepted + summary.Rejected);
    }

    [Fact]
    public async Task Demo_in_drop_oldest_mode_says_how_many_the_full_mode_dropped_in_its_verdict()
    {
        var (view, output) = PlainView();
        var options = new DemoOptions { Duration = TimeSpan.FromSeconds(2), FullMode = FullMode.DropOldest, Capacity = 20, CrashRate = 0, Poison = false, Latency = TimeSpan.FromMilliseconds(3) };
        var summary = await DemoRunner.RunAsync(options, view);
        var text = output.ToString();
        Assert.True(summary.Ok, text);
        Assert.True(summary.Dropped > 0, text);
        Assert.Equal(summary.Accepted, summary.Handled + summary.DeadLettered + summary.Dropped);
        var verdict = text.TrimEnd().Split('\n')[^1];
        Assert.Contains($"dropped by the full mode ({summary.Dropped} of {summary.Accepted} dropped by policy", verdict);
        Assert.DoesNotContain("nothing was lost", verdict);
    }

    [Fact]
    public async Task Demo_killed_hard_in_durable_mode_then_run_again_recovers_what_it_accepted_and_loses_nothing()
    {
        var directory = Path.Combine(Path.GetTempPath(), "actor-queue-demo", Guid.NewGuid().ToString("N"));
        try
        {
            // The documented way: a durable run that kills itself with work in the queue ...
            var start = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "ActorQueue.Host.dll"), "--durable", "--data-dir", directory,
                         "--crash-after", "3", "--duration", "30", "--crash-rate", "0", "--latency", "40", "--capacity", "300" })
                start.ArgumentList.Add(a);
            using (var first = System.Diagnostics.Process.Start(start)!)
            {
                var firstOutput = first.StandardOutput.ReadToEndAsync();
                await first.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
                Assert.NotEqual(0, first.ExitCode);
                Assert.Contains("killing this process hard now", await firstOutput + await first.StandardError.ReadToEndAsync());
            }

            // ... then a run on the same data directory, which recovers it and settles everything either run accepted.
            var (view, output) = PlainView();
            var summary = await DemoRunner.RunAsync(new DemoOptions
            {
                Durable = true, DataDirectory = directory, Duration = TimeSpan.FromSeconds(1), CrashRate = 0, Latency = TimeSpan.FromMilliseconds(2),
            }, view);
            var text = output.ToString();
            Assert.True(summary.Ok, text);
            Assert.True(summary.CameBack > 0, text);
            Assert.Equal(0, summary.Lost);
            Assert.Contains("came back from earlier runs (durable)", text);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
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

    [Theory]
    [InlineData("--producers", "0", "--producers must be a whole number of at least 1")]
    [InlineData("--failure-rate", "1.5", "--failure-rate must be a number from 0 up to (not including) 1")]
    [InlineData("--full-mode", "sideways", "--full-mode must be one of wait, reject, drop-oldest, drop-newest")]
    [InlineData("--bogus", "1", "Unknown option '--bogus'")]
    public void Demo_options_reject_bad_values_by_name(string option, string value, string message) =>
        Assert.Contains(message, Assert.Throws<ArgumentException>(() => DemoOptions.Parse(new[] { option, value })).Message);

    [Fact]
    public void Demo_options_parse_every_option()
    {
        var o = DemoOptions.Parse("--producers 2 --consumers 3 --messages 10 --duration 9 --capacity 7 --full-mode drop-oldest --failure-rate 0.5 --crash-rate 0.25 --latency 4 --no-poison --drain-timeout 5 --durable --data-dir d --crash-after 2".Split(' '));
        Assert.Equal(new DemoOptions
        {
            Producers = 2, Consumers = 3, Messages = 10, Duration = TimeSpan.FromSeconds(9), Capacity = 7, FullMode = FullMode.DropOldest,
            FailureRate = 0.5, CrashRate = 0.25, Latency = TimeSpan.FromMilliseconds(4), Poison = false, DrainTimeout = TimeSpan.FromSeconds(5),
            Durable = true, DataDirectory = "d", CrashAfter = TimeSpan.FromSeconds(2),
        }, o);
        Assert.Contains("--crash-rate", DemoOptions.Usage);
    }
}
