/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Validation: one case per rule, each asserting the exact
 * "<field path>=<value>: <reason>" it must produce, and valid models
 * that must pass.
 */

#include <string.h>

#include "nested-validate.h"

typedef void (*Mutate)(NestedEventState *st);

typedef struct Rule {
    const char *path;
    NestedVendor vendor;
    Mutate mutate;
    const char *message;    /* exact; NULL = must be valid */
} Rule;

static void soft_intr(NestedEvent *ev, uint8_t len, uint64_t old,
                      uint64_t next)
{
    *ev = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_SOFT_INTR, .vector = 0x80,
        .origin = NESTED_ORIGIN_L0, .insn_len = len, .old_rip = old,
        .next_rip = next, .cs_base = 0,
    };
}

static void hw_exc(NestedEvent *ev, uint8_t vector, bool ec, uint32_t code)
{
    *ev = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_HW_EXCEPTION, .vector = vector,
        .has_error_code = ec, .error_code = code,
    };
}

static void enter_guest(NestedEventState *st)
{
    st->guest_mode = true;
}

static void m_nmi_vector(NestedEventState *st)
{
    enter_guest(st);
    st->l2.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_NMI, .vector = 5,
        .origin = NESTED_ORIGIN_L1,
    };
}

static void m_soft_len0(NestedEventState *st)
{
    soft_intr(&st->l1.injected, 0, 0x1000, 0x1000);
}

static void m_soft_len16(NestedEventState *st)
{
    soft_intr(&st->l1.injected, 16, 0x1000, 0x1010);
}

static void m_ec_vector6(NestedEventState *st)
{
    hw_exc(&st->l1.injected, 6, true, 0);
}

static void m_ec_ext_intr(NestedEventState *st)
{
    st->l1.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_EXT_INTR, .vector = 14,
        .has_error_code = true,
    };
}

static void m_soft_exc_vector(NestedEventState *st)
{
    soft_intr(&st->l1.injected, 1, 0x1000, 0x1001);
    st->l1.injected.type = NESTED_EVENT_SOFT_EXCEPTION;
    st->l1.injected.vector = 6;
}

static void m_priv_soft_vector(NestedEventState *st)
{
    soft_intr(&st->l1.injected, 1, 0x1000, 0x1001);
    st->l1.injected.type = NESTED_EVENT_PRIV_SOFT_EXCEPTION;
    st->l1.injected.vector = 3;
}

static void m_hw_vector32(NestedEventState *st)
{
    hw_exc(&st->l1.injected, 32, false, 0);
}

static void m_nmi_pending3(NestedEventState *st)
{
    st->l1.nmi_pending = 3;
}

static void m_nmi_pending2_masked(NestedEventState *st)
{
    st->l1.nmi_pending = 2;
    st->l1.nmi_masked = true;
}

static void m_nmi_pending2_injected(NestedEventState *st)
{
    st->l1.nmi_pending = 2;
    st->l1.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_NMI, .vector = 2,
    };
}

/* A #PF pending behind whatever else the level holds */
static void pf_pending(NestedPendingException *ex)
{
    *ex = (NestedPendingException) {
        .pending = true, .vector = 14, .has_error_code = true,
        .error_code = 2,
    };
}

static void m_injected_and_pending(NestedEventState *st)
{
    hw_exc(&st->l1.injected, 13, true, 0);
    pf_pending(&st->l1.exception);
}

/*
 * kvm_check_and_inject_events(): no NMI or interrupt is re-injected
 * while an exception is pending (a fault L0 intercepted while
 * vectoring L1's event, e.g. #PF under shadow paging).
 */
static void m_pending_beside_l1_nmi(NestedEventState *st)
{
    enter_guest(st);
    st->l2.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_NMI, .vector = 2,
        .origin = NESTED_ORIGIN_L1,
    };
    pf_pending(&st->l2.exception);
}

static void m_pending_beside_l1_soft(NestedEventState *st)
{
    enter_guest(st);
    soft_intr(&st->l2.injected, 2, 0x4000, 0x4002);
    st->l2.injected.origin = NESTED_ORIGIN_L1;
    st->l2.exception = (NestedPendingException) {
        .pending = true, .vector = 17, .has_error_code = true,
    };
}

/* The same with L0's interrupt: KVM on the destination decides alike. */
static void m_valid_pending_beside_l0_intr(NestedEventState *st)
{
    enter_guest(st);
    st->l2.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_EXT_INTR, .vector = 0x30,
    };
    pf_pending(&st->l2.exception);
}

static void m_l1_origin_outside(NestedEventState *st)
{
    hw_exc(&st->l1.injected, 13, true, 0);
    st->l1.injected.origin = NESTED_ORIGIN_L1;
}

