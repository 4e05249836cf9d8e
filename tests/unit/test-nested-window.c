/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The hidden window (target-i386/nested-window.c): tracefs format
 * parsing, raw record decoding, the in-flight verdict and its effect on
 * the model.
 *
 * The format texts follow the tracefs "format" files of KVM's
 * tracepoints (arch/x86/kvm/trace.h: kvm_nested_vmenter and its older
 * name kvm_nested_vmrun, kvm_nested_vmexit built by
 * TRACE_EVENT_KVM_EXIT, kvm_nested_vmexit_inject); offsets are those of
 * an x86-64 build with the four common fields (8 bytes) first.  Event
 * words use the EVENTINJ / EXITINTINFO layout of AMD APM vol. 2, 15.20
 * and 15.7.2: vector 7:0, type 10:8, EV 11, V 31, which VMX's VM-entry
 * and IDT-vectoring information share (SDM vol. 3C 24.8.3, 24.9.3),
 * with types 4 (INT n), 5 (ICEBP) and 6 (INT3/INTO) of their own.  On
 * VMX, kvm_nested_vmexit carries the IDT-vectoring information as info2
 * (vmx_get_exit_info() in KVM's vmx.c).
 */

#include <string.h>

#include "nested-restore.h"
#include "nested-state.h"
#include "nested-tracefs.h"
#include "nested-validate.h"
#include "nested-window.h"

#define V (1u << 31)
#define EV (1u << 11)
#define T_INTR (0u << 8)
#define T_NMI (2u << 8)
#define T_EXC (3u << 8)
#define T_SOFT (4u << 8)
#define T_PRIV_SOFT_EXC (5u << 8)
#define T_SOFT_EXC (6u << 8)

#define COMMON_FIELDS \
    "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n" \
    "\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n" \
    "\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;" \
    "\tsigned:0;\n" \
    "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n"

static const char fmt_vmenter[] =
    "name: kvm_nested_vmenter\nID: 1501\nformat:\n" COMMON_FIELDS
    "\tfield:__u64 rip;\toffset:8;\tsize:8;\tsigned:0;\n"
    "\tfield:__u64 vmcb;\toffset:16;\tsize:8;\tsigned:0;\n"
    "\tfield:__u64 nested_rip;\toffset:24;\tsize:8;\tsigned:0;\n"
    "\tfield:__u32 int_ctl;\toffset:32;\tsize:4;\tsigned:0;\n"
    "\tfield:__u32 event_inj;\toffset:36;\tsize:4;\tsigned:0;\n"
    "\tfield:bool tdp_enabled;\toffset:40;\tsize:1;\tsigned:0;\n"
    "\nprint fmt: \"rip: 0x%016llx\", REC->rip\n";

/* 6.1 before the rename: fewer fields, event_inj elsewhere. */
static const char fmt_vmrun[] =
    "name: kvm_nested_vmrun\nID: 1377\nformat:\n" COMMON_FIELDS
    "\tfield:__u64 rip;\toffset:8;\tsize:8;\tsigned:0;\n"
    "\tfield:__u64 vmcb;\toffset:16;\tsize:8;\tsigned:0;\n"
    "\tfield:__u64 nested_rip;\toffset:24;\tsize:8;\tsigned:0;\n"
    "\tfield:__u32 int_ctl;\toffset:32;\tsize:4;\tsigned:0;\n"
    "\tfield:__u32 event_inj;\toffset:40;\tsize:4;\tsigned:0;\n";

static const char fmt_vmexit[] =
    "name: kvm_nested_vmexit\nID: 1502\nformat:\n" COMMON_FIELDS
    "\tfield:unsigned int exit_reason;\toffset:8;\tsize:4;\tsigned:0;\n"
    "\tfield:unsigned long guest_rip;\toffset:16;\tsize:8;\tsigned:0;\n"
    "\tfield:u32 isa;\toffset:24;\tsize:4;\tsigned:0;\n"
    "\tfield:u64 info1;\toffset:32;\tsize:8;\tsigned:0;\n"
    "\tfield:u64 info2;\toffset:40;\tsize:8;\tsigned:0;\n"
    "\tfield:u32 intr_info;\toffset:48;\tsize:4;\tsigned:0;\n"
    "\tfield:u32 error_code;\toffset:52;\tsize:4;\tsigned:0;\n"
    "\tfield:unsigned int vcpu_id;\toffset:56;\tsize:4;\tsigned:0;\n";

static const char fmt_inject[] =
    "name: kvm_nested_vmexit_inject\nID: 1503\nformat:\n" COMMON_FIELDS
    "\tfield:__u32 exit_code;\toffset:8;\tsize:4;\tsigned:0;\n"
    "\tfield:__u64 exit_info1;\toffset:16;\tsize:8;\tsigned:0;\n"
    "\tfield:__u64 exit_info2;\toffset:24;\tsize:8;\tsigned:0;\n"
    "\tfield:__u32 exit_int_info;\toffset:32;\tsize:4;\tsigned:0;\n"
    "\tfield:__u32 exit_int_info_err;\toffset:36;\tsize:4;\tsigned:0;\n";

static void load_formats(NestedTraceFormat *fmt)
{
    memset(fmt, 0, sizeof(*fmt));
    g_assert_true(nested_trace_parse_format(fmt, NESTED_TRACE_VMENTER,
                                            fmt_vmenter, NULL));
    g_assert_true(nested_trace_parse_format(fmt, NESTED_TRACE_VMEXIT,
                                            fmt_vmexit, NULL));
    g_assert_true(nested_trace_parse_format(fmt, NESTED_TRACE_VMEXIT_INJECT,
                                            fmt_inject, NULL));
}

static void test_parse(void)
{
    NestedTraceFormat fmt;
    const NestedTraceField *vmenter = fmt.ev[NESTED_TRACE_VMENTER].field;
    const NestedTraceField *vmexit = fmt.ev[NESTED_TRACE_VMEXIT].field;

    load_formats(&fmt);
    g_assert_cmpuint(fmt.common_type.offset, ==, 0);
    g_assert_cmpuint(fmt.common_type.size, ==, 2);
    g_assert_cmpuint(fmt.ev[NESTED_TRACE_VMENTER].id, ==, 1501);
    g_assert_cmpuint(vmenter[NESTED_TRACE_FIELD_INFO].offset, ==, 36);
    g_assert_cmpuint(vmexit[NESTED_TRACE_FIELD_INFO].offset, ==, 48);
    g_assert_cmpuint(vmexit[NESTED_TRACE_FIELD_ERROR_CODE].offset, ==, 52);
    g_assert_cmpuint(vmexit[NESTED_TRACE_FIELD_ERROR_CODE].size, ==, 4);
    g_assert_cmpuint(vmexit[NESTED_TRACE_FIELD_INFO2].offset, ==, 40);
    g_assert_cmpuint(vmexit[NESTED_TRACE_FIELD_INFO2].size, ==, 8);
    g_assert_cmpuint(vmexit[NESTED_TRACE_FIELD_RIP].offset, ==, 16);
    g_assert_cmpuint(vmenter[NESTED_TRACE_FIELD_RIP].offset, ==, 24);
    /* vmenter has no error code or info2 */
    g_assert_cmpuint(vmenter[NESTED_TRACE_FIELD_ERROR_CODE].size, ==, 0);
    g_assert_cmpuint(vmenter[NESTED_TRACE_FIELD_INFO2].size, ==, 0);
    g_assert_cmpuint(fmt.ev[NESTED_TRACE_VMEXIT_INJECT].id, ==, 1503);

    /* The pre-rename name has event_inj at another offset. */
    g_assert_true(nested_trace_parse_format(&fmt, NESTED_TRACE_VMENTER,
                                            fmt_vmrun, NULL));
    g_assert_cmpuint(fmt.ev[NESTED_TRACE_VMENTER].id, ==, 1377);
    g_assert_cmpuint(vmenter[NESTED_TRACE_FIELD_INFO].offset, ==, 40);
    g_assert_cmpstr(nested_trace_names(NESTED_TRACE_VMENTER)[1], ==,
                    "kvm_nested_vmrun");
}

static void expect_parse_error(NestedTraceKind kind, const char *text,
                               const char *message)
{
    NestedTraceFormat fmt = { 0 };
    g_autoptr(GError) err = NULL;

    g_assert_false(nested_trace_parse_format(&fmt, kind, text, &err));
    g_assert_cmpstr(err->message, ==, message);
}

static void test_parse_errors(void)
{
    g_autofree char *no_intr = g_strdup(fmt_vmexit);
    g_autofree char *no_info2 = g_strdup(fmt_vmexit);
    g_autofree char *no_id = g_strdup(fmt_vmexit);

    /* A kernel that renamed the field must not be read blindly. */
    memcpy(strstr(no_intr, "intr_info"), "intr_nfo ", 9);
    expect_parse_error(NESTED_TRACE_VMEXIT, no_intr,
                       "kvm_nested_vmexit.intr_info.size=0: field missing "
                       "or not 1 to 8 bytes");
    /* VMX's IDT-vectoring information travels in info2. */
    memcpy(strstr(no_info2, "info2"), "infoX", 5);
    expect_parse_error(NESTED_TRACE_VMEXIT, no_info2,
                       "kvm_nested_vmexit.info2.size=0: field missing "
                       "or not 1 to 8 bytes");
    memcpy(strstr(no_id, "ID: 1502"), "ID: x502", 8);
    expect_parse_error(NESTED_TRACE_VMEXIT, no_id,
                       "kvm_nested_vmexit: no numeric 'ID:' line");
    expect_parse_error(NESTED_TRACE_VMEXIT_INJECT,
                       "ID: 7\n\tfield:u32 common_type;\toffset:0;\tsize:4;",
                       "kvm_nested_vmexit_inject: common_type.size=4: "
                       "expected a 2-byte field");
}

static void put(uint8_t *raw, uint32_t off, uint32_t size, uint64_t v)
{
    for (uint32_t i = 0; i < size; i++) {
        raw[off + i] = v >> (8 * i);
    }
}

static void test_decode(void)
{
    NestedTraceFormat fmt;
    NestedTraceRecord rec;
    g_autoptr(GError) err = NULL;
    uint8_t raw[64] = { 0 };

    load_formats(&fmt);
    put(raw, 0, 2, 1502);
    put(raw, 48, 4, V | EV | T_EXC | 13);
    put(raw, 52, 4, 0x18);
    put(raw, 40, 8, 0xabcd00000000ull | V | T_SOFT_EXC | 3);
    g_assert_true(nested_trace_decode(&fmt, raw, 60, &rec, NULL));
    g_assert_cmpuint(rec.kind, ==, NESTED_TRACE_VMEXIT);
    g_assert_cmphex(rec.info, ==, V | EV | T_EXC | 13);
    g_assert_cmphex(rec.error_code, ==, 0x18);
    g_assert_cmphex(rec.info2, ==, V | T_SOFT_EXC | 3);
    g_assert_true(rec.has_rip);     /* the format has guest_rip */
    g_assert_cmphex(rec.rip, ==, 0);
    put(raw, 16, 8, 0xffffffff81001234ull);
    g_assert_true(nested_trace_decode(&fmt, raw, 60, &rec, NULL));
    g_assert_true(rec.has_rip);
    g_assert_cmphex(rec.rip, ==, 0xffffffff81001234ull);

    put(raw, 0, 2, 1501);
    put(raw, 36, 4, V | T_NMI | 2);
    g_assert_true(nested_trace_decode(&fmt, raw, 44, &rec, NULL));
    g_assert_cmpuint(rec.kind, ==, NESTED_TRACE_VMENTER);
    g_assert_cmphex(rec.info, ==, V | T_NMI | 2);

    /* Another tracepoint's record: skipped, not an error. */
    put(raw, 0, 2, 999);
    g_assert_false(nested_trace_decode(&fmt, raw, 64, &rec, NULL));

    put(raw, 0, 2, 1502);
    g_assert_false(nested_trace_decode(&fmt, raw, 50, &rec, &err));
    g_assert_cmpstr(err->message, ==,
                    "kvm_nested_vmexit record.size=50: shorter than its "
                    "format");
    g_clear_error(&err);
    g_assert_false(nested_trace_decode(&fmt, raw, 1, &rec, &err));
    g_assert_cmpstr(err->message, ==,
                    "record.size=1: no room for common_type");
}

/* L2's RIP is optional: a vmexit format without guest_rip still works. */
static void test_parse_without_rip(void)
{
    g_autofree char *text = g_strdup(fmt_vmexit);
    NestedTraceFormat fmt;
    NestedTraceRecord rec;
    uint8_t raw[64] = { 0 };

    memcpy(strstr(text, "guest_rip;"), "guest_xip;", 10);
    load_formats(&fmt);
    g_assert_true(nested_trace_parse_format(&fmt, NESTED_TRACE_VMEXIT, text,
                                            NULL));
    g_assert_cmpuint(fmt.ev[NESTED_TRACE_VMEXIT]
                     .field[NESTED_TRACE_FIELD_RIP].size, ==, 0);
    put(raw, 0, 2, 1502);
    put(raw, 16, 8, 0x5000);
    g_assert_true(nested_trace_decode(&fmt, raw, 60, &rec, NULL));
    g_assert_false(rec.has_rip);
    g_assert_cmphex(rec.rip, ==, 0);
}

#define ENTER(i) { .kind = NESTED_TRACE_VMENTER, .info = (i) }
#define EXIT(i, e) { .kind = NESTED_TRACE_VMEXIT, .info = (i), \
                     .error_code = (e) }
