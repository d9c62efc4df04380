using Libvirt.Util;
using Libvirt.Xdr;

namespace Libvirt.XdrFuzz;

/// <summary>Every program's dispatch interface: each procedure checks the arguments the generated
/// Dispatch decoded (<see cref="XdrTarget.CheckTyped"/>) against the payload it was given, and
/// records the argument type it got, so the target can compare it with its procedure table.</summary>
internal sealed class CheckingPrograms(XdrTarget target) :
    IVirLockSpaceProtocolProgram<int>, IVirLogManagerProtocolProgram<int>, IVirAdminProtocolProgram<int>, IVirKeepAliveProgram<int>
{
    /// <summary>The arguments' bytes handed to Dispatch.</summary>
    public ReadOnlyMemory<byte> Payload;
    /// <summary>Set by the procedure Dispatch called: the name of its argument type ("" for void).</summary>
    public string? Decoded;

    private void Called(string? type) => Decoded = type ?? "";

    private void Check<T>(in T args) where T : struct, IXdrCodec<T>
    {
        var name = typeof(T).Name;
        Called(name);
        target.CheckTyped(in args, target.Type(name), Payload);
    }

    public VirResult Register(int client, XdrCallContext call, in virLockSpaceProtocolRegisterArgs args) { Check(in args); return VirResult.Success; }
    public VirResult Restrict(int client, XdrCallContext call, in virLockSpaceProtocolRestrictArgs args) { Check(in args); return VirResult.Success; }
    public VirResult New(int client, XdrCallContext call, in virLockSpaceProtocolNewArgs args) { Check(in args); return VirResult.Success; }
    public VirResult CreateResource(int client, XdrCallContext call, in virLockSpaceProtocolCreateResourceArgs args) { Check(in args); return VirResult.Success; }
    public VirResult DeleteResource(int client, XdrCallContext call, in virLockSpaceProtocolDeleteResourceArgs args) { Check(in args); return VirResult.Success; }
    public VirResult AcquireResource(int client, XdrCallContext call, in virLockSpaceProtocolAcquireResourceArgs args) { Check(in args); return VirResult.Success; }
    public VirResult ReleaseResource(int client, XdrCallContext call, in virLockSpaceProtocolReleaseResourceArgs args) { Check(in args); return VirResult.Success; }
    public VirResult CreateLockSpace(int client, XdrCallContext call, in virLockSpaceProtocolCreateLockSpaceArgs args) { Check(in args); return VirResult.Success; }
    public VirResult<virLogManagerProtocolDomainOpenLogFileRet> DomainOpenLogFile(int client, XdrCallContext call, in virLogManagerProtocolDomainOpenLogFileArgs args) { Check(in args); return new virLogManagerProtocolDomainOpenLogFileRet(); }
    public VirResult<virLogManagerProtocolDomainGetLogFilePositionRet> DomainGetLogFilePosition(int client, XdrCallContext call, in virLogManagerProtocolDomainGetLogFilePositionArgs args) { Check(in args); return new virLogManagerProtocolDomainGetLogFilePositionRet(); }
    public VirResult<virLogManagerProtocolDomainReadLogFileRet> DomainReadLogFile(int client, XdrCallContext call, in virLogManagerProtocolDomainReadLogFileArgs args) { Check(in args); return new virLogManagerProtocolDomainReadLogFileRet(); }
    public VirResult<virLogManagerProtocolDomainAppendLogFileRet> DomainAppendLogFile(int client, XdrCallContext call, in virLogManagerProtocolDomainAppendLogFileArgs args) { Check(in args); return new virLogManagerProtocolDomainAppendLogFileRet(); }
    public VirResult ConnectOpen(int client, XdrCallContext call, in virAdminProtocolConnectOpenArgs args) { Check(in args); return VirResult.Success; }
    public VirResult ConnectClose(int client, XdrCallContext call) { Called(null); return VirResult.Success; }
    public VirResult<virAdminProtocolConnectGetLibVersionRet> ConnectGetLibVersion(int client, XdrCallContext call) { Called(null); return new virAdminProtocolConnectGetLibVersionRet(); }
    public VirResult<virAdminProtocolConnectListServersRet> ConnectListServers(int client, XdrCallContext call, in virAdminProtocolConnectListServersArgs args) { Check(in args); return new virAdminProtocolConnectListServersRet(); }
    public VirResult<virAdminProtocolConnectLookupServerRet> ConnectLookupServer(int client, XdrCallContext call, in virAdminProtocolConnectLookupServerArgs args) { Check(in args); return new virAdminProtocolConnectLookupServerRet(); }
    public VirResult<virAdminProtocolServerGetThreadpoolParametersRet> ServerGetThreadpoolParameters(int client, XdrCallContext call, in virAdminProtocolServerGetThreadpoolParametersArgs args) { Check(in args); return new virAdminProtocolServerGetThreadpoolParametersRet(); }
    public VirResult ServerSetThreadpoolParameters(int client, XdrCallContext call, in virAdminProtocolServerSetThreadpoolParametersArgs args) { Check(in args); return VirResult.Success; }
    public VirResult<virAdminProtocolServerListClientsRet> ServerListClients(int client, XdrCallContext call, in virAdminProtocolServerListClientsArgs args) { Check(in args); return new virAdminProtocolServerListClientsRet(); }
    public VirResult<virAdminProtocolServerLookupClientRet> ServerLookupClient(int client, XdrCallContext call, in virAdminProtocolServerLookupClientArgs args) { Check(in args); return new virAdminProtocolServerLookupClientRet(); }
    public VirResult<virAdminProtocolClientGetInfoRet> ClientGetInfo(int client, XdrCallContext call, in virAdminProtocolClientGetInfoArgs args) { Check(in args); return new virAdminProtocolClientGetInfoRet(); }
    public VirResult ClientClose(int client, XdrCallContext call, in virAdminProtocolClientCloseArgs args) { Check(in args); return VirResult.Success; }
    public VirResult<virAdminProtocolServerGetClientLimitsRet> ServerGetClientLimits(int client, XdrCallContext call, in virAdminProtocolServerGetClientLimitsArgs args) { Check(in args); return new virAdminProtocolServerGetClientLimitsRet(); }
    public VirResult ServerSetClientLimits(int client, XdrCallContext call, in virAdminProtocolServerSetClientLimitsArgs args) { Check(in args); return VirResult.Success; }
    public VirResult<virAdminProtocolConnectGetLoggingOutputsRet> ConnectGetLoggingOutputs(int client, XdrCallContext call, in virAdminProtocolConnectGetLoggingOutputsArgs args) { Check(in args); return new virAdminProtocolConnectGetLoggingOutputsRet(); }
    public VirResult<virAdminProtocolConnectGetLoggingFiltersRet> ConnectGetLoggingFilters(int client, XdrCallContext call, in virAdminProtocolConnectGetLoggingFiltersArgs args) { Check(in args); return new virAdminProtocolConnectGetLoggingFiltersRet(); }
    public VirResult ConnectSetLoggingOutputs(int client, XdrCallContext call, in virAdminProtocolConnectSetLoggingOutputsArgs args) { Check(in args); return VirResult.Success; }
    public VirResult ConnectSetLoggingFilters(int client, XdrCallContext call, in virAdminProtocolConnectSetLoggingFiltersArgs args) { Check(in args); return VirResult.Success; }
    public VirResult ServerUpdateTlsFiles(int client, XdrCallContext call, in virAdminProtocolServerUpdateTlsFilesArgs args) { Check(in args); return VirResult.Success; }
    public VirResult ConnectSetDaemonTimeout(int client, XdrCallContext call, in virAdminProtocolConnectSetDaemonTimeoutArgs args) { Check(in args); return VirResult.Success; }
    public VirResult Ping(int client, XdrCallContext call) { Called(null); return VirResult.Success; }
    public VirResult Pong(int client, XdrCallContext call) { Called(null); return VirResult.Success; }
}
