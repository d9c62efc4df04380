using Libvirt.Util;
using Xunit;

namespace Libvirt.Tests.Contracts;

/// <summary>The shared source cache: one source per name, and one source
/// answering two logging implementations each by its own filters.</summary>
public sealed class VirLogSourcesTests
{
    [Fact]
    public void One_name_is_one_source()
    {
        var a = VirLogSources.Get("test.sources.one");
        Assert.Same(a, VirLogSources.Get("test.sources.one"));
        Assert.NotSame(a, VirLogSources.Get("test.sources.two"));
        Assert.Equal("test.sources.one", a.Name);
    }

    [Fact]
    public void A_shared_source_follows_each_implementations_filters()
    {
        var src = VirLogSources.Get("test.sources.shared");
        using var loud = new VirLogManaged(versionLine: "test");
        using var quiet = new VirLogManaged(versionLine: "test");
        Assert.True(loud.SetFilters("1:test.sources").Ok);
        Assert.True(quiet.SetFilters("4:test.sources").Ok);
        for (int i = 0; i < 3; i++)
        {
            Assert.True(loud.IsEnabled(src, VirLogPriority.Debug));
            Assert.False(quiet.IsEnabled(src, VirLogPriority.Warn));
        }
        // a change of one's filters reaches it through the same source
        Assert.True(quiet.SetFilters("2:test.sources").Ok);
        Assert.True(quiet.IsEnabled(src, VirLogPriority.Info));
        Assert.True(loud.IsEnabled(src, VirLogPriority.Debug));
        Assert.False(quiet.IsEnabled(src, VirLogPriority.Debug));
    }
}
