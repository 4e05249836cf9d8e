/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Restore planning: a table of (model, destination caps) -> the exact
 * plan or the refusal, plus end-to-end checks that applying a plan to a
 * kvm_nested_state blob brings the L1-origin event back.
 */

#include <string.h>

#include "nested-codec.h"
#include "nested-import.h"
#include "nested-restore.h"
#include "nested-state.h"

#define HDR NESTED_STATE_HDR_SIZE
#define F_EVENT_INJ (HDR + 0xa8)
#define F_EVENT_INJ_ERR (HDR + 0xac)
#define F_NEXT_RIP (HDR + 0xc8)
#define F_ENTRY_INFO (HDR + 788)
#define F_ENTRY_ERR (HDR + 792)
#define F_ENTRY_LEN (HDR + 796)
#define M32 0xffffffffull
#define M64 UINT64_MAX
#define GIF KVM_STATE_NESTED_GIF_SET
#define RUNP KVM_STATE_NESTED_RUN_PENDING

/* Flags every plan with vcpu events states. */
#define BASE_FLAGS \
    (KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW)

typedef struct Edit {
    uint32_t offset;
    uint8_t width;
    uint64_t mask;
    uint64_t value;
} Edit;

typedef struct Reg {
    uint8_t reg;
    bool expect_only;
    uint64_t value;
} Reg;

typedef struct PlanCase {
    const char *path;
    void (*build)(NestedEventState *st);
    NestedRestoreCaps caps;
    const char *refusal;        /* exact message; NULL = plan expected */
    int code;
    struct kvm_vcpu_events events;
    Edit edits[NESTED_PLAN_MAX_STATE_EDITS];
    unsigned n_edits;
    Reg regs[NESTED_PLAN_MAX_REG_EDITS];
    unsigned n_regs;
} PlanCase;

#define CAPS_SVM_FULL { \
    .vendor = NESTED_VENDOR_SVM, .vcpu_events = true, \
    .exception_payload = true, .nested_state = true, \
    .triple_fault_event = true, .smm = true, .nrips = true, \
}
#define CAPS_SVM_NO_NRIPS { \
    .vendor = NESTED_VENDOR_SVM, .vcpu_events = true, \
    .exception_payload = true, .nested_state = true, \
    .triple_fault_event = true, .smm = true, .nrips = false, \
}
#define CAPS_SVM_NO_NESTED { \
    .vendor = NESTED_VENDOR_SVM, .vcpu_events = true, \
    .exception_payload = true, .smm = true, .nrips = true, \
}
#define CAPS_VMX_FULL { \
    .vendor = NESTED_VENDOR_VMX, .vcpu_events = true, \
    .exception_payload = true, .nested_state = true, \
    .triple_fault_event = true, .smm = true, \
}
#define CAPS_OLD_KVM { \
    .vendor = NESTED_VENDOR_SVM, .vcpu_events = true, .nested_state = true, \
    .nrips = true, \
}

#define FULL_FLAGS (BASE_FLAGS | KVM_VCPUEVENT_VALID_PAYLOAD | \
                    KVM_VCPUEVENT_VALID_SMM | KVM_VCPUEVENT_VALID_TRIPLE_FAULT)

/* ------------------------------------------------------------------ */
/* Models                                                             */
/* ------------------------------------------------------------------ */

static void svm_guest(NestedEventState *st)
{
    nested_event_state_init(st, NESTED_VENDOR_SVM);
    st->guest_mode = true;
}

static void vmx_guest(NestedEventState *st)
{
    nested_event_state_init(st, NESTED_VENDOR_VMX);
    st->guest_mode = true;
}

static void l1_soft_intr(NestedEvent *ev, uint64_t old, uint8_t len)
{
    *ev = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_SOFT_INTR, .vector = 0x80,
        .origin = NESTED_ORIGIN_L1, .insn_len = len, .old_rip = old,
        .next_rip = old + len, .cs_base = 0x10000,
    };
}

