using System.Runtime.InteropServices;
using ActorQueue.Protocol;

namespace ActorQueue.Core;

/// <summary>
/// Everything one queue knows, and every decision it makes, as a single-threaded state machine: no clock
/// (time is an argument: wall-clock time since the Unix epoch), no threads, no actors. Each operation decides, then
/// changes the state only through the <c>On*</c> mutators in QueueState.Apply.cs, each of which is one
/// <see cref="QueueEvent"/>: with a recorder attached the events of a run replay into an equal state.
/// </summary>
internal sealed partial class QueueState
{
    /// <summary>Longest delay a nack may ask for; longer ones are shortened to it.</summary>
    public static readonly TimeSpan MaxNackDelay = TimeSpan.FromDays(1);

    /// <summary>Most inactive producers remembered for deduplication, whatever producer-retention says.</summary>
    public const int MaxInactiveProducers = 100_000;

    private readonly QueueSettings _settings;
    private readonly Random _random;
    private readonly Action<QueueEvent>? _recorder;
    private readonly IQueueObserver? _observer;
    private long _firstDeliveryId;

    // New messages in acceptance order; redeliveries (deadline missed, returned, retry due) go to their own ring,
    // served first so they overtake new work; suspects (their consumer died while they ran) wait for a consumer
    // that holds nothing, and go to it alone.
    private readonly RingBuffer<QueuedMessage> _ready;
    private readonly RingBuffer<QueuedMessage> _redeliver = new();
    private readonly RingBuffer<QueuedMessage> _suspects = new();
    private readonly Dictionary<long, InFlightDelivery> _inFlight = new();
    private readonly PriorityQueue<QueuedMessage, (TimeSpan Due, long MessageId)> _delayed = new();
    private readonly RingBuffer<DeadEntry> _dead = new();
    private readonly RingBuffer<ParkedMessage> _parked = new();

    private readonly Dictionary<string, ProducerState> _producers = new(StringComparer.Ordinal);
    private readonly List<ProducerState> _activeProducerList = new();
    private readonly LinkedList<ProducerState> _inactiveProducers = new();
    private readonly List<ProducerState> _dirtyProducers = new();
    private readonly Dictionary<int, ConsumerState> _consumers = new();
    private readonly List<ConsumerState> _hungry = new();

    private readonly List<long> _scratchIds = new();
    private ProducerState? _lastProducer;
    private QueueCounters _counters;
    private long _lastMessageId;
    private long _lastDeliveryId;
    private int _lastConsumerId;
    // Restoring an event of a journal (see Restore), and the holder of the deliveries a journal replays.
    private bool _restoring;
    private readonly ConsumerState _gone = new(0);
    private long _outstandingCredit;
    private bool _draining;

    // The in-flight deliveries as a list in deadline order (ids; 0 for none): a dispatch or an extension appends at
    // the tail with now + ack-timeout, which is never earlier than what is there, so a tick reads only the due head.
    private long _deadlineHead;
    private long _deadlineTail;

    // Rotation points for fairness; scheduling hints, not state (replay may leave them elsewhere).
    private int _hungryCursor;
    private int _grantCursor;

    /// <param name="settings">Validated queue settings.</param>
    /// <param name="random">Source of retry jitter; seed it for deterministic runs.</param>
    /// <param name="recorder">Receives every event as it happens; null to record nothing.</param>
    /// <param name="observer">Told of deliveries for metrics; null for none.</param>
    /// <param name="firstDeliveryId">
    /// The id of this incarnation's first delivery (at least 1). Each incarnation of a queue starts above every id an
    /// earlier one could have used, so a late settlement from before a restart can never settle a new delivery.
    /// </param>
    public QueueState(QueueSettings settings, Random? random = null, Action<QueueEvent>? recorder = null, IQueueObserver? observer = null, long firstDeliveryId = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(firstDeliveryId, 1);
        _settings = settings;
        _random = random ?? Random.Shared;
        _recorder = recorder;
        _observer = observer;
        _firstDeliveryId = firstDeliveryId;
        _lastDeliveryId = firstDeliveryId - 1;
        _ready = new RingBuffer<QueuedMessage>(Math.Min(settings.Capacity, 1024));
    }

