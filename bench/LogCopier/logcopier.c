/* logcopier SOCKET: the ceiling for the virtlogd benchmarks. It listens on
 * SOCKET (UNIX stream, mode 0600) and answers just the calls libvirt's log
 * client makes in `logclient bench`, so the writer is byte for byte the one
 * the daemons get:
 *   DOMAIN_OPEN_LOG_FILE: pipe2(), open(path, O_CREAT|O_APPEND|O_WRONLY
 *     [|O_TRUNC]), reply with the file's inode and size and pass the pipe's
 *     write end (SCM_RIGHTS, after the reply, as libvirt's RPC does);
 *   DOMAIN_GET_LOG_FILE_POSITION: drain that pipe into the file, reply;
 *   DOMAIN_APPEND_LOG_FILE: append the message (the benches' start-up probe);
 *   keepalive PING: PONG.
 * Everything else is the plain copy: one thread, one epoll set over the
 * listener, the connections and every pipe (as the daemons have one event
 * loop thread), level-triggered, one read() of up to 64 KiB (a pipe's default
 * capacity) per ready pipe per round, then write() until all of it is in the
 * file. No rotation, no size accounting, no logging. Any malformed or
 * unexpected call closes that connection (the bench then counts a failure).
 *
 * Written for this project from the protocol's wire facts
 * (native/protocol/log_protocol.x and libvirt's RPC framing). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define LOG_PROGRAM 0x87539319u
#define KEEPALIVE_PROGRAM 0x6b656570u
#define HEADER 28 /* length word + prog, vers, proc, type, serial, status */
#define MAX_FRAME (32 * 1024 * 1024 + HEADER)
#define COPY_BUF (64 * 1024)

enum { T_CALL = 0, T_REPLY = 1, T_MESSAGE = 2, T_REPLY_WITH_FDS = 5 };
enum { K_LISTENER, K_CONN, K_PIPE };

struct item { int kind; int fd; };
struct conn { struct item it; unsigned char *buf; size_t len, cap; };
struct logf { struct item it; int file; char *path; struct logf *next; };

static int ep;
static struct logf *logs;
static unsigned char copybuf[COPY_BUF];

static void die(const char *what) { perror(what); exit(1); }

static void put32(unsigned char *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static uint32_t get32(const unsigned char *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }
static void put64(unsigned char *p, uint64_t v) { put32(p, v >> 32); put32(p + 4, (uint32_t)v); }

/* XDR reader over one frame's body; any overrun sets bad. */
struct rd { const unsigned char *p; size_t left; int bad; };
static uint32_t rd32(struct rd *r)
{
    if (r->left < 4) { r->bad = 1; return 0; }
    uint32_t v = get32(r->p); r->p += 4; r->left -= 4; return v;
}
static void rdskip(struct rd *r, size_t n)
{
    size_t padded = (n + 3) & ~(size_t)3;
    if (r->left < padded) { r->bad = 1; return; }
    r->p += padded; r->left -= padded;
}
/* A string as a fresh NUL-terminated copy (NULL when bad). */
static char *rdstr(struct rd *r)
{
    uint32_t n = rd32(r);
    if (r->bad || n > r->left) { r->bad = 1; return NULL; }
    char *s = malloc(n + 1);
    if (!s) die("malloc");
    memcpy(s, r->p, n); s[n] = 0;
    rdskip(r, n);
    if (r->bad) { free(s); return NULL; }
    return s;
}

static int write_all(int fd, const void *b, size_t n)
{
    const char *p = b;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        p += w; n -= (size_t)w;
    }
    return 0;
}

static void watch(struct item *it)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = it };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, it->fd, &ev) < 0) die("epoll_ctl");
}

static void close_log(struct logf *l)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, l->it.fd, NULL);
    close(l->it.fd);
    close(l->file);
    for (struct logf **pp = &logs; *pp; pp = &(*pp)->next)
        if (*pp == l) { *pp = l->next; break; }
    free(l->path);
    free(l);
}

