using ActorQueue.Protocol;
using Akka.Actor;
using Akka.TestKit;

namespace ActorQueue.Tests.Support;

/// <summary>Configuration and short-hands shared by the actor specs.</summary>
internal static class Specs
{
    /// <summary>Fast ticks and short timeouts so that deadlines and retries happen within a test.</summary>
    public const string Hocon = """
        akka.loglevel = INFO
        akka.test.timefactor = 1
        actor-queue {
          drain-on-shutdown = off
          queue {
            tick-interval = 20ms
            ack-timeout = 5s
            full-wait-timeout = 1s
            retry { min-backoff = 10ms, max-backoff = 100ms }
          }
          consumer.restart { min-backoff = 50ms, max-backoff = 200ms }
          producer.resend-interval = 500ms
        }
        """;

    public static QueueSettings Queue(int capacity = 10, FullMode mode = FullMode.Reject) => new()
    {
        Capacity = capacity,
        FullMode = mode,
        TickInterval = TimeSpan.FromMilliseconds(20),
        AckTimeout = TimeSpan.FromSeconds(5),
        FullWaitTimeout = TimeSpan.FromSeconds(1),
        RetryMinBackoff = TimeSpan.FromMilliseconds(10),
        RetryMaxBackoff = TimeSpan.FromMilliseconds(100),
    };

    /// <summary>Registers <paramref name="consumer"/> with a pull and skips the registration reply.</summary>
    public static async Task PullAsync(this TestProbe consumer, IActorRef queue, int count)
    {
        queue.Tell(new Pull(count), consumer);
        await consumer.ExpectMsgAsync<ConsumerRegistered>();
    }

    /// <summary>Receives delivery batches until <paramref name="count"/> deliveries have arrived.</summary>
    public static async Task<List<Delivery>> ExpectDeliveriesAsync(this TestProbe consumer, int count, TimeSpan? timeout = null)
    {
        var all = new List<Delivery>();
        while (all.Count < count)
            all.AddRange((await consumer.ExpectMsgAsync<DeliveryBatch>(timeout)).ToArray());
        return all;
    }

    /// <summary>
    /// Receives what a producer sends a queue (single sequenced messages or batches, skipping credit requests) until
    /// <paramref name="count"/> numbered messages have arrived.
    /// </summary>
    public static async Task<List<(long SeqNr, object Message)>> ExpectSequencedAsync(this TestProbe queue, int count, TimeSpan? timeout = null)
    {
        var all = new List<(long, object)>();
        while (all.Count < count)
        {
            switch (await queue.ReceiveOneAsync(timeout ?? TimeSpan.FromSeconds(3)))
            {
                case SequencedMessage m: all.Add((m.SeqNr, m.Message)); break;
                case SequencedBatch b:
                    for (var i = 0; i < b.Messages.Length; i++) all.Add((b.FirstSeqNr + i, b.Messages[i]));
                    break;
                case RequestCredit: break;
                case var other: throw new Xunit.Sdk.XunitException($"Expected sequenced messages but got {other}.");
            }
        }
        return all;
    }

    public static async Task<QueueStats> StatsAsync(this IActorRef queue) =>
        await queue.Ask<QueueStats>(GetStats.Instance, TimeSpan.FromSeconds(3));
}
