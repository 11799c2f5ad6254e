namespace ActorQueue.Core;

/// <summary>
/// A growable double-ended FIFO over one array: O(1) push and pop at both ends, no allocation once grown.
/// </summary>
internal sealed class RingBuffer<T>
{
    private T[] _items;
    private int _head;
    private int _count;

    public RingBuffer(int initialCapacity = 16) =>
        _items = new T[(int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(4, initialCapacity))];

    // The length is a power of two, so wrapping is a mask rather than a division.
    private int Wrap(int index) => index & (_items.Length - 1);

    public int Count => _count;

    public T this[int index]
    {
        get
        {
            if ((uint)index >= (uint)_count) throw new ArgumentOutOfRangeException(nameof(index));
            return _items[Wrap(_head + index)];
        }
        set
        {
            if ((uint)index >= (uint)_count) throw new ArgumentOutOfRangeException(nameof(index));
            _items[Wrap(_head + index)] = value;
        }
    }

    public void PushBack(T item)
    {
        if (_count == _items.Length) Grow();
        _items[Wrap(_head + _count)] = item;
        _count++;
    }

    public void PushFront(T item)
    {
        if (_count == _items.Length) Grow();
        _head = Wrap(_head - 1 + _items.Length);
        _items[_head] = item;
        _count++;
    }

    public T PeekFront() => _count > 0 ? _items[_head] : throw new InvalidOperationException("The buffer is empty.");

    public T PopFront()
    {
        if (_count == 0) throw new InvalidOperationException("The buffer is empty.");
        var item = _items[_head];
        _items[_head] = default!;
        _head = Wrap(_head + 1);
        _count--;
        return item;
    }

    public T PopBack()
    {
        if (_count == 0) throw new InvalidOperationException("The buffer is empty.");
        var index = Wrap(_head + _count - 1);
        var item = _items[index];
        _items[index] = default!;
        _count--;
        return item;
    }

    /// <summary>Removes every item, releasing the references.</summary>
    public void Clear()
    {
        Array.Clear(_items);
        _head = 0;
        _count = 0;
    }

    /// <summary>Removes the item at <paramref name="index"/>, shifting the later ones; O(n), for rare operations.</summary>
    public T RemoveAt(int index)
    {
        if (index == 0) return PopFront();
        var item = this[index];
        for (var i = index; i < _count - 1; i++)
            _items[Wrap(_head + i)] = _items[Wrap(_head + i + 1)];
        _items[Wrap(_head + _count - 1)] = default!;
        _count--;
        return item;
    }

    private void Grow()
    {
        var next = new T[_items.Length * 2];
        for (var i = 0; i < _count; i++) next[i] = _items[Wrap(_head + i)];
        _items = next;
        _head = 0;
    }
}
