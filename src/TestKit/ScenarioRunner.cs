using System.Diagnostics;
using ActorQueue.Client;
using ActorQueue.Protocol;
using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit;
using Akka.TestKit.Configs;

namespace ActorQueue.TestKit;

/// <summary>What a run of a <see cref="Scenario"/> produced.</summary>
/// <param name="Scenario">The scenario that ran.</param>
/// <param name="History">Every event of the run.</param>
/// <param name="Verdict">The checker's judgement of the history.</param>
/// <param name="VirtualTime">Virtual time the run took.</param>
/// <param name="WallTime">Real time the run took.</param>
public sealed record ScenarioResult(Scenario Scenario, History History, Verdict Verdict, TimeSpan VirtualTime, TimeSpan WallTime)
{
    /// <summary>Throws <see cref="ScenarioFailedException"/> (naming the seed and the command that replays it) unless the verdict passed.</summary>
    public ScenarioResult AssertPassed()
    {
        if (!Verdict.Passed) throw new ScenarioFailedException(this);
        return this;
    }

    /// <summary>
    /// The events of the first <paramref name="messages"/> messages the verdict faults (and every crash and pause), one
    /// per line: where to start reading a failure.
    /// </summary>
    /// <param name="messages">How many faulted messages to trace.</param>
    public string Trace(int messages = 2)
    {
        var ids = Verdict.Lost.Concat(Verdict.Duplicated.Where(d => d.Cause == DuplicateCause.Unexplained).Select(d => d.MessageId))
            .Concat(Verdict.Unexpected).Concat(Verdict.OutOfOrder.SelectMany(o => new[] { o.Earlier, o.Later }))
            .Concat(Verdict.Unanswered).Concat(Verdict.NotDrained).Distinct().Take(messages).ToHashSet(StringComparer.Ordinal);
        if (ids.Count == 0) return "";
        var lines = History.Events.Where(e => (e.MessageId is not null && ids.Contains(e.MessageId)) ||
                                              e.Kind is HistoryKind.ConsumerCrashed or HistoryKind.ProducerCrashed or HistoryKind.QueueCrashed or HistoryKind.ConsumerPaused)
            .Take(200).Select(e => "  " + e);
        return $"Trace of {string.Join(", ", ids)}:\n{string.Join('\n', lines)}\n";
    }
}

/// <summary>A simulation whose verdict failed; the message names the scenario, its seed and how to replay it.</summary>
public sealed class ScenarioFailedException : Exception
{
    /// <summary>Creates the exception for a failed run.</summary>
    /// <param name="result">The run.</param>
    public ScenarioFailedException(ScenarioResult result)
        : base($"Simulation {result.Scenario.Describe()}\n{result.Verdict.Describe()}\n{result.Trace()}Replay: {result.Scenario.Replay}") => Result = result;

    /// <summary>The failed run.</summary>
    public ScenarioResult Result { get; }
}

/// <summary>Runs one <see cref="Scenario"/>: builds its actor system on virtual time, drives it step by step, records and judges.</summary>
internal sealed class ScenarioRunner
{
    private const string SimulationHocon = """
        akka.loglevel = ERROR
        akka.stdout-loglevel = ERROR
        actor-queue.drain-on-shutdown = off
        actor-queue.consumer.restart { min-backoff = 200ms, max-backoff = 1s }
        """;

    private static readonly TimeSpan StatsTimeout = TimeSpan.FromSeconds(1);

    private readonly Scenario _s;
    private ActorSystem _system = null!;
    private TestScheduler _clock = null!;
    private DateTimeOffset _start;
    private History _history = null!;
    private IActorRef _queue = null!;
    private IActorRef _replies = null!;
    private readonly List<IActorRef> _consumerSupervisors = new();
    private readonly List<IActorRef> _links = new();
    private readonly List<ProducerState> _producers = new();
    private readonly List<ScheduledFault> _pendingFaults;
    private readonly List<(TimeSpan At, Action Do)> _later = new();
    // Which message each correlation id stands for, and which messages have had their answer (accepted or rejected).
    private readonly System.Collections.Concurrent.ConcurrentDictionary<long, string> _correlations = new();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> _answered = new(StringComparer.Ordinal);
    private readonly HashSet<string> _sent = new(StringComparer.Ordinal);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<IActorRef, bool> _killed = new();
    private readonly Activity _activity = new();
    private long _lostDeliveries;

