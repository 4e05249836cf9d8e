/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * KVM_CAP_X86_NESTED_EVENT_STATE (the lead's kernel series,
 * scripts/kernel/): kvm_vcpu_events and kvm_nested_state blobs crafted
 * from that series' layouts, by byte offset, because QEMU's
 * linux-headers do not have them.  Each case names the uAPI field it
 * exercises.  The model the kernel's facts build must be the one the
 * observer's verdict builds, so that both share the subsection and the
 * restore.
 */

#include <stddef.h>
#include <string.h>

#include "nested-blob.h"
#include "nested-import.h"
#include "nested-kernel.h"
#include "nested-restore.h"
#include "nested-state.h"
#include "nested-validate.h"
#include "nested-window.h"
#include "nested-wire.h"

#define L2_RIP 0x7ffff000a010ull
#define L2_CS_BASE 0x10000ull
#define L1_NEXT_RIP 0x7ffff000a7f0ull   /* L1's NextRIP, far from RIP */

/* The series' layout, written out here rather than taken from the codec */
#define EV_FLAG_SOFT 0x80u              /* KVM_VCPUEVENT_VALID_SOFT_EVENT */
#define EV_INSN_LEN 29                  /* __u8 soft_insn_len */
#define EV_PAD 30                       /* __u8 soft_pad[2] */
#define EV_NEXT_RIP 32                  /* __u64 soft_next_rip */
#define EV_RESERVED 40                  /* __u8 reserved[15] */
#define NS_SVM_EVENT 0x200u             /* KVM_STATE_NESTED_SVM_EVENT */
#define HDR_RESERVED0 (8 + 8)           /* hdr.svm.reserved0 */
#define HDR_EVENT_FLAGS (8 + 16)        /* hdr.svm.event_flags */
#define HDR_RESERVED1 (8 + 20)          /* hdr.svm.reserved1 */
#define HDR_OLD_RIP (8 + 24)            /* hdr.svm.soft_int_old_rip */
#define HDR_NEXT_RIP (8 + 32)           /* hdr.svm.soft_int_next_rip */
#define HDR_CSBASE (8 + 40)             /* hdr.svm.soft_int_csbase */
#define L1_NMI 1u                       /* KVM_SVM_NESTED_EVENT_L1_NMI */
#define SOFT_INT 2u                     /* KVM_SVM_NESTED_EVENT_SOFT_INT */

/* SVM EVENTINJ / EXITINTINFO bits (APM vol. 2, 15.20) */
#define V (1u << 31)
#define T_NMI (2u << 8)
#define T_EXC (3u << 8)
#define T_SOFT (4u << 8)

static uint8_t *ev_bytes(struct kvm_vcpu_events *ev)
{
    return (uint8_t *)ev;
}

/* What KVM_GET_VCPU_EVENTS reports with KVM_X86_NESTED_EVENT_SOFT on */
static struct kvm_vcpu_events soft_events(void)
{
    struct kvm_vcpu_events ev;

    memset(&ev, 0, sizeof(ev));
    ev.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW |
               KVM_VCPUEVENT_VALID_PAYLOAD | EV_FLAG_SOFT;
    return ev;
}

/* A queued INT 0x80 (interrupt.injected + interrupt.soft) and NextRIP */
static struct kvm_vcpu_events queued_int80(uint64_t next_rip)
{
    struct kvm_vcpu_events ev = soft_events();

    ev.interrupt.injected = 1;
    ev.interrupt.soft = 1;
    ev.interrupt.nr = 0x80;
    put64(ev_bytes(&ev) + EV_NEXT_RIP, next_rip);
    return ev;
}

/* An SVM kvm_nested_state in guest mode, with vmcb12 NextRIP */
static uint8_t *svm_guest_blob(uint16_t flags, uint64_t next_rip)
{
    uint8_t *b = ns_blob(GM | KVM_STATE_NESTED_GIF_SET | flags,
                         KVM_STATE_NESTED_FORMAT_SVM, NESTED_STATE_SVM_MAX);

    put64(b + SVM_VMCB_PA, 0x3000);
    put64(b + DATA + NESTED_VMCB_NEXT_RIP, next_rip);
    return b;
}

