using ActorQueue.Core;
using ActorQueue.Protocol;
using CsCheck;
using Xunit;

namespace ActorQueue.Tests.Core;

/// <summary>
/// The core against a reference model: a few plain lists that say, as simply as they can, what the queue's semantics
/// are for one consumer at a time (replaced now and then, so suspects and isolation come into play). CsCheck runs
/// random sequences of operations on both; after every step they must agree on each answer, each delivery (message,
/// attempt, id) and each count, and the core must keep its invariants. A disagreement is shrunk to a shortest sequence.
/// </summary>
public class QueueStateModelSpec
{
    private static readonly int[] Capacities = { 1, 3, 6 };

    [Fact]
    public void The_core_agrees_with_a_list_based_model_of_the_queue_on_every_step() =>
        Gen.Select(Gen.Int[0, 2], Gen.Int[0, 3], Gen.Select(Gen.Int[0, 12], Gen.Int[0, 999], (k, a) => new Op(k, a)).Array[1, 300])
            .Sample((capacity, mode, ops) => new Comparison(Capacities[capacity], (FullMode)mode).Run(ops), iter: 300);

    [Fact]
    public void The_model_comparison_catches_a_core_that_disagrees()
    {
        // The comparison itself must be able to fail: a model told the wrong capacity disagrees within a few steps.
        var ex = Assert.ThrowsAny<Exception>(() =>
            Gen.Select(Gen.Int[0, 12], Gen.Int[0, 999], (k, a) => new Op(k, a)).Array[1, 300]
                .Sample(ops => new Comparison(3, FullMode.Reject, modelCapacity: 4).Run(ops), iter: 100));
        Assert.Contains("disagree", ex.ToString());
    }

    /// <summary>One step: what it does is decided by <see cref="Kind"/>, whom it touches by <see cref="Arg"/>.</summary>
    public readonly record struct Op(int Kind, int Arg)
    {
        public override string ToString() => Kind switch
        {
            0 or 1 => "Enqueue",
            2 => $"Pull({1 + Arg % 4})",
            3 => "Dispatch",
            4 => $"Ack(#{Arg})",
            5 => $"Nack(#{Arg}, {(Arg % 3) switch { 0 => "backoff", 1 => "0s", _ => $"{1 + Arg % 5}s" }})",
            6 => $"Return(#{Arg})",
            7 => $"Extend(#{Arg})",
            8 => $"Advance({Arg % 5 * 600}ms)",
            9 => "ReplaceConsumer",
            10 => $"Redrive(#{Arg})",
            11 => "AdmitParked",
            _ => $"AckStale({Arg % 8})",
        };
    }

    private sealed class Msg(string payload)
    {
        public string Payload { get; } = payload;
        public int Attempts;
        public bool Suspect;
    }

    private sealed class Held(long deliveryId, Msg message, TimeSpan deadline, long stamp, bool isolated)
    {
        public long DeliveryId { get; } = deliveryId;
        public Msg Message { get; } = message;
        public TimeSpan Deadline = deadline;
        public long Stamp = stamp;
        public bool Isolated { get; } = isolated;
    }

    private sealed class Comparison
    {
        private readonly QueueSettings _settings;
        private readonly QueueState _core;
        private readonly int _capacity;
        private TimeSpan _now = TimeSpan.FromSeconds(1);
        private int _next;
        private readonly List<string> _steps = new();

        // The model: plain lists, nothing clever.
        private readonly List<Msg> _ready = new();
        private readonly List<Msg> _redeliver = new();
        private readonly List<Msg> _suspects = new();
        private readonly List<(Msg Message, TimeSpan Due)> _delayed = new();
        private readonly List<Held> _inFlight = new();
        private readonly List<Msg> _dead = new();
        private readonly List<(string Payload, TimeSpan Deadline)> _parked = new();
        private long _lastDeliveryId;
        private long _stamp;
        private int _consumer;
        private int _window;
        private bool _isolating, _reserved, _stalled;

