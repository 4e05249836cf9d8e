/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * cpu/nested-events version 2: the compact form's size per vCPU, the
 * round trip through the bytes VMState puts on the wire and the rebuild
 * from stock fields, and the refusals of short or garbled input.
 */

#include <string.h>

#include "nested-blob.h"
#include "nested-codec.h"
#include "nested-validate.h"
#include "nested-wire.h"

/* Issue #16: at most this many bytes per vCPU when the subsection goes. */
#define PER_VCPU_BUDGET 64
/* Version 1's size: 120 bytes of fields plus the same framing. */
#define V1_PER_VCPU 143

#define L2_RIP 0x7ffff000a010ull
#define L2_CS_BASE 0x10000ull
#define INT_LEN 2

typedef struct Fixture {
    uint8_t *blob;
    NestedStockView stock;
    NestedEventState st;
} Fixture;

/* An SVM vCPU in guest mode whose vmcb12 NextRIP is next_rip. */
static void svm_guest(Fixture *f, uint64_t next_rip)
{
    f->blob = ns_blob(GM | KVM_STATE_NESTED_GIF_SET,
                      KVM_STATE_NESTED_FORMAT_SVM, NESTED_STATE_SVM_MAX);
    put64(f->blob + SVM_VMCB_PA, 0x3000);
    put64(f->blob + DATA + NESTED_VMCB_NEXT_RIP, next_rip);
    f->stock = (NestedStockView) {
        .vendor = NESTED_VENDOR_SVM, .guest_mode = true, .gif = true,
        .rip = L2_RIP, .cs_base = L2_CS_BASE,
        .nested_state = f->blob, .nested_state_len = NESTED_STATE_SVM_MAX,
    };
    nested_event_state_init(&f->st, NESTED_VENDOR_SVM);
    f->st.guest_mode = true;
}

/* L1 injects INT 0x80 into L2, as the observer's window rebuilds it. */
static void l1_soft_int(Fixture *f)
{
    NestedEvent *ev = &f->st.l2.injected;

    svm_guest(f, L2_RIP + INT_LEN);
    *ev = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_SOFT_INTR, .vector = 0x80,
        .origin = NESTED_ORIGIN_L1,
    };
    nested_event_set_svm_soft_rips(ev, L2_RIP, L2_CS_BASE, L2_RIP + INT_LEN);
}

/* L1 injects an NMI into L2 (nmi_l1_to_l2 in KVM). */
static void l1_nmi(Fixture *f)
{
    svm_guest(f, 0);
    f->st.l2.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_NMI,
        .vector = NESTED_VECTOR_NMI, .origin = NESTED_ORIGIN_L1,
    };
}

/* Encode, write, read back, rebuild: returns the bytes per vCPU. */
static size_t round_trip(const Fixture *f)
{
    uint8_t bytes[NESTED_WIRE_MAX_SIZE + 8];
    g_autoptr(GError) err = NULL;
    NestedEventWire w, back;
    NestedEventState rebuilt;
    size_t n, used;

    g_assert_true(nested_event_wire_encode(&f->st, &f->stock, &w, &err));
    g_assert_no_error(err);
    n = nested_event_wire_write(&w, bytes, sizeof(bytes));
    g_assert_cmpuint(n, ==, nested_event_wire_size(&w));
    g_assert_cmpuint(n, <=, NESTED_WIRE_MAX_SIZE);
    g_assert_true(nested_event_wire_read(bytes, n, &back, &used, &err));
    g_assert_cmpuint(used, ==, n);
    g_assert_cmpmem(&back, sizeof(back), &w, sizeof(w));
    g_assert_true(nested_event_wire_decode(&back, &f->stock, &rebuilt,
                                           &err));
    g_assert_true(nested_event_state_equal(&rebuilt, &f->st));
    g_assert_true(nested_event_validate_received(&rebuilt,
                                                 f->stock.guest_mode, &err));
    return NESTED_WIRE_FRAMING + n;
}

