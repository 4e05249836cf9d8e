/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The compact form of the event model that the cpu/nested-events
 * migration subsection carries (version 2).  A stream already holds most
 * of the model in stock QEMU's own CPU fields; this form holds only the
 * rest: the current level's injected event with its origin, its pending
 * exception (stock drops the error code and, outside guest mode, turns
 * the exception into an injected one), the interrupt shadow's two bits,
 * and three flags that stock loads only after this subsection.  The
 * destination rebuilds the whole model from both before validating it.
 */

#ifndef TARGET_I386_NESTED_WIRE_H
#define TARGET_I386_NESTED_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#include "nested-events.h"

/* NestedEventWire.flags */
#define NESTED_WIRE_EVENT 0x01          /* event, vector follow */
#define NESTED_WIRE_EXCEPTION 0x02      /* exc_vector, exc_info follow */
/* cpu/triple_fault comes after cpu/nested-events in the stream */
#define NESTED_WIRE_TRIPLE_FAULT 0x04
/* Stock keeps these two in interrupt_request, which a put consumes */
#define NESTED_WIRE_SMI_PENDING 0x08
#define NESTED_WIRE_SMI_LATCHED_INIT 0x10
#define NESTED_WIRE_FLAGS_ALL 0x1f

/* NestedEventWire.event: the NestedEventType, its origin, its code */
#define NESTED_WIRE_EVENT_TYPE 0x07
#define NESTED_WIRE_EVENT_L1 0x08
#define NESTED_WIRE_EVENT_ERROR_CODE 0x10   /* error_code follows */
#define NESTED_WIRE_EVENT_ALL 0x1f

/* NestedEventWire.exc_info */
#define NESTED_WIRE_EXC_ERROR_CODE 0x01     /* exc_error_code follows */
#define NESTED_WIRE_EXC_PAYLOAD 0x02        /* exc_payload follows */
#define NESTED_WIRE_EXC_ALL 0x03

/*
 * The fields in wire order; a field whose flag is clear is not on the
 * wire and must be 0 here.  Multi-byte fields travel big-endian, as
 * VMState's VMSTATE_UINT32/UINT64 put them.
 */
typedef struct NestedEventWire {
    uint8_t flags;
    uint8_t shadow;             /* the current level's interrupt_shadow */
    uint8_t event;
    uint8_t vector;
    uint32_t error_code;
    uint8_t exc_vector;
    uint8_t exc_info;
    uint32_t exc_error_code;
    uint64_t exc_payload;
} NestedEventWire;

/*
 * Subsection framing around the fields: QEMU_VM_SUBSECTION, the name's
 * length byte, "cpu/nested-events" and the 4-byte version_id.
 */
#define NESTED_WIRE_FRAMING (1 + 1 + 17 + 4)
/* Fields present whatever the flags say (flags, shadow). */
#define NESTED_WIRE_MIN_SIZE 2
#define NESTED_WIRE_MAX_SIZE (NESTED_WIRE_MIN_SIZE + 6 + 14)

/*
 * The fields of the same stream that the model is rebuilt from: stock
 * QEMU loads every one of them before cpu/nested-events.
 */
typedef struct NestedStockView {
    uint8_t vendor;             /* NestedVendor of the vCPU model */
    bool guest_mode;            /* hflags & HF_GUEST_MASK */
    bool gif;                   /* hflags2 & HF2_GIF_MASK */
    bool smm;                   /* hflags & HF_SMM_MASK */
    bool smm_inside_nmi;        /* hflags2 & HF2_SMM_INSIDE_NMI_MASK */
    bool nmi_masked;            /* hflags2 & HF2_NMI_MASK */
    uint8_t nmi_pending;
    uint64_t rip;
    uint64_t cs_base;
    /* kvm_nested_state as cpu/kvm_nested_state left it, or NULL */
    const uint8_t *nested_state;
    size_t nested_state_len;
} NestedStockView;

/* Bytes the fields of w take on the wire, framing not included. */
size_t nested_event_wire_size(const NestedEventWire *w);

/*
 * Sender: the compact form of st, refused (naming the field) unless
 * nested_event_wire_decode() rebuilds exactly st from it and stock.
 */
bool nested_event_wire_encode(const NestedEventState *st,
                              const NestedStockView *stock,
                              NestedEventWire *w, GError **errp);

/*
 * Receiver: rebuild the whole model from w and stock.  Refuses, naming
 * the field and value, what the encoding cannot mean (unknown bits, a
 * field present without its flag, an L0 soft event) and a soft event
 * whose return address the stream's nested state does not hold.  The
 * result still has to pass nested_event_validate_received().
 */
bool nested_event_wire_decode(const NestedEventWire *w,
                              const NestedStockView *stock,
                              NestedEventState *st, GError **errp);

#endif /* TARGET_I386_NESTED_WIRE_H */
