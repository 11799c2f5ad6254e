using ActorQueue.Persistence.Serialization.Proto;
using Akka.Actor;
using Akka.Serialization;
using Google.Protobuf;

namespace ActorQueue.Persistence.Serialization;

/// <summary>
/// Writes a durable queue's journal rows and snapshots as Protocol Buffers (see journal.proto), under a fixed
/// serializer id so that rows written by one version are read by the next. User messages inside are already bytes
/// (serializer id + manifest + bytes): this serializer never touches them.
/// </summary>
public sealed class JournalSerializer : SerializerWithStringManifest
{
    /// <summary>The serializer id the journal records for every row and snapshot of a durable queue.</summary>
    public const int Id = 2701;

    private const string BatchManifest = "B";
    private const string SnapshotManifest = "S";

    /// <summary>Created by Akka from the serialization settings.</summary>
    /// <param name="system">The actor system.</param>
    public JournalSerializer(ExtendedActorSystem system) : base(system) { }

    /// <inheritdoc />
    public override int Identifier => Id;

    /// <inheritdoc />
    public override string Manifest(object o) => o switch
    {
        JournalBatch => BatchManifest,
        JournalSnapshot => SnapshotManifest,
        _ => throw new ArgumentException($"{GetType().Name} cannot write a {o.GetType().FullName}.", nameof(o)),
    };

    /// <inheritdoc />
    public override byte[] ToBinary(object obj) => obj switch
    {
        JournalBatch b => b.Batch.ToByteArray(),
        JournalSnapshot s => s.Snapshot.ToByteArray(),
        _ => throw new ArgumentException($"{GetType().Name} cannot write a {obj.GetType().FullName}.", nameof(obj)),
    };

    /// <inheritdoc />
    public override object FromBinary(byte[] bytes, string manifest) => manifest switch
    {
        BatchManifest => new JournalBatch(Batch.Parser.ParseFrom(bytes)),
        SnapshotManifest => new JournalSnapshot(Snapshot.Parser.ParseFrom(bytes)),
        _ => throw new System.Runtime.Serialization.SerializationException($"Unknown manifest '{manifest}' for a durable queue's journal; it was written by a newer version."),
    };
}