        public Comparison(int capacity, FullMode mode, int? modelCapacity = null)
        {
            _settings = new QueueSettings
            {
                Capacity = capacity, FullMode = mode, MaxAttempts = 3, DeadLetterCapacity = 4,
                AckTimeout = TimeSpan.FromSeconds(3), FullWaitTimeout = TimeSpan.FromSeconds(2),
                RetryMinBackoff = TimeSpan.FromMilliseconds(500), RetryMaxBackoff = TimeSpan.FromSeconds(2), RetryRandomFactor = 0,
            };
            _capacity = modelCapacity ?? capacity;
            _core = new QueueState(_settings, new Random(0));
            _consumer = _core.AddConsumer();
        }

        public void Run(Op[] ops)
        {
            foreach (var op in ops)
            {
                _steps.Add(op.ToString());
                Step(op);
                Same("held", HeldCount, _core.Held);
                Same("ready", _ready.Count + _redeliver.Count + _suspects.Count, _core.ReadyCount);
                Same("in flight", _inFlight.Count, _core.InFlightCount);
                Same("delayed", _delayed.Count, _core.DelayedCount);
                Same("dead", _dead.Count, _core.DeadCount);
                Same("parked", _parked.Count, _core.ParkedCount);
                _core.CheckInvariants();
            }
            var dead = new List<DeadEntry>();
            _core.CopyDeadLetters(int.MaxValue, dead);
            Same("dead letters", string.Join(",", _dead.Select(m => m.Payload)), string.Join(",", dead.Select(d => (string)d.Message.Message)));
        }

        private int HeldCount => _ready.Count + _redeliver.Count + _suspects.Count + _inFlight.Count + _delayed.Count;

        private void Same<T>(string what, T model, T core)
        {
            if (!EqualityComparer<T>.Default.Equals(model, core))
                throw new Xunit.Sdk.XunitException(
                    $"The core and the model disagree on {what}: model {model}, core {core}, after {string.Join(" ", _steps)}");
        }

        private void Step(Op op)
        {
            switch (op.Kind)
            {
                case 0 or 1: Enqueue(); break;
                case 2:
                    Heard();
                    var window = 1 + op.Arg % 4;
                    _core.Heard(_consumer);
                    Same("pull", true, _core.Pull(_consumer, window));
                    _window = window;
                    break;
                case 3: Dispatch(); break;
                case 4: Settle(op, "ack", d => _core.Ack(_consumer, d), _ => { }); break;
                case 5:
                    TimeSpan? delay = (op.Arg % 3) switch { 0 => null, 1 => TimeSpan.Zero, _ => TimeSpan.FromSeconds(1 + op.Arg % 5) };
                    Settle(op, "nack", d => _core.Nack(_consumer, d, delay, "model", _now, out _), h => Nack(h, delay));
                    break;
                case 6: Settle(op, "return", d => _core.Return(_consumer, d), Return); break;
                case 7:
                    Settle(op, "extend", d => _core.Extend(_consumer, d, _now), h =>
                    {
                        h.Deadline = _now + _settings.AckTimeout;
                        h.Stamp = ++_stamp;
                    }, release: false);
                    break;
                case 8: Advance(TimeSpan.FromMilliseconds(op.Arg % 5 * 600)); break;
                case 9: ReplaceConsumer(); break;
                case 10: Redrive(op.Arg); break;
                case 11: AdmitParked(); break;
                default:
                    // A settlement of an id that is not in flight: never delivered, or settled before.
                    var id = _lastDeliveryId + 2 - op.Arg % 8;
                    if (_inFlight.Any(h => h.DeliveryId == id)) break;
                    SettleError expected = id >= 1 && id <= _lastDeliveryId ? SettleError.AlreadySettled : SettleError.UnknownDelivery;
                    Same("stale ack", (SettleError?)expected, _core.Ack(_consumer, id));
                    break;
            }
        }

        // The consumer said something: a consumer that let a deadline pass is offered work again.
        private void Heard() => _stalled = false;

        // -------------------------------------------------------------- enqueue