#define INJECT { .kind = NESTED_TRACE_VMEXIT_INJECT }
/* VMX: IDT-vectoring info, then the exit's own information and code */
#define VEXIT(idt, i, e) { .kind = NESTED_TRACE_VMEXIT, .info = (i), \
                           .error_code = (e), .info2 = (idt) }
/* The same with L2's RIP (nested_rip, guest_rip) */
#define ENTER_AT(i, r) { .kind = NESTED_TRACE_VMENTER, .info = (i), \
                         .has_rip = true, .rip = (r) }
#define EXIT_AT(i, e, r) { .kind = NESTED_TRACE_VMEXIT, .info = (i), \
                           .error_code = (e), .has_rip = true, .rip = (r) }
#define VEXIT_AT(idt, r) { .kind = NESTED_TRACE_VMEXIT, .info2 = (idt), \
                           .has_rip = true, .rip = (r) }

typedef struct JudgeCase {
    const char *path;
    NestedVendor vendor;
    NestedTraceRecord recs[4];  /* newest first */
    size_t n;
    bool complete;
    NestedWindowVerdict verdict;
    const char *why;
} JudgeCase;

static const JudgeCase judge_cases[] = {
    /* Delivery of L1's NMI cut short twice by L0-handled exits. */
    { "/window/judge/svm/l1-nmi", NESTED_VENDOR_SVM,
      { EXIT(V | T_NMI | 2, 0), EXIT(V | T_NMI | 2, 0),
        ENTER(V | T_NMI | 2) }, 3, false, NESTED_WINDOW_L1_EVENT, NULL },
    /* L1 re-injected an NMI from KVM's EXITINTINFO, with vector 0. */
    { "/window/judge/svm/l1-nmi-vector-0", NESTED_VENDOR_SVM,
      { EXIT(V | T_NMI | 2, 0), ENTER(V | T_NMI | 0) }, 2, false,
      NESTED_WINDOW_L1_EVENT, NULL },
    { "/window/judge/svm/l1-gp-error-code", NESTED_VENDOR_SVM,
      { EXIT(V | EV | T_EXC | 13, 0x18), ENTER(V | EV | T_EXC | 13) }, 2,
      false, NESTED_WINDOW_L1_EVENT, NULL },
    { "/window/judge/svm/l1-soft-int", NESTED_VENDOR_SVM,
      { EXIT(V | T_SOFT | 0x80, 0), ENTER(V | T_SOFT | 0x80) }, 2, true,
      NESTED_WINDOW_L1_EVENT, NULL },
    /* L2's own INT n: L1's VMRUN injected nothing. */
    { "/window/judge/svm/l2-own-soft-int", NESTED_VENDOR_SVM,
      { EXIT(V | T_SOFT | 0x80, 0), ENTER(0) }, 2, true,
      NESTED_WINDOW_CLEAR, NULL },
    /* An earlier exit carried another error code: not the same event. */
    { "/window/judge/svm/changed-error-code", NESTED_VENDOR_SVM,
      { EXIT(V | EV | T_EXC | 13, 0x18), EXIT(V | EV | T_EXC | 13, 0x10),
        ENTER(V | EV | T_EXC | 13) }, 3, false, NESTED_WINDOW_CLEAR, NULL },
    /* Delivered at the previous entry; this exit's event is new. */
    { "/window/judge/svm/delivered-before", NESTED_VENDOR_SVM,
      { EXIT(V | T_INTR | 0x30, 0), EXIT(0, 0), ENTER(V | T_INTR | 0x30) },
      3, false, NESTED_WINDOW_CLEAR, NULL },
    { "/window/judge/svm/last-exit-empty", NESTED_VENDOR_SVM,
      { EXIT(0, 0), ENTER(V | T_NMI | 2) }, 2, false, NESTED_WINDOW_CLEAR,
      NULL },
    { "/window/judge/svm/reflected", NESTED_VENDOR_SVM,
      { INJECT, EXIT(V | T_NMI | 2, 0) }, 2, false, NESTED_WINDOW_CLEAR,
      NULL },
    /* Stopped between L1's VMRUN and the entry: the nested state has it. */
    { "/window/judge/svm/run-pending", NESTED_VENDOR_SVM,
      { ENTER(V | T_NMI | 2) }, 1, false, NESTED_WINDOW_CLEAR, NULL },
    { "/window/judge/svm/ring-overwrote-start", NESTED_VENDOR_SVM,
      { EXIT(V | T_NMI | 2, 0), EXIT(V | T_NMI | 2, 0) }, 2, false,
      NESTED_WINDOW_UNKNOWN,
      "the trace ring overwrote the entry that started the event's "
      "delivery" },
    { "/window/judge/svm/before-observation", NESTED_VENDOR_SVM,
      { EXIT(V | T_NMI | 2, 0) }, 1, true, NESTED_WINDOW_UNKNOWN,
      "the event was in flight before observation began" },
    { "/window/judge/svm/broken-chain", NESTED_VENDOR_SVM,
      { EXIT(V | T_NMI | 2, 0), INJECT }, 2, false, NESTED_WINDOW_UNKNOWN,
      "an exit to L1 without a later entry precedes an exit from L2" },
    { "/window/judge/svm/empty", NESTED_VENDOR_SVM, { { 0 } }, 0, true,
      NESTED_WINDOW_UNKNOWN,
      "no nested entry or exit since observation began" },
    /*
     * VMX: the IDT-vectoring information (info2) is the event; the
     * exit's own interruption information and error code are not.
     * An EPT violation (no exit information) cut L1's #PF short twice.
     */
    { "/window/judge/vmx/l1-pf", NESTED_VENDOR_VMX,
      { VEXIT(V | EV | T_EXC | 14, 0, 0),
        VEXIT(V | EV | T_EXC | 14, 0, 0), ENTER(V | EV | T_EXC | 14) }, 3,
      false, NESTED_WINDOW_L1_EVENT, NULL },
    /* An NMI exit while L1's INT3 (type 6) was being vectored */
    { "/window/judge/vmx/l1-int3-nmi-exit", NESTED_VENDOR_VMX,
      { VEXIT(V | T_SOFT_EXC | 3, V | T_NMI | 2, 0),
        ENTER(V | T_SOFT_EXC | 3) }, 2, true, NESTED_WINDOW_L1_EVENT, NULL },
    /* A #GP exit with an error code: nothing was being vectored. */
    { "/window/judge/vmx/exit-info-is-not-vectoring", NESTED_VENDOR_VMX,
      { VEXIT(0, V | EV | T_EXC | 13, 0x18),
        ENTER(V | EV | T_EXC | 13) }, 2, true, NESTED_WINDOW_CLEAR, NULL },
    /* L2's own INT n (type 4), L1 injected a type-6 INT3 */
    { "/window/judge/vmx/l2-own-soft-int", NESTED_VENDOR_VMX,
      { VEXIT(V | T_SOFT | 3, 0, 0), ENTER(V | T_SOFT_EXC | 3) }, 2, true,
      NESTED_WINDOW_CLEAR, NULL },
    /*
     * L1's #BP as a hardware exception (type 3), cut short twice: KVM
     * re-queued it and re-injected it as a software exception (type 6),
     * which the second exit reports (vmx_inject_exception()).
     */
    { "/window/judge/vmx/l1-bp-type-3-retyped", NESTED_VENDOR_VMX,
      { VEXIT(V | T_SOFT_EXC | 3, 0, 0), VEXIT(V | T_EXC | 3, 0, 0),
        ENTER(V | T_EXC | 3) }, 3, true, NESTED_WINDOW_L1_EVENT, NULL },
    { "/window/judge/vmx/l1-into-type-3-retyped", NESTED_VENDOR_VMX,
      { VEXIT(V | T_SOFT_EXC | 4, 0, 0), ENTER(V | T_EXC | 4) }, 2, true,
      NESTED_WINDOW_L1_EVENT, NULL },
    /* INT 3 as the two-byte INT n (type 4) is another event. */
    { "/window/judge/vmx/l2-int-n-3-after-l1-bp", NESTED_VENDOR_VMX,
      { VEXIT(V | T_SOFT | 3, 0, 0), ENTER(V | T_EXC | 3) }, 2, true,
      NESTED_WINDOW_CLEAR, NULL },
    { "/window/judge/vmx/before-observation", NESTED_VENDOR_VMX,
      { VEXIT(V | T_NMI | 2, 0, 0) }, 1, true, NESTED_WINDOW_UNKNOWN,
      "the event was in flight before observation began" },
    /* L2's RIP at every link, as while L1's INT n is being delivered */
    { "/window/judge/vmx/l1-soft-int-same-rip", NESTED_VENDOR_VMX,
      { VEXIT_AT(V | T_SOFT | 0x80, 0x5000),
        VEXIT_AT(V | T_SOFT | 0x80, 0x5000),
        ENTER_AT(V | T_SOFT | 0x80, 0x5000) }, 3, true,
      NESTED_WINDOW_L1_EVENT, NULL },
    /*
     * L1's INT n was delivered and L2 ran on to an INT n of its own,
     * cut short: the same event, but L2 is elsewhere.
     */
    { "/window/judge/vmx/l2-look-alike-after-entry", NESTED_VENDOR_VMX,
      { VEXIT_AT(V | T_SOFT | 0x80, 0x6000),
        ENTER_AT(V | T_SOFT | 0x80, 0x5000) }, 2, true,
      NESTED_WINDOW_UNKNOWN,
      "L2's RIP is 0x6000 at the exit that cut the event short but 0x5000 "
      "at an earlier entry carrying it: L2 ran in between" },
    { "/window/judge/svm/l2-look-alike-after-exit", NESTED_VENDOR_SVM,
      { EXIT_AT(V | T_SOFT | 0x80, 0, 0x6000),
        EXIT_AT(V | T_SOFT | 0x80, 0, 0x5000),
        ENTER_AT(V | T_SOFT | 0x80, 0x5000) }, 3, true,
      NESTED_WINDOW_UNKNOWN,
      "L2's RIP is 0x6000 at the exit that cut the event short but 0x5000 "
      "at an earlier exit carrying it: L2 ran in between" },
    /* A format without the RIP fields judges as before. */
    { "/window/judge/svm/rip-unknown", NESTED_VENDOR_SVM,
      { EXIT(V | T_SOFT | 0x80, 0), ENTER_AT(V | T_SOFT | 0x80, 0x5000) },
      2, true, NESTED_WINDOW_L1_EVENT, NULL },
};

