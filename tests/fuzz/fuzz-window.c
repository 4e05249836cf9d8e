/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libFuzzer target: the hidden-window code (target-i386/nested-window.c)
 * on hostile input.  Input: a tracefs "format" text for
 * kvm_nested_vmexit up to the first NUL, then raw tracepoint records of
 * 16 bytes each, newest first.  The records are decoded against the
 * parsed format plus fixed ones for the other two events, judged as
 * SVM's or VMX's exits (bit 1 of the size), and the verdict is applied
 * to a guest-mode model of that vendor, whose nested state holds the
 * event in vmcs12 or not (bit 2), which must then still validate.
 */

#include <stdlib.h>
#include <string.h>

#include "nested-validate.h"
#include "nested-window.h"

#define RECORD_SIZE 16
#define MAX_RECORDS 64

static const char fixed_vmenter[] =
    "ID: 2\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\n"
    "\tfield:__u32 event_inj;\toffset:4;\tsize:4;\n";
static const char fixed_inject[] =
    "ID: 3\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    NestedTraceRecord recs[MAX_RECORDS];
    NestedTraceFormat fmt = { 0 };
    NestedVendor vendor = size & 2 ? NESTED_VENDOR_VMX : NESTED_VENDOR_SVM;
    NestedStateView view = { .has_vmcs = true };
    NestedEventState st;
    NestedWindow w;
    g_autofree char *text = NULL;
    size_t n = 0;

    if (!nul) {
        return 0;
    }
    text = g_strndup((const char *)data, nul - data);
    if (!nested_trace_parse_format(&fmt, NESTED_TRACE_VMENTER, fixed_vmenter,
                                   NULL) ||
        !nested_trace_parse_format(&fmt, NESTED_TRACE_VMEXIT_INJECT,
                                   fixed_inject, NULL) ||
        !nested_trace_parse_format(&fmt, NESTED_TRACE_VMEXIT, text, NULL)) {
        return 0;
    }
    for (const uint8_t *p = nul + 1;
         p + RECORD_SIZE <= data + size && n < MAX_RECORDS;
         p += RECORD_SIZE) {
        if (nested_trace_decode(&fmt, p, RECORD_SIZE, &recs[n], NULL)) {
            n++;
        }
    }
    nested_window_judge(vendor, recs, n, size & 1, &w);
    nested_event_state_init(&st, vendor);
    st.guest_mode = true;
    view.svm_next_rip = size;
    view.vmx_entry_intr_info = size & 4 ? w.event_info : 0;
    view.vmx_entry_exception_error_code = size >> 3;
    view.vmx_entry_instruction_len = (size >> 3) & 0x1f;
    if (nested_window_apply(&st, &w, 0x1000, 0, &view, NULL) &&
        !nested_event_validate(&st, NULL)) {
        abort();
    }
    return 0;
}
