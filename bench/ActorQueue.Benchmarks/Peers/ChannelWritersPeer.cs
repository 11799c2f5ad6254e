using System.Threading.Channels;

namespace ActorQueue.Benchmarks.Peers;

/// <summary>
/// The user-path peer: a bounded Channel (full mode Wait) written by the same writer tasks as the ActorQueue client
/// peers, each awaiting <c>WriteAsync</c> per message, and read by one reader task per consumer.
/// </summary>
internal sealed class ChannelWritersPeer : Peer
{
    public const string PeerName = "Channel (WriteAsync)";

    public override string Name => PeerName;

    public override string Description => "bounded Channel<T>, FullMode.Wait, capacity as the queue's; writer tasks await WriteAsync per message, WaitToReadAsync/TryRead readers";

    public override Task<IPeerRun> StartAsync(RunContext context)
    {
        var channel = Channel.CreateBounded<Work>(new BoundedChannelOptions(context.Capacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = context.Shape.Consumers == 1,
            SingleWriter = context.Shape.Producers == 1,
        });
        var cancel = new CancellationTokenSource();
        var readers = new Task[context.Shape.Consumers];
        for (var i = 0; i < readers.Length; i++)
            readers[i] = Task.Run(() => ChannelPeer.ConsumeAsync(channel.Reader, context.Probe, cancel.Token));
        var writers = Writers.OneAtATime(context.Shape.Producers, channel.Writer.WriteAsync);
        return Task.FromResult<IPeerRun>(new Run(writers, cancel, readers));
    }

    private sealed class Run(Writers writers, CancellationTokenSource cancel, Task[] readers) : IPeerRun
    {
        public void Emit(long count, long emittedAt) => writers.Emit(count, emittedAt);

        public async ValueTask DisposeAsync()
        {
            await writers.DisposeAsync();
            await cancel.CancelAsync();
            try
            {
                await Task.WhenAll(readers);
            }
            catch (OperationCanceledException)
            {
                // The readers end by cancellation.
            }
            cancel.Dispose();
        }
    }
}