static void expect_soft_error(struct kvm_vcpu_events *ev, int code,
                              const char *text)
{
    NestedKernelSoft soft;
    g_autoptr(GError) err = NULL;

    g_assert_false(nested_kernel_soft_decode(ev, &soft, &err));
    g_assert_error(err, NESTED_EVENT_ERROR, code);
    if (strcmp(err->message, text)) {
        g_test_message("got: %s", err->message);
    }
    g_assert_cmpstr(err->message, ==, text);
}

static void expect_svm_error(const uint8_t *blob, int code, const char *text)
{
    NestedKernelSvm svm;
    g_autoptr(GError) err = NULL;

    g_assert_false(nested_kernel_svm_decode(blob, NESTED_STATE_SVM_MAX, &svm,
                                            &err));
    g_assert_error(err, NESTED_EVENT_ERROR, code);
    if (strcmp(err->message, text)) {
        g_test_message("got: %s", err->message);
    }
    g_assert_cmpstr(err->message, ==, text);
}

/* ------------------------------------------------------------------ */
/* kvm_vcpu_events: KVM_VCPUEVENT_VALID_SOFT_EVENT                      */
/* ------------------------------------------------------------------ */

/* interrupt.injected + interrupt.soft, soft_next_rip: a queued INT n */
static void test_soft_int(void)
{
    struct kvm_vcpu_events ev = queued_int80(L1_NEXT_RIP);
    NestedKernelSoft soft;

    g_assert_true(nested_kernel_soft_decode(&ev, &soft, NULL));
    g_assert_true(soft.reported);
    g_assert_true(soft.queued);
    g_assert_cmpuint(soft.type, ==, NESTED_EVENT_SOFT_INTR);
    g_assert_cmpuint(soft.vector, ==, 0x80);
    g_assert_cmphex(soft.next_rip, ==, L1_NEXT_RIP);
}

/* exception.injected with nr 3, soft_insn_len (VMX): a queued INT3 */
static void test_soft_int3(void)
{
    struct kvm_vcpu_events ev = soft_events();
    NestedKernelSoft soft;

    ev.exception.injected = 1;
    ev.exception.nr = 3;
    ev_bytes(&ev)[EV_INSN_LEN] = 1;
    g_assert_true(nested_kernel_soft_decode(&ev, &soft, NULL));
    g_assert_true(soft.queued);
    g_assert_cmpuint(soft.type, ==, NESTED_EVENT_SOFT_EXCEPTION);
    g_assert_cmpuint(soft.vector, ==, 3);
    g_assert_cmpuint(soft.insn_len, ==, 1);

    /* An injected #GP is a hardware exception, not a soft event. */
    ev.exception.nr = 13;
    ev_bytes(&ev)[EV_INSN_LEN] = 0;
    g_assert_true(nested_kernel_soft_decode(&ev, &soft, NULL));
    g_assert_true(soft.reported);
    g_assert_false(soft.queued);
}

/* Each rule of KVM_SET_VCPU_EVENTS's kvm_check_soft_event(), and more */
static void test_soft_refused(void)
{
    struct kvm_vcpu_events ev;

    ev = queued_int80(L1_NEXT_RIP);
    ev_bytes(&ev)[EV_INSN_LEN] = 16;            /* soft_insn_len > 15 */
    expect_soft_error(&ev, NESTED_EVENT_ERROR_INVALID,
                      "soft_insn_len=16: more than 15 bytes");

    ev = queued_int80(L1_NEXT_RIP);
    ev_bytes(&ev)[EV_PAD + 1] = 0x5a;           /* soft_pad[1] */
    expect_soft_error(&ev, NESTED_EVENT_ERROR_RESERVED,
                      "soft_pad[1]=0x5a: must be 0");

    ev = queued_int80(L1_NEXT_RIP);
    ev_bytes(&ev)[EV_RESERVED + 14] = 1;        /* reserved[14], byte 54 */
    expect_soft_error(&ev, NESTED_EVENT_ERROR_RESERVED,
                      "reserved[14]=0x01: must be 0");

    ev = soft_events();                         /* nothing queued */
    put64(ev_bytes(&ev) + EV_NEXT_RIP, 0x1234);
    expect_soft_error(&ev, NESTED_EVENT_ERROR_INVALID,
                      "soft_next_rip=0x1234: no soft event is queued");

    ev = soft_events();
    ev_bytes(&ev)[EV_INSN_LEN] = 2;
    expect_soft_error(&ev, NESTED_EVENT_ERROR_INVALID,
                      "soft_insn_len=2: no soft event is queued");

    ev = queued_int80(L1_NEXT_RIP);             /* and an INTO */
    ev.exception.injected = 1;
    ev.exception.nr = 4;
    expect_soft_error(&ev, NESTED_EVENT_ERROR_INVALID,
                      "interrupt.soft=1: with exception.injected=1 nr 4; "
                      "KVM queues one soft event at a time");

    ev = soft_events();                         /* soft without injected */
    ev.interrupt.soft = 1;
    expect_soft_error(&ev, NESTED_EVENT_ERROR_INVALID,
                      "interrupt.soft=1: without interrupt.injected");

    ev = queued_int80(L1_NEXT_RIP);             /* the bytes, no flag */
    ev.flags &= ~EV_FLAG_SOFT;
    expect_soft_error(&ev, NESTED_EVENT_ERROR_RESERVED,
                      "soft_next_rip=0x7ffff000a7f0: set without "
                      "KVM_VCPUEVENT_VALID_SOFT_EVENT");
}