    public ScenarioRunner(Scenario scenario)
    {
        _s = scenario;
        _pendingFaults = scenario.Faults.OrderBy(f => f.At).ToList();
        foreach (var f in _pendingFaults) Validate(f.Fault);
    }

    private TimeSpan Now => _clock.Now - _start;

    private void Validate(Fault fault)
    {
        switch (fault)
        {
            case Fault.KillConsumer k when k.Consumer < 0 || k.Consumer >= _s.Consumers.Count:
                throw new ArgumentException($"Fault {fault} names consumer {k.Consumer}; the scenario has {_s.Consumers.Count}.");
            case Fault.PauseConsumer p when p.Consumer < 0 || p.Consumer >= _s.Consumers.Count:
                throw new ArgumentException($"Fault {fault} names consumer {p.Consumer}; the scenario has {_s.Consumers.Count}.");
            case Fault.KillProducer k when k.Producer < 0 || k.Producer >= _s.Producers.Count:
                throw new ArgumentException($"Fault {fault} names producer {k.Producer}; the scenario has {_s.Producers.Count}.");
            case Fault.KillProducer when _s.Producers.Via != ProducerKind.Actor:
                throw new ArgumentException($"Fault {fault} needs ProducerKind.Actor producers; this scenario's are {_s.Producers.Via}.");
            case Fault.CrashQueue when !_s.Queue.Durable:
                throw new ArgumentException("Fault CrashQueue needs a durable queue (an in-memory queue that crashes loses what it holds by design).");
        }
    }

    public async Task<ScenarioResult> RunAsync(CancellationToken cancellationToken)
    {
        var wall = Stopwatch.StartNew();
        var config = _s.Config()
            .WithFallback(TestConfigs.TestSchedulerConfig)
            .WithFallback(ConfigurationFactory.ParseString(SimulationHocon));
        _system = ActorSystem.Create($"simulation-{_s.Seed}", config);
        try
        {
            _clock = (TestScheduler)_system.Scheduler;
            _start = _clock.Now;
            _history = new History(() => Now);
            await StartAsync().ConfigureAwait(false);
            await DriveAsync(cancellationToken).ConfigureAwait(false);
            await FinishAsync().ConfigureAwait(false);
            var verdict = HistoryChecker.Check(_history, _s.Queue.AckTimeout);
            return new ScenarioResult(_s, _history, verdict, Now, wall.Elapsed);
        }
        finally
        {
            await _system.Terminate().ConfigureAwait(false);
        }
    }

