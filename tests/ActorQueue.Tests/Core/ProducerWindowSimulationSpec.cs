using ActorQueue.Core;
using ActorQueue.Protocol;
using CsCheck;
using Xunit;

namespace ActorQueue.Tests.Core;

/// <summary>
/// Two producers' credit windows and the queue's core, co-simulated over a link that loses messages both ways, with
/// credit leases, parking, drains, restarts (replay, then recovery), messages the queue refuses for good (as a
/// durable queue refuses what it cannot write; the producer drops them and renumbers the rest) and producers that crash
/// (the queue deactivates them, parked messages and all, and a new incarnation with the same id carries on; what the old
/// one held is failed to its callers as "may have been accepted"): every message a producer took is, in the end,
/// reported accepted to its caller, failed, or (after a crash) unknown, exactly one of them; everything accepted is
/// handled exactly once; nothing failed is handled; nothing unknown is handled twice.
/// </summary>
public class ProducerWindowSimulationSpec
{
    private static readonly double[] Losses = { 0, 0.05, 0.2 };

    [Fact]
    public void Producer_windows_and_the_queue_over_a_lossy_link_lose_nothing_and_duplicate_nothing() =>
        Gen.Select(Gen.Int[0, 2], Gen.Int[0, 1_000_000].Array[20, 600])
            .Sample(t => new Pipeline(Losses[t.Item1]).Run(t.Item2), iter: 150);

    private sealed class Pipeline
    {
        private readonly CoreHarness _h = new(new QueueSettings
        {
            Capacity = 5, FullMode = FullMode.Wait, ProducerCredit = 3, MaxAttempts = 3,
            AckTimeout = TimeSpan.FromSeconds(3), FullWaitTimeout = TimeSpan.FromSeconds(2), CreditLease = TimeSpan.FromSeconds(1),
        }, payloadCheck: m => m is string s && s.EndsWith("-bad", StringComparison.Ordinal) ? "it cannot be written" : null);
        private readonly ProducerWindow<string>[] _windows = { new(8), new(8) };
        // Each producer's incarnation: what is addressed to an earlier one never reaches the current one.
        private readonly int[] _incarnations = new int[2];
        // The incarnation the queue last heard register, which its credit goes to.
        private readonly int[] _registered = new int[2];
        private readonly Queue<(int Producer, int Incarnation, object Message)> _toQueue = new();
        private readonly Queue<(int Producer, int Incarnation, object Message)> _toProducer = new();
        private readonly HashSet<string> _unknown = new();
        private readonly HashSet<string> _taken = new();
        private readonly HashSet<string> _acceptedToCaller = new();
        private readonly HashSet<string> _failed = new();
        private readonly Dictionary<string, int> _handled = new();
        private readonly List<string> _scratch = new();
        // What the queue machine keeps of each producer's latest registration, and repeats in its credit.
        private readonly long[] _registrations = new long[2];
        private readonly double _loss;
        private Random _random = new(0);
        private int _consumer;
        private int _next;
        private bool _healed;

        public Pipeline(double loss)
        {
            _loss = loss;
            _consumer = NewConsumer();
        }

        public void Run(int[] ops)
        {
            _random = new Random(ops.Length);
            foreach (var x in ops)
            {
                Step(x % 11, x / 11);
                _h.State.CheckInvariants();
                foreach (var w in _windows) w.AssertInvariants();
            }
            Settle();
            foreach (var m in _taken)
            {
                var fates = (_acceptedToCaller.Contains(m) ? 1 : 0) + (_failed.Contains(m) ? 1 : 0) + (_unknown.Contains(m) ? 1 : 0);
                Assert.True(fates == 1, $"{m} was reported accepted {_acceptedToCaller.Contains(m)}, failed {_failed.Contains(m)}, unknown {_unknown.Contains(m)}");
            }
            foreach (var m in _acceptedToCaller) Assert.True(_handled.GetValueOrDefault(m) == 1, $"{m} was reported accepted but handled {_handled.GetValueOrDefault(m)} times");
            foreach (var m in _failed) Assert.False(_handled.ContainsKey(m), $"{m} was failed to its caller but handled");
            foreach (var m in _unknown) Assert.True(_handled.GetValueOrDefault(m) <= 1, $"{m} (fate unknown after a crash) was handled {_handled.GetValueOrDefault(m)} times");
            Assert.Equal(_h.State.Describe(), _h.Replay().Describe());
        }

