/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Building the model from KVM's view: struct kvm_vcpu_events, and
 * struct kvm_nested_state blobs crafted from the uAPI layouts
 * (<linux/kvm.h>, asm/kvm.h).  Each case names the uAPI field it
 * exercises.
 */

#include <stddef.h>
#include <string.h>

#include "nested-blob.h"
#include "nested-codec.h"
#include "nested-import.h"
#include "nested-restore.h"
#include "nested-state.h"
#include "nested-validate.h"

/* ------------------------------------------------------------------ */
/* kvm_vcpu_events                                                    */
/* ------------------------------------------------------------------ */

static void ev_to_bytes(const struct kvm_vcpu_events *ev, uint8_t *buf)
{
    memcpy(buf, ev, sizeof(*ev));
}

/*
 * The import refuses what KVM_SET_VCPU_EVENTS would, and the test
 * codec's decoder, kept apart from it, agrees on the error code.
 */
static void expect_ev_error(const struct kvm_vcpu_events *ev, int code,
                            const char *text)
{
    uint8_t buf[sizeof(*ev)];
    struct kvm_vcpu_events out;
    NestedEventState st;
    g_autoptr(GError) err = NULL;
    g_autoptr(GError) dec_err = NULL;

    nested_event_state_init(&st, NESTED_VENDOR_SVM);
    g_assert_false(nested_event_import_vcpu_events(&st, ev, &err));
    g_assert_error(err, NESTED_EVENT_ERROR, code);
    if (!strstr(err->message, text)) {
        g_test_message("got: %s", err->message);
    }
    g_assert_nonnull(strstr(err->message, text));

    ev_to_bytes(ev, buf);
    g_assert_false(nested_vcpu_events_decode(buf, sizeof(buf), &out,
                                             &dec_err));
    g_assert_error(dec_err, NESTED_EVENT_ERROR, code);
}

static void test_ev_lengths(void)
{
    uint8_t buf[sizeof(struct kvm_vcpu_events) + 1] = { 0 };
    struct kvm_vcpu_events out;
    g_autoptr(GError) e1 = NULL;
    g_autoptr(GError) e2 = NULL;
    size_t len;

    for (len = 0; len < sizeof(out); len++) {
        g_assert_false(nested_vcpu_events_decode(buf, len, &out, NULL));
    }
    g_assert_false(nested_vcpu_events_decode(buf, 63, &out, &e1));
    g_assert_error(e1, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_TRUNCATED);
    g_assert_false(nested_vcpu_events_decode(buf, 65, &out, &e2));
    g_assert_error(e2, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_OVERSIZED);
    g_assert_true(nested_vcpu_events_decode(buf, 64, &out, NULL));
}

/* flags: only the six KVM_VCPUEVENT_VALID_* bits exist. */
static void test_ev_unknown_flag(void)
{
    struct kvm_vcpu_events ev = { .flags = 0x40 };

    expect_ev_error(&ev, NESTED_EVENT_ERROR_RESERVED, "flags=0x40");
}

/* reserved[26] and nmi.pad must be zero. */
static void test_ev_reserved(void)
{
    struct kvm_vcpu_events ev = { 0 };

    ev.reserved[5] = 1;
    expect_ev_error(&ev, NESTED_EVENT_ERROR_RESERVED,
                    "reserved[5]=1: must be 0");
    memset(&ev, 0, sizeof(ev));
    ev.nmi.pad = 3;
    expect_ev_error(&ev, NESTED_EVENT_ERROR_RESERVED, "nmi.pad=3");
    memset(&ev, 0, sizeof(ev));
    ev.interrupt.shadow = 4;
    expect_ev_error(&ev, NESTED_EVENT_ERROR_RESERVED, "interrupt.shadow=0x4");
}