static void test_judge(gconstpointer opaque)
{
    const JudgeCase *c = opaque;
    NestedWindow w;

    nested_window_judge(c->vendor, c->recs, c->n, c->complete, &w);
    g_assert_cmpint(w.verdict, ==, c->verdict);
    if (c->why) {
        g_assert_cmpstr(w.why, ==, c->why);
    }
    if (c->verdict != NESTED_WINDOW_L1_EVENT) {
        return;
    }
    if (c->vendor == NESTED_VENDOR_VMX) {
        g_assert_cmphex(w.event_info, ==, c->recs[0].info2);
        g_assert_cmphex(w.event_err, ==, 0);
    } else {
        g_assert_cmphex(w.event_info, ==, c->recs[0].info);
        g_assert_cmphex(w.event_err, ==, c->recs[0].error_code);
    }
}

/*
 * Only VMRUNs and exits from L2 go into the ring; a reflected exit is
 * counted (perf_event_open(2): sample_period 0 is a counting event),
 * so it costs no sample during a migration.  All start disabled
 * (perf_event_open(2), "disabled"): a sampling event counts from its
 * opening, before its ring exists to take the samples.
 */
static void test_perf_attr(void)
{
    struct perf_event_attr attr;

    for (int k = 0; k < NESTED_TRACE__MAX; k++) {
        bool sampled = k != NESTED_TRACE_VMEXIT_INJECT;

        nested_tracefs_perf_attr(&attr, k, 1500 + k);
        g_assert_cmpuint(attr.type, ==, PERF_TYPE_TRACEPOINT);
        g_assert_cmpuint(attr.config, ==, 1500 + k);
        g_assert_cmpuint(attr.sample_period, ==, sampled ? 1 : 0);
        g_assert_cmpuint(attr.sample_type, ==, sampled ? PERF_SAMPLE_RAW : 0);
        g_assert_cmpuint(attr.write_backward, ==, sampled);
        /* enabled only once its ring exists (nested_observer_new()) */
        g_assert_cmpuint(attr.disabled, ==, 1);
    }
}