/*
 * What QEMU reads: the report of a kernel without the capability
 * (interrupt.injected = injected && !soft, soft = 0; a soft exception
 * neither injected nor pending), which the existing import accepts as
 * it always did.
 */
static void test_soft_strip(void)
{
    struct kvm_vcpu_events ev = queued_int80(L1_NEXT_RIP);
    NestedEventState st;
    uint8_t zero[EV_RESERVED + 15 - EV_INSN_LEN] = { 0 };

    nested_kernel_soft_strip(&ev);
    g_assert_cmphex(ev.flags & EV_FLAG_SOFT, ==, 0);
    g_assert_cmpuint(ev.interrupt.injected, ==, 0);
    g_assert_cmpuint(ev.interrupt.soft, ==, 0);
    g_assert_cmpuint(ev.interrupt.nr, ==, 0x80);
    g_assert_cmpmem(ev_bytes(&ev) + EV_INSN_LEN, sizeof(zero), zero,
                    sizeof(zero));
    nested_event_state_init(&st, NESTED_VENDOR_SVM);
    st.guest_mode = true;
    g_assert_true(nested_event_import_vcpu_events(&st, &ev, NULL));
    g_assert_false(st.l2.injected.valid);

    ev = soft_events();
    ev.exception.injected = 1;
    ev.exception.nr = 4;
    nested_kernel_soft_strip(&ev);
    g_assert_cmpuint(ev.exception.injected, ==, 0);
    g_assert_cmpuint(ev.exception.nr, ==, 4);

    /* A hardware exception stays as it was. */
    ev = soft_events();
    ev.exception.injected = 1;
    ev.exception.nr = 13;
    ev.exception.has_error_code = 1;
    ev.exception.error_code = 0x18;
    nested_kernel_soft_strip(&ev);
    g_assert_cmpuint(ev.exception.injected, ==, 1);
    g_assert_cmpuint(ev.exception.error_code, ==, 0x18);

    /* Without the flag nothing is touched (the import judges it). */
    ev = soft_events();
    ev.flags &= ~EV_FLAG_SOFT;
    ev.interrupt.injected = 1;
    ev.interrupt.soft = 1;
    nested_kernel_soft_strip(&ev);
    g_assert_cmpuint(ev.interrupt.soft, ==, 1);
}

/* ------------------------------------------------------------------ */
/* kvm_nested_state: KVM_STATE_NESTED_SVM_EVENT                         */
/* ------------------------------------------------------------------ */

