/*
 * ab-boot: a 512-byte x86 boot sector that makes guest memory checkable
 * after a migration with a real QEMU as the peer.
 *
 * The BIOS loads it at 0x7c00 in real mode.  It turns on A20, enters
 * flat 32-bit protected mode (no paging), writes 'A' to COM1, clears the
 * first byte of every 4 KiB page in [1 MiB, 100 MiB), then increments
 * those bytes forever in ascending page order, writing 'B' to COM1 after
 * every 64 complete passes.
 *
 * Why this pattern: at any instant all page bytes are equal except that a
 * prefix of the range is one step ahead (the loop is mid-pass), so a dump
 * of memory taken while the vCPU is stopped has at most one "edge" where
 * the value drops by one.  A restore that loses or misplaces any page breaks
 * that invariant; 'B' on the destination serial proves the vCPU resumed.
 * The invariant is checked by util/ab-pattern.c, shared with mapram-vm's
 * own ab guest (system/guest.c): keep the range and page size in step.
 *
 * The loop keeps its state in registers only (no stack, no RAM variables
 * besides the pages themselves), so the migrated CPU state is all it needs.
 *
 * Built with GNU as --32 and ld -m elf_i386 -Ttext 0x7c00 --oformat binary;
 * the boot signature is placed by .org below, so the output is exactly one
 * 512-byte sector.
 */

        .set SERIAL_PORT,   0x3f8
        .set FIRST_PAGE,    0x00100000      /* 1 MiB */
        .set END_PAGE,      0x06400000      /* 100 MiB, exclusive */
        .set PAGE_SIZE,     0x1000
        .set PASSES_PER_B,  64
        .set CODE_SEL,      0x08
        .set DATA_SEL,      0x10

        .code16
        .text
        .globl _start
_start:
        cli
        cld
        xorw    %ax, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movw    $0x7c00, %sp

        /*
         * A20 through the "fast A20" bit of system control port A (0x92).
         * Bit 0 would reset the machine, so it is kept clear.
         */
        inb     $0x92, %al
        orb     $0x02, %al
        andb    $0xfe, %al
        outb    %al, $0x92

        lgdtl   gdt_desc
        movl    %cr0, %eax
        orl     $1, %eax                /* CR0.PE */
        movl    %eax, %cr0
        ljmpl   $CODE_SEL, $protected

        .code32
protected:
        movw    $DATA_SEL, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %fs
        movw    %ax, %gs
        movw    %ax, %ss
        movl    $0x7c00, %esp

        movw    $SERIAL_PORT, %dx
        movb    $'A', %al
        outb    %al, %dx

        /* Start from a known state: every tracked byte 0. */
        movl    $FIRST_PAGE, %ebx
clear_loop:
        movb    $0, (%ebx)
        addl    $PAGE_SIZE, %ebx
        cmpl    $END_PAGE, %ebx
        jb      clear_loop

        xorl    %ecx, %ecx              /* completed passes */
pass_loop:
        movl    $FIRST_PAGE, %ebx
inc_loop:
        incb    (%ebx)
        addl    $PAGE_SIZE, %ebx
        cmpl    $END_PAGE, %ebx
        jb      inc_loop

        incl    %ecx
        testl   $(PASSES_PER_B - 1), %ecx
        jnz     pass_loop
        movb    $'B', %al
        outb    %al, %dx
        jmp     pass_loop

/*
 * Flat GDT: null descriptor, then 4 GiB code and data segments (base 0,
 * limit 0xfffff in 4 KiB units, 32-bit, present, ring 0).
 */
        .p2align 3
gdt:
        .quad   0
        .quad   0x00cf9a000000ffff      /* CODE_SEL: execute/read */
        .quad   0x00cf92000000ffff      /* DATA_SEL: read/write */
gdt_end:

gdt_desc:
        .word   gdt_end - gdt - 1
        .long   gdt

        .org    510
        .byte   0x55, 0xaa