/* exception.injected and the other __u8 flags are booleans. */
static void test_ev_bool(void)
{
    struct kvm_vcpu_events ev = { 0 };

    ev.exception.injected = 2;
    ev.exception.nr = 13;
    expect_ev_error(&ev, NESTED_EVENT_ERROR_INVALID,
                    "exception.injected=2: must be 0 or 1");
    memset(&ev, 0, sizeof(ev));
    ev.flags = KVM_VCPUEVENT_VALID_TRIPLE_FAULT;
    ev.triple_fault.pending = 0xff;
    expect_ev_error(&ev, NESTED_EVENT_ERROR_INVALID,
                    "triple_fault.pending=255");
}

/* exception.pending / exception_has_payload need VALID_PAYLOAD. */
static void test_ev_payload_flag(void)
{
    struct kvm_vcpu_events ev = { 0 };

    ev.exception.pending = 1;
    ev.exception.nr = 14;
    expect_ev_error(&ev, NESTED_EVENT_ERROR_INVALID,
                    "need KVM_VCPUEVENT_VALID_PAYLOAD");
    ev.flags = KVM_VCPUEVENT_VALID_PAYLOAD;
    ev.exception.injected = 1;
    expect_ev_error(&ev, NESTED_EVENT_ERROR_INVALID,
                    "exception.pending=1: exception also injected");
    ev.exception.injected = 0;
    ev.exception.nr = 2;
    expect_ev_error(&ev, NESTED_EVENT_ERROR_INVALID, "exception.nr=2");
}

/*
 * A blob as KVM_GET_VCPU_EVENTS returns it on 6.1 with exception payload
 * and triple-fault events enabled: stale nr fields included.
 */
static struct kvm_vcpu_events kvm_get_sample(void)
{
    struct kvm_vcpu_events ev = { 0 };

    ev.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW |
               KVM_VCPUEVENT_VALID_SMM | KVM_VCPUEVENT_VALID_PAYLOAD |
               KVM_VCPUEVENT_VALID_TRIPLE_FAULT;
    ev.exception.injected = 1;
    ev.exception.nr = 13;
    ev.exception.has_error_code = 1;
    ev.exception.error_code = 0x18;
    ev.interrupt.nr = 0x31;          /* stale: not injected */
    ev.interrupt.shadow = KVM_X86_SHADOW_INT_STI;
    ev.nmi.pending = 1;
    ev.nmi.masked = 1;
    ev.smi.latched_init = 1;
    return ev;
}

static NestedRestoreCaps caps_for_flags(uint32_t flags, NestedVendor vendor)
{
    return (NestedRestoreCaps) {
        .vendor = vendor, .vcpu_events = true, .nested_state = true,
        .exception_payload = flags & KVM_VCPUEVENT_VALID_PAYLOAD,
        .triple_fault_event = flags & KVM_VCPUEVENT_VALID_TRIPLE_FAULT,
        .smm = flags & KVM_VCPUEVENT_VALID_SMM, .nrips = true,
    };
}

/* blob -> struct -> model -> plan's struct == canonical blob. */
static void roundtrip_events(const struct kvm_vcpu_events *src)
{
    uint8_t buf[sizeof(*src)], back[sizeof(*src)];
    struct kvm_vcpu_events dec, canon;
    NestedEventState st;
    NestedRestoreCaps caps = caps_for_flags(src->flags, NESTED_VENDOR_SVM);
    NestedRestorePlan plan;
    g_autoptr(GError) err = NULL;

    ev_to_bytes(src, buf);
    g_assert_true(nested_vcpu_events_decode(buf, sizeof(buf), &dec, NULL));
    nested_event_state_init(&st, NESTED_VENDOR_SVM);
    g_assert_true(nested_event_import_vcpu_events(&st, &dec, NULL));
    if (!nested_event_plan_restore(&st, &caps, &plan, &err)) {
        g_error("plan: %s", err->message);
    }
    canon = dec;
    nested_vcpu_events_canonicalize(&canon);
    /* The planner always states NMI and shadow. */
    canon.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING |
                   KVM_VCPUEVENT_VALID_SHADOW;
    g_assert_true(nested_vcpu_events_encode(&plan.events, back, sizeof(back),
                                            NULL));
    g_assert_cmpmem(back, sizeof(back), &canon, sizeof(canon));
}