/* flags 0x200 and the header after vmcb_pa */
static void test_svm_event(void)
{
    g_autofree uint8_t *b = svm_guest_blob(NS_SVM_EVENT, 0);
    NestedKernelSvm svm;

    put32(b + HDR_EVENT_FLAGS, L1_NMI | SOFT_INT);
    put64(b + HDR_OLD_RIP, L2_RIP);
    put64(b + HDR_NEXT_RIP, L1_NEXT_RIP);
    put64(b + HDR_CSBASE, L2_CS_BASE);
    g_assert_true(nested_kernel_svm_decode(b, NESTED_STATE_SVM_MAX, &svm,
                                           NULL));
    g_assert_true(svm.reported);
    g_assert_cmphex(svm.event_flags, ==, L1_NMI | SOFT_INT);
    g_assert_cmphex(svm.soft_int_old_rip, ==, L2_RIP);
    g_assert_cmphex(svm.soft_int_next_rip, ==, L1_NEXT_RIP);
    g_assert_cmphex(svm.soft_int_csbase, ==, L2_CS_BASE);

    /* Without the flag there is nothing to read. */
    put16(b, GM | KVM_STATE_NESTED_GIF_SET);
    g_assert_true(nested_kernel_svm_decode(b, NESTED_STATE_SVM_MAX, &svm,
                                           NULL));
    g_assert_false(svm.reported);
}

/* svm_nested_event_valid(): what KVM_SET_NESTED_STATE refuses */
static void test_svm_refused(void)
{
    g_autofree uint8_t *b = svm_guest_blob(NS_SVM_EVENT, 0);

    put32(b + HDR_EVENT_FLAGS, L1_NMI | 4);     /* unknown bit 2 */
    expect_svm_error(b, NESTED_EVENT_ERROR_INVALID,
                     "hdr.svm.event_flags=0x5: unknown bits 0x4");
    put32(b + HDR_EVENT_FLAGS, L1_NMI);

    put64(b + HDR_RESERVED0, 0xfeed);           /* upstream's gpat slot */
    expect_svm_error(b, NESTED_EVENT_ERROR_RESERVED,
                     "hdr.svm.reserved0=0xfeed: must be 0");
    put64(b + HDR_RESERVED0, 0);

    put32(b + HDR_RESERVED1, 7);
    expect_svm_error(b, NESTED_EVENT_ERROR_RESERVED,
                     "hdr.svm.reserved1=0x7: must be 0");
    put32(b + HDR_RESERVED1, 0);

    /* The flag outside guest mode (GIF_SET | SVM_EVENT) */
    put16(b, KVM_STATE_NESTED_GIF_SET | NS_SVM_EVENT);
    expect_svm_error(b, NESTED_EVENT_ERROR_INVALID,
                     "flags=0x300: KVM_STATE_NESTED_SVM_EVENT without "
                     "GUEST_MODE");
}

/*
 * The stripped blob is what a kernel without KVM_X86_NESTED_EVENT_SVM
 * reports: stock's cpu/nested_state then carries no 0x200, which such a
 * kernel's KVM_SET_NESTED_STATE refuses with -EINVAL and which the
 * decoder refuses as such a kernel would.
 */
static void test_svm_strip(void)
{
    g_autofree uint8_t *b = svm_guest_blob(NS_SVM_EVENT, L1_NEXT_RIP);
    g_autofree uint8_t *plain = svm_guest_blob(0, L1_NEXT_RIP);
    g_autofree uint8_t *vmx = vmx_blob(GM | NS_SVM_EVENT,
                                       NESTED_STATE_HDR_SIZE +
                                       NESTED_STATE_VMCS_SIZE);
    NestedStateView view;
    NestedKernelSvm svm;
    g_autoptr(GError) err = NULL;

    put32(b + HDR_EVENT_FLAGS, L1_NMI);
    put64(b + HDR_NEXT_RIP, L1_NEXT_RIP);
    g_assert_false(nested_state_decode(b, NESTED_STATE_SVM_MAX, &view,
                                       &err));
    g_assert_cmpstr(err->message, ==,
                    "flags=0x301: bits 0x200 not valid for SVM");
    g_clear_error(&err);

    nested_kernel_svm_strip(b, NESTED_STATE_SVM_MAX);
    g_assert_cmpmem(b, NESTED_STATE_SVM_MAX, plain, NESTED_STATE_SVM_MAX);
    g_assert_true(nested_state_decode(b, NESTED_STATE_SVM_MAX, &view, NULL));

    /* 0x200 means nothing on VMX: left for the decoder to refuse. */
    g_assert_true(nested_kernel_svm_decode(vmx, NESTED_STATE_VMX_MAX, &svm,
                                           NULL));
    g_assert_false(svm.reported);
    nested_kernel_svm_strip(vmx, NESTED_STATE_VMX_MAX);
    g_assert_false(nested_state_decode(vmx, NESTED_STATE_VMX_MAX, &view,
                                       &err));
    g_assert_cmpstr(err->message, ==,
                    "flags=0x201: bits 0x200 not valid for VMX");
}