    /// <summary>
    /// A first delivery id for an incarnation started at <paramref name="now"/> (wall clock): 2^20 ids per
    /// millisecond since the Unix epoch, so a later incarnation starts above any id an earlier one issued unless it
    /// delivered over a billion messages a second.
    /// </summary>
    public static long DeliveryIdEpoch(TimeSpan now)
    {
        // Within one process, strictly increasing even for incarnations started in the same millisecond.
        var epoch = (Math.Max(1L, (long)now.TotalMilliseconds) << 20) + 1;
        while (true)
        {
            var last = Volatile.Read(ref _lastEpoch);
            var next = Math.Max(epoch, last + (1L << 20));
            if (Interlocked.CompareExchange(ref _lastEpoch, next, last) == last) return next;
        }
    }

    private static long _lastEpoch;

    /// <summary>
    /// Checks a message before it is taken: null when it may be, else why not (a durable queue refuses what it cannot
    /// write). The message is refused as invalid with that reason; a numbered one still uses up its sequence number
    /// (see <see cref="ProducerWindow{T}.DropRefused"/>). Null: every message may be taken.
    /// </summary>
    public Func<object, string?>? PayloadCheck { get; init; }

    public QueueSettings Settings => _settings;
    public int Capacity => _settings.Capacity;
    public int ReadyCount => _ready.Count + _redeliver.Count + _suspects.Count;
    public int InFlightCount => _inFlight.Count;
    public int DelayedCount => _delayed.Count;
    public int DeadCount => _dead.Count;
    public int ParkedCount => _parked.Count;
    public int SuspectCount => _suspects.Count;

    /// <summary>Messages held: ready + in flight + delayed. Never above capacity.</summary>
    public int Held => ReadyCount + _inFlight.Count + _delayed.Count;

    /// <summary>Credit granted to producers and not yet used; reserved out of capacity.</summary>
    public long OutstandingCredit => _outstandingCredit;

    /// <summary>Room neither held nor reserved as credit.</summary>
    public long FreeCapacity => _settings.Capacity - Held - _outstandingCredit;

    public bool IsDraining => _draining;

    /// <summary>True when every change is recorded in a journal (a durable queue), so what is held survives the queue.</summary>
    public bool IsJournaled => _recorder is not null;

    /// <summary>Draining and nothing held any more: the queue may stop.</summary>
    public bool IsDrained => _draining && Held == 0 && _parked.Count == 0;

    public int ConsumerCount => _consumers.Count;
    public int ActiveProducerCount => _activeProducerList.Count;

    public QueueCounters Counters => _counters;
    public long FirstDeliveryId => _firstDeliveryId;
    public long LastDeliveryId => _lastDeliveryId;

    // ---------------------------------------------------------------- producers

    /// <summary>
    /// Registers or re-activates a producer; its sequence numbers continue where they were. It will get credit
    /// for at most <paramref name="demand"/> messages beyond those accepted, until it asks for more. A producer that
    /// <paramref name="keepsCredit"/> (a client's feed in the queue's own process, which accepts messages against its
    /// credit before the queue sees them) never has its credit taken back for lack of use.
    /// </summary>
    public void RegisterProducer(string producerId, long demand, TimeSpan now, bool keepsCredit = false)
    {
        var last = _producers.TryGetValue(producerId, out var known) ? known.LastSeqNr : 0;
        var demandSeqNr = demand >= long.MaxValue - last ? long.MaxValue : last + Math.Max(0, demand);
        OnProducerRegistered(producerId, demandSeqNr);
        Record(static (id, d) => new ProducerRegistered(id, d), producerId, demandSeqNr);
        var p = _producers[producerId];
        p.LastActive = now;
        p.KeepsCredit = keepsCredit;
        if (p.Lease == TimeSpan.Zero) p.Lease = _settings.CreditLease;
    }

    /// <summary>
    /// The producer has messages up to <paramref name="demandSeqNr"/> to send (its latest word counts: a lower
    /// number takes back credit it no longer needs); false for an unknown or inactive producer.
    /// </summary>
    public bool RequestCredit(string producerId, long demandSeqNr, TimeSpan now)
    {
        if (!_producers.TryGetValue(producerId, out var p) || !p.Active) return false;
        p.LastActive = now;
        if (demandSeqNr == p.DemandSeqNr) return true;
        OnCreditRequested(producerId, demandSeqNr);
        Record(static (id, d) => new CreditRequested(id, d), producerId, demandSeqNr);
        return true;
    }

