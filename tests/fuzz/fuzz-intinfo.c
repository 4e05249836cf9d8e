/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libFuzzer target: SVM/VMX interruption-information codecs, then the
 * decoded event through validation and restore planning.
 * Input: kind byte, raw word, error code, instruction length (LE).
 */

#include <stdlib.h>
#include <string.h>

#include "nested-event-info.h"
#include "nested-intinfo.h"
#include "nested-restore.h"
#include "nested-validate.h"

static uint32_t take32(const uint8_t *data, size_t size, size_t at)
{
    uint32_t v = 0;

    if (size >= at + 4) {
        memcpy(&v, data + at, 4);
    }
    return GUINT32_FROM_LE(v);
}

static void check_word(NestedIntInfoKind kind, uint32_t raw)
{
    NestedIntInfo info;
    uint32_t back;

    if (!nested_intinfo_decode(kind, raw, &info, NULL)) {
        return;
    }
    if (!nested_intinfo_encode(kind, &info, &back, NULL) || back != raw) {
        abort();
    }
}

static void plan_event(const NestedEvent *ev, NestedVendor vendor,
                       uint8_t opts)
{
    NestedEventState st;
    NestedRestorePlan plan;
    NestedRestoreCaps caps = {
        .vendor = vendor, .vcpu_events = true, .nested_state = opts & 1,
        .exception_payload = opts & 2, .nrips = opts & 4,
        .triple_fault_event = opts & 8, .smm = opts & 16,
    };
    GPtrArray *problems;

    nested_event_state_init(&st, vendor);
    st.guest_mode = ev->origin == NESTED_ORIGIN_L1;
    if (st.guest_mode) {
        st.l2.injected = *ev;
    } else {
        st.l1.injected = *ev;
    }
    problems = nested_event_check(&st);
    if (nested_event_validate(&st, NULL) != (problems->len == 0)) {
        abort();
    }
    g_ptr_array_unref(problems);
    if (nested_event_plan_restore(&st, &caps, &plan, NULL) &&
        ev->origin == NESTED_ORIGIN_L1 &&
        (plan.events.nmi.injected || plan.events.interrupt.injected ||
         plan.events.exception.injected)) {
        abort();                        /* restored twice */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    NestedIntInfoKind kind;
    uint32_t raw, err, len;
    NestedEvent ev;
    uint8_t opts;

    if (size < 1) {
        return 0;
    }
    kind = data[0] % (NESTED_INTINFO_VMX_EXIT + 1);
    opts = data[0] >> 3;
    raw = take32(data, size, 1);
    err = take32(data, size, 5);
    len = take32(data, size, 9);
    check_word(kind, raw);

    if (kind <= NESTED_INTINFO_SVM_EXITINTINFO) {
        uint32_t raw2, err2;

        if (!nested_event_from_svm(kind, raw, err, &ev, NULL)) {
            return 0;
        }
        if (nested_event_to_svm(&ev, &raw2, &err2, NULL)) {
            NestedEvent ev2;

            if (!nested_event_from_svm(kind, raw2, err2, &ev2, NULL) ||
                memcmp(&ev, &ev2, sizeof(ev))) {
                abort();
            }
        }
        plan_event(&ev, NESTED_VENDOR_SVM, opts);
    } else {
        uint32_t raw2, err2, len2;

        if (!nested_event_from_vmx(kind, raw, err, len, &ev, NULL)) {
            return 0;
        }
        if (nested_event_to_vmx(&ev, &raw2, &err2, &len2, NULL)) {
            NestedEvent ev2;

            if (!nested_event_from_vmx(NESTED_INTINFO_VMX_ENTRY, raw2, err2,
                                       len2, &ev2, NULL)) {
                abort();
            }
        }
        ev.old_rip = take32(data, size, 13);
        ev.next_rip = ev.old_rip + ev.insn_len;
        plan_event(&ev, NESTED_VENDOR_VMX, opts);
    }
    return 0;
}
