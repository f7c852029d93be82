/* hyperlab guest /init: the first process the kernel starts from the initramfs.
 *
 * It prepares the system that containers need, then hands PID 1 over to
 * busybox init (which keeps a shell on the serial console):
 *   1. makes the root a real mount (see make_root_a_mount),
 *   2. mounts /dev, /proc, /sys, /dev/pts, /dev/shm, /dev/mqueue, /run, /tmp
 *      and the cgroup v2 hierarchy, and hands the cpu, memory, pids and io
 *      controllers down to child cgroups,
 *   3. names the host and brings up loopback,
 *   4. tells the host it is ready on the control channel (virtio console
 *      port 1, /dev/vport<N>p1, linked as /dev/hyperlab-control), never on
 *      the user's console.
 * It is C rather than a shell script because every command a script runs is
 * a fork and exec that an emulated CPU pays for at each boot.
 *
 * init=PROGRAM on the kernel command line replaces busybox init, as with any
 * initramfs (the kernel itself ignores init= when the initramfs has /init).
 * If PROGRAM cannot run, /init exits and the kernel panics, which the host
 * reports as GUEST_PANIC. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

/* Port 1 of the virtio console is named vport<N>p1, N the console's number
 * among the virtio devices (the 9p device comes first on the PCI bus): init
 * finds it and links it here, where the agent opens it. */
#define CONTROL_CHANNEL "/dev/hyperlab-control"

static void warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("hyperlab-init: ", stderr);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, ": %s\n", strerror(errno));
	va_end(ap);
}

static void mount_fs(const char *type, const char *target, unsigned long flags, const char *data)
{
	mkdir(target, 0755);
	if (mount(type, target, type, flags, data) != 0)
		warn("mount %s on %s", type, target);
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		warn("write %s", path);
	if (fd >= 0)
		close(fd);
}

/* A boot event for the host: one line on the control channel. */
static void tell_host(const char *event)
{
	char line[64];
	snprintf(line, sizeof line, "hyperlab:%s\n", event);
	write_file(CONTROL_CHANNEL, line);
}

/* The initramfs root ("rootfs") has no parent mount, so pivot_root(2), which
 * container runtimes use, refuses to run under it. Bind-mount the root onto
 * itself and chroot into that bind mount: the same files, nothing copied, and
 * the root is now an ordinary mount. */
static void make_root_a_mount(void)
{
	mkdir("/.root", 0700);
	if (mount("/", "/.root", NULL, MS_BIND, NULL) != 0 || chdir("/.root") != 0 ||
	    mount(".", "/", NULL, MS_MOVE, NULL) != 0 || chroot(".") != 0 || chdir("/") != 0) {
		warn("making / a mount");
		return;
	}
	rmdir("/.root");
}

static void loopback_up(void)
{
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	strcpy(ifr.ifr_name, "lo");
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) != 0 || (ifr.ifr_flags |= IFF_UP, ioctl(fd, SIOCSIFFLAGS, &ifr)) != 0)
		warn("bringing up lo");
	if (fd >= 0)
		close(fd);
}

/* The value of init= on the kernel command line, or NULL. */
static char *custom_init(void)
{
	static char cmdline[4096];
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, cmdline, sizeof cmdline - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return NULL;
	cmdline[n] = 0;
	char *found = NULL;
	for (char *arg = strtok(cmdline, " \n"); arg; arg = strtok(NULL, " \n"))
		if (strncmp(arg, "init=", 5) == 0)
			found = arg + 5; /* the last one wins, as in the kernel */
	return found;
}

/* The container runtimes, each bind-mounted read-only onto itself. crun and
 * runc defend against CVE-2019-5736 (a container overwriting the runtime's
 * binary through /proc/self/exe) by copying themselves into a sealed memfd
 * and re-executing, on every run, unless their binary is on a read-only
 * mount of a filesystem that is not tmpfs. The kernel command line asks for
 * a ramfs root (rootfstype=ramfs) and these mounts make the binaries
 * read-only: the same protection, without a copy and two extra program
 * starts (for crun, 5.4 M of the 5.5 M instructions `crun --version` took). */
static const char *const read_only_binaries[] = { "/usr/bin/crun", "/usr/sbin/runc" };

static void bind_read_only(const char *path)
{
	if (mount(path, path, NULL, MS_BIND, NULL) != 0 ||
	    mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0)
		warn("read-only bind mount of %s", path);
}

/* Links CONTROL_CHANNEL to the virtio console's port 1 (see CONTROL_CHANNEL),
 * waiting up to a second for the port to appear. */
static void link_control_channel(void)
{
	for (int tries = 0; tries < 100; tries++) {
		DIR *dev = opendir("/dev");
		struct dirent *e;
		unsigned n;
		int end;
		while (dev && (e = readdir(dev)) != NULL) {
			end = 0;
			if (sscanf(e->d_name, "vport%up1%n", &n, &end) == 1 && end > 0 && e->d_name[end] == 0) {
				if (symlink(e->d_name, CONTROL_CHANNEL) != 0)
					warn("symlink %s", CONTROL_CHANNEL);
				closedir(dev);
				return;
			}
		}
		if (dev)
			closedir(dev);
		usleep(10000);
	}
	errno = ENOENT;
	warn("no virtio console port 1 (/dev/vport*p1) for the control channel");
}

int main(void)
{
	make_root_a_mount();
	mount_fs("devtmpfs", "/dev", MS_NOSUID, NULL);
	link_control_channel();
	tell_host("init");
	mount_fs("proc", "/proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_fs("sysfs", "/sys", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);

	char *program = custom_init();
	if (program) {
		if (access(program, X_OK) == 0)
			tell_host("ready");
		execl(program, program, (char *)NULL);
		warn("cannot run init=%s", program);
		return 127;
	}

	mount_fs("devpts", "/dev/pts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=620,ptmxmode=666");
	mount_fs("tmpfs", "/dev/shm", MS_NOSUID | MS_NODEV, "mode=1777");
	mount_fs("mqueue", "/dev/mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_fs("tmpfs", "/run", MS_NOSUID | MS_NODEV, "mode=755");
	mount_fs("tmpfs", "/tmp", MS_NOSUID | MS_NODEV, "mode=1777");
	mount_fs("cgroup2", "/sys/fs/cgroup", MS_NOSUID | MS_NODEV | MS_NOEXEC, "nsdelegate");
	for (size_t i = 0; i < sizeof read_only_binaries / sizeof *read_only_binaries; i++)
		bind_read_only(read_only_binaries[i]);
	/* Controllers enabled here are available to every child cgroup (containers). */
	write_file("/sys/fs/cgroup/cgroup.subtree_control", "+cpu +memory +pids +io");
	if (sethostname("hyperlab", 8) != 0)
		warn("sethostname");
	loopback_up();

	struct utsname u;
	char uptime[32] = "?";
	int fd = open("/proc/uptime", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, uptime, sizeof uptime - 1);
		uptime[n > 0 ? n : 0] = 0;
		uptime[strcspn(uptime, " ")] = 0;
		close(fd);
	}
	uname(&u);
	printf("hyperlab: %s %s up in %ss\n", u.sysname, u.release, uptime);
	fflush(stdout);

	tell_host("ready");
	execl("/sbin/init", "init", (char *)NULL);
	warn("cannot run /sbin/init");
	return 127;
}
