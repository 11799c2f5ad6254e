using ActorQueue.Protocol;
using Akka;
using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Akka.Pattern;

namespace ActorQueue;

/// <summary>
/// The root of ActorQueue in a system (one per ActorSystem, started by <see cref="ActorQueueExtension"/>): creates
/// queues by name and supervises them, their producers and their consumers.
/// <list type="bullet">
/// <item>Queue or producer throws: logged and resumed, so the buffer and everything accepted stay.</item>
/// <item>Consumer crashes (or is killed): its backoff supervisor stops it and starts a fresh one after backoff; the
/// queue sees the old one terminate and redelivers what it held.</item>
/// <item>Explicit Kill of a queue or producer, a failed constructor or a death pact: stopped.</item>
/// </list>
/// </summary>
public sealed class QueueGuardian : UntypedActor
{
    private readonly Config _config;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<string, IActorRef> _queues = new(StringComparer.Ordinal);
    // The in-memory queues among them, which serve their clients' feeds themselves.
    private readonly HashSet<string> _inMemory = new(StringComparer.Ordinal);
    // Queues that stopped (drained or failed), so that a late caller hears "closed" rather than "no such queue".
    private readonly HashSet<string> _stopped = new(StringComparer.Ordinal);
    private readonly Queue<string> _stoppedOrder = new();
    // The producers and consumers started for each queue: told when it stops, since a queue of the guardian never comes back.
    private readonly Dictionary<string, HashSet<IActorRef>> _clients = new(StringComparer.Ordinal);
    private readonly Dictionary<IActorRef, string> _clientQueues = new();
    private int _consumerCount;

    /// <summary>The most stopped queue names remembered; the oldest is forgotten beyond it.</summary>
    internal const int MaxStoppedNames = 10_000;

    /// <summary>Creates the Props of a guardian reading queue settings from <paramref name="config"/>.</summary>
    /// <param name="config">The system's configuration; reference.conf is used beneath it.</param>
    public static Props Props(Config config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return Akka.Actor.Props.Create(() => new QueueGuardian(config));
    }

    /// <summary>Creates a guardian; use <see cref="Props(Config)"/> rather than calling this directly.</summary>
    /// <param name="config">The system's configuration.</param>
    public QueueGuardian(Config config) => _config = ActorQueueConfig.WithDefaults(config);

    /// <summary>The decision for a failing child, by exception: everything is resumed except deliberate stops.</summary>
    public static Directive Decide(Exception cause) => cause switch
    {
        ActorInitializationException or ActorKilledException or DeathPactException => Directive.Stop,
        _ => Directive.Resume,
    };

    /// <inheritdoc />
    protected override SupervisorStrategy SupervisorStrategy() => new LoggingStrategy();

    /// <summary>Akka logs a resumed failure as a one-line warning; a failing queue is a bug worth its stack trace.</summary>
    private sealed class LoggingStrategy() : OneForOneStrategy(Decide)
    {
        protected override void LogFailure(IActorContext context, IActorRef child, Exception cause, Directive directive) =>
            context.System.EventStream.Publish(new Error(cause, child.Path.ToString(), typeof(QueueGuardian),
                $"{child.Path.Name} failed ({directive}{(directive == Directive.Resume ? ", state kept" : "")}): {cause.Message}"));
    }

    /// <inheritdoc />
    protected override void OnReceive(object message)
    {
        try
        {
            Handle(message);
        }
        catch (Exception e) when (message is IGuardianCommand)
        {
            // A bad request must not restart the guardian: a restart would stop every queue it supervises. A request's own
            // mistake (a bad setting or name) is the caller's to report, with the message that names it; anything else
            // is logged here too.
            if (e is not (ConfigurationException or ArgumentException))
                _log.Error(e, "ActorQueue guardian could not carry out {0}.", message);
            Sender.Tell(new Status.Failure(e));
        }
    }

    private void Handle(object message)
    {
        switch (message)
        {
            case CreateQueue m: HandleCreateQueue(m); break;
            case GetQueue m:
                if (_queues.TryGetValue(m.Name, out var q)) Sender.Tell(Started(m.Name, q));
                else Sender.Tell(new Status.Failure(Missing(m.Name)));
                break;
            case StartProducer m: HandleStartProducer(m); break;
            case StartConsumer m: HandleStartConsumer(m); break;
            case DrainAll m: HandleDrainAll(m); break;
            case Terminated m: HandleTerminated(m.ActorRef); break;
            default: Unhandled(message); break;
        }
    }

