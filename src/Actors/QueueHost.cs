using ActorQueue.Core;
using ActorQueue.Metrics;
using ActorQueue.Protocol;
using Akka.Actor;
using Akka.Event;

namespace ActorQueue;

/// <summary>
/// What every actor hosting a <see cref="QueueMachine"/> does around it, in memory or durable: the flush at the end of a
/// burst, the one timer armed for the earliest instant anything waits on, sends that must not throw, the log, and
/// drops published on the event stream. The host decides when its effects are carried out; this carries them out.
/// </summary>
internal sealed class QueueHost(string name, QueueMachine machine, QueueMetrics metrics, ILoggingAdapter log)
{
    private bool _flushPending;
    private TimeSpan? _tickAt;

    private QueueState State => machine.State;

    /// <summary>Handles the host's own messages (the flush and the tick); false for any other.</summary>
    public bool HandleOwn(object message, TimeSpan now, IQueueEffects fx, ITimerScheduler timers)
    {
        switch (message)
        {
            case QueueFlush:
                _flushPending = false;
                machine.Flush(now, fx);
                metrics.Publish(State);
                ScheduleTick(now, timers);
                return true;
            case QueueTick:
                _tickAt = null;
                machine.Tick(now, fx);
                // An idle queue stays quiet: no timer until something waits on time again.
                if (!_flushPending) ScheduleTick(now, timers);
                return true;
            default:
                return false;
        }
    }

    /// <summary>Asks for one flush once the messages already received are handled.</summary>
    public void RequestFlush(IActorRef self)
    {
        if (_flushPending) return;
        _flushPending = true;
        self.Tell(QueueFlush.Instance);
    }

    /// <summary>Arms the one timer for the earliest instant something waits on, never sooner than tick-interval from now.</summary>
    public void ScheduleTick(TimeSpan now, ITimerScheduler timers)
    {
        if (State.NextDue() is not { } due) return;
        var delay = due - now;
        if (delay < State.Settings.TickInterval) delay = State.Settings.TickInterval;
        var at = now + delay;
        if (_tickAt is { } armed && armed <= at) return;
        _tickAt = at;
        timers.StartSingleTimer("tick", QueueTick.Instance, delay);
    }

    /// <summary>A send that throws (a broken remote ref, a test double) is logged and reported: it must not stop the others.</summary>
    public bool TrySend(IActorRef to, object message)
    {
        try
        {
            to.Tell(message);
            return true;
        }
        catch (Exception e)
        {
            log.Error(e, "Queue {0}: sending {1} to {2} failed.", name, message.GetType().Name, to);
            return false;
        }
    }

    /// <summary>Publishes a message a drop full mode evicted.</summary>
    public void PublishDropped(ActorSystem system, QueuedMessage evicted)
    {
        log.Debug("Queue {0} evicted message {1} ({2})", name, evicted.MessageId, State.Settings.FullMode);
        system.EventStream.Publish(new MessageDropped(name, evicted.MessageId, evicted.Message, State.Settings.FullMode));
    }

    /// <summary>A line for the log: 0 debug, 1 info, 2 warning, 3 error.</summary>
    public void Log(int level, string line)
    {
        switch (level)
        {
            case 0: log.Debug(line); break;
            case 1: log.Info(line); break;
            case 2: log.Warning(line); break;
            default: log.Error(line); break;
        }
    }
}
