using System.Collections.Concurrent;
using ActorQueue.Protocol;
using Akka.Actor;

namespace ActorQueue.Client;

/// <summary>
/// The <see cref="IQueueClient{T}"/> for one queue: a supervised <see cref="ProducerActor"/> does the protocol,
/// a small actor routes its answers back to the waiting calls by correlation id. It connects on first use.
/// </summary>
/// <typeparam name="T">The message type.</typeparam>
public sealed class QueueClient<T> : IQueueClient<T>, IAsyncDisposable where T : notnull
{
    private readonly Func<ActorSystem> _system;
    private readonly QueueClientOptions _options;
    private readonly SemaphoreSlim _slots;
    private readonly ConcurrentDictionary<long, TaskCompletionSource<IEnqueueReply>> _pending = new();
    private readonly Lazy<Task<Connection>> _connection;
    private long _nextId;
    private volatile ActorQueueException? _closed;

    /// <summary>Creates a client of <paramref name="queueName"/> in <paramref name="system"/>.</summary>
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
        _connection = new Lazy<Task<Connection>>(ConnectAsync);
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
            var reply = await ProduceAsync(c, message, cancellationToken).ConfigureAwait(false);
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
        c.Queue.Tell(new Enqueue(message, id, Wait: false), c.Replies);
        var reply = await answer.ConfigureAwait(false);
        if (reply is EnqueueRejected { Reason: RejectReason.QueueFull }) return false;
        ThrowIfRejected(reply);
        return true;
    }

    /// <inheritdoc />
    public async Task<int> EnqueueManyAsync(IEnumerable<T> messages, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var c = await ConnectedAsync(cancellationToken).ConfigureAwait(false);
        var answers = new List<Task<IEnqueueReply>>();
        try
        {
            foreach (var message in messages)
            {
                ArgumentNullException.ThrowIfNull(message, nameof(messages));
                if (cancellationToken.IsCancellationRequested) break;
                try
                {
                    await _slots.WaitAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                answers.Add(ReleaseWhenDone(ProduceAsync(c, message, cancellationToken)));
            }
        }
        finally
        {
            // Whatever was handed over gets its answer; cancellation withdraws the ones not yet sent.
            await Task.WhenAll(answers).ConfigureAwait(false);
        }
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

    /// <summary>Stops the client's producer; calls still waiting fail with <see cref="QueueClosedException"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_connection.IsValueCreated) return;
        try
        {
            var c = await _connection.Value.ConfigureAwait(false);
            c.Producer.Tell(PoisonPill.Instance);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // It never connected; there is nothing to stop.
        }
        Close(new QueueClosedException(QueueName, RejectReason.QueueStopped, $"The client of queue {QueueName} was disposed."));
    }

    private async Task<IEnqueueReply> ProduceAsync(Connection c, T message, CancellationToken cancellationToken)
    {
        var (id, answer) = Expect();
        c.Producer.Tell(new Produce(message, id), c.Replies);
        if (!cancellationToken.CanBeCanceled) return await answer.ConfigureAwait(false);
        await using var withdraw = cancellationToken.Register(static state =>
        {
            var (producer, correlationId) = ((IActorRef, long))state!;
            producer.Tell(new WithdrawProduce(correlationId), ActorRefs.NoSender);
        }, (c.Producer, id));
        return await answer.ConfigureAwait(false);
    }

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

    private async Task<Connection> ConnectedAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (_closed is { } closed) throw closed;
        return await _connection.Value.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task<Connection> ConnectAsync()
    {
        var system = _system();
        var queues = system.ActorQueues();
        var queue = await queues.GetQueueAsync(QueueName).ConfigureAwait(false);
        var producerId = _options.ProducerId ?? $"client-{QueueName}-{Guid.NewGuid():N}";
        var settings = ProducerSettings.Create(system.Settings.Config) with { BufferSize = _options.MaxPending };
        var producer = await queues.StartProducerAsync(QueueName, producerId, settings).ConfigureAwait(false);
        var replies = system.ActorOf(Props.Create(() => new Replies(this, queue, producer)));
        return new Connection(queue, producer, replies);
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
