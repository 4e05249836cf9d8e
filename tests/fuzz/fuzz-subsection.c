/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libFuzzer target: the load path of the cpu/nested-events migration
 * subsection.  The input is the subsection's 120-byte payload, field by
 * field as the VMState descriptions in
 * target-i386/mirror/nested-mirror-vmstate.c put it on the wire; it is
 * decoded here as QEMU's VMState would, and then put through what
 * nested_events_post_load() runs from the standalone core: validation
 * of the model on its own and against the rest of the stream, then,
 * for a model that validates, restore planning.
 *
 * The payload may be followed by a trailer: one byte whose bit 0 says
 * that the cpu section of the same stream contradicts the model's
 * guest_mode (HF_GUEST_MASK; without the byte they agree), then up to
 * MAX_CAPS_BYTES bytes, each a destination (NestedRestoreCaps) to plan
 * for on top of a full-featured one of the model's own vendor.
 *
 * The decoder lives here rather than in the core because it is a test of
 * the layout: if a field is added to the VMState list without being added
 * here, the seed corpus stops decoding the way tests/functional/
 * nested_stream.py writes it.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nested-codec.h"
#include "nested-import.h"
#include "nested-event-info.h"
#include "nested-restore.h"
#include "nested-state.h"
#include "nested-validate.h"

/* ------------------------------------------------------------------ */
/* The wire layout                                                    */
/* ------------------------------------------------------------------ */

typedef enum WireType {
    WIRE_BOOL,      /* VMSTATE_BOOL: one byte, any nonzero value is true */
    WIRE_U8,
    WIRE_U32,       /* big-endian, as qemu_get_be32() */
    WIRE_U64,       /* big-endian, as qemu_get_be64() */
} WireType;

typedef struct WireField {
    const char *name;   /* the VMState field name, as errors quote it */
    WireType type;
    size_t offset;
} WireField;

#define STATE_FIELD(f, t) { #f, t, offsetof(NestedEventState, f) }
#define LEVEL_FIELD(f, t) { #f, t, offsetof(NestedEventLevel, f) }

/* cpu/nested-events/state up to its two levels. */
static const WireField state_fields[] = {
    STATE_FIELD(vendor, WIRE_U8),
    STATE_FIELD(guest_mode, WIRE_BOOL),
    STATE_FIELD(nested_run_pending, WIRE_BOOL),
    STATE_FIELD(gif, WIRE_BOOL),
    STATE_FIELD(triple_fault_pending, WIRE_BOOL),
    STATE_FIELD(sipi_vector_valid, WIRE_BOOL),
    STATE_FIELD(sipi_vector, WIRE_U32),
    STATE_FIELD(smi.smm, WIRE_BOOL),
    STATE_FIELD(smi.pending, WIRE_BOOL),
    STATE_FIELD(smi.smm_inside_nmi, WIRE_BOOL),
    STATE_FIELD(smi.latched_init, WIRE_BOOL),
};

/*
 * cpu/nested-events/level, with its event and exception structs
 * flattened: VMSTATE_STRUCT adds no framing of its own.
 */
static const WireField level_fields[] = {
    LEVEL_FIELD(injected.valid, WIRE_BOOL),
    LEVEL_FIELD(injected.type, WIRE_U8),
    LEVEL_FIELD(injected.vector, WIRE_U8),
    LEVEL_FIELD(injected.origin, WIRE_U8),
    LEVEL_FIELD(injected.has_error_code, WIRE_BOOL),
    LEVEL_FIELD(injected.error_code, WIRE_U32),
    LEVEL_FIELD(injected.insn_len, WIRE_U8),
    LEVEL_FIELD(injected.old_rip, WIRE_U64),
    LEVEL_FIELD(injected.next_rip, WIRE_U64),
    LEVEL_FIELD(injected.cs_base, WIRE_U64),
    LEVEL_FIELD(exception.pending, WIRE_BOOL),
    LEVEL_FIELD(exception.vector, WIRE_U8),
    LEVEL_FIELD(exception.has_error_code, WIRE_BOOL),
    LEVEL_FIELD(exception.error_code, WIRE_U32),
    LEVEL_FIELD(exception.has_payload, WIRE_BOOL),
    LEVEL_FIELD(exception.payload, WIRE_U64),
    LEVEL_FIELD(nmi_pending, WIRE_U8),
    LEVEL_FIELD(nmi_masked, WIRE_BOOL),
    LEVEL_FIELD(interrupt_shadow, WIRE_U8),
};

