using System.Text.RegularExpressions;
using Akka.Configuration;
using Xunit;

namespace ActorQueue.Tests;

public class SettingsSpec
{
    private static Config Hocon(string text) => ConfigurationFactory.ParseString(text);

    [Fact]
    public void Defaults_come_from_the_embedded_reference_conf()
    {
        var s = QueueSettings.Default;
        Assert.Equal((1000, FullMode.Wait, 5, 1000, 10_000), (s.Capacity, s.FullMode, s.MaxAttempts, s.ProducerCredit, s.DeadLetterCapacity));
        Assert.Equal((TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(100)), (s.AckTimeout, s.FullWaitTimeout, s.TickInterval));
        Assert.Equal((TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(30), 0.2), (s.RetryMinBackoff, s.RetryMaxBackoff, s.RetryRandomFactor));
        Assert.Equal((32, 4, TimeSpan.FromSeconds(60)), (ConsumerSettings.Default.Prefetch, ConsumerSettings.Default.Concurrency, ConsumerSettings.Default.HandlerTimeout));
        Assert.Equal((1000, TimeSpan.FromSeconds(2)), (ProducerSettings.Default.BufferSize, ProducerSettings.Default.ResendInterval));
    }

    [Theory]
    [InlineData("drop-oldest", FullMode.DropOldest)]
    [InlineData("drop-newest", FullMode.DropNewest)]
    [InlineData("reject", FullMode.Reject)]
    [InlineData("WAIT", FullMode.Wait)]
    public void Full_mode_is_read_from_its_hocon_spelling(string hocon, FullMode mode) =>
        Assert.Equal(mode, QueueSettings.Create(Hocon($"actor-queue.queue.full-mode = {hocon}")).FullMode);

    [Theory]
    [InlineData("capacity = 0", "actor-queue.queue.capacity = 0", "at least 1")]
    [InlineData("capacity = -3", "actor-queue.queue.capacity = -3", "at least 1")]
    [InlineData("capacity = lots", "actor-queue.queue.capacity = lots", "whole number")]
    [InlineData("ack-timeout = -1s", "actor-queue.queue.ack-timeout = -1s", "positive")]
    [InlineData("full-wait-timeout = 0s", "actor-queue.queue.full-wait-timeout = 0s", "positive")]
    [InlineData("full-mode = sideways", "actor-queue.queue.full-mode = sideways", "wait, reject, drop-oldest, drop-newest")]
    [InlineData("max-attempts = 0", "actor-queue.queue.max-attempts = 0", "at least 1")]
    [InlineData("retry.random-factor = 2", "actor-queue.queue.retry.random-factor = 2", "between 0 and 1")]
    [InlineData("retry { min-backoff = 2s, max-backoff = 1s }", "actor-queue.queue.retry.max-backoff", "min-backoff")]
    [InlineData("producer-credit = 0", "actor-queue.queue.producer-credit = 0", "at least 1")]
    public void Bad_queue_setting_fails_naming_the_key_and_the_value(string setting, string named, string rule)
    {
        var error = Assert.ThrowsAny<ConfigurationException>(() => QueueSettings.Create(Hocon($"actor-queue.queue {{ {setting} }}")));
        Assert.Contains(named, error.Message);
        Assert.Contains(rule, error.Message);
    }

    [Fact]
    public void Bad_per_queue_override_is_named_under_its_queue()
    {
        var error = Assert.Throws<ConfigurationException>(() => QueueSettings.Create(Hocon("actor-queue.queues.orders.max-attempts = 0"), "orders"));
        Assert.Contains("actor-queue.queues.\"orders\".max-attempts = 0", error.Message);
        Assert.Equal(7, QueueSettings.Create(Hocon("actor-queue.queues.orders.max-attempts = 7"), "orders").MaxAttempts);
        Assert.Equal(5, QueueSettings.Create(Hocon("actor-queue.queues.orders.max-attempts = 7"), "other").MaxAttempts);
    }

    [Theory]
    [InlineData("prefetch = 0", "actor-queue.consumer.prefetch = 0")]
    [InlineData("concurrency = -1", "actor-queue.consumer.concurrency = -1")]
    [InlineData("handler-timeout = -5s", "actor-queue.consumer.handler-timeout = -5s")]
    public void Bad_consumer_setting_fails_naming_the_key_and_the_value(string setting, string named) =>
        Assert.Contains(named, Assert.Throws<ConfigurationException>(() => ConsumerSettings.Create(Hocon($"actor-queue.consumer {{ {setting} }}"))).Message);

    [Fact]
    public void Bad_producer_setting_fails_naming_the_key_and_the_value() =>
        Assert.Contains("actor-queue.producer.buffer-size = 0",
            Assert.Throws<ConfigurationException>(() => ProducerSettings.Create(Hocon("actor-queue.producer.buffer-size = 0"))).Message);