static void test_size_soft_int(void)
{
    Fixture f;
    size_t per_vcpu;

    l1_soft_int(&f);
    per_vcpu = round_trip(&f);
    g_test_message("L1 soft INT n, RIPs rebuilt: %zu bytes per vCPU "
                   "(version 1: %d)", per_vcpu, V1_PER_VCPU);
    g_assert_cmpuint(per_vcpu, <=, PER_VCPU_BUDGET);
    g_free(f.blob);
}

static void test_size_l1_nmi(void)
{
    Fixture f;
    size_t per_vcpu;

    l1_nmi(&f);
    f.st.l2.nmi_pending = 1;
    f.stock.nmi_pending = 1;
    per_vcpu = round_trip(&f);
    g_test_message("L1-origin NMI: %zu bytes per vCPU", per_vcpu);
    g_assert_cmpuint(per_vcpu, <=, PER_VCPU_BUDGET);
    g_free(f.blob);
}

/*
 * Every optional field on the wire that a sender can fill at once: an
 * interrupt under an interrupt shadow with a #PF pending behind it
 * (error code and CR2 payload), plus the three flags.  The largest a
 * sender ever sends.  KVM holds one exception, so an event with an
 * error code and a pending one never meet; and the interrupt is L0's,
 * as a pending exception beside L1's event is refused
 * (/validate/rule/pending-beside-l1-nmi).
 */
static void test_size_largest(void)
{
    Fixture f;
    size_t per_vcpu;

    svm_guest(&f, 0);
    f.st.l2.injected = (NestedEvent) {
        .valid = true, .type = NESTED_EVENT_EXT_INTR, .vector = 0x30,
        .origin = NESTED_ORIGIN_L0,
    };
    f.st.l2.interrupt_shadow = KVM_X86_SHADOW_INT_STI;
    f.st.l2.exception = (NestedPendingException) {
        .pending = true, .vector = NESTED_VECTOR_PF,
        .has_error_code = true, .error_code = 0x6,
        .has_payload = true, .payload = 0xdead000,
    };
    f.st.triple_fault_pending = true;
    f.st.smi.pending = true;
    f.st.smi.latched_init = true;
    per_vcpu = round_trip(&f);
    g_test_message("INTR + shadow + pending #PF: %zu bytes per vCPU",
                   per_vcpu);
    g_assert_cmpuint(per_vcpu, <=, PER_VCPU_BUDGET);
    g_free(f.blob);
}

/* Not a model a sender meets; only the wire's upper bound. */
static void test_size_bound(void)
{
    NestedEventWire w = {
        .flags = NESTED_WIRE_EVENT | NESTED_WIRE_EXCEPTION,
        .event = NESTED_EVENT_HW_EXCEPTION | NESTED_WIRE_EVENT_ERROR_CODE,
        .exc_info = NESTED_WIRE_EXC_ERROR_CODE | NESTED_WIRE_EXC_PAYLOAD,
    };
    uint8_t bytes[64];

    g_assert_cmpuint(nested_event_wire_size(&w), ==, NESTED_WIRE_MAX_SIZE);
    g_assert_cmpuint(nested_event_wire_write(&w, bytes, sizeof(bytes)), ==,
                     NESTED_WIRE_MAX_SIZE);
    g_assert_cmpuint(NESTED_WIRE_FRAMING + NESTED_WIRE_MAX_SIZE, <=,
                     PER_VCPU_BUDGET);
}