    private async Task StartAsync()
    {
        var queues = _system.ActorQueues();
        _queue = await queues.CreateQueueAsync(_s.Name, _s.Queue).ConfigureAwait(false);
        _replies = _system.ActorOf(Props.Create(() => new ReplyRecorder(_history, _correlations, _answered, _killed)), "replies");
        var drops = _system.ActorOf(Props.Create(() => new DropRecorder(_history, _activity)), "drops");
        _system.EventStream.Subscribe(drops, typeof(MessageDropped));

        var settings = ConsumerSettings.Create(_system.Settings.Config) with { Prefetch = _s.Consumers.Prefetch, Concurrency = _s.Consumers.Concurrency };
        for (var i = 0; i < _s.Consumers.Count; i++)
        {
            var index = i;
            var link = _system.ActorOf(Props.Create(() => new ConsumerLink(_queue, index, _history, _s.ConsumerLink, _activity)), $"link-{i}");
            var handler = new SimHandler(i, _s.Seed, _s.Handler, _history, _clock, _activity);
            var options = Akka.Pattern.Backoff.OnFailure(ConsumerActor.Props(link, handler, settings), "consumer",
                    settings.RestartMinBackoff, settings.RestartMaxBackoff, 0, -1)
                .WithSupervisorStrategy(new OneForOneStrategy(Decider.From(_ => Directive.Restart)));
            _links.Add(link);
            _consumerSupervisors.Add(_system.ActorOf(Akka.Pattern.BackoffSupervisor.Props(options), $"consumer-{i}"));
        }

        for (var i = 0; i < _s.Producers.Count; i++)
        {
            var p = new ProducerState(i, new SimRandom(_s.Seed * 7919L + i));
            p.Actor = _s.Producers.Via == ProducerKind.Actor ? StartProducer(i, 0) : null;
            p.Client = _s.Producers.Via == ProducerKind.Client
                ? new QueueClient<SimMessage>(_system, _s.Name, new QueueClientOptions { ProducerId = $"producer-{i}" })
                : null;
            _producers.Add(p);
        }
    }

    private IActorRef StartProducer(int index, int incarnation) =>
        _system.ActorOf(ProducerActor.Props(_queue, $"producer-{index}", new ProducerSettings { BufferSize = Math.Max(1, _s.Producers.Messages) }),
            $"producer-{index}-{incarnation}");

    // The loop: whatever is due (sends, faults, resumptions) happens, then virtual time moves on and the system settles.
    private async Task DriveAsync(CancellationToken cancellationToken)
    {
        var quietSteps = 0;
        while (!cancellationToken.IsCancellationRequested && Now < _s.Limit)
        {
            var now = Now;
            var acted = Send(now) | Strike(now) | RunLater(now);
            var before = _history.Count;
            var stats = await SettleAsync().ConfigureAwait(false);
            // Everything answered is read before the queue is asked again, so an answer that arrives in between is seen held.
            if (stats is not null && Done(stats) && await SettleAsync().ConfigureAwait(false) is { } again && Done(again)) break;
            // A sample is recorded every step, so "quiet" means no more than that one event.
            quietSteps = acted || _history.Count > before + 1 ? 0 : quietSteps + 1;
            // While nothing moves and no consumer holds a delivery (waiting out a retry's backoff) time runs ahead faster,
            // never past what is due next. With deliveries out, it keeps to single steps: a consumer's ack that is late in
            // real time then costs a step, not a deadline.
            // A queue that cannot answer is waiting on virtual time itself (a durable queue restarting after its backoff):
            // time moves on by one step.
            var step = stats is { InFlight: 0 } && quietSteps > 3 ? TimeSpan.FromTicks(_s.Step.Ticks * Math.Min(quietSteps, 10)) : _s.Step;
            var next = NextDue();
            if (next > now && next - now < step) step = next - now;
            _clock.Advance(step);
        }
    }

    private bool Done(QueueStats stats) =>
        _producers.All(p => p.Sent >= _s.Producers.Messages && p.Resend.Count == 0) &&
        _pendingFaults.Count == 0 && _later.Count == 0 &&
        stats.Held == 0 && stats.Waiting == 0 && Unanswered() == 0;

    private int Unanswered() => _sent.Count(id => !_answered.ContainsKey(id));

    private TimeSpan NextDue()
    {
        var next = TimeSpan.MaxValue;
        foreach (var p in _producers) if (p.Sent < _s.Producers.Messages && p.NextAt < next) next = p.NextAt;
        if (_pendingFaults.Count > 0 && _pendingFaults[0].At < next) next = _pendingFaults[0].At;
        foreach (var (at, _) in _later) if (at < next) next = at;
        return next;
    }

