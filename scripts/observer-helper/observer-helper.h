/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * nested-kvm-observer-helper: what it grants, and to whom
 * (docs/libvirt.rst).  It runs with CAP_PERFMON (or as root) so that an
 * unprivileged QEMU need not, and opens only KVM's three nested
 * tracepoints, only for a vCPU thread ("CPU n/KVM") of the process at
 * the other end of the socket.
 */

#ifndef OBSERVER_HELPER_H
#define OBSERVER_HELPER_H

#include <stdbool.h>
#include <sys/types.h>

/*
 * Serve the requests of one connected client until it hangs up, stalls
 * for more than timeout_ms, or sends a malformed request.  A request to
 * open names a thread, which must be a vCPU thread of the client (its
 * SO_PEERCRED pid), read from the procfs at proc ("/proc").  Refusals
 * and errors are logged to stderr with the client's pid and uid.
 * Returns the number of requests answered.
 */
int observer_helper_serve(int conn, const char *proc, int timeout_ms);

#endif