/* The nested state of an SVM vCPU in guest mode: vmcb12 NextRIP. */
static NestedStateView svm_view(uint64_t next_rip)
{
    return (NestedStateView) {
        .format = KVM_STATE_NESTED_FORMAT_SVM, .has_vmcs = true,
        .flags = KVM_STATE_NESTED_GUEST_MODE, .svm_next_rip = next_rip,
    };
}

/*
 * The nested state of a VMX vCPU in guest mode: vmcs12's VM-entry
 * fields as L1 wrote them, untouched until an exit to L1 (SDM vol. 3C
 * 24.8.3; KVM clears the valid bit in prepare_vmcs12()).
 */
static NestedStateView vmx_view(uint32_t info, uint32_t err, uint32_t len)
{
    return (NestedStateView) {
        .format = KVM_STATE_NESTED_FORMAT_VMX, .has_vmcs = true,
        .flags = KVM_STATE_NESTED_GUEST_MODE, .vmx_entry_intr_info = info,
        .vmx_entry_exception_error_code = err,
        .vmx_entry_instruction_len = len,
    };
}

/*
 * A stop in L1 just after an exit reflected with EXITINTINFO: the ring
 * (no reflected exit in it) ends with that exit and the VMRUN, which
 * reads as L1's event in flight, but outside guest mode (APM vol. 2,
 * 15.7.2: L1 now owns EXITINTINFO) the model is left as KVM reported it.
 */