    private void HandleCreateQueue(CreateQueue m)
    {
        if (_queues.TryGetValue(m.Name, out var existing))
        {
            Sender.Tell(Started(m.Name, existing));
            return;
        }
        if (string.IsNullOrEmpty(m.Name) || !ActorPath.IsValidPathElement(m.Name))
            throw new ArgumentException($"Queue name '{m.Name}' is not a valid actor name (letters, digits and -_.*$+:@&=,!~';).", nameof(m.Name));
        var settings = m.Settings ?? QueueSettings.Create(_config, m.Name);
        var queue = Context.ActorOf(settings.Durable ? DurableFactory().QueueProps(m.Name, settings) : QueueActor.Props(m.Name, settings), m.Name);
        Context.Watch(queue);
        _queues.Add(m.Name, queue);
        if (!settings.Durable) _inMemory.Add(m.Name);
        _stopped.Remove(m.Name);
        _log.Info("Queue {0} created (capacity {1}, full mode {2}{3}).", m.Name, settings.Capacity, settings.FullMode, settings.Durable ? ", durable" : "");
        Sender.Tell(Started(m.Name, queue));
    }

    private QueueStarted Started(string name, IActorRef queue) => new(name, queue) { ServesLocalFeeds = _inMemory.Contains(name) };

    private IDurableQueueFactory? _durableFactory;

    // Found by name on first use, so that an application without durable queues needs no database driver.
    private IDurableQueueFactory DurableFactory()
    {
        if (_durableFactory is not null) return _durableFactory;
        const string key = ActorQueueConfig.Root + ".durable.factory";
        var typeName = _config.GetString(key);
        var type = string.IsNullOrWhiteSpace(typeName) ? null : Type.GetType(typeName, throwOnError: false);
        if (type is null)
            throw new ConfigurationException($"A queue is durable but {key} = \"{typeName}\" names no type that can be loaded: reference the ActorQueue.Persistence package (or set {key} to a type of your own).");
        if (!typeof(IDurableQueueFactory).IsAssignableFrom(type))
            throw new ConfigurationException($"{key} = \"{typeName}\" does not implement {nameof(IDurableQueueFactory)}.");
        try
        {
            return _durableFactory = (IDurableQueueFactory)Activator.CreateInstance(type, Context.System)!;
        }
        catch (System.Reflection.TargetInvocationException e) when (e.InnerException is not null)
        {
            // The factory's own error (a bad setting, an unusable store) is the one to report.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException).Throw();
            throw;
        }
    }

    private void HandleStartProducer(StartProducer m)
    {
        if (!_queues.TryGetValue(m.QueueName, out var queue))
        {
            Sender.Tell(new Status.Failure(Missing(m.QueueName)));
            return;
        }
        ArgumentException.ThrowIfNullOrEmpty(m.ProducerId, nameof(m.ProducerId));
        var settings = m.Settings ?? ProducerSettings.Create(_config);
        var name = $"producer-{m.QueueName}-{Uri.EscapeDataString(m.ProducerId)}";
        if (!Context.Child(name).IsNobody())
        {
            Sender.Tell(new Status.Failure(new InvalidOperationException($"Producer '{m.ProducerId}' of queue {m.QueueName} is already running.")));
            return;
        }
        var props = m.Feed is { } feed ? ProducerActor.Props(queue, m.ProducerId, settings, feed) : ProducerActor.Props(queue, m.ProducerId, settings);
        var producer = Context.ActorOf(props, name);
        Track(m.QueueName, producer);
        Sender.Tell(new ProducerStarted(producer));
    }

    private void HandleStartConsumer(StartConsumer m)
    {
        if (!_queues.TryGetValue(m.QueueName, out var queue))
        {
            Sender.Tell(new Status.Failure(Missing(m.QueueName)));
            return;
        }
        var s = m.Settings ?? ConsumerSettings.Create(_config);
        var n = ++_consumerCount;
        // Every failure, Kill included, restarts the consumer - as a new actor after backoff, so the queue
        // sees the old one terminate and redelivers what it held.
        var options = Backoff.OnFailure(ConsumerActor.Props(queue, m.Handler, s), "consumer", s.RestartMinBackoff, s.RestartMaxBackoff, s.RestartRandomFactor, -1)
            .WithSupervisorStrategy(new OneForOneStrategy(Decider.From(_ => Directive.Restart)));
        var consumer = Context.ActorOf(BackoffSupervisor.Props(options), $"consumer-{m.QueueName}-{n}");
        Track(m.QueueName, consumer);
        Sender.Tell(new ConsumerStarted(consumer));
    }