/* ------------------------------------------------------------------ */
/* The model, as the mirror builds it at a pull                         */
/* ------------------------------------------------------------------ */

/*
 * nested_mirror_pull() with state-source kernel: the kernel's facts,
 * then the stripped blob and events into the model, then the facts.
 */
static bool kernel_model(uint8_t *blob, struct kvm_vcpu_events ev,
                         NestedEventState *st, GError **errp)
{
    NestedKernelSoft soft;
    NestedKernelSvm svm;
    NestedStateView view;

    if (!nested_kernel_svm_decode(blob, NESTED_STATE_SVM_MAX, &svm, errp) ||
        !nested_kernel_soft_decode(&ev, &soft, errp)) {
        return false;
    }
    nested_kernel_svm_strip(blob, NESTED_STATE_SVM_MAX);
    nested_kernel_soft_strip(&ev);
    nested_event_state_init(st, NESTED_VENDOR_SVM);
    return nested_state_decode(blob, NESTED_STATE_SVM_MAX, &view, errp) &&
           nested_event_import_nested_state(st, &view, L2_RIP, L2_CS_BASE,
                                            errp) &&
           nested_event_import_vcpu_events(st, &ev, errp) &&
           nested_kernel_apply(st, &soft, &svm, L2_RIP, L2_CS_BASE, errp);
}

/* The same vCPU as a stock kernel and the observer's verdict show it */
static void observer_model(const uint8_t *kernel_blob,
                           struct kvm_vcpu_events ev, uint32_t exit_int_info,
                           uint32_t exit_int_info_err, NestedEventState *st)
{
    g_autofree uint8_t *blob = g_memdup2(kernel_blob, NESTED_STATE_VMX_MAX);
    NestedWindow w = {
        .verdict = NESTED_WINDOW_L1_EVENT, .event_info = exit_int_info,
        .event_err = exit_int_info_err,
    };
    NestedStateView view;

    nested_kernel_svm_strip(blob, NESTED_STATE_SVM_MAX);
    nested_kernel_soft_strip(&ev);
    nested_event_state_init(st, NESTED_VENDOR_SVM);
    g_assert_true(nested_state_decode(blob, NESTED_STATE_SVM_MAX, &view,
                                      NULL));
    g_assert_true(nested_event_import_nested_state(st, &view, L2_RIP,
                                                   L2_CS_BASE, NULL));
    g_assert_true(nested_event_import_vcpu_events(st, &ev, NULL));
    g_assert_true(nested_window_apply(st, &w, L2_RIP, L2_CS_BASE, &view,
                                      NULL));
}

/*
 * The model from the kernel's facts into ST, asserted equal to the one
 * the observer builds from the same vCPU and its EXITINTINFO.
 */
static void kernel_model_as_observer(uint8_t *blob, struct kvm_vcpu_events ev,
                                     uint32_t exit_int_info,
                                     uint32_t exit_int_info_err,
                                     NestedEventState *st)
{
    g_autofree uint8_t *copy = g_memdup2(blob, NESTED_STATE_VMX_MAX);
    NestedEventState seen;

    g_assert_true(kernel_model(blob, ev, st, NULL));
    observer_model(copy, ev, exit_int_info, exit_int_info_err, &seen);
    g_assert_cmpmem(st, sizeof(*st), &seen, sizeof(seen));
}

/* What the plan may rely on in the lab: SVM with every capability. */
static const NestedRestoreCaps svm_caps = {
    .vendor = NESTED_VENDOR_SVM, .vcpu_events = true,
    .exception_payload = true, .nested_state = true, .nrips = true,
};

/*
 * hdr.svm.event_flags L1_NMI with nmi.injected: L1's NMI, the model the
 * observer builds, restored through vmcb12 EVENTINJ as before.
 */
