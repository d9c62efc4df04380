/*
 * Drives virLockSpace and virRotatingFile at paths whose bytes are not
 * UTF-8, through libvirt's private API, and prints what the functions
 * return and what they left on disk, byte strings in hex. Run against
 * libvirt.so.0 alone and with libvirt-managed.so preloaded
 * (Export/NonUtf8PathTests): the two outputs must be equal. Paths are
 * relative to the working directory, so the outputs can be compared.
 */
#include <config.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "virlockspace.h"
#include "virrotatingfile.h"

static void hex(const char *label, const char *s)
{
    printf("%s ", label);
    if (!s) {
        printf("NULL\n");
        return;
    }
    for (; *s; s++)
        printf("%02x", (unsigned char)*s);
    printf("\n");
}

/* the last error's message, in hex: it carries the path's bytes */
static void status(const char *what, int rc)
{
    printf("%s %d\n", what, rc);
    if (rc < 0)
        hex("  error", virGetLastErrorMessage());
    virResetLastError();
}

static void exists(const char *path)
{
    struct stat sb;
    hex("path", path);
    printf("  exists %d\n", stat(path, &sb) == 0);
}

int main(void)
{
    Dl_info info;
    const char *dir = "lock\xff\xfespace";
    const char *res = "res\xff";
    const char *logdir = "log\xff";
    const char *log = "log\xff/file\xfe.log";
    char path[256];
    char buf[256];
    virLockSpace *ls;
    virRotatingFileWriter *w;
    virRotatingFileReader *r;
    int i;

    if (virInitialize() < 0)
        return 1;
    /* which library the calls reach: the one line the two runs differ in */
    if (dladdr((void *)virLockSpaceNew, &info) && info.dli_fname)
        fprintf(stderr, "impl %s\n", info.dli_fname);

    if (!(ls = virLockSpaceNew(dir))) {
        status("virLockSpaceNew", -1);
        return 1;
    }
    hex("virLockSpaceGetDirectory", virLockSpaceGetDirectory(ls));
    exists(dir);
    status("virLockSpaceCreateResource", virLockSpaceCreateResource(ls, res));
    snprintf(path, sizeof(path), "%s/%s", dir, res);
    exists(path);
    status("virLockSpaceAcquireResource", virLockSpaceAcquireResource(ls, res, getpid(), 0));
    status("virLockSpaceAcquireResource again", virLockSpaceAcquireResource(ls, res, getpid(), 0));
    status("virLockSpaceReleaseResource", virLockSpaceReleaseResource(ls, res, getpid()));
    status("virLockSpaceAcquireResource missing", virLockSpaceAcquireResource(ls, "gone\xfe", getpid(), 0));
    status("virLockSpaceDeleteResource", virLockSpaceDeleteResource(ls, res));
    exists(path);
    virLockSpaceFree(ls);

    /* the writer makes no directory: the first fails, naming the path */
    w = virRotatingFileWriterNew(log, 40, 2, false, 0600);
    status("virRotatingFileWriterNew without its directory", w ? 0 : -1);
    virRotatingFileWriterFree(w);
    if (mkdir(logdir, 0700) < 0)
        return 1;
    if (!(w = virRotatingFileWriterNew(log, 40, 2, false, 0600))) {
        status("virRotatingFileWriterNew", -1);
        return 1;
    }
    hex("virRotatingFileWriterGetPath", virRotatingFileWriterGetPath(w));
    for (i = 0; i < 5; i++) {
        snprintf(buf, sizeof(buf), "line %d of the log, to make it rotate\n", i);
        printf("virRotatingFileWriterAppend %zd\n", virRotatingFileWriterAppend(w, buf, strlen(buf)));
    }
    virRotatingFileWriterFree(w);
    exists(log);
    snprintf(path, sizeof(path), "%s.0", log);
    exists(path);
    snprintf(path, sizeof(path), "%s.1", log);
    exists(path);

    if (!(r = virRotatingFileReaderNew(log, 2))) {
        status("virRotatingFileReaderNew", -1);
        return 1;
    }
    memset(buf, 0, sizeof(buf));
    printf("virRotatingFileReaderConsume %zd\n", virRotatingFileReaderConsume(r, buf, sizeof(buf) - 1));
    printf("%s", buf);
    virRotatingFileReaderFree(r);
    return 0;
}