/* docs/mirror.rst: 14 bytes of vCPU-wide state and 53 per level. */
#define PAYLOAD_SIZE 120

static size_t wire_width(WireType type)
{
    switch (type) {
    case WIRE_BOOL:
    case WIRE_U8:
        return 1;
    case WIRE_U32:
        return 4;
    default:
        return 8;
    }
}

static size_t fields_size(const WireField *f, size_t n)
{
    size_t i, size = 0;

    for (i = 0; i < n; i++) {
        size += wire_width(f[i].type);
    }
    return size;
}

static const uint8_t *load_fields(void *base, const WireField *f, size_t n,
                                  const uint8_t *p)
{
    size_t i, j;

    for (i = 0; i < n; i++) {
        uint8_t *dst = (uint8_t *)base + f[i].offset;
        uint64_t v = 0;

        for (j = 0; j < wire_width(f[i].type); j++) {
            v = v << 8 | *p++;
        }
        switch (f[i].type) {
        case WIRE_BOOL:
            *(bool *)dst = v != 0;
            break;
        case WIRE_U8:
            *dst = v;
            break;
        case WIRE_U32:
            *(uint32_t *)dst = v;
            break;
        default:
            *(uint64_t *)dst = v;
            break;
        }
    }
    return p;
}

/* Field order of vmstate_nested_event_state: head, then l1, then l2. */
static void load_payload(NestedEventState *st, const uint8_t *p)
{
    memset(st, 0, sizeof(*st));
    p = load_fields(st, state_fields, G_N_ELEMENTS(state_fields), p);
    p = load_fields(&st->l1, level_fields, G_N_ELEMENTS(level_fields), p);
    load_fields(&st->l2, level_fields, G_N_ELEMENTS(level_fields), p);
}

/* ------------------------------------------------------------------ */
/* Invariants                                                         */
/* ------------------------------------------------------------------ */

#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond)) {                                                   \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,   \
                    __LINE__, #cond);                                    \
            abort();                                                     \
        }                                                                \
    } while (0)

#define CHECK_MSG(cond, msg)                                             \
    do {                                                                 \
        if (!(cond)) {                                                   \
            fprintf(stderr, "%s:%d: invariant failed: %s (\"%s\")\n",    \
                    __FILE__, __LINE__, #cond, (msg));                   \
            abort();                                                     \
        }                                                                \
    } while (0)

static bool name_in(const WireField *f, size_t n, const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strlen(f[i].name) == len && !memcmp(f[i].name, s, len)) {
            return true;
        }
    }
    return false;
}

/*
 * A path of the subsection: a leaf of the tables above, or one of the
 * VMSTATE_STRUCT fields (l1, l2, lN.injected, lN.exception).  "l1/l2."
 * stands for both levels.
 */
static bool is_field_path(const char *s, size_t len)
{
    if (name_in(state_fields, G_N_ELEMENTS(state_fields), s, len)) {
        return true;
    }
    if (len == 2 && (!memcmp(s, "l1", 2) || !memcmp(s, "l2", 2))) {
        return true;
    }
    if (len > 3 && (!memcmp(s, "l1.", 3) || !memcmp(s, "l2.", 3))) {
        s += 3;
        len -= 3;
    } else if (len > 6 && !memcmp(s, "l1/l2.", 6)) {
        s += 6;
        len -= 6;
    } else {
        return false;
    }
    return (len == 8 && !memcmp(s, "injected", 8)) ||
           (len == 9 && !memcmp(s, "exception", 9)) ||
           name_in(level_fields, G_N_ELEMENTS(level_fields), s, len);
}

