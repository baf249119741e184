/*
 * fill-boot: a 512-byte x86 boot sector for the QEMU exec: benchmark
 * (bench/qemu-exec.sh).  It gives a big guest a realistic mix of zero and
 * non-zero pages, then goes idle so the VM can be saved stopped.
 *
 * After entering flat 32-bit protected mode (as ab-boot.S does) it writes
 * 'A' to COM1, finds the top of RAM below 4 GiB from the CMOS (registers
 * 0x34/0x35: RAM above 16 MiB in 64 KiB units, as the firmware reads it),
 * then marks two of every three 4 KiB pages in [1 MiB, top) with their own
 * address in the first dword and its complement in the last one, writes
 * 'D' and halts.
 *
 * With "-machine pc -m 4G", QEMU puts 3 GiB below 4 GiB (the rest above,
 * out of reach without paging, left zero), so 2 GiB of the 4 GiB are
 * non-zero pages: half of the guest's RAM.  Only two dwords per page are
 * written because a page is non-zero as soon as one byte is; filling whole
 * pages under TCG would only slow set-up.
 *
 * Two layouts of the same amount (the build makes one sector of each):
 *   fill-boot.bin            page by page: every third page stays zero,
 *                            the worst case for a file that keeps zero
 *                            pages as holes (one extent per 8 KiB run);
 *   fill-boot-clustered.bin  (assembled with --defsym CLUSTERED=1) in
 *                            64 KiB chunks: a chunk stays zero when a hash
 *                            of its number is 0 mod 3, so zero and non-zero
 *                            runs of 64 KiB and longer alternate as in
 *                            mapram-vm's "fill" guest (chunk=16).
 */

        .set SERIAL_PORT,   0x3f8
        .set FIRST_PAGE,    0x00100000      /* 1 MiB */
        .set PAGE_SIZE,     0x1000
        .set CMOS_INDEX,    0x70
        .set CMOS_DATA,     0x71
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

        inb     $0x92, %al              /* fast A20; bit 0 would reset */
        orb     $0x02, %al
        andb    $0xfe, %al
        outb    %al, $0x92

        lgdtl   gdt_desc
        movl    %cr0, %eax
        orl     $1, %eax
        movl    %eax, %cr0
        ljmpl   $CODE_SEL, $protected

        .code32
protected:
        movw    $DATA_SEL, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movl    $0x7c00, %esp

        movw    $SERIAL_PORT, %dx
        movb    $'A', %al
        outb    %al, %dx

        /* top = 16 MiB + CMOS[0x35:0x34] * 64 KiB (NMI stays disabled). */
        movb    $0x80 | 0x35, %al
        outb    %al, $CMOS_INDEX
        inb     $CMOS_DATA, %al
        movb    %al, %ah
        movb    $0x80 | 0x34, %al
        outb    %al, $CMOS_INDEX
        inb     $CMOS_DATA, %al
        movzwl  %ax, %edi
        shll    $16, %edi
        addl    $0x01000000, %edi       /* edi = end of low RAM */

        movl    $FIRST_PAGE, %ebx
        xorl    %ecx, %ecx              /* page index mod 3 */
fill_loop:
.ifdef CLUSTERED
        movl    %ebx, %eax
        shrl    $16, %eax               /* 64 KiB chunk number */
        imull   $0x9e3779b1, %eax, %eax /* Fibonacci hash */
        shrl    $8, %eax
        xorl    %edx, %edx
        movl    $3, %esi
        divl    %esi
        testl   %edx, %edx
.else
        testl   %ecx, %ecx
.endif
        jz      skip_page               /* a third of the pages stay zero */
        movl    %ebx, (%ebx)
        movl    %ebx, %eax
        notl    %eax
        movl    %eax, PAGE_SIZE - 4(%ebx)
skip_page:
        incl    %ecx
        cmpl    $3, %ecx
        jne     1f
        xorl    %ecx, %ecx
1:
        addl    $PAGE_SIZE, %ebx
        cmpl    %edi, %ebx
        jb      fill_loop

        movw    $SERIAL_PORT, %dx
        movb    $'D', %al
        outb    %al, %dx
idle:
        hlt
        jmp     idle

        .p2align 3
gdt:
        .quad   0
        .quad   0x00cf9a000000ffff      /* CODE_SEL: flat 4 GiB execute/read */
        .quad   0x00cf92000000ffff      /* DATA_SEL: flat 4 GiB read/write */
gdt_end:

gdt_desc:
        .word   gdt_end - gdt - 1
        .long   gdt

        .org    510
        .byte   0x55, 0xaa
