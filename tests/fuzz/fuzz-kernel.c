/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libFuzzer target: KVM_CAP_X86_NESTED_EVENT_STATE (nested-kernel.h) as
 * the mirror meets it at a pull with state-source kernel: the kernel's
 * additions to kvm_vcpu_events and an SVM kvm_nested_state decoded, both
 * cut back to a stock kernel's report, the model built from those and
 * the kernel's facts folded in, then planned.  Input: the 64-byte
 * struct kvm_vcpu_events, then the kvm_nested_state blob.
 *
 * Invariants: what the strip leaves is what a kernel without the
 * capability reports (its decoders see no report, and the SVM blob no
 * 0x200); a model the facts build and that validates plans without a
 * crash.
 */

#include <stdlib.h>
#include <string.h>

#include "nested-import.h"
#include "nested-kernel.h"
#include "nested-restore.h"
#include "nested-state.h"
#include "nested-validate.h"

#define RIP 0x7ffff000a010ull
#define CS_BASE 0x10000ull

static void check_stripped(const struct kvm_vcpu_events *ev, bool had_flag,
                           const uint8_t *blob, size_t len, bool had_svm)
{
    NestedKernelSoft soft;
    NestedKernelSvm svm;

    if (had_flag && (!nested_kernel_soft_decode(ev, &soft, NULL) ||
                     soft.reported)) {
        abort();
    }
    if (had_svm && (!nested_kernel_svm_decode(blob, len, &svm, NULL) ||
                    svm.reported ||
                    (blob[0] | blob[1] << 8) & NESTED_STATE_SVM_EVENT)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t blob[NESTED_STATE_SVM_MAX];
    struct kvm_vcpu_events ev;
    NestedKernelSoft soft;
    NestedKernelSvm svm;
    NestedStateView view;
    NestedEventState st;
    NestedRestorePlan plan;
    NestedRestoreCaps caps = {
        .vendor = NESTED_VENDOR_SVM, .vcpu_events = true,
        .exception_payload = true, .nested_state = true, .nrips = true,
    };
    bool ok_soft, ok_svm, had_flag, had_svm;
    size_t len;

    if (size < sizeof(ev) + NESTED_STATE_HDR_SIZE) {
        return 0;
    }
    memcpy(&ev, data, sizeof(ev));
    len = size - sizeof(ev);
    if (len > sizeof(blob)) {
        len = sizeof(blob);
    }
    memcpy(blob, data + sizeof(ev), len);

    ok_soft = nested_kernel_soft_decode(&ev, &soft, NULL);
    ok_svm = nested_kernel_svm_decode(blob, len, &svm, NULL);
    had_flag = ev.flags & NESTED_VCPUEVENT_VALID_SOFT_EVENT;
    had_svm = (blob[2] | blob[3] << 8) == KVM_STATE_NESTED_FORMAT_SVM &&
              ((blob[0] | blob[1] << 8) & NESTED_STATE_SVM_EVENT);
    nested_kernel_soft_strip(&ev);
    nested_kernel_svm_strip(blob, len);
    check_stripped(&ev, had_flag, blob, len, had_svm);
    if (!ok_soft || !ok_svm) {
        return 0;
    }

    nested_event_state_init(&st, NESTED_VENDOR_SVM);
    if (!nested_state_decode(blob, len, &view, NULL) ||
        !nested_event_import_nested_state(&st, &view, RIP, CS_BASE, NULL) ||
        !nested_event_import_vcpu_events(&st, &ev, NULL) ||
        !nested_kernel_apply(&st, &soft, &svm, RIP, CS_BASE, NULL) ||
        !nested_event_validate(&st, NULL)) {
        return 0;
    }
    nested_event_plan_restore(&st, &caps, &plan, NULL);
    return 0;
}
