using ActorQueue.Protocol;

namespace ActorQueue.Core;

/// <summary>
/// Everything one queue knows, and every decision it makes, as a single-threaded state machine: no clock
/// (time is an argument), no threads, no actors. Each operation decides, then changes the state only through
/// the <c>On*</c> mutators in QueueState.Apply.cs, each of which is one <see cref="QueueEvent"/>: with a recorder
/// attached the events of a run replay into an equal state.
/// </summary>
internal sealed partial class QueueState
{
    private readonly QueueSettings _settings;
    private readonly Random _random;
    private readonly Action<QueueEvent>? _recorder;
    private readonly IQueueObserver? _observer;

    // New messages in acceptance order; redeliveries (deadline missed, consumer lost, retry due) go to
    // their own ring, which is always served first so they overtake new work.
    private readonly RingBuffer<QueuedMessage> _ready;
    private readonly RingBuffer<QueuedMessage> _redeliver = new();
    private readonly Dictionary<long, InFlightDelivery> _inFlight = new();
    private readonly PriorityQueue<QueuedMessage, (TimeSpan Due, long MessageId)> _delayed = new();
    private readonly RingBuffer<DeadEntry> _dead = new();
    private readonly RingBuffer<ParkedMessage> _parked = new();

    private readonly Dictionary<string, ProducerState> _producers = new(StringComparer.Ordinal);
    private readonly List<ProducerState> _producerOrder = new();
    private readonly List<ProducerState> _activeProducerList = new();
    private readonly List<ProducerState> _dirtyProducers = new();
    private readonly Dictionary<int, ConsumerState> _consumers = new();
    private readonly List<ConsumerState> _hungry = new();

    private readonly List<long> _scratchIds = new();
    private ProducerState? _lastProducer;
    private QueueCounters _counters;
    private long _lastMessageId;
    private long _lastDeliveryId;
    private int _lastConsumerId;
    private long _outstandingCredit;
    private bool _draining;

    // Rotation points for fairness; scheduling hints, not state (replay may leave them elsewhere).
    private int _hungryCursor;
    private int _grantCursor;

    /// <param name="settings">Validated queue settings.</param>
    /// <param name="random">Source of retry jitter; seed it for deterministic runs.</param>
    /// <param name="recorder">Receives every event as it happens; null to record nothing.</param>
    /// <param name="observer">Told of deliveries for metrics; null for none.</param>
    public QueueState(QueueSettings settings, Random? random = null, Action<QueueEvent>? recorder = null, IQueueObserver? observer = null)
    {
        _settings = settings;
        _random = random ?? Random.Shared;
        _recorder = recorder;
        _observer = observer;
        _ready = new RingBuffer<QueuedMessage>(Math.Min(settings.Capacity, 1024));
    }

    /// <summary>Longest delay a nack may ask for; longer ones are shortened to it.</summary>
    public static readonly TimeSpan MaxNackDelay = TimeSpan.FromDays(1);

    public QueueSettings Settings => _settings;
    public int Capacity => _settings.Capacity;
    public int ReadyCount => _ready.Count + _redeliver.Count;
    public int InFlightCount => _inFlight.Count;
    public int DelayedCount => _delayed.Count;
    public int DeadCount => _dead.Count;
    public int ParkedCount => _parked.Count;

    /// <summary>Messages held: ready + in flight + delayed. Never above capacity.</summary>
    public int Held => ReadyCount + _inFlight.Count + _delayed.Count;

    /// <summary>Credit granted to producers and not yet used; reserved out of capacity.</summary>
    public long OutstandingCredit => _outstandingCredit;

    /// <summary>Room neither held nor reserved as credit.</summary>
    public long FreeCapacity => _settings.Capacity - Held - _outstandingCredit;

    public bool IsDraining => _draining;

    /// <summary>Draining and nothing held any more: the queue may stop.</summary>
    public bool IsDrained => _draining && Held == 0 && _parked.Count == 0;

    public int ConsumerCount => _consumers.Count;
    public int ActiveProducerCount => _activeProducerList.Count;
    public QueueCounters Counters => _counters;

