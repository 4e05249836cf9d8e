/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libFuzzer target: struct kvm_vcpu_events decoder, import into the
 * model, validation, restore planning and re-encoding of the plan.
 * Input: one option byte, then the 64-byte struct.
 */

#include <stdlib.h>
#include <string.h>

#include "nested-codec.h"
#include "nested-import.h"
#include "nested-restore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kvm_vcpu_events ev, again;
    NestedEventState st;
    NestedRestorePlan plan;
    NestedRestoreCaps caps;
    uint8_t buf[sizeof(ev)];
    uint8_t opts;

    if (size < 1) {
        return 0;
    }
    opts = data[0];
    if (!nested_vcpu_events_decode(data + 1, size - 1, &ev, NULL)) {
        return 0;
    }
    nested_event_state_init(&st, opts & 1 ? NESTED_VENDOR_VMX
                                          : NESTED_VENDOR_SVM);
    st.guest_mode = opts & 2;
    if (!nested_event_import_vcpu_events(&st, &ev, NULL)) {
        return 0;
    }
    caps = (NestedRestoreCaps) {
        .vendor = st.vendor, .vcpu_events = true, .nested_state = true,
        .exception_payload = ev.flags & KVM_VCPUEVENT_VALID_PAYLOAD,
        .triple_fault_event = ev.flags & KVM_VCPUEVENT_VALID_TRIPLE_FAULT,
        .smm = ev.flags & KVM_VCPUEVENT_VALID_SMM, .nrips = opts & 4,
    };
    if (!nested_event_plan_restore(&st, &caps, &plan, NULL)) {
        return 0;
    }
    /* Whatever the planner emits must be a blob KVM would accept. */
    if (!nested_vcpu_events_encode(&plan.events, buf, sizeof(buf), NULL) ||
        !nested_vcpu_events_decode(buf, sizeof(buf), &again, NULL)) {
        abort();
    }
    return 0;
}
