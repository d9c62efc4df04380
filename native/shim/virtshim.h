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

/* The same with the caller's file and line, which the file and stderr
 * outputs print after the function name (the managed twin's contract). */
void virtshimLogMessageAt(const char *category, int priority,
                          const char *filename, int linenr,
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

/* Signals of the managed RPC core's daemon (rpc_impl = "managed"), caught
 * the way libvirt's virNetDaemonAddSignalHandler catches them: a C handler,
 * put in place by one sigaction whatever the disposition was before, that
 * does nothing but write the signal number (one byte) into `fd`, a
 * non-blocking pipe the daemon's loop watches. One sigaction matters: an
 * exec-restart hands SIGUSR1 to the new image as SIG_IGN, and it must go
 * from ignored to caught with no instant of the default action (death) in
 * between. One fd per signal number for the whole process, as signal
 * dispositions are. Returns 0, or -1 with errno set. */
int virtshimSignalToPipe(int signum, int fd);

/* Puts `signum` back to the action virtshimSignalToPipe replaced and stops
 * writing into its fd (call it before closing that fd). */
void virtshimSignalToPipeRemove(int signum);

/* The libvirt version this shim was compiled against, as
 * major * 1000000 + minor * 1000 + micro. */
unsigned long virtshimCompiledVersion(void);

/* Procedures whose XDR the managed side does itself, with the generated
 * codecs of interop/Libvirt.Xdr, so that no rpcgen filter is on the data
 * path. libvirt's virNetServerProgramDispatchCall decodes the arguments
 * with the table's arg_filter before calling the procedure and encodes the
 * reply with its ret_filter afterwards; these two filters let the bytes
 * through instead:
 *
 * - arg_filter (virtshimXdrArgsInPlace, arg_len 0) consumes nothing and
 *   succeeds, so when the procedure runs, the message's buffer from
 *   bufferOffset to bufferLength holds the undecoded arguments;
 * - ret_filter (virtshimXdrReplyBytes, ret_len sizeof(virtshimXdrReply))
 *   writes the reply bytes the procedure put into the struct libvirt
 *   allocated for it, as they are (already XDR, a multiple of 4 bytes),
 *   and frees them when libvirt frees the reply. */
#define VIRTSHIM_XDR_REPLY_INLINE 248

typedef struct {
    /* the encoded reply: inline_data, or memory from malloc (free'd) */
    char *data;
    unsigned int len;
    char inline_data[VIRTSHIM_XDR_REPLY_INLINE];
} virtshimXdrReply;

/* The two filters as plain function pointers (xdrproc_t). */
void *virtshimXdrArgsInPlace(void);
void *virtshimXdrReplyBytes(void);

#ifdef __cplusplus
}
#endif

#endif