    // Each producer sends a burst whenever it is due, at its rate; a producer started again sends what had no answer first.
    private bool Send(TimeSpan now)
    {
        var acted = false;
        foreach (var p in _producers)
        {
            if (p.Actor is not null && p.Resend.Count > 0)
            {
                foreach (var m in p.Resend)
                {
                    // Sent again, it waits for its answer again: the run is not over until it has one.
                    _answered.TryRemove(m.Id, out _);
                    Produce(p, m);
                }
                p.Resend.Clear();
                acted = true;
            }
            while (p.Sent < _s.Producers.Messages && p.NextAt <= now && (p.Actor is not null || p.Client is not null || _s.Producers.Via == ProducerKind.Plain))
            {
                if (_s.Producers.Via == ProducerKind.Actor && p.Actor is null) break; // killed: waits for its successor
                var burst = Math.Min(1 + p.Random.Next(_s.Producers.Burst), _s.Producers.Messages - p.Sent);
                for (var i = 0; i < burst; i++)
                {
                    var seq = p.Sent++;
                    var m = new SimMessage($"p{p.Index}-{seq}", p.Index, seq, _s.Payload?.Invoke(p.Index, seq));
                    Produce(p, m);
                }
                p.NextAt += TimeSpan.FromSeconds(burst / _s.Producers.PerSecond);
                acted = true;
            }
        }
        return acted;
    }

    private void Produce(ProducerState p, SimMessage m)
    {
        _history.Add(HistoryKind.Sent, m.Id, e => e with { Actor = p.Index, Seq = m.Seq });
        _sent.Add(m.Id);
        var correlation = ((long)p.Index << 40) | m.Seq;
        p.Messages[correlation] = m;
        _correlations[correlation] = m.Id;
        switch (_s.Producers.Via)
        {
            case ProducerKind.Actor:
                p.Actor!.Tell(new Produce(m, correlation), _replies);
                break;
            case ProducerKind.Plain:
                _queue.Tell(new Enqueue(m, correlation), _replies);
                break;
            case ProducerKind.Client:
                _ = p.Client!.EnqueueAsync(m).ContinueWith(t =>
                {
                    if (t.IsCompletedSuccessfully) _history.Add(HistoryKind.Accepted, m.Id);
                    else _history.Add(HistoryKind.Rejected, m.Id, e => e with { Detail = t.Exception?.GetBaseException().Message ?? "cancelled" });
                    _answered[m.Id] = true;
                }, TaskScheduler.Default);
                break;
        }
    }

    private bool Strike(TimeSpan now)
    {
        var acted = false;
        while (_pendingFaults.Count > 0 && _pendingFaults[0].At <= now)
        {
            var fault = _pendingFaults[0].Fault;
            _pendingFaults.RemoveAt(0);
            acted = true;
            switch (fault)
            {
                case Fault.KillConsumer k:
                    _history.Add(HistoryKind.ConsumerCrashed, shape: e => e with { Actor = k.Consumer });
                    _system.ActorSelection(_consumerSupervisors[k.Consumer].Path / "consumer").Tell(Kill.Instance);
                    break;
                case Fault.PauseConsumer p:
                    var until = now + p.For;
                    _history.Add(HistoryKind.ConsumerPaused, shape: e => e with { Actor = p.Consumer, Until = until });
                    _links[p.Consumer].Tell(ConsumerLink.Hold.Instance);
                    _later.Add((until, () =>
                    {
                        // The pause ends when the link lets go, which a step may put a little after the planned end.
                        var released = Now;
                        _history.Add(HistoryKind.ConsumerPaused, shape: e => e with { Actor = p.Consumer, At = released, Until = released, Detail = "released" });
                        _links[p.Consumer].Tell(ConsumerLink.Release.Instance);
                    }));
                    break;
                case Fault.KillProducer k:
                    var producer = _producers[k.Producer];
                    if (producer.Actor is null) break;
                    _history.Add(HistoryKind.ProducerCrashed, shape: e => e with { Actor = k.Producer });
                    _killed[producer.Actor] = true;
                    producer.Actor.Tell(Kill.Instance);
                    producer.Actor = null;
                    var incarnation = ++producer.Incarnation;
                    _later.Add((now + TimeSpan.FromSeconds(1), () =>
                    {
                        producer.Actor = StartProducer(k.Producer, incarnation);
                        // What had no answer is sent again by the new producer, as a caller retrying would.
                        producer.Resend.AddRange(producer.Messages.Values.Where(m => !_answered.TryGetValue(m.Id, out var definite) || !definite).OrderBy(m => m.Seq));
                    }));
                    break;
                case Fault.CrashQueue:
                    _history.Add(HistoryKind.QueueCrashed);
                    _system.ActorSelection(_queue.Path / "journaled").Tell(Kill.Instance);
                    break;
            }
        }
        return acted;
    }