    // ---------------------------------------------------------------- producers

    /// <summary>
    /// Registers or re-activates a producer; its sequence numbers continue where they were. It will get credit
    /// for at most <paramref name="demand"/> messages beyond those accepted, until it asks for more.
    /// </summary>
    public void RegisterProducer(string producerId, long demand = long.MaxValue)
    {
        var last = _producers.TryGetValue(producerId, out var known) ? known.LastSeqNr : 0;
        var demandSeqNr = demand >= long.MaxValue - last ? long.MaxValue : last + Math.Max(0, demand);
        OnProducerRegistered(producerId, demandSeqNr);
        Record(static (id, d) => new ProducerRegistered(id, d), producerId, demandSeqNr);
    }

    /// <summary>
    /// The producer has messages up to <paramref name="demandSeqNr"/> to send (its latest word counts: a lower
    /// number takes back credit it no longer needs); false for an unknown or inactive producer.
    /// </summary>
    public bool RequestCredit(string producerId, long demandSeqNr)
    {
        if (!_producers.TryGetValue(producerId, out var p) || !p.Active) return false;
        if (demandSeqNr == p.DemandSeqNr) return true;
        OnCreditRequested(producerId, demandSeqNr);
        Record(static (id, d) => new CreditRequested(id, d), producerId, demandSeqNr);
        return true;
    }

    /// <summary>The producer is gone: its unused credit returns to the queue (its sequence numbers are kept).</summary>
    public void DeactivateProducer(string producerId)
    {
        if (!_producers.TryGetValue(producerId, out var p) || !p.Active) return;
        OnProducerDeactivated(producerId);
        Record(static (id, _) => new ProducerDeactivated(id), producerId, 0);
    }

    public bool TryGetProducer(string producerId, out long acceptedSeqNr, out long creditSeqNr)
    {
        if (_producers.TryGetValue(producerId, out var p))
        {
            acceptedSeqNr = p.LastSeqNr;
            creditSeqNr = p.Active ? Math.Max(p.CreditSeqNr, p.LastSeqNr) : p.LastSeqNr;
            return true;
        }
        acceptedSeqNr = creditSeqNr = 0;
        return false;
    }

    /// <summary>
    /// Shares free capacity among producers that have something to send, each up to its fair window
    /// (producer-credit, and no more than capacity / such producers) and never beyond what it asked for.
    /// Small top-ups wait until they are worth a message, unless they complete the producer's demand or it
    /// has used all its credit.
    /// </summary>
    public void GrantCredit()
    {
        if (_draining || _parked.Count > 0 || _activeProducerList.Count == 0) return;
        var free = FreeCapacity;
        if (free <= 0) return;
        var wanting = 0;
        foreach (var p in _activeProducerList)
            if (p.DemandSeqNr > p.LastSeqNr) wanting++;
        if (wanting == 0) return;
        var window = Math.Max(1, Math.Min(_settings.ProducerCredit, _settings.Capacity / wanting));
        var batch = Math.Max(1, window / 2);
        var n = _activeProducerList.Count;
        for (var i = 0; i < n && free > 0; i++)
        {
            var p = _activeProducerList[(_grantCursor + i) % n];
            var current = Math.Max(p.CreditSeqNr, p.LastSeqNr);
            var wanted = Math.Min(p.LastSeqNr + window, p.DemandSeqNr) - current;
            var grant = Math.Min(wanted, free);
            if (grant <= 0 || (grant < batch && grant < wanted && p.Outstanding > 0)) continue;
            OnCreditGranted(p.Id, current + grant);
            Record(static (id, c) => new CreditGranted(id, c), p.Id, current + grant);
            free -= grant;
        }
        _grantCursor = (_grantCursor + 1) % n;
    }

    /// <summary>Producers whose accepted or credit sequence number changed since they were last told.</summary>
    public void CollectProducerUpdates(List<ProducerUpdate> output)
    {
        foreach (var p in _dirtyProducers)
        {
            p.Dirty = false;
            var credit = p.Active ? Math.Max(p.CreditSeqNr, p.LastSeqNr) : p.LastSeqNr;
            if (p.ReportedAccepted == p.LastSeqNr && p.ReportedCredit == credit) continue;
            p.ReportedAccepted = p.LastSeqNr;
            p.ReportedCredit = credit;
            output.Add(new ProducerUpdate(p.Id, p.LastSeqNr, credit));
        }
        _dirtyProducers.Clear();
    }

