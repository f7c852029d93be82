/* hyperlab boot loader: turns a multiboot start (what v86 offers without any
 * BIOS) into a Linux 32-bit boot protocol start. This skips the firmware
 * entirely (no POST, no device probes, no boot menu) and, since the kernel is
 * uncompressed, the decompressor too.
 *
 * Input, from v86: one multiboot module that the host lays out as
 *   [vmlinux.bin: the kernel's bytes from its load address]
 *   [zeros up to the kernel's end (bss, brk), rounded to 4 KiB]
 *   [initramfs: concatenated cpio archives]
 *   [the bzImage's first 4 KiB: boot sector and setup header]
 *   [struct trailer]
 * The module is placed at the kernel's load address (see loader.ld). Output:
 * boot_params (the "zero page") built from the kernel's own setup header, an
 * e820 map from the multiboot memory map, PCI interrupt routing, and a jump
 * to the kernel's 32-bit entry point. */

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002
#define MB_INFO_CMDLINE (1u << 2)
#define MB_INFO_MODS (1u << 3)
#define MB_INFO_MEM_MAP (1u << 6)

struct mb_info {
	u32 flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
	u32 syms[4];
	u32 mmap_length, mmap_addr;
};
struct mb_module { u32 start, end, string, reserved; };
struct mb_mmap { u32 size; u64 addr, len; u32 type; } __attribute__((packed));

/* At the very end of the module; written by the host (src/hardware/direct-boot.ts). */
#define TRAILER_MAGIC 0x31424c48 /* "HLB1" */
struct trailer {
	u32 kernel_load;   /* physical address the kernel's bytes must be at */
	u32 kernel_entry;  /* physical address of the 32-bit entry point */
	u32 kernel_end;    /* physical end of the kernel image with bss and brk */
	u32 initrd_offset; /* from the module start */
	u32 initrd_size;
	u32 header_offset; /* 4 KiB copy of the bzImage start (setup header) */
	u32 magic;
};

/* Offsets in struct boot_params (arch/x86/include/uapi/asm/bootparam.h). */
#define BP_SIZE 4096
#define BP_E820_ENTRIES 0x1e8
#define BP_HDR 0x1f1
#define BP_E820_TABLE 0x2d0
#define BP_E820_MAX 128
#define HDR_BOOT_FLAG 0x1fe
#define HDR_JUMP 0x200
#define HDR_MAGIC 0x202
#define HDR_VERSION 0x206
#define HDR_TYPE_OF_LOADER 0x210
#define HDR_RAMDISK_IMAGE 0x218
#define HDR_RAMDISK_SIZE 0x21c
#define HDR_CMD_LINE_PTR 0x228
#define HDR_CMDLINE_SIZE 0x238
#define E820_RAM 1
#define E820_RESERVED 2

/* Low memory that nothing else uses at this point: the kernel copies both
 * out early in head_32.S. */
#define BOOT_PARAMS_ADDR 0x10000
#define CMDLINE_ADDR 0x11000
#define CMDLINE_MAX 2048

extern void enter_linux(u32 entry, void *boot_params) __attribute__((noreturn));

