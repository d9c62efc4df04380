using System.Text;
using Libvirt.Rpc;
using Libvirt.Util;
using Xunit;

namespace Libvirt.Tests.Rpc;

/// <summary>
/// The peer's security label (virNetSocketGetSELinuxContext, getpeercon):
/// libvirt's rules on errno through a getsockopt stand-in, since this
/// machine has no security module to give a label; and the real call on a
/// real client, which here says "no label".
/// </summary>
public sealed unsafe class PeerSecurityContextTests
{
    private const string Label = "system_u:system_r:svirt_t:s0:c1,c2";

    /// <summary>A getsockopt answering each call with the next entry: a
    /// label (written if it fits, else ERANGE with the length it needs) or an errno.</summary>
    private sealed class FakeGetsockopt(params object[] answers)
    {
        public readonly List<(int Level, int Name, uint Len)> Calls = new();

        public int Get(int fd, int level, int name, void* value, uint* len, out int errno)
        {
            Calls.Add((level, name, *len));
            errno = 0;
            switch (answers[Calls.Count - 1])
            {
                case int e:
                    errno = e;
                    return -1;
                case string label:
                    var bytes = Encoding.UTF8.GetBytes(label + "\0");
                    if (bytes.Length > *len)
                    {
                        *len = (uint)bytes.Length;
                        errno = Libc.ERANGE;
                        return -1;
                    }
                    bytes.CopyTo(new Span<byte>(value, bytes.Length));
                    *len = (uint)bytes.Length;
                    return 0;
                default:
                    throw new InvalidOperationException();
            }
        }
    }

    [Fact]
    public void A_label_is_read_with_SO_PEERSEC()
    {
        var fake = new FakeGetsockopt(Label);
        var r = VirNetServerClient.SELinuxContextOf(3, fake.Get);
        Assert.True(r.Ok);
        Assert.Equal(Label, r.Value);
        Assert.Equal((Libc.SOL_SOCKET, Libc.SO_PEERSEC), (fake.Calls.Single().Level, fake.Calls.Single().Name));
    }

    [Fact]
    public void A_label_longer_than_the_first_buffer_is_asked_for_again_with_the_length_the_kernel_gave()
    {
        string longLabel = "system_u:system_r:svirt_t:s0:" + string.Join(",", Enumerable.Range(0, 120).Select(i => $"c{i}"));
        Assert.True(longLabel.Length > 256);
        var fake = new FakeGetsockopt(longLabel, longLabel);
        var r = VirNetServerClient.SELinuxContextOf(3, fake.Get);
        Assert.True(r.Ok);
        Assert.Equal(longLabel, r.Value);
        Assert.Equal(2, fake.Calls.Count);
        Assert.Equal((uint)longLabel.Length + 1, fake.Calls[1].Len);
    }

    [Theory]
    [InlineData(Libc.ENOPROTOOPT)]
    [InlineData(Libc.ENOSYS)]
    public void No_security_module_means_no_label_and_no_error(int errno)
    {
        var r = VirNetServerClient.SELinuxContextOf(3, new FakeGetsockopt(errno).Get);
        Assert.True(r.Ok);
        Assert.Null(r.Value);
    }

    [Theory]
    [InlineData(Libc.EINVAL, "Invalid argument")]
    [InlineData(Libc.ENOTCONN, "Transport endpoint is not connected")]
    public void Any_other_failure_is_libvirts_system_error(int errno, string strerror)
    {
        var r = VirNetServerClient.SELinuxContextOf(3, new FakeGetsockopt(errno).Get);
        Assert.False(r.Ok);
        Assert.Equal((int)VirErrorCode.SystemError, r.Error!.Code);
        Assert.Equal((int)VirErrorDomain.Rpc, r.Error.Domain);
        Assert.Equal(errno, r.Error.Int1);
        Assert.Equal($"Unable to query peer security context: {strerror}", r.Error.Message);
    }

    [Fact]
    public void An_ERANGE_on_the_second_ask_is_an_error_too()
    {
        var r = VirNetServerClient.SELinuxContextOf(3, new FakeGetsockopt(new string('x', 300), Libc.ERANGE).Get);
        Assert.False(r.Ok);
        Assert.Equal(Libc.ERANGE, r.Error!.Int1);
    }

    /// <summary>The real call on a served client: this machine has no
    /// security module (no /sys/kernel/security), where SO_PEERSEC fails with
    /// ENOPROTOOPT, so no label and no error. (Where there is one, whether a
    /// socket has a label depends on the module: only the call's success is asked.)</summary>
    [Fact]
    public void A_real_client_on_this_machine()
    {
        using var h = new VirNetServerHarness();
        using var c = h.Connect();
        c.Send(Frames.Call(1, 1, Frames.Register()));
        c.ReadFrame();
        var r = h.OnLoop(() => h.Server.Clients.Single().GetSELinuxContext());
        Assert.True(r.Ok, r.Error?.Message);
        bool lsm = Directory.Exists("/sys/kernel/security") && Directory.EnumerateFileSystemEntries("/sys/kernel/security").Any();
        if (!lsm)
            Assert.Null(r.Value);
    }
}