    private bool RunLater(TimeSpan now)
    {
        var due = _later.Where(l => l.At <= now).ToList();
        foreach (var l in due)
        {
            _later.Remove(l);
            l.Do();
        }
        return due.Count > 0;
    }

    // Lets what the last step set off finish: asks the queue until neither it nor the history changes between two answers.
    // Null when the queue does not answer within a second of real time: it waits for virtual time to move.
    private async Task<QueueStats?> SettleAsync()
    {
        QueueStats stats = null!;
        var previous = (-1L, -1L);
        for (var i = 0; i < 1000; i++)
        {
            // Handlers whose virtual time has come run on the thread pool: wait for them before looking.
            for (var spin = 0; _activity.Pending() && spin < 10_000; spin++) await Task.Delay(spin < 100 ? 0 : 1).ConfigureAwait(false);
            await Task.Yield();
            try
            {
                stats = await _queue.Ask<QueueStats>(GetStats.Instance, StatsTimeout).ConfigureAwait(false);
            }
            catch (AskTimeoutException)
            {
                return null;
            }
            // Deliveries the queue has made but no session has passed on yet are still on their way.
            // (A batch sent to a session whose consumer just died never arrives: that gap is remembered, not waited for again.)
            for (var spin = 0; _activity.Dispatched + _lostDeliveries < stats.Delivered; spin++)
            {
                if (spin == 200)
                {
                    _lostDeliveries = stats.Delivered - _activity.Dispatched;
                    break;
                }
                await Task.Delay(spin < 50 ? 0 : 1).ConfigureAwait(false);
            }
            // Drops the queue counted reach the history by the event stream, a little later.
            for (var spin = 0; _activity.Drops < stats.Dropped && spin < 200; spin++) await Task.Delay(spin < 50 ? 0 : 1).ConfigureAwait(false);
            var snapshot = (stats.Enqueued + stats.Delivered + stats.Acked + stats.Nacked + stats.Rejected + stats.Dropped + stats.Held, _history.Count);
            if (snapshot == previous && !_activity.Pending()) break;
            previous = snapshot;
        }
        _history.Add(HistoryKind.Sampled, shape: e => e with { Held = stats.Held, Capacity = stats.Capacity });
        return stats;
    }

    private async Task FinishAsync()
    {
        var dead = await _queue.Ask<DeadLetterList>(new GetDeadLetters(GetDeadLetters.MaxItems)).ConfigureAwait(false);
        foreach (var d in dead.Items)
            if (d.Message is SimMessage m) _history.Add(HistoryKind.DeadLettered, m.Id, e => e with { Detail = d.Reason });
        await SettleAsync().ConfigureAwait(false);
        foreach (var p in _producers)
            if (p.Client is not null) await p.Client.DisposeAsync().ConfigureAwait(false);
    }

    private sealed class ProducerState(int index, SimRandom random)
    {
        public int Index { get; } = index;
        public SimRandom Random { get; } = random;
        public IActorRef? Actor { get; set; }
        public QueueClient<SimMessage>? Client { get; set; }
        public int Incarnation { get; set; }
        public int Sent { get; set; }
        public TimeSpan NextAt { get; set; }
        public Dictionary<long, SimMessage> Messages { get; } = new();
        public List<SimMessage> Resend { get; } = new();
    }
}