static void test_ev_kvm_get_sample(void)
{
    struct kvm_vcpu_events ev = kvm_get_sample();
    NestedEventState st;

    nested_event_state_init(&st, NESTED_VENDOR_SVM);
    g_assert_true(nested_event_import_vcpu_events(&st, &ev, NULL));
    g_assert_true(st.l1.injected.valid);
    g_assert_cmpuint(st.l1.injected.type, ==, NESTED_EVENT_HW_EXCEPTION);
    g_assert_cmpuint(st.l1.injected.vector, ==, 13);
    g_assert_cmphex(st.l1.injected.error_code, ==, 0x18);
    g_assert_cmpuint(st.l1.interrupt_shadow, ==, KVM_X86_SHADOW_INT_STI);
    g_assert_true(st.l1.nmi_masked);
    g_assert_true(st.smi.latched_init);
    roundtrip_events(&ev);
}

/*
 * What stock QEMU 10.0.13 cannot carry, so that only then the subsection
 * is sent.  interrupt.shadow: SVM's get reports VMCB int_state bit 0 as
 * KVM_X86_SHADOW_INT_MOV_SS | KVM_X86_SHADOW_INT_STI, and stock's
 * kvm_put_vcpu_events() never sets KVM_VCPUEVENT_VALID_SHADOW.
 */
static void test_ev_beyond_stock(void)
{
    struct kvm_vcpu_events ev = { .flags = KVM_VCPUEVENT_VALID_SHADOW };
    NestedEventState st;

    /* L0 #GP injected, NMI pending and masked: stock's env fields */
    ev.exception.injected = 1;
    ev.exception.nr = 13;
    ev.exception.has_error_code = 1;
    ev.exception.error_code = 0x18;
    ev.nmi.pending = 1;
    ev.nmi.masked = 1;
    nested_event_state_init(&st, NESTED_VENDOR_SVM);
    g_assert_true(nested_event_import_vcpu_events(&st, &ev, NULL));
    g_assert_false(nested_event_beyond_stock(&st));

    /* the same vCPU between STI and HLT */
    ev.interrupt.shadow = KVM_X86_SHADOW_INT_MOV_SS | KVM_X86_SHADOW_INT_STI;
    nested_event_state_init(&st, NESTED_VENDOR_SVM);
    g_assert_true(nested_event_import_vcpu_events(&st, &ev, NULL));
    g_assert_true(nested_event_beyond_stock(&st));

    /* in guest mode the shadow is L2's */
    nested_event_state_init(&st, NESTED_VENDOR_SVM);
    st.guest_mode = true;
    g_assert_true(nested_event_import_vcpu_events(&st, &ev, NULL));
    g_assert_cmpuint(st.l2.interrupt_shadow, ==, 3);
    g_assert_true(nested_event_beyond_stock(&st));

    /* an L1-origin event (VMCB12 EVENTINJ) needs its origin carried */
    nested_event_state_init(&st, NESTED_VENDOR_SVM);
    st.l2.injected.valid = true;
    st.l2.injected.type = NESTED_EVENT_NMI;
    st.l2.injected.vector = 2;
    g_assert_false(nested_event_beyond_stock(&st));
    st.l2.injected.origin = NESTED_ORIGIN_L1;
    g_assert_true(nested_event_beyond_stock(&st));
}

typedef struct FlagCase {
    const char *path;
    uint32_t flags;
    void (*fill)(struct kvm_vcpu_events *ev);
} FlagCase;

static void fill_nmi_pending(struct kvm_vcpu_events *ev)
{
    ev->nmi.pending = 2;                    /* nmi.pending */
}

