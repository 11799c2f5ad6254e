using System.Collections.Concurrent;
using ActorQueue.Client;
using ActorQueue.Hosting;
using ActorQueue.Protocol;
using ActorQueue.Tests.Support;
using Akka.Actor;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Xunit;

namespace ActorQueue.Tests.Hosting;

/// <summary>Builds real generic hosts on Akka.Hosting (Akka.Hosting.TestKit is xunit v3 only) and checks the result.</summary>
public sealed class HostingSpec : IAsyncLifetime
{
    private readonly List<IHost> _hosts = new();

    private sealed class OrdersQueue;

    private sealed class EmailsQueue;

    private async Task<IHost> StartAsync(Action<AkkaConfigurationBuilder> configure, Action<IServiceCollection>? services = null)
    {
        var host = new HostBuilder().ConfigureServices(s =>
        {
            services?.Invoke(s);
            s.AddAkka("hosting-spec", b =>
            {
                b.AddHocon(Akka.Configuration.ConfigurationFactory.ParseString(Specs.Hocon), HoconAddMode.Append);
                configure(b);
            });
        }).Build();
        try
        {
            await host.StartAsync();
        }
        catch
        {
            // A host that failed to start cannot be stopped (one that never built its services throws); it is disposed.
            host.Dispose();
            throw;
        }
        _hosts.Add(host);
        return host;
    }

    private static ActorSystem System(IHost host) => host.Services.GetRequiredService<ActorSystem>();

    private sealed class CapturingLoggerProvider : Microsoft.Extensions.Logging.ILoggerProvider
    {
        public ConcurrentQueue<(string Category, Microsoft.Extensions.Logging.LogLevel Level, string Message, Exception? Error)> Entries { get; } = new();

        public Microsoft.Extensions.Logging.ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose() { }

        private sealed class Logger(CapturingLoggerProvider provider, string category) : Microsoft.Extensions.Logging.ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

