/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * KVM_CAP_X86_NESTED_EVENT_STATE: what it adds to kvm_vcpu_events and
 * kvm_nested_state, read by byte offset and checked as KVM's SET ioctls
 * check it; those structures as a kernel without it reports them; and
 * its facts folded into the event model.  Every input is untrusted.
 */

#include <inttypes.h>
#include <string.h>

#include "nested-bytes.h"
#include "nested-kernel.h"
#include "nested-state.h"

G_STATIC_ASSERT(sizeof(struct kvm_vcpu_events) == 64);
/* The soft-event bytes lie in QEMU's reserved[], before the payload. */
G_STATIC_ASSERT(offsetof(struct kvm_vcpu_events, reserved) ==
                NESTED_EV_SOFT_INSN_LEN);
G_STATIC_ASSERT(offsetof(struct kvm_vcpu_events, exception_has_payload) ==
                NESTED_EV_RESERVED_END);
G_STATIC_ASSERT(NESTED_KSVM_END <= NESTED_STATE_HDR_SIZE);

static bool check_zero(const uint8_t *b, uint32_t from, uint32_t to,
                       const char *what, GError **errp)
{
    for (uint32_t i = from; i < to; i++) {
        if (b[i]) {
            return nested_event_fail(errp, NESTED_EVENT_ERROR_RESERVED,
                                     "%s[%u]=0x%02x: must be 0", what,
                                     i - from, b[i]);
        }
    }
    return true;
}

/* Without the flag the kernel wrote none of the bytes it carves. */
static bool check_soft_unreported(const NestedKernelSoft *s, GError **errp)
{
    if (s->insn_len) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_RESERVED,
                                 "soft_insn_len=%u: set without "
                                 "KVM_VCPUEVENT_VALID_SOFT_EVENT",
                                 s->insn_len);
    }
    if (s->next_rip) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_RESERVED,
                                 "soft_next_rip=0x%" PRIx64 ": set without "
                                 "KVM_VCPUEVENT_VALID_SOFT_EVENT",
                                 s->next_rip);
    }
    return true;
}

/* kvm_check_soft_event(): the rules KVM_SET_VCPU_EVENTS applies */
static bool check_soft_event(const struct kvm_vcpu_events *ev,
                             NestedKernelSoft *s, GError **errp)
{
    bool intr = ev->interrupt.injected && ev->interrupt.soft;
    bool exc = ev->exception.injected &&
               nested_vector_is_bp_or_of(ev->exception.nr);

    if (s->insn_len > NESTED_MAX_INSN_LEN) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "soft_insn_len=%u: more than %u bytes",
                                 s->insn_len, NESTED_MAX_INSN_LEN);
    }
    if (ev->interrupt.soft && !ev->interrupt.injected) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "interrupt.soft=%u: without "
                                 "interrupt.injected", ev->interrupt.soft);
    }
    if (intr && exc) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "interrupt.soft=1: with exception.injected=1 "
                                 "nr %u; KVM queues one soft event at a time",
                                 ev->exception.nr);
    }
    s->queued = intr || exc;
    if (!s->queued && s->insn_len) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "soft_insn_len=%u: no soft event is queued",
                                 s->insn_len);
    }
    if (!s->queued && s->next_rip) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "soft_next_rip=0x%" PRIx64 ": no soft event "
                                 "is queued", s->next_rip);
    }
    if (intr) {
        s->type = NESTED_EVENT_SOFT_INTR;
        s->vector = ev->interrupt.nr;
    } else if (exc) {
        s->type = NESTED_EVENT_SOFT_EXCEPTION;
        s->vector = ev->exception.nr;
    }
    return true;
}