static void fill_sipi(struct kvm_vcpu_events *ev)
{
    ev->sipi_vector = 0x9a;                 /* sipi_vector */
}

static void fill_shadow(struct kvm_vcpu_events *ev)
{
    ev->interrupt.shadow = KVM_X86_SHADOW_INT_MOV_SS; /* interrupt.shadow */
}

static void fill_smm(struct kvm_vcpu_events *ev)
{
    ev->smi.smm = 1;                        /* smi.* */
    ev->smi.pending = 1;
    ev->smi.smm_inside_nmi = 1;
}

static void fill_payload(struct kvm_vcpu_events *ev)
{
    ev->exception.pending = 1;              /* exception_has_payload */
    ev->exception.nr = 14;
    ev->exception.has_error_code = 1;
    ev->exception.error_code = 6;
    ev->exception_has_payload = 1;
    ev->exception_payload = 0x7fff0000;
}

static void fill_triple(struct kvm_vcpu_events *ev)
{
    ev->triple_fault.pending = 1;           /* triple_fault.pending */
}

static const FlagCase flag_cases[] = {
    { "/kvm/vcpu-events/flag/nmi-pending", KVM_VCPUEVENT_VALID_NMI_PENDING,
      fill_nmi_pending },
    { "/kvm/vcpu-events/flag/sipi-vector", KVM_VCPUEVENT_VALID_SIPI_VECTOR,
      fill_sipi },
    { "/kvm/vcpu-events/flag/shadow", KVM_VCPUEVENT_VALID_SHADOW,
      fill_shadow },
    { "/kvm/vcpu-events/flag/smm", KVM_VCPUEVENT_VALID_SMM, fill_smm },
    { "/kvm/vcpu-events/flag/payload", KVM_VCPUEVENT_VALID_PAYLOAD,
      fill_payload },
    { "/kvm/vcpu-events/flag/triple-fault", KVM_VCPUEVENT_VALID_TRIPLE_FAULT,
      fill_triple },
};

static void test_ev_flag(gconstpointer opaque)
{
    const FlagCase *fc = opaque;
    struct kvm_vcpu_events ev = { .flags = fc->flags }, stripped;
    uint8_t buf[sizeof(ev)];
    g_autoptr(GError) err = NULL;

    fc->fill(&ev);
    roundtrip_events(&ev);

    /* The same fields without their flag are refused or ignored. */
    stripped = ev;
    stripped.flags = 0;
    ev_to_bytes(&stripped, buf);
    if (nested_vcpu_events_decode(buf, sizeof(buf), &stripped, &err)) {
        struct kvm_vcpu_events canon = stripped;

        nested_vcpu_events_canonicalize(&canon);
        g_assert_cmpint(memcmp(&canon, &stripped, sizeof(canon)), !=, 0);
    } else {
        g_assert_nonnull(strstr(err->message, "VALID_PAYLOAD"));
    }
}

/* interrupt.soft: KVM never reports one; nothing to restore it from. */
static void test_ev_soft_interrupt(void)
{
    struct kvm_vcpu_events ev = { 0 };
    NestedEventState st;
    g_autoptr(GError) err = NULL;

    ev.interrupt.injected = 1;
    ev.interrupt.soft = 1;
    ev.interrupt.nr = 0x80;
    nested_event_state_init(&st, NESTED_VENDOR_VMX);
    g_assert_false(nested_event_import_vcpu_events(&st, &ev, &err));
    g_assert_error(err, NESTED_EVENT_ERROR,
                   NESTED_EVENT_ERROR_UNREPRESENTABLE);
    g_assert_nonnull(strstr(err->message, "interrupt.soft=1"));
}

/* nmi.injected + interrupt.injected: one delivery at a time. */
static void test_ev_two_injected(void)
{
    struct kvm_vcpu_events ev = { 0 };
    NestedEventState st;
    g_autoptr(GError) err = NULL;

    ev.interrupt.injected = 1;
    ev.nmi.injected = 1;
    nested_event_state_init(&st, NESTED_VENDOR_VMX);
    g_assert_false(nested_event_import_vcpu_events(&st, &ev, &err));
    g_assert_nonnull(strstr(err->message, "interrupt.injected=1"));
}

