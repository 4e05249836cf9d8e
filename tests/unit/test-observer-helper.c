/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The observer helper's refusals (scripts/observer-helper/,
 * docs/libvirt.rst): a request must name a vCPU thread ("CPU n/KVM") of
 * the very process that sends it, checked from SO_PEERCRED and /proc
 * before anything is opened, and a malformed request is refused naming
 * its field.  The helper's server loop runs in a child process on a real
 * Unix socket, so that the peer credentials are the kernel's.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib.h>

#include "nested-helper-proto.h"
#include "observer-helper.h"

typedef struct NamedThread {
    pthread_t thread;
    int tid;
    int stop[2];                /* the thread waits for a byte on [0] */
} NamedThread;

static void *named_thread_fn(void *opaque)
{
    NamedThread *t = opaque;
    char c;

    g_atomic_int_set(&t->tid, gettid());
    while (read(t->stop[0], &c, 1) < 0 && errno == EINTR) {
        continue;
    }
    return NULL;
}

/* A thread of this process named name, like QEMU's vCPU threads */
static void named_thread_start(NamedThread *t, const char *name)
{
    memset(t, 0, sizeof(*t));
    g_assert_cmpint(pipe(t->stop), ==, 0);
    g_assert_cmpint(pthread_create(&t->thread, NULL, named_thread_fn, t),
                    ==, 0);
    while (!g_atomic_int_get(&t->tid)) {
        g_usleep(1000);
    }
    g_assert_cmpint(pthread_setname_np(t->thread, name), ==, 0);
}

static void named_thread_stop(NamedThread *t)
{
    g_assert_cmpint(write(t->stop[1], "q", 1), ==, 1);
    pthread_join(t->thread, NULL);
    close(t->stop[0]);
    close(t->stop[1]);
}

/* A process that only waits to be killed; its pid is nobody's thread */
static pid_t other_process(void)
{
    pid_t pid = fork();

    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        pause();
        _exit(0);
    }
    return pid;
}

static void reap(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

typedef struct Server {
    char *dir;
    char *path;
    pid_t pid;
} Server;

/* The helper's loop in a child, serving one connection on a new socket */
static void server_start(Server *s)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd;

    s->dir = g_dir_make_tmp("nkvm-helper-XXXXXX", NULL);
    g_assert_nonnull(s->dir);
    s->path = g_build_filename(s->dir, "sock", NULL);
    g_strlcpy(addr.sun_path, s->path, sizeof(addr.sun_path));
    fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), ==, 0);
    g_assert_cmpint(listen(fd, 1), ==, 0);
    s->pid = fork();
    g_assert_cmpint(s->pid, >=, 0);
    if (s->pid == 0) {
        int conn = accept(fd, NULL, NULL);

        _exit(conn < 0 ? 2 : observer_helper_serve(conn, "/proc", 5000));
    }
    close(fd);
}

/* The number of requests the server answered */
static int server_wait(Server *s)
{
    int status;

    g_assert_cmpint(waitpid(s->pid, &status, 0), ==, s->pid);
    g_assert_true(WIFEXITED(status));
    unlink(s->path);
    rmdir(s->dir);
    g_free(s->path);
    g_free(s->dir);
    return WEXITSTATUS(status);
}

static int server_connect(Server *s)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);

    g_strlcpy(addr.sun_path, s->path, sizeof(addr.sun_path));
    g_assert_cmpint(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), ==,
                    0);
    return fd;
}

/*
 * Send req (len bytes) and read the reply: its error, its message and
 * the fds it carried, which are closed.
 */
static int ask(int fd, const void *req, size_t len, char **message,
               int *nfds)
{
    char buf[sizeof(NestedHelperReply) + NESTED_HELPER_MAX_PAYLOAD];
    union {
        char buf[CMSG_SPACE(sizeof(int) * NESTED_TRACE__MAX)];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = control.buf, .msg_controllen = sizeof(control.buf),
    };
    NestedHelperReply reply;
    struct cmsghdr *cmsg;
    ssize_t n;

    g_assert_cmpint(send(fd, req, len, 0), ==, len);
    n = recvmsg(fd, &msg, 0);
    g_assert_cmpint(n, >=, (ssize_t)sizeof(reply));
    memcpy(&reply, buf, sizeof(reply));
    g_assert_cmphex(reply.magic, ==, NESTED_HELPER_MAGIC);
    *nfds = 0;
    for (cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        int fds[NESTED_TRACE__MAX];
        int count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);

        memcpy(fds, CMSG_DATA(cmsg), sizeof(int) * count);
        for (int i = 0; i < count; i++) {
            close(fds[i]);
        }
        *nfds += count;
    }
    *message = g_strndup(reply.message, sizeof(reply.message));
    return reply.error;
}

static NestedHelperRequest open_request(int tid)
{
    return (NestedHelperRequest) {
        .magic = NESTED_HELPER_MAGIC, .op = NESTED_HELPER_OP_OPEN, .tid = tid,
    };
}