        private void Enqueue()
        {
            var payload = $"m{_next++}";
            var r = _core.Enqueue(payload, 0, null, _now);
            if (_parked.Count == 0 && _capacity - HeldCount > 0)
            {
                Same("enqueue", EnqueueStatus.Accepted, r.Status);
                Same("evicted", null, (string?)r.Evicted?.Message);
                _ready.Add(new Msg(payload));
                return;
            }
            var mode = _settings.FullMode;
            if (mode is FullMode.DropOldest or FullMode.DropNewest && _ready.Count + _redeliver.Count > 0 && _parked.Count == 0)
            {
                Msg evicted;
                if (mode == FullMode.DropNewest) evicted = _ready.Count > 0 ? TakeLast(_ready) : TakeLast(_redeliver);
                else evicted = _redeliver.Count > 0 ? TakeFirst(_redeliver) : TakeFirst(_ready);
                Same("enqueue", EnqueueStatus.Accepted, r.Status);
                Same("evicted", evicted.Payload, (string?)r.Evicted?.Message);
                _ready.Add(new Msg(payload));
                return;
            }
            if (mode == FullMode.Wait && _parked.Count < _capacity)
            {
                Same("enqueue", EnqueueStatus.Parked, r.Status);
                _parked.Add((payload, _now + _settings.FullWaitTimeout));
                return;
            }
            Same("enqueue", EnqueueStatus.Rejected, r.Status);
            Same("reason", RejectReason.QueueFull, r.Reason);
        }

        private void AdmitParked()
        {
            var outcomes = new List<ParkedOutcome>();
            _core.AdmitParked(_now, outcomes);
            var expected = new List<string>();
            while (_parked.Count > 0 && _capacity - HeldCount > 0)
            {
                var (payload, _) = _parked[0];
                _parked.RemoveAt(0);
                _ready.Add(new Msg(payload));
                expected.Add($"{payload}:accepted");
            }
            Same("admitted", string.Join(",", expected), Describe(outcomes));
        }

        private static string Describe(List<ParkedOutcome> outcomes) =>
            string.Join(",", outcomes.Select(o => $"{o.Parked.Message}:{(o.Accepted ? "accepted" : o.Reason.ToString())}"));

        // -------------------------------------------------------------- delivery

        private bool Hungry => _inFlight.Count < _window && !_isolating && !_reserved && !_stalled;

        private void Dispatch()
        {
            var output = new List<ConsumerDispatch>();
            _core.Dispatch(_now, output);
            var expected = new List<string>();
            if (_suspects.Count > 0)
            {
                if (_window >= 1 && !_isolating && !_stalled)
                {
                    // A suspect goes alone to a consumer that holds nothing; a busy one is kept free for it.
                    if (_inFlight.Count == 0)
                    {
                        expected.Add(Deliver(TakeFirst(_suspects), isolated: true));
                        _isolating = true;
                    }
                    else _reserved = true;
                }
                if (_suspects.Count == 0) _reserved = false;
            }
            while (_ready.Count + _redeliver.Count > 0 && Hungry)
            {
                var take = Math.Min(_window - _inFlight.Count, _ready.Count + _redeliver.Count);
                for (var i = 0; i < take; i++)
                    expected.Add(Deliver(_redeliver.Count > 0 ? TakeFirst(_redeliver) : TakeFirst(_ready), isolated: false));
            }
            var actual = output.SelectMany(d => d.Batch.Messages.Select((m, i) =>
                $"{d.Batch.FirstDeliveryId + i}:{m}@{d.Batch.Attempts?[i] ?? 1}")).ToList();
            Same("deliveries", string.Join(",", expected), string.Join(",", actual));
        }

        private string Deliver(Msg m, bool isolated)
        {
            m.Attempts++;
            var h = new Held(++_lastDeliveryId, m, _now + _settings.AckTimeout, ++_stamp, isolated);
            _inFlight.Add(h);
            return $"{h.DeliveryId}:{m.Payload}@{m.Attempts}";
        }

        // -------------------------------------------------------------- settlement

        // Picks the arg-th delivery in flight, settles (or extends) it on the core, which must agree it was held, and
        // lets the model do the same; with nothing in flight there is nothing to compare.
        private void Settle(Op op, string what, Func<long, SettleError?> core, Action<Held> model, bool release = true)
        {
            if (_inFlight.Count == 0) return;
            Heard();
            _core.Heard(_consumer);
            var h = _inFlight.OrderBy(x => x.DeliveryId).ElementAt(op.Arg % _inFlight.Count);
            Same(what, null, core(h.DeliveryId));
            if (release) Release(h);
            model(h);
        }

        // Takes a delivery out of flight, as every settlement does first.
        private void Release(Held h)
        {
            _inFlight.Remove(h);
            if (h.Isolated) _isolating = false;
        }

