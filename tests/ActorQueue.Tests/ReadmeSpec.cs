using System.Text.RegularExpressions;
using Xunit;

namespace ActorQueue.Tests;

/// <summary>The README's configuration table and hocon/reference.conf must not drift apart.</summary>
public class ReadmeSpec
{
    private static string[] Lines(string file) => File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, file));

    /// <summary>Every key of reference.conf with its default, as full paths.</summary>
    private static Dictionary<string, string> ReferenceKeys()
    {
        var keys = new Dictionary<string, string>();
        var path = new Stack<string>();
        foreach (var raw in Lines("reference.conf"))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            if (line == "}") { path.Pop(); continue; }
            var open = Regex.Match(line, @"^([a-z-]+)\s*\{\s*(\})?$");
            if (open.Success)
            {
                if (!open.Groups[2].Success) path.Push(open.Groups[1].Value);
                continue;
            }
            var key = Regex.Match(line, @"^([a-z-]+)\s*=\s*(.+?)\s*$");
            Assert.True(key.Success, $"reference.conf line not understood: {raw}");
            keys[string.Join('.', path.Reverse().Append(key.Groups[1].Value))] = key.Groups[2].Value;
        }
        return keys;
    }

    private static Dictionary<string, string> ReadmeKeys()
    {
        var keys = new Dictionary<string, string>();
        foreach (var line in Lines("README.md"))
        {
            var row = Regex.Match(line, @"^\| `(actor-queue\.[a-z.-]+)` \| `([^`]+)` \|");
            if (row.Success) keys[row.Groups[1].Value] = row.Groups[2].Value;
        }
        return keys;
    }

    [Fact]
    public void Readme_lists_every_reference_conf_key_with_its_default()
    {
        var reference = ReferenceKeys();
        var readme = ReadmeKeys();
        Assert.True(reference.Count >= 20, $"found only {reference.Count} keys in reference.conf");
        Assert.Equal(reference.Keys.Order(), readme.Keys.Order());
        foreach (var (key, value) in reference) Assert.True(readme[key] == value, $"{key}: reference.conf says {value}, README says {readme[key]}");
    }

    [Fact]
    public void Readme_starts_with_the_demo_and_test_commands()
    {
        var text = string.Join('\n', Lines("README.md").Take(12));
        Assert.Contains("dotnet run --project src/Host", text);
        Assert.Contains("dotnet test ActorQueue.sln", text);
    }
}
