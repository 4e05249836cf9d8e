/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The hidden window: tracefs formats, raw tracepoint records, and the
 * verdict on whether L1's event was in flight when a vCPU stopped.  See
 * nested-window.h and docs/hidden-window.rst.
 */

#include <inttypes.h>
#include <string.h>

#include "nested-event-info.h"
#include "nested-window.h"

/* EVENTINJ and EXITINTINFO share one layout (APM vol. 2, 15.20, 15.7.2). */
#define WINDOW_EVENT_MASK \
    (NESTED_INTINFO_VALID | NESTED_INTINFO_ERROR_CODE | \
     NESTED_INTINFO_TYPE_MASK | NESTED_INTINFO_VECTOR_MASK)

static const char *const vmenter_names[] = {
    "kvm_nested_vmenter", "kvm_nested_vmrun", NULL
};
static const char *const vmexit_names[] = { "kvm_nested_vmexit", NULL };
static const char *const inject_names[] = {
    "kvm_nested_vmexit_inject", NULL
};

const char *const *nested_trace_names(NestedTraceKind kind)
{
    switch (kind) {
    case NESTED_TRACE_VMENTER:
        return vmenter_names;
    case NESTED_TRACE_VMEXIT:
        return vmexit_names;
    default:
        return inject_names;
    }
}

/* The name of a field that kind has; NULL where it has none. */
static const char *field_name(NestedTraceKind kind, NestedTraceFieldId which)
{
    static const char *const vmexit_fields[] = {
        [NESTED_TRACE_FIELD_INFO] = "intr_info",
        [NESTED_TRACE_FIELD_ERROR_CODE] = "error_code",
        [NESTED_TRACE_FIELD_INFO2] = "info2",
        [NESTED_TRACE_FIELD_RIP] = "guest_rip",
    };

    if (kind == NESTED_TRACE_VMENTER) {
        return which == NESTED_TRACE_FIELD_INFO ? "event_inj" :
               which == NESTED_TRACE_FIELD_RIP ? "nested_rip" : NULL;
    }
    if (kind == NESTED_TRACE_VMEXIT) {
        return vmexit_fields[which];
    }
    return NULL;
}

static bool parse_number(const char *line, const char *key, uint32_t *out)
{
    const char *p = strstr(line, key);
    char *end;
    guint64 v;

    if (!p) {
        return false;
    }
    p += strlen(key);
    v = g_ascii_strtoull(p, &end, 10);
    if (end == p || v > UINT32_MAX) {
        return false;
    }
    *out = v;
    return true;
}

/*
 * "field:unsigned int intr_info;\toffset:40;\tsize:4;\tsigned:0;": the
 * name is the last word before the first ';', without any "[N]".
 */
static bool parse_field_line(const char *line, char *name, size_t name_len,
                             NestedTraceField *f)
{
    const char *start = strstr(line, "field:");
    const char *semi, *w;
    size_t n;

    if (!start) {
        return false;
    }
    start += strlen("field:");
    semi = strchr(start, ';');
    if (!semi) {
        return false;
    }
    w = semi;
    while (w > start && w[-1] != ' ' && w[-1] != '\t') {
        w--;
    }
    n = strcspn(w, "[;");
    if (n == 0 || n >= name_len) {
        return false;
    }
    memcpy(name, w, n);
    name[n] = '\0';
    return parse_number(semi, "offset:", &f->offset) &&
           parse_number(semi, "size:", &f->size) && f->size > 0;
}

