/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * nested-kvm-observer-helper: checks and answers one client's requests
 * (observer-helper.h, target-i386/nested-helper-proto.h).
 */

#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nested-helper-proto.h"
#include "nested-tracefs.h"
#include "observer-helper.h"

/* Thread "Tgid:" from /proc/PID/task/TID/status, or -1 */
static pid_t thread_group(const char *proc, pid_t pid, pid_t tid)
{
    g_autofree char *path = g_strdup_printf("%s/%d/task/%d/status", proc,
                                            pid, tid);
    g_autofree char *text = NULL;
    const char *line;
    int tgid;

    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        return -1;
    }
    line = strstr(text, "\nTgid:");
    return line && sscanf(line + 6, "%d", &tgid) == 1 ? tgid : -1;
}

/* QEMU's KVM vCPU threads are named "CPU <index>/KVM" (debug-threads=on) */
static bool vcpu_thread_name(const char *comm)
{
    unsigned index;
    char tail[8];

    return sscanf(comm, "CPU %u/%7s", &index, tail) == 2 &&
           !strcmp(tail, "KVM");
}

/* Why pid may not have its thread tid observed; NULL if it may */
static char *observer_helper_refusal(const char *proc, pid_t pid, pid_t tid)
{
    g_autofree char *path = NULL;
    g_autofree char *comm = NULL;

    if (thread_group(proc, pid, tid) != pid) {
        return g_strdup_printf("thread %d is not a thread of the calling "
                               "process %d", tid, pid);
    }
    path = g_strdup_printf("%s/%d/task/%d/comm", proc, pid, tid);
    if (!g_file_get_contents(path, &comm, NULL, NULL)) {
        return g_strdup_printf("cannot read %s", path);
    }
    g_strchomp(comm);
    if (!vcpu_thread_name(comm)) {
        return g_strdup_printf("thread %d of process %d is '%s', not a KVM "
                               "vCPU thread ('CPU n/KVM'; QEMU needs -name "
                               "debug-threads=on)", tid, pid, comm);
    }
    return NULL;
}

static void close_fds(int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
}

/* Open the three tracepoint events for tid: 0 or a negative errno */
static int open_events(pid_t tid, int fds[NESTED_TRACE__MAX], char **why)
{
    char *texts[NESTED_TRACE__MAX];
    NestedTraceFormat fmt;
    g_autoptr(GError) err = NULL;
    bool parsed;

    if (!nested_tracefs_read_formats(texts, &err)) {
        *why = g_strdup(err->message);
        return -ENOENT;
    }
    parsed = nested_tracefs_parse_formats(&fmt, texts, &err);
    nested_tracefs_free_formats(texts);
    if (!parsed) {
        *why = g_strdup(err->message);
        return -EINVAL;
    }
    for (int k = 0; k < NESTED_TRACE__MAX; k++) {
        struct perf_event_attr attr;

        nested_tracefs_perf_attr(&attr, k, fmt.ev[k].id);
        fds[k] = syscall(__NR_perf_event_open, &attr, tid, -1, -1,
                         PERF_FLAG_FD_CLOEXEC);
        if (fds[k] < 0) {
            int e = errno;

            *why = g_strdup_printf("perf_event_open(kvm:%s) for thread %d: "
                                   "%s", nested_trace_names(k)[0], tid,
                                   g_strerror(e));
            close_fds(fds, k);
            return -e;
        }
    }
    return 0;
}

static bool send_reply(int conn, const NestedHelperReply *reply,
                       const void *payload, const int *fds, int nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * NESTED_TRACE__MAX)];
        struct cmsghdr align;
    } control;
    struct iovec iov[2] = {
        { .iov_base = (void *)reply, .iov_len = sizeof(*reply) },
        { .iov_base = (void *)payload, .iov_len = reply->payload_len },
    };
    struct msghdr msg = {
        .msg_iov = iov,
        .msg_iovlen = payload ? 2 : 1,
    };

    if (nfds) {
        struct cmsghdr *cmsg;

        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
    }
    return sendmsg(conn, &msg, MSG_NOSIGNAL) >= 0;
}