/*
 * Operators read the load failure in QEMU's log, so every refusal must
 * start with the fields it is about: "<path>=<value>: why", or
 * "<path>, <path>: why" (nested-validate.h promises a field).
 */
static bool names_field(const char *msg)
{
    for (;;) {
        size_t len = strspn(msg, "abcdefghijklmnopqrstuvwxyz0123456789_./");

        if (!is_field_path(msg, len)) {
            return false;
        }
        msg += len;
        if (*msg == '=' || *msg == ':') {
            return true;
        }
        if (strncmp(msg, ", ", 2)) {
            return false;
        }
        msg += 2;
    }
}

static bool plan_is_empty(const NestedRestorePlan *plan)
{
    static const NestedRestorePlan empty;

    return !memcmp(plan, &empty, sizeof(*plan));
}

/*
 * validate() is check() with the first problem as the error, and every
 * problem check() lists names its field.  Returns validate()'s error,
 * NULL for a valid model.
 */
static GError *check_validation(const NestedEventState *st)
{
    g_autoptr(GPtrArray) problems = nested_event_check(st);
    GError *err = NULL;
    bool ok = nested_event_validate(st, &err);
    guint i;

    for (i = 0; i < problems->len; i++) {
        CHECK_MSG(names_field(g_ptr_array_index(problems, i)),
                  (const char *)g_ptr_array_index(problems, i));
    }
    if (ok) {
        CHECK(problems->len == 0);
        CHECK(err == NULL);
        return NULL;
    }
    CHECK(problems->len > 0);
    CHECK(err != NULL);
    CHECK(g_error_matches(err, NESTED_EVENT_ERROR,
                          NESTED_EVENT_ERROR_INCONSISTENT));
    CHECK(!strcmp(err->message, g_ptr_array_index(problems, 0)));
    return err;
}

/*
 * post_load's check against the stream: the model on its own first
 * (invalid is the error validate() gave), then guest_mode against the
 * cpu section, then the rule that a sender sends the subsection only for
 * what stock QEMU cannot carry.
 */
static void check_received(const NestedEventState *st, const GError *invalid,
                           bool base_guest_mode)
{
    g_autoptr(GError) err = NULL;
    bool ok = nested_event_validate_received(st, base_guest_mode, &err);

    if (invalid) {
        CHECK(!ok);
        CHECK(err != NULL);
        CHECK(!strcmp(err->message, invalid->message));
        return;
    }
    CHECK(ok == (st->guest_mode == base_guest_mode &&
                 nested_event_beyond_stock(st)));
    if (ok) {
        CHECK(err == NULL);
        return;
    }
    CHECK(err != NULL);
    CHECK(g_error_matches(err, NESTED_EVENT_ERROR,
                          NESTED_EVENT_ERROR_INCONSISTENT));
    CHECK_MSG(names_field(err->message), err->message);
}

/* The planner validates on its own: an invalid model gets no plan. */
static void check_invalid_refused(const NestedEventState *st,
                                  const GError *invalid)
{
    NestedRestoreCaps caps = {
        .vendor = st->vendor, .vcpu_events = true,
        .exception_payload = true, .nested_state = true,
        .triple_fault_event = true, .smm = true, .nrips = true,
    };
    g_autoptr(GError) err = NULL;
    NestedRestorePlan plan;

    memset(&plan, 0xa5, sizeof(plan));
    CHECK(!nested_event_plan_restore(st, &caps, &plan, &err));
    CHECK(err != NULL);
    CHECK(g_error_matches(err, NESTED_EVENT_ERROR,
                          NESTED_EVENT_ERROR_INCONSISTENT));
    CHECK(!strcmp(err->message, invalid->message));
    CHECK(plan_is_empty(&plan));
}