/* One read of the pipe into the file: 1 = copied, 0 = nothing there, -1 = EOF or error (closed). */
static int copy_once(struct logf *l)
{
    ssize_t n = read(l->it.fd, copybuf, sizeof copybuf);
    if (n > 0) {
        if (write_all(l->file, copybuf, (size_t)n) < 0) { perror("write"); close_log(l); return -1; }
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    close_log(l); /* EOF: the writer closed its end */
    return -1;
}

static struct logf *find_log(const char *path)
{
    for (struct logf *l = logs; l; l = l->next)
        if (strcmp(l->path, path) == 0) return l;
    return NULL;
}

static int send_reply(int sock, const unsigned char *hdr, uint32_t type, const unsigned char *body, size_t blen)
{
    unsigned char out[HEADER + 32];
    if (blen > sizeof out - HEADER) return -1;
    memcpy(out + 4, hdr, 24);           /* prog, vers, proc, type, serial, status of the call */
    put32(out, (uint32_t)(HEADER + blen));
    put32(out + 16, type);
    put32(out + 24, 0);                 /* VIR_NET_OK */
    memcpy(out + HEADER, body, blen);
    return send(sock, out, HEADER + blen, MSG_NOSIGNAL) == (ssize_t)(HEADER + blen) ? 0 : -1;
}

static int send_fd(int sock, int fd)
{
    char byte = 0;
    struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
    union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } ctl;
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b };
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return sendmsg(sock, &m, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static void pos_body(unsigned char *b, int file)
{
    struct stat st;
    if (fstat(file, &st) < 0) memset(&st, 0, sizeof st);
    put64(b, (uint64_t)st.st_ino);
    put64(b + 8, (uint64_t)st.st_size); /* O_APPEND: the size is where the next byte goes */
}

/* One whole CALL frame (hdr = its 24 header bytes after the length word); 0 = answered, -1 = close the connection. */
static int dispatch(int sock, const unsigned char *hdr, const unsigned char *body, size_t blen)
{
    uint32_t prog = get32(hdr), proc = get32(hdr + 8), type = get32(hdr + 12);
    struct rd r = { body, blen, 0 };
    unsigned char out[24];

    if (prog == KEEPALIVE_PROGRAM && type == T_MESSAGE && proc == 1 /* PING */) {
        unsigned char pong[24];
        memcpy(pong, hdr, 24);
        put32(pong + 8, 2 /* PONG */);
        return send_reply(sock, pong, T_MESSAGE, NULL, 0);
    }
    if (prog != LOG_PROGRAM || type != T_CALL) return -1;

    if (proc == 1) { /* DOMAIN_OPEN_LOG_FILE: driver, {uuid[16], name}, path, flags */
        free(rdstr(&r)); rdskip(&r, 16); free(rdstr(&r));
        char *path = rdstr(&r);
        uint32_t flags = rd32(&r);
        if (r.bad || !path || find_log(path)) { free(path); return -1; }
        int pfd[2];
        if (pipe2(pfd, O_CLOEXEC) < 0) { perror("pipe2"); free(path); return -1; }
        fcntl(pfd[0], F_SETFL, O_NONBLOCK);
        int file = open(path, O_CREAT | O_APPEND | O_WRONLY | O_CLOEXEC | ((flags & 1) ? O_TRUNC : 0), 0600);
        if (file < 0) { perror(path); close(pfd[0]); close(pfd[1]); free(path); return -1; }
        struct logf *l = calloc(1, sizeof *l);
        if (!l) die("calloc");
        l->it.kind = K_PIPE; l->it.fd = pfd[0]; l->file = file; l->path = path;
        l->next = logs; logs = l;
        watch(&l->it);
        put32(out, 1); /* nfds */
        pos_body(out + 4, file);
        int rc = send_reply(sock, hdr, T_REPLY_WITH_FDS, out, 20) == 0 && send_fd(sock, pfd[1]) == 0 ? 0 : -1;
        close(pfd[1]);
        return rc;
    }
    if (proc == 2) { /* DOMAIN_GET_LOG_FILE_POSITION: path, flags; the pipe is drained first, as the daemons do */
        char *path = rdstr(&r);
        rd32(&r);
        struct logf *l = path ? find_log(path) : NULL;
        free(path);
        if (r.bad || !l) return -1;
        /* until the pipe is empty; an EOF is left to the pipe's own event, which frees l
           (freeing it here could leave a pointer to it in this round's epoll events) */
        ssize_t n;
        while ((n = read(l->it.fd, copybuf, sizeof copybuf)) > 0 || (n < 0 && errno == EINTR))
            if (n > 0 && write_all(l->file, copybuf, (size_t)n) < 0) { perror("write"); return -1; }
        pos_body(out, l->file);
        return send_reply(sock, hdr, T_REPLY, out, 16);
    }
    if (proc == 4) { /* DOMAIN_APPEND_LOG_FILE: driver, {uuid, name}, path, message, flags */
        free(rdstr(&r)); rdskip(&r, 16); free(rdstr(&r));
        char *path = rdstr(&r), *msg = rdstr(&r);
        rd32(&r);
        int ok = !r.bad && path && msg;
        if (ok) {
            int f = open(path, O_CREAT | O_APPEND | O_WRONLY | O_CLOEXEC, 0600);
            ok = f >= 0 && write_all(f, msg, strlen(msg)) == 0;
            if (f >= 0) close(f);
        }
        free(path); free(msg);
        if (!ok) return -1;
        put32(out, 0);
        return send_reply(sock, hdr, T_REPLY, out, 4);
    }
    return -1;
}

static void close_conn(struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->it.fd, NULL);
    close(c->it.fd);
    free(c->buf);
    free(c);
}

