using System.Threading.Channels;
using ActorQueue.Protocol;
using Akka.Actor;

namespace ActorQueue.Client;

/// <summary>
/// One enqueue call of a <see cref="QueueClient{T}"/> waiting for its messages' answers: one message
/// (<see cref="IQueueClient{T}.EnqueueAsync"/>) or several in order (<see cref="IQueueClient{T}.EnqueueManyAsync"/>).
/// Its task's result is the number accepted. The producer settles each message as the queue answers (many at once, from
/// its cumulative acceptance); a cancellation settles those the producer has not taken. The producer takes a call's
/// messages in order and a cancellation stops it taking more, so what stays enqueued is always a prefix.
/// </summary>
internal sealed class EnqueueCall : TaskCompletionSource<int>
{
    private const int CancelledBit = 1 << 30;
    private readonly string _queueName;
    private readonly int _count;
    private readonly bool _single;
    private readonly CancellationToken _token;
    // How many messages the producer has taken, with CancelledBit once no more may be taken.
    private int _taken;
    private int _unsettled;
    private int _accepted;
    private Exception? _failure;
    private CancellationTokenRegistration _registration;

    public EnqueueCall(string queueName, int count, bool single, CancellationToken token)
        : base(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        _queueName = queueName;
        _count = _unsettled = count;
        _single = single;
        _token = token;
    }

    /// <summary>Set when a cancellation found messages already taken: the producer withdraws those it has not sent.</summary>
    public volatile bool WithdrawRequested;

    /// <summary>Watches <paramref name="feed"/>'s caller's token (once the call's messages are in the feed).</summary>
    public void WatchCancellation(ClientFeed feed)
    {
        if (!_token.CanBeCanceled) return;
        _registration = _token.UnsafeRegister(static (state, _) =>
        {
            var (call, f) = ((EnqueueCall, ClientFeed))state!;
            call.Cancel(f);
        }, (this, feed));
    }

    /// <summary>The producer takes the call's next message; false when the call was cancelled before it could.</summary>
    public bool TryTake()
    {
        while (true)
        {
            var taken = Volatile.Read(ref _taken);
            if ((taken & CancelledBit) != 0) return false;
            if (Interlocked.CompareExchange(ref _taken, taken + 1, taken) == taken) return true;
        }
    }

    /// <summary>
    /// Stops the producer taking more of the call's messages and settles those it never took as withdrawn (or as
    /// <paramref name="refused"/>, when the feed closed under the call); those it took but has not sent are withdrawn by
    /// it (asked through <paramref name="feed"/>). Sent ones get their real answer.
    /// </summary>
    public void Cancel(ClientFeed feed, EnqueueRejected? refused = null) =>
        CancelWith(feed, refused is null ? null : Exception(_queueName, refused));

    /// <summary>Fails the call with <paramref name="failure"/> (its client could not connect): nothing more of it is taken.</summary>
    public void Fail(ClientFeed feed, Exception failure) => CancelWith(feed, failure);

    private void CancelWith(ClientFeed feed, Exception? failure)
    {
        int taken;
        while (true)
        {
            taken = Volatile.Read(ref _taken);
            if ((taken & CancelledBit) != 0) return;
            if (Interlocked.CompareExchange(ref _taken, taken | CancelledBit, taken) == taken) break;
        }
        // Only the cancellation that won says why: a batch cancelled by its token keeps its count.
        if (failure is not null) Interlocked.CompareExchange(ref _failure, failure, null);
        var untaken = _count - taken;
        if (taken > 0)
        {
            WithdrawRequested = true;
            feed.RequestWithdrawal();
        }
        if (untaken > 0) Settle(untaken);
    }

    /// <summary>The queue accepted <paramref name="count"/> of the call's messages.</summary>
    public void Accepted(int count = 1)
    {
        Interlocked.Add(ref _accepted, count);
        Settle(count);
    }

    /// <summary>One of the call's messages was not enqueued: withdrawn before it was sent, or refused.</summary>
    public void NotAccepted(EnqueueRejected answer)
    {
        if (answer.Reason != RejectReason.Withdrawn && Volatile.Read(ref _failure) is null)
            Interlocked.CompareExchange(ref _failure, Exception(_queueName, answer), null);
        Settle(1);
    }

    private void Settle(int count)
    {
        if (Interlocked.Add(ref _unsettled, -count) != 0) return;
        _registration.Dispose();
        if (_failure is { } failure) TrySetException(failure);
        else if (_single && _accepted == 0) TrySetCanceled(_token.IsCancellationRequested ? _token : new CancellationToken(true));
        else TrySetResult(_accepted);
    }

    /// <summary>The exception a caller sees for <paramref name="answer"/>.</summary>
    public static ActorQueueException Exception(string queueName, EnqueueRejected answer) =>
        answer.Reason is RejectReason.Draining or RejectReason.QueueStopped
            ? new QueueClosedException(queueName, answer.Reason, answer.Detail)
            : new EnqueueRejectedException(queueName, answer.Reason, answer.Detail);
}

/// <summary>A message in a <see cref="ClientFeed"/>, and the call it belongs to.</summary>
internal readonly record struct FeedItem(object Message, EnqueueCall Call);