static void test_apply_l1_nmi(void)
{
    g_autofree uint8_t *b = svm_guest_blob(NS_SVM_EVENT, 0);
    struct kvm_vcpu_events ev = soft_events();
    NestedEventState st;
    NestedRestorePlan plan;

    ev.nmi.injected = 1;
    ev.nmi.masked = 1;
    put32(b + HDR_EVENT_FLAGS, L1_NMI);
    kernel_model_as_observer(b, ev, V | T_NMI | 2, 0, &st);
    g_assert_cmpuint(st.l2.injected.type, ==, NESTED_EVENT_NMI);
    g_assert_cmpuint(st.l2.injected.origin, ==, NESTED_ORIGIN_L1);
    g_assert_true(nested_event_beyond_stock(&st));

    g_assert_true(nested_event_plan_restore(&st, &svm_caps, &plan, NULL));
    g_assert_cmpuint(plan.events.nmi.injected, ==, 0);

    /* Without L1_NMI the NMI is KVM's own, which stock restores. */
    b = (g_free(b), svm_guest_blob(NS_SVM_EVENT, 0));
    g_assert_true(kernel_model(b, ev, &st, NULL));
    g_assert_cmpuint(st.l2.injected.origin, ==, NESTED_ORIGIN_L0);
    g_assert_false(nested_event_beyond_stock(&st));
}

/*
 * A queued INT n with soft_next_rip in guest mode: L1's soft event with
 * its return address, the model the observer builds from EXITINTINFO and
 * vmcb12 NextRIP, and it travels in cpu/nested-events.
 */
static void test_apply_soft_int(void)
{
    g_autofree uint8_t *b = svm_guest_blob(NS_SVM_EVENT, L1_NEXT_RIP);
    struct kvm_vcpu_events ev = queued_int80(L1_NEXT_RIP);
    NestedEventState st, back;
    NestedStockView stock;
    NestedEventWire w;
    const NestedEvent *inj = &st.l2.injected;

    kernel_model_as_observer(b, ev, V | T_SOFT | 0x80, 0, &st);
    g_assert_true(inj->valid);
    g_assert_cmpuint(inj->type, ==, NESTED_EVENT_SOFT_INTR);
    g_assert_cmpuint(inj->vector, ==, 0x80);
    g_assert_cmpuint(inj->origin, ==, NESTED_ORIGIN_L1);
    g_assert_cmphex(inj->old_rip, ==, L2_RIP);
    g_assert_cmphex(inj->next_rip, ==, L1_NEXT_RIP);
    g_assert_cmphex(inj->cs_base, ==, L2_CS_BASE);
    g_assert_true(nested_event_validate(&st, NULL));

    /* The stream's (stripped) nested state gives the return address. */
    stock = (NestedStockView) {
        .vendor = NESTED_VENDOR_SVM, .guest_mode = true, .gif = true,
        .rip = L2_RIP, .cs_base = L2_CS_BASE,
        .nested_state = b, .nested_state_len = NESTED_STATE_SVM_MAX,
    };
    g_assert_true(nested_event_wire_encode(&st, &stock, &w, NULL));
    g_assert_true(nested_event_wire_decode(&w, &stock, &back, NULL));
    g_assert_cmpmem(&st, sizeof(st), &back, sizeof(back));
}

/*
 * exception.injected with has_error_code and error_code: stock would
 * restore the #GP with error code 0, so it travels as L1's, as the
 * observer carries L1's #GP; without an error code stock restores it
 * exactly, and it stays KVM's.
 */
static void test_apply_error_code(void)
{
    g_autofree uint8_t *b = svm_guest_blob(NS_SVM_EVENT, 0);
    struct kvm_vcpu_events ev = soft_events();
    NestedEventState st;
    NestedRestorePlan plan;

    ev.exception.injected = 1;
    ev.exception.nr = 13;
    ev.exception.has_error_code = 1;
    ev.exception.error_code = 0xf648;
    kernel_model_as_observer(b, ev, V | T_EXC | (1u << 11) | 13, 0xf648,
                             &st);
    g_assert_cmpuint(st.l2.injected.origin, ==, NESTED_ORIGIN_L1);
    g_assert_cmphex(st.l2.injected.error_code, ==, 0xf648);
    g_assert_true(nested_event_beyond_stock(&st));
    g_assert_true(nested_event_plan_restore(&st, &svm_caps, &plan, NULL));
    g_assert_cmpuint(plan.events.exception.injected, ==, 0);

    ev.exception.error_code = 0;
    g_free(b);
    b = svm_guest_blob(NS_SVM_EVENT, 0);
    g_assert_true(kernel_model(b, ev, &st, NULL));
    g_assert_cmpuint(st.l2.injected.origin, ==, NESTED_ORIGIN_L0);
    g_assert_false(nested_event_beyond_stock(&st));
}

