/* virtshim: the few things C# cannot do safely against libvirt 9.0.0.
 * libvirt's error reporters are variadic, and .NET has no varargs
 * P/Invoke on Linux; each entry point here is a fixed-arity wrapper. */
#ifndef VIRTSHIM_H
#define VIRTSHIM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Raise an error as virReportErrorHelper does: the message is the detail,
 * libvirt prefixes it with the text it keeps for `code`. */
void virtshimReportError(int domain, int code, const char *funcname,
                         const char *detail);

/* Raise an error as virRaiseErrorFull does with str1/str2 set, the shape
 * virReportInvalidArg uses (str1 = function, str2 = argument name). */
void virtshimReportInvalidArg(int domain, const char *funcname,
                              const char *argname, const char *message);

/* Raise a system error (errno text appended), as virReportSystemError. */
void virtshimReportSystemError(int domain, int errnum, const char *funcname,
                               const char *message);

/* Set libvirt's last error to exactly these fields (an error value made by
 * managed code, crossing back into libvirt at a native boundary): the
 * message is taken verbatim, not formatted again. */
void virtshimRaiseError(int domain, int code, int level, const char *funcname,
                        const char *str1, const char *str2, const char *str3,
                        int int1, int int2, const char *message);

/* The same, without logging it: for an error libvirt already logged when
 * it was first raised (taken as a value, now handed back). */
void virtshimSetError(int domain, int code, int level,
                      const char *str1, const char *str2, const char *str3,
                      int int1, int int2, const char *message);

/* Log one message through libvirt's log outputs and filters, under the
 * source name `category` (e.g. "locking.lock_daemon"), so managed and
 * native code share log_outputs/log_filters exactly. */
void virtshimLogMessage(const char *category, int priority,
                        const char *funcname, const char *message);

/* 1 when the loaded libvirt.so.0 exports its internals at
 * LIBVIRT_PRIVATE_9.0.0, the ABI everything here is compiled against. */
int virtshimHasPrivateAbi(void);

/* Daemonise the way the C daemons' -d does, but for a process that cannot
 * fork after start-up (the .NET runtime): fork, setsid and fork again, then
 * exec `exe` with `argv` in the grandchild with stdio on /dev/null and the
 * write end of a status pipe named in the environment variable `envname`.
 * The caller (the original process) gets the status byte the daemon writes
 * once it serves: 0 on success, the daemon's error code otherwise, -1 when
 * the daemon died without writing one. */
int virtshimSpawnDaemon(const char *exe, char *const argv[],
                        const char *envname);

/* The libvirt version this shim was compiled against, as
 * major * 1000000 + minor * 1000 + micro. */
unsigned long virtshimCompiledVersion(void);

/* libtirpc's xdr_void, as a plain function pointer: libvirt calls the
 * ret_filter of every procedure, so it must never be NULL. */
void *virtshimXdrVoid(void);

/* What libvirt's virNetServerProgramProc needs of one procedure: the
 * sizes of the rpcgen argument and return structs and their XDR filters
 * (ret_filter is xdr_void for procedures without a return struct). */
typedef struct {
    size_t arg_len;
    void *arg_filter;
    size_t ret_len;
    void *ret_filter;
} virtshimProcInfo;

/* Fill `info` for a procedure of the lock program (0xEA7BEEF) or of the
 * log program (0x87539319); -1 for an unknown procedure. */
int virtshimLockProcInfo(int procedure, virtshimProcInfo *info);
int virtshimLogProcInfo(int procedure, virtshimProcInfo *info);

/* The same for the admin program (0x06900690) of the "admin" server. */
int virtshimAdminProcInfo(int procedure, virtshimProcInfo *info);

#ifdef __cplusplus
}
#endif

#endif
