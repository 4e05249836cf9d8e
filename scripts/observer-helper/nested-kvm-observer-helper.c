/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * nested-kvm-observer-helper: opens KVM's nested tracepoint events for
 * an unprivileged QEMU's vCPU threads (docs/libvirt.rst).
 *
 *   nested-kvm-observer-helper [--socket PATH] [--timeout-ms N]
 *
 * Listens on PATH (a SOCK_SEQPACKET Unix socket), or on the socket that
 * systemd passes (LISTEN_FDS, nested-kvm-observer-helper.socket), and
 * serves one client at a time.  Whoever may connect may ask: the
 * socket's owner and mode decide that (the unit gives it to the group
 * QEMU runs as).
 */

#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib.h>

#include "observer-helper.h"

#define SD_LISTEN_FDS_START 3

static int systemd_socket(void)
{
    const char *pid = getenv("LISTEN_PID");
    const char *fds = getenv("LISTEN_FDS");

    if (!pid || !fds || atol(pid) != getpid()) {
        return -1;
    }
    if (atoi(fds) != 1) {
        fprintf(stderr, "nested-kvm-observer-helper: LISTEN_FDS=%s, want "
                "1\n", fds);
        exit(1);
    }
    return SD_LISTEN_FDS_START;
}

static int listen_on(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        fprintf(stderr, "nested-kvm-observer-helper: --socket %s: longer "
                "than %zu bytes\n", path, sizeof(addr.sun_path) - 1);
        exit(1);
    }
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0 || (unlink(path) < 0 && errno != ENOENT) ||
        bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(fd, 16) < 0) {
        fprintf(stderr, "nested-kvm-observer-helper: --socket %s: %s\n",
                path, g_strerror(errno));
        exit(1);
    }
    return fd;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "socket", required_argument, NULL, 's' },
        { "timeout-ms", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *path = NULL;
    int timeout_ms = 2000;
    int listener, c;

    while ((c = getopt_long(argc, argv, "s:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            path = optarg;
            break;
        case 't':
            timeout_ms = atoi(optarg);
            if (timeout_ms <= 0 || timeout_ms > 60000) {
                fprintf(stderr, "nested-kvm-observer-helper: --timeout-ms "
                        "%s: want 1 to 60000\n", optarg);
                return 1;
            }
            break;
        default:
            fprintf(stderr, "usage: %s [--socket PATH] [--timeout-ms N]\n",
                    argv[0]);
            return c == 'h' ? 0 : 1;
        }
    }
    listener = path ? listen_on(path) : systemd_socket();
    if (listener < 0) {
        fprintf(stderr, "nested-kvm-observer-helper: no --socket and no "
                "socket from systemd\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        int conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC);

        if (conn < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            fprintf(stderr, "nested-kvm-observer-helper: accept: %s\n",
                    g_strerror(errno));
            return 1;
        }
        observer_helper_serve(conn, "/proc", timeout_ms);
        close(conn);
    }
}
