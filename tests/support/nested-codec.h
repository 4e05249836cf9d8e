/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Test support: byte codecs for struct kvm_vcpu_events and struct
 * kvm_nested_state that the product never needs (it gets the first from
 * an ioctl as a struct, and only decodes the second).  Unit tests and
 * fuzz targets use them to turn bytes into inputs and plans back into
 * bytes that KVM would accept.
 */

#ifndef TESTS_SUPPORT_NESTED_CODEC_H
#define TESTS_SUPPORT_NESTED_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>
#include <linux/kvm.h>

#include "nested-state.h"
#include "nested-wire.h"

/*
 * Bytes <-> struct.  Both refuse what KVM_SET_VCPU_EVENTS refuses:
 * a length other than the struct's, unknown flags, nonzero padding,
 * booleans above 1, and the exception rules of
 * kvm_vcpu_ioctl_x86_set_vcpu_events().
 */
bool nested_vcpu_events_decode(const uint8_t *data, size_t len,
                               struct kvm_vcpu_events *out, GError **errp);
bool nested_vcpu_events_encode(const struct kvm_vcpu_events *in,
                               uint8_t *data, size_t len, GError **errp);
/*
 * Zero what KVM ignores (fields whose valid flag is clear, nr fields of
 * events neither injected nor pending): KVM_GET_VCPU_EVENTS leaves stale
 * values there, and the model does not carry them, so this is what a
 * round trip through the model gives back.
 */
void nested_vcpu_events_canonicalize(struct kvm_vcpu_events *ev);

/*
 * Write in->size bytes: the header and the fields of the view, the rest
 * zero.  Refuses a view whose blob nested_state_decode() would refuse.
 */
bool nested_state_encode(const NestedStateView *in, uint8_t *data,
                         size_t len, GError **errp);

/* Field by field, so that padding bytes do not count. */
bool nested_event_state_equal(const NestedEventState *a,
                              const NestedEventState *b);

/*
 * The fields of cpu/nested-events version 2 as VMState puts them on the
 * wire (nested-mirror-vmstate.c), framing excluded.  write returns the
 * byte count, 0 when len is too small.  read stops at the first field
 * the bytes do not hold, naming it, and says in *used how much it took.
 */
size_t nested_event_wire_write(const NestedEventWire *w, uint8_t *data,
                               size_t len);
bool nested_event_wire_read(const uint8_t *data, size_t len,
                            NestedEventWire *w, size_t *used, GError **errp);

#endif /* TESTS_SUPPORT_NESTED_CODEC_H */