/* ------------------------------------------------------------------ */
/* kvm_nested_state                                                   */
/* ------------------------------------------------------------------ */

/* The lab's fresh vCPU: format 1, flags GIF_SET, size 128. */
static void test_ns_svm_fresh(void)
{
    g_autofree uint8_t *b = ns_blob(KVM_STATE_NESTED_GIF_SET,
                                    KVM_STATE_NESTED_FORMAT_SVM, 128);
    NestedStateView v;
    NestedEventState st;
    uint8_t back[128];

    g_assert_true(nested_state_decode(b, 128, &v, NULL));
    g_assert_false(v.has_vmcs);
    nested_event_state_init(&st, NESTED_VENDOR_NONE);
    g_assert_true(nested_event_import_nested_state(&st, &v, 0, 0, NULL));
    g_assert_cmpuint(st.vendor, ==, NESTED_VENDOR_SVM);
    g_assert_true(st.gif);
    g_assert_false(st.guest_mode);
    g_assert_true(nested_state_encode(&v, back, sizeof(back), NULL));
    g_assert_cmpmem(back, 128, b, 128);
}

static uint8_t *svm_guest_blob(uint32_t event_inj, uint32_t err,
                               uint64_t next_rip)
{
    uint8_t *b = ns_blob(KVM_STATE_NESTED_GUEST_MODE |
                         KVM_STATE_NESTED_GIF_SET,
                         KVM_STATE_NESTED_FORMAT_SVM, NESTED_STATE_SVM_MAX);

    put64(b + SVM_VMCB_PA, 0x12345000);
    /* data.svm[0].vmcb12: vmcb_control_area at its architectural spots */
    put32(b + DATA + 0xa8, event_inj);
    put32(b + DATA + 0xac, err);
    put64(b + DATA + 0xc8, next_rip);
    put32(b + DATA + 0x60, 0x01000000);     /* int_ctl: V_INTR_MASKING */
    put32(b + DATA + 0x88, 0x80000b0e);     /* exit_int_info */
    put32(b + DATA + 0x8c, 0x4);            /* exit_int_info_err */
    return b;
}

/* vmcb12.control.event_inj with V: L1's NMI still in flight. */
static void test_ns_svm_l1_nmi(void)
{
    g_autofree uint8_t *b = svm_guest_blob(0x80000202, 0, 0);
    g_autofree uint8_t *back = g_malloc0(NESTED_STATE_SVM_MAX);
    NestedStateView v;
    NestedEventState st;

    g_assert_true(nested_state_decode(b, NESTED_STATE_SVM_MAX, &v, NULL));
    g_assert_true(v.has_vmcs);
    g_assert_cmphex(v.vmcb_pa, ==, 0x12345000);
    g_assert_cmphex(v.svm_event_inj, ==, 0x80000202);
    g_assert_cmphex(v.svm_exit_int_info, ==, 0x80000b0e);
    g_assert_cmphex(v.svm_exit_int_info_err, ==, 4);
    g_assert_cmphex(v.svm_int_ctl, ==, 0x01000000);
    nested_event_state_init(&st, NESTED_VENDOR_NONE);
    g_assert_true(nested_event_import_nested_state(&st, &v, 0x1000, 0, NULL));
    g_assert_true(st.guest_mode);
    g_assert_true(st.l2.injected.valid);
    g_assert_cmpuint(st.l2.injected.type, ==, NESTED_EVENT_NMI);
    g_assert_cmpuint(st.l2.injected.origin, ==, NESTED_ORIGIN_L1);
    g_assert_true(nested_event_validate(&st, NULL));
    g_assert_true(nested_state_encode(&v, back, NESTED_STATE_SVM_MAX,
                                      NULL));
    g_assert_cmpmem(back, NESTED_STATE_SVM_MAX, b, NESTED_STATE_SVM_MAX);
}