static uint64_t ld_le(const uint8_t *p, unsigned width)
{
    uint64_t v = 0;

    while (width--) {
        v = v << 8 | p[width];
    }
    return v;
}

/*
 * Apply the state edits to a source blob whose bytes are all ones, so
 * that both the bits a plan sets and the bits it clears show, and read
 * back what KVM_SET_NESTED_STATE would find: the L1-origin event, its
 * soft-event return address, GIF and the pending nested run.
 */
static void check_state_edits(const NestedEventState *st,
                              const NestedRestoreCaps *caps,
                              const NestedRestorePlan *plan)
{
    static uint8_t blob[NESTED_STATE_HDR_SIZE + NESTED_STATE_VMCS_SIZE];
    const uint8_t *vmcs = blob + NESTED_STATE_HDR_SIZE;
    const NestedEvent *ev = &st->l2.injected;
    bool l1_event = st->guest_mode && ev->valid &&
                    ev->origin == NESTED_ORIGIN_L1;
    bool svm = st->vendor == NESTED_VENDOR_SVM;
    uint16_t flags;
    uint32_t raw;
    NestedEvent back;
    size_t i;

    CHECK(plan->n_state_edits <= NESTED_PLAN_MAX_STATE_EDITS);
    if (!caps->nested_state || st->vendor == NESTED_VENDOR_NONE) {
        CHECK(plan->n_state_edits == 0);
        return;
    }
    for (i = 0; i < plan->n_state_edits; i++) {
        const NestedStateEdit *e = &plan->state_edits[i];

        CHECK(e->field != NULL);
        CHECK(e->mask != 0);
        CHECK((e->value & ~e->mask) == 0);
        CHECK(e->width == 8 || (e->mask >> (e->width * 8)) == 0);
    }
    memset(blob, 0xff, sizeof(blob));
    CHECK(nested_state_apply_edits(blob, sizeof(blob), plan->state_edits,
                                   plan->n_state_edits, NULL));

    flags = ld_le(blob, 2);
    if (svm) {
        CHECK(!!(flags & KVM_STATE_NESTED_GIF_SET) == st->gif);
    }
    if (!st->guest_mode) {
        /* Nothing to inject into L2: its event words stay as they were. */
        CHECK(ld_le(vmcs + NESTED_VMCB_EVENT_INJ, 4) == UINT32_MAX);
        CHECK(ld_le(vmcs + NESTED_VMCS12_ENTRY_INTR_INFO, 4) == UINT32_MAX);
        return;
    }
    /*
     * The run is pending exactly when the model says so, or when L1's
     * event is restored as its VMRUN/VMLAUNCH asked for it: VMX's
     * prepare_vmcs02_early() reads it from vmcs12 only on a pending run,
     * and SVM's would otherwise lose it to an exit for a pending L1
     * interrupt (event-model.rst).
     */
    CHECK(!!(flags & KVM_STATE_NESTED_RUN_PENDING) ==
          (st->nested_run_pending || l1_event));
    raw = ld_le(vmcs + (svm ? NESTED_VMCB_EVENT_INJ
                            : NESTED_VMCS12_ENTRY_INTR_INFO), 4);
    /* The other vendor's control block is not there to be edited. */
    CHECK(ld_le(vmcs + (svm ? NESTED_VMCS12_ENTRY_INTR_INFO
                            : NESTED_VMCB_EVENT_INJ), 4) == UINT32_MAX);
    if (!l1_event) {
        /* A stale request of L1's must not be replayed into L2. */
        CHECK(!(raw & NESTED_INTINFO_VALID));
        return;
    }
    if (svm) {
        CHECK(nested_event_from_svm(NESTED_INTINFO_SVM_EVENTINJ, raw,
                                    ld_le(vmcs + NESTED_VMCB_EVENT_INJ_ERR,
                                          4),
                                    &back, NULL));
        if (nested_event_type_is_soft(ev->type) && caps->nrips) {
            CHECK(ld_le(vmcs + NESTED_VMCB_NEXT_RIP, 8) == ev->next_rip);
        }
    } else {
        CHECK(nested_event_from_vmx(
                  NESTED_INTINFO_VMX_ENTRY, raw,
                  ld_le(vmcs + NESTED_VMCS12_ENTRY_EXCEPTION_ERROR_CODE, 4),
                  ld_le(vmcs + NESTED_VMCS12_ENTRY_INSTRUCTION_LEN, 4),
                  &back, NULL));
        if (nested_event_type_is_soft(ev->type)) {
            CHECK(back.insn_len == ev->insn_len);
        }
    }
    CHECK(back.valid && back.origin == NESTED_ORIGIN_L1);
    CHECK(back.type == ev->type && back.vector == ev->vector);
    CHECK(back.has_error_code == ev->has_error_code);
    CHECK(back.error_code == ev->error_code);
}