static void m_next_before_old(NestedEventState *st)
{
    soft_intr(&st->l1.injected, 2, 0x2000, 0x1ffe);
}

static void m_next_len_mismatch(NestedEventState *st)
{
    soft_intr(&st->l1.injected, 2, 0x1000, 0x1003);
}

static void m_wrap_64(NestedEventState *st)
{
    soft_intr(&st->l1.injected, 2, UINT64_MAX, 1);
}

static void m_wrap_32(NestedEventState *st)
{
    soft_intr(&st->l1.injected, 2, 0xffffffffu, 1);
}

static void m_reserved_type(NestedEventState *st)
{
    st->l1.injected = (NestedEvent) { .valid = true, .type = 1 };
}

static void m_reserved_shadow(NestedEventState *st)
{
    st->l1.interrupt_shadow = 0x4;
}

static void m_ext_intr_low_vector(NestedEventState *st)
{
    st->l1.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_EXT_INTR, .vector = 8,
    };
}

static void m_payload_gp(NestedEventState *st)
{
    st->l1.exception = (NestedPendingException) {
        .pending = true, .vector = 13, .has_error_code = true,
        .has_payload = true, .payload = 0x1000,
    };
}

static void m_l1_busy_in_guest(NestedEventState *st)
{
    enter_guest(st);
    st->l1.nmi_masked = true;
}

static void m_run_pending_outside(NestedEventState *st)
{
    st->nested_run_pending = true;
}

static void m_vmx_gif0(NestedEventState *st)
{
    st->gif = false;
}

static void m_other_on_svm(NestedEventState *st)
{
    enter_guest(st);
    st->l2.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_OTHER, .origin = NESTED_ORIGIN_L1,
    };
}

static void m_smm_in_guest(NestedEventState *st)
{
    enter_guest(st);
    st->smi.smm = true;
}

static void m_l2_outside_guest(NestedEventState *st)
{
    st->l2.nmi_pending = 1;
}

static void m_valid_svm_l1_nmi(NestedEventState *st)
{
    enter_guest(st);
    st->l2.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_NMI, .vector = 2,
        .origin = NESTED_ORIGIN_L1,
    };
    st->l2.nmi_pending = 1;
}

static void m_valid_pf_payload(NestedEventState *st)
{
    st->l1.exception = (NestedPendingException) {
        .pending = true, .vector = 14, .has_error_code = true,
        .error_code = 2, .has_payload = true, .payload = 0xdead000,
    };
    st->l1.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_EXT_INTR, .vector = 0x30,
    };
    st->l1.nmi_pending = 2;
}

static void m_valid_vmx_zero_len(NestedEventState *st)
{
    enter_guest(st);
    soft_intr(&st->l2.injected, 0, 0x4000, 0x4000);
    st->l2.injected.origin = NESTED_ORIGIN_L1;
}

/* APM vol. 2, 15.20: L1's NextRIP need not follow any instruction. */
static void m_valid_svm_l1_free_next_rip(NestedEventState *st)
{
    enter_guest(st);
    soft_intr(&st->l2.injected, 0, 0x4000, 0x9000);
    st->l2.injected.origin = NESTED_ORIGIN_L1;
}

static void m_svm_l1_len_mismatch(NestedEventState *st)
{
    enter_guest(st);
    soft_intr(&st->l2.injected, 2, 0x4000, 0x4003);
    st->l2.injected.origin = NESTED_ORIGIN_L1;
}

static void m_valid_idle(NestedEventState *st)
{
    (void)st;
}

