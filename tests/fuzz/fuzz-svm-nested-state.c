/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libFuzzer target: kvm_nested_state in SVM format (see fuzz-nested-state.h).
 */

#include "fuzz-nested-state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_nested_state(data, size, NESTED_VENDOR_SVM,
                             KVM_STATE_NESTED_FORMAT_SVM);
}
