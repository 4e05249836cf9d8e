/*
 * Decoder for x86 software-interrupt instructions
 *
 * When KVM reports a software event (INT n, INT3, INTO, INT1/ICEBP) that
 * was in flight at a VM exit, the next RIP is "old RIP + instruction
 * length".  The length KVM hands us comes from state the guest (or an L1
 * hypervisor) can influence, so before trusting it we re-decode the guest
 * bytes at the old RIP and check that they really are that instruction.
 *
 * Pure C11: no QEMU or GLib headers, so the decoder can be unit tested and
 * fuzzed on its own.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef TARGET_I386_SOFT_INSN_H
#define TARGET_I386_SOFT_INSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Architectural limit; a longer instruction raises #GP(0). */
#define SOFT_INSN_MAX_LENGTH 15

/* Values are the default operand size in bits of the code segment. */
typedef enum SoftInsnMode {
    SOFT_INSN_MODE_16 = 16,
    SOFT_INSN_MODE_32 = 32,
    SOFT_INSN_MODE_64 = 64,
} SoftInsnMode;

typedef enum SoftInsnKind {
    SOFT_INSN_KIND_NONE = 0,
    SOFT_INSN_KIND_INT_N,       /* CD ib */
    SOFT_INSN_KIND_INT3,        /* CC */
    SOFT_INSN_KIND_INTO,        /* CE */
    SOFT_INSN_KIND_INT1,        /* F1 (ICEBP) */
} SoftInsnKind;

/*
 * Negative so that soft_insn_decode() can return "0 or error" as an int.
 * Where several apply, the order of checks is documented at
 * soft_insn_decode().
 */
typedef enum SoftInsnError {
    SOFT_INSN_OK = 0,
    SOFT_INSN_ERR_INVALID_ARG = -1,  /* NULL pointer or unknown mode */
    SOFT_INSN_ERR_TRUNCATED = -2,    /* input ends inside the instruction */
    SOFT_INSN_ERR_NOT_SOFT = -3,     /* opcode is not CC, CD, CE or F1 */
    SOFT_INSN_ERR_TOO_LONG = -4,     /* more than 15 bytes: #GP(0) */
    SOFT_INSN_ERR_INTO_64 = -5,      /* INTO in 64-bit mode: #UD */
    SOFT_INSN_ERR_INC_DEC = -6,      /* 40-4F outside 64-bit mode */
    SOFT_INSN_ERR_LOCK = -7,         /* LOCK prefix: #UD */
} SoftInsnError;

typedef struct SoftInsn {
    SoftInsnKind kind;
    uint8_t vector;         /* n for INT n, else 3, 4 or 1 */
    uint8_t length;         /* prefixes + opcode (+ imm8), 1..15 */
    uint8_t prefix_count;   /* legacy and REX bytes, ignored ones included */
    bool has_rex;           /* an effective REX immediately precedes opcode */
} SoftInsn;

/*
 * Decode the instruction at @bytes[0 .. @len - 1], never reading past
 * @len.  On success fill @out and return SOFT_INSN_OK; otherwise return a
 * negative SoftInsnError and leave @out zeroed (kind NONE).
 *
 * Prefixes follow SDM vol. 2 §2.1.1 and §2.2.1:
 *  - F0 F2 F3 2E 36 3E 26 64 65 66 67 may repeat in any order; only the
 *    15-byte total limit bounds them.  None changes INT n/INT3/INTO/INT1,
 *    except LOCK, which makes all four #UD.
 *  - 40-4F are REX prefixes only in 64-bit mode; elsewhere they are the
 *    one-byte INC/DEC opcodes, so the bytes are not a soft interrupt.
 *  - A REX that is followed by another prefix (legacy or REX) is ignored
 *    by the CPU rather than faulting.  We do the same: the instruction is
 *    accepted, the ignored REX counts towards length and prefix_count, and
 *    has_rex reports only a REX that immediately precedes the opcode.
 *    Rejecting such encodings would make us disagree with the length the
 *    CPU itself used.
 *
 * Checks are made in byte order, so the first problem found wins:
 * INVALID_ARG, then per byte TOO_LONG (the byte would be the 16th) before
 * TRUNCATED (the byte is beyond @len), then for the opcode NOT_SOFT or
 * INC_DEC, then the imm8 of CD (TOO_LONG before TRUNCATED), then INTO_64,
 * then LOCK.
 */
int soft_insn_decode(const uint8_t *bytes, size_t len, SoftInsnMode mode,
                     SoftInsn *out);

/* Static English text for a SoftInsnError; never NULL. */
const char *soft_insn_strerror(int err);

/* Static name such as "INT3" for a kind; never NULL. */
const char *soft_insn_kind_name(SoftInsnKind kind);

/*
 * True if a decoded @insn is the software event @kind with @vector.  Kind
 * matters as well as vector: CC (INT3, a software exception) and CD 03
 * (INT 3, a software interrupt) share vector 3 but differ in how they are
 * injected and in privilege checks.
 */
bool soft_insn_matches(const SoftInsn *insn, uint8_t vector,
                       SoftInsnKind kind);

#endif /* TARGET_I386_SOFT_INSN_H */
