using System.Collections.Concurrent;

namespace Libvirt.Util;

/// <summary>
/// The process's one <see cref="VirLogSource"/> per name, for every code
/// that logs by a source name it is given (the managed RPC core, the relay of
/// libvirt's own messages, ILogger categories). One source may serve several
/// logging implementations: the priority an implementation caches in it is
/// tagged with the generation of the filter set that gave it, and generations
/// are unique in the process, so an implementation never takes another's.
/// </summary>
public static class VirLogSources
{
    private static readonly ConcurrentDictionary<string, VirLogSource> s_sources = new();

    public static VirLogSource Get(string name) => s_sources.GetOrAdd(name, static n => new VirLogSource(n));
}