/* The lab's failing case: L1's NMI into L2, mid-delivery. */
static void b_svm_l1_nmi(NestedEventState *st)
{
    svm_guest(st);
    st->l2.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_NMI, .vector = 2,
        .origin = NESTED_ORIGIN_L1,
    };
}

static void b_svm_l1_gp(NestedEventState *st)
{
    svm_guest(st);
    st->l2.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_HW_EXCEPTION, .vector = 13,
        .origin = NESTED_ORIGIN_L1, .has_error_code = true,
        .error_code = 0x1b,
    };
    st->l2.nmi_pending = 1;
}

static void b_svm_l1_soft(NestedEventState *st)
{
    svm_guest(st);
    l1_soft_intr(&st->l2.injected, 0x401000, 2);
}

static void b_svm_l1_soft_zero_len(NestedEventState *st)
{
    svm_guest(st);
    l1_soft_intr(&st->l2.injected, 0x401002, 0);
}

static void b_svm_l1_int3(NestedEventState *st)
{
    svm_guest(st);
    l1_soft_intr(&st->l2.injected, 0x8000, 1);
    st->l2.injected.type = NESTED_EVENT_SOFT_EXCEPTION;
    st->l2.injected.vector = 3;
}

static void b_svm_l1_icebp(NestedEventState *st)
{
    b_svm_l1_int3(st);
    st->l2.injected.type = NESTED_EVENT_PRIV_SOFT_EXCEPTION;
    st->l2.injected.vector = 1;
}

static void b_vmx_l1_soft(NestedEventState *st)
{
    vmx_guest(st);
    l1_soft_intr(&st->l2.injected, 0x7000, 2);
}

static void b_vmx_l1_soft_eip_wrap(NestedEventState *st)
{
    vmx_guest(st);
    l1_soft_intr(&st->l2.injected, 0xffffffffu, 2);
    st->l2.injected.next_rip = 1;
}

static void b_vmx_l1_mtf(NestedEventState *st)
{
    vmx_guest(st);
    st->nested_run_pending = true;
    st->l2.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_OTHER, .vector = 0,
        .origin = NESTED_ORIGIN_L1,
    };
}

static void b_vmx_guest_l0_intr(NestedEventState *st)
{
    vmx_guest(st);
    st->l2.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_EXT_INTR, .vector = 0xec,
    };
    st->l2.interrupt_shadow = KVM_X86_SHADOW_INT_STI;
}

static void b_l1_nmi_injected(NestedEventState *st)
{
    nested_event_state_init(st, NESTED_VENDOR_SVM);
    st->l1.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_NMI, .vector = 2,
    };
    st->l1.nmi_pending = 1;
    st->l1.nmi_masked = true;
}

static void b_l1_l0_soft(NestedEventState *st)
{
    nested_event_state_init(st, NESTED_VENDOR_VMX);
    st->l1.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_SOFT_INTR, .vector = 0x21,
        .insn_len = 2, .old_rip = 0x9000, .next_rip = 0x9002,
    };
}

static void b_l1_pending_pf(NestedEventState *st)
{
    nested_event_state_init(st, NESTED_VENDOR_SVM);
    st->l1.exception = (NestedPendingException) {
        .pending = true, .vector = 14, .has_error_code = true,
        .error_code = 2, .has_payload = true, .payload = 0xcafe000,
    };
}

static void b_l1_pending_gp(NestedEventState *st)
{
    nested_event_state_init(st, NESTED_VENDOR_SVM);
    st->l1.exception = (NestedPendingException) {
        .pending = true, .vector = 13, .has_error_code = true,
    };
}

static void b_l2_pending_gp(NestedEventState *st)
{
    svm_guest(st);
    st->l2.exception = (NestedPendingException) {
        .pending = true, .vector = 13, .has_error_code = true,
    };
}

static void b_triple(NestedEventState *st)
{
    nested_event_state_init(st, NESTED_VENDOR_SVM);
    st->triple_fault_pending = true;
}

static void b_smm(NestedEventState *st)
{
    nested_event_state_init(st, NESTED_VENDOR_SVM);
    st->smi.smm = true;
    st->smi.smm_inside_nmi = true;
}