    /// <summary>Forces the next <see cref="CollectProducerUpdates"/> to report this producer (after it re-registers).</summary>
    public void ForgetReported(string producerId)
    {
        if (!_producers.TryGetValue(producerId, out var p)) return;
        p.ReportedAccepted = p.ReportedCredit = -1;
        MarkDirty(p);
    }

    // ---------------------------------------------------------------- enqueue

    /// <summary>
    /// A message without a producer: it may only use room that is neither held nor reserved. With
    /// <paramref name="mayWait"/> false, full mode wait rejects at once instead of parking.
    /// </summary>
    public EnqueueResult Enqueue(object? message, long correlationId, object? replyTo, TimeSpan now, bool mayWait = true)
    {
        if (message is null) return Reject(RejectReason.InvalidMessage, "The message is null.");
        if (_draining) return Reject(RejectReason.Draining, "The queue is draining and accepts nothing new.");
        return Admit(new ParkedMessage(message, null, 0, correlationId, now + _settings.FullWaitTimeout, replyTo), withinCredit: false, now, mayWait);
    }

    /// <summary>A numbered message from a registered producer, deduplicated and checked against its credit.</summary>
    public EnqueueResult EnqueueSequenced(string producerId, long seqNr, object? message, object? replyTo, TimeSpan now)
    {
        if (message is null) return Reject(RejectReason.InvalidMessage, $"Message {seqNr} of producer '{producerId}' is null.");
        if (!TryGetProducer(producerId, out var p) || !p.Active)
            return Reject(RejectReason.NotRegistered, $"Producer '{producerId}' is not registered with this queue; send RegisterProducer first.");
        if (seqNr <= p.LastSeqNr) return EnqueueResult.Duplicate;
        if (_draining) return Reject(RejectReason.Draining, "The queue is draining and accepts nothing new.");
        var expected = p.LastSeqNr + 1 + CountParked(producerId);
        if (seqNr != expected)
            return Reject(RejectReason.OutOfOrder, $"Producer '{producerId}' sent {seqNr} but {expected} was expected; resend from {expected}.");
        var withinCredit = seqNr <= p.CreditSeqNr;
        return Admit(new ParkedMessage(message, producerId, seqNr, seqNr, now + _settings.FullWaitTimeout, replyTo), withinCredit, now);
    }

    /// <summary>
    /// Takes the leading part of a run of numbered messages from one producer in one step: the messages that follow
    /// its last accepted number, fit its credit and are not null, up to the first that does not. Returns how many it
    /// took: 0 when the run is a resend or out of order, the producer is unknown or inactive, the queue is draining
    /// or messages are parked. The caller hands the rest to <see cref="EnqueueSequenced"/> one by one, which decides
    /// each of those cases exactly as it would have for the messages taken here.
    /// </summary>
    public int EnqueueSequencedRun(string producerId, long firstSeqNr, object?[] messages, TimeSpan now)
    {
        if (_draining || _parked.Count > 0 || !TryGetProducer(producerId, out var p) || !p.Active || firstSeqNr != p.LastSeqNr + 1) return 0;
        var count = (int)Math.Min(messages.Length, Math.Max(0, p.CreditSeqNr - p.LastSeqNr));
        for (var i = 0; i < count; i++)
        {
            if (messages[i] is not null) continue;
            count = i;
            break;
        }
        if (count == 0) return 0;
        var firstId = _lastMessageId + 1;
        OnMessagesAccepted(firstId, messages, count, producerId, firstSeqNr, now);
        if (_recorder is not null) _recorder(new MessagesAccepted(firstId, messages[..count]!, producerId, firstSeqNr, now));
        return count;
    }

