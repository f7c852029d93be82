/* hyperlab boot loader entry: v86 starts a multiboot image with no BIOS,
 * in flat 32-bit protected mode, EAX = multiboot magic, EBX = info block.
 * We take a stack, then hand over to C. */
	.section .multiboot, "a"
	.align 4
	.long 0x1BADB002            /* multiboot header magic */
	.long 0x00000002            /* flags: give us a memory map */
	.long -(0x1BADB002 + 0x00000002)

	.text
	.globl _start
_start:
	cli
	movl $stack_top, %esp
	pushl %ebx                  /* struct multiboot_info * */
	pushl %eax                  /* magic */
	call loader_main
1:	hlt
	jmp 1b

/* Enter Linux through its 32-bit boot protocol (Documentation/x86/boot.rst):
 * a GDT with flat __BOOT_CS (0x10) and __BOOT_DS (0x18), segments loaded,
 * interrupts off, ESI = boot_params, EBP = EDI = EBX = 0.
 * void enter_linux(u32 entry, void *boot_params) */
	.globl enter_linux
enter_linux:
	movl 4(%esp), %ecx          /* entry */
	movl 8(%esp), %esi          /* boot_params */
	lgdt gdt_ptr
	ljmp $0x10, $1f
1:	movl $0x18, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %eax, %fs
	movl %eax, %gs
	xorl %ebp, %ebp
	xorl %edi, %edi
	xorl %ebx, %ebx
	jmp *%ecx

	.section .rodata
	.align 8
gdt:
	.quad 0                     /* 0x00 null */
	.quad 0                     /* 0x08 unused */
	.quad 0x00cf9a000000ffff    /* 0x10 __BOOT_CS: base 0, 4 GiB, code r/x */
	.quad 0x00cf92000000ffff    /* 0x18 __BOOT_DS: base 0, 4 GiB, data r/w */
gdt_end:
gdt_ptr:
	.word gdt_end - gdt - 1
	.long gdt

	.bss
	.align 16
	.space 8192
stack_top:
	.section .note.GNU-stack, "", @progbits
