/*
 * nkvm-guest: serial output, formatted printing, exit, string helpers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "nkvm-guest.h"

#define UART_THR        0       /* transmit holding register (DLAB=0) */
#define UART_IER        1
#define UART_FCR        2
#define UART_LCR        3
#define UART_MCR        4
#define UART_LSR        5
#define UART_LSR_THRE   0x20

/*
 * Bound on polling the line status register.  A 16550 that never
 * drains must not hang the guest forever: after this many polls the
 * byte is written anyway, which at worst loses output.
 */
#define UART_POLL_LIMIT 100000

/* P=1, DPL=0, type 0xe: 64-bit interrupt gate, kernel code segment. */
void idt_set_gate(IdtGate *gate, uint64_t handler)
{
    gate->offset_lo = handler;
    gate->selector = GDT_CODE64;
    gate->ist = 0;
    gate->type_attr = 0x8e;
    gate->offset_mid = handler >> 16;
    gate->offset_hi = handler >> 32;
    gate->reserved = 0;
}

void idt_load(const IdtGate *idt, size_t entries)
{
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) desc = {
        sizeof(*idt) * entries - 1, (uint64_t)idt
    };

    asm volatile("lidt %0" : : "m"(desc));
}

void serial_init(void)
{
    outb(NKVM_COM1 + UART_IER, 0x00);   /* no interrupts: IF stays 0 */
    outb(NKVM_COM1 + UART_LCR, 0x80);   /* DLAB: set divisor */
    outb(NKVM_COM1 + 0, 0x01);          /* 115200 baud */
    outb(NKVM_COM1 + 1, 0x00);
    outb(NKVM_COM1 + UART_LCR, 0x03);   /* 8N1 */
    outb(NKVM_COM1 + UART_FCR, 0x07);   /* enable and clear FIFOs */
    outb(NKVM_COM1 + UART_MCR, 0x03);   /* DTR, RTS */
}

void serial_putc(char c)
{
    int i;

    if (c == '\n') {
        serial_putc('\r');
    }
    for (i = 0; i < UART_POLL_LIMIT; i++) {
        if (inb(NKVM_COM1 + UART_LSR) & UART_LSR_THRE) {
            break;
        }
    }
    outb(NKVM_COM1 + UART_THR, c);
}

void guest_exit(int value)
{
    outl(NKVM_EXIT_PORT, value);
    /*
     * Without isa-debug-exit the write is ignored; stop here rather than
     * run off into whatever follows the caller.
     */
    for (;;) {
        asm volatile("cli; hlt");
    }
}

static void put_str(const char *s)
{
    while (*s) {
        serial_putc(*s++);
    }
}

static void put_num(uint64_t v, unsigned base, bool neg, int width, char pad)
{
    char buf[24];
    int n = 0;

    do {
        buf[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (neg) {
        buf[n++] = '-';
    }
    while (n < width && n < (int)sizeof(buf)) {
        buf[n++] = pad;
    }
    while (n) {
        serial_putc(buf[--n]);
    }
}

/*
 * A printf subset: %s %c %d %u %x %p, flags '#' and '0', a width, and
 * the 'l'/'ll'/'z' length modifiers.
 */
void kvprintf(const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        bool alt = false;
        char pad = ' ';
        int width = 0;
        int longs = 0;
        uint64_t u;
        int64_t s;

        if (*fmt != '%') {
            serial_putc(*fmt);
            continue;
        }
        fmt++;
        if (*fmt == '#') {
            alt = true;
            fmt++;
        }
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9') {
            width = width * 10 + (*fmt++ - '0');
        }
        while (*fmt == 'l' || *fmt == 'z') {
            longs++;
            fmt++;
        }
        switch (*fmt) {
        case 's':
            put_str(va_arg(ap, const char *));
            break;
        case 'c':
            serial_putc((char)va_arg(ap, int));
            break;
        case 'd':
            s = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
            u = s < 0 ? -(uint64_t)s : (uint64_t)s;
            put_num(u, 10, s < 0, width, pad);
            break;
        case 'u':
            u = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
            put_num(u, 10, false, width, pad);
            break;
        case 'p':
            alt = true;
            longs = 1;
            /* fall through */
        case 'x':
            u = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
            if (alt) {
                put_str("0x");
            }
            put_num(u, 16, false, width, pad);
            break;
        case '%':
            serial_putc('%');
            break;
        case '\0':
            return;
        default:
            serial_putc('%');
            serial_putc(*fmt);
            break;
        }
    }
}

void kprintf(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    kvprintf(fmt, ap);
    va_end(ap);
}

/*
 * GCC may emit calls to these even with -ffreestanding.  String
 * instructions keep it from turning the loops back into calls to
 * themselves.
 */
void *memset(void *s, int c, size_t n)
{
    void *d = s;

    asm volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return s;
}

void *memcpy(void *dst, const void *src, size_t n)
{
    void *d = dst;

    asm volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    const char *s = src;
    char *d = dst;

    if (d <= s || d >= s + n) {
        return memcpy(dst, src, n);
    }
    while (n--) {
        d[n] = s[n];
    }
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    size_t i;

    for (i = 0; i < n; i++) {
        if (x[i] != y[i]) {
            return x[i] - y[i];
        }
    }
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;

    while (s[n]) {
        n++;
    }
    return n;
}

void check_named(void (*check)(const char *, uint64_t, uint64_t),
                 const char *name, const char *what, uint64_t got,
                 uint64_t expected)
{
    char desc[160];
    size_t n = strlen(name), m = strlen(what);

    if (n + m + 3 > sizeof(desc)) {
        m = sizeof(desc) - n - 3;
    }
    memcpy(desc, name, n);
    desc[n] = ':';
    desc[n + 1] = ' ';
    memcpy(desc + n + 2, what, m);
    desc[n + 2 + m] = '\0';
    check(desc, got, expected);
}