    private EnqueueResult Admit(in ParkedMessage m, bool withinCredit, TimeSpan now, bool mayWait = true)
    {
        if (withinCredit || (_parked.Count == 0 && FreeCapacity > 0))
        {
            Accept(m, now, fromWaitList: false);
            return EnqueueResult.Accepted;
        }
        switch (_settings.FullMode)
        {
            case FullMode.DropOldest or FullMode.DropNewest when ReadyCount > 0 && _parked.Count == 0:
                var newest = _settings.FullMode == FullMode.DropNewest;
                var evicted = PeekEvictable(newest);
                OnMessageEvicted(evicted.MessageId, newest);
                Record(static (id, n) => new MessageEvicted(id, n == 1), evicted.MessageId, newest ? 1 : 0);
                Accept(m, now, fromWaitList: false);
                return EnqueueResult.Accepted with { Evicted = evicted };
            case FullMode.Wait when mayWait && _parked.Count < _settings.Capacity:
                OnMessageParked(m);
                if (_recorder is not null) _recorder(new MessageParked(m.Message, m.ProducerId, m.SeqNr, m.CorrelationId, m.Deadline, m.ReplyTo));
                return EnqueueResult.Parked;
            default:
                return Reject(RejectReason.QueueFull, $"The queue is full ({Held} held, {_outstandingCredit} reserved as credit, capacity {_settings.Capacity}) and its full mode is {_settings.FullMode}.");
        }
    }

    private void Accept(in ParkedMessage m, TimeSpan now, bool fromWaitList)
    {
        var id = _lastMessageId + 1;
        OnMessageAccepted(id, m.Message, m.ProducerId, m.SeqNr, now, fromWaitList);
        if (_recorder is not null) _recorder(new MessageAccepted(id, m.Message, m.ProducerId, m.SeqNr, now, fromWaitList));
    }

    /// <summary>Accepts parked messages, oldest first, while there is room; reports each to <paramref name="output"/>.</summary>
    public void AdmitParked(TimeSpan now, List<ParkedOutcome> output)
    {
        while (_parked.Count > 0 && FreeCapacity > 0)
        {
            var m = _parked.PeekFront();
            if (m.ProducerId is not null
                && (!_producers.TryGetValue(m.ProducerId, out var p) || !p.Active || m.SeqNr != p.LastSeqNr + 1))
            {
                RejectParked(RejectReason.OutOfOrder, $"Parked message {m.SeqNr} of producer '{m.ProducerId}' no longer follows its accepted sequence.", output);
                continue;
            }
            Accept(m, now, fromWaitList: true);
            output.Add(new ParkedOutcome(m, true, default, null));
        }
    }

    private int CountParked(string producerId)
    {
        if (_parked.Count == 0) return 0;
        var n = 0;
        for (var i = 0; i < _parked.Count; i++)
            if (string.Equals(_parked[i].ProducerId, producerId, StringComparison.Ordinal)) n++;
        return n;
    }

    private EnqueueResult Reject(RejectReason reason, string detail)
    {
        OnMessageRejected();
        Record(static (r, _) => new MessageRejected(r), reason, 0);
        return EnqueueResult.Rejected(reason, detail);
    }

    /// <summary>Rejects every parked message (the queue is draining or stopping).</summary>
    public void RejectAllParked(RejectReason reason, string detail, List<ParkedOutcome> output)
    {
        while (_parked.Count > 0) RejectParked(reason, detail, output);
    }

    private void RejectParked(RejectReason reason, string detail, List<ParkedOutcome> output)
    {
        var m = _parked.PeekFront();
        OnParkedRejected();
        Record(static (r, _) => new ParkedMessageRejected(r), reason, 0);
        output.Add(new ParkedOutcome(m, false, reason, detail));
    }

    /// <summary>Counts a bad request (unknown message, bad pull, wrong holder) that was answered with an error.</summary>
    public void RecordInvalid()
    {
        OnInvalidRequest();
        _recorder?.Invoke(new InvalidRequestRecorded());
    }

    // ---------------------------------------------------------------- consumers

    public int AddConsumer()
    {
        var id = _lastConsumerId + 1;
        OnConsumerAdded(id);
        Record(static (i, _) => new ConsumerAdded((int)i), id, 0);
        return id;
    }