/* One recv, then every whole frame in the buffer. */
static void conn_input(struct conn *c)
{
    if (c->cap - c->len < 4096) {
        c->cap = c->cap ? c->cap * 2 : 65536;
        if (c->cap > MAX_FRAME * 2) { close_conn(c); return; }
        if (!(c->buf = realloc(c->buf, c->cap))) die("realloc");
    }
    ssize_t n = recv(c->it.fd, c->buf + c->len, c->cap - c->len, 0);
    if (n <= 0) {
        if (n < 0 && errno == EINTR) return;
        close_conn(c);
        return;
    }
    c->len += (size_t)n;
    size_t off = 0;
    while (c->len - off >= 4) {
        uint32_t flen = get32(c->buf + off);
        if (flen < HEADER || flen > MAX_FRAME) { close_conn(c); return; }
        if (c->len - off < flen) break;
        if (dispatch(c->it.fd, c->buf + off + 4, c->buf + off + HEADER, flen - HEADER) < 0) {
            fprintf(stderr, "logcopier: refused call (prog 0x%x proc %u)\n", get32(c->buf + off + 4), get32(c->buf + off + 12));
            close_conn(c);
            return;
        }
        off += flen;
    }
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
}

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: logcopier SOCKET\n"); return 2; }
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(argv[1]) >= sizeof sa.sun_path) { fprintf(stderr, "logcopier: socket path too long\n"); return 2; }
    strcpy(sa.sun_path, argv[1]);
    char dir[sizeof sa.sun_path];
    strcpy(dir, argv[1]);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) { *slash = 0; mkdir(dir, 0755); }
    unlink(argv[1]);

    struct item listener = { K_LISTENER, socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) };
    if (listener.fd < 0) die("socket");
    if (bind(listener.fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind");
    chmod(argv[1], 0600);
    if (listen(listener.fd, 128) < 0) die("listen");
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0) die("epoll_create1");
    watch(&listener);

    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(ep, evs, 64, -1);
        if (n < 0) { if (errno == EINTR) continue; die("epoll_wait"); }
        for (int i = 0; i < n; i++) {
            struct item *it = evs[i].data.ptr;
            if (it->kind == K_LISTENER) {
                int fd = accept4(listener.fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0) continue;
                struct conn *c = calloc(1, sizeof *c);
                if (!c) die("calloc");
                c->it.kind = K_CONN; c->it.fd = fd;
                watch(&c->it);
            } else if (it->kind == K_CONN) {
                conn_input((struct conn *)it);
            } else {
                copy_once((struct logf *)it);
            }
        }
    }
}
