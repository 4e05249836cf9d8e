/*
 * nested-kvm: ask nested-kvm-observer-helper for what this QEMU may not
 * open itself (docs/libvirt.rst)
 *
 * Under libvirt QEMU runs without capabilities, and perf_event_paranoid
 * keeps KVM's tracepoints from it.  The helper, which has CAP_PERFMON,
 * opens them for a vCPU thread of the QEMU at the other end of its
 * socket and nothing else; one connection per request.  A helper that
 * is not there, or refuses, fails the arming with its reason, and a
 * strict migration with it, while the source still runs.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "nested-observer-helper.h"
#include "../nested-helper-proto.h"
#include "../nested-tracefs.h"

#include <sys/socket.h>
#include <sys/un.h>

static int helper_connect(const char *path, Error **errp)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        error_setg(errp, "observer-helper=%s: path too long", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        error_setg_errno(errp, errno, "cannot reach the observer helper at "
                         "%s (is nested-kvm-observer-helper.socket active?)",
                         path);
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

/*
 * One request and its reply into buf; returns the reply's length and
 * the fds it carried (*nfds of them, at most NESTED_TRACE__MAX).
 */
static ssize_t helper_ask(const char *path, const NestedHelperRequest *req,
                          void *buf, size_t size, int *fds, int *nfds,
                          Error **errp)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * NESTED_TRACE__MAX)];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = buf, .iov_len = size };
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = control.buf, .msg_controllen = sizeof(control.buf),
    };
    struct cmsghdr *cmsg;
    int fd = helper_connect(path, errp);
    ssize_t n;

    *nfds = 0;
    if (fd < 0) {
        return -1;
    }
    if (send(fd, req, sizeof(*req), MSG_NOSIGNAL) != sizeof(*req)) {
        error_setg_errno(errp, errno, "observer helper at %s: send", path);
        close(fd);
        return -1;
    }
    n = RETRY_ON_EINTR(recvmsg(fd, &msg, MSG_CMSG_CLOEXEC));
    close(fd);
    if (n <= 0) {
        error_setg(errp, "observer helper at %s hung up without a reply",
                   path);
        return -1;
    }
    for (cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS) {
            int count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);

            memcpy(fds + *nfds, CMSG_DATA(cmsg), sizeof(int) * count);
            *nfds += count;
        }
    }
    return n;
}

static void close_all(int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        close(fds[i]);
    }
}

bool nested_observer_helper_formats(const char *path,
                                    char *texts[NESTED_TRACE__MAX],
                                    Error **errp)
{
    NestedHelperRequest req = {
        .magic = NESTED_HELPER_MAGIC, .op = NESTED_HELPER_OP_FORMATS,
    };
    size_t size = sizeof(NestedHelperReply) + NESTED_HELPER_MAX_PAYLOAD;
    g_autofree char *buf = g_malloc(size);
    g_autoptr(GError) gerr = NULL;
    NestedHelperReply reply;
    int fds[NESTED_TRACE__MAX], nfds;
    const char *text, *end;
    ssize_t n;

    n = helper_ask(path, &req, buf, size, fds, &nfds, errp);
    if (n < 0) {
        return false;
    }
    close_all(fds, nfds);
    if (!nested_helper_parse_reply(buf, n, &reply, &gerr)) {
        error_setg(errp, "observer helper at %s: %s", path, gerr->message);
        return false;
    }
    text = buf + sizeof(reply);
    end = text + reply.payload_len;
    memset(texts, 0, sizeof(char *) * NESTED_TRACE__MAX);
    for (int k = 0; k < NESTED_TRACE__MAX; k++) {
        const char *nul = memchr(text, '\0', end - text);

        if (!nul) {
            error_setg(errp, "observer helper at %s: %d of %d format texts "
                       "in its reply", path, k, NESTED_TRACE__MAX);
            nested_tracefs_free_formats(texts);
            return false;
        }
        texts[k] = g_strdup(text);
        text = nul + 1;
    }
    return true;
}

bool nested_observer_helper_open(const char *path, int tid, int cpu_index,
                                 int fds[NESTED_TRACE__MAX], Error **errp)
{
    NestedHelperRequest req = {
        .magic = NESTED_HELPER_MAGIC, .op = NESTED_HELPER_OP_OPEN, .tid = tid,
    };
    NestedHelperReply reply;
    char buf[sizeof(reply)];
    g_autoptr(GError) gerr = NULL;
    int nfds;
    ssize_t n;

    n = helper_ask(path, &req, buf, sizeof(buf), fds, &nfds, errp);
    if (n < 0) {
        return false;
    }
    if (!nested_helper_parse_reply(buf, n, &reply, &gerr) ||
        nfds != NESTED_TRACE__MAX) {
        error_setg(errp, "observer helper at %s, vCPU %d (thread %d): %s",
                   path, cpu_index, tid,
                   gerr ? gerr->message : "not the three perf fds");
        close_all(fds, nfds);
        return false;
    }
    return true;
}