    public bool HasConsumer(int consumerId) => _consumers.ContainsKey(consumerId);

    /// <summary>Adds demand; false (and nothing changes) for an unknown consumer or a count below 1.</summary>
    public bool Pull(int consumerId, int count)
    {
        if (count < 1 || !_consumers.ContainsKey(consumerId)) return false;
        OnDemandAdded(consumerId, count);
        Record(static (c, n) => new DemandAdded((int)c, (int)n), consumerId, count);
        return true;
    }

    /// <summary>
    /// The consumer is gone: each delivery it held goes back ahead of new work (or to the dead-letter store when
    /// it has used max-attempts). Returns how many deliveries it held.
    /// </summary>
    public int RemoveConsumer(int consumerId, TimeSpan now)
    {
        if (!_consumers.ContainsKey(consumerId)) return 0;
        _scratchIds.Clear();
        foreach (var (id, d) in _inFlight)
            if (d.ConsumerId == consumerId) _scratchIds.Add(id);
        _scratchIds.Sort();
        foreach (var id in _scratchIds)
            TakeBack(id, now, "consumer terminated before settling the delivery");
        OnConsumerRemoved(consumerId);
        Record(static (c, _) => new ConsumerRemoved((int)c), consumerId, 0);
        return _scratchIds.Count;
    }

    /// <summary>Hands ready messages (redeliveries first) to consumers with demand, spread round-robin.</summary>
    public void Dispatch(TimeSpan now, List<ConsumerDispatch> output)
    {
        while (ReadyCount > 0 && _hungry.Count > 0)
        {
            if (_hungryCursor >= _hungry.Count) _hungryCursor = 0;
            var c = _hungry[_hungryCursor];
            var share = Math.Max(1, ReadyCount / _hungry.Count);
            var take = (int)Math.Min(c.Demand, share);
            var messages = new object[take];
            int[]? attempts = null;
            var first = _lastDeliveryId + 1;
            var deadline = now + _settings.AckTimeout;
            for (var i = 0; i < take; i++)
            {
                var deliveryId = _lastDeliveryId + 1;
                var m = OnMessageDelivered(deliveryId, NextReady().MessageId, c, deadline);
                if (_recorder is not null) _recorder(new MessageDelivered(deliveryId, m.MessageId, c.Id, deadline));
                _observer?.Delivered(now - m.AcceptedAt);
                messages[i] = m.Message;
                if (m.Attempts != 1)
                {
                    // Only batches with redeliveries in them carry attempt numbers.
                    if (attempts is null)
                    {
                        attempts = new int[take];
                        Array.Fill(attempts, 1);
                    }
                    attempts[i] = m.Attempts;
                }
            }
            output.Add(new ConsumerDispatch(c.Id, new DeliveryBatch(first, messages, attempts)));
            // OnMessageDelivered drops a consumer from _hungry when its demand is used up.
            if (_hungryCursor < _hungry.Count && ReferenceEquals(_hungry[_hungryCursor], c)) _hungryCursor++;
        }
    }

    public SettleError? Ack(int consumerId, long deliveryId)
    {
        var error = CheckHolder(consumerId, deliveryId);
        if (error is not null) return error;
        OnDeliveryAcked(deliveryId);
        Record(static (d, _) => new DeliveryAcked(d), deliveryId, 0);
        return null;
    }

    /// <summary>
    /// Acks the deliveries <paramref name="from"/> to <paramref name="to"/> as <see cref="Ack"/> would one by one;
    /// each one it refuses goes to <paramref name="refused"/> with the reason. Every unbroken stretch it can ack is
    /// taken in one step.
    /// </summary>
    public void AckRange(int consumerId, long from, long to, List<(long DeliveryId, SettleError Error)> refused)
    {
        var start = from;
        for (var id = from; id <= to; id++)
        {
            if (CheckHolder(consumerId, id) is not { } error) continue;
            AckStretch(start, id - 1);
            refused.Add((id, error));
            start = id + 1;
        }
        AckStretch(start, to);
    }