bool nested_trace_parse_format(NestedTraceFormat *fmt, NestedTraceKind kind,
                               const char *text, GError **errp)
{
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    NestedTraceEvent *ev = &fmt->ev[kind];
    NestedTraceField common = { 0, 0 };
    bool have_id = false;
    uint32_t id = 0;

    memset(ev, 0, sizeof(*ev));
    for (char **l = lines; *l; l++) {
        NestedTraceField f;
        char name[64];

        if (g_str_has_prefix(*l, "ID:")) {
            have_id = parse_number(*l, "ID:", &id) && id <= UINT16_MAX;
            continue;
        }
        if (!parse_field_line(*l, name, sizeof(name), &f)) {
            continue;
        }
        if (!strcmp(name, "common_type")) {
            common = f;
            continue;
        }
        for (int which = 0; which < NESTED_TRACE_FIELD__MAX; which++) {
            if (field_name(kind, which) &&
                !strcmp(name, field_name(kind, which))) {
                ev->field[which] = f;
            }
        }
    }
    if (!have_id) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_INVALID,
                    "%s: no numeric 'ID:' line", nested_trace_names(kind)[0]);
        return false;
    }
    if (common.size != 2) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_INVALID,
                    "%s: common_type.size=%u: expected a 2-byte field",
                    nested_trace_names(kind)[0], common.size);
        return false;
    }
    for (int which = 0; which < NESTED_TRACE_FIELD__MAX; which++) {
        const NestedTraceField *f = &ev->field[which];

        /* Judging works without L2's RIP, only less sharply. */
        if (which == NESTED_TRACE_FIELD_RIP && f->size == 0) {
            continue;
        }
        if (field_name(kind, which) && (f->size < 1 || f->size > 8)) {
            g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_INVALID,
                        "%s.%s.size=%u: field missing or not 1 to 8 bytes",
                        nested_trace_names(kind)[0], field_name(kind, which),
                        f->size);
            return false;
        }
    }
    ev->id = id;
    fmt->common_type = common;
    return true;
}

/* Tracepoint records are in the CPU's byte order: little-endian here. */
static bool read_field(const uint8_t *raw, size_t len,
                       const NestedTraceField *f, uint64_t *out)
{
    uint64_t v = 0;

    if (f->offset > len || len - f->offset < f->size) {
        return false;
    }
    for (uint32_t i = 0; i < f->size; i++) {
        v |= (uint64_t)raw[f->offset + i] << (8 * i);
    }
    *out = v;
    return true;
}

bool nested_trace_decode(const NestedTraceFormat *fmt, const uint8_t *raw,
                         size_t len, NestedTraceRecord *rec, GError **errp)
{
    uint64_t type;

    memset(rec, 0, sizeof(*rec));
    if (!read_field(raw, len, &fmt->common_type, &type)) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_TRUNCATED,
                    "record.size=%zu: no room for common_type", len);
        return false;
    }
    for (int k = 0; k < NESTED_TRACE__MAX; k++) {
        const NestedTraceEvent *ev = &fmt->ev[k];
        uint64_t v[NESTED_TRACE_FIELD__MAX] = { 0 };

        if (!ev->id || ev->id != type) {
            continue;
        }
        for (int which = 0; which < NESTED_TRACE_FIELD__MAX; which++) {
            const NestedTraceField *f = &ev->field[which];

            if (f->size && !read_field(raw, len, f, &v[which])) {
                g_set_error(errp, NESTED_EVENT_ERROR,
                            NESTED_EVENT_ERROR_TRUNCATED,
                            "%s record.size=%zu: shorter than its format",
                            nested_trace_names(k)[0], len);
                return false;
            }
        }
        rec->kind = k;
        rec->info = v[NESTED_TRACE_FIELD_INFO];
        rec->error_code = v[NESTED_TRACE_FIELD_ERROR_CODE];
        rec->info2 = v[NESTED_TRACE_FIELD_INFO2];
        rec->has_rip = ev->field[NESTED_TRACE_FIELD_RIP].size != 0;
        rec->rip = v[NESTED_TRACE_FIELD_RIP];
        return true;
    }
    return false;
}

static uint32_t event_type(uint32_t info)
{
    return (info & NESTED_INTINFO_TYPE_MASK) >> NESTED_INTINFO_TYPE_SHIFT;
}

