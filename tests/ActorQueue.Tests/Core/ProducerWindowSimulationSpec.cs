using ActorQueue.Core;
using ActorQueue.Protocol;
using CsCheck;
using Xunit;

namespace ActorQueue.Tests.Core;

/// <summary>
/// Two producers' credit windows and the queue's core, co-simulated over a link that loses messages both ways, with
/// credit leases, parking, drains, restarts (replay, then recovery) and messages the queue refuses for good (as a
/// durable queue refuses what it cannot write; the producer drops them and renumbers the rest): every message a
/// producer took is, in the end, either reported accepted to its caller or failed, never both; everything accepted is
/// handled exactly once; nothing failed is handled.
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
        private readonly Queue<(int Producer, object Message)> _toQueue = new();
        private readonly Queue<(int Producer, object Message)> _toProducer = new();
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
                Assert.True(_acceptedToCaller.Contains(m) ^ _failed.Contains(m), $"{m} was reported {(_failed.Contains(m) ? "both accepted and failed" : "neither accepted nor failed")}");
            foreach (var m in _acceptedToCaller) Assert.Equal(1, _handled.GetValueOrDefault(m));
            foreach (var m in _failed) Assert.False(_handled.ContainsKey(m), $"{m} was failed to its caller but handled");
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
            }
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

        private void Send(Queue<(int, object)> link, int producer, object message)
        {
            if (_healed || _random.NextDouble() >= _loss) link.Enqueue((producer, message));
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
            var (p, message) = item;
            var s = _h.State;
            switch (message)
            {
                case RegisterProducer r:
                    _registrations[p] = r.Registration;
                    s.RegisterProducer(r.ProducerId, r.Demand, _h.Now);
                    s.ForgetReported(r.ProducerId);
                    if (s.IsDraining && r.Demand > 0 && s.TryGetProducer(r.ProducerId, out var accepted, out _))
                        Send(_toProducer, p, new SequenceRejected(accepted + 1, RejectReason.Draining, "draining"));
                    break;
                case RequestCredit r:
                    if (s.IsDraining) Send(_toProducer, p, new SequenceRejected(r.UpToSeqNr, RejectReason.Draining, "draining"));
                    else if (!s.RequestCredit(r.ProducerId, r.UpToSeqNr, _h.Now)) Send(_toProducer, p, new SequenceRejected(r.UpToSeqNr, RejectReason.NotRegistered, "unknown"));
                    break;
                case SequencedBatch b:
                    var taken = s.EnqueueSequencedRun(b.ProducerId, b.FirstSeqNr, b.Messages, _h.Now);
                    for (var i = taken; i < b.Messages.Length; i++)
                    {
                        var r = s.EnqueueSequenced(b.ProducerId, b.FirstSeqNr + i, b.Messages[i], p, _h.Now);
                        if (r.Status == EnqueueStatus.Duplicate) s.ForgetReported(b.ProducerId);
                        if (r.Status != EnqueueStatus.Rejected) continue;
                        Send(_toProducer, p, new SequenceRejected(b.FirstSeqNr + i, r.Reason, r.Detail!));
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
                Send(_toProducer, p, new ProducerCredit(u.AcceptedSeqNr, u.CreditSeqNr, _registrations[p]));
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
                if (!o.Accepted && o.Parked.ReplyTo is int p) Send(_toProducer, p, new SequenceRejected(o.Parked.SeqNr, o.Reason, o.Detail!));
        }

        private void DeliverToProducer()
        {
            if (!_toProducer.TryDequeue(out var item)) return;
            var (p, message) = item;
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
                        _toQueue.Enqueue((p, Registration(p)));
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
