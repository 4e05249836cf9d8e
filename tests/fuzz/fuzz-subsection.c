/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libFuzzer target: the load path of the cpu/nested-events migration
 * subsection, version 2.  The input is, in order:
 *
 * - STOCK_SIZE bytes standing for the stock CPU fields the destination
 *   rebuilds the model from (NestedStockView): one byte of bits (0-1
 *   vendor, 2 guest_mode, 3 gif, 4 smm, 5 smm_inside_nmi, 6 nmi_masked,
 *   7 a kvm_nested_state blob is in the stream), nmi_pending, then RIP,
 *   CS base and the blob's return address (vmcb12 next_rip on SVM; its
 *   low byte is vmcs12 vm_entry_instruction_len on VMX), 8 bytes each;
 * - the subsection's fields as VMState puts them on the wire, read by
 *   the test-support reader (tests/support/nested-codec.c), which
 *   follows the VMSTATE_*_TEST list of nested-mirror-vmstate.c;
 * - an optional trailer of up to MAX_CAPS_BYTES bytes, each a
 *   destination (NestedRestoreCaps) to plan for on top of a
 *   full-featured one of the model's own vendor.
 *
 * Then it runs what the load runs from the standalone core: the rebuild
 * (nested_event_wire_decode), the validation against the stream, and
 * restore planning for a model that validates.  A model that rebuilds
 * must also encode back to the same fields.
 */

#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "nested-codec.h"
#include "nested-import.h"
#include "nested-event-info.h"
#include "nested-restore.h"
#include "nested-state.h"
#include "nested-validate.h"
#include "nested-wire.h"

/* ------------------------------------------------------------------ */
/* The wire layout                                                    */
/* ------------------------------------------------------------------ */

/* Model field paths, as refusals name them. */
typedef struct WireField {
    const char *name;
} WireField;

#define STATE_FIELD(f, t) { #f }
#define LEVEL_FIELD(f, t) { #f }

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

/* The fields of cpu/nested-events/wire, and the blob's the rebuild reads. */
static const WireField wire_names[] = {
    { "flags" }, { "shadow" }, { "event" }, { "vector" }, { "error_code" },
    { "exc_vector" }, { "exc_info" }, { "exc_error_code" },
    { "exc_payload" }, { "kvm_nested_state" },
    { "vmcs12.vm_entry_instruction_len" },
};

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
    if (name_in(state_fields, G_N_ELEMENTS(state_fields), s, len) ||
        name_in(wire_names, G_N_ELEMENTS(wire_names), s, len)) {
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

#define STOCK_SIZE 26

static uint64_t ld_be64(const uint8_t *p)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/* A blob the product's decoder accepts, in guest mode or not. */
static bool stock_blob(const NestedStockView *stock, uint64_t next_rip,
                       uint8_t *blob)
{
    bool svm = stock->vendor == NESTED_VENDOR_SVM;
    NestedStateView v = {
        .format = svm ? KVM_STATE_NESTED_FORMAT_SVM
                      : KVM_STATE_NESTED_FORMAT_VMX,
        .flags = stock->guest_mode ? KVM_STATE_NESTED_GUEST_MODE : 0,
        .has_vmcs = stock->guest_mode || !svm,
    };

    if (svm) {
        v.size = stock->guest_mode ? NESTED_STATE_SVM_MAX
                                   : NESTED_STATE_HDR_SIZE;
        v.vmcb_pa = stock->guest_mode ? 0x3000 : 0;
        v.svm_next_rip = next_rip;
        v.flags |= stock->gif ? KVM_STATE_NESTED_GIF_SET : 0;
    } else {
        v.size = NESTED_STATE_HDR_SIZE + NESTED_STATE_VMCS_SIZE;
        v.vmxon_pa = 0x1000;
        v.vmcs12_pa = 0x2000;
        v.vmx_revision = NESTED_VMCS12_REVISION;
        v.vmx_entry_instruction_len = next_rip & 0xff;
    }
    return nested_state_encode(&v, blob, NESTED_STATE_VMX_MAX, NULL);
}

/* Rebuilding is only valid if encoding the result gives the same wire. */
static void check_reencode(const NestedEventState *st,
                           const NestedStockView *stock,
                           const NestedEventWire *w)
{
    g_autoptr(GError) err = NULL;
    NestedEventWire again;

    CHECK_MSG(nested_event_wire_encode(st, stock, &again, &err),
              err ? err->message : "");
    CHECK(!memcmp(&again, w, sizeof(again)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t blob[NESTED_STATE_VMX_MAX];
    const uint8_t *trailer;
    NestedEventState st;
    NestedStockView stock;
    NestedEventWire w;
    NestedRestoreCaps full;
    g_autoptr(GError) invalid = NULL;
    g_autoptr(GError) err = NULL;
    bool planned, decoded;
    size_t i, n, used;

    if (size < STOCK_SIZE) {
        return 0;
    }
    stock = (NestedStockView) {
        .vendor = data[0] & 3,
        .guest_mode = data[0] & 0x04,
        .gif = data[0] & 0x08,
        .smm = data[0] & 0x10,
        .smm_inside_nmi = data[0] & 0x20,
        .nmi_masked = data[0] & 0x40,
        .nmi_pending = data[1],
        .rip = ld_be64(data + 2),
        .cs_base = ld_be64(data + 10),
    };
    if ((data[0] & 0x80) && (stock.vendor == NESTED_VENDOR_SVM ||
                             stock.vendor == NESTED_VENDOR_VMX) &&
        stock_blob(&stock, ld_be64(data + 18), blob)) {
        stock.nested_state = blob;
        stock.nested_state_len = sizeof(blob);
    }
    /* A load that hits the end of the stream fails before post_load. */
    if (!nested_event_wire_read(data + STOCK_SIZE, size - STOCK_SIZE, &w,
                                &used, &err)) {
        CHECK(g_error_matches(err, NESTED_EVENT_ERROR,
                              NESTED_EVENT_ERROR_TRUNCATED));
        CHECK_MSG(names_field(err->message), err->message);
        return 0;
    }
    n = size - STOCK_SIZE - used;
    /* Bytes past the trailer mean nothing: keep them out of the corpus. */
    if (n > MAX_CAPS_BYTES) {
        return -1;
    }
    trailer = data + STOCK_SIZE + used;

    decoded = nested_event_wire_decode(&w, &stock, &st, &err);
    if (!decoded) {
        CHECK(err != NULL);
        CHECK_MSG(names_field(err->message), err->message);
        return 0;
    }
    invalid = check_validation(&st);
    check_received(&st, invalid, stock.guest_mode);
    if (invalid) {
        check_invalid_refused(&st, invalid);
        return 0;
    }
    check_reencode(&st, &stock, &w);
    full = caps_from_byte(0xfc | st.vendor);
    check_plan(&st, &full, &planned);
    for (i = 0; i < n; i++) {
        NestedRestoreCaps caps = caps_from_byte(trailer[i]);

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