/// <summary>
/// The bounded buffer between a <see cref="QueueClient{T}"/>'s callers (any thread) and its <see cref="ProducerActor"/>:
/// callers append, and wait without blocking while it is full; the producer takes what its window has room for whenever
/// it is told there is something (one message per burst, not per call) and whenever the queue frees room.
/// </summary>
internal sealed class ClientFeed
{
    private readonly Channel<FeedItem> _channel;
    private IActorRef _producer = ActorRefs.Nobody;
    // 1 while the producer is known to look at the feed again by itself: callers then need not tell it.
    private int _signalled;

    public ClientFeed(string queueName, int capacity)
    {
        QueueName = queueName;
        _channel = Channel.CreateBounded<FeedItem>(new BoundedChannelOptions(capacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            // Read by its one producer, and, when the client closes or cannot connect, by the client: each item is settled
            // once whoever reads it (TryTake), so concurrent readers are safe.
            SingleReader = false,
            AllowSynchronousContinuations = false,
        });
    }

    public string QueueName { get; }

    /// <summary>Why the feed takes nothing more, once it is closed.</summary>
    public ActorQueueException? Closed { get; private set; }

    /// <summary>The producer that reads the feed (Nobody until one has attached).</summary>
    public IActorRef Producer => Volatile.Read(ref _producer);

    /// <summary>
    /// A producer attaches itself as it starts, before it can take anything; the first one only (false for any other,
    /// which must then leave the feed alone). It is told to look at once: a signal sent before it attached went nowhere.
    /// </summary>
    public bool Attach(IActorRef producer)
    {
        if (Interlocked.CompareExchange(ref _producer, producer, ActorRefs.Nobody) != ActorRefs.Nobody) return false;
        Interlocked.Exchange(ref _signalled, 1);
        producer.Tell(FeedReady.Instance);
        return true;
    }

    /// <summary>Appends <paramref name="item"/>, waiting for room; throws the feed's close reason once it is closed.</summary>
    public ValueTask WriteAsync(FeedItem item, CancellationToken cancellationToken)
    {
        if (_channel.Writer.TryWrite(item))
        {
            Signal();
            return ValueTask.CompletedTask;
        }
        return WriteSlowAsync(item, cancellationToken);
    }

    private async ValueTask WriteSlowAsync(FeedItem item, CancellationToken cancellationToken)
    {
        try
        {
            await _channel.Writer.WriteAsync(item, cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            throw Closed ?? new QueueClosedException(QueueName, RejectReason.QueueStopped, $"The client of queue {QueueName} is closed.");
        }
        Signal();
    }

    /// <summary>Throws the close reason when the feed is closed (a write would fail).</summary>
    public void ThrowIfClosed()
    {
        if (Closed is { } closed) throw closed;
    }

    private void Signal()
    {
        // Read first: while the producer is signalled already, callers do not fight over the flag's cache line.
        if (Volatile.Read(ref _signalled) == 0 && Interlocked.Exchange(ref _signalled, 1) == 0) Volatile.Read(ref _producer).Tell(FeedReady.Instance);
    }

    /// <summary>A cancelled call has messages the producer took: it withdraws those it has not sent.</summary>
    public void RequestWithdrawal() => Volatile.Read(ref _producer).Tell(FeedWithdraw.Instance);

    /// <summary>
    /// The producer's side: clears the signal, then takes items while <paramref name="room"/> allows, skipping those of
    /// cancelled calls. When it stops for lack of room it keeps the signal set: it looks again once room frees up.
    /// </summary>
    public void Drain(Func<bool> room, Action<FeedItem> take)
    {
        Interlocked.Exchange(ref _signalled, 0);
        while (true)
        {
            if (!room())
            {
                Interlocked.Exchange(ref _signalled, 1);
                return;
            }
            if (!_channel.Reader.TryRead(out var item)) return;
            if (item.Call.TryTake()) take(item);
        }
    }

    /// <summary>
    /// Takes out every item (only while no producer reads the feed: its client failed to connect) for
    /// <paramref name="fail"/>.
    /// </summary>
    public void DrainUnread(Action<FeedItem> fail)
    {
        while (_channel.Reader.TryRead(out var item)) fail(item);
    }

    /// <summary>
    /// Closes the feed: later writes fail with <paramref name="reason"/>, and every item still in it is taken out
    /// (for <paramref name="settle"/>), so no caller is left waiting.
    /// </summary>
    public void Close(ActorQueueException reason, Action<FeedItem> settle)
    {
        Closed ??= reason;
        _channel.Writer.TryComplete();
        while (_channel.Reader.TryRead(out var item))
            if (item.Call.TryTake()) settle(item);
    }
}

/// <summary>Tells a producer its client's feed has messages.</summary>
internal sealed class FeedReady : IInternalMessage
{
    public static readonly FeedReady Instance = new();
}

/// <summary>Tells a producer a cancelled call asks it to withdraw the messages it has not sent.</summary>
internal sealed class FeedWithdraw : IInternalMessage
{
    public static readonly FeedWithdraw Instance = new();
}

/// <summary>
/// A client closing: the producer withdraws everything it has not sent (the feed's items included) and answers
/// <see cref="Akka.Done"/> once nothing it sent waits for the queue's answer.
/// </summary>
internal sealed class CloseFeed(ActorQueueException reason) : IInternalMessage
{
    public ActorQueueException Reason { get; } = reason;
}