/*
 * Same event, error code included, ignoring reserved bits.  An NMI's
 * vector is ignored (APM vol. 2, 15.20), and KVM itself reports NMIs to
 * L1 in EXITINTINFO with vector 0, which L1 then re-injects as it is.
 * VMX: KVM re-injects every #BP and #OF it re-queues as a software
 * exception (type 6, vmx_inject_exception()), so L1's type-3 #BP reads
 * as type 6 from the second cut on; the two types are one key there.
 * SVM has no type 6.
 */
static uint32_t event_key(uint32_t info)
{
    uint32_t key = info & WINDOW_EVENT_MASK;

    if (event_type(key) == NESTED_EVENT_NMI) {
        key &= ~NESTED_INTINFO_VECTOR_MASK;
    } else if (event_type(key) == NESTED_EVENT_SOFT_EXCEPTION &&
               nested_vector_is_bp_or_of(key & NESTED_INTINFO_VECTOR_MASK)) {
        key &= ~NESTED_INTINFO_TYPE_MASK;
        key |= NESTED_EVENT_HW_EXCEPTION << NESTED_INTINFO_TYPE_SHIFT;
    }
    return key;
}

static bool same_event(uint32_t info, uint32_t err, uint32_t info2,
                       uint32_t err2)
{
    if (event_key(info) != event_key(info2)) {
        return false;
    }
    return !(info & NESTED_INTINFO_ERROR_CODE) || err == err2;
}


static void unknown(NestedWindow *w, const char *why)
{
    w->verdict = NESTED_WINDOW_UNKNOWN;
    g_strlcpy(w->why, why, sizeof(w->why));
}

/*
 * The delivery an exit from L2 cut short, as vmexit records carry it
 * (NestedTraceRecord).  VMX's has no error code: 0 compares equal.
 */
static void exit_event(NestedVendor vendor, const NestedTraceRecord *r,
                       uint32_t *info, uint32_t *err)
{
    if (vendor == NESTED_VENDOR_VMX) {
        *info = r->info2;
        *err = 0;
    } else {
        *info = r->info;
        *err = r->error_code;
    }
}

/*
 * The newest record decides.  An exit reflected to L1 (the observer's
 * rings have none: a vCPU in guest mode got there by a later entry), an
 * L1 entry (the event, if any, is still in the cached EVENTINJ or
 * VM-entry fields that the nested state carries), or an exit with
 * nothing being vectored leave nothing hidden.
 * An exit with an event being vectored is followed back: while every
 * older exit carried the same event it was never delivered, and if the
 * chain ends at an L1 entry that injected it, it is L1's.
 * While an event is being delivered no instruction of L2's retires, so
 * L2's RIP is the same at every link.  Where it is not, L2 ran between
 * two links and may have raised a look-alike event of its own; that is
 * unknown rather than clear, because KVM without NRIPS moves RIP to
 * next_rip when it re-injects a soft event on SVM.
 */
static bool rip_moved(const NestedTraceRecord *top,
                      const NestedTraceRecord *r)
{
    return top->has_rip && r->has_rip && top->rip != r->rip;
}

static void unknown_rip_moved(NestedWindow *w, const NestedTraceRecord *top,
                              const NestedTraceRecord *r)
{
    w->verdict = NESTED_WINDOW_UNKNOWN;
    g_snprintf(w->why, sizeof(w->why), "L2's RIP is 0x%" PRIx64 " at the "
               "exit that cut the event short but 0x%" PRIx64 " at an "
               "earlier %s carrying it: L2 ran in between", top->rip,
               r->rip, r->kind == NESTED_TRACE_VMENTER ? "entry" : "exit");
}

