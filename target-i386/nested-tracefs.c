/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * KVM's nested tracepoints in tracefs, and their perf events
 * (nested-tracefs.h).
 */

#include <string.h>

#include "nested-tracefs.h"

#define TRACEFS_ERROR g_quark_from_static_string("nested-tracefs")

static const char *const tracefs_roots[] = {
    "/sys/kernel/tracing", "/sys/kernel/debug/tracing",
};

static char *read_one(NestedTraceKind kind, GError **errp)
{
    const char *const *names = nested_trace_names(kind);

    for (size_t n = 0; names[n]; n++) {
        for (size_t r = 0; r < G_N_ELEMENTS(tracefs_roots); r++) {
            g_autofree char *path = g_strdup_printf("%s/events/kvm/%s/format",
                                                    tracefs_roots[r],
                                                    names[n]);
            char *text = NULL;

            if (g_file_get_contents(path, &text, NULL, NULL)) {
                return text;
            }
        }
    }
    g_set_error(errp, TRACEFS_ERROR, 0, "no readable tracefs format for "
                "kvm:%s under %s or %s (tracefs not mounted, kvm not "
                "loaded, or not readable by this process)", names[0],
                tracefs_roots[0], tracefs_roots[1]);
    return NULL;
}

bool nested_tracefs_read_formats(char *texts[NESTED_TRACE__MAX],
                                 GError **errp)
{
    memset(texts, 0, sizeof(char *) * NESTED_TRACE__MAX);
    for (int k = 0; k < NESTED_TRACE__MAX; k++) {
        texts[k] = read_one(k, errp);
        if (!texts[k]) {
            nested_tracefs_free_formats(texts);
            return false;
        }
    }
    return true;
}

void nested_tracefs_free_formats(char *texts[NESTED_TRACE__MAX])
{
    for (int k = 0; k < NESTED_TRACE__MAX; k++) {
        g_clear_pointer(&texts[k], g_free);
    }
}

bool nested_tracefs_parse_formats(NestedTraceFormat *fmt,
                                  char *const texts[NESTED_TRACE__MAX],
                                  GError **errp)
{
    memset(fmt, 0, sizeof(*fmt));
    for (int k = 0; k < NESTED_TRACE__MAX; k++) {
        if (!nested_trace_parse_format(fmt, k, texts[k], errp)) {
            return false;
        }
    }
    return true;
}

void nested_tracefs_perf_attr(struct perf_event_attr *attr,
                              NestedTraceKind kind, uint16_t id)
{
    memset(attr, 0, sizeof(*attr));
    attr->type = PERF_TYPE_TRACEPOINT;
    attr->size = sizeof(*attr);
    attr->config = id;
    attr->disabled = 1;
    if (kind == NESTED_TRACE_VMEXIT_INJECT) {
        return;
    }
    attr->sample_period = 1;
    attr->sample_type = PERF_SAMPLE_RAW;
    attr->write_backward = 1;
}
