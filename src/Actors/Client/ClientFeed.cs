using System.Collections;
using ActorQueue.Core;
using ActorQueue.Protocol;
using Akka.Actor;

namespace ActorQueue.Client;

/// <summary>
/// One enqueue call of a <see cref="QueueClient{T}"/> whose messages could not all be accepted at once: one message
/// (<see cref="IQueueClient{T}.EnqueueAsync"/>) or several in order (<see cref="IQueueClient{T}.EnqueueManyAsync"/>).
/// It waits in its client's <see cref="ClientFeed"/> until its messages are taken, in order, and its task's result is the
/// number accepted. A cancellation stops anything more being taken and settles what was not, so what stays enqueued is
/// always a prefix.
/// </summary>
internal sealed class EnqueueCall : TaskCompletionSource<int>
{
    private const int CancelledBit = 1 << 30;

    /// <summary>The most messages one call may carry.</summary>
    public const int MaxCount = CancelledBit - 1;

    private readonly string _queueName;
    private readonly int _count;
    private readonly bool _single;
    private readonly CancellationToken _token;
    private readonly object? _one;
    private readonly IList? _many;
    // How many messages have been taken, with CancelledBit once no more may be taken.
    private int _taken;
    private int _unsettled;
    private int _accepted;
    private Exception? _failure;
    private CancellationTokenRegistration _registration;

    /// <summary>A call of one message.</summary>
    public EnqueueCall(string queueName, object message, CancellationToken token)
        : this(queueName, 1, single: true, token) => _one = message;

    /// <summary>A call of <paramref name="messages"/>, taken in order.</summary>
    public EnqueueCall(string queueName, IList messages, CancellationToken token)
        : this(queueName, messages.Count, single: false, token) => _many = messages;

    private EnqueueCall(string queueName, int count, bool single, CancellationToken token)
        : base(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, MaxCount);
        _queueName = queueName;
        _count = _unsettled = count;
        _single = single;
        _token = token;
    }

    /// <summary>Set when a cancellation found messages already taken: a producer withdraws those it has not sent.</summary>
    public volatile bool WithdrawRequested;

    /// <summary>True once nothing more of the call will be taken: all of it was, or it was cancelled.</summary>
    public bool Finished
    {
        get
        {
            var taken = Volatile.Read(ref _taken);
            return (taken & CancelledBit) != 0 || taken >= _count;
        }
    }

    /// <summary>The call's message at <paramref name="index"/>.</summary>
    public object MessageAt(int index) => _many is null ? _one! : _many[index]!;

    /// <summary>Watches the caller's token: a cancellation settles what <paramref name="feed"/> has not taken.</summary>
    public void WatchCancellation(ClientFeed feed)
    {
        if (!_token.CanBeCanceled) return;
        _registration = _token.UnsafeRegister(static (state, _) =>
        {
            var (call, f) = ((EnqueueCall, ClientFeed))state!;
            call.Cancel(f);
        }, (this, feed));
    }

    /// <summary>
    /// Takes up to <paramref name="max"/> of the call's next messages, from index <paramref name="first"/>; returns how
    /// many (0 when the call was cancelled or all of it was taken).
    /// </summary>
    public int TryTake(int max, out int first)
    {
        while (true)
        {
            var taken = Volatile.Read(ref _taken);
            first = taken & ~CancelledBit;
            if ((taken & CancelledBit) != 0) return 0;
            var n = Math.Min(max, _count - taken);
            if (n <= 0) return 0;
            if (Interlocked.CompareExchange(ref _taken, taken + n, taken) == taken) return n;
        }
    }

    /// <summary>
    /// Stops anything more of the call being taken and settles what was not as withdrawn (or as
    /// <paramref name="refused"/>, when the feed closed under the call); messages taken but not yet sent by a producer
    /// are withdrawn by it (asked through <paramref name="feed"/>). Taken ones get their real answer.
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
        if (taken > 0 && untaken > 0) WithdrawRequested = true;
        feed.Cancelled(this, withdraw: taken > 0);
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
        // Never waits for a cancellation callback running elsewhere (it may be the one settling).
        _registration.Unregister();
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

/// <summary>A message taken from a <see cref="ClientFeed"/> by a producer, and the call it belongs to.</summary>
internal readonly record struct FeedItem(object Message, EnqueueCall Call);