        private void Step(int op, int arg)
        {
            var p = arg % 2;
            switch (op)
            {
                case 0 or 1:
                    var m = $"p{p}-{_next++}{(arg % 13 == 0 ? "-bad" : "")}";
                    if (_windows[p].TryAdd(m)) _taken.Add(m);
                    break;
                case 2: Flush(p); break;
                case 3:
                    // Heard nothing for a while: re-register (every value in it is absolute).
                    if (_windows[p].HasWork || _windows[p].IsRegistering) Send(_toQueue, p, Registration(p));
                    break;
                case 4 or 5: DeliverToQueue(); break;
                case 6: QueueFlush(); break;
                case 7 or 8: DeliverToProducer(); break;
                case 9:
                    _h.Tick(TimeSpan.FromMilliseconds(arg % 1500));
                    ReplyParked(_h.Parked);
                    break;
                case 10 when arg % 40 == 0:
                    var rejected = new List<ParkedOutcome>();
                    _h.State.BeginDrain(rejected);
                    ReplyParked(rejected);
                    break;
                case 10 when arg % 40 == 1:
                    ReplyParked(_h.Restart());
                    _consumer = NewConsumer();
                    break;
                case 10 when arg % 40 is 2 or 3: Crash(p); break;
            }
        }

        // The producer actor dies: the queue sees it terminate (before what it sent last, as a death notice can overtake),
        // its callers are told their messages may or may not have been accepted, and a new incarnation takes the id.
        private void Crash(int p)
        {
            var outcomes = new List<ParkedOutcome>();
            _h.State.DeactivateProducer($"p{p}", _h.Now, outcomes);
            ReplyParked(outcomes);
            _scratch.Clear();
            _windows[p].FailFrom(_windows[p].AcceptedSeqNr + 1, _scratch);
            foreach (var m in _scratch) _unknown.Add(m);
            _windows[p] = new ProducerWindow<string>(8);
            _incarnations[p]++;
        }

        // A producer (re-)registers, numbering the registration as the producer actor does.
        private RegisterProducer Registration(int p)
        {
            var demand = _windows[p].Register();
            return new RegisterProducer($"p{p}", demand, _windows[p].Registration);
        }

        private int NewConsumer()
        {
            var c = _h.State.AddConsumer();
            _h.State.Pull(c, 100);
            return c;
        }

        // Sends over the lossy link; to the queue from the producer's current incarnation, to a producer the incarnation given.
        private void Send(Queue<(int, int, object)> link, int producer, object message, int? incarnation = null)
        {
            if (_healed || _random.NextDouble() >= _loss) link.Enqueue((producer, incarnation ?? _incarnations[producer], message));
        }

        private void Flush(int p)
        {
            _scratch.Clear();
            var first = _windows[p].CollectSends(_scratch, out var requestCredit);
            if (_scratch.Count > 0) Send(_toQueue, p, new SequencedBatch($"p{p}", first, _scratch.ToArray<object>()));
            if (requestCredit is { } upTo) Send(_toQueue, p, new RequestCredit($"p{p}", upTo));
        }

        // What the queue actor does with each producer message, reduced to the core calls and the replies.
        private void DeliverToQueue()
        {
            if (!_toQueue.TryDequeue(out var item)) return;
            var (p, incarnation, message) = item;
            var s = _h.State;
            switch (message)
            {
                case RegisterProducer r:
                    if (incarnation != _registered[p])
                    {
                        // Another actor takes the id: the queue lets the previous one go first (as the queue machine does).
                        var outcomes = new List<ParkedOutcome>();
                        s.DeactivateProducer(r.ProducerId, _h.Now, outcomes);
                        ReplyParked(outcomes);
                        _registered[p] = incarnation;
                    }
                    _registrations[p] = r.Registration;
                    s.RegisterProducer(r.ProducerId, r.Demand, _h.Now);
                    s.ForgetReported(r.ProducerId);
                    if (s.IsDraining && r.Demand > 0 && s.TryGetProducer(r.ProducerId, out var accepted, out _))
                        Send(_toProducer, p, new SequenceRejected(accepted + 1, RejectReason.Draining, "draining"), incarnation);
                    break;
                case RequestCredit r:
                    if (s.IsDraining) Send(_toProducer, p, new SequenceRejected(r.UpToSeqNr, RejectReason.Draining, "draining"), incarnation);
                    else if (!s.RequestCredit(r.ProducerId, r.UpToSeqNr, _h.Now)) Send(_toProducer, p, new SequenceRejected(r.UpToSeqNr, RejectReason.NotRegistered, "unknown"), incarnation);
                    break;
                case SequencedBatch b:
                    var taken = s.EnqueueSequencedRun(b.ProducerId, b.FirstSeqNr, b.Messages, _h.Now);
                    for (var i = taken; i < b.Messages.Length; i++)
                    {
                        var r = s.EnqueueSequenced(b.ProducerId, b.FirstSeqNr + i, b.Messages[i], (p, incarnation), _h.Now);
                        if (r.Status == EnqueueStatus.Duplicate) s.ForgetReported(b.ProducerId);
                        if (r.Status != EnqueueStatus.Rejected) continue;
                        Send(_toProducer, p, new SequenceRejected(b.FirstSeqNr + i, r.Reason, r.Detail!), incarnation);
                        break;
                    }
                    break;
            }
        }