    private void AckStretch(long from, long to)
    {
        if (from > to) return;
        OnDeliveriesAcked(from, to);
        Record(static (f, t) => new DeliveriesAcked(f, t), from, to);
    }

    /// <summary>Retries the delivery after <paramref name="delay"/> (backoff with jitter when null), or dead-letters it.</summary>
    public SettleError? Nack(int consumerId, long deliveryId, TimeSpan? delay, string? reason, TimeSpan now, out NackOutcome outcome)
    {
        outcome = default;
        var error = CheckHolder(consumerId, deliveryId);
        if (error is not null) return error;
        var d = _inFlight[deliveryId];
        if (d.Message.Attempts >= _settings.MaxAttempts)
        {
            var why = $"nacked on attempt {d.Message.Attempts} of {_settings.MaxAttempts}: {reason ?? "no reason given"}";
            DeadLetter(deliveryId, why, now, nacked: true);
            outcome = NackOutcome.DeadLettered;
            return null;
        }
        // An explicit delay is capped so that a careless TimeSpan.MaxValue neither overflows nor pins a slot for ever.
        var wait = delay is { } explicitDelay ? (explicitDelay > MaxNackDelay ? MaxNackDelay : explicitDelay) : Backoff(d.Message.Attempts);
        var due = wait > TimeSpan.Zero ? now + wait : TimeSpan.Zero;
        OnDeliveryRequeued(deliveryId, due, nacked: true);
        if (_recorder is not null) _recorder(new DeliveryRequeued(deliveryId, due, true));
        outcome = due == TimeSpan.Zero ? NackOutcome.Requeued : NackOutcome.Delayed;
        return null;
    }

    /// <summary>Moves the delivery's deadline to now + ack-timeout.</summary>
    public SettleError? Extend(int consumerId, long deliveryId, TimeSpan now)
    {
        var error = CheckHolder(consumerId, deliveryId);
        if (error is not null) return error;
        var deadline = now + _settings.AckTimeout;
        OnDeadlineExtended(deliveryId, deadline);
        if (_recorder is not null) _recorder(new DeadlineExtended(deliveryId, deadline));
        return null;
    }

    private SettleError? CheckHolder(int consumerId, long deliveryId)
    {
        if (!_inFlight.TryGetValue(deliveryId, out var d))
            return deliveryId >= 1 && deliveryId <= _lastDeliveryId ? SettleError.AlreadySettled : SettleError.UnknownDelivery;
        return d.ConsumerId == consumerId ? null : SettleError.NotHolder;
    }

    /// <summary>
    /// Exponential backoff for a failed attempt: min-backoff * 2^(attempt-1), capped at max-backoff, spread by
    /// +/- random-factor.
    /// </summary>
    public TimeSpan Backoff(int attempt)
    {
        var exponent = Math.Min(Math.Max(attempt - 1, 0), 30);
        var raw = Math.Min(_settings.RetryMaxBackoff.Ticks, _settings.RetryMinBackoff.Ticks * (double)(1L << exponent));
        var jitter = 1 + _settings.RetryRandomFactor * (2 * _random.NextDouble() - 1);
        return TimeSpan.FromTicks((long)Math.Max(0, raw * jitter));
    }

    // ---------------------------------------------------------------- time

    /// <summary>
    /// The one periodic step: deliveries past their deadline are taken back, delayed retries that are due
    /// become ready, and parked messages past full-wait-timeout are rejected into <paramref name="parkedOutcomes"/>.
    /// </summary>
    public void Tick(TimeSpan now, List<ParkedOutcome> parkedOutcomes)
    {
        if (_inFlight.Count > 0)
        {
            _scratchIds.Clear();
            foreach (var (id, d) in _inFlight)
                if (d.Deadline <= now) _scratchIds.Add(id);
            _scratchIds.Sort();
            foreach (var id in _scratchIds)
                TakeBack(id, now, "ack deadline missed");
        }
        while (_delayed.TryPeek(out var m, out var due) && due.Due <= now)
        {
            OnRetryDue(m.MessageId);
            Record(static (id, _) => new RetryDue(id), m.MessageId, 0);
        }
        while (_parked.Count > 0 && _parked.PeekFront().Deadline <= now)
            RejectParked(RejectReason.WaitTimedOut, $"No room freed up within full-wait-timeout ({_settings.FullWaitTimeout}).", parkedOutcomes);
    }