/*
 * vmcb12.control.next_rip gives the soft event's return address; L1 may
 * point it anywhere (APM vol. 2, 15.20), not only past an instruction.
 */
static void test_ns_svm_soft(void)
{
    g_autofree uint8_t *b = svm_guest_blob(0x80000480, 0, 0x401002);
    NestedStateView v;
    NestedEventState st;

    g_assert_true(nested_state_decode(b, NESTED_STATE_SVM_MAX, &v, NULL));
    nested_event_state_init(&st, NESTED_VENDOR_NONE);
    g_assert_true(nested_event_import_nested_state(&st, &v, 0x401000,
                                                   0x10000, NULL));
    g_assert_cmpuint(st.l2.injected.type, ==, NESTED_EVENT_SOFT_INTR);
    g_assert_cmpuint(st.l2.injected.insn_len, ==, 2);
    g_assert_cmphex(st.l2.injected.old_rip, ==, 0x401000);
    g_assert_cmphex(st.l2.injected.cs_base, ==, 0x10000);
    g_assert_true(nested_event_validate(&st, NULL));
    /* No backing instruction: next_rip 1 MiB below RIP is kept as is. */
    g_assert_true(nested_event_import_nested_state(&st, &v, 0x500000, 0,
                                                   NULL));
    g_assert_cmphex(st.l2.injected.next_rip, ==, 0x401002);
    g_assert_cmphex(st.l2.injected.old_rip, ==, 0x500000);
    g_assert_cmpuint(st.l2.injected.insn_len, ==, 0);
    g_assert_true(nested_event_validate(&st, NULL));
}

/*
 * A cancelled entry right after L1's VMRUN: KVM's svm_cancel_injection()
 * moves vmcb02's copy of EVENTINJ into its own queue (nmi.injected in
 * kvm_vcpu_events) while the cached vmcb12.control.event_inj keeps it.
 * One event, L1's; a different one in the queue is refused by name.
 */
static void test_ns_svm_cancelled_entry(void)
{
    g_autofree uint8_t *b = svm_guest_blob(0x80000202, 0, 0);
    struct kvm_vcpu_events ev = { .flags = KVM_VCPUEVENT_VALID_NMI_PENDING };
    NestedStateView v;
    NestedEventState st;
    g_autoptr(GError) err = NULL;

    g_assert_true(nested_state_decode(b, NESTED_STATE_SVM_MAX, &v, NULL));
    nested_event_state_init(&st, NESTED_VENDOR_SVM);
    g_assert_true(nested_event_import_nested_state(&st, &v, 0x1000, 0, NULL));
    ev.nmi.injected = 1;
    g_assert_true(nested_event_import_vcpu_events(&st, &ev, NULL));
    g_assert_cmpuint(st.l2.injected.type, ==, NESTED_EVENT_NMI);
    g_assert_cmpuint(st.l2.injected.origin, ==, NESTED_ORIGIN_L1);
    g_assert_true(nested_event_validate(&st, NULL));

    ev.nmi.injected = 0;
    ev.interrupt.injected = 1;
    ev.interrupt.nr = 0x30;
    g_assert_false(nested_event_import_vcpu_events(&st, &ev, &err));
    g_assert_cmpstr(err->message, ==,
                    "l2.injected.type=ext-intr: KVM reports ext-intr vector "
                    "48 while L1's nmi vector 2 waits in the nested state");
}

