using ActorQueue.Client;
using ActorQueue.Hosting;
using ActorQueue.Persistence;
using ActorQueue.Persistence.Hosting;
using ActorQueue.Tests.Support;
using Akka.Actor;
using Akka.Hosting;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace ActorQueue.Tests.Persistence;

/// <summary>Durable queues set up with Akka.Hosting: what one host accepted, the next host on the same store holds.</summary>
public sealed class DurableHostingSpec : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "actor-queue-tests", Guid.NewGuid().ToString("N"));

    private static async Task<IHost> StartAsync(DurableQueueOptions options, string queue)
    {
        var host = new HostBuilder().ConfigureServices(s => s
            .AddQueueClient<string>(queue)
            .AddAkka("durable-hosting", b =>
            {
                b.AddHocon(Akka.Configuration.ConfigurationFactory.ParseString(Specs.Hocon), HoconAddMode.Append);
                b.WithDurableActorQueues(options).WithActorQueue(o => o.AddQueue(queue, q => q.Durable = true));
            })).Build();
        await host.StartAsync();
        return host;
    }

    [SkippableTheory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task A_durable_queue_set_up_with_hosting_keeps_what_it_accepted_for_the_next_host(string store)
    {
        DurableQueueSpec.SkipWithoutPostgres(store);
        var options = store == "postgresql"
            ? new DurableQueueOptions { Store = DurableStore.PostgreSql, ConnectionString = Environment.GetEnvironmentVariable(DurableQueueSpec.PostgresVariable) }
            : new DurableQueueOptions { DataDirectory = _directory };
        // A queue of its own name: the PostgreSQL server is shared with other tests and runs.
        var name = $"orders-{Guid.NewGuid():N}";
        var words = Enumerable.Range(0, 20).Select(i => $"word-{i}-{Guid.NewGuid():N}").ToArray();

        var first = await StartAsync(options, name);
        var client = first.Services.GetRequiredService<IQueueClient<string>>();
        foreach (var word in words) await client.EnqueueAsync(word);
        await first.StopAsync();
        first.Dispose();

        var second = await StartAsync(options, name);
        try
        {
            var system = second.Services.GetRequiredService<ActorSystem>();
            var queue = await system.ActorQueues().GetQueueAsync(name);
            var held = new List<object>();
            var consumer = new Akka.TestKit.TestProbe(system, new Akka.TestKit.Xunit2.XunitAssertions());
            await consumer.PullAsync(queue, 1000);
            while (held.Count < (await queue.StatsAsync()).Held || held.Count == 0)
                held.AddRange((await consumer.ExpectMsgAsync<Protocol.DeliveryBatch>(TimeSpan.FromSeconds(10))).ToArray().Select(d => d.Message));
            Assert.Superset(words.ToHashSet<object>(), held.ToHashSet());
        }
        finally
        {
            await second.StopAsync();
            second.Dispose();
        }
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
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