/// <summary>
/// The one way a <see cref="QueueClient{T}"/>'s callers (any thread) reach its queue. Calls wait here in call order,
/// like writers of a full bounded <c>Channel</c>, until they are served in one of two ways:
/// <list type="bullet">
/// <item>An in-memory queue in the same process registers the feed itself as a producer and grants it credit, which
/// reserves room in the queue. While credit lasts and nobody waits ahead, a call's messages are numbered and accepted
/// on the caller's thread, under one short lock, and the call completes at once; the queue takes what was numbered in
/// bursts (one message to it per burst) and, because it was within credit, always accepts it. Calls beyond credit wait
/// here, and are numbered (and complete) as the queue's answers bring more.</item>
/// <item>Any other queue (a durable one, whose acceptance is its journal's write) is served by the client's
/// <see cref="ProducerActor"/>, which takes the waiting calls' messages as its window has room and completes them as
/// the queue accepts them.</item>
/// </list>
/// </summary>
internal sealed class ClientFeed
{
    private readonly Lock _lock = new();
    // Calls with messages not yet taken, in call order: bounded by the calls callers keep open, as a Channel's writers.
    private readonly RingBuffer<EnqueueCall> _waiting = new();
    // Calls cancelled while waiting (a hint for compaction: they leave only when they reach the front).
    private int _cancelledWaiting;
    private volatile ActorQueueException? _closed;

    // Served by a producer: the producer, and 1 while it is known to look at the feed again by itself.
    private IActorRef _producer = ActorRefs.Nobody;
    private int _signalled;