    /// <summary>
    /// The producer is gone: its unused credit returns to the queue, and its messages still waiting for room are
    /// rejected into <paramref name="parkedOutcomes"/> (admitted later, they would take the numbers its successor gives
    /// its own messages). Its sequence numbers are kept for producer-retention, so that it can come back and resend
    /// without duplicates.
    /// </summary>
    public void DeactivateProducer(string producerId, TimeSpan now, List<ParkedOutcome> parkedOutcomes)
    {
        if (!_producers.TryGetValue(producerId, out var p) || !p.Active) return;
        if (p.Parked > 0)
        {
            for (var i = 0; i < _parked.Count; i++)
                if (_parked[i].ProducerId == producerId)
                    parkedOutcomes.Add(new ParkedOutcome(_parked[i], false, RejectReason.NotRegistered,
                        $"The producer '{producerId}' stopped before room freed up for its message {_parked[i].SeqNr}; a successor numbers from {p.LastSeqNr + 1}."));
            OnProducerParkedRejected(producerId);
            Record(static (id, _) => new ProducerParkedRejected(id), producerId, 0);
        }
        OnProducerDeactivated(producerId);
        Record(static (id, _) => new ProducerDeactivated(id), producerId, 0);
        p.InactiveSince = now;
        if (_inactiveProducers.Count > MaxInactiveProducers) Forget(_inactiveProducers.First!.Value);
    }

    private void Forget(ProducerState p)
    {
        OnProducerForgotten(p.Id);
        Record(static (id, _) => new ProducerForgotten(id), p.Id, 0);
    }

    /// <summary>True while <paramref name="producerId"/> is registered as a producer that keeps its credit (a client's feed).</summary>
    public bool KeepsCredit(string producerId) => _producers.TryGetValue(producerId, out var p) && p.Active && p.KeepsCredit;

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
    public void GrantCredit(TimeSpan now)
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
            // A fresh grant starts the lease: credit left unused for credit-lease is taken back.
            if (p.Outstanding == 0) p.LastActive = now;
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
            if (!_producers.ContainsKey(p.Id)) continue;
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
        if (PayloadCheck?.Invoke(message) is { } refused) return Reject(RejectReason.InvalidMessage, refused);
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
        var expected = p.LastSeqNr + 1 + p.Parked;
        if (seqNr != expected)
            return Reject(RejectReason.OutOfOrder, $"Producer '{producerId}' sent {seqNr} but {expected} was expected; resend from {expected}.");
        // Checked in order only: the producer drops a refused message and numbers the ones after it down by one.
        if (PayloadCheck?.Invoke(message) is { } refused) return Reject(RejectReason.InvalidMessage, refused);
        p.LastActive = now;
        p.Lease = _settings.CreditLease;
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
    public int EnqueueSequencedRun(string producerId, long firstSeqNr, object?[] messages, TimeSpan now) =>
        EnqueueSequencedRun(producerId, firstSeqNr, messages, messages.Length, now);

