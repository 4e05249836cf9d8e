/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The observer helper's wire format: checks shared by the helper and
 * QEMU (nested-helper-proto.h).
 */

#include <string.h>

#include "nested-helper-proto.h"

#define PROTO_ERROR g_quark_from_static_string("nested-helper-proto")

bool nested_helper_parse_request(const void *buf, size_t len,
                                 NestedHelperRequest *req, GError **errp)
{
    if (len != sizeof(*req)) {
        g_set_error(errp, PROTO_ERROR, 0, "request length %zu, want %zu",
                    len, sizeof(*req));
        return false;
    }
    memcpy(req, buf, sizeof(*req));
    if (req->magic != NESTED_HELPER_MAGIC) {
        g_set_error(errp, PROTO_ERROR, 0, "request magic 0x%08x, want 0x%08x",
                    req->magic, NESTED_HELPER_MAGIC);
        return false;
    }
    if (req->reserved) {
        g_set_error(errp, PROTO_ERROR, 0, "request reserved=%u, want 0",
                    req->reserved);
        return false;
    }
    switch (req->op) {
    case NESTED_HELPER_OP_FORMATS:
        if (req->tid) {
            g_set_error(errp, PROTO_ERROR, 0, "request op=formats with "
                        "tid=%d, want 0", req->tid);
            return false;
        }
        return true;
    case NESTED_HELPER_OP_OPEN:
        if (req->tid <= 0) {
            g_set_error(errp, PROTO_ERROR, 0, "request op=open with tid=%d, "
                        "want a thread id", req->tid);
            return false;
        }
        return true;
    default:
        g_set_error(errp, PROTO_ERROR, 0, "request op=%u, want %d (formats) "
                    "or %d (open)", req->op, NESTED_HELPER_OP_FORMATS,
                    NESTED_HELPER_OP_OPEN);
        return false;
    }
}

void nested_helper_reply_set(NestedHelperReply *reply, int error,
                             const char *message)
{
    memset(reply, 0, sizeof(*reply));
    reply->magic = NESTED_HELPER_MAGIC;
    reply->error = error;
    if (message) {
        g_strlcpy(reply->message, message, sizeof(reply->message));
    }
}

bool nested_helper_parse_reply(const void *buf, size_t len,
                               NestedHelperReply *reply, GError **errp)
{
    if (len < sizeof(*reply)) {
        g_set_error(errp, PROTO_ERROR, 0, "reply length %zu, want at least "
                    "%zu", len, sizeof(*reply));
        return false;
    }
    memcpy(reply, buf, sizeof(*reply));
    reply->message[sizeof(reply->message) - 1] = '\0';
    if (reply->magic != NESTED_HELPER_MAGIC) {
        g_set_error(errp, PROTO_ERROR, 0, "reply magic 0x%08x, want 0x%08x",
                    reply->magic, NESTED_HELPER_MAGIC);
        return false;
    }
    if (reply->error) {
        g_set_error(errp, PROTO_ERROR, reply->error, "the helper refused: %s",
                    reply->message[0] ? reply->message
                                      : g_strerror(reply->error));
        return false;
    }
    if (reply->payload_len != len - sizeof(*reply) ||
        reply->payload_len > NESTED_HELPER_MAX_PAYLOAD) {
        g_set_error(errp, PROTO_ERROR, 0, "reply payload_len=%u with %zu "
                    "bytes after the header (at most %d)", reply->payload_len,
                    len - sizeof(*reply), NESTED_HELPER_MAX_PAYLOAD);
        return false;
    }
    return true;
}