/* Each shorter stream stops at a field and names it. */
static void test_truncated(void)
{
    uint8_t bytes[NESTED_WIRE_MAX_SIZE];
    NestedEventWire w, back;
    Fixture f;
    size_t n, cut, used;

    l1_soft_int(&f);
    f.st.l2.exception = (NestedPendingException) {
        .pending = true, .vector = NESTED_VECTOR_PF,
        .has_error_code = true, .error_code = 0x2,
        .has_payload = true, .payload = 0x1000,
    };
    g_assert_true(nested_event_wire_encode(&f.st, &f.stock, &w, NULL));
    n = nested_event_wire_write(&w, bytes, sizeof(bytes));
    for (cut = 0; cut < n; cut++) {
        g_autoptr(GError) err = NULL;

        g_assert_false(nested_event_wire_read(bytes, cut, &back, &used,
                                              &err));
        g_assert_error(err, NESTED_EVENT_ERROR,
                       NESTED_EVENT_ERROR_TRUNCATED);
        g_assert_cmpuint(used, <=, cut);
        g_assert_nonnull(strstr(err->message, ": the stream ends after"));
    }
    {
        g_autoptr(GError) err = NULL;

        g_assert_false(nested_event_wire_read(bytes, n - 3, &back, &used,
                                              &err));
        g_assert_cmpstr(err->message, ==, "exc_payload: the stream ends "
                        "after 5 of its 8 bytes");
    }
    g_free(f.blob);
}

typedef struct Garbled {
    const char *path;
    NestedEventWire wire;
    bool no_nested_state;
    const char *error;          /* exact message */
} Garbled;

#define EV_L1 NESTED_WIRE_EVENT_L1

static const Garbled garbled[] = {
    { "/wire/garbled/flags", { .flags = 0x80 },
      false, "flags=0x80: unknown bits 0x80" },
    { "/wire/garbled/event-bits",
      { .flags = NESTED_WIRE_EVENT, .event = 0x22, .vector = 2 },
      false, "event=0x22: unknown bits 0x20" },
    { "/wire/garbled/exc-info-bits",
      { .flags = NESTED_WIRE_EXCEPTION, .exc_vector = 13, .exc_info = 4 },
      false, "exc_info=0x04: unknown bits 0x04" },
    { "/wire/garbled/reserved-type",
      { .flags = NESTED_WIRE_EVENT, .event = 1 | EV_L1, .vector = 9 },
      false, "l2.injected.type=1: reserved event type" },
    { "/wire/garbled/nmi-vector",
      { .flags = NESTED_WIRE_EVENT, .event = 2 | EV_L1, .vector = 7 },
      false, "l2.injected.vector=7: NMI must use vector 2" },
    { "/wire/garbled/shadow",
      { .flags = NESTED_WIRE_EVENT, .event = 2 | EV_L1, .vector = 2,
        .shadow = 0x84 },
      false, "l2.interrupt_shadow=0x84: reserved bits 0x84" },
    { "/wire/garbled/l0-soft",
      { .flags = NESTED_WIRE_EVENT, .event = 4, .vector = 0x80 },
      false, "l2.injected.origin=L0: a soft event of L0's is never sent "
      "(KVM re-executes the instruction)" },
    { "/wire/garbled/soft-without-nested-state",
      { .flags = NESTED_WIRE_EVENT, .event = 4 | EV_L1, .vector = 0x80 },
      true, "l2.injected.type=soft-intr: no nested state in the stream "
      "holds its return address" },
    { "/wire/garbled/exception-vector",
      { .flags = NESTED_WIRE_EVENT | NESTED_WIRE_EXCEPTION,
        .event = 2 | EV_L1, .vector = 2, .exc_vector = 40 },
      false, "l2.exception.vector=40: not an exception vector" },
    { "/wire/garbled/idle",
      { .flags = NESTED_WIRE_EXCEPTION, .exc_vector = 13 },
      false, "l1/l2.injected, l1/l2.interrupt_shadow: nothing in flight "
      "that stock QEMU cannot carry (no L1-origin or soft event, no "
      "shadow), so no sender sends this" },
};

/*
 * Through the bytes, as a stream would bring it: the decoder's or the
 * validation's refusal, whichever comes first, names field and value.
 */