static const Rule rules[] = {
    { "/validate/rule/nmi-vector", NESTED_VENDOR_SVM, m_nmi_vector,
      "l2.injected.vector=5: NMI must use vector 2" },
    { "/validate/rule/soft-insn-len-0", NESTED_VENDOR_SVM, m_soft_len0,
      "l1.injected.insn_len=0: soft event needs an instruction length of "
      "1 to 15" },
    { "/validate/rule/soft-insn-len-16", NESTED_VENDOR_SVM, m_soft_len16,
      "l1.injected.insn_len=16: longer than 15 bytes" },
    { "/validate/rule/error-code-vector", NESTED_VENDOR_SVM, m_ec_vector6,
      "l1.injected.has_error_code=1: vector 6 never pushes an error code" },
    { "/validate/rule/error-code-type", NESTED_VENDOR_SVM, m_ec_ext_intr,
      "l1.injected.has_error_code=1: type ext-intr never pushes an error "
      "code" },
    { "/validate/rule/soft-exception-vector", NESTED_VENDOR_SVM,
      m_soft_exc_vector,
      "l1.injected.vector=6: software exception must be #BP (3) or #OF "
      "(4)" },
    { "/validate/rule/priv-soft-exception-vector", NESTED_VENDOR_VMX,
      m_priv_soft_vector,
      "l1.injected.vector=3: privileged software exception (INT1) must "
      "use vector 1" },
    { "/validate/rule/hw-exception-vector", NESTED_VENDOR_SVM, m_hw_vector32,
      "l1.injected.vector=32: exceptions use vectors 0-31" },
    { "/validate/rule/nmi-pending-limit", NESTED_VENDOR_SVM, m_nmi_pending3,
      "l1.nmi_pending=3: KVM holds at most 2 pending NMIs" },
    { "/validate/rule/nmi-pending-masked", NESTED_VENDOR_SVM,
      m_nmi_pending2_masked,
      "l1.nmi_pending=2: KVM holds at most 1 pending NMI while NMIs are "
      "masked or an NMI is being injected" },
    { "/validate/rule/nmi-pending-injected", NESTED_VENDOR_VMX,
      m_nmi_pending2_injected,
      "l1.nmi_pending=2: KVM holds at most 1 pending NMI while NMIs are "
      "masked or an NMI is being injected" },
    { "/validate/rule/injected-and-pending", NESTED_VENDOR_SVM,
      m_injected_and_pending,
      "l1.exception.pending=1: exception 14 is pending while exception 13 "
      "is injected; KVM holds one exception" },
    { "/validate/rule/pending-beside-l1-nmi", NESTED_VENDOR_SVM,
      m_pending_beside_l1_nmi,
      "l2.exception.pending=1: exception 14 is pending beside L1's "
      "injected nmi, which KVM would drop for it (or return to L1); a "
      "restore would deliver L1's event first" },
    { "/validate/rule/pending-beside-l1-soft-intr", NESTED_VENDOR_VMX,
      m_pending_beside_l1_soft,
      "l2.exception.pending=1: exception 17 is pending beside L1's "
      "injected soft-intr, which KVM would drop for it (or return to L1); "
      "a restore would deliver L1's event first" },
    { "/validate/valid/pending-beside-l0-intr", NESTED_VENDOR_SVM,
      m_valid_pending_beside_l0_intr, NULL },
    { "/validate/rule/l1-origin-outside-guest", NESTED_VENDOR_SVM,
      m_l1_origin_outside,
      "l1.injected.origin=L1: L1-origin event while not in guest mode" },
    { "/validate/rule/next-rip-before-old", NESTED_VENDOR_SVM,
      m_next_before_old,
      "l1.injected.next_rip=0x1ffe: before old_rip=0x2000" },
    { "/validate/rule/next-rip-length", NESTED_VENDOR_SVM,
      m_next_len_mismatch,
      "l1.injected.next_rip=0x1003: 3 bytes after old_rip=0x1000 but "
      "insn_len=2" },
    { "/validate/rule/svm-l1-next-rip-length", NESTED_VENDOR_SVM,
      m_svm_l1_len_mismatch,
      "l2.injected.insn_len=2: next_rip=0x4003 is 3 bytes after "
      "old_rip=0x4000" },
    { "/validate/rule/reserved-type", NESTED_VENDOR_VMX, m_reserved_type,
      "l1.injected.type=1: reserved event type" },
    { "/validate/rule/reserved-shadow", NESTED_VENDOR_SVM, m_reserved_shadow,
      "l1.interrupt_shadow=0x4: reserved bits 0x4" },
    { "/validate/rule/payload-vector", NESTED_VENDOR_SVM, m_payload_gp,
      "l1.exception.has_payload=1: vector 13 has no payload (only #DB and "
      "#PF)" },
    { "/validate/rule/l1-busy-in-guest", NESTED_VENDOR_SVM,
      m_l1_busy_in_guest,
      "l1=busy: L1 events while L2 runs; KVM keeps one event queue, and "
      "it belongs to L2 in guest mode" },
    { "/validate/rule/l2-outside-guest", NESTED_VENDOR_SVM,
      m_l2_outside_guest, "l2=busy: L2 events while not in guest mode" },
    { "/validate/rule/run-pending-outside-guest", NESTED_VENDOR_VMX,
      m_run_pending_outside, "nested_run_pending=1: not in guest mode" },
    { "/validate/rule/gif-vmx", NESTED_VENDOR_VMX, m_vmx_gif0,
      "gif=0: only SVM has a global interrupt flag" },
    { "/validate/rule/other-event-svm", NESTED_VENDOR_SVM, m_other_on_svm,
      "l2.injected.type=7: 'other event' exists only on VMX" },
    { "/validate/rule/smm-in-guest", NESTED_VENDOR_VMX, m_smm_in_guest,
      "smi.smm=1: SMM while in guest mode" },
    { "/validate/valid/rip-wrap-64", NESTED_VENDOR_SVM, m_wrap_64, NULL },
    { "/validate/valid/eip-wrap-32", NESTED_VENDOR_SVM, m_wrap_32, NULL },
    { "/validate/valid/ext-intr-vector-8", NESTED_VENDOR_SVM,
      m_ext_intr_low_vector, NULL },
    { "/validate/valid/svm-l1-nmi-in-flight", NESTED_VENDOR_SVM,
      m_valid_svm_l1_nmi, NULL },
    { "/validate/valid/pf-payload-and-intr", NESTED_VENDOR_SVM,
      m_valid_pf_payload, NULL },
    { "/validate/valid/vmx-zero-length-l1-soft", NESTED_VENDOR_VMX,
      m_valid_vmx_zero_len, NULL },
    { "/validate/valid/svm-l1-soft-free-next-rip", NESTED_VENDOR_SVM,
      m_valid_svm_l1_free_next_rip, NULL },
    { "/validate/valid/idle", NESTED_VENDOR_NONE, m_valid_idle, NULL },
};