    // Served by a queue in this process (all under _lock): the last number given, the credit granted, the last number
    // handed to the queue, and the numbered messages not yet handed over (at most credit - handed over).
    private IActorRef _queue = ActorRefs.Nobody;
    private bool _local;
    private long _last, _credit, _handedOver;
    private object[] _numbered = new object[64];
    private object[]? _spare;
    private int _numberedCount;
    private bool _queueSignalled;
    // Gave its unused credit back while idle: the next call that has to wait asks for credit again.
    private bool _released;
    private readonly LocalFeedReady _ready;
    private readonly FeedWantsCredit _wantsCredit;
    private readonly TaskCompletionSource _registered = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ClientFeed(string queueName, string producerId)
    {
        QueueName = queueName;
        ProducerId = producerId;
        _ready = new LocalFeedReady(this);
        _wantsCredit = new FeedWantsCredit(this);
        // A registration that fails (the queue closed first) may have nobody waiting for it.
        _registered.Task.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    public string QueueName { get; }

    /// <summary>The producer id the feed registers under with a queue in this process.</summary>
    public string ProducerId { get; }

    /// <summary>Why the feed takes nothing more, once it is closed.</summary>
    public ActorQueueException? Closed => _closed;

    /// <summary>The producer that reads the feed (Nobody until one has attached).</summary>
    public IActorRef Producer => Volatile.Read(ref _producer);

    /// <summary>How many calls wait in line (cancelled ones among them until they are cleared out).</summary>
    public int WaitingCalls
    {
        get
        {
            lock (_lock) return _waiting.Count;
        }
    }

    /// <summary>Completes once a queue in this process has registered the feed and said where it stands.</summary>
    public Task Registered => _registered.Task;

    // ---------------------------------------------------------------- callers

    /// <summary>
    /// Accepts <paramref name="message"/> on the caller's thread: true when a queue in this process serves the feed, it
    /// has credit left and no call waits ahead. False changes nothing: the caller waits its turn with <see cref="Add"/>.
    /// </summary>
    public bool TryAcceptNow(object message)
    {
        lock (_lock)
        {
            if (!_local || _closed is not null || _waiting.Count > 0 || _last >= _credit) return false;
            Number(message);
        }
        return true;
    }

    /// <summary>
    /// Adds <paramref name="call"/> behind the calls already waiting. What credit allows is taken at once (and the call
    /// told); the rest waits. A closed feed refuses the call with its close reason.
    /// </summary>
    public void Add(EnqueueCall call)
    {
        bool signalProducer = false, wantCredit = false;
        ActorQueueException? closed;
        lock (_lock)
        {
            closed = _closed;
            if (closed is null)
            {
                if (_cancelledWaiting > 16 && _cancelledWaiting > _waiting.Count / 2) Compact();
                _waiting.PushBack(call);
                if (_local)
                {
                    ServeWaiting();
                    if (_released && _waiting.Count > 0)
                    {
                        _released = false;
                        wantCredit = true;
                    }
                }
                else signalProducer = true;
            }
        }
        if (closed is not null) call.Cancel(this, new EnqueueRejected(0, closed.Reason, closed.Message));
        if (wantCredit) _queue.Tell(_wantsCredit);
        // Read first: while the producer is signalled already, callers do not fight over the flag's cache line.
        if (signalProducer && Volatile.Read(ref _signalled) == 0 && Interlocked.Exchange(ref _signalled, 1) == 0)
            Volatile.Read(ref _producer).Tell(FeedReady.Instance);
    }

    /// <summary>Throws the close reason when the feed is closed.</summary>
    public void ThrowIfClosed()
    {
        if (_closed is { } closed) throw closed;
    }

    /// <summary>
    /// A call was cancelled: it leaves the waiting line when it reaches the front (or when enough have been cancelled
    /// to compact the line), and a producer withdraws what it took and has not sent (<paramref name="withdraw"/>).
    /// </summary>
    public void Cancelled(EnqueueCall call, bool withdraw)
    {
        Interlocked.Increment(ref _cancelledWaiting);
        if (withdraw && !Volatile.Read(ref _local)) Volatile.Read(ref _producer).Tell(FeedWithdraw.Instance);
    }

    // Under _lock: drops cancelled and finished calls from the line.
    private void Compact()
    {
        var n = _waiting.Count;
        for (var i = 0; i < n; i++)
        {
            var call = _waiting.PopFront();
            if (!call.Finished) _waiting.PushBack(call);
        }
        Volatile.Write(ref _cancelledWaiting, 0);
    }

    // ---------------------------------------------------------------- served by a producer

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

    /// <summary>
    /// The producer's side: clears the signal, then takes messages in call order while <paramref name="room"/> allows,
    /// skipping cancelled calls. When it stops for lack of room it keeps the signal set: it looks again once room frees.
    /// </summary>
    public void Drain(Func<bool> room, Action<FeedItem> take)
    {
        lock (_lock)
        {
            Interlocked.Exchange(ref _signalled, 0);
            while (true)
            {
                if (!room())
                {
                    Interlocked.Exchange(ref _signalled, 1);
                    return;
                }
                if (_waiting.Count == 0) return;
                var call = _waiting.PeekFront();
                if (call.TryTake(1, out var index) == 1) take(new FeedItem(call.MessageAt(index), call));
                if (call.Finished) _waiting.PopFront();
            }
        }
    }

    /// <summary>
    /// Its client failed to connect: unless a queue in this process registered the feed meanwhile (and serves the
    /// waiting calls), every waiting call is taken out and failed with <paramref name="failure"/>. Decided under the
    /// feed's lock, so a registration landing at the same moment cannot serve part of a call that is then failed.
    /// </summary>
    public void FailWaitingUnlessServed(Exception failure)
    {
        List<EnqueueCall> calls;
        lock (_lock)
        {
            if (_local) return;
            calls = TakeAllWaiting();
        }
        foreach (var call in calls) call.Fail(this, failure);
    }

    /// <summary>
    /// Closes the feed: later calls fail with <paramref name="reason"/>'s reason, and every call still waiting is
    /// settled, its untaken messages withdrawn (<paramref name="answer"/> null: single calls see a cancellation) or
    /// refused with <paramref name="answer"/>. A queue's close replaces a client's (a stopped queue says so rather than
    /// "draining"); otherwise the first reason stays.
    /// </summary>
    public void Close(ActorQueueException reason, EnqueueRejected? answer, bool replace = false)
    {
        List<EnqueueCall> calls;
        lock (_lock)
        {
            if (replace || _closed is null) _closed = reason;
            calls = TakeAllWaiting();
        }
        _registered.TrySetException(reason);
        foreach (var call in calls) call.Cancel(this, answer);
    }

    /// <summary>
    /// The queue closes the feed for <paramref name="reason"/> (draining, stopped, or a registration it refused): later
    /// calls and every waiting call fail with an error saying so (<see cref="QueueClosedException"/> for draining and
    /// stopped); a queue's reason replaces a client's.
    /// </summary>
    public void CloseByQueue(RejectReason reason, string detail)
    {
        var answer = new EnqueueRejected(0, reason, detail);
        Close(EnqueueCall.Exception(QueueName, answer), answer, replace: true);
    }

    private List<EnqueueCall> TakeAllWaiting()
    {
        lock (_lock)
        {
            var calls = new List<EnqueueCall>(_waiting.Count);
            while (_waiting.Count > 0) calls.Add(_waiting.PopFront());
            Volatile.Write(ref _cancelledWaiting, 0);
            return calls;
        }
    }

    // ---------------------------------------------------------------- served by a queue in this process

    /// <summary>The queue (on its own thread) registers the feed; its first credit answer makes the feed local.</summary>
    public void AttachQueue(IActorRef queue)
    {
        lock (_lock) _queue = queue;
    }

    /// <summary>
    /// The queue (on its thread) lets the feed go: nothing more is numbered against the credit it held (which returns
    /// to the queue), and a later registration numbers on from what the queue then says it accepted. The queue takes
    /// what was numbered already right after.
    /// </summary>
    public void Detached()
    {
        lock (_lock)
        {
            _local = false;
            _credit = _last;
        }
    }

    /// <summary>
    /// The queue's cumulative answer (on its thread): everything up to <paramref name="acceptedSeqNr"/> is held, and
    /// messages may be numbered up to <paramref name="creditSeqNr"/>. Waiting calls are served in order from the new
    /// credit. The first answer says where numbering starts (a stable producer id continues its sequence).
    /// </summary>
    public void OnCredit(long acceptedSeqNr, long creditSeqNr)
    {
        lock (_lock)
        {
            if (_closed is not null) return;
            if (!_local)
            {
                _local = true;
                _last = _handedOver = acceptedSeqNr;
            }
            // Credit of a producer that keeps its credit only grows while it is registered.
            if (creditSeqNr > _credit) _credit = creditSeqNr;
            ServeWaiting();
        }
        _registered.TrySetResult();
    }

    /// <summary>
    /// The queue (on its thread) takes the messages numbered since it last did: <paramref name="items"/> holds
    /// <paramref name="count"/> of them, numbered from <paramref name="firstSeqNr"/>. Hand the array back with
    /// <see cref="Recycle"/> once they are in the queue.
    /// </summary>
    public bool TakeNumbered(out object[] items, out int count, out long firstSeqNr)
    {
        lock (_lock)
        {
            _queueSignalled = false;
            items = _numbered;
            count = _numberedCount;
            firstSeqNr = _handedOver + 1;
            if (count == 0) return false;
            _handedOver += count;
            _numbered = _spare ?? new object[items.Length];
            _spare = null;
            _numberedCount = 0;
            return true;
        }
    }

    /// <summary>
    /// The queue (on its thread) found the feed's credit unused for credit-lease: when nothing was numbered since the
    /// queue last took it and no call waits, the feed gives back the credit it holds (it may number up to
    /// <paramref name="upTo"/>, what it has numbered) and asks again when a call has to wait. False when it is busy.
    /// </summary>
    public bool TryRelease(out long upTo)
    {
        lock (_lock)
        {
            upTo = _last;
            if (!_local || _closed is not null || _numberedCount > 0 || _waiting.Count > 0 || _credit <= _last) return false;
            _credit = _last;
            _released = true;
            return true;
        }
    }

    /// <summary>An array from <see cref="TakeNumbered"/> whose messages the queue now holds: kept for the next burst.</summary>
    public void Recycle(object[] items, int count)
    {
        Array.Clear(items, 0, count);
        lock (_lock) _spare ??= items;
    }

    // Under _lock: gives the next number to an accepted message, and tells the queue there is some if it has not been
    // told since it last took them. Told here, under the lock, once per burst: whoever sees a call accepted (and then
    // asks the queue anything) finds the queue told first, even when another thread numbered the first of the burst.
    private void Number(object message)
    {
        if (_numberedCount == _numbered.Length) Array.Resize(ref _numbered, _numbered.Length * 2);
        _numbered[_numberedCount++] = message;
        _last++;
        if (_queueSignalled) return;
        _queueSignalled = true;
        _queue.Tell(_ready);
    }

    // Under _lock: numbers waiting calls' messages, in order, while credit lasts.
    private void ServeWaiting()
    {
        while (_waiting.Count > 0 && _last < _credit)
        {
            var call = _waiting.PeekFront();
            var n = call.TryTake((int)Math.Min(int.MaxValue, _credit - _last), out var first);
            for (var i = 0; i < n; i++) Number(call.MessageAt(first + i));
            if (n > 0) call.Accepted(n);
            if (!call.Finished) break;
            _waiting.PopFront();
        }
        if (_waiting.Count == 0) Volatile.Write(ref _cancelledWaiting, 0);
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
/// A client closing: the producer withdraws everything it has not sent (the feed's waiting calls included) and answers
/// <see cref="Akka.Done"/> once nothing it sent waits for the queue's answer.
/// </summary>
internal sealed class CloseFeed(ActorQueueException reason) : IInternalMessage
{
    public ActorQueueException Reason { get; } = reason;
}

/// <summary>Asks an in-memory queue to register a client's feed as a producer in its own process.</summary>
internal sealed class AttachFeed(ClientFeed feed) : IInternalMessage
{
    public ClientFeed Feed { get; } = feed;
}

/// <summary>Tells an in-memory queue a feed it registered has numbered messages for it (once per burst).</summary>
internal sealed class LocalFeedReady(ClientFeed feed) : IInternalMessage
{
    public ClientFeed Feed { get; } = feed;
}

/// <summary>A feed that gave its credit back has a call waiting: its queue grants it credit again.</summary>
internal sealed class FeedWantsCredit(ClientFeed feed) : IInternalMessage
{
    public ClientFeed Feed { get; } = feed;
}

/// <summary>A client closed: its queue takes what the feed numbered and lets the producer go.</summary>
internal sealed class DetachFeed(ClientFeed feed) : IInternalMessage
{
    public ClientFeed Feed { get; } = feed;
}