    private void TakeBack(long deliveryId, TimeSpan now, string why)
    {
        var d = _inFlight[deliveryId];
        if (d.Message.Attempts >= _settings.MaxAttempts)
        {
            DeadLetter(deliveryId, $"{why} on attempt {d.Message.Attempts} of {_settings.MaxAttempts}", now, nacked: false);
            return;
        }
        OnDeliveryRequeued(deliveryId, TimeSpan.Zero, nacked: false);
        if (_recorder is not null) _recorder(new DeliveryRequeued(deliveryId, TimeSpan.Zero, false));
    }

    private void DeadLetter(long deliveryId, string reason, TimeSpan now, bool nacked)
    {
        if (_dead.Count >= _settings.DeadLetterCapacity)
        {
            var oldest = _dead.PeekFront().Message.MessageId;
            OnDeadLetterEvicted(oldest);
            Record(static (id, _) => new DeadLetterEvicted(id), oldest, 0);
        }
        OnDeliveryDeadLettered(deliveryId, reason, now, nacked);
        if (_recorder is not null) _recorder(new DeliveryDeadLettered(deliveryId, reason, now, nacked));
    }

    // ---------------------------------------------------------------- dead letters and drain

    public void CopyDeadLetters(int max, List<DeadEntry> output)
    {
        for (var i = 0; i < _dead.Count && i < max; i++) output.Add(_dead[i]);
    }

    /// <summary>Moves one dead letter back to the ready queue with fresh attempts; false when unknown or there is no room.</summary>
    public bool Redrive(long messageId)
    {
        if (_draining || FreeCapacity <= 0) return false;
        for (var i = 0; i < _dead.Count; i++)
        {
            if (_dead[i].Message.MessageId != messageId) continue;
            OnDeadLetterRedriven(messageId);
            Record(static (id, _) => new DeadLetterRedriven(id), messageId, 0);
            return true;
        }
        return false;
    }

    /// <summary>Redrives dead letters, oldest first, while there is room; returns how many.</summary>
    public int RedriveAll()
    {
        var n = 0;
        while (_dead.Count > 0 && Redrive(_dead.PeekFront().Message.MessageId)) n++;
        return n;
    }

    /// <summary>Stops accepting: credit is revoked and parked messages are rejected into <paramref name="parkedOutcomes"/>.</summary>
    public void BeginDrain(List<ParkedOutcome> parkedOutcomes)
    {
        if (_draining) return;
        RejectAllParked(RejectReason.Draining, "The queue is draining and accepts nothing new.", parkedOutcomes);
        OnDrainStarted();
        _recorder?.Invoke(new DrainStarted());
    }

    public QueueStats GetStats(string queueName) => new(
        queueName, _settings.Capacity, ReadyCount, _inFlight.Count, _delayed.Count, _dead.Count, _parked.Count,
        _activeProducerList.Count, _consumers.Count, _counters.Enqueued, _counters.Delivered, _counters.Acked, _counters.Nacked,
        _counters.Redelivered, _counters.DeadLettered, _counters.Evicted + _counters.DeadEvicted, _counters.Rejected,
        _counters.Invalid, _draining);

    // Sequenced messages come in runs from one producer: remember the last one looked up.
    private bool TryGetProducer(string producerId, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ProducerState? producer)
    {
        var last = _lastProducer;
        if (last is not null && string.Equals(last.Id, producerId, StringComparison.Ordinal))
        {
            producer = last;
            return true;
        }
        if (!_producers.TryGetValue(producerId, out producer)) return false;
        _lastProducer = producer;
        return true;
    }

    // Builds an event only when someone records; the static lambdas keep the hot path free of closures.
    private void Record<TA>(Func<TA, long, QueueEvent> make, TA a, long b)
    {
        if (_recorder is not null) _recorder(make(a, b));
    }
}