bool nested_kernel_soft_decode(const struct kvm_vcpu_events *ev,
                               NestedKernelSoft *out, GError **errp)
{
    const uint8_t *b = (const uint8_t *)ev;

    memset(out, 0, sizeof(*out));
    out->reported = ev->flags & NESTED_VCPUEVENT_VALID_SOFT_EVENT;
    out->insn_len = b[NESTED_EV_SOFT_INSN_LEN];
    out->next_rip = nested_ld64(b + NESTED_EV_SOFT_NEXT_RIP);
    if (!check_zero(b, NESTED_EV_SOFT_PAD, NESTED_EV_SOFT_PAD + 2,
                    "soft_pad", errp) ||
        !check_zero(b, NESTED_EV_RESERVED, NESTED_EV_RESERVED_END,
                    "reserved", errp)) {
        return false;
    }
    if (!out->reported) {
        return check_soft_unreported(out, errp);
    }
    return check_soft_event(ev, out, errp);
}

/*
 * kvm_vcpu_ioctl_x86_get_vcpu_events() without the capability: a soft
 * interrupt is not injected and never soft, a soft exception neither
 * injected nor pending; nr and the error code stay as reported.
 */
void nested_kernel_soft_strip(struct kvm_vcpu_events *ev)
{
    uint8_t *b = (uint8_t *)ev;

    if (!(ev->flags & NESTED_VCPUEVENT_VALID_SOFT_EVENT)) {
        return;
    }
    ev->flags &= ~NESTED_VCPUEVENT_VALID_SOFT_EVENT;
    if (ev->interrupt.soft) {
        ev->interrupt.injected = 0;
        ev->interrupt.soft = 0;
    }
    if (nested_vector_is_bp_or_of(ev->exception.nr)) {
        ev->exception.injected = 0;
    }
    memset(b + NESTED_EV_SOFT_INSN_LEN, 0,
           NESTED_EV_RESERVED_END - NESTED_EV_SOFT_INSN_LEN);
}

bool nested_kernel_svm_decode(const uint8_t *blob, size_t len,
                              NestedKernelSvm *out, GError **errp)
{
    uint16_t flags;
    uint64_t reserved0;
    uint32_t reserved1;

    memset(out, 0, sizeof(*out));
    /* Too short, or VMX: nested_state_decode() refuses the rest. */
    if (len < NESTED_STATE_HDR_SIZE ||
        nested_ld16(blob + 2) != KVM_STATE_NESTED_FORMAT_SVM) {
        return true;
    }
    flags = nested_ld16(blob);
    if (!(flags & NESTED_STATE_SVM_EVENT)) {
        return true;
    }
    if (!(flags & KVM_STATE_NESTED_GUEST_MODE)) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "flags=0x%x: KVM_STATE_NESTED_SVM_EVENT "
                                 "without GUEST_MODE", flags);
    }
    reserved0 = nested_ld64(blob + NESTED_KSVM_RESERVED0);
    if (reserved0) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_RESERVED,
                                 "hdr.svm.reserved0=0x%" PRIx64 ": must be 0",
                                 reserved0);
    }
    out->event_flags = nested_ld32(blob + NESTED_KSVM_EVENT_FLAGS);
    if (out->event_flags & ~NESTED_KSVM_FLAGS_ALL) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "hdr.svm.event_flags=0x%x: unknown bits 0x%x",
                                 out->event_flags,
                                 out->event_flags & ~NESTED_KSVM_FLAGS_ALL);
    }
    reserved1 = nested_ld32(blob + NESTED_KSVM_RESERVED1);
    if (reserved1) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_RESERVED,
                                 "hdr.svm.reserved1=0x%x: must be 0",
                                 reserved1);
    }
    out->reported = true;
    out->soft_int_old_rip = nested_ld64(blob + NESTED_KSVM_SOFT_OLD_RIP);
    out->soft_int_next_rip = nested_ld64(blob + NESTED_KSVM_SOFT_NEXT_RIP);
    out->soft_int_csbase = nested_ld64(blob + NESTED_KSVM_SOFT_CSBASE);
    return true;
}

void nested_kernel_svm_strip(uint8_t *blob, size_t len)
{
    uint16_t flags;

    if (len < NESTED_STATE_HDR_SIZE ||
        nested_ld16(blob + 2) != KVM_STATE_NESTED_FORMAT_SVM) {
        return;
    }
    flags = nested_ld16(blob);
    if (!(flags & NESTED_STATE_SVM_EVENT)) {
        return;
    }
    nested_st16(blob, flags & ~NESTED_STATE_SVM_EVENT);
    memset(blob + NESTED_KSVM_RESERVED0, 0,
           NESTED_KSVM_END - NESTED_KSVM_RESERVED0);
}