        private void QueueFlush()
        {
            var s = _h.State;
            var outcomes = new List<ParkedOutcome>();
            s.AdmitParked(_h.Now, outcomes);
            ReplyParked(outcomes);
            s.GrantCredit(_h.Now);
            foreach (var u in _h.CollectUpdates())
            {
                var p = u.ProducerId == "p0" ? 0 : 1;
                Send(_toProducer, p, new ProducerCredit(u.AcceptedSeqNr, u.CreditSeqNr, _registrations[p]), _registered[p]);
            }
            // The consumer handles and acks at once, so nothing is in flight when the queue restarts.
            foreach (var (c, d) in _h.Dispatch())
            {
                var m = (string)d.Message;
                _handled[m] = _handled.GetValueOrDefault(m) + 1;
                Assert.Null(s.Ack(c, d.DeliveryId));
            }
        }

        private void ReplyParked(List<ParkedOutcome> outcomes)
        {
            foreach (var o in outcomes)
                if (!o.Accepted && o.Parked.ReplyTo is (int p, int incarnation)) Send(_toProducer, p, new SequenceRejected(o.Parked.SeqNr, o.Reason, o.Detail!), incarnation);
        }

        private void DeliverToProducer()
        {
            if (!_toProducer.TryDequeue(out var item)) return;
            var (p, incarnation, message) = item;
            if (incarnation != _incarnations[p]) return; // to an actor that is gone: dead letters
            var w = _windows[p];
            _scratch.Clear();
            switch (message)
            {
                case ProducerCredit c:
                    w.OnCredit(c.AcceptedSeqNr, c.CreditSeqNr, _scratch, c.Registration);
                    foreach (var m in _scratch) Assert.True(_acceptedToCaller.Add(m), $"{m} was reported accepted twice");
                    break;
                case SequenceRejected { Reason: RejectReason.Draining or RejectReason.QueueStopped } r:
                    w.FailFrom(r.SeqNr, _scratch);
                    foreach (var m in _scratch) _failed.Add(m);
                    break;
                case SequenceRejected { Reason: RejectReason.InvalidMessage } r:
                    // As the producer actor does: the refused one fails alone, and the rest are sent again renumbered.
                    if (w.DropRefused(r.SeqNr, out var refused))
                    {
                        Assert.EndsWith("-bad", refused);
                        _failed.Add(refused);
                        Send(_toQueue, p, Registration(p));
                    }
                    break;
                case SequenceRejected:
                    Send(_toQueue, p, Registration(p));
                    break;
            }
        }

        // The link heals: producers re-sync until each holds nothing, as their resend timers would.
        private void Settle()
        {
            _healed = true;
            for (var round = 0; round < 200 && (_windows.Any(w => w.HasWork) || _toQueue.Count + _toProducer.Count > 0); round++)
            {
                for (var p = 0; p < 2; p++)
                    if (round % 5 == 0 && (_windows[p].HasWork || _windows[p].IsRegistering))
                        _toQueue.Enqueue((p, _incarnations[p], Registration(p)));
                while (_toQueue.Count > 0) DeliverToQueue();
                QueueFlush();
                _h.Tick(TimeSpan.FromSeconds(1));
                ReplyParked(_h.Parked);
                QueueFlush();
                while (_toProducer.Count > 0) DeliverToProducer();
                for (var p = 0; p < 2; p++) Flush(p);
            }
            Assert.All(_windows, w => Assert.False(w.HasWork,
                $"a producer still holds {w.Count} messages after the link healed (accepted {w.AcceptedSeqNr}, credit {w.CreditSeqNr}, registering {w.IsRegistering}); queue:\n{_h.State.Describe()}\n{string.Join("\n", _h.Events.TakeLast(30))}"));
        }
    }
}