/*
 * A soft event is restored by pointing RIP back at its instruction
 * (L0-origin: it runs again; L1-origin: KVM takes the old RIP from the
 * vCPU), and CS base must already match.  Nothing else moves registers.
 */
static void check_reg_edits(const NestedEventState *st,
                            const NestedRestorePlan *plan)
{
    const NestedEvent *ev = &nested_event_current_level(st)->injected;

    CHECK(plan->n_reg_edits <= NESTED_PLAN_MAX_REG_EDITS);
    if (!ev->valid || !nested_event_type_is_soft(ev->type)) {
        CHECK(plan->n_reg_edits == 0);
        return;
    }
    CHECK(plan->n_reg_edits == 2);
    CHECK(plan->reg_edits[0].reg == NESTED_REG_RIP);
    CHECK(!plan->reg_edits[0].expect_only);
    CHECK(plan->reg_edits[0].value == ev->old_rip);
    CHECK(plan->reg_edits[1].reg == NESTED_REG_CS_BASE);
    CHECK(plan->reg_edits[1].expect_only);
    CHECK(plan->reg_edits[1].value == ev->cs_base);
}

/*
 * The kvm_vcpu_events of a plan must be something KVM accepts, and
 * reading it back the way the mirror reads KVM must give the model,
 * except where the plan deliberately differs: a soft event of L0's is
 * replayed by re-running its instruction, and without
 * KVM_CAP_EXCEPTION_PAYLOAD a pending exception goes in as injected.
 */
static void check_vcpu_events(const NestedEventState *st,
                              const NestedRestoreCaps *caps,
                              const NestedRestorePlan *plan)
{
    static const struct kvm_vcpu_events none;
    uint8_t buf[sizeof(struct kvm_vcpu_events)];
    NestedEventState want = *st, back = *st;
    NestedEventLevel *lv = want.guest_mode ? &want.l2 : &want.l1;
    NestedPendingException ex = lv->exception;
    g_autoptr(GError) err = NULL;

    CHECK(plan->set_vcpu_events == caps->vcpu_events);
    if (!caps->vcpu_events) {
        CHECK(!memcmp(&plan->events, &none, sizeof(none)));
        return;
    }
    CHECK_MSG(nested_vcpu_events_encode(&plan->events, buf, sizeof(buf),
                                        &err),
              err ? err->message : "");

    if (lv->injected.valid && lv->injected.origin == NESTED_ORIGIN_L0 &&
        nested_event_type_is_soft(lv->injected.type)) {
        memset(&lv->injected, 0, sizeof(lv->injected));
    }
    if (ex.pending && !caps->exception_payload) {
        if (lv->injected.valid) {
            /*
             * Two injected events: KVM without the capability reports
             * the same pair itself, and the mirror's import refuses it,
             * so there is no model to compare with.
             */
            return;
        }
        memset(&lv->exception, 0, sizeof(lv->exception));
        lv->injected = (NestedEvent) {
            .valid = true, .type = NESTED_EVENT_HW_EXCEPTION,
            .vector = ex.vector, .origin = NESTED_ORIGIN_L0,
            .has_error_code = ex.has_error_code,
            .error_code = ex.error_code,
        };
    }
    CHECK_MSG(nested_event_import_vcpu_events(&back, &plan->events, &err),
              err ? err->message : "");
    CHECK(nested_event_state_equal(&back, &want));
}

