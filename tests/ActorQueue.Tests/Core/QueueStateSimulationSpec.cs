using ActorQueue.Core;
using ActorQueue.Protocol;
using CsCheck;
using Xunit;

namespace ActorQueue.Tests.Core;

/// <summary>
/// Random runs of every operation against the core, drains, returns, windows and restarts (replay, then recovery)
/// included: the invariants hold after each step, the recorded events replay into an equal state, and when everything
/// is finally consumed each accepted message was acked or evicted exactly once - none lost, none settled twice.
/// </summary>
public class QueueStateSimulationSpec
{
    private static readonly int[] Capacities = { 1, 3, 10 };

    [Fact]
    public void Random_operations_keep_the_invariants_replay_equal_and_lose_nothing() =>
        Gen.Select(Gen.Int[0, 2], Gen.Int[0, 3], Gen.Int[0, 1_000_000].Array[1, 400])
            .Sample(t => new Simulation(Capacities[t.Item1], (FullMode)t.Item2).Run(t.Item3), iter: 150);

    private sealed class Simulation
    {
        private readonly CoreHarness _h;
        private readonly List<int> _consumers = new();
        private readonly Dictionary<long, (int Consumer, string Message)> _held = new();
        private readonly HashSet<string> _accepted = new();
        private readonly HashSet<string> _settled = new();
        private readonly long[] _nextSeq = { 1, 1 };
        private int _next;

        public Simulation(int capacity, FullMode mode) => _h = new CoreHarness(new QueueSettings
        {
            Capacity = capacity, FullMode = mode, MaxAttempts = 3, ProducerCredit = 2, DeadLetterCapacity = 10_000,
            AckTimeout = TimeSpan.FromSeconds(3), FullWaitTimeout = TimeSpan.FromSeconds(2),
            RetryMinBackoff = TimeSpan.FromMilliseconds(500),
        });

        public void Run(int[] ops)
        {
            foreach (var x in ops)
            {
                Step(x % 18, x / 18);
                _h.State.CheckInvariants();
            }
            Assert.Equal(_h.State.Describe(), _h.Replay().Describe());
            ConsumeEverything();
            foreach (var m in _accepted) Assert.Contains(m, _settled);
            Assert.Equal(_accepted.Count, _settled.Count);
        }

