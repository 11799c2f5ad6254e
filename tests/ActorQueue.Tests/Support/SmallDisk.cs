using System.Diagnostics;

namespace ActorQueue.Tests.Support;

/// <summary>
/// A tmpfs of a fixed size mounted for one test, so that a store on it meets a real "disk full". Mounting needs root
/// (as CI runs); elsewhere <see cref="Unavailable"/> says why the test cannot run.
/// </summary>
internal sealed class SmallDisk : IDisposable
{
    private SmallDisk(string path, string? unavailable)
    {
        Path = path;
        Unavailable = unavailable;
    }

    /// <summary>Where the disk is mounted.</summary>
    public string Path { get; }

    /// <summary>Why no disk could be mounted, or null when it was.</summary>
    public string? Unavailable { get; }

    /// <summary>Mounts a tmpfs of <paramref name="size"/> (as mount(8) spells it, e.g. "1m") at <paramref name="path"/>.</summary>
    public static SmallDisk Mount(string path, string size)
    {
        if (!OperatingSystem.IsLinux()) return new SmallDisk(path, "A size-limited disk is mounted with tmpfs, which only Linux has.");
        Directory.CreateDirectory(path);
        var (code, output) = Run("mount", "-t", "tmpfs", "-o", $"size={size}", "tmpfs", path);
        return code == 0
            ? new SmallDisk(path, null)
            : new SmallDisk(path, $"Could not mount a {size} tmpfs at {path} (needs root, as CI runs): {output}");
    }

    /// <summary>Grows (or shrinks) the mounted disk to <paramref name="size"/>, keeping its files.</summary>
    public void Resize(string size)
    {
        var (code, output) = Run("mount", "-o", $"remount,size={size}", Path);
        if (code != 0) throw new InvalidOperationException($"Could not resize the tmpfs at {Path} to {size}: {output}");
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (Unavailable is null) Run("umount", "-l", Path);
    }

    private static (int Code, string Output) Run(string command, params string[] arguments)
    {
        var start = new ProcessStartInfo(command) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        try
        {
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, output.Trim());
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, e.Message);
        }
    }
}
