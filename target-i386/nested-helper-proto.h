/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The wire format between an unprivileged QEMU and the privileged
 * observer helper (scripts/observer-helper/, docs/libvirt.rst).
 *
 * Under libvirt, QEMU has no capability and perf_event_paranoid stays at
 * the distribution's default, so QEMU cannot open KVM's tracepoint
 * events itself.  It asks the helper, over a SOCK_SEQPACKET Unix socket,
 * for the three nested tracepoints of one of its own vCPU threads; the
 * helper checks the caller's credentials and /proc before it opens
 * anything, and hands the perf fds back with SCM_RIGHTS.  One request,
 * one reply, both fixed-size and host-endian: both ends run on one host.
 */

#ifndef NESTED_HELPER_PROTO_H
#define NESTED_HELPER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#include "nested-window.h"

#define NESTED_HELPER_MAGIC 0x314b484eu     /* "NHK1" */

typedef enum NestedHelperOp {
    /* The tracefs format texts of the three tracepoints, as payload */
    NESTED_HELPER_OP_FORMATS = 1,
    /* The perf events of tid's three tracepoints, as NESTED_TRACE__MAX fds */
    NESTED_HELPER_OP_OPEN = 2,
} NestedHelperOp;

typedef struct NestedHelperRequest {
    uint32_t magic;
    uint32_t op;                /* NestedHelperOp */
    int32_t tid;                /* OP_OPEN: a vCPU thread of the caller */
    uint32_t reserved;          /* 0 */
} NestedHelperRequest;

#define NESTED_HELPER_MESSAGE_LEN 240
/* The three format texts, NUL-terminated each, fit in this */
#define NESTED_HELPER_MAX_PAYLOAD 16384

typedef struct NestedHelperReply {
    uint32_t magic;
    int32_t error;              /* 0, or a positive errno value */
    uint32_t nfds;              /* fds passed with this reply */
    uint32_t payload_len;       /* bytes after this header */
    char message[NESTED_HELPER_MESSAGE_LEN];   /* why, when error != 0 */
} NestedHelperReply;

/*
 * Check a received request of len bytes; fails naming the field and its
 * value.
 */
bool nested_helper_parse_request(const void *buf, size_t len,
                                 NestedHelperRequest *req, GError **errp);

/* Fill a reply: error 0 and message NULL for success. */
void nested_helper_reply_set(NestedHelperReply *reply, int error,
                             const char *message);

/*
 * Check a received reply header of len bytes; fails naming the field,
 * or with the helper's own message when it refused.
 */
bool nested_helper_parse_reply(const void *buf, size_t len,
                               NestedHelperReply *reply, GError **errp);

#endif