static void test_apply_outside_guest_mode(void)
{
    const NestedTraceRecord recs[] = {
        EXIT(V | T_NMI | 2, 0), ENTER(V | T_NMI | 2),
    };
    NestedStateView ns = svm_view(0);
    NestedEventState st, before;
    NestedWindow w;

    nested_window_judge(NESTED_VENDOR_SVM, recs, G_N_ELEMENTS(recs), true,
                        &w);
    g_assert_cmpint(w.verdict, ==, NESTED_WINDOW_L1_EVENT);
    nested_event_state_init(&st, NESTED_VENDOR_SVM);
    before = st;
    g_assert_true(nested_window_apply(&st, &w, 0x1000, 0, &ns, NULL));
    g_assert_cmpmem(&st, sizeof(st), &before, sizeof(before));
}

static void guest_state(NestedEventState *st, NestedVendor vendor)
{
    nested_event_state_init(st, vendor);
    st->guest_mode = true;
}

static NestedWindow l1_event(uint32_t info, uint32_t err)
{
    return (NestedWindow) {
        .verdict = NESTED_WINDOW_L1_EVENT,
        .event_info = info, .event_err = err,
    };
}

/* L2's injected event is L1's soft event with these RIPs, and valid. */
static void assert_l1_soft(const NestedEventState *st, uint8_t type,
                           uint8_t vector, uint8_t insn_len,
                           uint64_t old_rip, uint64_t next_rip,
                           uint64_t cs_base)
{
    const NestedEvent *ev = &st->l2.injected;

    g_assert_true(ev->valid);
    g_assert_cmpuint(ev->type, ==, type);
    g_assert_cmpuint(ev->vector, ==, vector);
    g_assert_cmpuint(ev->origin, ==, NESTED_ORIGIN_L1);
    g_assert_cmpuint(ev->insn_len, ==, insn_len);
    g_assert_cmphex(ev->old_rip, ==, old_rip);
    g_assert_cmphex(ev->next_rip, ==, next_rip);
    g_assert_cmphex(ev->cs_base, ==, cs_base);
    g_assert_true(nested_event_validate(st, NULL));
}

