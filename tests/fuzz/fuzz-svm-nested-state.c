/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libFuzzer target: kvm_nested_state decoder in SVM format, import of
 * vmcb12's EVENTINJ, validation, planning, and applying the plan's edits
 * back onto the blob (which must still decode).
 */

#include <stdlib.h>
#include <string.h>

#include "nested-events.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    NestedStateView v, v2;
    NestedEventState st;
    NestedRestorePlan plan;
    NestedRestoreCaps caps = {
        .vendor = NESTED_VENDOR_SVM, .vcpu_events = true,
        .exception_payload = true, .nested_state = true, .nrips = true,
    };
    uint8_t *blob;

    if (size > NESTED_STATE_VMX_MAX + 64) {
        return 0;
    }
    blob = g_memdup2(data, size);
    if (size >= 4) {
        /* Steer every input to the SVM format. */
        blob[2] = KVM_STATE_NESTED_FORMAT_SVM;
        blob[3] = 0;
    }
    if (!nested_kvm_nested_state_decode(blob, size, &v, NULL)) {
        goto out;
    }
    nested_event_state_init(&st, NESTED_VENDOR_SVM);
    if (!nested_event_import_nested_state(&st, &v, size, size >> 1, NULL)) {
        goto out;
    }
    caps.nrips = size & 1;
    if (!nested_event_plan_restore(&st, &caps, &plan, NULL)) {
        goto out;
    }
    if (!nested_kvm_nested_state_apply(blob, size, plan.state_edits,
                                       plan.n_state_edits, NULL) ||
        !nested_kvm_nested_state_decode(blob, size, &v2, NULL)) {
        abort();
    }
out:
    g_free(blob);
    return 0;
}
