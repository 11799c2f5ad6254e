using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Xunit;

namespace ActorQueue.DocTests;

/// <summary>
/// Every C# block in README.md compiles as a console application of its own, against only what the README's Install
/// section tells a user to reference (and what those bring with them), so the page cannot drift from the library.
/// A block that continues another says so in an HTML comment on the line above its fence:
/// <c>&lt;!-- compiled after: using X; var builder = ...; --&gt;</c> puts that code in front of it.
/// </summary>
public sealed partial class ReadmeCodeSpec
{
    private const string ContextMarker = "<!-- compiled after:";

    private static readonly string[] Readme = File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "README.md"));

    private static readonly Lazy<IReadOnlyList<MetadataReference>> References = new(LoadReferences);

    /// <summary>A C# block of the README: the line of its opening fence and the program it compiles as.</summary>
    private sealed record CodeBlock(int Line, string Source);

    public static TheoryData<int> BlockLines()
    {
        var lines = new TheoryData<int>();
        foreach (var block in CodeBlocks()) lines.Add(block.Line);
        return lines;
    }

    [Theory]
    [MemberData(nameof(BlockLines))]
    public void The_csharp_block_at_this_readme_line_compiles_with_only_what_install_names(int line)
    {
        var block = CodeBlocks().Single(b => b.Line == line);
        var tree = CSharpSyntaxTree.ParseText(block.Source, new CSharpParseOptions(LanguageVersion.Latest), path: $"README.md:{line}");
        var compilation = CSharpCompilation.Create($"readme_line_{line}", [tree, ImplicitUsings()], References.Value,
            new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));

        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();

        Assert.True(errors.Count == 0, $"The C# block at README.md line {line} does not compile:\n{string.Join('\n', errors)}\n\n{block.Source}");
    }

    [Fact]
    public void The_readme_holds_the_quick_starts_and_every_block_is_found()
    {
        var blocks = CodeBlocks();
        Assert.True(blocks.Count >= 5, $"expected the quick starts, options, durable and metrics blocks; found {blocks.Count}");
        Assert.Contains(blocks, b => b.Source.Contains("Host.CreateApplicationBuilder(args)", StringComparison.Ordinal));
        Assert.Contains(blocks, b => b.Source.Contains("ActorSystem.Create(", StringComparison.Ordinal));
        Assert.Contains(blocks, b => b.Source.Contains("AddOtlpExporter", StringComparison.Ordinal));
    }

    [Fact]
    public void Install_names_only_what_this_project_references()
    {
        var available = Libraries().Keys.ToHashSet(StringComparer.OrdinalIgnoreCase);
        Assert.NotEmpty(InstallRoots());
        foreach (var root in InstallRoots())
            Assert.True(available.Contains(root), $"README's Install names {root}, which ActorQueue.DocTests does not reference: add it there too.");
    }

    // The blocks, each made a whole program: its own using directives first, then the context it continues, then the rest.
    private static IReadOnlyList<CodeBlock> CodeBlocks()
    {
        var blocks = new List<CodeBlock>();
        for (var i = 0; i < Readme.Length; i++)
        {
            if (Readme[i].Trim() != "```csharp") continue;
            var start = i;
            var body = new List<string>();
            for (i++; i < Readme.Length && Readme[i].Trim() != "```"; i++) body.Add(Readme[i]);
            var context = start > 0 && Readme[start - 1].StartsWith(ContextMarker, StringComparison.Ordinal)
                ? Readme[start - 1][ContextMarker.Length..].Replace("-->", "", StringComparison.Ordinal).Trim()
                : "";
            blocks.Add(new CodeBlock(start + 1, Assemble(body, context)));
        }
        return blocks;
    }

    private static string Assemble(List<string> body, string context)
    {
        var header = body.TakeWhile(l => UsingLine().IsMatch(l) || string.IsNullOrWhiteSpace(l) || l.TrimStart().StartsWith("//", StringComparison.Ordinal)).ToList();
        var rest = body.Skip(header.Count);
        var contextUsings = UsingDirective().Matches(context).Select(m => m.Value);
        var contextCode = UsingDirective().Replace(context, "").Trim();
        return string.Join('\n', header.Concat(contextUsings).Append(contextCode).Concat(rest));
    }

    // What the SDK's implicit usings give a console application.
    private static SyntaxTree ImplicitUsings() => CSharpSyntaxTree.ParseText("""
        global using System;
        global using System.Collections.Generic;
        global using System.IO;
        global using System.Linq;
        global using System.Net.Http;
        global using System.Threading;
        global using System.Threading.Tasks;
        """, new CSharpParseOptions(LanguageVersion.Latest));

    // The projects and packages README's Install section tells a user to add.
    private static List<string> InstallRoots()
    {
        var start = Array.FindIndex(Readme, l => l.Trim() == "## Install");
        Assert.True(start >= 0, "README has no \"## Install\" section");
        var roots = new List<string>();
        for (var i = start + 1; i < Readme.Length && !Readme[i].StartsWith("## ", StringComparison.Ordinal); i++)
        {
            var package = AddPackage().Match(Readme[i]);
            if (package.Success) roots.Add(package.Groups[1].Value);
            var project = AddReference().Match(Readme[i]);
            if (project.Success) roots.Add(project.Groups[1].Value);
        }
        return roots;
    }

    // This project's dependency graph, as the build wrote it: library name -> its entry.
    private static Dictionary<string, JsonElement> Libraries()
    {
        var deps = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "ActorQueue.DocTests.deps.json")));
        var target = deps.RootElement.GetProperty("targets").EnumerateObject().First().Value;
        return target.EnumerateObject().ToDictionary(p => p.Name.Split('/')[0], p => p.Value, StringComparer.OrdinalIgnoreCase);
    }

    // The framework, plus the assemblies of what Install names and everything those depend on: nothing the test itself uses.
    private static IReadOnlyList<MetadataReference> LoadReferences()
    {
        var framework = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        var files = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(f => Path.GetDirectoryName(f) == framework)
            .ToList();
        var libraries = Libraries();
        var pending = new Queue<string>(InstallRoots());
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        while (pending.TryDequeue(out var name))
        {
            if (!seen.Add(name) || !libraries.TryGetValue(name, out var library)) continue;
            if (library.TryGetProperty("dependencies", out var dependencies))
                foreach (var dependency in dependencies.EnumerateObject()) pending.Enqueue(dependency.Name);
            if (library.TryGetProperty("runtime", out var runtime))
                foreach (var file in runtime.EnumerateObject())
                {
                    var path = Path.Combine(AppContext.BaseDirectory, Path.GetFileName(file.Name));
                    if (File.Exists(path)) files.Add(path);
                }
        }
        return files.Distinct().Select(f => (MetadataReference)MetadataReference.CreateFromFile(f)).ToList();
    }

    [GeneratedRegex(@"^\s*using\s+[\w.]+\s*;")]
    private static partial Regex UsingLine();

    [GeneratedRegex(@"using\s+[\w.]+\s*;")]
    private static partial Regex UsingDirective();

    [GeneratedRegex(@"dotnet add package ([\w.]+)")]
    private static partial Regex AddPackage();

    [GeneratedRegex(@"dotnet add reference \S*?([\w.]+)\.csproj")]
    private static partial Regex AddReference();
}
