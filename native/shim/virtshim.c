#include "virtshim.h"

#include "internal.h"
#include "virerror.h"

#include "lock_protocol.h"

void
virtshimReportError(int domain, int code, const char *funcname,
                    const char *detail)
{
    if (detail)
        virReportErrorHelper(domain, code, "managed", funcname, 0, "%s", detail);
    else
        virReportErrorHelper(domain, code, "managed", funcname, 0, NULL);
}

void
virtshimReportInvalidArg(int domain, const char *funcname,
                         const char *argname, const char *message)
{
    virRaiseErrorFull("managed", funcname, 0, domain, VIR_ERR_INVALID_ARG,
                      VIR_ERR_ERROR, funcname, argname, NULL, 0, 0,
                      "%s", message);
}

void
virtshimReportSystemError(int domain, int errnum, const char *funcname,
                          const char *message)
{
    virReportSystemErrorFull(domain, errnum, "managed", funcname, 0,
                             "%s", message);
}

unsigned long
virtshimCompiledVersion(void)
{
    return LIBVIR_VERSION_NUMBER;
}

void *
virtshimXdrVoid(void)
{
    return (void *)xdr_void;
}

size_t
virtshimLockArgSize(int procedure)
{
    switch ((enum virLockSpaceProtocolProcedure)procedure) {
    case VIR_LOCK_SPACE_PROTOCOL_PROC_REGISTER:
        return sizeof(virLockSpaceProtocolRegisterArgs);
    case VIR_LOCK_SPACE_PROTOCOL_PROC_RESTRICT:
        return sizeof(virLockSpaceProtocolRestrictArgs);
    case VIR_LOCK_SPACE_PROTOCOL_PROC_NEW:
        return sizeof(virLockSpaceProtocolNewArgs);
    case VIR_LOCK_SPACE_PROTOCOL_PROC_CREATE_RESOURCE:
        return sizeof(virLockSpaceProtocolCreateResourceArgs);
    case VIR_LOCK_SPACE_PROTOCOL_PROC_DELETE_RESOURCE:
        return sizeof(virLockSpaceProtocolDeleteResourceArgs);
    case VIR_LOCK_SPACE_PROTOCOL_PROC_ACQUIRE_RESOURCE:
        return sizeof(virLockSpaceProtocolAcquireResourceArgs);
    case VIR_LOCK_SPACE_PROTOCOL_PROC_RELEASE_RESOURCE:
        return sizeof(virLockSpaceProtocolReleaseResourceArgs);
    case VIR_LOCK_SPACE_PROTOCOL_PROC_CREATE_LOCKSPACE:
        return sizeof(virLockSpaceProtocolCreateLockSpaceArgs);
    }
    return 0;
}

void *
virtshimLockArgFilter(int procedure)
{
    switch ((enum virLockSpaceProtocolProcedure)procedure) {
    case VIR_LOCK_SPACE_PROTOCOL_PROC_REGISTER:
        return (void *)xdr_virLockSpaceProtocolRegisterArgs;
    case VIR_LOCK_SPACE_PROTOCOL_PROC_RESTRICT:
        return (void *)xdr_virLockSpaceProtocolRestrictArgs;
    case VIR_LOCK_SPACE_PROTOCOL_PROC_NEW:
        return (void *)xdr_virLockSpaceProtocolNewArgs;
    case VIR_LOCK_SPACE_PROTOCOL_PROC_CREATE_RESOURCE:
        return (void *)xdr_virLockSpaceProtocolCreateResourceArgs;
    case VIR_LOCK_SPACE_PROTOCOL_PROC_DELETE_RESOURCE:
        return (void *)xdr_virLockSpaceProtocolDeleteResourceArgs;
    case VIR_LOCK_SPACE_PROTOCOL_PROC_ACQUIRE_RESOURCE:
        return (void *)xdr_virLockSpaceProtocolAcquireResourceArgs;
    case VIR_LOCK_SPACE_PROTOCOL_PROC_RELEASE_RESOURCE:
        return (void *)xdr_virLockSpaceProtocolReleaseResourceArgs;
    case VIR_LOCK_SPACE_PROTOCOL_PROC_CREATE_LOCKSPACE:
        return (void *)xdr_virLockSpaceProtocolCreateLockSpaceArgs;
    }
    return NULL;
}
