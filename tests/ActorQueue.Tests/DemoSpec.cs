using ActorQueue.Host;
using Xunit;

namespace ActorQueue.Tests;

public class DemoSpec
{
    [Fact]
    public async Task Demo_moves_every_message_through_crashes_and_failures_and_reports_nothing_lost()
    {
        var output = new StringWriter();
        var summary = await DemoRunner.RunAsync(new DemoOptions { Messages = 3000, Crashes = 2, FailureRate = 0.05, Timeout = TimeSpan.FromSeconds(60) }, output);
        Assert.True(summary.Completed, output.ToString());
        Assert.Equal((3000, 3000, 0, 2), (summary.Accepted, summary.Handled + summary.DeadLettered, summary.Lost, summary.Crashes));
        Assert.True(summary.Nacked > 0 && summary.Redelivered > 0, output.ToString());
        Assert.Contains("lost                    0", output.ToString());
        Assert.Contains("OK: nothing accepted was lost.", output.ToString());
    }

    [Theory]
    [InlineData("--messages", "0", "--messages must be a whole number of at least 1")]
    [InlineData("--failure-rate", "1.5", "--failure-rate must be a number")]
    [InlineData("--bogus", "1", "Unknown option '--bogus'")]
    public void Demo_options_reject_bad_values_by_name(string option, string value, string message) =>
        Assert.Contains(message, Assert.Throws<ArgumentException>(() => DemoOptions.Parse(new[] { option, value })).Message);

    [Fact]
    public void Demo_options_parse_every_option()
    {
        var o = DemoOptions.Parse("--messages 10 --producers 2 --consumers 3 --capacity 7 --failure-rate 0.5 --crashes 0 --timeout 9".Split(' '));
        Assert.Equal(new DemoOptions { Messages = 10, Producers = 2, Consumers = 3, Capacity = 7, FailureRate = 0.5, Crashes = 0, Timeout = TimeSpan.FromSeconds(9) }, o);
    }
}
