using System.Collections.Concurrent;
using ActorQueue.Client;
using ActorQueue.Protocol;
using ActorQueue.Tests.Support;
using Akka.Actor;
using Xunit;
using Xunit.Abstractions;

namespace ActorQueue.Tests.Client;

/// <summary>Typed handlers: messages as their type with a context, and a payload of another type dead-lettered at once.</summary>
public sealed class TypedHandlerSpec : Akka.TestKit.Xunit2.TestKit
{
    public TypedHandlerSpec(ITestOutputHelper output) : base(Specs.Hocon, output: output) { }

    public sealed record Email(string To);

    private sealed class EmailHandler(Func<Email, DeliveryContext, Task> handle) : IQueueHandler<Email>
    {
        public Task HandleAsync(Email message, DeliveryContext context, CancellationToken cancellationToken) => handle(message, context);
    }

    [Fact]
    public async Task A_typed_handler_gets_its_messages_with_a_message_id_that_stays_the_same_across_redeliveries()
    {
        var queue = await Sys.ActorQueues().CreateQueueAsync("mail", Specs.Queue(capacity: 100) with { MaxAttempts = 5 });
        var seen = new ConcurrentQueue<(string To, DeliveryContext Context)>();
        await Sys.ActorQueues().StartConsumerAsync("mail", new EmailHandler((m, c) =>
        {
            seen.Enqueue((m.To, c));
            // Each message fails its first attempt, so its second delivery shows what stays the same.
            return c.Attempt == 1 ? Task.FromException(new InvalidOperationException("try again")) : Task.CompletedTask;
        }));
        await using var client = new QueueClient<Email>(Sys, "mail");
        await client.EnqueueAsync(new Email("a@example.com"));
        await client.EnqueueAsync(new Email("b@example.com"));

        await AwaitAssertAsync(() => Assert.Equal(4, seen.Count), TimeSpan.FromSeconds(10));
        foreach (var group in seen.GroupBy(s => s.To))
        {
            var tries = group.OrderBy(s => s.Context.Attempt).Select(s => s.Context).ToList();
            Assert.Equal([1, 2], tries.Select(c => c.Attempt));
            Assert.Equal("mail", tries[0].QueueName);
            Assert.NotEqual(0, tries[0].MessageId);
            Assert.Equal(tries[0].MessageId, tries[1].MessageId);
            Assert.NotEqual(tries[0].DeliveryId, tries[1].DeliveryId);
        }
        Assert.Equal(2, seen.Select(s => s.Context.MessageId).Distinct().Count());
        Assert.Equal(0, (await queue.StatsAsync()).Dead);
    }

    [Fact]
    public async Task A_payload_of_another_type_is_dead_lettered_at_once_naming_both_types_and_never_retried()
    {
        var queue = await Sys.ActorQueues().CreateQueueAsync("typed", Specs.Queue(capacity: 100) with { MaxAttempts = 5 });
        var handled = new ConcurrentQueue<string>();
        await Sys.ActorQueues().StartConsumerAsync("typed", new EmailHandler((m, _) =>
        {
            handled.Enqueue(m.To);
            return Task.CompletedTask;
        }));
        var caller = CreateTestProbe();
        queue.Tell(new Enqueue(new Email("first@example.com"), 1), caller);
        queue.Tell(new Enqueue("not an email", 2), caller);
        queue.Tell(new Enqueue(new Email("last@example.com"), 3), caller);
        for (var i = 1; i <= 3; i++) await caller.ExpectMsgAsync(new EnqueueAccepted(i));

        await AwaitAssertAsync(async () => Assert.Equal(1, (await queue.StatsAsync()).Dead), TimeSpan.FromSeconds(10));
        var dead = Assert.Single((await queue.Ask<DeadLetterList>(new GetDeadLetters())).Items);
        Assert.Equal("not an email", dead.Message);
        Assert.Equal(1, dead.Attempts);
        Assert.Contains("expected Email, got String", dead.Reason);
        Assert.Contains(nameof(UnprocessableMessageException), dead.Reason);
        await AwaitAssertAsync(() => Assert.Equal(["first@example.com", "last@example.com"], handled.Order()), TimeSpan.FromSeconds(10));
        var stats = await queue.StatsAsync();
        Assert.Equal((0L, 0L), (stats.Redelivered, stats.Nacked - 1));
    }

    [Fact]
    public async Task A_handler_that_throws_unprocessable_dead_letters_the_message_at_once_with_the_exception_named()
    {
        var warnings = CreateTestProbe();
        Sys.EventStream.Subscribe(warnings.Ref, typeof(Akka.Event.Warning));
        var queue = await Sys.ActorQueues().CreateQueueAsync("malformed", Specs.Queue(capacity: 100) with { MaxAttempts = 5 });
        await Sys.ActorQueues().StartConsumerAsync("malformed", QueueHandler.From((d, _) =>
            (string)d.Message == "bad" ? throw new UnprocessableMessageException("no '@' in the address") : Task.CompletedTask));
        var caller = CreateTestProbe();
        queue.Tell(new Enqueue("bad", 1), caller);
        queue.Tell(new Enqueue("good", 2), caller);
        await AwaitAssertAsync(async () => Assert.Equal((1, 1L), ((await queue.StatsAsync()).Dead, (await queue.StatsAsync()).Acked)), TimeSpan.FromSeconds(10));
        var dead = Assert.Single((await queue.Ask<DeadLetterList>(new GetDeadLetters())).Items);
        Assert.Equal(1, dead.Attempts);
        Assert.Contains("UnprocessableMessageException: no '@' in the address", dead.Reason);
        // The queue's warning names the message id the dead-letter store lists and redrive takes.
        await warnings.FishForMessageAsync<Akka.Event.Warning>(w => w.Message?.ToString()?.Contains($"message {dead.MessageId} (delivery", StringComparison.Ordinal) == true, TimeSpan.FromSeconds(5));
        var redrive = CreateTestProbe();
        queue.Tell(new RedriveDeadLetter(dead.MessageId), redrive);
        Assert.Equal(1, (await redrive.ExpectMsgAsync<Redriven>()).Count);
    }

    [Fact]
    public async Task An_ordinary_handler_failure_is_kept_with_its_exception_type_in_the_dead_letter_store()
    {
        var queue = await Sys.ActorQueues().CreateQueueAsync("failing", Specs.Queue(capacity: 100) with { MaxAttempts = 2 });
        await Sys.ActorQueues().StartConsumerAsync("failing", QueueHandler.From((_, _) => throw new TimeoutException("smtp did not answer")));
        queue.Tell(new Enqueue("x", 1), CreateTestProbe());
        await AwaitAssertAsync(async () => Assert.Equal(1, (await queue.StatsAsync()).Dead), TimeSpan.FromSeconds(10));
        var dead = Assert.Single((await queue.Ask<DeadLetterList>(new GetDeadLetters())).Items);
        Assert.Equal(2, dead.Attempts);
        Assert.Contains("System.TimeoutException: smtp did not answer", dead.Reason);
    }
}