static const char *event_name(const NestedEvent *ev)
{
    return ev->valid ? nested_event_type_name(ev->type) : "none";
}

/* A soft event KVM queued, against what the model already holds */
static bool apply_soft(NestedEvent *cur, const NestedKernelSoft *soft,
                       uint64_t rip, uint64_t cs_base, GError **errp)
{
    NestedEvent ev = {
        .valid = true, .type = soft->type, .vector = soft->vector,
        .origin = NESTED_ORIGIN_L1,
    };

    if (cur->valid) {
        /*
         * An entry cancelled right after L1's VMRUN: the cached EVENTINJ
         * still holds the event, and KVM queued vmcb02's copy of it.
         */
        if (cur->origin == NESTED_ORIGIN_L1 && cur->type == soft->type &&
            cur->vector == soft->vector) {
            return true;
        }
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INCONSISTENT,
                                 "l2.injected.type=%s: KVM also reports a "
                                 "queued %s vector %u", event_name(cur),
                                 nested_event_type_name(soft->type),
                                 soft->vector);
    }
    /* 0: KVM itself would decode the instruction at RIP; it runs again. */
    if (soft->next_rip) {
        nested_event_set_svm_soft_rips(&ev, rip, cs_base, soft->next_rip);
        *cur = ev;
    }
    return true;
}

bool nested_kernel_apply(NestedEventState *st, const NestedKernelSoft *soft,
                         const NestedKernelSvm *svm, uint64_t rip,
                         uint64_t cs_base, GError **errp)
{
    NestedEvent *cur = &st->l2.injected;

    /*
     * Outside guest mode nothing of L1's is in flight into L2; a soft
     * event queued for L1 is its own instruction, which runs again.
     */
    if (!st->guest_mode) {
        return true;
    }
    if (st->vendor != NESTED_VENDOR_SVM) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_UNREPRESENTABLE,
                                 "vendor=vmx: the kernel's nested event "
                                 "state tells an NMI's origin on SVM only");
    }
    if (!soft->reported) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "flags: guest_mode=1 without "
                                 "KVM_VCPUEVENT_VALID_SOFT_EVENT, so a "
                                 "queued soft event would go unseen");
    }
    if (!svm->reported) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INVALID,
                                 "kvm_nested_state.flags: guest_mode=1 "
                                 "without KVM_STATE_NESTED_SVM_EVENT, so an "
                                 "NMI's origin is unknown");
    }
    if (svm->event_flags & NESTED_KSVM_L1_NMI) {
        if (!cur->valid || cur->type != NESTED_EVENT_NMI) {
            return nested_event_fail(errp, NESTED_EVENT_ERROR_INCONSISTENT,
                                     "hdr.svm.event_flags=0x%x: L1_NMI while "
                                     "l2.injected is %s", svm->event_flags,
                                     event_name(cur));
        }
        cur->origin = NESTED_ORIGIN_L1;
    }
    /*
     * Stock QEMU migrates has_error_code but not error_code.  Whose the
     * exception is KVM does not say, and need not: vmcb12 EVENTINJ with
     * RUN_PENDING delivers it as KVM's re-injection would (no L2
     * instruction retired since its delivery began, and neither checks
     * L1's intercepts), so it travels as L1's, with its error code.
     */
    if (cur->valid && cur->type == NESTED_EVENT_HW_EXCEPTION &&
        cur->has_error_code && cur->error_code) {
        cur->origin = NESTED_ORIGIN_L1;
    }
    if (soft->queued && !apply_soft(cur, soft, rip, cs_base, errp)) {
        return false;
    }
    if ((svm->event_flags & NESTED_KSVM_SOFT_INT) &&
        !(cur->valid && nested_event_type_is_soft(cur->type))) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INCONSISTENT,
                                 "hdr.svm.event_flags=0x%x: SOFT_INT while "
                                 "l2.injected is %s", svm->event_flags,
                                 event_name(cur));
    }
    return true;
}