void nested_window_judge(NestedVendor vendor, const NestedTraceRecord *recs,
                         size_t n, bool complete, NestedWindow *w)
{
    uint32_t top, top_err;

    memset(w, 0, sizeof(*w));
    if (n == 0) {
        unknown(w, complete ? "no nested entry or exit since observation "
                "began" : "the trace ring holds no nested record");
        return;
    }
    exit_event(vendor, &recs[0], &top, &top_err);
    if (recs[0].kind != NESTED_TRACE_VMEXIT || !(top & NESTED_INTINFO_VALID)) {
        return;
    }
    for (size_t i = 1; i < n; i++) {
        const NestedTraceRecord *r = &recs[i];
        uint32_t info, err;

        switch (r->kind) {
        case NESTED_TRACE_VMEXIT:
            exit_event(vendor, r, &info, &err);
            if (!same_event(top, top_err, info, err)) {
                return;     /* KVM's or L2's own event, not L1's */
            }
            if (rip_moved(&recs[0], r)) {
                unknown_rip_moved(w, &recs[0], r);
                return;
            }
            break;
        case NESTED_TRACE_VMENTER:
            /* The tracepoint has no error code: compare the rest. */
            if (!same_event(top, 0, r->info, 0)) {
                return;
            }
            if (rip_moved(&recs[0], r)) {
                unknown_rip_moved(w, &recs[0], r);
                return;
            }
            w->verdict = NESTED_WINDOW_L1_EVENT;
            w->event_info = top;
            w->event_err = top_err;
            return;
        default:
            unknown(w, "an exit to L1 without a later entry precedes an "
                    "exit from L2");
            return;
        }
    }
    unknown(w, complete ? "the event was in flight before observation "
            "began" : "the trace ring overwrote the entry that started "
            "the event's delivery");
}

/* " (error code 0xN)" where the event has one, else "" */
static char *error_code_note(const NestedEvent *ev)
{
    return ev->valid && ev->has_error_code ?
           g_strdup_printf(" (error code 0x%x)", ev->error_code) :
           g_strdup("");
}

static bool disagree(GError **errp, const NestedEvent *seen,
                     const NestedEvent *kvm)
{
    g_autofree char *kvm_err = error_code_note(kvm);
    g_autofree char *seen_err = error_code_note(seen);
    g_autofree char *kvm_what = kvm->valid ?
        g_strdup_printf("vector %u%s", kvm->vector, kvm_err) :
        g_strdup("no event");

    g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_INCONSISTENT,
                "l2.injected.type=%s: KVM reports %s while its tracepoints "
                "show L1's %s vector %u%s in flight",
                kvm->valid ? nested_event_type_name(kvm->type) : "none",
                kvm_what, nested_event_type_name(seen->type), seen->vector,
                seen_err);
    return false;
}

/*
 * SVM: EXITINTINFO and its error code are the event; a soft one returns
 * to vmcb12 NextRIP, which KVM keeps while it re-injects.
 */
static bool seen_svm(const NestedWindow *w, uint64_t rip, uint64_t cs_base,
                     const NestedStateView *ns, NestedEvent *seen,
                     GError **errp)
{
    if (!nested_event_from_svm(NESTED_INTINFO_SVM_EXITINTINFO,
                               w->event_info, w->event_err, seen, errp)) {
        return false;
    }
    if (nested_event_type_is_soft(seen->type)) {
        nested_event_set_svm_soft_rips(seen, rip, cs_base, ns->svm_next_rip);
    }
    return true;
}

/*
 * VMX: kvm_nested_vmexit has neither the IDT-vectoring error code nor
 * the instruction length KVM re-injects with (event_exit_inst_len).  An
 * event L1 injected has both in vmcs12's VM-entry fields, which KVM
 * leaves alone until an exit to L1 (prepare_vmcs12() clears the valid
 * bit there), and for a soft event cut short the exit's instruction
 * length is the entry's (SDM vol. 3C 27.2.5).  So they are taken from
 * vmcs12, once its VM-entry information is seen to be that event.
 */