            public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                provider.Entries.Enqueue((category, logLevel, formatter(state, exception), exception));
        }
    }

    [Fact]
    public async Task With_the_logger_factory_configured_akka_and_actor_queue_log_through_the_app_s_ilogger()
    {
        var capture = new CapturingLoggerProvider();
        var host = await StartAsync(
            b => b.ConfigureLoggers(l =>
                {
                    l.ClearLoggers();
                    l.AddLoggerFactory();
                })
                .WithActorQueue("logged", maxAttempts: 1).WithQueueConsumer<ThrowingHandler>("logged"),
            s => s.AddLogging(l => l.AddProvider(capture)).AddTransient<ThrowingHandler>().AddQueueClient<string>("logged"));
        await host.Services.GetRequiredService<IQueueClient<string>>().EnqueueAsync("fails");
        await WaitUntil(() => capture.Entries.Any(e => e.Level == Microsoft.Extensions.Logging.LogLevel.Warning && e.Message.Contains("Consumer of logged", StringComparison.Ordinal)));
        var failure = capture.Entries.First(e => e.Level == Microsoft.Extensions.Logging.LogLevel.Warning && e.Message.Contains("Consumer of logged", StringComparison.Ordinal));
        Assert.IsType<InvalidOperationException>(failure.Error);
        Assert.Contains(capture.Entries, e => e.Message.Contains("Queue logged created", StringComparison.Ordinal));
    }

    private sealed class ThrowingHandler : IQueueHandler
    {
        public Task HandleAsync(Delivery delivery, CancellationToken cancellationToken) => throw new InvalidOperationException("handler says no");
    }

    [Fact]
    public async Task Arguments_overload_prepends_its_settings_and_creates_the_queue()
    {
        var host = await StartAsync(b => b.WithActorQueue("orders", capacity: 42, fullMode: FullMode.Reject, maxAttempts: 3, ackTimeout: TimeSpan.FromSeconds(7)));
        var config = System(host).Settings.Config;
        Assert.Equal(42, config.GetInt("actor-queue.queues.orders.capacity"));
        Assert.Equal("reject", config.GetString("actor-queue.queues.orders.full-mode"));
        Assert.Equal(TimeSpan.FromSeconds(7), config.GetTimeSpan("actor-queue.queues.orders.ack-timeout"));
        Assert.Equal(4, config.GetInt("actor-queue.consumer.concurrency")); // reference.conf appended behind
        var settings = QueueSettings.Create(System(host), "orders");
        Assert.Equal((42, FullMode.Reject, 3), (settings.Capacity, settings.FullMode, settings.MaxAttempts));
        var queue = await System(host).ActorQueues().GetQueueAsync("orders");
        Assert.Equal(42, (await queue.StatsAsync()).Capacity);
    }

    [Fact]
    public async Task Delegate_overload_creates_several_named_queues_and_registers_them_with_the_guardian()
    {
        var host = await StartAsync(b => b.WithActorQueue(o => o
            .AddQueue<OrdersQueue>("orders", q => q.Capacity = 10)
            .AddQueue<EmailsQueue>("emails", q => q.Capacity = 20)));
        var registry = host.Services.GetRequiredService<ActorRegistry>();
        Assert.Equal(System(host).ActorQueues().Guardian, await registry.GetAsync<QueueGuardian>());
        var orders = await host.Services.GetRequiredService<IRequiredActor<OrdersQueue>>().GetAsync();
        var emails = await host.Services.GetRequiredService<IRequiredActor<EmailsQueue>>().GetAsync();
        Assert.Equal(("orders", 10), ((await orders.StatsAsync()).QueueName, (await orders.StatsAsync()).Capacity));
        Assert.Equal(("emails", 20), ((await emails.StatsAsync()).QueueName, (await emails.StatsAsync()).Capacity));
    }

    [Fact]
    public async Task Options_overload_overrides_hocon_only_where_set()
    {
        var options = new ActorQueueOptions { DrainOnShutdown = false, ConsumerPrefetch = 3 };
        options.AddQueue("a", q => q.Capacity = 9).AddQueue("b");
        var host = await StartAsync(b => b
            .AddHocon(Akka.Configuration.ConfigurationFactory.ParseString("actor-queue.queue.capacity = 7"), HoconAddMode.Prepend)
            .WithActorQueue(options));
        var queues = System(host).ActorQueues();
        Assert.Equal(9, (await (await queues.GetQueueAsync("a")).StatsAsync()).Capacity);
        Assert.Equal(7, (await (await queues.GetQueueAsync("b")).StatsAsync()).Capacity);
        Assert.Equal(3, ConsumerSettings.Create(System(host).Settings.Config).Prefetch);
        Assert.False(System(host).Settings.Config.GetBoolean("actor-queue.drain-on-shutdown"));
    }

    [Fact]
    public void Options_are_written_as_hocon_with_null_meaning_keep_the_default()
    {
        var options = new ActorQueueOptions().AddQueue("q", o =>
        {
            o.FullMode = FullMode.DropOldest;
            o.RetryMinBackoff = TimeSpan.FromMilliseconds(250);
            o.TickInterval = TimeSpan.FromTicks(5_000); // half a millisecond is not rounded away
            o.RetryRandomFactor = 0.5;
        });
        var config = Akka.Configuration.ConfigurationFactory.ParseString(options.ToHocon());
        Assert.Equal("drop-oldest", config.GetString("actor-queue.queues.q.full-mode"));
        Assert.Equal(TimeSpan.FromMilliseconds(250), config.GetTimeSpan("actor-queue.queues.q.retry.min-backoff"));
        Assert.Equal(TimeSpan.FromTicks(5_000), config.GetTimeSpan("actor-queue.queues.q.tick-interval"));
        Assert.Equal(0.5, config.GetDouble("actor-queue.queues.q.retry.random-factor"));
        Assert.False(config.HasPath("actor-queue.queues.q.capacity"));
        Assert.False(config.HasPath("actor-queue.guardian-name"));
    }

    [Fact]
    public async Task Bad_option_fails_queue_creation_naming_the_hocon_key()
    {
        var system = ActorSystem.Create("bad-option", Akka.Configuration.ConfigurationFactory.ParseString(
            new ActorQueueOptions().AddQueue("orders", q => q.Capacity = 0).ToHocon()));
        try
        {
            var error = await Assert.ThrowsAsync<Akka.Configuration.ConfigurationException>(() => system.ActorQueues().CreateQueueAsync("orders"));
            Assert.Contains("actor-queue.queues.\"orders\".capacity = 0", error.Message);
        }
        finally
        {
            await system.Terminate();
        }
    }

    [Fact]
    public async Task A_bad_option_set_in_code_fails_host_start_up_once_naming_its_key_before_the_actor_system_starts()
    {
        var capture = new CapturingLoggerProvider();
        var error = await Assert.ThrowsAsync<Akka.Configuration.ConfigurationException>(() => StartAsync(
            b => b.ConfigureLoggers(l => { l.ClearLoggers(); l.AddLoggerFactory(); }).WithActorQueue("orders", capacity: 0),
            s => s.AddLogging(l => l.AddProvider(capture))));
        Assert.Equal("Invalid ActorQueue setting actor-queue.queues.\"orders\".capacity = 0: it must be at least 1.", error.Message);
        // The host reports its failed start; nothing else repeats it (no actor system was started to log it again).
        Assert.Single(capture.Entries, e => (e.Message + e.Error?.Message).Contains("capacity = 0", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_bad_setting_in_hocon_fails_start_up_and_actor_queue_does_not_log_it_a_second_time()
    {
        var capture = new CapturingLoggerProvider();
        var error = await Assert.ThrowsAsync<Akka.Configuration.ConfigurationException>(() => StartAsync(
            b => b.ConfigureLoggers(l => { l.ClearLoggers(); l.AddLoggerFactory(); })
                .AddHocon(Akka.Configuration.ConfigurationFactory.ParseString("actor-queue.queue.capacity = 0"), HoconAddMode.Prepend)
                .WithActorQueue("orders"),
            s => s.AddLogging(l => l.AddProvider(capture))));
        Assert.Contains("actor-queue.queue.capacity = 0", error.Message);
        Assert.DoesNotContain(capture.Entries, e => e.Category.StartsWith("Akka.Actor", StringComparison.Ordinal) && (e.Message + e.Error?.Message).Contains("capacity = 0", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(0, 1, 1, "concurrency: 0")]
    [InlineData(1, -2, 1, "prefetch: -2")]
    [InlineData(1, 1, 0, "instances: 0")]
    public void WithQueueConsumer_refuses_a_bad_argument_naming_it_and_its_queue(int concurrency, int prefetch, int instances, string named)
    {
        var builder = new AkkaConfigurationBuilder(new ServiceCollection(), "args");
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => builder.WithQueueConsumer<RecordingScopedHandler>("jobs", concurrency, prefetch, instances));
        Assert.StartsWith($"Invalid WithQueueConsumer(\"jobs\", {named}): it must be at least 1.", error.Message);
    }

    [Fact]
    public async Task A_misspelled_key_under_actor_queue_is_reported_with_the_key_it_resembles()
    {
        var capture = new CapturingLoggerProvider();
        await StartAsync(
            b => b.ConfigureLoggers(l => { l.ClearLoggers(); l.AddLoggerFactory(); })
                .AddHocon(Akka.Configuration.ConfigurationFactory.ParseString("actor-queue.queue.capcity = 5"), HoconAddMode.Prepend)
                .WithActorQueue("typo"),
            s => s.AddLogging(l => l.AddProvider(capture)));
        var warning = Assert.Single(capture.Entries, e => e.Level == Microsoft.Extensions.Logging.LogLevel.Warning && e.Message.Contains("capcity", StringComparison.Ordinal));
        Assert.Contains("Unknown ActorQueue setting actor-queue.queue.capcity is ignored (did you mean actor-queue.queue.capacity?)", warning.Message);
    }

    [Fact]
    public async Task Consumer_whose_handler_is_not_registered_fails_start_up()
    {
        var error = await Record.ExceptionAsync(() => StartAsync(b => b.WithActorQueue("jobs").WithQueueConsumer<RecordingScopedHandler>("jobs")));
        Assert.NotNull(error);
        Assert.Contains(nameof(RecordingScopedHandler), error.ToString());
    }

    [Fact]
    public async Task Consumer_from_di_gets_a_fresh_scoped_handler_per_delivery()
    {
        var seen = new ConcurrentBag<(string Message, Guid Handler, Guid Scope)>();
        var host = await StartAsync(
            b => b.WithActorQueue("jobs").WithQueueConsumer<RecordingScopedHandler>("jobs", concurrency: 2, prefetch: 4),
            s => s.AddSingleton(seen).AddScoped<ScopeMarker>().AddScoped<RecordingScopedHandler>().AddQueueClient<string>("jobs"));
        var client = host.Services.GetRequiredService<IQueueClient<string>>();
        for (var i = 0; i < 5; i++) await client.EnqueueAsync($"job-{i}");
        await WaitUntil(() => seen.Count == 5);
        Assert.Equal(5, seen.Select(s => s.Handler).Distinct().Count());
        Assert.Equal(5, seen.Select(s => s.Scope).Distinct().Count());
        Assert.Equal(Enumerable.Range(0, 5).Select(i => $"job-{i}"), seen.Select(s => s.Message).Order());
    }

    [Fact]
    public async Task A_typed_handler_s_scope_is_disposed_once_after_the_handler_ends_however_it_ends()
    {
        var log = new ScopeLog();
        var host = await StartAsync(
            b => b.WithActorQueue("scoped", maxAttempts: 1).WithQueueConsumer<ScopeUsingHandler, string>("scoped", concurrency: 1),
            s => s.AddSingleton(log).AddScoped<ScopedResource>().AddScoped<ScopeUsingHandler>().AddQueueClient<string>("scoped"));
        var client = host.Services.GetRequiredService<IQueueClient<string>>();
        // At once, after an await, throwing before returning a task, returning a faulted one, and at once in a scope
        // whose disposal completes later.
        foreach (var m in new[] { "at-once", "later", "throws", "faults", "disposes-later" }) await client.EnqueueAsync(m);

        await WaitUntil(() => log.Disposed.Count == 5);
        var stats = await client.GetStatsAsync();
        for (var wait = 0; stats.Acked + stats.DeadLettered < 5 && wait < 300; wait++)
        {
            await Task.Delay(10); // the settlements reach the queue after the scopes are disposed
            stats = await client.GetStatsAsync();
        }
        Assert.Equal((3L, 2L), (stats.Acked, stats.DeadLettered));
        Assert.Equal(new[] { "at-once", "disposes-later", "faults", "later", "throws" }, log.Disposed.Order());
        Assert.Empty(log.DisposedTooSoon);
        var queue = await host.Services.GetRequiredService<ActorSystem>().ActorQueues().GetQueueAsync("scoped");
        var dead = await queue.Ask<DeadLetterList>(new GetDeadLetters(), TimeSpan.FromSeconds(3));
        Assert.Contains(dead.Items, d => (string)d.Message == "throws" && d.Reason.Contains("thrown at once"));
        Assert.Contains(dead.Items, d => (string)d.Message == "faults" && d.Reason.Contains("faulted task"));
        await Task.Delay(100); // a second disposal would show by now
        Assert.Equal(5, log.Disposed.Count);
    }

    [Fact]
    public async Task Consumer_handlers_are_cancelled_when_the_host_stops()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var host = await StartAsync(
            b => b.AddHocon(Akka.Configuration.ConfigurationFactory.ParseString("akka.coordinated-shutdown.phases.service-requests-done.timeout = 500ms"), HoconAddMode.Prepend)
                  .WithActorQueue("slow").WithQueueConsumer<BlockingHandler>("slow"),
            s => s.AddSingleton(new BlockingHandler.Signals(started, cancelled)).AddTransient<BlockingHandler>().AddQueueClient<string>("slow"));
        await host.Services.GetRequiredService<IQueueClient<string>>().EnqueueAsync("stuck");
        await started.Task.WaitAsync(TimeSpan.FromSeconds(5));
        await host.StopAsync();
        await cancelled.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task StopAsync_drains_for_the_drain_timeout_not_the_phase_s_5s_default_so_a_slow_handler_finishes_everything()
    {
        // 200 messages at 40 ms each, one at a time: about 8 s of work, more than CoordinatedShutdown's default 5 s phase.
        var handled = new SlowHandler.Count();
        var host = await StartAsync(
            b => b.WithActorQueue(o =>
                {
                    o.DrainOnShutdown = true;
                    o.DrainTimeout = TimeSpan.FromSeconds(60);
                    o.AddQueue("slow-drain", q => q.Capacity = 200);
                })
                .WithQueueConsumer<SlowHandler, int>("slow-drain", concurrency: 1),
            s => s.AddSingleton(handled).AddTransient<SlowHandler>().AddQueueClient<int>("slow-drain"));
        Assert.Equal(200, await host.Services.GetRequiredService<IQueueClient<int>>().EnqueueManyAsync(Enumerable.Range(0, 200)));

        await host.StopAsync();

        Assert.Equal(200, handled.Value);
    }

    [Fact]
    public async Task Clients_are_registered_keyed_by_queue_name()
    {
        var host = await StartAsync(b => b.WithActorQueue(o => o.AddQueue("a").AddQueue("b")),
            s => s.AddQueueClient<int>("a").AddQueueClient<int>("b"));
        var a = host.Services.GetRequiredKeyedService<IQueueClient<int>>("a");
        var b = host.Services.GetRequiredKeyedService<IQueueClient<int>>("b");
        Assert.Same(a, host.Services.GetRequiredService<IQueueClient<int>>());
        await a.EnqueueAsync(1);
        await b.EnqueueAsync(2);
        await b.EnqueueAsync(3);
        Assert.Equal((1, 2), ((await a.GetStatsAsync()).Ready, (await b.GetStatsAsync()).Ready));
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!condition()) await Task.Delay(10, timeout.Token);
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var host in _hosts)
        {
            await host.StopAsync();
            host.Dispose();
        }
    }

    private sealed class ScopeMarker
    {
        public Guid Id { get; } = Guid.NewGuid();
    }

    private sealed class RecordingScopedHandler(ConcurrentBag<(string, Guid, Guid)> seen, ScopeMarker scope) : IQueueHandler
    {
        private readonly Guid _id = Guid.NewGuid();

        public Task HandleAsync(Delivery delivery, CancellationToken cancellationToken)
        {
            seen.Add(((string)delivery.Message, _id, scope.Id));
            return Task.CompletedTask;
        }
    }

    private sealed class ScopeLog
    {
        public ConcurrentQueue<string> Disposed { get; } = new();

        public ConcurrentQueue<string> DisposedTooSoon { get; } = new();
    }

    /// <summary>A scoped dependency that records its disposal, and whether its handler had ended by then.</summary>
    private sealed class ScopedResource(ScopeLog log) : IAsyncDisposable
    {
        public string Message { get; set; } = "";

        public bool HandlerEnded { get; set; }

        public ValueTask DisposeAsync()
        {
            // Start-up resolves the handler once, in a scope of its own, to check its registration: no message there.
            if (Message == "") return ValueTask.CompletedTask;
            if (!HandlerEnded) log.DisposedTooSoon.Enqueue(Message);
            if (Message != "disposes-later")
            {
                log.Disposed.Enqueue(Message);
                return ValueTask.CompletedTask;
            }
            return new ValueTask(Later());

            async Task Later()
            {
                await Task.Delay(20);
                log.Disposed.Enqueue(Message);
            }
        }
    }

    private sealed class ScopeUsingHandler(ScopedResource resource) : IQueueHandler<string>
    {
        public Task HandleAsync(string message, DeliveryContext context, CancellationToken cancellationToken)
        {
            resource.Message = message;
            switch (message)
            {
                case "at-once" or "disposes-later":
                    resource.HandlerEnded = true;
                    return Task.CompletedTask;
                case "throws":
                    resource.HandlerEnded = true;
                    throw new InvalidOperationException("thrown at once");
                case "faults":
                    resource.HandlerEnded = true;
                    return Task.FromException(new InvalidOperationException("a faulted task"));
                default:
                    return Later();
            }
        }

        private async Task Later()
        {
            await Task.Delay(20);
            resource.HandlerEnded = true;
        }
    }

    private sealed class SlowHandler(SlowHandler.Count count) : IQueueHandler<int>
    {
        public sealed class Count
        {
            private int _value;

            public int Value => Volatile.Read(ref _value);

            public void Add() => Interlocked.Increment(ref _value);
        }

        public async Task HandleAsync(int message, DeliveryContext context, CancellationToken cancellationToken)
        {
            await Task.Delay(40, cancellationToken);
            count.Add();
        }
    }

    private sealed class BlockingHandler(BlockingHandler.Signals signals) : IQueueHandler
    {
        public sealed record Signals(TaskCompletionSource Started, TaskCompletionSource Cancelled);

        public async Task HandleAsync(Delivery delivery, CancellationToken cancellationToken)
        {
            await using var _ = cancellationToken.Register(() => signals.Cancelled.TrySetResult());
            signals.Started.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
    }
}
