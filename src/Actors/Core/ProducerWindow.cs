using System.Diagnostics;

namespace ActorQueue.Core;

/// <summary>
/// A producer's side of the credit protocol as a pure, single-threaded type: what waits for credit, what was sent and
/// not yet accepted, and the numbers exchanged with the queue (accepted, credit, sent, asked for). The
/// <see cref="ProducerActor"/> turns its answers into messages; the random simulation drives it against the queue's
/// core over a lossy link. Every number it sends is absolute, so repeating a message is always harmless.
/// </summary>
/// <typeparam name="T">What the caller keeps per message (the message and whom to answer).</typeparam>
internal sealed class ProducerWindow<T>
{
    private readonly int _bufferSize;

    // Not yet numbered (waiting for credit), and numbered but not yet accepted (contiguous from _accepted + 1).
    private readonly RingBuffer<T> _unsent = new();
    private readonly RingBuffer<(T Item, long SeqNr)> _unaccepted = new();
    private long _accepted;
    private long _credit;
    private long _sent;
    private long _demand;
    private long _registeredPending;
    private bool _demandInFlight;
    private bool _registering;
    private long _registration;
    private bool _everRegistered;

    /// <param name="bufferSize">Most messages held unaccepted, sent or not.</param>
    public ProducerWindow(int bufferSize) => _bufferSize = bufferSize;

    /// <summary>Messages held: not yet sent, or sent and not yet accepted.</summary>
    public int Count => _unsent.Count + _unaccepted.Count;

    public bool HasWork => Count > 0;
    public bool IsRegistering => _registering;

    /// <summary>The number of the latest registration (<see cref="Protocol.RegisterProducer.Registration"/>), raised by each <see cref="Register"/>.</summary>
    public long Registration => _registration;
    public long AcceptedSeqNr => _accepted;
    public long CreditSeqNr => _credit;

    /// <summary>Takes a message to send; false (and nothing changes) when buffer-size messages already wait.</summary>
    public bool TryAdd(T item)
    {
        if (Count >= _bufferSize) return false;
        _unsent.PushBack(item);
        return true;
    }

    /// <summary>
    /// (Re-)registers: returns the demand to register with (everything held). Until the queue answers, nothing is
    /// sent; its answer says where the queue stands, and everything it has not accepted is sent again.
    /// </summary>
    public long Register()
    {
        _registration++;
        _registering = true;
        _registeredPending = Count;
        return _registeredPending;
    }

    /// <summary>
    /// The queue's cumulative answer: everything up to <paramref name="acceptedSeqNr"/> is accepted (those messages go to
    /// <paramref name="accepted"/>, in order) and the producer may send up to <paramref name="creditSeqNr"/>. Returns the
    /// number of unaccepted messages renumbered because the queue knows less than it once confirmed (it lost its state).
    /// <paramref name="registration"/> is the registration the queue had handled when it answered; while registering,
    /// an answer to an earlier one changes nothing.
    /// </summary>
    public int OnCredit(long acceptedSeqNr, long creditSeqNr, List<T> accepted, long registration)
    {
        // Sent before the queue handled the latest registration: the answer to it follows, and only it ends registering
        // (so that nothing the queue said before it, a refusal above all, is taken as said after it).
        // 0: a queue that does not repeat registrations, whose every answer is taken.
        if (_registering && registration != 0 && registration != _registration) return 0;
        _demandInFlight = false;
        // The queue took credit back (unused past its lease, or a drain): what we still have is asked for again.
        if (creditSeqNr < _credit && creditSeqNr < _demand) _demand = creditSeqNr;
        var renumbered = 0;
        if (_registering)
        {
            _registering = false;
            if (!_everRegistered)
            {
                // Nothing is numbered before the first registration, so numbering continues where the id left off.
                _everRegistered = true;
                _accepted = Math.Max(_accepted, acceptedSeqNr);
            }
            else if (acceptedSeqNr < _accepted)
            {
                renumbered = _unaccepted.Count;
                for (var i = 0; i < renumbered; i++)
                    _unaccepted.PushBack((_unaccepted.PopFront().Item, acceptedSeqNr + i + 1));
                _accepted = acceptedSeqNr;
            }
            // Send again everything the queue has not accepted.
            _sent = acceptedSeqNr;
            _demand = acceptedSeqNr + _registeredPending;
        }
        while (_unaccepted.Count > 0 && _unaccepted.PeekFront().SeqNr <= acceptedSeqNr) accepted.Add(_unaccepted.PopFront().Item);
        if (acceptedSeqNr > _accepted) _accepted = acceptedSeqNr;
        if (_sent < _accepted) _sent = _accepted;
        _credit = creditSeqNr;
        AssertInvariants();
        return renumbered;
    }