/* KVM_GET_VCPU_EVENTS reported nmi.injected; the window names L1. */
static void test_apply_nmi(void)
{
    NestedEventState st;
    NestedWindow w = l1_event(V | T_NMI | 2, 0);
    NestedStateView ns = svm_view(0);

    guest_state(&st, NESTED_VENDOR_SVM);
    st.l2.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_NMI, .vector = 2,
        .origin = NESTED_ORIGIN_L0,
    };
    g_assert_true(nested_window_apply(&st, &w, 0x1000, 0, &ns, NULL));
    g_assert_cmpuint(st.l2.injected.origin, ==, NESTED_ORIGIN_L1);
    g_assert_true(nested_event_validate(&st, NULL));
}

/*
 * A re-queued INT n is absent from kvm_vcpu_events; the window brings
 * it back with vmcb12 NextRIP as return address, here far from RIP.
 */
static void test_apply_soft_int(void)
{
    NestedEventState st;
    NestedWindow w = l1_event(V | T_SOFT | 0x80, 0);
    NestedStateView ns = svm_view(0x7ff0);

    guest_state(&st, NESTED_VENDOR_SVM);
    g_assert_true(nested_window_apply(&st, &w, 0x5000, 0x10000, &ns, NULL));
    assert_l1_soft(&st, NESTED_EVENT_SOFT_INTR, 0x80, 0, 0x5000, 0x7ff0,
                   0x10000);
}

/* INT3 injected as TYPE 3 vector 3 is a soft exception (APM 15.20). */
static void test_apply_int3(void)
{
    NestedEventState st;
    NestedWindow w = l1_event(V | T_EXC | 3, 0);
    NestedStateView ns = svm_view(0x5001);

    guest_state(&st, NESTED_VENDOR_SVM);
    g_assert_true(nested_window_apply(&st, &w, 0x5000, 0, &ns, NULL));
    assert_l1_soft(&st, NESTED_EVENT_SOFT_EXCEPTION, 3, 1, 0x5000, 0x5001, 0);
}

static void test_apply_errors(void)
{
    NestedEventState st;
    NestedWindow w = l1_event(V | T_NMI | 2, 0);
    NestedWindow unk = { .verdict = NESTED_WINDOW_UNKNOWN, .why = "why" };
    NestedStateView ns = svm_view(0), none = { 0 };
    g_autoptr(GError) err = NULL;

    guest_state(&st, NESTED_VENDOR_SVM);
    st.l2.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_EXT_INTR, .vector = 0x30,
    };
    g_assert_false(nested_window_apply(&st, &w, 0, 0, &ns, &err));
    g_assert_cmpstr(err->message, ==,
                    "l2.injected.type=ext-intr: KVM reports vector 48 while "
                    "its tracepoints show L1's nmi vector 2 in flight");
    g_clear_error(&err);

    g_assert_false(nested_window_apply(&st, &unk, 0, 0, &ns, &err));
    g_assert_cmpstr(err->message, ==,
                    "guest_mode=1: cannot tell whether L1's event is in "
                    "flight: why");
    g_clear_error(&err);

    /* Guest mode without a vmcb12 has nowhere to put L1's event. */
    g_assert_false(nested_window_apply(&st, &w, 0, 0, &none, &err));
    g_assert_cmpstr(err->message, ==,
                    "guest_mode=1: the nested state has no vmcb12/vmcs12 "
                    "for L1's event in flight");
    g_clear_error(&err);

    /* Outside guest mode nothing of L1's can be in flight. */
    st.guest_mode = false;
    g_assert_true(nested_window_apply(&st, &unk, 0, 0, &ns, NULL));
}

/*
 * VMX: L1's INT n (type 4) with a VM-entry instruction length of 7,
 * which is not the 2 bytes of CD ib: the return address is RIP + the
 * length L1 chose (SDM vol. 3C 26.6.1.3).  KVM_GET_VCPU_EVENTS hides the
 * re-queued software interrupt, so it comes from the window alone.
 */
static void test_apply_vmx_soft_int(void)
{
    NestedEventState st;
    NestedWindow w = l1_event(V | T_SOFT | 0x80, 0);
    NestedStateView ns = vmx_view(V | T_SOFT | 0x80, 0, 7);

    guest_state(&st, NESTED_VENDOR_VMX);
    g_assert_true(nested_window_apply(&st, &w, 0x5000, 0x10000, &ns, NULL));
    assert_l1_soft(&st, NESTED_EVENT_SOFT_INTR, 0x80, 7, 0x5000, 0x5007,
                   0x10000);
}

/* VMX type 6: INT3 with a 3-byte length, also hidden by KVM */
static void test_apply_vmx_int3(void)
{
    NestedEventState st;
    NestedWindow w = l1_event(V | T_SOFT_EXC | 3, 0);
    NestedStateView ns = vmx_view(V | T_SOFT_EXC | 3, 0, 3);

    guest_state(&st, NESTED_VENDOR_VMX);
    g_assert_true(nested_window_apply(&st, &w, 0x5000, 0, &ns, NULL));
    assert_l1_soft(&st, NESTED_EVENT_SOFT_EXCEPTION, 3, 3, 0x5000, 0x5003, 0);
}

/*
 * VMX #PF: KVM reports the re-queued exception with the IDT-vectoring
 * error code; the tracepoint has none, vmcs12 has L1's.  They agree for
 * L1's event, and the window only adds its origin.
 */