/* hdr.vmx.vmxon_pa = -1: not in VMX operation, header only. */
static void test_ns_vmx_off(void)
{
    g_autofree uint8_t *b = ns_blob(0, KVM_STATE_NESTED_FORMAT_VMX, 128);
    NestedStateView v;
    NestedEventState st;

    put64(b + VMX_HDR(vmxon_pa), UINT64_MAX);
    put64(b + VMX_HDR(vmcs12_pa), UINT64_MAX);
    g_assert_true(nested_state_decode(b, 128, &v, NULL));
    nested_event_state_init(&st, NESTED_VENDOR_NONE);
    g_assert_true(nested_event_import_nested_state(&st, &v, 0, 0, NULL));
    g_assert_cmpuint(st.vendor, ==, NESTED_VENDOR_VMX);
    g_assert_false(st.guest_mode);

    put64(b + VMX_HDR(vmcs12_pa), 0x200000);
    g_assert_false(nested_state_decode(b, 128, &v, NULL));
}

/* vmcs12.vm_entry_intr_info_field/error code/instruction length. */
static void test_ns_vmx_entry_event(void)
{
    uint32_t size = NESTED_STATE_HDR_SIZE + NESTED_STATE_VMCS_SIZE;
    g_autofree uint8_t *b = vmx_blob(GM | KVM_STATE_NESTED_RUN_PENDING, size);
    g_autofree uint8_t *back = g_malloc0(size);
    NestedStateView v;
    NestedEventState st;

    put32(b + DATA + 788, 0x80000480);
    put32(b + DATA + 792, 0);
    put32(b + DATA + 796, 2);
    put32(b + DATA + 824, 0x80000b0e);             /* idt_vectoring_info */
    put32(b + DATA + 828, 0x2);
    put32(b + DATA + 816, 0x80001202);             /* vm_exit_intr_info */
    put32(b + DATA + 912, 0x8);                    /* interruptibility */
    g_assert_true(nested_state_decode(b, size, &v, NULL));
    g_assert_cmphex(v.vmx_entry_intr_info, ==, 0x80000480);
    g_assert_cmpuint(v.vmx_entry_instruction_len, ==, 2);
    g_assert_cmphex(v.vmx_idt_vectoring_info, ==, 0x80000b0e);
    g_assert_cmphex(v.vmx_idt_vectoring_error_code, ==, 2);
    g_assert_cmphex(v.vmx_exit_intr_info, ==, 0x80001202);
    g_assert_cmphex(v.vmx_guest_interruptibility, ==, 8);
    nested_event_state_init(&st, NESTED_VENDOR_NONE);
    g_assert_true(nested_event_import_nested_state(&st, &v, 0x7000, 0, NULL));
    g_assert_true(st.nested_run_pending);
    g_assert_cmpuint(st.l2.injected.type, ==, NESTED_EVENT_SOFT_INTR);
    g_assert_cmphex(st.l2.injected.next_rip, ==, 0x7002);
    g_assert_true(nested_event_validate(&st, NULL));
    g_assert_true(nested_state_encode(&v, back, size, NULL));
    g_assert_cmpmem(back, size, b, size);

    /* Without RUN_PENDING the word is a leftover, not an event. */
    put16(b, GM);
    g_assert_true(nested_state_decode(b, size, &v, NULL));
    g_assert_true(nested_event_import_nested_state(&st, &v, 0x7000, 0, NULL));
    g_assert_false(st.l2.injected.valid);
}

/*
 * vmcs12.guest_interruptibility_info bit 3 (blocking by NMI) inside L2's
 * handler of an NMI that L1 injected, while KVM_GET_VCPU_EVENTS reports
 * nmi.masked 0: KVM's nmi_known_unmasked, set by prepare_vmcs02_early()
 * from vmcs12 before the NMI was delivered, is stale.  L2 is blocked.
 */
