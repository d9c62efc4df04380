/* The minimal config.h that libvirt 9.0.0's internal headers need to
 * compile outside libvirt's own build: used by the shim and by the binding
 * generator. Only facts of Debian's build that the headers test go here. */
#ifndef VIRT_MIGRATION_CONFIG_H
#define VIRT_MIGRATION_CONFIG_H
#define PACKAGE "libvirt"
#define PACKAGE_NAME "libvirt"
#define PACKAGE_VERSION "9.0.0"
#define VERSION "9.0.0"
#define WITH_LIBTIRPC 1
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#define WITH_GETUID 1
#define WITH_GETEUID 1
#define WITH_GETGID 1
#define WITH_GETEGID 1
#endif
