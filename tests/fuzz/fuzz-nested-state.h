/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Shared body of the SVM and VMX kvm_nested_state fuzz targets: decode,
 * import the in-flight L1 event, plan its restore, and apply the plan's
 * edits back onto the blob, which must still decode.
 */

#ifndef FUZZ_NESTED_STATE_H
#define FUZZ_NESTED_STATE_H

#include <stdlib.h>
#include <string.h>

#include "nested-import.h"
#include "nested-restore.h"
#include "nested-state.h"

static inline int fuzz_nested_state(const uint8_t *data, size_t size,
                                    NestedVendor vendor, uint16_t format)
{
    NestedStateView v, v2;
    NestedEventState st;
    NestedRestorePlan plan;
    NestedRestoreCaps caps = {
        .vendor = vendor, .vcpu_events = true, .nested_state = true,
        /* Input bits pick the capabilities, so both sides get explored. */
        .exception_payload = size & 1,
        .nrips = vendor == NESTED_VENDOR_SVM && (size & 2),
    };
    uint8_t *blob;

    if (size > NESTED_STATE_VMX_MAX + 64) {
        return 0;
    }
    blob = g_memdup2(data, size);
    if (size >= 4) {
        /* Steer every input to the format under test. */
        blob[2] = format & 0xff;
        blob[3] = format >> 8;
    }
    if (!nested_state_decode(blob, size, &v, NULL)) {
        goto out;
    }
    nested_event_state_init(&st, vendor);
    if (!nested_event_import_nested_state(&st, &v, size, size >> 1, NULL)) {
        goto out;
    }
    if (!nested_event_plan_restore(&st, &caps, &plan, NULL)) {
        goto out;
    }
    if (!nested_state_apply_edits(blob, size, plan.state_edits,
                                  plan.n_state_edits, NULL) ||
        !nested_state_decode(blob, size, &v2, NULL)) {
        abort();
    }
out:
    g_free(blob);
    return 0;
}

#endif