/* A request must name the field that is wrong, with its value */
static void test_parse_request(void)
{
    static const struct {
        NestedHelperRequest req;
        size_t len;
        const char *why;
    } bad[] = {
        { { NESTED_HELPER_MAGIC, NESTED_HELPER_OP_OPEN, 1, 0 }, 15,
          "request length 15" },
        { { 0x12345678, NESTED_HELPER_OP_OPEN, 1, 0 }, 16,
          "request magic 0x12345678" },
        { { NESTED_HELPER_MAGIC, NESTED_HELPER_OP_OPEN, 1, 7 }, 16,
          "request reserved=7" },
        { { NESTED_HELPER_MAGIC, 9, 1, 0 }, 16, "request op=9" },
        { { NESTED_HELPER_MAGIC, NESTED_HELPER_OP_OPEN, 0, 0 }, 16,
          "op=open with tid=0" },
        { { NESTED_HELPER_MAGIC, NESTED_HELPER_OP_OPEN, -5, 0 }, 16,
          "op=open with tid=-5" },
        { { NESTED_HELPER_MAGIC, NESTED_HELPER_OP_FORMATS, 3, 0 }, 16,
          "op=formats with tid=3" },
    };
    NestedHelperRequest good = open_request(42), out;

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) err = NULL;

        g_assert_false(nested_helper_parse_request(&bad[i].req, bad[i].len,
                                                   &out, &err));
        g_assert_nonnull(strstr(err->message, bad[i].why));
    }
    g_assert_true(nested_helper_parse_request(&good, sizeof(good), &out,
                                              NULL));
    g_assert_cmpint(out.tid, ==, 42);
}

/* A refusal in the reply reaches the caller as the helper wrote it */
static void test_parse_reply(void)
{
    NestedHelperReply reply, out;
    g_autoptr(GError) err = NULL;

    nested_helper_reply_set(&reply, EPERM, "thread 7 is not yours");
    g_assert_false(nested_helper_parse_reply(&reply, sizeof(reply), &out,
                                             &err));
    g_assert_nonnull(strstr(err->message, "thread 7 is not yours"));
    g_clear_error(&err);
    nested_helper_reply_set(&reply, 0, NULL);
    reply.payload_len = 5;
    g_assert_false(nested_helper_parse_reply(&reply, sizeof(reply), &out,
                                             &err));
    g_assert_nonnull(strstr(err->message, "payload_len=5"));
    reply.payload_len = 0;
    g_assert_true(nested_helper_parse_reply(&reply, sizeof(reply), &out,
                                            NULL));
}

/*
 * Over the socket: another process's thread and this process's non-vCPU
 * thread are refused with EPERM and no fd; this process's vCPU thread
 * passes the checks (here the open itself may still fail, for want of
 * tracefs or permission, but not with a refusal).
 */
static void test_serve_refuses(void)
{
    NamedThread vcpu, io;
    pid_t other = other_process();
    Server s;
    NestedHelperRequest req;
    char *message;
    int fd, nfds, error;

    named_thread_start(&vcpu, "CPU 1/KVM");
    named_thread_start(&io, "worker");
    server_start(&s);
    fd = server_connect(&s);

    req = open_request(other);
    g_assert_cmpint(ask(fd, &req, sizeof(req), &message, &nfds), ==, EPERM);
    g_assert_cmpint(nfds, ==, 0);
    g_assert_nonnull(strstr(message, "is not a thread of the calling"));
    g_free(message);

    req = open_request(io.tid);
    g_assert_cmpint(ask(fd, &req, sizeof(req), &message, &nfds), ==, EPERM);
    g_assert_cmpint(nfds, ==, 0);
    g_assert_nonnull(strstr(message, "not a KVM vCPU thread"));
    g_free(message);

    req = open_request(vcpu.tid);
    error = ask(fd, &req, sizeof(req), &message, &nfds);
    g_test_message("open of our vCPU thread: error %d, %d fds, '%s'", error,
                   nfds, message);
    g_assert_null(strstr(message, "thread of the calling"));
    g_assert_null(strstr(message, "vCPU thread"));
    g_assert_cmpint(nfds, ==, error ? 0 : NESTED_TRACE__MAX);
    g_free(message);

    close(fd);
    g_assert_cmpint(server_wait(&s), ==, 3);
    named_thread_stop(&vcpu);
    named_thread_stop(&io);
    reap(other);
}

/*
 * The wrong process: a child connects and names a vCPU thread of its
 * parent.  The credentials are the child's, so it is refused.
 */
static void test_serve_wrong_process(void)
{
    NamedThread vcpu;
    Server s;
    pid_t child;
    int status;

    named_thread_start(&vcpu, "CPU 2/KVM");
    server_start(&s);
    child = fork();
    g_assert_cmpint(child, >=, 0);
    if (child == 0) {
        NestedHelperRequest req = open_request(vcpu.tid);
        char *message;
        int nfds, fd = server_connect(&s);
        int error = ask(fd, &req, sizeof(req), &message, &nfds);

        _exit(error == EPERM && nfds == 0 &&
              strstr(message, "is not a thread of the calling") ? 0 : 1);
    }
    g_assert_cmpint(waitpid(child, &status, 0), ==, child);
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 0);
    g_assert_cmpint(server_wait(&s), ==, 1);
    named_thread_stop(&vcpu);
}

/* A malformed request is answered with its field, then the helper hangs up */
static void test_serve_malformed(void)
{
    NestedHelperRequest req = open_request(1);
    Server s;
    char *message;
    char byte;
    int fd, nfds;

    req.reserved = 3;
    server_start(&s);
    fd = server_connect(&s);
    g_assert_cmpint(ask(fd, &req, sizeof(req), &message, &nfds), ==, EINVAL);
    g_assert_nonnull(strstr(message, "request reserved=3"));
    g_free(message);
    g_assert_cmpint(recv(fd, &byte, 1, 0), ==, 0);
    close(fd);
    g_assert_cmpint(server_wait(&s), ==, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/observer-helper/parse-request", test_parse_request);
    g_test_add_func("/observer-helper/parse-reply", test_parse_reply);
    g_test_add_func("/observer-helper/serve-refuses", test_serve_refuses);
    g_test_add_func("/observer-helper/serve-wrong-process",
                    test_serve_wrong_process);
    g_test_add_func("/observer-helper/serve-malformed", test_serve_malformed);
    return g_test_run();
}
