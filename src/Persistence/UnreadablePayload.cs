namespace ActorQueue.Persistence;

/// <summary>
/// A message a durable queue had accepted but could not read back from its journal after a restart (its type was
/// removed or renamed, or its serializer changed). The queue does not fail to start over it: it delivers this in its
/// place, with what was written, so a handler can log it, dead-letter it (nack with no retry) or repair it. Written
/// again (a snapshot), it keeps the original bytes.
/// </summary>
/// <param name="SerializerId">The id of the serializer that wrote the message.</param>
/// <param name="Manifest">The serializer's manifest for it.</param>
/// <param name="Bytes">What the serializer wrote.</param>
/// <param name="Error">Why it could not be read back.</param>
public sealed record UnreadablePayload(int SerializerId, string Manifest, byte[] Bytes, string Error)
{
    /// <inheritdoc />
    public override string ToString() => $"UnreadablePayload(serializer {SerializerId}, manifest '{Manifest}', {Bytes.Length} bytes: {Error})";
}