static void test_ns_vmx_nmi_blocking(void)
{
    uint32_t size = NESTED_STATE_HDR_SIZE + NESTED_STATE_VMCS_SIZE;
    g_autofree uint8_t *b = vmx_blob(GM, size);
    struct kvm_vcpu_events ev = { .flags = KVM_VCPUEVENT_VALID_NMI_PENDING };
    NestedStateView v;
    NestedEventState st;

    put32(b + DATA + 912, 0x8);
    g_assert_true(nested_state_decode(b, size, &v, NULL));
    nested_event_state_init(&st, NESTED_VENDOR_NONE);
    g_assert_true(nested_event_import_nested_state(&st, &v, 0x7000, 0, NULL));
    g_assert_true(nested_event_import_vcpu_events(&st, &ev, NULL));
    g_assert_false(st.l2.nmi_masked);
    g_assert_true(nested_event_import_vmx_nmi_blocking(&st, &v));
    g_assert_true(st.l2.nmi_masked);
    g_assert_false(st.l1.nmi_masked);
    g_assert_true(nested_event_validate(&st, NULL));
    /* already masked: nothing to change */
    g_assert_false(nested_event_import_vmx_nmi_blocking(&st, &v));

    /* STI/MOV SS blocking (bits 0-1) says nothing about NMIs */
    put32(b + DATA + 912, 0x3);
    g_assert_true(nested_state_decode(b, size, &v, NULL));
    g_assert_true(nested_event_import_nested_state(&st, &v, 0x7000, 0, NULL));
    g_assert_true(nested_event_import_vcpu_events(&st, &ev, NULL));
    g_assert_false(nested_event_import_vmx_nmi_blocking(&st, &v));
    g_assert_false(st.l2.nmi_masked);

    /* outside guest mode vmcs12 is not L1's state: left alone */
    put32(b + DATA + 912, 0x8);
    put16(b, 0);
    g_assert_true(nested_state_decode(b, size, &v, NULL));
    g_assert_true(nested_event_import_nested_state(&st, &v, 0x7000, 0, NULL));
    g_assert_true(nested_event_import_vcpu_events(&st, &ev, NULL));
    g_assert_false(nested_event_import_vmx_nmi_blocking(&st, &v));
    g_assert_false(st.l1.nmi_masked);
}

int main(int argc, char **argv)
{
    size_t i;

    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/kvm/vcpu-events/lengths", test_ev_lengths);
    g_test_add_func("/kvm/vcpu-events/flags-unknown", test_ev_unknown_flag);
    g_test_add_func("/kvm/vcpu-events/reserved", test_ev_reserved);
    g_test_add_func("/kvm/vcpu-events/booleans", test_ev_bool);
    g_test_add_func("/kvm/vcpu-events/exception-payload-rules",
                    test_ev_payload_flag);
    g_test_add_func("/kvm/vcpu-events/kvm-get-sample",
                    test_ev_kvm_get_sample);
    for (i = 0; i < G_N_ELEMENTS(flag_cases); i++) {
        g_test_add_data_func(flag_cases[i].path, &flag_cases[i],
                             test_ev_flag);
    }
    g_test_add_func("/kvm/vcpu-events/interrupt-soft",
                    test_ev_soft_interrupt);
    g_test_add_func("/kvm/vcpu-events/two-injected", test_ev_two_injected);
    g_test_add_func("/kvm/vcpu-events/beyond-stock", test_ev_beyond_stock);
    g_test_add_func("/kvm/nested-state/svm/fresh-vcpu", test_ns_svm_fresh);
    g_test_add_func("/kvm/nested-state/svm/cancelled-entry",
                    test_ns_svm_cancelled_entry);
    g_test_add_func("/kvm/nested-state/svm/event-inj-nmi",
                    test_ns_svm_l1_nmi);
    g_test_add_func("/kvm/nested-state/svm/event-inj-soft-next-rip",
                    test_ns_svm_soft);
    g_test_add_func("/kvm/nested-state/vmx/outside-vmx", test_ns_vmx_off);
    g_test_add_func("/kvm/nested-state/vmx/nmi-blocking",
                    test_ns_vmx_nmi_blocking);
    g_test_add_func("/kvm/nested-state/vmx/vm-entry-intr-info",
                    test_ns_vmx_entry_event);
    return g_test_run();
}
