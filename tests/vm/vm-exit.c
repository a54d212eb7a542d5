/*
 * vm-exit STATUS: write STATUS (0..255) as one byte to I/O port 0xf4, where
 * QEMU's isa-debug-exit device turns it into QEMU's exit status
 * ((STATUS << 1) | 1). The guest kernel has no /dev/port (CONFIG_DEVPORT is
 * off in Debian's cloud kernel), so this needs ioperm() and outb.
 *
 * Built -nostdlib -static so it needs neither libc.a nor a loader in the
 * initramfs: raw syscalls, its own _start.
 */
#define SYS_write 1
#define SYS_ioperm 173
#define SYS_exit 60
#define DEBUG_EXIT_PORT 0xf4

static long sys3(long n, long a, long b, long c)
{
	long r;

	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(n), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return r;
}

static void say(const char *s)
{
	long n = 0;

	while (s[n])
		n++;
	sys3(SYS_write, 2, (long)s, n);
}

void vm_exit_main(long *sp);

/* argc at (%rsp), argv after it; align the stack as the ABI wants */
__asm__(".globl _start\n"
	"_start:\n"
	"	xor %rbp, %rbp\n"
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	call vm_exit_main\n"
	"	hlt\n");

void vm_exit_main(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	unsigned v = 0;
	const char *p;

	if (argc != 2 || !argv[1][0]) {
		say("usage: vm-exit STATUS (0..255)\n");
		sys3(SYS_exit, 2, 0, 0);
	}
	for (p = argv[1]; *p; p++) {
		if (*p < '0' || *p > '9' || v > 255) {
			say("vm-exit: STATUS must be 0..255\n");
			sys3(SYS_exit, 2, 0, 0);
		}
		v = v * 10 + (unsigned)(*p - '0');
	}
	if (v > 255 || sys3(SYS_ioperm, DEBUG_EXIT_PORT, 1, 1) != 0) {
		say("vm-exit: bad status or ioperm(0xf4) failed\n");
		sys3(SYS_exit, 1, 0, 0);
	}
	__asm__ volatile("outb %b0, %w1" : : "a"((unsigned char)v), "Nd"((unsigned short)DEBUG_EXIT_PORT));
	/* only reached without an isa-debug-exit device */
	sys3(SYS_exit, 1, 0, 0);
}