static void test_apply_vmx_pf(void)
{
    NestedEventState st;
    NestedWindow w = l1_event(V | EV | T_EXC | 14, 0);
    NestedStateView ns = vmx_view(V | EV | T_EXC | 14, 6, 0);
    g_autoptr(GError) err = NULL;

    guest_state(&st, NESTED_VENDOR_VMX);
    st.l2.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_HW_EXCEPTION, .vector = 14,
        .has_error_code = true, .error_code = 6,
    };
    g_assert_true(nested_window_apply(&st, &w, 0x5000, 0, &ns, NULL));
    g_assert_cmpuint(st.l2.injected.origin, ==, NESTED_ORIGIN_L1);
    g_assert_true(nested_event_validate(&st, NULL));

    /* Another error code in KVM's queue: not L1's #PF. */
    st.l2.injected.origin = NESTED_ORIGIN_L0;
    st.l2.injected.error_code = 4;
    g_assert_false(nested_window_apply(&st, &w, 0x5000, 0, &ns, &err));
    g_assert_cmpstr(err->message, ==,
                    "l2.injected.type=hw-exception: KVM reports vector 14 "
                    "(error code 0x4) while its tracepoints show L1's "
                    "hw-exception vector 14 (error code 0x6) in flight");
}

static void test_apply_vmx_errors(void)
{
    NestedEventState st;
    NestedWindow w = l1_event(V | T_SOFT | 0x80, 0);
    NestedStateView gone = vmx_view(T_SOFT | 0x80, 0, 7);
    NestedStateView other = vmx_view(V | T_SOFT | 0x81, 0, 7);
    NestedStateView icebp = vmx_view(V | T_PRIV_SOFT_EXC | 1, 0, 1);
    NestedStateView too_long = vmx_view(V | T_SOFT | 0x80, 0, 16);
    NestedWindow w_icebp = l1_event(V | T_PRIV_SOFT_EXC | 1, 0);
    NestedWindow w_pf = l1_event(V | EV | T_EXC | 14, 0);
    NestedStateView pf = vmx_view(V | EV | T_EXC | 14, 6, 0);
    g_autoptr(GError) err = NULL;

    guest_state(&st, NESTED_VENDOR_VMX);
    /* The length is vmcs12's, and the refusal says so. */
    g_assert_false(nested_window_apply(&st, &w, 0x5000, 0, &too_long, &err));
    g_assert_cmpstr(err->message, ==,
                    "vmx.vm_entry_intr_info.instruction_len=16: longer "
                    "than 15 bytes");
    g_clear_error(&err);
    /* L1's #PF in flight, but KVM_GET_VCPU_EVENTS holds nothing. */
    g_assert_false(nested_window_apply(&st, &w_pf, 0x5000, 0, &pf, &err));
    g_assert_cmpstr(err->message, ==,
                    "l2.injected.type=none: KVM reports no event while its "
                    "tracepoints show L1's hw-exception vector 14 (error "
                    "code 0x6) in flight");
    g_clear_error(&err);
    /* vmcs12 no longer holds the event: its length cannot be known. */
    g_assert_false(nested_window_apply(&st, &w, 0x5000, 0, &gone, &err));
    g_assert_cmpstr(err->message, ==,
                    "vmcs12.vm_entry_intr_info_field=0x480: not L1's event "
                    "in flight (IDT-vectoring information 0x80000480)");
    g_clear_error(&err);
    g_assert_false(nested_window_apply(&st, &w, 0x5000, 0, &other, &err));
    g_assert_cmpstr(err->message, ==,
                    "vmcs12.vm_entry_intr_info_field=0x80000481: not L1's "
                    "event in flight (IDT-vectoring information "
                    "0x80000480)");
    g_clear_error(&err);
    g_assert_false(st.l2.injected.valid);

    /*
     * ICEBP (type 5): __vmx_complete_interrupts() does not re-queue it,
     * so the source itself drops it and there is nothing to carry.
     */
    g_assert_false(nested_window_apply(&st, &w_icebp, 0x5000, 0, &icebp,
                                       &err));
    g_assert_cmpstr(err->message, ==,
                    "l2.injected.type=priv-soft-exception: KVM does not "
                    "re-queue it after an exit during its delivery");
    g_assert_false(st.l2.injected.valid);
}

/*
 * End to end: the applied model plans a restore through vmcb12
 * EVENTINJ, so that KVM derives nmi_l1_to_l2 again, and leaves
 * kvm_vcpu_events.nmi.injected clear.
 */
static void test_apply_then_plan(void)
{
    NestedRestoreCaps caps = {
        .vendor = NESTED_VENDOR_SVM, .vcpu_events = true,
        .exception_payload = true, .nested_state = true, .nrips = true,
    };
    NestedWindow w = l1_event(V | T_NMI | 2, 0);
    NestedStateView ns = svm_view(0);
    NestedRestorePlan plan;
    NestedEventState st;
    bool found = false;

    guest_state(&st, NESTED_VENDOR_SVM);
    st.l2.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_NMI, .vector = 2,
    };
    g_assert_true(nested_window_apply(&st, &w, 0x1000, 0, &ns, NULL));
    g_assert_true(nested_event_plan_restore(&st, &caps, &plan, NULL));
    g_assert_cmpuint(plan.events.nmi.injected, ==, 0);
    for (int i = 0; i < plan.n_state_edits; i++) {
        const NestedStateEdit *e = &plan.state_edits[i];

        if (e->offset == NESTED_STATE_HDR_SIZE + NESTED_VMCB_EVENT_INJ) {
            g_assert_cmphex(e->value, ==, V | T_NMI | 2);
            found = true;
        }
    }
    g_assert_true(found);
}

