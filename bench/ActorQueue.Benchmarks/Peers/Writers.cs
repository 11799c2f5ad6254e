using System.Threading.Channels;

namespace ActorQueue.Benchmarks.Peers;

/// <summary>
/// User code that writes: one task per writer, each creating the messages its emits allow and handing them to
/// <c>write</c> one at a time (awaiting each), or in batches of up to <c>batch</c> when <c>writeMany</c> is given.
/// The emits each writer has not got to yet wait in an unbounded channel, as the other peers' do in a mailbox.
/// </summary>
internal sealed class Writers : IAsyncDisposable
{
    private readonly Channel<Emit>[] _emits;
    private readonly CancellationTokenSource _cancel = new();
    private readonly Task[] _tasks;
    private int _next;

    private Writers(int count, Func<int, ChannelReader<Emit>, CancellationToken, Task> run)
    {
        _emits = new Channel<Emit>[count];
        _tasks = new Task[count];
        for (var i = 0; i < count; i++)
        {
            var index = i;
            var reader = (_emits[i] = Channel.CreateUnbounded<Emit>(new UnboundedChannelOptions { SingleReader = true })).Reader;
            _tasks[i] = Task.Run(() => run(index, reader, _cancel.Token));
        }
    }

    /// <summary>Writers that await <paramref name="write"/> for each message in turn.</summary>
    public static Writers OneAtATime(int count, Func<Work, CancellationToken, ValueTask> write) =>
        new(count, (index, emits, ct) => WriteEachAsync(index, emits, write, ct));

    /// <summary>
    /// Writers that keep up to <paramref name="open"/> calls of <paramref name="write"/> open each, awaiting the oldest
    /// when they have that many (a request handler fanning out, or Task.WhenAll over a page of work).
    /// </summary>
    public static Writers Open(int count, int open, Func<Work, CancellationToken, ValueTask> write) =>
        new(count, (index, emits, ct) => WriteOpenAsync(index, emits, open, write, ct));

    /// <summary>Writers that gather up to <paramref name="batch"/> messages (within one emit) and await <paramref name="writeMany"/>.</summary>
    public static Writers Batched(int count, int batch, Func<Work[], CancellationToken, ValueTask> writeMany) =>
        new(count, (index, emits, ct) => WriteBatchesAsync(index, emits, batch, writeMany, ct));

    /// <summary>Shares <paramref name="count"/> among the writers; small paced counts go round-robin.</summary>
    public void Emit(long count, long emittedAt)
    {
        if (_emits.Length == 1 || count >= _emits.Length)
        {
            for (var i = 0; i < _emits.Length; i++) _emits[i].Writer.TryWrite(new Emit(Probe.Share(count, _emits.Length, i), emittedAt));
            return;
        }
        for (var i = 0; i < count; i++) _emits[_next++ % _emits.Length].Writer.TryWrite(new Emit(1, emittedAt));
    }

    private static async Task WriteEachAsync(int index, ChannelReader<Emit> emits, Func<Work, CancellationToken, ValueTask> write, CancellationToken ct)
    {
        var seq = (long)index << Work.ProducerShift;
        await foreach (var e in emits.ReadAllAsync(ct))
            for (var i = 0; i < e.Count; i++)
                await write(new Work(++seq, e.EmittedAt), ct);
    }

    private static async Task WriteOpenAsync(int index, ChannelReader<Emit> emits, int open, Func<Work, CancellationToken, ValueTask> write, CancellationToken ct)
    {
        var seq = (long)index << Work.ProducerShift;
        var calls = new Queue<Task>(open);
        await foreach (var e in emits.ReadAllAsync(ct))
            for (var i = 0; i < e.Count; i++)
            {
                if (calls.Count == open) await calls.Dequeue();
                calls.Enqueue(write(new Work(++seq, e.EmittedAt), ct).AsTask());
            }
        while (calls.Count > 0) await calls.Dequeue();
    }

    private static async Task WriteBatchesAsync(int index, ChannelReader<Emit> emits, int batch, Func<Work[], CancellationToken, ValueTask> writeMany, CancellationToken ct)
    {
        var seq = (long)index << Work.ProducerShift;
        await foreach (var e in emits.ReadAllAsync(ct))
        {
            for (var left = e.Count; left > 0;)
            {
                // A fresh array per batch, as user code would build it; the client may keep it until it answers.
                var messages = new Work[Math.Min(batch, left)];
                for (var i = 0; i < messages.Length; i++) messages[i] = new Work(++seq, e.EmittedAt);
                await writeMany(messages, ct);
                left -= messages.Length;
            }
        }
    }

    /// <summary>Stops the writers (they end by cancellation) and waits for them.</summary>
    public async ValueTask DisposeAsync()
    {
        await _cancel.CancelAsync();
        try
        {
            await Task.WhenAll(_tasks);
        }
        catch (OperationCanceledException)
        {
            // The writers end by cancellation.
        }
        _cancel.Dispose();
    }
}
