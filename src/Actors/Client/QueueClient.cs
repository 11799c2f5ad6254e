using ActorQueue.Protocol;
using Akka.Actor;

namespace ActorQueue.Client;

/// <summary>
/// The <see cref="IQueueClient{T}"/> for one queue. Calls from any thread go through the client's feed, in call order.
/// An in-memory queue in the same process registers the feed as a producer and grants it credit: while credit lasts a
/// call is accepted on the caller's thread under one short lock and completes at once, and calls beyond it wait their
/// turn, like writers of a full bounded Channel. Any other queue (a durable one) is served by the client's
/// <see cref="ProducerActor"/>, which takes the waiting calls in bursts, sends what the queue's credit allows as numbered
/// batches and completes every call up to the queue's cumulative acceptance at once, keeping the protocol's promises
/// (resends after a lost message or a queue restart, deduplicated by sequence number). It connects on first use.
/// </summary>
/// <typeparam name="T">The message type.</typeparam>
public sealed class QueueClient<T> : IQueueClient<T>, IAsyncDisposable, IDisposable where T : notnull
{
    private readonly Func<ActorSystem> _system;
    private readonly QueueClientOptions _options;
    private readonly ClientFeed _feed;
    private readonly object _connectLock = new();
    private Task<Connection>? _connection;
    private volatile bool _disposing;
    // Under _connectLock: the producer a connection started, once it has; and whether a dispose stopped waiting for one.
    private IActorRef? _startedProducer;
    // The in-memory queue that serves the feed itself, once it has registered it.
    private IActorRef? _localQueue;
    // The system the producer runs in, whose termination ends any wait for the producer.
    private ActorSystem? _producerSystem;
    private bool _disposeGaveUp;

    /// <summary>
    /// Creates a client of <paramref name="queueName"/> in <paramref name="system"/>. Create one per queue and keep
    /// it (AddQueueClient registers it as a singleton): each instance is a producer the queue remembers (for
    /// producer-retention once the client is gone).
    /// </summary>
    /// <param name="system">The actor system the queue lives in.</param>
    /// <param name="queueName">The queue (created by the <see cref="ActorQueueExtension"/> or Akka.Hosting).</param>
    /// <param name="options">Producer id, pending limit and timeouts; null for the defaults.</param>
    public QueueClient(ActorSystem system, string queueName, QueueClientOptions? options = null)
        : this(() => system, queueName, options)
    {
        ArgumentNullException.ThrowIfNull(system);
    }

    internal QueueClient(Func<ActorSystem> system, string queueName, QueueClientOptions? options)
    {
        ArgumentException.ThrowIfNullOrEmpty(queueName);
        _system = system;
        QueueName = queueName;
        _options = options ?? new QueueClientOptions();
        _feed = new ClientFeed(queueName, _options.ProducerId ?? $"client-{queueName}-{Guid.NewGuid():N}");
    }

    /// <inheritdoc />
    public string QueueName { get; }

    /// <summary>How many calls wait in the client's line (for tests).</summary>
    internal int WaitingCalls => _feed.WaitingCalls;

    // Producer is null when the queue is in this process and serves the client's feed itself.
    private sealed record Connection(IActorRef Queue, IActorRef? Producer);

    /// <inheritdoc />
    public Task EnqueueAsync(T message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (cancellationToken.IsCancellationRequested) return Task.FromCanceled(cancellationToken);
        if (_disposing) return Task.FromException(Closing());
        // Accepted on this thread when the queue has granted the feed credit and nobody waits ahead: no allocation, no
        // message, nothing to wait for.
        if (_feed.TryAcceptNow(message)) return Task.CompletedTask;
        // Otherwise the call waits its turn (connected or not); it completes when the queue has accepted its message.
        var call = new EnqueueCall(QueueName, message, cancellationToken);
        call.WatchCancellation(_feed);
        _feed.Add(call);
        // Connecting is made sure of after the call is in the feed (see EnsureConnecting).
        EnsureConnecting();
        return call.Task;
    }