static uint64_t edit_value(const NestedRestorePlan *plan, uint32_t offset,
                           uint64_t mask)
{
    for (int i = 0; i < plan->n_state_edits; i++) {
        const NestedStateEdit *e = &plan->state_edits[i];

        if (e->offset == offset && e->mask == mask) {
            return e->value;
        }
    }
    g_assert_not_reached();
}

/*
 * VMX end to end: L1's INT n goes back into vmcs12's VM-entry fields
 * with its length and RUN_PENDING, which prepare_vmcs02_early() needs
 * to inject from vmcs12 at all; RIP holds the INT's old RIP.
 */
/*
 * VMX: L1's #BP injected as a hardware exception (type 3), seen at the
 * first cut as type 3 and from the second on as type 6.  KVM hides it
 * from KVM_GET_VCPU_EVENTS as it hides INT3; the window adds it as
 * vmcs12 holds it, and the destination's entry injects type 3 again.
 */
static void test_apply_vmx_bp_type_3(void)
{
    static const uint32_t seen_as[] = { V | T_EXC | 3, V | T_SOFT_EXC | 3 };
    NestedRestoreCaps caps = {
        .vendor = NESTED_VENDOR_VMX, .vcpu_events = true,
        .exception_payload = true, .nested_state = true,
    };

    for (size_t i = 0; i < G_N_ELEMENTS(seen_as); i++) {
        NestedWindow w = l1_event(seen_as[i], 0);
        NestedStateView ns = vmx_view(V | T_EXC | 3, 0, 0);
        NestedRestorePlan plan;
        NestedEventState st;

        guest_state(&st, NESTED_VENDOR_VMX);
        g_assert_true(nested_window_apply(&st, &w, 0x5000, 0, &ns, NULL));
        g_assert_true(st.l2.injected.valid);
        g_assert_cmpuint(st.l2.injected.type, ==, NESTED_EVENT_HW_EXCEPTION);
        g_assert_cmpuint(st.l2.injected.vector, ==, 3);
        g_assert_cmpuint(st.l2.injected.origin, ==, NESTED_ORIGIN_L1);
        g_assert_true(nested_event_plan_restore(&st, &caps, &plan, NULL));
        g_assert_cmphex(edit_value(&plan, NESTED_STATE_HDR_SIZE +
                                   NESTED_VMCS12_ENTRY_INTR_INFO, UINT32_MAX),
                        ==, V | T_EXC | 3);
        g_assert_cmphex(edit_value(&plan, 0, KVM_STATE_NESTED_RUN_PENDING),
                        ==, KVM_STATE_NESTED_RUN_PENDING);
        g_assert_cmpuint(plan.events.exception.injected, ==, 0);
        g_assert_cmpuint(plan.n_reg_edits, ==, 0);
    }
}

static void test_apply_then_plan_vmx(void)
{
    NestedRestoreCaps caps = {
        .vendor = NESTED_VENDOR_VMX, .vcpu_events = true,
        .exception_payload = true, .nested_state = true,
    };
    NestedWindow w = l1_event(V | T_SOFT | 0x80, 0);
    NestedStateView ns = vmx_view(V | T_SOFT | 0x80, 0, 7);
    NestedRestorePlan plan;
    NestedEventState st;

    guest_state(&st, NESTED_VENDOR_VMX);
    g_assert_true(nested_window_apply(&st, &w, 0x5000, 0, &ns, NULL));
    g_assert_true(nested_event_plan_restore(&st, &caps, &plan, NULL));
    g_assert_cmphex(edit_value(&plan, NESTED_STATE_HDR_SIZE +
                               NESTED_VMCS12_ENTRY_INTR_INFO, UINT32_MAX),
                    ==, V | T_SOFT | 0x80);
    g_assert_cmpuint(edit_value(&plan, NESTED_STATE_HDR_SIZE +
                                NESTED_VMCS12_ENTRY_INSTRUCTION_LEN,
                                UINT32_MAX), ==, 7);
    g_assert_cmphex(edit_value(&plan, 0, KVM_STATE_NESTED_RUN_PENDING), ==,
                    KVM_STATE_NESTED_RUN_PENDING);
    g_assert_cmpuint(plan.events.interrupt.injected, ==, 0);
    g_assert_cmpuint(plan.n_reg_edits, ==, 2);
    g_assert_cmpuint(plan.reg_edits[0].reg, ==, NESTED_REG_RIP);
    g_assert_cmphex(plan.reg_edits[0].value, ==, 0x5000);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/window/parse", test_parse);
    g_test_add_func("/window/parse-errors", test_parse_errors);
    g_test_add_func("/window/decode", test_decode);
    g_test_add_func("/window/parse-without-rip", test_parse_without_rip);
    g_test_add_func("/window/perf-attr", test_perf_attr);
    for (size_t i = 0; i < G_N_ELEMENTS(judge_cases); i++) {
        g_test_add_data_func(judge_cases[i].path, &judge_cases[i],
                             test_judge);
    }
    g_test_add_func("/window/apply/nmi", test_apply_nmi);
    g_test_add_func("/window/apply/soft-int", test_apply_soft_int);
    g_test_add_func("/window/apply/int3", test_apply_int3);
    g_test_add_func("/window/apply/errors", test_apply_errors);
    g_test_add_func("/window/apply/outside-guest-mode",
                    test_apply_outside_guest_mode);
    g_test_add_func("/window/apply/then-plan", test_apply_then_plan);
    g_test_add_func("/window/apply/vmx/soft-int", test_apply_vmx_soft_int);
    g_test_add_func("/window/apply/vmx/int3", test_apply_vmx_int3);
    g_test_add_func("/window/apply/vmx/pf", test_apply_vmx_pf);
    g_test_add_func("/window/apply/vmx/errors", test_apply_vmx_errors);
    g_test_add_func("/window/apply/vmx/then-plan", test_apply_then_plan_vmx);
    g_test_add_func("/window/apply/vmx/bp-type-3", test_apply_vmx_bp_type_3);
    return g_test_run();
}