static void b_svm_gif0(NestedEventState *st)
{
    nested_event_state_init(st, NESTED_VENDOR_SVM);
    st->gif = false;
    st->l1.nmi_pending = 1;
}

static void b_invalid(NestedEventState *st)
{
    b_svm_l1_nmi(st);
    st->l2.injected.vector = 5;
}

static void b_idle(NestedEventState *st)
{
    nested_event_state_init(st, NESTED_VENDOR_NONE);
}

/* Only KVM_SET_VCPU_EVENTS carries a pending NMI or SMI. */
static void b_nmi_pending(NestedEventState *st)
{
    nested_event_state_init(st, NESTED_VENDOR_NONE);
    st->l1.nmi_pending = 1;
}

static void b_smi_pending(NestedEventState *st)
{
    nested_event_state_init(st, NESTED_VENDOR_NONE);
    st->smi.pending = true;
}

/* ------------------------------------------------------------------ */
/* The table                                                          */
/* ------------------------------------------------------------------ */

static const PlanCase cases[] = {
    { "/restore/svm/l1-nmi/via-event-inj", b_svm_l1_nmi, CAPS_SVM_FULL,
      .events = { .flags = FULL_FLAGS },
      .edits = { { F_EVENT_INJ, 4, M32, 0x80000202 },
                 { F_EVENT_INJ_ERR, 4, M32, 0 },
                 { 0, 2, GIF, GIF }, { 0, 2, RUNP, RUNP } },
      .n_edits = 4 },
    { "/restore/svm/l1-nmi/no-nested-state-cap", b_svm_l1_nmi,
      CAPS_SVM_NO_NESTED,
      .refusal =
      "guest_mode=1: destination lacks KVM_CAP_NESTED_STATE",
      .code = NESTED_EVENT_ERROR_REFUSED },
    { "/restore/svm/l1-nmi/vendor-mismatch", b_svm_l1_nmi, CAPS_VMX_FULL,
      .refusal =
      "vendor=svm: destination is vmx",
      .code = NESTED_EVENT_ERROR_REFUSED },
    { "/restore/svm/l1-gp/error-code-and-pending-nmi", b_svm_l1_gp,
      CAPS_SVM_FULL,
      .events = { .flags = FULL_FLAGS, .nmi = { .pending = 1 } },
      .edits = { { F_EVENT_INJ, 4, M32, 0x80000b0d },
                 { F_EVENT_INJ_ERR, 4, M32, 0x1b },
                 { 0, 2, GIF, GIF }, { 0, 2, RUNP, RUNP } },
      .n_edits = 4 },
    { "/restore/svm/l1-soft/nrips", b_svm_l1_soft, CAPS_SVM_FULL,
      .events = { .flags = FULL_FLAGS },
      .edits = { { F_EVENT_INJ, 4, M32, 0x80000480 },
                 { F_EVENT_INJ_ERR, 4, M32, 0 },
                 { F_NEXT_RIP, 8, M64, 0x401002 },
                 { 0, 2, GIF, GIF }, { 0, 2, RUNP, RUNP } },
      .n_edits = 5,
      .regs = { { NESTED_REG_RIP, false, 0x401000 },
                { NESTED_REG_CS_BASE, true, 0x10000 } },
      .n_regs = 2 },
    { "/restore/svm/l1-soft/no-nrips", b_svm_l1_soft, CAPS_SVM_NO_NRIPS,
      .refusal =
      "l2.injected.next_rip=0x401002: destination has no NRIPS, so KVM "
      "would push RIP (old_rip=0x401000) as the return address",
      .code = NESTED_EVENT_ERROR_REFUSED },
    { "/restore/svm/l1-soft/no-nrips-zero-length", b_svm_l1_soft_zero_len,
      CAPS_SVM_NO_NRIPS,
      .events = { .flags = FULL_FLAGS },
      .edits = { { F_EVENT_INJ, 4, M32, 0x80000480 },
                 { F_EVENT_INJ_ERR, 4, M32, 0 },
                 { 0, 2, GIF, GIF }, { 0, 2, RUNP, RUNP } },
      .n_edits = 4,
      .regs = { { NESTED_REG_RIP, false, 0x401002 },
                { NESTED_REG_CS_BASE, true, 0x10000 } },
      .n_regs = 2 },
    { "/restore/svm/l1-int3/type-3", b_svm_l1_int3, CAPS_SVM_FULL,
      .events = { .flags = FULL_FLAGS },
      .edits = { { F_EVENT_INJ, 4, M32, 0x80000303 },
                 { F_EVENT_INJ_ERR, 4, M32, 0 },
                 { F_NEXT_RIP, 8, M64, 0x8001 },
                 { 0, 2, GIF, GIF }, { 0, 2, RUNP, RUNP } },
      .n_edits = 5,
      .regs = { { NESTED_REG_RIP, false, 0x8000 },
                { NESTED_REG_CS_BASE, true, 0x10000 } },
      .n_regs = 2 },
    { "/restore/svm/l1-icebp/unrepresentable", b_svm_l1_icebp, CAPS_SVM_FULL,
      .refusal =
      "l2.injected.type=priv-soft-exception: type=priv-soft-exception: SVM "
      "EVENTINJ has no such type",
      .code = NESTED_EVENT_ERROR_REFUSED },
    { "/restore/vmx/l1-soft/vm-entry-info", b_vmx_l1_soft, CAPS_VMX_FULL,
      .events = { .flags = FULL_FLAGS },
      .edits = { { F_ENTRY_INFO, 4, M32, 0x80000480 },
                 { F_ENTRY_ERR, 4, M32, 0 },
                 { F_ENTRY_LEN, 4, M32, 2 },
                 { 0, 2, RUNP, RUNP } },
      .n_edits = 4,
      .regs = { { NESTED_REG_RIP, false, 0x7000 },
                { NESTED_REG_CS_BASE, true, 0x10000 } },
      .n_regs = 2 },
    { "/restore/vmx/l1-soft/eip-wrap", b_vmx_l1_soft_eip_wrap, CAPS_VMX_FULL,
      .refusal =
      "l2.injected.next_rip=0x1: VMX pushes RIP + VM-entry instruction "
      "length (0x100000001)",
      .code = NESTED_EVENT_ERROR_REFUSED },
    { "/restore/vmx/l1-mtf/other-event", b_vmx_l1_mtf, CAPS_VMX_FULL,
      .events = { .flags = FULL_FLAGS },
      .edits = { { F_ENTRY_INFO, 4, M32, 0x80000700 },
                 { F_ENTRY_ERR, 4, M32, 0 },
                 { F_ENTRY_LEN, 4, M32, 0 },
                 { 0, 2, RUNP, RUNP } },
      .n_edits = 4 },
    { "/restore/vmx/l0-intr-in-guest/clears-stale-entry-info",
      b_vmx_guest_l0_intr, CAPS_VMX_FULL,
      .events = { .flags = FULL_FLAGS,
                  .interrupt = { .injected = 1, .nr = 0xec,
                                 .shadow = KVM_X86_SHADOW_INT_STI } },
      .edits = { { F_ENTRY_INFO, 4, 0x80000000, 0 }, { 0, 2, RUNP, 0 } },
      .n_edits = 2 },
    { "/restore/l1/l0-nmi-injected", b_l1_nmi_injected, CAPS_SVM_FULL,
      .events = { .flags = FULL_FLAGS,
                  .nmi = { .injected = 1, .pending = 1, .masked = 1 } },
      .edits = { { 0, 2, GIF, GIF } }, .n_edits = 1 },
    { "/restore/l1/l0-soft-intr-reexecutes", b_l1_l0_soft, CAPS_VMX_FULL,
      .events = { .flags = FULL_FLAGS },
      .regs = { { NESTED_REG_RIP, false, 0x9000 },
                { NESTED_REG_CS_BASE, true, 0 } },
      .n_regs = 2 },
    { "/restore/l1/pending-pf-payload", b_l1_pending_pf, CAPS_SVM_FULL,
      .events = { .flags = FULL_FLAGS,
                  .exception = { .pending = 1, .nr = 14, .has_error_code = 1,
                                 .error_code = 2 },
                  .exception_has_payload = 1,
                  .exception_payload = 0xcafe000 },
      .edits = { { 0, 2, GIF, GIF } }, .n_edits = 1 },
    { "/restore/l1/pending-pf-payload-no-cap", b_l1_pending_pf, CAPS_OLD_KVM,
      .refusal =
      "l1.exception.has_payload=1: destination lacks "
      "KVM_CAP_EXCEPTION_PAYLOAD",
      .code = NESTED_EVENT_ERROR_REFUSED },
    { "/restore/l1/pending-gp-no-payload-cap", b_l1_pending_gp, CAPS_OLD_KVM,
      .events = { .flags = BASE_FLAGS,
                  .exception = { .injected = 1, .nr = 13,
                                 .has_error_code = 1 } },
      .edits = { { 0, 2, GIF, GIF } }, .n_edits = 1 },
    { "/restore/l2/pending-gp-no-payload-cap", b_l2_pending_gp, CAPS_OLD_KVM,
      .refusal =
      "l2.exception.pending=1: without KVM_CAP_EXCEPTION_PAYLOAD KVM would "
      "take it as injected and skip L1's exception intercepts",
      .code = NESTED_EVENT_ERROR_REFUSED },
    { "/restore/triple-fault/cap", b_triple, CAPS_SVM_FULL,
      .events = { .flags = FULL_FLAGS, .triple_fault = { .pending = 1 } },
      .edits = { { 0, 2, GIF, GIF } }, .n_edits = 1 },
    { "/restore/triple-fault/no-cap", b_triple, CAPS_OLD_KVM,
      .refusal =
      "triple_fault_pending=1: destination lacks "
      "KVM_CAP_X86_TRIPLE_FAULT_EVENT",
      .code = NESTED_EVENT_ERROR_REFUSED },
    { "/restore/smm/cap", b_smm, CAPS_SVM_FULL,
      .events = { .flags = FULL_FLAGS,
                  .smi = { .smm = 1, .smm_inside_nmi = 1 } },
      .edits = { { 0, 2, GIF, GIF } }, .n_edits = 1 },
    { "/restore/smm/no-cap", b_smm, CAPS_OLD_KVM,
      .refusal =
      "smi.smm=1: destination lacks KVM_CAP_X86_SMM",
      .code = NESTED_EVENT_ERROR_REFUSED },
    { "/restore/svm/gif-clear", b_svm_gif0, CAPS_SVM_FULL,
      .events = { .flags = FULL_FLAGS, .nmi = { .pending = 1 } },
      .edits = { { 0, 2, GIF, 0 } }, .n_edits = 1 },
    { "/restore/svm/gif-clear-no-nested-cap", b_svm_gif0, CAPS_SVM_NO_NESTED,
      .refusal =
      "gif=0: destination lacks KVM_CAP_NESTED_STATE (GIF lives in "
      "kvm_nested_state.flags)",
      .code = NESTED_EVENT_ERROR_REFUSED },
    { "/restore/invalid-model", b_invalid, CAPS_SVM_FULL,
      .refusal =
      "l2.injected.vector=5: NMI must use vector 2",
      .code = NESTED_EVENT_ERROR_INCONSISTENT },
    { "/restore/idle/no-caps", b_idle, .caps = { 0 } },
    { "/restore/no-vcpu-events/nmi-pending", b_nmi_pending, .caps = { 0 },
      .refusal =
      "l1.nmi_pending=1: destination lacks KVM_CAP_VCPU_EVENTS",
      .code = NESTED_EVENT_ERROR_REFUSED },
    { "/restore/no-vcpu-events/smi-pending", b_smi_pending, .caps = { 0 },
      .refusal =
      "smi.pending=1: destination lacks KVM_CAP_VCPU_EVENTS",
      .code = NESTED_EVENT_ERROR_REFUSED },
};