/* INT3 as exception.injected nr 3: a soft exception, return RIP + 1 */
static void test_apply_int3(void)
{
    g_autofree uint8_t *b = svm_guest_blob(NS_SVM_EVENT, L2_RIP + 1);
    struct kvm_vcpu_events ev = soft_events();
    NestedEventState st;

    ev.exception.injected = 1;
    ev.exception.nr = 3;
    put64(ev_bytes(&ev) + EV_NEXT_RIP, L2_RIP + 1);
    g_assert_true(kernel_model(b, ev, &st, NULL));
    g_assert_cmpuint(st.l2.injected.type, ==, NESTED_EVENT_SOFT_EXCEPTION);
    g_assert_cmpuint(st.l2.injected.insn_len, ==, 1);
    g_assert_cmpuint(st.l2.injected.origin, ==, NESTED_ORIGIN_L1);
}

/*
 * What stays out of the model, as without the capability: a soft event
 * whose return address KVM would itself decode from RIP (soft_next_rip
 * 0), and one queued outside guest mode (L1's own instruction).
 */
static void test_apply_left_out(void)
{
    g_autofree uint8_t *b = svm_guest_blob(NS_SVM_EVENT, 0);
    g_autofree uint8_t *l1 = ns_blob(KVM_STATE_NESTED_GIF_SET,
                                     KVM_STATE_NESTED_FORMAT_SVM,
                                     NESTED_STATE_HDR_SIZE);
    NestedEventState st;

    g_assert_true(kernel_model(b, queued_int80(0), &st, NULL));
    g_assert_false(st.l2.injected.valid);
    g_assert_false(nested_event_beyond_stock(&st));

    g_assert_true(kernel_model(l1, queued_int80(0x401002), &st, NULL));
    g_assert_false(st.guest_mode);
    g_assert_false(st.l1.injected.valid);
    g_assert_false(nested_event_beyond_stock(&st));
}

/*
 * Right after L1's VMRUN (RUN_PENDING): the cached EVENTINJ holds L1's
 * INT n, KVM's SOFT_INT tracking is set, and a cancelled entry may have
 * queued vmcb02's copy too; one event, L1's.
 */
static void test_apply_run_pending(void)
{
    g_autofree uint8_t *b = svm_guest_blob(NS_SVM_EVENT |
                                           KVM_STATE_NESTED_RUN_PENDING,
                                           L1_NEXT_RIP);
    NestedEventState st;

    put32(b + DATA + NESTED_VMCB_EVENT_INJ, V | T_SOFT | 0x80);
    put32(b + HDR_EVENT_FLAGS, SOFT_INT);
    put64(b + HDR_OLD_RIP, L2_RIP);
    put64(b + HDR_NEXT_RIP, L1_NEXT_RIP);
    g_assert_true(kernel_model(b, queued_int80(L1_NEXT_RIP), &st, NULL));
    g_assert_cmpuint(st.l2.injected.type, ==, NESTED_EVENT_SOFT_INTR);
    g_assert_cmpuint(st.l2.injected.origin, ==, NESTED_ORIGIN_L1);
    g_assert_cmphex(st.l2.injected.next_rip, ==, L1_NEXT_RIP);
}

static void expect_apply_error(uint8_t *blob, struct kvm_vcpu_events ev,
                               int code, const char *text)
{
    NestedEventState st;
    g_autoptr(GError) err = NULL;

    g_assert_false(kernel_model(blob, ev, &st, &err));
    g_assert_error(err, NESTED_EVENT_ERROR, code);
    if (strcmp(err->message, text)) {
        g_test_message("got: %s", err->message);
    }
    g_assert_cmpstr(err->message, ==, text);
}

