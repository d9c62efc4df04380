namespace Libvirt.Util;

/// <summary>
/// The rotating file contract (libvirt's src/util/virrotatingfile.c),
/// writer side: appends to a file that is renamed to file.0, file.1, ...
/// when it would pass its maximum size, keeping a fixed number of backups.
/// </summary>
public interface IVirRotatingFileWriter : IDisposable
{
    string Path { get; }
    /// <summary>The inode of the file being written now.</summary>
    ulong INode { get; }
    /// <summary>Where the next byte goes in the file being written now.</summary>
    long Offset { get; }

    /// <summary>virRotatingFileWriterAppend: the bytes written, all of them
    /// unless an error is returned.</summary>
    VirResult<long> Append(ReadOnlySpan<byte> data);
}

/// <summary>Reads a rotated log back from a position, oldest backup first
/// (virRotatingFileReader).</summary>
public interface IVirRotatingFileReader : IDisposable
{
    /// <summary>Positions at <paramref name="offset"/> of the file (current or
    /// backup) whose inode is <paramref name="inode"/>; for an inode not
    /// found, the offset applies to the oldest file (EBADF if that backup is
    /// missing), as in libvirt.</summary>
    VirResult Seek(ulong inode, long offset);

    /// <summary>Reads into <paramref name="buffer"/> across files; the value
    /// is the number of bytes read (0 at the end).</summary>
    VirResult<long> Consume(Span<byte> buffer);
}

/// <summary>Makes rotating-file writers and readers of one implementation.</summary>
public interface IVirRotatingFileFactory
{
    /// <summary>"native" or "managed", as the rotating_file_impl key names it.</summary>
    string Name { get; }

    /// <summary><paramref name="maxBackups"/> is libvirt's size_t: more than 32 is an error.</summary>
    VirResult<IVirRotatingFileWriter> NewWriter(string path, long maxLength, ulong maxBackups, bool truncate, uint mode);
    VirResult<IVirRotatingFileReader> NewReader(string path, ulong maxBackups);
}