        private void Step(int op, int arg)
        {
            var s = _h.State;
            switch (op)
            {
                case 0:
                    var msg = $"plain{_next++}";
                    Track(msg, s.Enqueue(msg, 0, msg, _h.Now));
                    break;
                case 1:
                    // A run of one to four numbered messages, as the queue actor takes a batch: sometimes the leading
                    // part in one step, then the rest one by one until one is refused.
                    var p = arg % 2;
                    var run = Enumerable.Range(0, 1 + arg / 2 % 4).Select(i => (object?)$"p{p}-{_nextSeq[p] + i}").ToArray();
                    var taken = arg % 3 == 0 ? s.EnqueueSequencedRun($"p{p}", _nextSeq[p], run, _h.Now) : 0;
                    for (var i = 0; i < taken; i++) _accepted.Add((string)run[i]!);
                    _nextSeq[p] += taken;
                    for (var i = taken; i < run.Length; i++)
                    {
                        var seqMsg = (string)run[i]!;
                        var r = s.EnqueueSequenced($"p{p}", _nextSeq[p], seqMsg, seqMsg, _h.Now);
                        Track(seqMsg, r);
                        if (r.Status is not (EnqueueStatus.Accepted or EnqueueStatus.Parked)) break;
                        _nextSeq[p]++;
                    }
                    break;
                case 2: s.RegisterProducer($"p{arg % 2}", arg % 3 == 0 ? long.MaxValue : arg % 5, _h.Now); break;
                case 3:
                    // A producer stops: what it had parked is rejected (never accepted), and its successor numbers on
                    // from its last accepted message.
                    var stopped = new List<ParkedOutcome>();
                    s.DeactivateProducer($"p{arg % 2}", _h.Now, stopped);
                    Assert.All(stopped, o => Assert.False(o.Accepted));
                    if (s.TryGetProducer($"p{arg % 2}", out var last, out _)) _nextSeq[arg % 2] = last + 1;
                    break;
                case 4:
                    if (arg % 2 == 0) s.RequestCredit($"p{arg % 4 / 2}", _nextSeq[arg % 4 / 2] + arg % 5, _h.Now);
                    s.GrantCredit(_h.Now);
                    _h.CollectUpdates();
                    break;
                case 5: _consumers.Add(s.AddConsumer()); break;
                case 6:
                    if (_consumers.Count == 0) break;
                    // As the queue machine does for every message a consumer sends: it is heard from, then obeyed.
                    s.Heard(_consumers[arg % _consumers.Count]);
                    s.Pull(_consumers[arg % _consumers.Count], arg % 5);
                    break;
                case 7:
                    foreach (var (c, d) in _h.Dispatch()) _held[d.DeliveryId] = (c, (string)d.Message);
                    break;
                case 8 when arg % 4 == 1 && _held.Count > 0:
                    // A range around a held delivery: what its consumer holds is acked, every other id refused.
                    var (around, owner) = _held.ElementAt(arg % _held.Count);
                    var from = Math.Max(1, around - arg % 3);
                    var to = around + arg / 4 % 4;
                    var refusedIds = new List<RefusedStretch>();
                    s.AckRange(owner.Consumer, from, to, refusedIds);
                    for (var d = from; d <= to; d++)
                    {
                        var refusedHere = refusedIds.Any(x => x.FromDeliveryId <= d && d <= x.ToDeliveryId);
                        if (_held.TryGetValue(d, out var h) && h.Consumer == owner.Consumer)
                        {
                            Assert.False(refusedHere, $"delivery {d} was held by consumer {h.Consumer} but refused");
                            Settle(h.Message);
                            _held.Remove(d);
                        }
                        else Assert.True(refusedHere, $"delivery {d} was not held by consumer {owner.Consumer} but not refused");
                    }
                    break;
                case 8 or 9 or 10:
                    if (_held.Count == 0) break;
                    var (id, holder) = _held.ElementAt(arg % _held.Count);
                    var consumer = arg % 7 == 0 ? -1 : holder.Consumer; // sometimes the wrong consumer
                    SettleError? error;
                    s.Heard(consumer);
                    if (op == 8)
                    {
                        error = s.Ack(consumer, id);
                        if (error is null) Settle(holder.Message);
                    }
                    else if (op == 9) error = s.Nack(consumer, id, (arg % 3) switch { 0 => null, 1 => TimeSpan.Zero, _ => TimeSpan.FromSeconds(1) }, "sim", _h.Now, out _);
                    else error = s.Extend(consumer, id, _h.Now);
                    if (consumer == -1) Assert.Equal(SettleError.NotHolder, error);
                    else Assert.Null(error);
                    if (op != 10 && error is null) _held.Remove(id);
                    break;
                case 11:
                    if (_consumers.Count == 0) break;
                    var lost = _consumers[arg % _consumers.Count];
                    s.RemoveConsumer(lost, _h.Now);
                    _consumers.Remove(lost);
                    foreach (var gone in _held.Where(kv => kv.Value.Consumer == lost).Select(kv => kv.Key).ToList()) _held.Remove(gone);
                    break;
                case 12:
                    _h.Tick(TimeSpan.FromMilliseconds(arg % 2000));
                    ForgetTakenBack();
                    TrackParked(_h.Parked);
                    break;
                case 13:
                    var outcomes = new List<ParkedOutcome>();
                    s.AdmitParked(_h.Now, outcomes);
                    TrackParked(outcomes);
                    break;
                case >= 15:
                    StepMore(op, arg);
                    break;
                case 14:
                    if (arg % 2 == 0) s.RedriveAll();
                    else
                    {
                        var dead = new List<DeadEntry>();
                        s.CopyDeadLetters(1, dead);
                        if (dead.Count > 0) s.Redrive(dead[0].Message.MessageId);
                    }
                    break;
            }
        }

