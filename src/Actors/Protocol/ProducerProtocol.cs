namespace ActorQueue.Protocol;

/// <summary>Marker for the messages a producer sends to a queue.</summary>
public interface IProducerCommand;

/// <summary>Marker for the messages a queue sends back to a producer.</summary>
public interface IProducerReply;

/// <summary>Why a message was not accepted.</summary>
public enum RejectReason
{
    /// <summary>The queue had no room and its full mode is reject (or a drop mode found nothing to evict).</summary>
    QueueFull,
    /// <summary>The message was parked in full mode wait and no room freed up within full-wait-timeout.</summary>
    WaitTimedOut,
    /// <summary>The queue is draining and accepts nothing new.</summary>
    Draining,
    /// <summary>The queue has stopped.</summary>
    QueueStopped,
    /// <summary>A sequenced message came from a producer id the queue has not registered.</summary>
    NotRegistered,
    /// <summary>A sequenced message skipped a sequence number; the producer must resend from the one expected.</summary>
    OutOfOrder,
    /// <summary>The message itself is unusable (for example null).</summary>
    InvalidMessage,
    /// <summary>The producer already holds buffer-size messages the queue has not accepted.</summary>
    ProducerBufferFull,
    /// <summary>The sender withdrew the message (<see cref="WithdrawProduce"/>) before it reached the queue.</summary>
    Withdrawn,
    /// <summary>
    /// The queue cannot take work for now: a durable queue whose journal failed, recovering by itself. Nothing was
    /// accepted; trying again later may succeed.
    /// </summary>
    Unavailable,
}

/// <summary>
/// Registers (or re-registers) a producer; the queue replies with <see cref="ProducerCredit"/>. Credit is only
/// granted for messages the producer says it has, so an idle producer reserves no capacity.
/// </summary>
/// <param name="ProducerId">Stable id of the producer: sequence numbers and deduplication are kept per id.</param>
/// <param name="Demand">
/// How many messages beyond those accepted the producer has to send; ask for more with <see cref="RequestCredit"/>.
/// The default asks for as much as the producer's fair window allows, for hand-written producers.
/// </param>
/// <param name="Registration">
/// A number the producer raises with each registration; the queue repeats the latest it has seen in its
/// <see cref="ProducerCredit"/>, so the producer can tell the answer to this registration from answers sent before it.
/// 0 for producers that do not need to.
/// </param>
public sealed record RegisterProducer(string ProducerId, long Demand = long.MaxValue, long Registration = 0) : IProducerCommand
{
    /// <summary>The producer's stable id.</summary>
    public string ProducerId { get; init; } = string.IsNullOrEmpty(ProducerId)
        ? throw new ArgumentException("A producer id must not be empty.", nameof(ProducerId)) : ProducerId;

    /// <summary>Messages the producer has to send beyond those accepted (not negative).</summary>
    public long Demand { get; init; } = Demand >= 0 ? Demand : throw new ArgumentOutOfRangeException(nameof(Demand), Demand, "Demand must not be negative.");
}

/// <summary>
/// A registered producer has messages up to <paramref name="UpToSeqNr"/> to send. The latest request counts: a
/// lower number than before (messages withdrawn) gives back the credit beyond it. The queue answers with
/// <see cref="ProducerCredit"/> as room allows.
/// </summary>
/// <param name="ProducerId">The registered producer's id.</param>
/// <param name="UpToSeqNr">The highest sequence number it has a message for.</param>
public sealed record RequestCredit(string ProducerId, long UpToSeqNr) : IProducerCommand
{
    /// <summary>The registered producer's id.</summary>
    public string ProducerId { get; init; } = string.IsNullOrEmpty(ProducerId)
        ? throw new ArgumentException("A producer id must not be empty.", nameof(ProducerId)) : ProducerId;
}

/// <summary>A numbered message from a registered producer, sent within the credit the queue granted.</summary>
/// <param name="ProducerId">The registered producer's id.</param>
/// <param name="SeqNr">Per-producer sequence number, starting at 1, without gaps; a resent number is deduplicated.</param>
/// <param name="Message">The payload.</param>
public sealed record SequencedMessage(string ProducerId, long SeqNr, object Message) : IProducerCommand
{
    /// <summary>The registered producer's id; never empty.</summary>
    public string ProducerId { get; init; } = string.IsNullOrEmpty(ProducerId)
        ? throw new ArgumentException("A producer id must not be empty.", nameof(ProducerId)) : ProducerId;

    /// <summary>The payload; never null.</summary>
    public object Message { get; init; } = Message ?? throw new ArgumentNullException(nameof(Message));

    /// <summary>The per-producer sequence number (at least 1).</summary>
    public long SeqNr { get; init; } = SeqNr >= 1 ? SeqNr : throw new ArgumentOutOfRangeException(nameof(SeqNr), SeqNr, "Sequence numbers start at 1.");
}

/// <summary>
/// Numbered messages from a registered producer in one command: <paramref name="FirstSeqNr"/>,
/// <paramref name="FirstSeqNr"/> + 1, and so on, sent within the credit the queue granted. The queue takes them in
/// order exactly as if each had come in its own <see cref="SequencedMessage"/>; at the first one it refuses it
/// answers <see cref="SequenceRejected"/> and takes none after it.
/// </summary>
/// <param name="ProducerId">The registered producer's id.</param>
/// <param name="FirstSeqNr">Sequence number of the first message (at least 1).</param>
/// <param name="Messages">The payloads, in sequence order; at least one.</param>
public sealed record SequencedBatch(string ProducerId, long FirstSeqNr, object[] Messages) : IProducerCommand
{
    /// <summary>The registered producer's id; never empty.</summary>
    public string ProducerId { get; init; } = string.IsNullOrEmpty(ProducerId)
        ? throw new ArgumentException("A producer id must not be empty.", nameof(ProducerId)) : ProducerId;

    /// <summary>The sequence number of the first message (at least 1).</summary>
    public long FirstSeqNr { get; init; } = FirstSeqNr >= 1 ? FirstSeqNr : throw new ArgumentOutOfRangeException(nameof(FirstSeqNr), FirstSeqNr, "Sequence numbers start at 1.");

    /// <summary>The payloads in sequence order; never null or empty.</summary>
    public object[] Messages { get; init; } = Messages is null ? throw new ArgumentNullException(nameof(Messages))
        : Messages.Length > 0 ? Messages : throw new ArgumentException("A batch holds at least one message.", nameof(Messages));
}

/// <summary>
/// The queue's cumulative answer to a producer: every sequence number up to <paramref name="AcceptedSeqNr"/> is
/// accepted (held by the queue), and the producer may send up to <paramref name="CreditSeqNr"/>.
/// </summary>
/// <param name="AcceptedSeqNr">Highest sequence number accepted so far (0 when none).</param>
/// <param name="CreditSeqNr">Highest sequence number the producer may send now.</param>
/// <param name="Registration">The <see cref="RegisterProducer.Registration"/> of the latest registration the queue had handled when it sent this.</param>
public sealed record ProducerCredit(long AcceptedSeqNr, long CreditSeqNr, long Registration = 0) : IProducerReply;

/// <summary>The queue refused a sequenced message; nothing after it was accepted either.</summary>
/// <param name="SeqNr">The refused sequence number.</param>
/// <param name="Reason">Why.</param>
/// <param name="Detail">A sentence for logs.</param>
public sealed record SequenceRejected(long SeqNr, RejectReason Reason, string Detail) : IProducerReply;