static void assert_plan(const PlanCase *pc, const NestedRestorePlan *plan)
{
    unsigned i;

    g_assert_cmpint(plan->set_vcpu_events, ==, pc->caps.vcpu_events);
    g_assert_cmpmem(&plan->events, sizeof(plan->events), &pc->events,
                    sizeof(pc->events));
    g_assert_cmpuint(plan->n_state_edits, ==, pc->n_edits);
    for (i = 0; i < pc->n_edits; i++) {
        const NestedStateEdit *got = &plan->state_edits[i];

        g_assert_cmpuint(got->offset, ==, pc->edits[i].offset);
        g_assert_cmpuint(got->width, ==, pc->edits[i].width);
        g_assert_cmphex(got->mask, ==, pc->edits[i].mask);
        g_assert_cmphex(got->value, ==, pc->edits[i].value);
        g_assert_nonnull(got->field);
    }
    g_assert_cmpuint(plan->n_reg_edits, ==, pc->n_regs);
    for (i = 0; i < pc->n_regs; i++) {
        g_assert_cmpuint(plan->reg_edits[i].reg, ==, pc->regs[i].reg);
        g_assert_cmpint(plan->reg_edits[i].expect_only, ==,
                        pc->regs[i].expect_only);
        g_assert_cmphex(plan->reg_edits[i].value, ==, pc->regs[i].value);
    }
}

