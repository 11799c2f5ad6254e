using ActorQueue.Core;
using ActorQueue.Protocol;
using ActorQueue.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace ActorQueue.Tests.Actors;

/// <summary>
/// A handler slot's cancellation: the handlers it runs one after another each have a token of their own, so a cancel
/// reaches the delivery it names and no other.
/// </summary>
public class HandlerWorkerSpec : Akka.TestKit.Xunit2.TestKit
{
    public HandlerWorkerSpec(ITestOutputHelper output) : base(Specs.Hocon, output: output) { }

    private static RingBuffer<Delivery> Chunk(params object[] messages)
    {
        var buffer = new RingBuffer<Delivery>();
        for (var i = 0; i < messages.Length; i++) buffer.PushBack(new Delivery(i + 1, messages[i], 1));
        return buffer;
    }

    private static async Task<long> RunningAsync(HandlerWorker worker, long deliveryId)
    {
        for (var spin = 0; spin < 3000; spin++)
        {
            if (worker.TryGetCurrent(out var id, out _) && id == deliveryId) return id;
            await Task.Delay(1);
        }
        throw new Xunit.Sdk.XunitException($"Delivery {deliveryId} never started.");
    }

    [Fact]
    public async Task A_cancel_reaches_the_delivery_it_names_and_the_next_one_starts_with_a_fresh_token()
    {
        var secondSawCancelled = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = QueueHandler.From(async (d, ct) =>
        {
            if ((string)d.Message == "hangs") await Task.Delay(Timeout.Infinite, ct);
            else secondSawCancelled.TrySetResult(ct.IsCancellationRequested);
        });
        var consumer = CreateTestProbe();
        var worker = new HandlerWorker(consumer.Ref, handler, Sys.Scheduler);
        worker.Start(Chunk("hangs", "next"), 2);
        await RunningAsync(worker, 1);

        worker.Cancel(1);

        Assert.False(await secondSawCancelled.Task.WaitAsync(TimeSpan.FromSeconds(3)));
        var finished = await consumer.FishForMessageAsync<WorkerReport>(r => r is WorkerReport { Progress: WorkerProgress.Finished }, TimeSpan.FromSeconds(3));
        Assert.Equal(2, finished.To);
    }

    [Fact]
    public async Task A_cancel_for_a_delivery_that_has_ended_does_not_reach_the_one_running_now()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var secondToken = new TaskCompletionSource<CancellationToken>(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = QueueHandler.From(async (d, ct) =>
        {
            if ((string)d.Message == "first") return;
            secondToken.TrySetResult(ct);
            await release.Task;
        });
        var consumer = CreateTestProbe();
        var worker = new HandlerWorker(consumer.Ref, handler, Sys.Scheduler);
        worker.Start(Chunk("first", "second"), 2);
        var token = await secondToken.Task.WaitAsync(TimeSpan.FromSeconds(3));
        await RunningAsync(worker, 2);

        worker.Cancel(1);

        Assert.False(token.IsCancellationRequested);
        worker.Cancel(2);
        Assert.True(token.IsCancellationRequested);
        release.SetResult();
        await consumer.FishForMessageAsync<WorkerReport>(r => r is WorkerReport { Progress: WorkerProgress.Finished }, TimeSpan.FromSeconds(3));
        Assert.False(worker.TryGetCurrent(out _, out _));
    }
}