/* The only output device a loader without BIOS has: the first UART. */
static u8 inb(u16 port)
{
	u8 v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static u32 inl(u16 port)
{
	u32 v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* PCI configuration mechanism #1, bus 0 only (v86 has no bridges). */
static u32 pci_read32(u32 dev, u32 reg)
{
	outl(0xcf8, 0x80000000u | dev << 11 | (reg & 0xfc));
	return inl(0xcfc);
}

static u8 pci_read8(u32 dev, u32 reg) { return pci_read32(dev, reg) >> ((reg & 3) * 8); }

static void pci_write8(u32 dev, u32 reg, u8 v)
{
	outl(0xcf8, 0x80000000u | dev << 11 | (reg & 0xfc));
	outb(0xcfc + (reg & 3), v);
}

/* Without firmware nobody routes PCI interrupts, and Linux (no ACPI, no
 * $PIR table) trusts each device's Interrupt Line register. Do what a PC BIOS
 * does on a PIIX3: route PIRQA-D to IRQs 10, 10, 11, 11, make those IRQs
 * level-triggered in the ELCR, and write each device's IRQ into its config
 * space. The PIIX wiring rotates pins by slot: PIRQ = (pin - 1 + slot - 1) & 3. */
static void route_pci_irqs(void)
{
	static const u8 pirq_irq[4] = { 10, 10, 11, 11 };
	const u32 piix = 1; /* 00:01.0, the PCI-ISA bridge */
	for (u32 i = 0; i < 4; i++)
		pci_write8(piix, 0x60 + i, pirq_irq[i]);
	outb(0x4d1, 1 << (10 - 8) | 1 << (11 - 8));
	for (u32 dev = 0; dev < 32; dev++) {
		if ((pci_read32(dev, 0) & 0xffff) == 0xffff)
			continue;
		u8 pin = pci_read8(dev, 0x3d);
		if (pin)
			pci_write8(dev, 0x3c, pirq_irq[(pin - 1 + dev - 1) & 3]);
	}
}

static void putc_serial(char c)
{
	while (!(inb(0x3fd) & 0x20)) /* wait for the transmit holding register */
		;
	outb(0x3f8, c);
}

static void puts_serial(const char *s)
{
	while (*s) {
		if (*s == '\n')
			putc_serial('\r');
		putc_serial(*s++);
	}
}

static __attribute__((noreturn)) void fail(const char *why)
{
	/* The host watches the console for this prefix and turns it into an error. */
	puts_serial("hyperlab-loader: error: ");
	puts_serial(why);
	puts_serial("\n");
	for (;;)
		__asm__ volatile("cli; hlt");
}

static void copy(void *dst, const void *src, u32 n)
{
	__asm__ volatile("cld; rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
}

static void zero(void *dst, u32 n)
{
	__asm__ volatile("cld; rep stosb" : "+D"(dst), "+c"(n) : "a"(0) : "memory");
}

static u32 rd32(const u8 *p) { return p[0] | p[1] << 8 | p[2] << 16 | (u32)p[3] << 24; }
static u16 rd16(const u8 *p) { return p[0] | p[1] << 8; }
static void wr32(u8 *p, u32 v) { p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24; }

static void add_e820(u8 *bp, u64 addr, u64 len, u32 type)
{
	u8 n = bp[BP_E820_ENTRIES];
	if (n >= BP_E820_MAX || len == 0)
		return;
	u8 *e = bp + BP_E820_TABLE + 20 * n;
	copy(e, &addr, 8);
	copy(e + 8, &len, 8);
	copy(e + 16, &type, 4);
	bp[BP_E820_ENTRIES] = n + 1;
}

void loader_main(u32 magic, const struct mb_info *mb)
{
	if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
		fail("not started by a multiboot loader");
	if (!(mb->flags & MB_INFO_MODS) || mb->mods_count < 1)
		fail("no kernel: pass the bzImage (and initramfs) as the multiboot module");
	if (!(mb->flags & MB_INFO_MEM_MAP))
		fail("no memory map from the emulator");

	const struct mb_module *mod = (const struct mb_module *)mb->mods_addr;
	u32 module_size = mod->end - mod->start;
	if (module_size < sizeof(struct trailer) + 0x1000)
		fail("the module is too small to hold a kernel");
	const struct trailer *t = (const struct trailer *)(mod->end - sizeof(struct trailer));
	if (t->magic != TRAILER_MAGIC)
		fail("the module has no hyperlab boot trailer (was it built by this hyperlab?)");
	if (t->header_offset > module_size - 0x1000 || t->initrd_offset + t->initrd_size > module_size)
		fail("the boot trailer points outside the module");
	if (mod->start != t->kernel_load)
		fail("the module is not at the kernel's load address (MODULE_BASE in loader.ld differs from CONFIG_PHYSICAL_START)");
	if (mod->start + t->initrd_offset < t->kernel_end && t->initrd_size)
		fail("the initramfs overlaps the kernel image");
	const u8 *kernel = (const u8 *)(mod->start + t->header_offset);
	if (rd16(kernel + HDR_BOOT_FLAG) != 0xAA55 || rd32(kernel + HDR_MAGIC) != 0x53726448)
		fail("the kernel setup header has no HdrS signature");
	if (rd16(kernel + HDR_VERSION) < 0x020a)
		fail("Linux boot protocol 2.10 or newer is needed");

	u8 *bp = (u8 *)BOOT_PARAMS_ADDR;
	zero(bp, BP_SIZE);
	/* The setup header ends at 0x202 + the byte at 0x201 (the jump offset). */
	u32 hdr_end = HDR_JUMP + 2 + kernel[HDR_JUMP + 1];
	copy(bp + BP_HDR, kernel + BP_HDR, hdr_end - BP_HDR);

	bp[HDR_TYPE_OF_LOADER] = 0xff;
	if (t->initrd_size) {
		wr32(bp + HDR_RAMDISK_IMAGE, mod->start + t->initrd_offset);
		wr32(bp + HDR_RAMDISK_SIZE, t->initrd_size);
	}

	char *cmdline = (char *)CMDLINE_ADDR;
	u32 cmdline_max = rd32(kernel + HDR_CMDLINE_SIZE);
	if (cmdline_max == 0 || cmdline_max > CMDLINE_MAX - 1)
		cmdline_max = CMDLINE_MAX - 1;
	u32 n = 0;
	if (mb->flags & MB_INFO_CMDLINE) {
		const char *src = (const char *)mb->cmdline;
		while (src[n] && n < cmdline_max)
			n++;
		if (src[n])
			fail("kernel command line too long");
		copy(cmdline, src, n);
	}
	cmdline[n] = 0;
	wr32(bp + HDR_CMD_LINE_PTR, CMDLINE_ADDR);

	/* Conventional PC layout below 1 MiB; above it, what the emulator reports. */
	add_e820(bp, 0, 0x9f000, E820_RAM);
	add_e820(bp, 0x9f000, 0x100000 - 0x9f000, E820_RESERVED);
	const u8 *m = (const u8 *)mb->mmap_addr;
	const u8 *mend = m + mb->mmap_length;
	while (m < mend) {
		const struct mb_mmap *e = (const struct mb_mmap *)m;
		u64 start = e->addr, end = e->addr + e->len;
		if (start < 0x100000)
			start = 0x100000;
		if (end > start)
			add_e820(bp, start, end - start, e->type == 1 ? E820_RAM : E820_RESERVED);
		m += e->size + 4;
	}

	route_pci_irqs();
	enter_linux(t->kernel_entry, bp);
}