/* An L1-origin event must never also go through kvm_vcpu_events. */
static void assert_no_duplicate(const NestedEventState *st,
                                const NestedRestorePlan *plan)
{
    const NestedEventLevel *lv = nested_event_current_level(st);

    if (lv->injected.valid && lv->injected.origin == NESTED_ORIGIN_L1) {
        g_assert_cmpuint(plan->events.exception.injected, ==, 0);
        g_assert_cmpuint(plan->events.interrupt.injected, ==, 0);
        g_assert_cmpuint(plan->events.nmi.injected, ==, 0);
    }
}

static void test_case(gconstpointer opaque)
{
    const PlanCase *pc = opaque;
    NestedEventState st;
    NestedRestorePlan plan;
    g_autoptr(GError) err = NULL;
    bool ok;

    pc->build(&st);
    ok = nested_event_plan_restore(&st, &pc->caps, &plan, &err);
    if (pc->refusal) {
        g_assert_false(ok);
        g_assert_error(err, NESTED_EVENT_ERROR, pc->code);
        g_assert_cmpstr(err->message, ==, pc->refusal);
        return;
    }
    if (!ok) {
        g_error("unexpected refusal: %s", err->message);
    }
    assert_plan(pc, &plan);
    assert_no_duplicate(&st, &plan);
}