    private void HandleDrainAll(DrainAll m)
    {
        var queues = _queues.ToArray();
        var replyTo = Sender;
        Context.ActorOf(Akka.Actor.Props.Create(() => new DrainCoordinator(queues, m, replyTo)));
    }

    private void Track(string queueName, IActorRef client)
    {
        if (!_clients.TryGetValue(queueName, out var set)) _clients[queueName] = set = new HashSet<IActorRef>();
        set.Add(client);
        _clientQueues[client] = queueName;
        Context.Watch(client);
    }

    private void HandleTerminated(IActorRef actor)
    {
        if (_clientQueues.Remove(actor, out var queueName))
        {
            if (_clients.TryGetValue(queueName, out var set) && set.Remove(actor) && set.Count == 0) _clients.Remove(queueName);
            return;
        }
        ForgetQueue(actor);
    }

    private void ForgetQueue(IActorRef queue)
    {
        foreach (var (name, q) in _queues)
        {
            if (!q.Equals(queue)) continue;
            _queues.Remove(name);
            _inMemory.Remove(name);
            // Its producers close (answering every Produce with QueueStopped) and its consumers stop, at once, even those
            // that never reached it before it stopped.
            if (_clients.TryGetValue(name, out var clients))
                foreach (var client in clients) client.Tell(new Drained(name));
            if (_stopped.Add(name))
            {
                _stoppedOrder.Enqueue(name);
                while (_stoppedOrder.Count > MaxStoppedNames) _stopped.Remove(_stoppedOrder.Dequeue());
            }
            _log.Info("Queue {0} stopped.", name);
            return;
        }
    }

    private Exception Missing(string name) => _stopped.Contains(name)
        ? new Client.QueueClosedException(name, RejectReason.QueueStopped, $"Queue {name} has stopped (drained or failed) and accepts nothing more.")
        : new InvalidOperationException($"There is no queue named '{name}'; create it with CreateQueue first.");

    /// <summary>
    /// Sends Drain to each queue and answers <see cref="AllDrained"/> once each has stopped; when the request's time is up,
    /// tells those still draining to stop now. Reports are matched by queue name, since a durable queue answers from
    /// the actor below its supervisor.
    /// </summary>
    private sealed class DrainCoordinator : UntypedActor, IWithTimers
    {
        private readonly Dictionary<string, IActorRef> _waiting = new(StringComparer.Ordinal);
        private readonly Dictionary<IActorRef, string> _names = new();
        private readonly List<Drained> _reports = new();
        private readonly List<string> _unanswered = new();
        private readonly DrainAll _request;
        private readonly IActorRef _replyTo;

        public DrainCoordinator(KeyValuePair<string, IActorRef>[] queues, DrainAll request, IActorRef replyTo)
        {
            foreach (var (name, queue) in queues)
            {
                _waiting[name] = queue;
                _names[queue] = name;
            }
            _request = request;
            _replyTo = replyTo;
        }

        public ITimerScheduler Timers { get; set; } = null!;

        protected override void PreStart()
        {
            var drain = new Drain { StopWithoutConsumers = _request.StopWithoutConsumers };
            foreach (var q in _waiting.Values)
            {
                Context.Watch(q);
                q.Tell(drain);
            }
            if (_request.Timeout is { } timeout && _waiting.Count > 0) Timers.StartSingleTimer("time-up", TimeUp.Instance, timeout);
            CheckDone();
        }

        protected override void OnReceive(object message)
        {
            switch (message)
            {
                case Drained d when _waiting.Remove(d.QueueName):
                    _reports.Add(d);
                    break;
                case Terminated t when _names.TryGetValue(t.ActorRef, out var name) && _waiting.Remove(name):
                    _unanswered.Add(name);
                    break;
                case TimeUp:
                    var now = new Drain { Now = true };
                    foreach (var q in _waiting.Values) q.Tell(now);
                    break;
            }
            CheckDone();
        }

        private void CheckDone()
        {
            if (_waiting.Count > 0) return;
            _replyTo.Tell(new AllDrained(_reports, _unanswered));
            Context.Stop(Self);
        }

        private sealed class TimeUp
        {
            public static readonly TimeUp Instance = new();
        }
    }
}