static bool seen_vmx(const NestedWindow *w, uint64_t rip, uint64_t cs_base,
                     const NestedStateView *ns, NestedEvent *seen,
                     GError **errp)
{
    if (!(ns->vmx_entry_intr_info & NESTED_INTINFO_VALID) ||
        event_key(ns->vmx_entry_intr_info) != event_key(w->event_info)) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INCONSISTENT,
                                 "vmcs12.vm_entry_intr_info_field=0x%x: "
                                 "not L1's event in flight (IDT-vectoring "
                                 "information 0x%x)",
                                 ns->vmx_entry_intr_info, w->event_info);
    }
    /* Same event: what is carried, and named on refusal, is vmcs12's. */
    if (!nested_event_from_vmx(NESTED_INTINFO_VMX_ENTRY,
                               ns->vmx_entry_intr_info,
                               ns->vmx_entry_exception_error_code,
                               ns->vmx_entry_instruction_len, seen, errp)) {
        return false;
    }
    /*
     * __vmx_complete_interrupts() re-queues types 0, 2, 3, 4 and 6 only:
     * the source itself drops an ICEBP (5) or MTF (7) cut short, so there
     * is nothing of KVM's to carry exactly.
     */
    if (seen->type == NESTED_EVENT_PRIV_SOFT_EXCEPTION ||
        seen->type == NESTED_EVENT_OTHER) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_UNREPRESENTABLE,
                                 "l2.injected.type=%s: KVM does not "
                                 "re-queue it after an exit during its "
                                 "delivery",
                                 nested_event_type_name(seen->type));
    }
    if (nested_event_type_is_soft(seen->type)) {
        nested_event_set_vmx_soft_rips(seen, rip, cs_base);
    }
    return true;
}

/*
 * KVM_GET_VCPU_EVENTS hides a re-queued soft event entirely, and also an
 * #BP or #OF that L1 injected as a hardware exception (type 3, which
 * VMX allows): it skips every exception whose vector
 * kvm_exception_is_soft() names, expecting the INT3 or INTO to run
 * again, which an injected one does not.
 */
static bool kvm_hides(const NestedEvent *ev)
{
    return nested_event_type_is_soft(ev->type) ||
           (ev->type == NESTED_EVENT_HW_EXCEPTION &&
            nested_vector_is_bp_or_of(ev->vector));
}

bool nested_window_apply(NestedEventState *st, const NestedWindow *w,
                         uint64_t rip, uint64_t cs_base,
                         const NestedStateView *ns, GError **errp)
{
    NestedEvent *cur = &st->l2.injected;
    NestedEvent seen;
    bool ok;

    if (!st->guest_mode || w->verdict == NESTED_WINDOW_CLEAR) {
        return true;
    }
    if (w->verdict == NESTED_WINDOW_UNKNOWN) {
        g_set_error(errp, NESTED_EVENT_ERROR,
                    NESTED_EVENT_ERROR_UNREPRESENTABLE,
                    "guest_mode=1: cannot tell whether L1's event is in "
                    "flight: %s", w->why);
        return false;
    }
    if (!ns || !ns->has_vmcs) {
        return nested_event_fail(errp, NESTED_EVENT_ERROR_INCONSISTENT,
                                 "guest_mode=1: the nested state has no "
                                 "vmcb12/vmcs12 for L1's event in flight");
    }
    ok = st->vendor == NESTED_VENDOR_VMX
         ? seen_vmx(w, rip, cs_base, ns, &seen, errp)
         : seen_svm(w, rip, cs_base, ns, &seen, errp);
    if (!ok) {
        return false;
    }
    seen.origin = NESTED_ORIGIN_L1;
    if (kvm_hides(&seen)) {
        if (cur->valid) {
            return disagree(errp, &seen, cur);
        }
        *cur = seen;
        return true;
    }
    if (!cur->valid || cur->type != seen.type ||
        cur->vector != seen.vector ||
        cur->has_error_code != seen.has_error_code ||
        cur->error_code != seen.error_code) {
        return disagree(errp, &seen, cur);
    }
    cur->origin = NESTED_ORIGIN_L1;
    return true;
}
