using ActorQueue.Core;
using CsCheck;
using Xunit;

namespace ActorQueue.Tests.Core;

/// <summary>
/// The table of deliveries in flight against a <see cref="Dictionary{TKey,TValue}"/>: random sequences of what a queue
/// does with it (new ids in order, settled mostly oldest first, some held long, changed in place, an old id added back
/// as a snapshot restore does) must leave both agreeing on every lookup, the count and the contents.
/// </summary>
public class InFlightTableSpec
{
    private static InFlightDelivery Delivery(long id, long deadlineTicks = 0) =>
        new(new QueuedMessage(id, $"m{id}", 1, TimeSpan.Zero), (int)(id % 3), TimeSpan.FromTicks(deadlineTicks), false, 0, 0);

    [Fact]
    public void Agrees_with_a_dictionary_on_every_step() =>
        Gen.Select(Gen.Int[0, 9], Gen.Int[0, 999], (k, a) => (Kind: k, Arg: a)).Array[1, 2000]
            .Sample(ops =>
            {
                var table = new InFlightTable();
                var model = new Dictionary<long, InFlightDelivery>();
                var last = 0L;
                foreach (var (kind, arg) in ops)
                {
                    switch (kind)
                    {
                        case <= 3: // a new delivery
                            var id = ++last;
                            table.Add(id, Delivery(id));
                            model.Add(id, Delivery(id));
                            break;
                        case <= 6 when model.Count > 0: // settled: the oldest mostly, any now and then
                            var pick = kind == 6 ? model.Keys.ElementAt(arg % model.Count) : model.Keys.Min();
                            Assert.True(table.Remove(pick, out var removed));
                            Assert.Equal(model[pick], removed);
                            model.Remove(pick);
                            break;
                        case 7: // a settled or never-given id
                            var absent = arg % 2 == 0 ? last + 1 + arg : -arg;
                            Assert.False(table.Remove(absent, out _));
                            Assert.False(table.TryGetValue(absent, out _));
                            break;
                        case 8 when model.Count > 0: // changed in place
                            var changed = model.Keys.ElementAt(arg % model.Count);
                            table.Ref(changed).Deadline = TimeSpan.FromTicks(arg);
                            model[changed] = model[changed] with { Deadline = TimeSpan.FromTicks(arg) };
                            break;
                        case 9 when last > 0: // an old id added back, if it is not held
                            var old = 1 + arg % last;
                            if (model.ContainsKey(old)) break;
                            table.Add(old, Delivery(old, arg));
                            model.Add(old, Delivery(old, arg));
                            break;
                    }
                    Assert.Equal(model.Count, table.Count);
                }
                foreach (var (id, d) in model)
                {
                    Assert.True(table.TryGetValue(id, out var found));
                    Assert.Equal(d, found);
                    Assert.Equal(d, table[id]);
                }
                Assert.Equal(model.OrderBy(kv => kv.Key), table.OrderBy(kv => kv.Key));
            }, iter: 300);

    [Fact]
    public void A_delivery_held_while_thousands_pass_stays_found_and_the_ring_stays_small()
    {
        var table = new InFlightTable();
        table.Add(1, Delivery(1));
        for (long id = 2; id < 100_000; id++)
        {
            table.Add(id, Delivery(id));
            Assert.True(table.Remove(id, out _));
        }
        Assert.Equal(1, table.Count);
        Assert.Equal(Delivery(1), table[1]);
        Assert.Equal(64, table.RingLength);
        Assert.Throws<ArgumentException>(() => table.Add(1, Delivery(1)));
        Assert.Throws<KeyNotFoundException>(() => table[2]);
    }
}
