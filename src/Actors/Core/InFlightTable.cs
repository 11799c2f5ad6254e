using System.Collections;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace ActorQueue.Core;

/// <summary>
/// The deliveries consumers hold, by delivery id: what a <see cref="Dictionary{TKey,TValue}"/> would do, for the ids a
/// queue gives out. Ids only grow and most deliveries are settled soon and roughly in order, so the recent ones live in
/// a ring indexed by id (no hashing, no probing); a delivery still out when the ring has to move on past it (a handler
/// slower than the rest) moves to a dictionary. The ring grows only while more than half of it is held, so it stays
/// within four times the most deliveries held at once.
/// </summary>
internal sealed class InFlightTable : IEnumerable<KeyValuePair<long, InFlightDelivery>>
{
    private struct Slot
    {
        public InFlightDelivery Value;
        public bool Used;
    }

    private Slot[] _ring = new Slot[64];
    // The ring holds ids _base to _base + _ring.Length - 1, id at index id & (_ring.Length - 1).
    private long _base = 1;
    private int _inRing;
    private readonly Dictionary<long, InFlightDelivery> _stragglers = new();

    /// <summary>Positions in the ring (for tests: it grows only while more than half of it is held).</summary>
    internal int RingLength => _ring.Length;

    /// <summary>How many deliveries the table holds.</summary>
    public int Count => _inRing + _stragglers.Count;

    /// <summary>The held delivery <paramref name="id"/>; throws <see cref="KeyNotFoundException"/> when it is not held.</summary>
    public InFlightDelivery this[long id]
    {
        get
        {
            ref var d = ref Ref(id);
            if (Unsafe.IsNullRef(ref d)) throw new KeyNotFoundException($"Delivery {id} is not in flight.");
            return d;
        }
    }

    /// <summary>Adds delivery <paramref name="id"/>; throws <see cref="ArgumentException"/> when it is held already.</summary>
    public void Add(long id, InFlightDelivery delivery)
    {
        if (id < _base)
        {
            _stragglers.Add(id, delivery);
            return;
        }
        if (id - _base >= _ring.Length) MakeRoomFor(id);
        ref var slot = ref _ring[id & (_ring.Length - 1)];
        if (slot.Used) throw new ArgumentException($"Delivery {id} is in flight already.", nameof(id));
        slot.Value = delivery;
        slot.Used = true;
        _inRing++;
    }

    /// <summary>Removes delivery <paramref name="id"/>; false when it was not held.</summary>
    public bool Remove(long id, out InFlightDelivery delivery)
    {
        if (InRing(id))
        {
            ref var slot = ref _ring[id & (_ring.Length - 1)];
            if (slot.Used)
            {
                delivery = slot.Value;
                slot = default;
                _inRing--;
                return true;
            }
            delivery = default;
            return false;
        }
        return _stragglers.Remove(id, out delivery);
    }

    /// <summary>The held delivery <paramref name="id"/>, or false.</summary>
    public bool TryGetValue(long id, out InFlightDelivery delivery)
    {
        ref var d = ref Ref(id);
        if (Unsafe.IsNullRef(ref d))
        {
            delivery = default;
            return false;
        }
        delivery = d;
        return true;
    }

    /// <summary>A reference to the held delivery <paramref name="id"/>, to change in place; a null reference when it is not held.</summary>
    public ref InFlightDelivery Ref(long id)
    {
        if (InRing(id))
        {
            ref var slot = ref _ring[id & (_ring.Length - 1)];
            if (slot.Used) return ref slot.Value;
            return ref Unsafe.NullRef<InFlightDelivery>();
        }
        return ref CollectionsMarshal.GetValueRefOrNullRef(_stragglers, id);
    }

    /// <summary>The ids held: stragglers first, then the ring's in order.</summary>
    public IEnumerable<long> Keys => this.Select(kv => kv.Key);

    /// <summary>The deliveries held, in the order of <see cref="Keys"/>.</summary>
    public IEnumerable<InFlightDelivery> Values => this.Select(kv => kv.Value);

    private bool InRing(long id) => (ulong)(id - _base) < (ulong)_ring.Length;

    // Id is past the ring's end: first drop the free positions at its front; if that is not enough, grow it while more
    // than half of it is held, else move on, sending the deliveries it leaves behind to the stragglers.
    private void MakeRoomFor(long id)
    {
        var mask = _ring.Length - 1;
        while (id - _base >= _ring.Length && _inRing > 0 && !_ring[_base & mask].Used) _base++;
        if (_inRing == 0) _base = Math.Max(_base, id - _ring.Length + 1);
        if (id - _base < _ring.Length) return;
        if (_inRing > _ring.Length / 2)
        {
            Grow();
            if (id - _base < _ring.Length) return;
            mask = _ring.Length - 1;
        }
        var newBase = id - _ring.Length + 1;
        for (var i = _base; i < newBase && _inRing > 0; i++)
        {
            ref var slot = ref _ring[i & mask];
            if (!slot.Used) continue;
            _stragglers.Add(i, slot.Value);
            slot = default;
            _inRing--;
        }
        _base = newBase;
    }

    private void Grow()
    {
        var old = _ring;
        var oldMask = old.Length - 1;
        _ring = new Slot[old.Length * 2];
        var mask = _ring.Length - 1;
        for (var i = _base; i < _base + old.Length; i++)
        {
            ref var slot = ref old[i & oldMask];
            if (slot.Used) _ring[i & mask] = slot;
        }
    }

    /// <summary>Enumerates the held deliveries, stragglers first, then the ring's in id order.</summary>
    public IEnumerator<KeyValuePair<long, InFlightDelivery>> GetEnumerator()
    {
        foreach (var kv in _stragglers) yield return kv;
        var mask = _ring.Length - 1;
        var end = _base + _ring.Length;
        for (var id = _base; id < end; id++)
        {
            var slot = _ring[id & mask];
            if (slot.Used) yield return new KeyValuePair<long, InFlightDelivery>(id, slot.Value);
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
