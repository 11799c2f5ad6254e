using ActorQueue.Protocol;

namespace ActorQueue.Host;

/// <summary>
/// The demo's consumer handler, resolved from DI for each delivery: work of variable length, an occasional
/// failure, and a poison message that never succeeds.
/// </summary>
/// <param name="options">The run's options.</param>
/// <param name="ledger">Where completions are recorded.</param>
public sealed class DemoHandler(DemoOptions options, DemoLedger ledger) : IQueueHandler
{
    /// <inheritdoc />
    public async Task HandleAsync(Delivery delivery, CancellationToken cancellationToken)
    {
        var message = (DemoMessage)delivery.Message;
        // Exponentially distributed work time around the mean: mostly short, now and then long.
        var work = -options.Latency.TotalMilliseconds * Math.Log(1 - Random.Shared.NextDouble());
        if (work >= 1) await Task.Delay(TimeSpan.FromMilliseconds(work), cancellationToken);
        if (message.Poison)
        {
            ledger.Fail();
            throw new InvalidDataException($"message {message.Id} is poison and can never be handled");
        }
        if (Random.Shared.NextDouble() < options.FailureRate)
        {
            ledger.Fail();
            throw new TimeoutException($"simulated downstream timeout for message {message.Id}");
        }
        ledger.Handle(message.Id);
    }
}