/* Facts that contradict the model, and missing ones, are refused. */
static void test_apply_refused(void)
{
    g_autofree uint8_t *b = NULL;
    struct kvm_vcpu_events ev = soft_events();
    NestedEventState st;
    NestedKernelSoft soft = { .reported = true };
    NestedKernelSvm svm = { .reported = true };
    g_autoptr(GError) err = NULL;

    /* event_flags L1_NMI with no NMI in kvm_vcpu_events */
    b = svm_guest_blob(NS_SVM_EVENT, 0);
    put32(b + HDR_EVENT_FLAGS, L1_NMI);
    expect_apply_error(b, ev, NESTED_EVENT_ERROR_INCONSISTENT,
                       "hdr.svm.event_flags=0x1: L1_NMI while l2.injected "
                       "is none");

    /* event_flags SOFT_INT with no soft event anywhere */
    b = (g_free(b), svm_guest_blob(NS_SVM_EVENT, 0));
    put32(b + HDR_EVENT_FLAGS, SOFT_INT);
    expect_apply_error(b, ev, NESTED_EVENT_ERROR_INCONSISTENT,
                       "hdr.svm.event_flags=0x2: SOFT_INT while l2.injected "
                       "is none");

    /* a queued soft event next to an injected #GP */
    b = (g_free(b), svm_guest_blob(NS_SVM_EVENT, L1_NEXT_RIP));
    ev = queued_int80(L1_NEXT_RIP);
    ev.exception.injected = 1;
    ev.exception.nr = 13;
    expect_apply_error(b, ev, NESTED_EVENT_ERROR_INCONSISTENT,
                       "l2.injected.type=hw-exception: KVM also reports a "
                       "queued soft-intr vector 128");

    /* guest mode without KVM_STATE_NESTED_SVM_EVENT */
    b = (g_free(b), svm_guest_blob(0, 0));
    expect_apply_error(b, soft_events(), NESTED_EVENT_ERROR_INVALID,
                       "kvm_nested_state.flags: guest_mode=1 without "
                       "KVM_STATE_NESTED_SVM_EVENT, so an NMI's origin is "
                       "unknown");

    /* guest mode without KVM_VCPUEVENT_VALID_SOFT_EVENT */
    b = (g_free(b), svm_guest_blob(NS_SVM_EVENT, 0));
    ev = soft_events();
    ev.flags &= ~EV_FLAG_SOFT;
    expect_apply_error(b, ev, NESTED_EVENT_ERROR_INVALID,
                       "flags: guest_mode=1 without "
                       "KVM_VCPUEVENT_VALID_SOFT_EVENT, so a queued soft "
                       "event would go unseen");

    /* VMX: the kernel tells an NMI's origin on SVM only */
    nested_event_state_init(&st, NESTED_VENDOR_VMX);
    st.guest_mode = true;
    g_assert_false(nested_kernel_apply(&st, &soft, &svm, 0, 0, &err));
    g_assert_error(err, NESTED_EVENT_ERROR,
                   NESTED_EVENT_ERROR_UNREPRESENTABLE);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/kernel/vcpu-events/soft-int", test_soft_int);
    g_test_add_func("/kernel/vcpu-events/soft-int3", test_soft_int3);
    g_test_add_func("/kernel/vcpu-events/refused", test_soft_refused);
    g_test_add_func("/kernel/vcpu-events/strip", test_soft_strip);
    g_test_add_func("/kernel/nested-state/svm-event", test_svm_event);
    g_test_add_func("/kernel/nested-state/refused", test_svm_refused);
    g_test_add_func("/kernel/nested-state/strip", test_svm_strip);
    g_test_add_func("/kernel/apply/l1-nmi", test_apply_l1_nmi);
    g_test_add_func("/kernel/apply/soft-int", test_apply_soft_int);
    g_test_add_func("/kernel/apply/error-code", test_apply_error_code);
    g_test_add_func("/kernel/apply/int3", test_apply_int3);
    g_test_add_func("/kernel/apply/left-out", test_apply_left_out);
    g_test_add_func("/kernel/apply/run-pending", test_apply_run_pending);
    g_test_add_func("/kernel/apply/refused", test_apply_refused);
    return g_test_run();
}