    [Fact]
    public async Task Consumer_props_without_settings_read_the_actor_system_s_configuration()
    {
        using var system = Akka.Actor.ActorSystem.Create("props-config", ConfigurationFactory.ParseString("actor-queue.consumer.prefetch = 7"));
        var queue = new Akka.TestKit.TestProbe(system, new Akka.TestKit.Xunit2.XunitAssertions());
        system.ActorOf(ConsumerActor.Props(queue.Ref, (_, _) => Task.CompletedTask));
        Assert.Equal(7, (await queue.ExpectMsgAsync<ActorQueue.Protocol.Pull>()).Window);
        await system.Terminate();
    }

    [Fact]
    public void Settings_built_in_code_fail_naming_the_type_the_property_and_the_value()
    {
        AssertNamed("QueueSettings.Capacity = 0: it must be at least 1", () => new QueueSettings { Capacity = 0 });
        AssertNamed("QueueSettings.AckTimeout = -00:00:01: it must be positive", () => new QueueSettings { AckTimeout = TimeSpan.FromSeconds(-1) });
        AssertNamed("QueueSettings.MaxAttempts = 0: it must be at least 1", () => new QueueSettings { MaxAttempts = 0 });
        AssertNamed("QueueSettings.RetryMinBackoff = -00:00:01: it must not be negative", () => new QueueSettings { RetryMinBackoff = TimeSpan.FromSeconds(-1) });
        AssertNamed("ConsumerSettings.Prefetch = 0: it must be at least 1", () => new ConsumerSettings { Prefetch = 0 });
        AssertNamed("ConsumerSettings.Concurrency = -3: it must be at least 1", () => new ConsumerSettings { Concurrency = -3 });
        AssertNamed("ProducerSettings.BufferSize = 0: it must be at least 1", () => new ProducerSettings { BufferSize = 0 });
        AssertNamed("QueueClientOptions.MaxPending = 0: it must be at least 1", () => new ActorQueue.Client.QueueClientOptions { MaxPending = 0 });
        AssertNamed("QueueSettings.RetryRandomFactor = 1.5: it must be between 0 and 1", () => new QueueSettings { RetryRandomFactor = 1.5 });
        AssertNamed("ConsumerSettings.RestartRandomFactor = -0.1: it must be between 0 and 1", () => new ConsumerSettings { RestartRandomFactor = -0.1 });
        AssertNamed("DurableQueueOptions.SnapshotEvery = 0: it must be at least 1", () => new ActorQueue.Persistence.DurableQueueOptions { SnapshotEvery = 0 });
        var empty = Assert.Throws<ArgumentException>(() => new ActorQueue.Persistence.DurableQueueOptions { DataDirectory = " " });
        Assert.StartsWith("Invalid DurableQueueOptions.DataDirectory = \" \": it must not be empty.", empty.Message);

        static void AssertNamed(string expected, Func<object> create)
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(create);
            Assert.Contains(expected, e.Message);
            Assert.Equal(expected.Split('=')[0].Trim().Split('.')[1], e.ParamName);
        }
    }

    [Fact]
    public void Keys_under_actor_queue_that_nothing_reads_are_found_with_the_key_they_resemble()
    {
        var config = Hocon("""
            actor-queue.queue.capcity = 5
            actor-queue.queue.capacity = 5
            actor-queue.queues.orders { ack-timout = 1s, max-attempts = 3 }
            actor-queue.consumer.restart.max-backof = 1s
            actor-queue.bogus = 1
            actor-queue.queues.orders.retry = 3
            """);

        var unknown = ActorQueueConfig.UnknownKeys(config).OrderBy(u => u.Key, StringComparer.Ordinal).ToArray();

        Assert.Equal(new (string, string?)[]
        {
            ("actor-queue.bogus", null),
            ("actor-queue.consumer.restart.max-backof", "actor-queue.consumer.restart.max-backoff"),
            ("actor-queue.queue.capcity", "actor-queue.queue.capacity"),
            ("actor-queue.queues.\"orders\".ack-timout", "actor-queue.queues.\"orders\".ack-timeout"),
            ("actor-queue.queues.\"orders\".retry", null),
        }, unknown);
    }

    [Fact]
    public void The_reference_and_the_demo_s_configuration_hold_no_unknown_key()
    {
        Assert.Empty(ActorQueueConfig.UnknownKeys(ActorQueueConfig.Default()));
        var hostConf = Path.Combine(AppContext.BaseDirectory, "host.conf");
        Assert.Empty(ActorQueueConfig.UnknownKeys(ConfigurationFactory.ParseString(File.ReadAllText(hostConf)).WithFallback(ActorQueueConfig.Default())));
    }

    [Fact]
    public void Every_key_in_reference_conf_is_read_and_explained_by_a_comment()
    {
        var lines = File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "reference.conf"));
        var config = ActorQueueConfig.Default();
        var keys = 0;
        for (var i = 0; i < lines.Length; i++)
        {
            var match = Regex.Match(lines[i], @"^\s*([a-z-]+)\s*=");
            if (!match.Success) continue;
            keys++;
            // Walk up over the keys of the same group (no blank line between) to their comment, or to their section's opener.
            var j = i - 1;
            while (j >= 0 && Regex.IsMatch(lines[j], @"^\s*[a-z-]+\s*=")) j--;
            if (j >= 0 && lines[j].TrimEnd().EndsWith('{')) j--;
            Assert.True(j >= 0 && lines[j].TrimStart().StartsWith('#'), $"reference.conf line {i + 1} ({lines[i].Trim()}) has no comment above it or its section");
        }
        Assert.True(keys >= 20, $"expected every setting, found {keys}");
        Assert.True(config.HasPath("actor-queue.queue.capacity"));
    }

    /// <summary>
    /// Every key of reference.conf with a wrong value, one at a time: a value of the wrong kind, out of range, or naming
    /// nothing. Each is read where the library reads it (queue, consumer, producer and durable settings, the extension at
    /// start, the durable factory when a durable queue is made).
    /// </summary>
    public static TheoryData<string, string> EveryKeyWrong => new()
    {
        { "guardian-name", "\"not a name\"" },
        { "drain-on-shutdown", "maybe" },
        { "drain-timeout", "soon" },
        { "queue.capacity", "0" },
        { "queue.full-mode", "sideways" },
        { "queue.full-wait-timeout", "soon" },
        { "queue.ack-timeout", "0s" },
        { "queue.max-attempts", "lots" },
        { "queue.retry.min-backoff", "-1s" },
        { "queue.retry.max-backoff", "soon" },
        { "queue.retry.random-factor", "2" },
        { "queue.producer-credit", "0" },
        { "queue.credit-lease", "0s" },
        { "queue.producer-retention", "forever" },
        { "queue.dead-letter-capacity", "0" },
        { "queue.tick-interval", "-100ms" },
        { "queue.durable", "maybe" },
        { "durable.store", "mongodb" },
        { "durable.data-dir", "\"\"" },
        { "durable.file-name", "\" \"" },
        { "durable.connection-string", "\"\"" },
        { "durable.snapshot-every", "0" },
        { "durable.delete-on-snapshot", "maybe" },
        { "durable.journal-plugin-id", "\"\"" },
        { "durable.snapshot-plugin-id", "\"\"" },
        { "durable.factory", "\"No.Such.Factory, Nowhere\"" },
        { "consumer.prefetch", "0" },
        { "consumer.concurrency", "-1" },
        { "consumer.handler-timeout", "0s" },
        { "consumer.resync-interval", "soon" },
        { "consumer.reattach-timeout", "-5s" },
        { "consumer.restart.min-backoff", "0s" },
        { "consumer.restart.max-backoff", "1ms" },
        { "consumer.restart.random-factor", "1.5" },
        { "producer.buffer-size", "0" },
        { "producer.resend-interval", "soon" },
        { "producer.reattach-timeout", "0s" },
    };

    [Theory]
    [MemberData(nameof(EveryKeyWrong))]
    public async Task Every_key_set_wrong_fails_with_an_error_naming_the_key(string key, string value)
    {
        var full = $"actor-queue.{key}";
        // A PostgreSQL store needs its connection string: the empty one is wrong only there.
        var config = Hocon($"{full} = {value}" + (key == "durable.connection-string" ? "\nactor-queue.durable.store = postgresql" : ""));
        var error = key.Split('.')[0] switch
        {
            "queue" => Record.Exception(() => QueueSettings.Create(config)),
            "consumer" => Record.Exception(() => ConsumerSettings.Create(config)),
            "producer" => Record.Exception(() => ProducerSettings.Create(config)),
            "durable" when key != "durable.factory" => Record.Exception(() => ActorQueue.Persistence.DurableQueueOptions.Create(config)),
            _ => await SystemStartErrorAsync(config, durableQueue: key == "durable.factory"),
        };
        Assert.NotNull(error);
        var configurationError = error as ConfigurationException ?? error.InnerException as ConfigurationException;
        Assert.True(configurationError is not null, $"{full} = {value} failed with {error.GetType().Name}: {error.Message}");
        Assert.Contains(full, configurationError.Message);
        if (value.Trim('"').Trim() is { Length: > 0 } shown) Assert.Contains(shown, configurationError.Message);
    }

    // Starts a system with the configuration and the ActorQueue extension (and a durable queue): what fails first.
    private static async Task<Exception?> SystemStartErrorAsync(Config config, bool durableQueue)
    {
        var system = Akka.Actor.ActorSystem.Create("settings", config.WithFallback(Hocon("akka.loglevel = OFF")));
        try
        {
            var queues = system.ActorQueues();
            if (!durableQueue) return null;
            return await Record.ExceptionAsync(() => queues.CreateQueueAsync("durable", new QueueSettings { Durable = true }));
        }
        catch (Exception e)
        {
            return e;
        }
        finally
        {
            await system.Terminate();
        }
    }
}