static void test_garbled(gconstpointer data)
{
    const Garbled *g = data;
    uint8_t bytes[NESTED_WIRE_MAX_SIZE];
    g_autoptr(GError) err = NULL;
    NestedEventWire back;
    NestedEventState st;
    Fixture f;
    size_t n, used;
    bool ok;

    svm_guest(&f, L2_RIP + INT_LEN);
    if (g->no_nested_state) {
        f.stock.nested_state = NULL;
    }
    n = nested_event_wire_write(&g->wire, bytes, sizeof(bytes));
    g_assert_true(nested_event_wire_read(bytes, n, &back, &used, NULL));
    ok = nested_event_wire_decode(&back, &f.stock, &st, &err) &&
         nested_event_validate_received(&st, f.stock.guest_mode, &err);
    g_assert_false(ok);
    g_assert_nonnull(err);
    g_assert_cmpstr(err->message, ==, g->error);
    g_free(f.blob);
}

/* The struct, unlike the bytes, can hold a field without its flag. */
static void test_field_without_flag(void)
{
    NestedEventWire w = { .event = 0x0a };
    g_autoptr(GError) err = NULL;
    NestedEventState st;
    Fixture f;

    svm_guest(&f, 0);
    g_assert_false(nested_event_wire_decode(&w, &f.stock, &st, &err));
    g_assert_cmpstr(err->message, ==, "event=0x0a: set without flags.event");
    g_free(f.blob);
}

/* A model the stream's own fields would rebuild otherwise never leaves. */
static void test_encode_refuses_drift(void)
{
    g_autoptr(GError) err = NULL;
    NestedEventWire w;
    Fixture f;

    l1_soft_int(&f);
    f.stock.rip += 1;
    g_assert_false(nested_event_wire_encode(&f.st, &f.stock, &w, &err));
    g_assert_error(err, NESTED_EVENT_ERROR,
                   NESTED_EVENT_ERROR_UNREPRESENTABLE);
    g_assert_cmpstr(err->message, ==, "l2.injected.insn_len: the stream's "
                    "CPU state would rebuild it differently from the "
                    "model");
    g_free(f.blob);
}

static void test_encode_refuses_other_level(void)
{
    g_autoptr(GError) err = NULL;
    NestedEventWire w;
    Fixture f;

    l1_nmi(&f);
    f.st.l1.interrupt_shadow = KVM_X86_SHADOW_INT_STI;
    g_assert_false(nested_event_wire_encode(&f.st, &f.stock, &w, &err));
    g_assert_cmpstr(err->message, ==, "l1.interrupt_shadow: the stream's "
                    "CPU state would rebuild it differently from the "
                    "model");
    g_free(f.blob);
}

/* Outside guest mode: the shadow alone is what stock lacks. */
static void test_l1_shadow(void)
{
    Fixture f = { 0 };
    size_t per_vcpu;

    nested_event_state_init(&f.st, NESTED_VENDOR_VMX);
    f.st.l1.interrupt_shadow = KVM_X86_SHADOW_INT_MOV_SS;
    f.st.l1.nmi_masked = true;
    f.stock = (NestedStockView) {
        .vendor = NESTED_VENDOR_VMX, .nmi_masked = true, .rip = 0x1000,
    };
    per_vcpu = round_trip(&f);
    g_assert_cmpuint(per_vcpu, ==, NESTED_WIRE_FRAMING + 2);
}

int main(int argc, char **argv)
{
    size_t i;

    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/wire/size/l1-soft-int", test_size_soft_int);
    g_test_add_func("/wire/size/l1-nmi", test_size_l1_nmi);
    g_test_add_func("/wire/size/largest", test_size_largest);
    g_test_add_func("/wire/size/bound", test_size_bound);
    g_test_add_func("/wire/truncated", test_truncated);
    for (i = 0; i < G_N_ELEMENTS(garbled); i++) {
        g_test_add_data_func(garbled[i].path, &garbled[i], test_garbled);
    }
    g_test_add_func("/wire/field-without-flag", test_field_without_flag);
    g_test_add_func("/wire/encode/drift", test_encode_refuses_drift);
    g_test_add_func("/wire/encode/other-level",
                    test_encode_refuses_other_level);
    g_test_add_func("/wire/l1-shadow", test_l1_shadow);
    return g_test_run();
}
