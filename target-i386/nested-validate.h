/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Validation of the event model (nested-events.h): what KVM could hold
 * and what a migration stream may carry.  See docs/event-model.rst.
 */

#ifndef TARGET_I386_NESTED_VALIDATE_H
#define TARGET_I386_NESTED_VALIDATE_H

#include <stdbool.h>
#include <glib.h>

#include "nested-events.h"

/*
 * Every inconsistency, each as "<field path>=<value>: <reason>", in
 * a fixed order.  Empty array: the model is consistent.  Free with
 * g_ptr_array_unref().
 */
GPtrArray *nested_event_check(const NestedEventState *st);
/* Same rules; the first problem goes to errp (INCONSISTENT). */
bool nested_event_validate(const NestedEventState *st, GError **errp);
/*
 * A model that arrived in a migration stream, against the CPU state
 * that came with it: BASE_GUEST_MODE is whether that state has the vCPU
 * in guest mode.  A sender carries the model only when it holds
 * something stock QEMU cannot, so an idle one is refused too.
 */
bool nested_event_validate_received(const NestedEventState *st,
                                    bool base_guest_mode, GError **errp);

#endif /* TARGET_I386_NESTED_VALIDATE_H */