static void check_plan(const NestedEventState *st,
                       const NestedRestoreCaps *caps, bool *planned)
{
    g_autoptr(GError) err = NULL;
    NestedRestorePlan plan;

    memset(&plan, 0xa5, sizeof(plan));
    *planned = nested_event_plan_restore(st, caps, &plan, &err);
    if (!*planned) {
        CHECK(err != NULL);
        CHECK(g_error_matches(err, NESTED_EVENT_ERROR,
                              NESTED_EVENT_ERROR_REFUSED));
        CHECK_MSG(names_field(err->message), err->message);
        CHECK(plan_is_empty(&plan));
        return;
    }
    CHECK(err == NULL);
    check_state_edits(st, caps, &plan);
    check_reg_edits(st, &plan);
    check_vcpu_events(st, caps, &plan);
}

/*
 * Bits 0-1: vendor (3 is none of them, which a destination can never
 * report, but the planner must still cope); bits 2-7: the capabilities.
 */
static NestedRestoreCaps caps_from_byte(uint8_t b)
{
    return (NestedRestoreCaps) {
        .vendor = b & 3,
        .vcpu_events = b & 0x04,
        .exception_payload = b & 0x08,
        .nested_state = b & 0x10,
        .triple_fault_event = b & 0x20,
        .smm = b & 0x40,
        .nrips = b & 0x80,
    };
}

/* At most this many extra destinations per input, to keep runs short. */
#define MAX_CAPS_BYTES 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *trailer;
    NestedEventState st;
    NestedRestoreCaps full;
    g_autoptr(GError) invalid = NULL;
    bool planned;
    size_t i, n;

    CHECK(fields_size(state_fields, G_N_ELEMENTS(state_fields)) +
          2 * fields_size(level_fields, G_N_ELEMENTS(level_fields)) ==
          PAYLOAD_SIZE);
    /* A short payload fails the load at EOF, before post_load. */
    if (size < PAYLOAD_SIZE) {
        return 0;
    }
    /* Bytes past the trailer mean nothing: keep them out of the corpus. */
    if (size > PAYLOAD_SIZE + 1 + MAX_CAPS_BYTES) {
        return -1;
    }
    load_payload(&st, data);
    trailer = data + PAYLOAD_SIZE;
    n = size - PAYLOAD_SIZE;

    invalid = check_validation(&st);
    check_received(&st, invalid, st.guest_mode ^ (n && (trailer[0] & 1)));
    if (invalid) {
        check_invalid_refused(&st, invalid);
        return 0;
    }
    /*
     * post_load plans only for a model that also passed the stream
     * checks, but the planner's contract is validate()'s, so hold it to
     * that on every valid model.
     */
    full = caps_from_byte(0xfc | st.vendor);
    check_plan(&st, &full, &planned);

    n = n ? n - 1 : 0;
    for (i = 0; i < n; i++) {
        NestedRestoreCaps caps = caps_from_byte(trailer[1 + i]);

        check_plan(&st, &caps, &planned);
        /* A capability more never makes an exact restore impossible. */
        if (planned) {
            NestedRestoreCaps more = caps_from_byte(0xfc | caps.vendor);

            check_plan(&st, &more, &planned);
            CHECK(planned);
        }
    }
    return 0;
}