        private void StepMore(int op, int arg)
        {
            var s = _h.State;
            switch (op)
            {
                case 15:
                    // The consumer gives back a delivery it never started.
                    if (_held.Count == 0) break;
                    var (id, holder) = _held.ElementAt(arg % _held.Count);
                    var consumer = arg % 5 == 0 ? -1 : holder.Consumer;
                    var error = s.Return(consumer, id);
                    if (consumer == -1) Assert.Equal(SettleError.NotHolder, error);
                    else
                    {
                        Assert.Null(error);
                        _held.Remove(id);
                    }
                    break;
                case 16 when arg % 25 == 0:
                    var drained = new List<ParkedOutcome>();
                    s.BeginDrain(drained);
                    TrackParked(drained);
                    break;
                case 17 when arg % 10 == 5: _h.TakeSnapshot(); break;
                case 17 when arg % 10 == 0:
                    // A restart, from every event or from what a journal keeps (a crash of a durable queue): whatever
                    // consumers held goes back; consumers and producers must register again.
                    if (arg % 20 == 0) TrackParked(_h.Restart());
                    else
                    {
                        // Parked messages were never accepted: they die with the process, answered by nobody.
                        _h.RestartFromJournal();
                    }
                    _held.Clear();
                    _consumers.Clear();
                    break;
            }
        }

        private void Track(string message, EnqueueResult r)
        {
            if (r.Status == EnqueueStatus.Accepted) _accepted.Add(message);
            if (r.Evicted is { } evicted) Settle((string)evicted.Message);
        }

        private void TrackParked(List<ParkedOutcome> outcomes)
        {
            foreach (var o in outcomes)
                if (o.Accepted) _accepted.Add((string)o.Parked.Message);
        }

        private void Settle(string message) => Assert.True(_settled.Add(message), $"{message} was settled twice");

        // Deliveries the tick took back (deadline missed) are no longer ours to settle.
        private void ForgetTakenBack()
        {
            foreach (var (id, h) in _held.ToList())
                if (_h.State.Ack(-1, id) is SettleError.AlreadySettled) _held.Remove(id);
        }

        private void ConsumeEverything()
        {
            var s = _h.State;
            // Producers that stay registered keep room reserved as credit, which would keep dead letters out.
            s.DeactivateProducer("p0", _h.Now, new List<ParkedOutcome>());
            s.DeactivateProducer("p1", _h.Now, new List<ParkedOutcome>());
            var finisher = s.AddConsumer();
            // A draining queue redrives nothing: its dead letters stay in the store, kept rather than lost.
            for (var round = 0; round < 1000 && (s.Held > 0 || (s.DeadCount > 0 && !s.IsDraining) || s.ParkedCount > 0); round++)
            {
                foreach (var (id, held) in _held.ToList())
                {
                    if (s.Ack(held.Consumer, id) is null) Settle(held.Message);
                    _held.Remove(id);
                }
                var outcomes = new List<ParkedOutcome>();
                s.AdmitParked(_h.Now, outcomes);
                TrackParked(outcomes);
                s.RedriveAll();
                s.Heard(finisher);
                s.Pull(finisher, Math.Max(1, s.Capacity));
                foreach (var (c, d) in _h.Dispatch()) _held[d.DeliveryId] = (c, (string)d.Message);
                _h.Tick(TimeSpan.FromSeconds(1));
                TrackParked(_h.Parked);
                ForgetTakenBack();
                s.CheckInvariants();
            }
            Assert.True(s.Held == 0, s.Describe());
            if (!s.IsDraining) Assert.Equal(0, s.DeadCount);
            var kept = new List<DeadEntry>();
            s.CopyDeadLetters(int.MaxValue, kept);
            foreach (var d in kept) Settle((string)d.Message.Message);
        }
    }
}
