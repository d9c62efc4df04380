#include "virtshim.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "virerror.h"
#include "virlog.h"

#include <rpc/xdr.h>

/* The shim links nothing but libc: a daemon with every subsystem managed
 * (rpc_impl = "managed") loads neither libvirt.so.0 nor glib nor libtirpc.
 * It does not link against libvirt: it looks its few internals up
 * at the private symbol version it was compiled for. A different libvirt
 * then fails virtshimHasPrivateAbi() with a message from the daemon,
 * instead of the dynamic loader refusing the executable. The pointer types
 * come from libvirt's own prototypes, so the compiler checks every call. */
#define VIRTSHIM_ABI "LIBVIRT_PRIVATE_9.0.0"

static void *
virtshimLibvirt(void)
{
    static void *handle;
    if (!handle) {
        handle = dlopen("libvirt.so.0", RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
        if (!handle)
            handle = dlopen("libvirt.so.0", RTLD_NOW | RTLD_GLOBAL);
    }
    return handle;
}

static void *
virtshimLookup(const char *name)
{
    void *handle = virtshimLibvirt();
    return handle ? dlvsym(handle, name, VIRTSHIM_ABI) : NULL;
}

#define VIRTSHIM_FN(name) \
    static __typeof__(name) *name##Ptr; \
    if (!name##Ptr) \
        name##Ptr = (__typeof__(name) *)virtshimLookup(#name); \
    if (!name##Ptr) \
        abort()

int
virtshimHasPrivateAbi(void)
{
    return virtshimLookup("virNetDaemonNew") != NULL &&
           virtshimLookup("virReportErrorHelper") != NULL;
}

void
virtshimReportError(int domain, int code, const char *funcname,
                    const char *detail)
{
    VIRTSHIM_FN(virReportErrorHelper);
    if (detail)
        virReportErrorHelperPtr(domain, code, "managed", funcname, 0, "%s", detail);
    else
        virReportErrorHelperPtr(domain, code, "managed", funcname, 0, NULL);
}

void
virtshimReportInvalidArg(int domain, const char *funcname,
                         const char *argname, const char *message)
{
    VIRTSHIM_FN(virRaiseErrorFull);
    virRaiseErrorFullPtr("managed", funcname, 0, domain, VIR_ERR_INVALID_ARG,
                         VIR_ERR_ERROR, funcname, argname, NULL, 0, 0,
                         "%s", message);
}

void
virtshimReportSystemError(int domain, int errnum, const char *funcname,
                          const char *message)
{
    VIRTSHIM_FN(virReportSystemErrorFull);
    virReportSystemErrorFullPtr(domain, errnum, "managed", funcname, 0,
                                "%s", message);
}

void
virtshimRaiseError(int domain, int code, int level, const char *funcname,
                   const char *str1, const char *str2, const char *str3,
                   int int1, int int2, const char *message)
{
    VIRTSHIM_FN(virRaiseErrorFull);
    virRaiseErrorFullPtr("managed", funcname, 0, domain, code, level,
                         str1, str2, str3, int1, int2, "%s", message);
}

void
virtshimSetError(int domain, int code, int level,
                 const char *str1, const char *str2, const char *str3,
                 int int1, int int2, const char *message)
{
    virError err = {
        .code = code,
        .domain = domain,
        .message = (char *)message,
        .level = level,
        .str1 = (char *)str1,
        .str2 = (char *)str2,
        .str3 = (char *)str3,
        .int1 = int1,
        .int2 = int2,
    };
    VIRTSHIM_FN(virSetError);
    /* virSetError copies every string */
    virSetErrorPtr(&err);
}

/* libvirt filters and prints by source name; sources must outlive every
 * message logged under them, so they are kept for the process's life. */
#define VIRTSHIM_MAX_SOURCES 64
static virLogSource virtshimSources[VIRTSHIM_MAX_SOURCES];
static char *virtshimSourceNames[VIRTSHIM_MAX_SOURCES];
static size_t virtshimNSources;
static pthread_mutex_t virtshimSourceLock = PTHREAD_MUTEX_INITIALIZER;

static virLogSource *
virtshimSource(const char *category)
{
    virLogSource *src = NULL;
    size_t i;

    pthread_mutex_lock(&virtshimSourceLock);
    for (i = 0; i < virtshimNSources; i++) {
        if (strcmp(virtshimSourceNames[i], category) == 0) {
            src = &virtshimSources[i];
            break;
        }
    }
    if (!src) {
        if (virtshimNSources == VIRTSHIM_MAX_SOURCES)
            i = VIRTSHIM_MAX_SOURCES - 1; /* share the last slot */
        else
            i = virtshimNSources++;
        if (!virtshimSourceNames[i]) {
            virtshimSourceNames[i] = strdup(category);
            if (!virtshimSourceNames[i])
                abort(); /* as glib does when out of memory */
            virtshimSources[i].name = virtshimSourceNames[i];
            virtshimSources[i].priority = VIR_LOG_ERROR;
            virtshimSources[i].serial = 0;
        }
        src = &virtshimSources[i];
    }
    pthread_mutex_unlock(&virtshimSourceLock);
    return src;
}

void
virtshimLogMessage(const char *category, int priority,
                   const char *funcname, const char *message)
{
    VIRTSHIM_FN(virLogMessage);
    virLogMessagePtr(virtshimSource(category ? category : "managed"),
                     priority, "managed", 0, funcname ? funcname : "",
                     NULL, "%s", message);
}

void
virtshimLogMessageAt(const char *category, int priority,
                     const char *filename, int linenr,
                     const char *funcname, const char *message)
{
    VIRTSHIM_FN(virLogMessage);
    virLogMessagePtr(virtshimSource(category ? category : "managed"),
                     priority, filename ? filename : "managed", linenr,
                     funcname, NULL, "%s", message);
}

int
virtshimSpawnDaemon(const char *exe, char *const argv[], const char *envname)
{
    extern char **environ;
    int statuspipe[2];
    char **envp;
    char *envvar;
    size_t n = 0, i;
    pid_t pid;
    int wstatus = 0;
    char status;
    ssize_t got;

    if (pipe2(statuspipe, O_CLOEXEC) < 0)
        return -1;

    /* Everything the children need is allocated here: between fork and
     * exec only async-signal-safe calls are made. */
    while (environ[n])
        n++;
    envp = calloc(n + 2, sizeof(char *));
    envvar = malloc(strlen(envname) + 16);
    if (!envp || !envvar) {
        free(envp);
        free(envvar);
        close(statuspipe[0]);
        close(statuspipe[1]);
        errno = ENOMEM;
        return -1;
    }
    sprintf(envvar, "%s=%d", envname, statuspipe[1]);
    for (i = 0; i < n; i++)
        envp[i] = environ[i];
    envp[n] = envvar;

    pid = fork();
    if (pid == 0) {
        int infd = open("/dev/null", O_RDONLY);
        int outfd = open("/dev/null", O_WRONLY);
        pid_t grandchild;
        close(statuspipe[0]);
        if (infd < 0 || outfd < 0 ||
            dup2(infd, STDIN_FILENO) < 0 ||
            dup2(outfd, STDOUT_FILENO) < 0 ||
            dup2(outfd, STDERR_FILENO) < 0)
            _exit(EXIT_FAILURE);
        if (infd > STDERR_FILENO)
            close(infd);
        if (outfd > STDERR_FILENO)
            close(outfd);
        if (setsid() < 0)
            _exit(EXIT_FAILURE);
        grandchild = fork();
        if (grandchild < 0)
            _exit(EXIT_FAILURE);
        if (grandchild > 0)
            _exit(EXIT_SUCCESS);
        /* the daemon keeps the write end across exec */
        if (fcntl(statuspipe[1], F_SETFD, 0) < 0)
            _exit(EXIT_FAILURE);
        execve(exe, argv, envp);
        _exit(EXIT_FAILURE);
    }
    free(envp);
    free(envvar);
    close(statuspipe[1]);
    if (pid < 0) {
        close(statuspipe[0]);
        return -1;
    }

    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
        close(statuspipe[0]);
        return -1;
    }
    do {
        got = read(statuspipe[0], &status, 1);
    } while (got < 0 && errno == EINTR);
    close(statuspipe[0]);
    if (got != 1)
        return -1;
    return (unsigned char)status;
}

unsigned long
virtshimCompiledVersion(void)
{
    return LIBVIR_VERSION_NUMBER;
}

static bool_t
virtshimXdrArgsInPlaceFilter(XDR *xdrs G_GNUC_UNUSED, void *args G_GNUC_UNUSED)
{
    /* decoding consumes nothing: the arguments stay in the message's
     * buffer for the managed codec; encoding and freeing have nothing to do */
    return TRUE;
}

static bool_t
virtshimXdrReplyBytesFilter(XDR *xdrs, void *ret)
{
    virtshimXdrReply *reply = ret;

    switch (xdrs->x_op) {
    case XDR_ENCODE:
        if (reply->len == 0)
            return TRUE;
        if (reply->len % 4 != 0 || !reply->data)
            return FALSE;
        /* a multiple of 4: no padding, the bytes go as they are (through
         * the stream's own operation, so the shim needs no libtirpc);
         * FALSE when the message buffer is too small, and libvirt grows it
         * and retries */
        return XDR_PUTBYTES(xdrs, reply->data, reply->len);
    case XDR_FREE:
        if (reply && reply->data && reply->data != reply->inline_data)
            free(reply->data);
        if (reply) {
            reply->data = NULL;
            reply->len = 0;
        }
        return TRUE;
    case XDR_DECODE:
    default:
        return FALSE;
    }
}

void *
virtshimXdrArgsInPlace(void)
{
    return (void *)virtshimXdrArgsInPlaceFilter;
}

void *
virtshimXdrReplyBytes(void)
{
    return (void *)virtshimXdrReplyBytesFilter;
}


/* virtshimSignalToPipe's state: the pipe of each signal (-1: none) and the
 * action its handler replaced. */
static int virtshimSignalFds[NSIG] = { [0 ... NSIG - 1] = -1 };
static struct sigaction virtshimSignalOld[NSIG];

static void
virtshimSignalHandler(int signum)
{
    int saved = errno;
    int fd = __atomic_load_n(&virtshimSignalFds[signum], __ATOMIC_SEQ_CST);
    unsigned char b = (unsigned char)signum;

    /* a full pipe already holds a wake-up: the signal joins it */
    if (fd >= 0 && write(fd, &b, 1) < 0) {
        /* nothing more is async-signal-safe to do */
    }
    errno = saved;
}

int
virtshimSignalToPipe(int signum, int fd)
{
    struct sigaction act;
    struct sigaction old;

    if (signum <= 0 || signum >= NSIG || fd < 0) {
        errno = EINVAL;
        return -1;
    }
    /* the fd first: the handler may run the moment sigaction returns */
    __atomic_store_n(&virtshimSignalFds[signum], fd, __ATOMIC_SEQ_CST);
    memset(&act, 0, sizeof(act));
    act.sa_handler = virtshimSignalHandler;
    act.sa_flags = SA_RESTART;
    sigfillset(&act.sa_mask);
    if (sigaction(signum, &act, &old) < 0)
        return -1;
    /* a second call for the same signal keeps the first one's old action */
    if (old.sa_handler != virtshimSignalHandler)
        virtshimSignalOld[signum] = old;
    return 0;
}

void
virtshimSignalToPipeRemove(int signum)
{
    struct sigaction cur;

    if (signum <= 0 || signum >= NSIG)
        return;
    /* only our own handler is replaced: an exec-restart may have ignored
     * the signal since, and that stays */
    if (sigaction(signum, NULL, &cur) == 0 && cur.sa_handler == virtshimSignalHandler)
        sigaction(signum, &virtshimSignalOld[signum], NULL);
    __atomic_store_n(&virtshimSignalFds[signum], -1, __ATOMIC_SEQ_CST);
}
