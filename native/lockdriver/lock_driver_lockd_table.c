/*
 * lock_driver_lockd_table.c: the driver table of the managed lockd plugin
 * (artifacts/lib/lock-driver/lockd.so), the twin of libvirt 9.0.0's
 * src/locking/lock_driver_lockd.c.
 *
 * libvirt's lock manager (virLockManagerPluginNew in libvirt.so.0) dlopens
 * the plugin and takes the *data* symbol virLockDriverImpl: a virLockDriver
 * whose entries it calls. NativeAOT exports functions
 * ([UnmanagedCallersOnly(EntryPoint = ...)]) but cannot define or export a
 * data symbol, so this is the one piece C# cannot do: the table itself,
 * compiled against libvirt's own lock_driver.h (so its layout is checked by
 * the compiler) and linked into lockd.so together with the NativeAOT code,
 * whose entry points (managed/LockDriver/LockDriverExport.cs, named after
 * lock_driver_lockd.c's static functions) it points at. Nothing else of the
 * plugin is C.
 */
#include <config.h>

#include "lock_driver.h"

int virLockManagerLockDaemonInit(unsigned int version,
                                 const char *configFile,
                                 unsigned int flags);
int virLockManagerLockDaemonDeinit(void);
int virLockManagerLockDaemonNew(virLockManager *lock,
                                unsigned int type,
                                size_t nparams,
                                virLockManagerParam *params,
                                unsigned int flags);
void virLockManagerLockDaemonFree(virLockManager *lock);
int virLockManagerLockDaemonAddResource(virLockManager *lock,
                                        unsigned int type,
                                        const char *name,
                                        size_t nparams,
                                        virLockManagerParam *params,
                                        unsigned int flags);
int virLockManagerLockDaemonAcquire(virLockManager *lock,
                                    const char *state,
                                    unsigned int flags,
                                    virDomainLockFailureAction action,
                                    int *fd);
int virLockManagerLockDaemonRelease(virLockManager *lock,
                                    char **state,
                                    unsigned int flags);
int virLockManagerLockDaemonInquire(virLockManager *lock,
                                    char **state,
                                    unsigned int flags);

/* the entries' types are lock_driver.h's: a mismatch fails the build */
virLockDriver virLockDriverImpl =
{
    .version = VIR_LOCK_MANAGER_VERSION,
    .flags = 0,

    .drvInit = virLockManagerLockDaemonInit,
    .drvDeinit = virLockManagerLockDaemonDeinit,

    .drvNew = virLockManagerLockDaemonNew,
    .drvFree = virLockManagerLockDaemonFree,

    .drvAddResource = virLockManagerLockDaemonAddResource,

    .drvAcquire = virLockManagerLockDaemonAcquire,
    .drvRelease = virLockManagerLockDaemonRelease,

    .drvInquire = virLockManagerLockDaemonInquire,
};