    /// <summary>As <see cref="EnqueueSequencedRun(string, long, object?[], TimeSpan)"/>, for the first <paramref name="length"/> messages.</summary>
    public int EnqueueSequencedRun(string producerId, long firstSeqNr, object?[] messages, int length, TimeSpan now)
    {
        if (_draining || _parked.Count > 0 || !TryGetProducer(producerId, out var p) || !p.Active || firstSeqNr != p.LastSeqNr + 1) return 0;
        var count = (int)Math.Min(length, Math.Max(0, p.CreditSeqNr - p.LastSeqNr));
        for (var i = 0; i < count; i++)
        {
            if (messages[i] is { } m && PayloadCheck?.Invoke(m) is null) continue;
            count = i;
            break;
        }
        if (count == 0) return 0;
        p.LastActive = now;
        p.Lease = _settings.CreditLease;
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
            case FullMode.DropOldest or FullMode.DropNewest when _ready.Count + _redeliver.Count > 0 && _parked.Count == 0:
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

    /// <summary>
    /// Sets how many deliveries the consumer may hold at once (its prefetch window): it is given more whenever it
    /// holds fewer. An absolute value, so a repeated or lost pull changes nothing. False (and nothing changes) for an
    /// unknown consumer or a window below 1.
    /// </summary>
    public bool Pull(int consumerId, int window)
    {
        if (window < 1 || !_consumers.TryGetValue(consumerId, out var c)) return false;
        if (c.Window == window) return true;
        OnWindowSet(consumerId, window);
        Record(static (c, n) => new WindowSet((int)c, (int)n), consumerId, window);
        return true;
    }

    /// <summary>
    /// The consumer said something (a pull, a settlement, progress, a return): it is not wedged, so a consumer that
    /// let a deadline pass is offered work again. Cheap enough to call for every message a consumer sends.
    /// </summary>
    public void Heard(int consumerId)
    {
        if (_consumers.TryGetValue(consumerId, out var c) && c.Stalled) SetStalled(c, false);
    }

    private void SetStalled(ConsumerState c, bool stalled)
    {
        OnConsumerStalled(c.Id, stalled);
        Record(static (id, s) => new ConsumerStalled((int)id, s == 1), c.Id, stalled ? 1 : 0);
    }

    /// <summary>
    /// The consumer is gone (terminated or detached): each delivery it still held goes back with its attempt counted,
    /// as a suspect (it may have been running when the consumer died), or to the dead-letter store when it has used
    /// max-attempts. Deliveries the consumer never started should be given back with <see cref="Return"/> first.
    /// Returns how many deliveries it held.
    /// </summary>
    public int RemoveConsumer(int consumerId, TimeSpan now)
    {
        if (!_consumers.ContainsKey(consumerId)) return 0;
        _scratchIds.Clear();
        foreach (var (id, d) in _inFlight)
            if (d.ConsumerId == consumerId) _scratchIds.Add(id);
        _scratchIds.Sort();
        foreach (var id in _scratchIds)
            TakeBack(id, now, Requeue.ConsumerLost);
        OnConsumerRemoved(consumerId);
        Record(static (c, _) => new ConsumerRemoved((int)c), consumerId, 0);
        return _scratchIds.Count;
    }

    /// <summary>
    /// The consumer gives back a delivery it never started (its prefetch buffer, when it stops or is revoked):
    /// the message goes back ahead of new work and its attempt does not count.
    /// </summary>
    public SettleError? Return(int consumerId, long deliveryId)
    {
        var error = CheckHolder(consumerId, deliveryId);
        if (error is not null) return error;
        OnDeliveryRequeued(deliveryId, null, Requeue.Returned);
        if (_recorder is not null) _recorder(new DeliveryRequeued(deliveryId, null, Requeue.Returned));
        return null;
    }

    /// <summary>
    /// Hands ready messages to consumers with room in their window: first each suspect alone to a consumer that holds
    /// nothing, then redeliveries and new work, spread round-robin.
    /// </summary>
    public void Dispatch(TimeSpan now, List<ConsumerDispatch> output)
    {
        if (_suspects.Count > 0) DispatchSuspects(now, output);
        while (_ready.Count + _redeliver.Count > 0 && _hungry.Count > 0)
        {
            if (_hungryCursor >= _hungry.Count) _hungryCursor = 0;
            var c = _hungry[_hungryCursor];
            var share = Math.Max(1, (_ready.Count + _redeliver.Count) / _hungry.Count);
            var take = Math.Min(c.Window - c.InFlight, share);
            var messages = new object[take];
            var messageIds = new long[take];
            int[]? attempts = null;
            var first = _lastDeliveryId + 1;
            var deadline = now + _settings.AckTimeout;
            for (var i = 0; i < take; i++)
            {
                var m = Deliver(c, NextReady().MessageId, deadline, isolated: false, now);
                messages[i] = m.Message;
                messageIds[i] = m.MessageId;
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
            output.Add(new ConsumerDispatch(c.Id, new DeliveryBatch(first, messages, attempts, messageIds)));
            // Delivering drops a consumer from _hungry when its window is full.
            if (_hungryCursor < _hungry.Count && ReferenceEquals(_hungry[_hungryCursor], c)) _hungryCursor++;
        }
    }

    private void DispatchSuspects(TimeSpan now, List<ConsumerDispatch> output)
    {
        ConsumerState? fullest = null;
        var reserved = false;
        foreach (var c in _consumers.Values)
        {
            if (_suspects.Count == 0) break;
            if (c.Window < 1 || c.Isolating || c.Stalled) continue;
            if (c.InFlight == 0)
            {
                var m = Deliver(c, _suspects.PeekFront().MessageId, now + _settings.AckTimeout, isolated: true, now);
                output.Add(new ConsumerDispatch(c.Id, new DeliveryBatch(_lastDeliveryId, [m.Message], m.Attempts == 1 ? null : [m.Attempts], [m.MessageId])));
                continue;
            }
            reserved |= c.Reserved;
            if (fullest is null || c.InFlight < fullest.InFlight) fullest = c;
        }
        // No consumer is free: stop feeding the least busy one until it is, so that suspects are not starved.
        if (_suspects.Count > 0 && !reserved && fullest is not null) SetReserved(fullest, true);
        if (_suspects.Count == 0)
            foreach (var c in _consumers.Values)
                if (c.Reserved) SetReserved(c, false);
    }

    private void SetReserved(ConsumerState c, bool reserved)
    {
        OnConsumerReserved(c.Id, reserved);
        Record(static (id, r) => new ConsumerReserved((int)id, r == 1), c.Id, reserved ? 1 : 0);
    }

    private QueuedMessage Deliver(ConsumerState c, long messageId, TimeSpan deadline, bool isolated, TimeSpan now)
    {
        var deliveryId = _lastDeliveryId + 1;
        var m = OnMessageDelivered(deliveryId, messageId, c, deadline, isolated);
        if (_recorder is not null) _recorder(new MessageDelivered(deliveryId, messageId, c.Id, deadline, isolated));
        _observer?.Delivered(now - m.AcceptedAt);
        return m;
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
    /// Acks the deliveries <paramref name="from"/> to <paramref name="to"/> as <see cref="Ack"/> would one by one,
    /// each unbroken stretch it can ack in one step. What it refuses goes to <paramref name="refused"/> as stretches
    /// of one reason, so a range over ids never delivered costs one refusal, not one per id. The caller bounds the
    /// range's length (<see cref="AckRange.MaxLength"/>).
    /// </summary>
    public void AckRange(int consumerId, long from, long to, List<RefusedStretch> refused)
    {
        // Ids outside what this incarnation delivered are unknown as a whole; only the rest is looked at one by one.
        var lo = Math.Max(from, _firstDeliveryId);
        var hi = Math.Min(to, _lastDeliveryId);
        if (from < lo) refused.Add(new RefusedStretch(from, Math.Min(to, lo - 1), SettleError.UnknownDelivery));
        var start = lo;
        for (var id = lo; id <= hi; id++)
        {
            if (CheckHolder(consumerId, id) is not { } error) continue;
            AckStretch(start, id - 1);
            if (refused.Count > 0 && refused[^1] is var last && last.Error == error && last.ToDeliveryId == id - 1)
                refused[^1] = last with { ToDeliveryId = id };
            else refused.Add(new RefusedStretch(id, id, error));
            start = id + 1;
        }
        AckStretch(start, hi);
        if (to > hi && to >= lo) refused.Add(new RefusedStretch(Math.Max(hi + 1, from), to, SettleError.UnknownDelivery));
    }

    private void AckStretch(long from, long to)
    {
        if (from > to) return;
        OnDeliveriesAcked(from, to);
        Record(static (f, t) => new DeliveriesAcked(f, t), from, to);
    }

    /// <summary>
    /// Retries the delivery after <paramref name="delay"/> (backoff with jitter when null), or dead-letters it: after
    /// max-attempts, or at once when <paramref name="deadLetter"/> (its handler says it can never succeed).
    /// </summary>
    public SettleError? Nack(int consumerId, long deliveryId, TimeSpan? delay, string? reason, TimeSpan now, out NackOutcome outcome, bool deadLetter = false)
    {
        outcome = default;
        var error = CheckHolder(consumerId, deliveryId);
        if (error is not null) return error;
        var d = _inFlight[deliveryId];
        if (deadLetter || d.Message.Attempts >= _settings.MaxAttempts)
        {
            var why = deadLetter
                ? $"refused by its handler on attempt {d.Message.Attempts}, not to be retried: {reason ?? "no reason given"}"
                : $"nacked on attempt {d.Message.Attempts} of {_settings.MaxAttempts}: {reason ?? "no reason given"}";
            DeadLetter(deliveryId, why, now, nacked: true);
            outcome = NackOutcome.DeadLettered;
            return null;
        }
        // An explicit delay is capped so that a careless TimeSpan.MaxValue neither overflows nor pins a slot for ever.
        var wait = delay is { } explicitDelay ? (explicitDelay > MaxNackDelay ? MaxNackDelay : explicitDelay) : Backoff(d.Message.Attempts);
        TimeSpan? due = wait > TimeSpan.Zero ? now + wait : null;
        OnDeliveryRequeued(deliveryId, due, Requeue.Nacked);
        if (_recorder is not null) _recorder(new DeliveryRequeued(deliveryId, due, Requeue.Nacked));
        outcome = due is null ? NackOutcome.Requeued : NackOutcome.Delayed;
        return null;
    }

    /// <summary>The id of the message delivery <paramref name="deliveryId"/> carries while it is in flight, else 0.</summary>
    public long MessageIdOf(long deliveryId) => _inFlight.TryGetValue(deliveryId, out var d) ? d.Message.MessageId : 0;

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
            return deliveryId >= _firstDeliveryId && deliveryId <= _lastDeliveryId ? SettleError.AlreadySettled : SettleError.UnknownDelivery;
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
    /// The one periodic step, costing what is due rather than what is held: deliveries past their deadline are taken
    /// back (and listed in <paramref name="revoked"/> for their consumer to drop), delayed retries that are due become
    /// ready, parked messages past full-wait-timeout are rejected into <paramref name="parkedOutcomes"/>, credit unused
    /// for credit-lease is reclaimed (from a producer that keeps its credit, it is listed in <paramref name="idleKeepers"/>
    /// to be asked for instead), and producers inactive past producer-retention are forgotten.
    /// Returns true when anything changed.
    /// </summary>
    public bool Tick(TimeSpan now, List<ParkedOutcome> parkedOutcomes, List<Revocation> revoked, List<string>? idleKeepers = null)
    {
        var changed = false;
        while (_deadlineHead != 0 && _inFlight[_deadlineHead].Deadline <= now)
        {
            var id = _deadlineHead;
            var consumer = _inFlight[id].ConsumerId;
            TakeBack(id, now, Requeue.Expired);
            // Whatever stopped it from settling or extending in time may stop it again: new work goes elsewhere
            // until it is heard from.
            if (_consumers.TryGetValue(consumer, out var c) && !c.Stalled) SetStalled(c, true);
            revoked.Add(new Revocation(consumer, id));
            changed = true;
        }
        while (_delayed.TryPeek(out var m, out var due) && due.Due <= now)
        {
            OnRetryDue(m.MessageId);
            Record(static (id, _) => new RetryDue(id), m.MessageId, 0);
            changed = true;
        }
        while (_parked.Count > 0 && _parked.PeekFront().Deadline <= now)
        {
            RejectParked(RejectReason.WaitTimedOut, $"No room freed up within full-wait-timeout ({_settings.FullWaitTimeout}).", parkedOutcomes);
            changed = true;
        }
        if (_outstandingCredit > 0)
        {
            for (var i = _activeProducerList.Count - 1; i >= 0; i--)
            {
                var p = _activeProducerList[i];
                if (p.Outstanding == 0 || now - p.LastActive < LeaseOf(p)) continue;
                if (p.KeepsCredit)
                {
                    // Only the producer knows whether it has accepted messages against its credit that are on their way:
                    // it is asked to give back what it does not use, and asked again a lease later.
                    p.LastActive = now;
                    idleKeepers?.Add(p.Id);
                    continue;
                }
                p.Lease = LeaseOf(p) * 2 <= _settings.CreditLease * 64 ? LeaseOf(p) * 2 : _settings.CreditLease * 64;
                OnCreditReclaimed(p.Id);
                Record(static (id, _) => new CreditReclaimed(id), p.Id, 0);
                changed = true;
            }
        }
        while (_inactiveProducers.First is { } oldest && now - oldest.Value.InactiveSince >= _settings.ProducerRetention)
            Forget(oldest.Value);
        return changed;
    }

    /// <summary>
    /// The earliest instant at which <see cref="Tick"/> has something to do, or null when nothing waits on time:
    /// an idle queue needs no timer at all.
    /// </summary>
    public TimeSpan? NextDue()
    {
        var next = TimeSpan.MaxValue;
        if (_deadlineHead != 0) next = Min(next, _inFlight[_deadlineHead].Deadline);
        if (_delayed.TryPeek(out _, out var due)) next = Min(next, due.Due);
        if (_parked.Count > 0) next = Min(next, _parked.PeekFront().Deadline);
        if (_outstandingCredit > 0)
            foreach (var p in _activeProducerList)
                if (p.Outstanding > 0) next = Min(next, p.LastActive + LeaseOf(p));
        if (_inactiveProducers.First is { } oldest) next = Min(next, oldest.Value.InactiveSince + _settings.ProducerRetention);
        return next == TimeSpan.MaxValue ? null : next;

        static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;
    }

    private void TakeBack(long deliveryId, TimeSpan now, Requeue why)
    {
        var d = _inFlight[deliveryId];
        if (d.Message.Attempts >= _settings.MaxAttempts)
        {
            var reason = why switch
            {
                Requeue.ConsumerLost when d.Isolated =>
                    $"its consumer terminated while handling it alone on attempt {d.Message.Attempts} of {_settings.MaxAttempts}: this message crashes its consumer",
                Requeue.ConsumerLost => $"consumer terminated before settling the delivery on attempt {d.Message.Attempts} of {_settings.MaxAttempts}",
                _ => $"ack deadline missed on attempt {d.Message.Attempts} of {_settings.MaxAttempts}",
            };
            DeadLetter(deliveryId, reason, now, nacked: false);
            return;
        }
        OnDeliveryRequeued(deliveryId, null, why);
        if (_recorder is not null) _recorder(new DeliveryRequeued(deliveryId, null, why));
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

    /// <summary>
    /// The recovery step of a new incarnation, after the events of the old one were replayed: parked messages (never
    /// accepted) are rejected into <paramref name="parkedOutcomes"/>; every delivery that was in flight goes back ahead of
    /// new work with its attempt counted (its handler may have run), or to the dead-letter store if that was its last;
    /// consumers are forgotten and producers are inactive until they register again (their sequence numbers kept);
    /// deliveries continue from <paramref name="firstDeliveryId"/>, above every id used before.
    /// </summary>
    public void Recover(long firstDeliveryId, TimeSpan now, List<ParkedOutcome> parkedOutcomes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(firstDeliveryId, _lastDeliveryId);
        RejectAllParked(RejectReason.QueueStopped, "The queue restarted before room freed up.", parkedOutcomes);
        _scratchIds.Clear();
        _scratchIds.AddRange(_inFlight.Keys);
        _scratchIds.Sort();
        foreach (var id in _scratchIds)
        {
            var d = _inFlight[id];
            if (d.Message.Attempts < _settings.MaxAttempts) continue;
            DeadLetter(id, $"the queue restarted while it was in flight on attempt {d.Message.Attempts} of {_settings.MaxAttempts}", now, nacked: false);
        }
        OnRecovered(firstDeliveryId, now);
        Record(static (f, t) => new Recovered(f, TimeSpan.FromTicks(t)), firstDeliveryId, now.Ticks);
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
        _counters.Invalid, _draining)
    {
        OutstandingCredit = _outstandingCredit,
        KnownProducers = _producers.Count,
    };

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

    // A producer replayed from events has no lease yet: it starts at credit-lease.
    private TimeSpan LeaseOf(ProducerState p) => p.Lease > TimeSpan.Zero ? p.Lease : _settings.CreditLease;

    private ref InFlightDelivery InFlightRef(long deliveryId) => ref CollectionsMarshal.GetValueRefOrNullRef(_inFlight, deliveryId);

    // Builds an event only when someone records; the static lambdas keep the hot path free of closures.
    private void Record<TA>(Func<TA, long, QueueEvent> make, TA a, long b)
    {
        if (_recorder is not null) _recorder(make(a, b));
    }
}