/* ------------------------------------------------------------------ */
/* End to end through a blob                                          */
/* ------------------------------------------------------------------ */

/*
 * The lab's snapshot: L2 mid-delivery of L1's NMI, hardware has already
 * cleared EVENTINJ.V.  Restoring through the plan must put V back and
 * make the entry pending, and re-importing the patched blob must yield
 * the same model, with that entry pending.
 */
static void test_e2e_svm_nmi(void)
{
    g_autofree uint8_t *blob = g_malloc0(NESTED_STATE_SVM_MAX);
    NestedStateView v = {
        .flags = KVM_STATE_NESTED_GUEST_MODE | KVM_STATE_NESTED_GIF_SET,
        .format = KVM_STATE_NESTED_FORMAT_SVM, .size = NESTED_STATE_SVM_MAX,
        .has_vmcs = true, .vmcb_pa = 0x5000, .svm_event_inj = 0x00000202,
    };
    NestedRestoreCaps caps = CAPS_SVM_FULL;
    NestedEventState st, back;
    NestedRestorePlan plan;

    g_assert_true(nested_state_encode(&v, blob, NESTED_STATE_SVM_MAX, NULL));
    b_svm_l1_nmi(&st);
    g_assert_true(nested_event_plan_restore(&st, &caps, &plan, NULL));
    g_assert_true(nested_state_apply_edits(blob, NESTED_STATE_SVM_MAX,
                                           plan.state_edits,
                                           plan.n_state_edits, NULL));
    g_assert_true(nested_state_decode(blob, NESTED_STATE_SVM_MAX, &v, NULL));
    g_assert_cmphex(v.svm_event_inj, ==, 0x80000202);
    g_assert_true(v.flags & KVM_STATE_NESTED_RUN_PENDING);
    nested_event_state_init(&back, NESTED_VENDOR_NONE);
    g_assert_true(nested_event_import_nested_state(&back, &v, 0, 0, NULL));
    g_assert_true(nested_event_import_vcpu_events(&back, &plan.events, NULL));
    /* As for VMX: the entry is pending again, by design. */
    st.nested_run_pending = true;
    g_assert_cmpmem(&back, sizeof(back), &st, sizeof(st));
}