    /// <summary>
    /// What to send now, never beyond credit: first resends (after a re-registration), then new messages, numbered
    /// without a gap from the returned first sequence number. <paramref name="requestCreditUpTo"/> is set when credit
    /// should be asked for (at most one request per answer from the queue).
    /// </summary>
    public long CollectSends(List<T> outgoing, out long? requestCreditUpTo)
    {
        requestCreditUpTo = null;
        var first = _sent + 1;
        if (_registering) return first;
        // _unaccepted holds sequence numbers _accepted + 1 onwards, so the first one not yet sent is found by index.
        for (var i = (int)Math.Max(0, _sent - _accepted); i < _unaccepted.Count; i++)
        {
            var (item, seqNr) = _unaccepted[i];
            if (seqNr > _credit) break;
            outgoing.Add(item);
            _sent = seqNr;
        }
        while (_unsent.Count > 0 && _accepted + _unaccepted.Count < _credit)
        {
            var seqNr = _accepted + _unaccepted.Count + 1;
            var item = _unsent.PopFront();
            _unaccepted.PushBack((item, seqNr));
            outgoing.Add(item);
            _sent = seqNr;
        }
        var wanted = _accepted + Count;
        if (wanted > _credit && wanted > _demand && !_demandInFlight)
        {
            _demand = wanted;
            _demandInFlight = true;
            requestCreditUpTo = wanted;
        }
        AssertInvariants();
        return first;
    }

    /// <summary>
    /// Withdraws the unsent messages <paramref name="match"/> picks (into <paramref name="withdrawn"/>); a message already
    /// sent is not affected. Returns the lower demand to tell the queue, so the credit asked for them is given back.
    /// </summary>
    public long? Withdraw(Func<T, bool> match, List<T> withdrawn)
    {
        var before = withdrawn.Count;
        for (var i = _unsent.Count - 1; i >= 0; i--)
            if (match(_unsent[i])) withdrawn.Add(_unsent.RemoveAt(i));
        if (withdrawn.Count == before) return null;
        withdrawn.Reverse(before, withdrawn.Count - before);
        var wanted = _accepted + Count;
        if (wanted >= _demand || _registering) return null;
        _demand = wanted;
        _credit = Math.Min(_credit, Math.Max(wanted, _sent));
        AssertInvariants();
        return wanted;
    }

    /// <summary>
    /// The queue will accept nothing from <paramref name="seqNr"/> on (draining or stopped): those messages and every
    /// unsent one go to <paramref name="failed"/>. Earlier ones may still be accepted.
    /// </summary>
    public void FailFrom(long seqNr, List<T> failed)
    {
        var keep = 0;
        while (keep < _unaccepted.Count && _unaccepted[keep].SeqNr < seqNr) keep++;
        for (var i = keep; i < _unaccepted.Count; i++) failed.Add(_unaccepted[i].Item);
        while (_unaccepted.Count > keep) _unaccepted.PopBack();
        _sent = Math.Min(_sent, _accepted + _unaccepted.Count);
        while (_unsent.Count > 0) failed.Add(_unsent.PopFront());
        AssertInvariants();
    }

    /// <summary>
    /// The queue refused message <paramref name="seqNr"/> for good (invalid: null, or a durable queue cannot write it):
    /// it leaves the window (into <paramref name="refused"/>) and the messages after it move down one number, so the
    /// numbering stays without a gap; everything from it on is sent again. The queue takes numbered messages in order
    /// only, so none after it can have been accepted. False when it is not held unaccepted, or while registering: the
    /// caller registers again after a drop, so that a repeated refusal of the same number (a resend of the refused
    /// message, answered before the registration) cannot drop the message renumbered into its place.
    /// </summary>
    public bool DropRefused(long seqNr, out T refused)
    {
        var index = seqNr - _accepted - 1;
        if (index < 0 || index >= _unaccepted.Count || _registering)
        {
            refused = default!;
            return false;
        }
        refused = _unaccepted.RemoveAt((int)index).Item;
        for (var i = (int)index; i < _unaccepted.Count; i++) _unaccepted[i] = (_unaccepted[i].Item, _unaccepted[i].SeqNr - 1);
        _sent = Math.Min(_sent, seqNr - 1);
        AssertInvariants();
        return true;
    }

    /// <summary>Throws <see cref="QueueInvariantException"/> naming the first invariant that does not hold (debug builds).</summary>
    [Conditional("DEBUG")]
    public void AssertInvariants()
    {
        if (_unaccepted.Count > 0 && _unaccepted.PeekFront().SeqNr != _accepted + 1)
            throw new QueueInvariantException($"The first unaccepted message is {_unaccepted.PeekFront().SeqNr}, not {_accepted + 1}.");
        if (_sent < _accepted || _sent > _accepted + _unaccepted.Count)
            throw new QueueInvariantException($"Sent {_sent} lies outside the unaccepted messages {_accepted + 1}..{_accepted + _unaccepted.Count}.");
        if (Count > _bufferSize) throw new QueueInvariantException($"{Count} messages are held, above buffer-size {_bufferSize}.");
    }
}