        private void Nack(Held h, TimeSpan? delay)
        {
            var m = h.Message;
            if (m.Attempts >= _settings.MaxAttempts)
            {
                DeadLetter(m);
                return;
            }
            var wait = delay ?? Backoff(m.Attempts);
            m.Suspect = false;
            if (wait > TimeSpan.Zero) _delayed.Add((m, _now + wait));
            else _redeliver.Add(m);
        }

        private TimeSpan Backoff(int attempt)
        {
            var raw = Math.Min(_settings.RetryMaxBackoff.Ticks, _settings.RetryMinBackoff.Ticks * Math.Pow(2, attempt - 1));
            return TimeSpan.FromTicks((long)raw);
        }

        private void Return(Held h)
        {
            var m = h.Message;
            m.Attempts--;
            (m.Suspect ? _suspects : _redeliver).Add(m);
        }

        // Taken back without a verdict (deadline missed, consumer gone): dead after its last attempt, else again.
        private void TakeBack(Held h, bool consumerLost)
        {
            Release(h);
            var m = h.Message;
            if (m.Attempts >= _settings.MaxAttempts)
            {
                DeadLetter(m);
                return;
            }
            m.Suspect = consumerLost;
            (consumerLost ? _suspects : _redeliver).Add(m);
        }

        private void DeadLetter(Msg m)
        {
            if (_dead.Count >= _settings.DeadLetterCapacity) _dead.RemoveAt(0);
            m.Suspect = false;
            _dead.Add(m);
        }

        private void Redrive(int arg)
        {
            var dead = new List<DeadEntry>();
            _core.CopyDeadLetters(int.MaxValue, dead);
            if (dead.Count == 0) return;
            var pick = dead[arg % dead.Count];
            var expected = _capacity - HeldCount > 0;
            Same("redrive", expected, _core.Redrive(pick.Message.MessageId));
            if (!expected) return;
            var m = _dead.Single(x => x.Payload == (string)pick.Message.Message);
            _dead.Remove(m);
            m.Attempts = 0;
            _ready.Add(m);
        }

        private void ReplaceConsumer()
        {
            var held = _inFlight.Count;
            Same("taken back", held, _core.RemoveConsumer(_consumer, _now));
            foreach (var h in _inFlight.OrderBy(x => x.DeliveryId).ToList()) TakeBack(h, consumerLost: true);
            _consumer = _core.AddConsumer();
            (_window, _isolating, _reserved, _stalled) = (0, false, false, false);
        }

        // -------------------------------------------------------------- time

        private void Advance(TimeSpan by)
        {
            _now += by;
            var parkedOutcomes = new List<ParkedOutcome>();
            var revoked = new List<Revocation>();
            _core.Tick(_now, parkedOutcomes, revoked);

            var expectedRevoked = new List<long>();
            foreach (var h in _inFlight.OrderBy(x => x.Stamp).ToList())
            {
                if (h.Deadline > _now) break;
                TakeBack(h, consumerLost: false);
                _stalled = true;
                expectedRevoked.Add(h.DeliveryId);
            }
            Same("revoked", string.Join(",", expectedRevoked), string.Join(",", revoked.Select(r => r.DeliveryId)));

            foreach (var d in _delayed.OrderBy(x => x.Due).ThenBy(x => x.Message.Payload.Length).ThenBy(x => x.Message.Payload, StringComparer.Ordinal).ToList())
            {
                if (d.Due > _now) break;
                _delayed.Remove(d);
                _redeliver.Add(d.Message);
            }

            var expectedParked = new List<string>();
            while (_parked.Count > 0 && _parked[0].Deadline <= _now)
            {
                expectedParked.Add($"{_parked[0].Payload}:{RejectReason.WaitTimedOut}");
                _parked.RemoveAt(0);
            }
            Same("timed out", string.Join(",", expectedParked), Describe(parkedOutcomes));
        }

        private static Msg TakeFirst(List<Msg> list)
        {
            var m = list[0];
            list.RemoveAt(0);
            return m;
        }

        private static Msg TakeLast(List<Msg> list)
        {
            var m = list[^1];
            list.RemoveAt(list.Count - 1);
            return m;
        }
    }
}
