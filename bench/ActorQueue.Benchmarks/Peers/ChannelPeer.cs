using System.Threading.Channels;

namespace ActorQueue.Benchmarks.Peers;

/// <summary>System.Threading.Channels bounded channel (full mode Wait): writer tasks and reader tasks, no actors.</summary>
internal sealed class ChannelPeer : Peer
{
    public override string Name => "Channel (bounded)";

    public override string Description => "bounded Channel<T>, FullMode.Wait, capacity as the queue's; WriteAsync/TryRead tasks";

    public override Task<IPeerRun> StartAsync(RunContext context)
    {
        var channel = Channel.CreateBounded<Work>(new BoundedChannelOptions(context.Capacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = context.Shape.Consumers == 1,
            SingleWriter = context.Shape.Producers == 1,
        });
        var cancel = new CancellationTokenSource();
        var emits = new Channel<Emit>[context.Shape.Producers];
        var tasks = new List<Task>();
        for (var i = 0; i < emits.Length; i++)
        {
            var index = i;
            var reader = (emits[i] = Channel.CreateUnbounded<Emit>(new UnboundedChannelOptions { SingleReader = true })).Reader;
            tasks.Add(Task.Run(() => ProduceAsync(index, reader, channel.Writer, cancel.Token)));
        }
        for (var i = 0; i < context.Shape.Consumers; i++)
            tasks.Add(Task.Run(() => ConsumeAsync(channel.Reader, context.Probe, cancel.Token)));
        return Task.FromResult<IPeerRun>(new Run(emits, cancel, tasks));
    }

    private static async Task ProduceAsync(int index, ChannelReader<Emit> emits, ChannelWriter<Work> writer, CancellationToken ct)
    {
        var seq = (long)index << Work.ProducerShift;
        await foreach (var e in emits.ReadAllAsync(ct))
        {
            for (var i = 0; i < e.Count; i++)
            {
                var w = new Work(++seq, e.EmittedAt);
                if (!writer.TryWrite(w)) await writer.WriteAsync(w, ct);
            }
        }
    }

    /// <summary>A reader: takes what is there, then waits for more.</summary>
    internal static async Task ConsumeAsync(ChannelReader<Work> reader, Probe probe, CancellationToken ct)
    {
        while (await reader.WaitToReadAsync(ct))
            while (reader.TryRead(out var w)) probe.Handle(w);
    }

    private sealed class Run(Channel<Emit>[] emits, CancellationTokenSource cancel, List<Task> tasks) : IPeerRun
    {
        private int _next;

        public void Emit(long count, long emittedAt)
        {
            if (emits.Length == 1)
            {
                emits[0].Writer.TryWrite(new Emit(count, emittedAt));
                return;
            }
            if (count < emits.Length)
            {
                for (var i = 0; i < count; i++) emits[_next++ % emits.Length].Writer.TryWrite(new Emit(1, emittedAt));
                return;
            }
            for (var i = 0; i < emits.Length; i++) emits[i].Writer.TryWrite(new Emit(Probe.Share(count, emits.Length, i), emittedAt));
        }

        public async ValueTask DisposeAsync()
        {
            await cancel.CancelAsync();
            try
            {
                await Task.WhenAll(tasks);
            }
            catch (OperationCanceledException)
            {
                // The tasks end by cancellation.
            }
            cancel.Dispose();
        }
    }
}
