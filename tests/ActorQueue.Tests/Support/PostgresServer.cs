using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace ActorQueue.Tests.Support;

/// <summary>
/// A throwaway PostgreSQL server of a test's own (Debian's binaries, run as the postgres user), which the test may stop
/// and start again. <see cref="Unavailable"/> says why there cannot be one here (no binaries, no rights).
/// </summary>
internal sealed class PostgresServer : IDisposable
{
    private readonly string _bin;
    private readonly string _data;

    private PostgresServer(string bin, string data, int port)
    {
        _bin = bin;
        _data = data;
        Port = port;
    }

    public int Port { get; }

    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres;Timeout=3;Command Timeout=5";

    /// <summary>Why a server cannot be had here, or null when one can.</summary>
    public static string? Unavailable()
    {
        if (!OperatingSystem.IsLinux()) return "PostgreSQL servers of a test's own need Linux.";
        if (FindBin() is null) return "No PostgreSQL server binaries (install Debian's postgresql package, as .ci/run does).";
        if (Environment.UserName != "root") return "Starting a PostgreSQL server as the postgres user needs root (runuser), as in CI.";
        return null;
    }

    public static PostgresServer Create()
    {
        var bin = FindBin() ?? throw new InvalidOperationException(Unavailable());
        var data = Path.Combine(Path.GetTempPath(), "actor-queue-pg", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(data);
        Run("chown", "postgres", data);
        var server = new PostgresServer(bin, data, FreePort());
        AsPostgres(Path.Combine(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres");
        server.Start();
        return server;
    }

    public void Start() => AsPostgres(Path.Combine(_bin, "pg_ctl"), "-D", _data, "-o", $"-h 127.0.0.1 -p {Port} -k {_data}", "-l", Path.Combine(_data, "server.log"), "-w", "start");

    public void Stop() => AsPostgres(Path.Combine(_bin, "pg_ctl"), "-D", _data, "-m", "immediate", "-w", "stop");

    public void Dispose()
    {
        try
        {
            Stop();
        }
        catch (InvalidOperationException)
        {
            // Already stopped.
        }
        try
        {
            Directory.Delete(_data, recursive: true);
        }
        catch (IOException)
        {
            // Left for the temp directory's own cleanup.
        }
    }

    private static string? FindBin() => Directory.Exists("/usr/lib/postgresql")
        ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).Where(d => File.Exists(Path.Combine(d, "pg_ctl"))).OrderDescending().FirstOrDefault()
        : null;

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static void AsPostgres(params string[] command) => Run("runuser", ["-u", "postgres", "--", .. command]);

    private static void Run(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(60_000)) process.Kill();
        if (process.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed: {output.Result}{error.Result}");
    }
}