    /// <inheritdoc />
    public async Task<bool> TryEnqueueAsync(T message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        var c = await ConnectedAsync(cancellationToken).ConfigureAwait(false);
        _feed.ThrowIfClosed();
        // Room the queue reserved for this client is used first; without it, the queue decides (its full mode applies).
        if (_feed.TryAcceptNow(message)) return true;
        IEnqueueReply reply;
        try
        {
            // The queue answers at once; one that does not (a durable queue whose journal hangs) is not waited for ever.
            reply = await c.Queue.Ask<IEnqueueReply>(new Enqueue(message, 0, Wait: false), _options.AskTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (AskTimeoutException)
        {
            throw new TimeoutException($"Queue {QueueName} did not answer within {_options.AskTimeout}: the message may or may not have been accepted.");
        }
        if (reply is EnqueueRejected { Reason: RejectReason.QueueFull }) return false;
        if (reply is EnqueueRejected r) throw EnqueueCall.Exception(QueueName, r);
        return true;
    }

    /// <inheritdoc />
    public Task<int> EnqueueManyAsync(IEnumerable<T> messages, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        // Checked before anything is taken, so a null part-way through cannot leave half a batch enqueued.
        var batch = messages as System.Collections.IList ?? messages.ToList();
        if (batch.Count > EnqueueCall.MaxCount)
            throw new ArgumentOutOfRangeException(nameof(messages), batch.Count, $"EnqueueManyAsync takes at most {EnqueueCall.MaxCount} messages in one call.");
        foreach (var message in batch) ArgumentNullException.ThrowIfNull(message, nameof(messages));
        if (cancellationToken.IsCancellationRequested) return Task.FromCanceled<int>(cancellationToken);
        if (batch.Count == 0) return Task.FromResult(0);
        if (_disposing) return Task.FromException<int>(Closing());
        // One call for the whole batch: what credit allows is accepted at once, the rest waits its turn; a cancellation
        // stops anything more being taken, so what stays enqueued is a prefix.
        var call = new EnqueueCall(QueueName, batch, cancellationToken);
        call.WatchCancellation(_feed);
        _feed.Add(call);
        if (call.Task.IsCompletedSuccessfully) return call.Task;
        EnsureConnecting();
        return call.Task;
    }

    /// <inheritdoc />
    public async Task<QueueStats> GetStatsAsync(CancellationToken cancellationToken = default)
    {
        var c = await ConnectedAsync(cancellationToken).ConfigureAwait(false);
        return await c.Queue.Ask<QueueStats>(GetStats.Instance, _options.AskTimeout, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Closes the client: new calls fail with <see cref="QueueClosedException"/>; calls still waiting are withdrawn
    /// (their callers see <see cref="OperationCanceledException"/>, and a batch counts only what was accepted); what was
    /// accepted stays in the queue. Served by an in-memory queue, the queue then takes what the client accepted and lets
    /// its producer id go. Served by a producer, messages already sent get their real answer (waited for up to the ask
    /// timeout) and the producer stops, failing anything still unanswered as closed. A client still connecting finishes
    /// connecting first, so that nothing it started is left running.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        _disposing = true;
        var closed = new QueueClosedException(QueueName, RejectReason.QueueStopped, $"The client of queue {QueueName} was disposed.");
        Task<Connection>? connecting;
        lock (_connectLock) connecting = _connection;
        if (connecting is not null && !connecting.IsCompleted)
        {
            // Still connecting: let it finish (it is bounded by the ask timeout), so that the producer it starts is
            // stopped rather than left behind.
            try
            {
                await connecting.WaitAsync(_options.AskTimeout * 2).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // It failed or did not finish: there is nothing to stop (one finishing later stops its producer itself).
            }
        }
        IActorRef? started, local;
        ActorSystem? system;
        lock (_connectLock)
        {
            (started, local, system) = (_startedProducer, _localQueue, _producerSystem);
            _disposeGaveUp = started is null && local is null;
        }
        var disposed = new EnqueueRejected(0, RejectReason.QueueStopped, "The client was disposed.");
        if (local is not null)
        {
            // The queue serves the feed itself: what the feed numbered is accepted already and the queue takes it; calls
            // still waiting are withdrawn; then the queue lets the feed's producer id go (its credit returns to the queue).
            _feed.Close(closed, answer: null);
            local.Tell(new DetachFeed(_feed));
        }
        else if (started is not null && system is not null)
        {
            // The producer that reads the buffer (the one the connection started, unless an earlier attempt's got there first).
            var producer = _feed.Producer.IsNobody() ? started : _feed.Producer;
            try
            {
                // The producer closes the buffer, withdraws what it has not sent and answers once what it sent is settled.
                // A system that has stopped (a host stops it before its container disposes the client) answers nothing:
                // its producer stopped with it and failed what it held.
                var ask = producer.Ask<Akka.Done>(new CloseFeed(closed), _options.AskTimeout);
                await Task.WhenAny(ask, system.WhenTerminated).ConfigureAwait(false);
                if (ask.IsCompleted) await ask.ConfigureAwait(false);
            }
            catch (AskTimeoutException)
            {
                // The queue did not answer in time: stopping the producer fails what is left as closed.
            }
            producer.Tell(PoisonPill.Instance);
            // Whatever still waits in the feed (only possible when the producer stopped first) is answered as closed.
            _feed.Close(closed, disposed);
        }
        else
        {
            // Nothing serves the feed: a call is never left waiting.
            _feed.Close(closed, disposed);
        }
    }

    /// <summary>Closes the client; see <see cref="DisposeAsync"/>, which this waits for.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private QueueClosedException Closing() => new(QueueName, RejectReason.QueueStopped, $"The client of queue {QueueName} is closing.");

    // After a write: makes sure a connection is made or being made, so that what was written is read by a producer or,
    // if connecting fails, failed with the reason. A failed attempt fails what it finds in the buffer and clears itself
    // under the lock, so a write either lands before that (and is failed with it) or sees no attempt and starts one.
    private void EnsureConnecting()
    {
        var current = _connection;
        if (current is { IsCompletedSuccessfully: true }) return;
        lock (_connectLock)
        {
            if (_disposing) return;
            if (_connection is null || _connection.IsFaulted || _connection.IsCanceled) _connection = ConnectAsync();
        }
    }

    private Task<Connection> ConnectedAsync(CancellationToken cancellationToken)
    {
        var current = _connection;
        if (current is { IsCompletedSuccessfully: true } && !_disposing && _feed.Closed is null) return current;
        cancellationToken.ThrowIfCancellationRequested();
        if (_feed.Closed is { } closed) return Task.FromException<Connection>(closed);
        if (_disposing) return Task.FromException<Connection>(new QueueClosedException(QueueName, RejectReason.QueueStopped, $"The client of queue {QueueName} is closing."));
        Task<Connection> connecting;
        lock (_connectLock)
        {
            if (_disposing) return Task.FromException<Connection>(Closing());
            // A failed attempt (queue not created yet, guardian busy) is not kept: the next call tries again.
            if (_connection is null || _connection.IsFaulted || _connection.IsCanceled) _connection = ConnectAsync();
            connecting = _connection;
        }
        return connecting.IsCompletedSuccessfully ? connecting : connecting.WaitAsync(cancellationToken);
    }

    // A producer that stops settles what it holds and closes the feed; one that never started could not: this does.
    // (One that stopped because another producer already served the buffer leaves it alone.)
    private async Task CloseWhenTerminatedAsync(IActorRef producer)
    {
        await producer.WatchAsync().ConfigureAwait(false);
        if (!_feed.Producer.IsNobody() && !_feed.Producer.Equals(producer)) return;
        var closed = new QueueClosedException(QueueName, RejectReason.QueueStopped, $"The producer of the client of queue {QueueName} has stopped.");
        _feed.Close(closed, new EnqueueRejected(0, RejectReason.QueueStopped, closed.Message));
    }

    // The queue may not exist yet (a host still starting creates it): it is looked for again, with a growing pause, for
    // up to the ask timeout, then the call fails saying what to do.
    private async Task<QueueStarted> FindQueueAsync(IActorRef guardian)
    {
        var started = DateTime.UtcNow;
        var pause = TimeSpan.FromMilliseconds(10);
        while (true)
        {
            try
            {
                return await guardian.Ask<QueueStarted>(new GetQueue(QueueName), _options.AskTimeout).ConfigureAwait(false);
            }
            catch (InvalidOperationException) when (DateTime.UtcNow - started + pause < _options.AskTimeout && !_disposing)
            {
                await Task.Delay(pause).ConfigureAwait(false);
                pause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, TimeSpan.FromMilliseconds(500).Ticks));
            }
            catch (InvalidOperationException e)
            {
                throw new InvalidOperationException(
                    $"Queue {QueueName} does not exist (looked for it for {_options.AskTimeout.TotalSeconds:0.#} s): create it (WithActorQueue, CreateQueueAsync) " +
                    "and, under Akka.Hosting, use the client once the host has started.", e);
            }
        }
    }

    private async Task<Connection> ConnectAsync()
    {
        try
        {
            await Task.Yield(); // never connect on a caller's thread while it holds the lock
            var system = _system();
            var guardian = system.ActorQueues().Guardian;
            var found = await FindQueueAsync(guardian).ConfigureAwait(false);
            var queue = found.Queue;
            if (found.ServesLocalFeeds)
            {
                // An in-memory queue in this process registers the feed as its producer and grants it credit: calls are
                // then accepted on their callers' threads. Connected once it has said where the feed stands.
                lock (_connectLock)
                {
                    // Once asked, the queue may register the feed at any time: a dispose from here on lets it go
                    // (DetachFeed), and one that came first means it is never asked.
                    if (_disposing) throw Closing();
                    (_localQueue, _producerSystem) = (queue, system);
                    queue.Tell(new AttachFeed(_feed));
                }
                await _feed.Registered.WaitAsync(_options.AskTimeout).ConfigureAwait(false);
                return new Connection(queue, null);
            }
            var settings = ProducerSettings.Create(system.Settings.Config) with { BufferSize = _options.MaxPending };
            var start = new StartProducer(QueueName, _feed.ProducerId, settings) { Feed = _feed };
            // The producer attaches itself to the buffer as it starts.
            var producer = (await guardian.Ask<ProducerStarted>(start, _options.AskTimeout).ConfigureAwait(false)).Producer;
            _ = CloseWhenTerminatedAsync(producer);
            lock (_connectLock)
            {
                // A dispose that stopped waiting for this connection cannot stop its producer: this does, answering what it holds.
                if (_disposeGaveUp) producer.Tell(PoisonPill.Instance);
                else (_startedProducer, _producerSystem) = (producer, system);
            }
            return new Connection(queue, producer);
        }
        catch (TimeoutException e) when (_feed.Closed is null && !_feed.Registered.IsCompleted)
        {
            // The queue did not register the feed in time (it is busy, or stopped before it read the request): the calls
            // waiting fail, unless a registration landed meanwhile and serves them; the next call tries again (a
            // registration that lands later serves it at once).
            var failure = new TimeoutException($"Queue {QueueName} did not register the client within {_options.AskTimeout}; try again.", e);
            lock (_connectLock)
            {
                _feed.FailWaitingUnlessServed(failure);
                _connection = null;
            }
            throw failure;
        }
        catch (Exception e)
        {
            // Nothing serves the feed: the calls waiting in it fail with the reason, and the next call tries again.
            // (A producer that attached itself although its start was not confirmed in time serves them instead, and a
            // closed feed has answered them already.)
            lock (_connectLock)
            {
                if (_feed.Producer.IsNobody()) _feed.FailWaitingUnlessServed(e);
                _connection = null;
            }
            throw;
        }
    }
}