static bool answer_formats(int conn)
{
    char *texts[NESTED_TRACE__MAX];
    g_autoptr(GError) err = NULL;
    g_autoptr(GString) payload = g_string_new(NULL);
    NestedHelperReply reply;

    if (!nested_tracefs_read_formats(texts, &err)) {
        nested_helper_reply_set(&reply, ENOENT, err->message);
        return send_reply(conn, &reply, NULL, NULL, 0);
    }
    for (int k = 0; k < NESTED_TRACE__MAX; k++) {
        g_string_append_len(payload, texts[k], strlen(texts[k]) + 1);
    }
    nested_tracefs_free_formats(texts);
    if (payload->len > NESTED_HELPER_MAX_PAYLOAD) {
        nested_helper_reply_set(&reply, EMSGSIZE, "tracefs formats larger "
                                "than the protocol carries");
        return send_reply(conn, &reply, NULL, NULL, 0);
    }
    nested_helper_reply_set(&reply, 0, NULL);
    reply.payload_len = payload->len;
    return send_reply(conn, &reply, payload->str, NULL, 0);
}

static bool answer_open(int conn, const struct ucred *cred, pid_t tid,
                        const char *proc)
{
    int fds[NESTED_TRACE__MAX] = { -1, -1, -1 };
    g_autofree char *why = observer_helper_refusal(proc, cred->pid, tid);
    NestedHelperReply reply;
    int error = EPERM;
    bool sent;

    if (!why) {
        error = -open_events(tid, fds, &why);
    }
    /*
     * A thread that exited before the open may have had its id reused by
     * another process: the events belong to whatever tid named then.
     */
    if (!error) {
        why = observer_helper_refusal(proc, cred->pid, tid);
        if (why) {
            close_fds(fds, NESTED_TRACE__MAX);
            error = EPERM;
        }
    }
    if (error) {
        fprintf(stderr, "nested-kvm-observer-helper: refused pid %d uid %d "
                "tid %d: %s\n", cred->pid, cred->uid, tid, why);
        nested_helper_reply_set(&reply, error, why);
        return send_reply(conn, &reply, NULL, NULL, 0);
    }
    nested_helper_reply_set(&reply, 0, NULL);
    reply.nfds = NESTED_TRACE__MAX;
    sent = send_reply(conn, &reply, NULL, fds, NESTED_TRACE__MAX);
    close_fds(fds, NESTED_TRACE__MAX);
    return sent;
}

int observer_helper_serve(int conn, const char *proc, int timeout_ms)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    int served = 0;

    if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        fprintf(stderr, "nested-kvm-observer-helper: SO_PEERCRED: %s\n",
                g_strerror(errno));
        return 0;
    }
    for (;;) {
        struct pollfd pfd = { .fd = conn, .events = POLLIN };
        NestedHelperRequest req;
        char buf[sizeof(req) + 1];
        g_autoptr(GError) err = NULL;
        NestedHelperReply reply;
        ssize_t n;
        bool sent;

        if (poll(&pfd, 1, timeout_ms) <= 0) {
            return served;
        }
        n = recv(conn, buf, sizeof(buf), MSG_TRUNC);
        if (n <= 0) {
            return served;
        }
        if (!nested_helper_parse_request(buf, n, &req, &err)) {
            fprintf(stderr, "nested-kvm-observer-helper: pid %d uid %d: "
                    "malformed request: %s\n", cred.pid, cred.uid,
                    err->message);
            nested_helper_reply_set(&reply, EINVAL, err->message);
            send_reply(conn, &reply, NULL, NULL, 0);
            return served;
        }
        if (req.op == NESTED_HELPER_OP_FORMATS) {
            sent = answer_formats(conn);
        } else {
            sent = answer_open(conn, &cred, req.tid, proc);
        }
        if (!sent) {
            return served;
        }
        served++;
    }
}
