/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The hidden window: telling, from KVM's own tracepoints, whether a vCPU
 * stopped while an event L1 injected into L2 was still in flight.
 *
 * KVM keeps such an event queued for re-injection after an exit that L0
 * handled during vectoring, and exports neither its origin (an NMI's
 * nmi_l1_to_l2) nor, for INT n / INT3 / INTO, the event at all.  Its
 * tracepoints see every step: kvm_nested_vmenter (or kvm_nested_vmrun
 * on older kernels) records L1's EVENTINJ at VMRUN (VMX: the VM-entry
 * interruption information at VMLAUNCH/VMRESUME), kvm_nested_vmexit
 * records each exit from L2 with EXITINTINFO (VMX: the IDT-vectoring
 * information), kvm_nested_vmexit_inject each exit reflected to L1
 * (which the observer only counts: in guest mode an entry always
 * follows it).  This file parses the tracefs format
 * descriptions, decodes raw records and judges the last records of one
 * vCPU; accel-side code (target-i386/mirror/nested-kvm-observe.c)
 * collects them with perf_event_open.  Pure C11 + GLib.
 */

#ifndef NESTED_WINDOW_H
#define NESTED_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#include "nested-events.h"
#include "nested-state.h"

typedef enum NestedTraceKind {
    NESTED_TRACE_VMENTER,       /* L1 VMRUN: event_inj */
    NESTED_TRACE_VMEXIT,        /* exit from L2: intr_info ... info2 */
    NESTED_TRACE_VMEXIT_INJECT, /* exit reflected to L1 */
    NESTED_TRACE__MAX,
} NestedTraceKind;

/* Where a field sits in a tracepoint's raw record (tracefs "format"). */
typedef struct NestedTraceField {
    uint32_t offset;
    uint32_t size;              /* 0: absent */
} NestedTraceField;

/* The fields read from a record; vmenter has only the first. */
typedef enum NestedTraceFieldId {
    NESTED_TRACE_FIELD_INFO,        /* event_inj / intr_info */
    NESTED_TRACE_FIELD_ERROR_CODE,  /* error_code (vmexit only) */
    NESTED_TRACE_FIELD_INFO2,       /* info2 (vmexit only) */
    NESTED_TRACE_FIELD_RIP,         /* L2's RIP: nested_rip / guest_rip */
    NESTED_TRACE_FIELD__MAX,
} NestedTraceFieldId;

typedef struct NestedTraceEvent {
    uint16_t id;                /* common_type of its records */
    NestedTraceField field[NESTED_TRACE_FIELD__MAX];
} NestedTraceEvent;

typedef struct NestedTraceFormat {
    NestedTraceField common_type;
    NestedTraceEvent ev[NESTED_TRACE__MAX];
} NestedTraceFormat;

/* The tracepoint names tried for each kind, newest kernel first. */
const char *const *nested_trace_names(NestedTraceKind kind);

/*
 * Parse one event's tracefs "format" text into fmt->ev[kind] (and
 * fmt->common_type).  Fails naming the missing or malformed line.
 */
bool nested_trace_parse_format(NestedTraceFormat *fmt, NestedTraceKind kind,
                               const char *text, GError **errp);

/*
 * A vmexit record's fields as KVM's get_exit_info() fills them: on SVM
 * intr_info is EXITINTINFO and error_code its error code; on VMX
 * intr_info is the exit's own interruption information, and the
 * IDT-vectoring information is info2, without its error code.
 */
typedef struct NestedTraceRecord {
    NestedTraceKind kind;
    uint32_t info;              /* event_inj, or the exit's intr_info */
    uint32_t error_code;        /* the exit's error_code */
    uint32_t info2;             /* the exit's info2, low 32 bits */
    bool has_rip;               /* the format has the field below */
    uint64_t rip;               /* L2's RIP: entry nested_rip, exit guest_rip */
} NestedTraceRecord;

/*
 * Decode one raw sample (PERF_SAMPLE_RAW data).  Returns false, without
 * an error, for records of other events.
 */
bool nested_trace_decode(const NestedTraceFormat *fmt, const uint8_t *raw,
                         size_t len, NestedTraceRecord *rec, GError **errp);

typedef enum NestedWindowVerdict {
    NESTED_WINDOW_CLEAR,        /* nothing of L1's in flight */
    NESTED_WINDOW_L1_EVENT,     /* L1's event waits for re-injection */
    NESTED_WINDOW_UNKNOWN,      /* the records do not say */
} NestedWindowVerdict;

typedef struct NestedWindow {
    NestedWindowVerdict verdict;
    /* L1_EVENT: the event, as EXITINTINFO (SVM) or IDT-vectoring info */
    uint32_t event_info;
    uint32_t event_err;         /* SVM only: VMX's tracepoint lacks it */
    char why[160];              /* UNKNOWN: the reason */
} NestedWindow;

/*
 * Judge a vCPU's records, newest first, read as vendor's exits.
 * complete says the ring never overwrote anything since observation
 * began, so that running out of records means there were no more.
 */
void nested_window_judge(NestedVendor vendor, const NestedTraceRecord *recs,
                         size_t n, bool complete, NestedWindow *w);

/*
 * Fold a verdict into a model built from KVM_GET_VCPU_EVENTS and
 * KVM_GET_NESTED_STATE, whose decoded view is ns.  rip and cs_base are
 * L2's, which hold the old RIP of an event KVM re-injects.
 * SVM: vmcb12.control.next_rip is the return address of L1's soft event
 * (left alone after VMRUN by older kernels, refreshed from vmcb02 at
 * each exit since 778d8c1b2a6f).  VMX: vmcs12's VM-entry fields hold
 * the error code and instruction length L1 injected with; they must
 * still hold the event in flight.
 * An L1_EVENT that disagrees with what KVM reports is an error naming
 * both; an UNKNOWN verdict in guest mode is an error too.
 */
bool nested_window_apply(NestedEventState *st, const NestedWindow *w,
                         uint64_t rip, uint64_t cs_base,
                         const NestedStateView *ns, GError **errp);

#endif