static void test_rule(gconstpointer opaque)
{
    const Rule *r = opaque;
    g_autoptr(GPtrArray) problems = NULL;
    g_autoptr(GError) err = NULL;
    NestedEventState st;

    nested_event_state_init(&st, r->vendor);
    r->mutate(&st);
    problems = nested_event_check(&st);
    if (!r->message) {
        if (problems->len) {
            g_test_message("unexpected: %s",
                           (char *)g_ptr_array_index(problems, 0));
        }
        g_assert_cmpuint(problems->len, ==, 0);
        g_assert_true(nested_event_validate(&st, NULL));
        return;
    }
    /* Exactly the one rule fires, with exactly this text. */
    g_assert_cmpuint(problems->len, ==, 1);
    g_assert_cmpstr(g_ptr_array_index(problems, 0), ==, r->message);
    g_assert_false(nested_event_validate(&st, &err));
    g_assert_error(err, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_INCONSISTENT);
    g_assert_cmpstr(err->message, ==, r->message);
}

/* Several faults at once are all reported, in a fixed order. */
static void test_all_reported(void)
{
    g_autoptr(GPtrArray) problems = NULL;
    NestedEventState st;

    nested_event_state_init(&st, NESTED_VENDOR_SVM);
    m_nmi_pending3(&st);
    m_reserved_shadow(&st);
    st.nested_run_pending = true;
    problems = nested_event_check(&st);
    g_assert_cmpuint(problems->len, ==, 3);
    g_assert_cmpstr(g_ptr_array_index(problems, 0), ==,
                    "nested_run_pending=1: not in guest mode");
    g_assert_cmpstr(g_ptr_array_index(problems, 1), ==,
                    "l1.nmi_pending=3: KVM holds at most 2 pending NMIs");
    g_assert_cmpstr(g_ptr_array_index(problems, 2), ==,
                    "l1.interrupt_shadow=0x4: reserved bits 0x4");
}

/*
 * A received model is judged against the CPU state of its stream too:
 * hflags' HF_GUEST_MASK travels in the cpu section itself.
 */
static void test_received(void)
{
    NestedEventState st;
    GError *err = NULL;

    nested_event_state_init(&st, NESTED_VENDOR_SVM);
    st.guest_mode = true;
    st.l2.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_NMI, .vector = 2,
        .origin = NESTED_ORIGIN_L1,
    };
    g_assert_true(nested_event_validate_received(&st, true, NULL));

    g_assert_false(nested_event_validate_received(&st, false, &err));
    g_assert_cmpstr(err->message, ==, "guest_mode=1: the CPU state in the "
                    "same stream is not in guest mode");
    g_clear_error(&err);

    /* An L0-origin NMI is what stock QEMU migrates by itself. */
    st.l2.injected.origin = NESTED_ORIGIN_L0;
    g_assert_false(nested_event_validate_received(&st, true, &err));
    g_assert_nonnull(strstr(err->message, "nothing in flight"));
    g_clear_error(&err);

    /* Validation of the model itself still comes first. */
    st.l2.injected.vector = 5;
    g_assert_false(nested_event_validate_received(&st, false, &err));
    g_assert_cmpstr(err->message, ==,
                    "l2.injected.vector=5: NMI must use vector 2");
    g_clear_error(&err);
}

int main(int argc, char **argv)
{
    size_t i;

    g_test_init(&argc, &argv, NULL);
    for (i = 0; i < G_N_ELEMENTS(rules); i++) {
        g_test_add_data_func(rules[i].path, &rules[i], test_rule);
    }
    g_test_add_func("/validate/all-reported", test_all_reported);
    g_test_add_func("/validate/received", test_received);
    return g_test_run();
}
