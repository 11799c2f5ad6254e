using Akka.Actor;
using Akka.Configuration;

namespace ActorQueue;

/// <summary>ActorQueue's HOCON: the embedded reference.conf and how a system's config is merged over it.</summary>
public static class ActorQueueConfig
{
    /// <summary>The root path of every ActorQueue setting.</summary>
    public const string Root = "actor-queue";

    private static readonly Lazy<Config> Reference = new(() => ConfigurationFactory.FromResource<QueueSettings>("ActorQueue.reference.conf"));

    /// <summary>The embedded reference.conf: every setting with its default.</summary>
    public static Config Default() => Reference.Value;

    /// <summary>The system's configuration with ActorQueue's defaults beneath it.</summary>
    /// <param name="system">The actor system whose configuration is read.</param>
    public static Config For(ActorSystem system)
    {
        ArgumentNullException.ThrowIfNull(system);
        return WithDefaults(system.Settings.Config);
    }

    /// <summary><paramref name="config"/> with ActorQueue's defaults beneath it.</summary>
    /// <param name="config">Any configuration; the defaults themselves are returned as they are.</param>
    public static Config WithDefaults(Config config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return ReferenceEquals(config, Default()) ? config : config.WithFallback(Default());
    }

    private static readonly Lazy<HashSet<string>> KnownKeys = new(() =>
    {
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var path in Leaves(Default())) keys.Add(string.Join('.', path));
        return keys;
    });

    /// <summary>
    /// The keys under <c>actor-queue</c> in <paramref name="config"/> that ActorQueue does not read (a misspelling such as
    /// <c>capcity</c>), each with the key it most resembles, if one is close. Per-queue keys under
    /// <c>actor-queue.queues.NAME</c> are checked against <c>actor-queue.queue</c>'s. The extension logs each as a warning
    /// when it starts; the setting it was meant to be keeps its value.
    /// </summary>
    /// <param name="config">A configuration, with or without the defaults beneath it.</param>
    public static IReadOnlyList<(string Key, string? DidYouMean)> UnknownKeys(Config config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var known = KnownKeys.Value;
        var unknown = new List<(string, string?)>();
        foreach (var path in Leaves(config))
        {
            // actor-queue.queues.NAME.rest is read as actor-queue.queue.rest.
            var asRead = path.Length >= 3 && path[0] == "queues" ? ["queue", .. path[2..]] : path;
            var key = string.Join('.', asRead);
            if (known.Contains(key)) continue;
            var prefix = path.Length >= 3 && path[0] == "queues" ? $"{Root}.queues.\"{path[1]}\"." : $"{Root}.";
            var shown = prefix + string.Join('.', path.Length >= 3 && path[0] == "queues" ? path[2..] : path);
            var closest = Closest(key, known);
            var suggestion = closest is null ? null : prefix + (path.Length >= 3 && path[0] == "queues" ? closest["queue.".Length..] : closest);
            unknown.Add((shown, suggestion));
        }
        return unknown;
    }

    // The paths of every value under actor-queue, as segments (a queue's name may hold a dot).
    private static List<string[]> Leaves(Config config)
    {
        var leaves = new List<string[]>();
        if (config.IsNullOrEmpty() || !config.Root.IsObject()) return leaves;
        if (!config.Root.GetObject().Items.TryGetValue(Root, out var root)) return leaves;
        Walk(root, new List<string>(), leaves);
        return leaves;

        static void Walk(Akka.Configuration.Hocon.HoconValue value, List<string> path, List<string[]> leaves)
        {
            if (!value.IsObject())
            {
                leaves.Add(path.ToArray());
                return;
            }
            foreach (var (name, child) in value.GetObject().Items)
            {
                path.Add(name);
                Walk(child, path, leaves);
                path.RemoveAt(path.Count - 1);
            }
        }
    }

    // The known key whose last segment is nearest to the unknown one's, among keys under the same parent; null when none is near.
    private static string? Closest(string key, HashSet<string> known)
    {
        var dot = key.LastIndexOf('.');
        var (parent, leaf) = dot < 0 ? ("", key) : (key[..(dot + 1)], key[(dot + 1)..]);
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var candidate in known)
        {
            if (!candidate.StartsWith(parent, StringComparison.Ordinal) || candidate.IndexOf('.', parent.Length) >= 0) continue;
            var distance = Distance(leaf, candidate[parent.Length..]);
            if (distance < bestDistance) (best, bestDistance) = (candidate, distance);
        }
        return bestDistance <= Math.Max(2, leaf.Length / 3) ? best : null;
    }

    // Levenshtein distance: the fewest single-character edits that turn a into b.
    private static int Distance(string a, string b)
    {
        var row = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++) row[j] = j;
        for (var i = 1; i <= a.Length; i++)
        {
            var diagonal = row[0];
            row[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var above = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                diagonal = above;
            }
        }
        return row[b.Length];
    }
}