/* Same for VMX: a soft interrupt; RUN_PENDING must come on. */
static void test_e2e_vmx_soft(void)
{
    uint32_t size = NESTED_STATE_HDR_SIZE + NESTED_STATE_VMCS_SIZE;
    g_autofree uint8_t *blob = g_malloc0(size);
    NestedStateView v = {
        .flags = KVM_STATE_NESTED_GUEST_MODE,
        .format = KVM_STATE_NESTED_FORMAT_VMX, .size = size,
        .has_vmcs = true, .vmxon_pa = 0x1000, .vmcs12_pa = 0x2000,
        .vmx_revision = NESTED_VMCS12_REVISION,
        .vmx_entry_intr_info = 0x00000480, .vmx_entry_instruction_len = 2,
    };
    NestedRestoreCaps caps = CAPS_VMX_FULL;
    NestedEventState st, back;
    NestedRestorePlan plan;

    g_assert_true(nested_state_encode(&v, blob, size, NULL));
    b_vmx_l1_soft(&st);
    g_assert_true(nested_event_plan_restore(&st, &caps, &plan, NULL));
    g_assert_true(nested_state_apply_edits(blob, size, plan.state_edits,
                                           plan.n_state_edits, NULL));
    g_assert_true(nested_state_decode(blob, size, &v, NULL));
    g_assert_true(v.flags & KVM_STATE_NESTED_RUN_PENDING);
    nested_event_state_init(&back, NESTED_VENDOR_NONE);
    g_assert_true(nested_event_import_nested_state(&back, &v,
                                                   plan.reg_edits[0].value,
                                                   plan.reg_edits[1].value,
                                                   NULL));
    g_assert_true(nested_event_import_vcpu_events(&back, &plan.events, NULL));
    /* The one difference: the entry is pending again, by design. */
    st.nested_run_pending = true;
    g_assert_cmpmem(&back, sizeof(back), &st, sizeof(st));
}

static void test_apply_bounds(void)
{
    uint8_t blob[16] = { 0 };
    NestedStateEdit e = { .offset = 12, .width = 8, .mask = M64, .value = 1,
                          .field = "x" };
    g_autoptr(GError) err = NULL;

    g_assert_false(nested_state_apply_edits(blob, sizeof(blob), &e, 1,
                                            &err));
    g_assert_error(err, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_TRUNCATED);
    e.offset = 8;
    g_assert_true(nested_state_apply_edits(blob, sizeof(blob), &e, 1, NULL));
    g_assert_cmpuint(blob[8], ==, 1);
}

int main(int argc, char **argv)
{
    size_t i;

    g_test_init(&argc, &argv, NULL);
    for (i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_test_add_data_func(cases[i].path, &cases[i], test_case);
    }
    g_test_add_func("/restore/e2e/svm-l1-nmi-blob", test_e2e_svm_nmi);
    g_test_add_func("/restore/e2e/vmx-l1-soft-blob", test_e2e_vmx_soft);
    g_test_add_func("/restore/apply/bounds", test_apply_bounds);
    return g_test_run();
}
