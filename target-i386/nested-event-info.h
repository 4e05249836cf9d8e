/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Conversions between a model event and the interruption-information
 * words of SVM and VMX.
 */

#ifndef TARGET_I386_NESTED_EVENT_INFO_H
#define TARGET_I386_NESTED_EVENT_INFO_H

#include "nested-events.h"
#include "nested-intinfo.h"

/*
 * Model event <-> SVM EVENTINJ/EXITINTINFO (+ error-code word).
 * SVM has no separate soft-exception type: type 3 with vector 3 or 4 is
 * INT3/INTO (as KVM's is_evtinj_soft() reads it), so a hardware
 * exception with those vectors, ICEBP and type 7 are unrepresentable.
 * An NMI's vector is ignored by SVM (KVM writes 0); the model always
 * says 2 and the encoder writes 2.
 */
bool nested_event_from_svm(NestedIntInfoKind kind, uint32_t raw,
                           uint32_t err, NestedEvent *ev, GError **errp);
bool nested_event_to_svm(const NestedEvent *ev, uint32_t *raw,
                         uint32_t *err, GError **errp);
/* Model event <-> VMX interruption info + error code + insn length. */
bool nested_event_from_vmx(NestedIntInfoKind kind, uint32_t raw,
                           uint32_t err, uint32_t insn_len,
                           NestedEvent *ev, GError **errp);
bool nested_event_to_vmx(const NestedEvent *ev, uint32_t *raw,
                         uint32_t *err, uint32_t *insn_len, GError **errp);

#endif /* TARGET_I386_NESTED_EVENT_INFO_H */
