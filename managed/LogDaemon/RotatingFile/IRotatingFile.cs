namespace Libvirt.LogDaemon.RotatingFile;

/// <summary>
/// The migratable rotating-file subsystem (libvirt's virRotatingFileWriter):
/// appends to a log file that is renamed to file.0, file.1, ... when it
/// would exceed its maximum size, keeping a fixed number of backups.
/// Failures return -1 (or null) with libvirt's last error set.
/// </summary>
public unsafe interface IRotatingFileWriter : IDisposable
{
    string Path { get; }
    ulong INode { get; }
    long Offset { get; }
    /// <summary>Bytes written; fewer than <paramref name="length"/> is a failure.</summary>
    long Append(byte* data, nuint length);
}

/// <summary>Reads a rotated log back, oldest backup first (virRotatingFileReader).</summary>
public unsafe interface IRotatingFileReader : IDisposable
{
    int Seek(ulong inode, long offset);
    long Consume(byte* buffer, nuint length);
}

public interface IRotatingFileFactory
{
    IRotatingFileWriter? NewWriter(string path, long maxLength, ulong maxBackups, bool truncate, uint mode);
    IRotatingFileReader? NewReader(string path, ulong maxBackups);
}
