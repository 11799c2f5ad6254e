using System.Collections.Concurrent;
using ActorQueue.Protocol;
using Akka.Actor;

namespace ActorQueue.Client;

/// <summary>
/// The <see cref="IQueueClient{T}"/> for one queue: a supervised <see cref="ProducerActor"/> does the protocol,
/// a small actor routes its answers back to the waiting calls by correlation id. It connects on first use.
/// </summary>
/// <typeparam name="T">The message type.</typeparam>
public sealed class QueueClient<T> : IQueueClient<T>, IAsyncDisposable, IDisposable where T : notnull
{
    private readonly Func<ActorSystem> _system;
    private readonly QueueClientOptions _options;
    private readonly SemaphoreSlim _slots;
    private readonly ConcurrentDictionary<long, TaskCompletionSource<IEnqueueReply>> _pending = new();
    private readonly object _connectLock = new();
    // Every send and the start of a dispose take this lock: once a dispose has begun nothing more is sent, and what was
    // sent before it is known to it (in _pending) and reached the producer ahead of its withdrawal.
    private readonly object _sendGate = new();
    private Task<Connection>? _connection;
    private long _nextId;
    private volatile bool _disposing;
    private volatile ActorQueueException? _closed;

    /// <summary>
    /// Creates a client of <paramref name="queueName"/> in <paramref name="system"/>. Create one per queue and keep
    /// it (AddQueueClient registers it as a singleton): each instance is a producer the queue remembers.
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
        _slots = new SemaphoreSlim(_options.MaxPending, _options.MaxPending);
    }

    /// <inheritdoc />
    public string QueueName { get; }

    private sealed record Connection(IActorRef Queue, IActorRef Producer, IActorRef Replies);

    /// <inheritdoc />
    public async Task EnqueueAsync(T message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        var c = await ConnectedAsync(cancellationToken).ConfigureAwait(false);
        await _slots.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var (id, answer) = Expect();
            Send(c.Producer, new Produce(message, id), id, c);
            IEnqueueReply reply;
            if (!cancellationToken.CanBeCanceled) reply = await answer.ConfigureAwait(false);
            else
            {
                await using (cancellationToken.Register(static state => ((Withdrawal)state!).Send(), new Withdrawal(c.Producer, id)))
                    reply = await answer.ConfigureAwait(false);
            }
            if (reply is EnqueueRejected { Reason: RejectReason.Withdrawn }) throw new OperationCanceledException(cancellationToken);
            ThrowIfRejected(reply);
        }
        finally
        {
            _slots.Release();
        }
    }

    /// <inheritdoc />
    public async Task<bool> TryEnqueueAsync(T message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        var c = await ConnectedAsync(cancellationToken).ConfigureAwait(false);
        var (id, answer) = Expect();
        Send(c.Queue, new Enqueue(message, id, Wait: false), id, c);
        IEnqueueReply reply;
        try
        {
            // The queue answers at once; one that does not (a durable queue whose journal hangs) is not waited for ever.
            reply = await answer.WaitAsync(_options.AskTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            _pending.TryRemove(id, out _);
            throw new TimeoutException($"Queue {QueueName} did not answer within {_options.AskTimeout}: the message may or may not have been accepted.");
        }
        if (reply is EnqueueRejected { Reason: RejectReason.QueueFull }) return false;
        ThrowIfRejected(reply);
        return true;
    }

    /// <inheritdoc />
    public async Task<int> EnqueueManyAsync(IEnumerable<T> messages, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        // Checked before anything is sent, so a null part-way through cannot leave half a batch enqueued.
        var batch = messages as IReadOnlyList<T> ?? messages.ToList();
        foreach (var message in batch) ArgumentNullException.ThrowIfNull(message, nameof(messages));
        var c = await ConnectedAsync(cancellationToken).ConfigureAwait(false);
        var ids = new List<long>(batch.Count);
        var answers = new List<Task<IEnqueueReply>>(batch.Count);
        // One withdrawal for the whole batch, handled at once by the producer: what stays sent is a prefix. Sends and
        // the withdrawal are ordered by one lock, so no message can slip in behind the withdrawal.
        await using var withdraw = cancellationToken.Register(() =>
        {
            lock (ids) c.Producer.Tell(new WithdrawProduce(ids.ToArray()), ActorRefs.NoSender);
        });
        foreach (var message in batch)
        {
            try
            {
                await _slots.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            var (id, answer) = Expect();
            lock (ids)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    _pending.TryRemove(id, out _);
                    _slots.Release();
                    break;
                }
                ids.Add(id);
                Send(c.Producer, new Produce(message, id), id, c);
            }
            answers.Add(ReleaseWhenDone(answer));
        }
        await Task.WhenAll(answers).ConfigureAwait(false);
        var accepted = 0;
        foreach (var answer in answers)
        {
            var reply = answer.Result;
            if (reply is EnqueueAccepted) accepted++;
            else if (reply is not EnqueueRejected { Reason: RejectReason.Withdrawn }) ThrowIfRejected(reply);
        }
        return accepted;
    }

    /// <inheritdoc />
    public async Task<QueueStats> GetStatsAsync(CancellationToken cancellationToken = default)
    {
        var c = await ConnectedAsync(cancellationToken).ConfigureAwait(false);
        return await c.Queue.Ask<QueueStats>(GetStats.Instance, _options.AskTimeout, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Closes the client: new calls, and calls that had not sent their message yet, fail with
    /// <see cref="QueueClosedException"/> (their message is never sent); messages the producer has not passed on are
    /// withdrawn (their callers see <see cref="OperationCanceledException"/>); messages already with the queue get their
    /// real answer (waited for up to the ask timeout); then the client's producer stops. A client still connecting
    /// finishes connecting first, so that nothing it started is left running.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        lock (_sendGate) _disposing = true;
        Task<Connection>? connecting;
        lock (_connectLock) connecting = _connection;
        if (connecting is not null && !connecting.IsCompleted)
        {
            // Still connecting: let it finish (it is bounded by the ask timeout), so that the producer it starts is
            // stopped rather than left behind; nothing will be sent through it.
            try
            {
                await connecting.WaitAsync(_options.AskTimeout * 2).ConfigureAwait(false);
            }
            catch (Exception e) when (e is TimeoutException or AskTimeoutException or ActorQueueException or InvalidOperationException or OperationCanceledException)
            {
                // It failed or did not finish: there is nothing to stop.
            }
        }
        if (connecting is not null && connecting.IsCompletedSuccessfully)
        {
            var c = connecting.Result;
            var waiting = _pending.ToArray();
            if (waiting.Length > 0)
            {
                c.Producer.Tell(new WithdrawProduce(waiting.Select(p => p.Key).ToArray()), ActorRefs.NoSender);
                await Task.WhenAny(Task.WhenAll(waiting.Select(p => p.Value.Task)), Task.Delay(_options.AskTimeout)).ConfigureAwait(false);
            }
            c.Producer.Tell(PoisonPill.Instance);
            c.Replies.Tell(PoisonPill.Instance);
        }
        Close(new QueueClosedException(QueueName, RejectReason.QueueStopped, $"The client of queue {QueueName} was disposed."));
    }

    /// <summary>Closes the client; see <see cref="DisposeAsync"/>, which this waits for.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private async Task<IEnqueueReply> ReleaseWhenDone(Task<IEnqueueReply> answer)
    {
        try
        {
            return await answer.ConfigureAwait(false);
        }
        finally
        {
            _slots.Release();
        }
    }

    // Sends unless a dispose has begun; then the call fails as closed, its message never sent.
    private void Send(IActorRef to, object message, long id, Connection c)
    {
        lock (_sendGate)
        {
            if (!_disposing)
            {
                to.Tell(message, c.Replies);
                return;
            }
        }
        if (_pending.TryRemove(id, out var tcs))
            tcs.TrySetException(_closed ?? new QueueClosedException(QueueName, RejectReason.QueueStopped, $"The client of queue {QueueName} is closing."));
    }

    private (long Id, Task<IEnqueueReply> Answer) Expect()
    {
        var id = Interlocked.Increment(ref _nextId);
        var tcs = new TaskCompletionSource<IEnqueueReply>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = tcs;
        // Closed between the check and here: fail at once rather than wait for an answer that will not come.
        if (_closed is { } closed && _pending.TryRemove(id, out _)) tcs.TrySetException(closed);
        return (id, tcs.Task);
    }

    private void Answer(IEnqueueReply reply)
    {
        if (_pending.TryRemove(reply.CorrelationId, out var tcs)) tcs.TrySetResult(reply);
    }

    private void Close(ActorQueueException reason)
    {
        _closed ??= reason;
        foreach (var id in _pending.Keys)
            if (_pending.TryRemove(id, out var tcs)) tcs.TrySetException(reason);
    }

    private void ThrowIfRejected(IEnqueueReply reply)
    {
        if (reply is not EnqueueRejected r) return;
        throw r.Reason is RejectReason.Draining or RejectReason.QueueStopped
            ? new QueueClosedException(QueueName, r.Reason, r.Detail)
            : new EnqueueRejectedException(QueueName, r.Reason, r.Detail);
    }

    private Task<Connection> ConnectedAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (_closed is { } closed) return Task.FromException<Connection>(closed);
        if (_disposing) return Task.FromException<Connection>(new QueueClosedException(QueueName, RejectReason.QueueStopped, $"The client of queue {QueueName} is closing."));
        Task<Connection> connecting;
        lock (_connectLock)
        {
            // A failed attempt (queue not created yet, guardian busy) is not kept: the next call tries again.
            if (_connection is null || _connection.IsFaulted || _connection.IsCanceled) _connection = ConnectAsync();
            connecting = _connection;
        }
        return connecting.IsCompletedSuccessfully ? connecting : connecting.WaitAsync(cancellationToken);
    }

    private async Task<Connection> ConnectAsync()
    {
        var system = _system();
        var guardian = system.ActorQueues().Guardian;
        var queue = (await guardian.Ask<QueueStarted>(new GetQueue(QueueName), _options.AskTimeout).ConfigureAwait(false)).Queue;
        var producerId = _options.ProducerId ?? $"client-{QueueName}-{Guid.NewGuid():N}";
        var settings = ProducerSettings.Create(system.Settings.Config) with { BufferSize = _options.MaxPending };
        var producer = (await guardian.Ask<ProducerStarted>(new StartProducer(QueueName, producerId, settings), _options.AskTimeout).ConfigureAwait(false)).Producer;
        var replies = system.ActorOf(Props.Create(() => new Replies(this, queue, producer)));
        return new Connection(queue, producer, replies);
    }

    /// <summary>The state of a cancellation callback: withdraws one request without a closure.</summary>
    private sealed class Withdrawal(IActorRef producer, long correlationId)
    {
        public void Send() => producer.Tell(new WithdrawProduce(correlationId), ActorRefs.NoSender);
    }

    /// <summary>Routes answers to the waiting calls; when the queue or producer stops, fails them all.</summary>
    private sealed class Replies : ReceiveActor
    {
        public Replies(QueueClient<T> client, IActorRef queue, IActorRef producer)
        {
            Context.Watch(queue);
            Context.Watch(producer);
            Receive<IEnqueueReply>(client.Answer);
            Receive<Terminated>(_ =>
            {
                client.Close(new QueueClosedException(client.QueueName, RejectReason.QueueStopped, $"Queue {client.QueueName} has stopped."));
                Context.Stop(Self);
            });
        }
    }
}
