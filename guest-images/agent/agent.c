/* hyperlab-agent: the guest's end of the hyperlab agent protocol, version 1
 * (docs/agent-protocol.md is the specification; this file follows it).
 *
 * busybox init starts it (and restarts it if it dies). It talks to the host
 * over the control channel, virtio console port 1 (/dev/vport0p1, a virtio-serial port, not a tty), and runs
 * processes and file operations for it. Everything happens in one poll(2)
 * loop: many requests are in flight at once and none waits for another, so
 * every descriptor the loop touches is non-blocking, child exits arrive
 * through a signalfd, and frames for the host wait in an output queue until
 * the channel takes them.
 *
 * The file reads top to bottom as: byte queues and framing, fields of a
 * request, errors, the process table (EXEC and friends), file operations,
 * the request table, the channel and the main loop.
 *
 * argv[1] names the channel (default /dev/vport0p1). A tty is put in raw mode;
 * a Unix socket is connected to, so the agent can be tested on the host. */
#define _GNU_SOURCE
#define _FILE_OFFSET_BITS 64
#define _TIME_BITS 64 /* MTIME past 2038 on i386 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define AGENT_NAME "hyperlab-agent 1"
#define PROTOCOL_VERSION 1
#define DEFAULT_CHANNEL "/dev/vport0p1"
#define DEFAULT_PATH "/usr/sbin:/usr/bin:/sbin:/bin"

#define MAGIC0 0x68 /* 'h' */
#define MAGIC1 0x6c /* 'l' */
#define HEADER_SIZE 12
#define FIELD_HEADER_SIZE 6
#define MAX_FRAME (1u << 20)
#define MAX_OUTPUT 65536    /* DATA bytes in one OUTPUT frame */
#define MAX_READ 1000000    /* DATA bytes in one READ_FILE reply */
#define TTY_EOF 4           /* ^D: what "end of input" is on a terminal in canonical mode */

/* Guest memory is small and the host may read slower than processes write:
 * past QUEUE_HIGH bytes waiting for the host, process output stays in its
 * pipes (the writers block, as they would on a slow terminal); past
 * QUEUE_FULL, requests wait in the channel too. */
#define QUEUE_HIGH (1u << 20)
#define QUEUE_FULL (4u << 20)

enum type {
	T_HELLO = 0x0001, T_OK = 0x0002, T_ERROR = 0x0003, T_PING = 0x0004,
	T_EXEC = 0x0010, T_STARTED = 0x0011, T_OUTPUT = 0x0012, T_EXITED = 0x0013,
	T_STDIN = 0x0014, T_SIGNAL = 0x0015, T_RESIZE = 0x0016,
	T_WRITE_FILE = 0x0020, T_READ_FILE = 0x0021, T_DATA = 0x0022,
	T_STAT = 0x0023, T_STAT_RESULT = 0x0024,
	T_MKDIR = 0x0025, T_REMOVE = 0x0026, T_MOUNT = 0x0027, T_UMOUNT = 0x0028,
	T_SET_TIME = 0x0030,
};

enum tag {
	F_VERSION = 1, F_AGENT = 2, F_MAX_FRAME = 3, F_PID = 4, F_CODE = 5, F_ERRNO = 6, F_MESSAGE = 7,
	F_ARG = 10, F_ENV = 11, F_CWD = 12, F_UID = 13, F_GID = 14,
	F_STDIN = 20, F_ROWS = 21, F_COLS = 22, F_STREAM = 23, F_DATA = 24, F_EOF = 25, F_SIGNAL = 26,
	F_PATH = 30, F_MODE = 31, F_APPEND = 32, F_OFFSET = 33, F_LENGTH = 34, F_SIZE = 35, F_MTIME = 36,
	F_RECURSIVE = 37, F_SOURCE = 38, F_FSTYPE = 39, F_FLAGS = 40, F_OPTIONS = 41,
	F_TIME_NS = 42,
	TAG_LIMIT = 64, /* tags at or above this are nobody's yet: ignored */
};

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* ---------------------------------------------------------------- byte queues */

/* Bytes waiting to be written somewhere: to the host (the output queue), or
 * to a process's stdin. Pending bytes are data[head, tail). */
struct queue {
	uint8_t *data;
	size_t head, tail, cap;
};

static size_t queue_pending(const struct queue *q)
{
	return q->tail - q->head;
}

/* Room for n more bytes at data + tail; never moves bytes relative to head. */
static uint8_t *queue_reserve(struct queue *q, size_t n)
{
	if (q->cap - q->tail >= n)
		return q->data + q->tail;
	if (q->head > 0) {
		memmove(q->data, q->data + q->head, q->tail - q->head);
		q->tail -= q->head;
		q->head = 0;
	}
	if (q->cap - q->tail < n) {
		size_t cap = q->cap ? q->cap : 65536;
		while (cap - q->tail < n)
			cap *= 2;
		if (!(q->data = realloc(q->data, cap)))
			die("out of memory");
		q->cap = cap;
	}
	return q->data + q->tail;
}

static void queue_append(struct queue *q, const void *bytes, size_t n)
{
	memcpy(queue_reserve(q, n), bytes, n);
	q->tail += n;
}

static void queue_consume(struct queue *q, size_t n)
{
	q->head += n;
	if (q->head == q->tail) {
		/* A burst (a big READ_FILE) should not keep its memory for good. */
		if (q->cap > 2 * QUEUE_HIGH) {
			free(q->data);
			q->data = NULL;
			q->cap = 0;
		}
		q->head = q->tail = 0;
	}
}

static void queue_free(struct queue *q)
{
	free(q->data);
	*q = (struct queue){ 0 };
}

/* Writes what it can without blocking. Returns 0, or the errno of a failed write. */
static int queue_write(struct queue *q, int fd)
{
	while (queue_pending(q)) {
		ssize_t n = write(fd, q->data + q->head, queue_pending(q));
		if (n > 0)
			queue_consume(q, n);
		else if (n < 0 && errno == EINTR)
			continue;
		else
			return n < 0 && errno != EAGAIN ? errno : 0;
	}
	return 0;
}

/* ---------------------------------------------------------------- frames */

static void put16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v); put16(p + 2, v >> 16); }
static void put64(uint8_t *p, uint64_t v) { put32(p, v); put32(p + 4, v >> 32); }
static uint16_t get16(const uint8_t *p) { return p[0] | p[1] << 8; }
static uint32_t get32(const uint8_t *p) { return get16(p) | (uint32_t)get16(p + 2) << 16; }
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

/* Everything for the host, as complete frames, so that a partial write to the
 * channel only ever delays the rest of a frame, never interleaves another. */
static struct queue out;
/* The frame being built, as an offset from out.head (which does not move while
 * a frame is built: the queue is only written out between frames). */
static size_t frame_at;

static void frame_begin(uint16_t type, uint32_t id)
{
	uint8_t *h = queue_reserve(&out, HEADER_SIZE);
	h[0] = MAGIC0;
	h[1] = MAGIC1;
	put16(h + 2, type);
	put32(h + 4, id);
	put32(h + 8, 0);
	frame_at = out.tail - out.head;
	out.tail += HEADER_SIZE;
}

static void frame_end(void)
{
	size_t start = out.head + frame_at;
	put32(out.data + start + 8, out.tail - start - HEADER_SIZE);
}

static void frame_cancel(void)
{
	out.tail = out.head + frame_at;
}

/* Starts a field of n bytes; returns where its value goes. */
static uint8_t *field_begin(uint16_t tag, size_t n)
{
	uint8_t *f = queue_reserve(&out, FIELD_HEADER_SIZE + n);
	put16(f, tag);
	put32(f + 2, n);
	out.tail += FIELD_HEADER_SIZE + n;
	return f + FIELD_HEADER_SIZE;
}

static void field_bytes(uint16_t tag, const void *v, size_t n) { memcpy(field_begin(tag, n), v, n); }
static void field_str(uint16_t tag, const char *s) { field_bytes(tag, s, strlen(s)); }
static void field_u32(uint16_t tag, uint32_t v) { put32(field_begin(tag, 4), v); }
static void field_i32(uint16_t tag, int32_t v) { put32(field_begin(tag, 4), (uint32_t)v); }
static void field_u64(uint16_t tag, uint64_t v) { put64(field_begin(tag, 8), v); }

/* ---------------------------------------------------------------- fields of a request */

enum kind { ANY, U32, U64, STR };

/* The fields the host sends, with the shape their values must have.
 * CODE is absent: it is a str in ERROR and an i32 in EXITED, both agent → host. */
static const struct {
	const char *name;
	enum kind kind;
} tags[TAG_LIMIT] = {
	[F_ARG] = { "ARG", STR }, [F_ENV] = { "ENV", STR }, [F_CWD] = { "CWD", STR },
	[F_UID] = { "UID", U32 }, [F_GID] = { "GID", U32 }, [F_STDIN] = { "STDIN", U32 },
	[F_ROWS] = { "ROWS", U32 }, [F_COLS] = { "COLS", U32 }, [F_DATA] = { "DATA", ANY },
	[F_EOF] = { "EOF", U32 }, [F_SIGNAL] = { "SIGNAL", U32 }, [F_PATH] = { "PATH", STR },
	[F_MODE] = { "MODE", U32 }, [F_APPEND] = { "APPEND", U32 }, [F_OFFSET] = { "OFFSET", U64 },
	[F_LENGTH] = { "LENGTH", U32 }, [F_RECURSIVE] = { "RECURSIVE", U32 }, [F_SOURCE] = { "SOURCE", STR },
	[F_FSTYPE] = { "FSTYPE", STR }, [F_FLAGS] = { "FLAGS", U32 }, [F_OPTIONS] = { "OPTIONS", STR },
	[F_TIME_NS] = { "TIME_NS", U64 },
};

/* A request's payload, checked, with the last value of every tag below TAG_LIMIT. */
struct fields {
	const uint8_t *payload;
	uint32_t length;
	uint64_t present; /* bit n: tag n was given */
	const uint8_t *value[TAG_LIMIT];
	uint32_t size[TAG_LIMIT];
};

/* Returns 0, or an errno with the reason in why. */
static int fields_parse(struct fields *f, const uint8_t *payload, uint32_t length, char *why, size_t n)
{
	static const uint32_t fixed[] = { [U32] = 4, [U64] = 8 };
	*f = (struct fields){ .payload = payload, .length = length };
	for (uint32_t pos = 0; pos < length;) {
		if (length - pos < FIELD_HEADER_SIZE || length - pos - FIELD_HEADER_SIZE < get32(payload + pos + 2)) {
			snprintf(why, n, "field at offset %u overruns the %u-byte payload", pos, length);
			return EPROTO;
		}
		uint16_t tag = get16(payload + pos);
		uint32_t size = get32(payload + pos + 2);
		const uint8_t *value = payload + pos + FIELD_HEADER_SIZE;
		pos += FIELD_HEADER_SIZE + size;
		if (tag >= TAG_LIMIT)
			continue;
		enum kind kind = tags[tag].kind;
		if ((kind == U32 || kind == U64) && size != fixed[kind]) {
			snprintf(why, n, "field %s is %u bytes, not %u", tags[tag].name, size, fixed[kind]);
			return EPROTO;
		}
		if (kind == STR && memchr(value, 0, size)) {
			snprintf(why, n, "field %s contains a NUL byte", tags[tag].name);
			return EINVAL;
		}
		f->present |= 1ull << tag;
		f->value[tag] = value;
		f->size[tag] = size;
	}
	return 0;
}

static bool has(const struct fields *f, int tag)
{
	return f->present >> tag & 1;
}

static uint32_t get_u32(const struct fields *f, int tag, uint32_t fallback)
{
	return has(f, tag) ? get32(f->value[tag]) : fallback;
}

static uint64_t get_u64(const struct fields *f, int tag, uint64_t fallback)
{
	return has(f, tag) ? get64(f->value[tag]) : fallback;
}

static char *copy_str(const uint8_t *v, uint32_t n)
{
	char *s = malloc(n + 1);
	if (!s)
		die("out of memory");
	memcpy(s, v, n);
	s[n] = 0;
	return s;
}

/* A NUL-terminated copy of a str field (free it), or of fallback, or NULL. */
static char *get_str(const struct fields *f, int tag, const char *fallback)
{
	if (has(f, tag))
		return copy_str(f->value[tag], f->size[tag]);
	return fallback ? copy_str((const uint8_t *)fallback, strlen(fallback)) : NULL;
}

/* Every value of a repeated str field, in order, as a NULL-terminated array
 * (free with free_strs), or NULL when the tag is absent. */
static char **get_strs(const struct fields *f, int tag)
{
	if (!has(f, tag))
		return NULL;
	size_t count = 0, cap = 8;
	char **strs = malloc(cap * sizeof *strs);
	for (uint32_t pos = 0; strs && pos < f->length;) {
		uint32_t size = get32(f->payload + pos + 2);
		if (get16(f->payload + pos) == tag) {
			if (count + 2 > cap && !(strs = realloc(strs, (cap *= 2) * sizeof *strs)))
				break;
			strs[count++] = copy_str(f->payload + pos + FIELD_HEADER_SIZE, size);
		}
		pos += FIELD_HEADER_SIZE + size;
	}
	if (!strs)
		die("out of memory");
	strs[count] = NULL;
	return strs;
}

static void free_strs(char **strs)
{
	for (char **s = strs; s && *s; s++)
		free(*s);
	free(strs);
}

/* ---------------------------------------------------------------- replies and errors */

#define E(name) [name] = #name
static const char *const errno_names[] = {
	E(EPERM), E(ENOENT), E(ESRCH), E(EINTR), E(EIO), E(ENXIO), E(E2BIG), E(ENOEXEC),
	E(EBADF), E(ECHILD), E(EAGAIN), E(ENOMEM), E(EACCES), E(EFAULT), E(EBUSY), E(EEXIST),
	E(EXDEV), E(ENODEV), E(ENOTDIR), E(EISDIR), E(EINVAL), E(ENFILE), E(EMFILE), E(ENOTTY),
	E(ETXTBSY), E(EFBIG), E(ENOSPC), E(ESPIPE), E(EROFS), E(EMLINK), E(EPIPE), E(ERANGE),
	E(EDEADLK), E(ENAMETOOLONG), E(ENOSYS), E(ENOTEMPTY), E(ELOOP), E(ENODATA), E(ENOLINK),
	E(EPROTO), E(EOVERFLOW), E(EILSEQ), E(EOPNOTSUPP), E(EADDRINUSE), E(ECONNREFUSED),
	E(ECONNRESET), E(ETIMEDOUT), E(EHOSTUNREACH), E(ESTALE), E(EDQUOT), E(ECANCELED),
};
#undef E

/* The errno's name, as ERROR's CODE carries it; "E<number>" for one not in the table. */
static const char *errno_name(int err)
{
	static char unnamed[16];
	if (err >= 0 && (size_t)err < sizeof errno_names / sizeof *errno_names && errno_names[err])
		return errno_names[err];
	snprintf(unnamed, sizeof unnamed, "E%d", err);
	return unnamed;
}

static void reply_ok(uint32_t id)
{
	frame_begin(T_OK, id);
	frame_end();
}

static void reply_error(uint32_t id, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reply_error(uint32_t id, int err, const char *fmt, ...)
{
	char message[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof message, fmt, ap);
	va_end(ap);
	frame_begin(T_ERROR, id);
	field_str(F_CODE, errno_name(err));
	field_i32(F_ERRNO, err);
	field_str(F_MESSAGE, message);
	frame_end();
}

/* ---------------------------------------------------------------- processes */

/* One EXEC from request to EXITED. The states follow from the descriptors:
 * starting while status_fd is open (the exec has not yet succeeded or
 * failed), then running until the child is reaped and its output is at EOF.
 * For a pty, out_fd is the terminal's master and in_fd a second descriptor of
 * it that also serves RESIZE, so in_fd stays open until the end. */
struct proc {
	struct proc *next;
	uint32_t id;
	pid_t pid;
	bool pty;
	bool reaped;
	bool done;        /* nothing more to send: freed at the end of the loop iteration */
	int wait_status;  /* once reaped */
	int status_fd;    /* read end of the CLOEXEC pipe the child reports exec failure on */
	int in_fd, out_fd, err_fd;
	bool stdin_open;  /* the host may still send STDIN */
	bool stdin_eof;   /* close in_fd once stdin_pending is written */
	struct queue stdin_pending;
};

/* What the child sends on the status pipe when it cannot exec. */
struct exec_failure {
	int32_t err;
	char message[256];
};

static struct proc *procs;
static mode_t child_umask;
static char **default_env;
/* Signals the agent ignores; its children get their default actions back. */
static const int ignored_signals[] = { SIGPIPE, SIGHUP };

static struct proc *proc_find(uint32_t id)
{
	for (struct proc *p = procs; p; p = p->next)
		if (p->id == id && !p->done)
			return p;
	return NULL;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* EXITED, once the child is reaped and every byte of its output forwarded. */
static void proc_check_done(struct proc *p)
{
	if (p->done || p->status_fd >= 0 || !p->reaped || p->out_fd >= 0 || p->err_fd >= 0)
		return;
	int st = p->wait_status;
	frame_begin(T_EXITED, p->id);
	field_i32(F_CODE, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	field_u32(F_SIGNAL, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	frame_end();
	p->done = true;
}

static void reap_children(void)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		for (struct proc *p = procs; p; p = p->next)
			if (p->pid == pid && !p->reaped) {
				p->reaped = true;
				p->wait_status = st;
				proc_check_done(p);
			}
}

/* The status pipe reaches EOF when exec closes it (success), or carries an
 * exec_failure. Output is only read after this, so STARTED precedes it. */
static void proc_read_status(struct proc *p)
{
	struct exec_failure failure;
	ssize_t n = read(p->status_fd, &failure, sizeof failure);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	close_fd(&p->status_fd);
	if (n == 0) {
		frame_begin(T_STARTED, p->id);
		field_u32(F_PID, p->pid);
		frame_end();
		proc_check_done(p);
		return;
	}
	if (n == (ssize_t)sizeof failure) {
		failure.message[sizeof failure.message - 1] = 0;
		reply_error(p->id, failure.err, "%s", failure.message);
	} else {
		reply_error(p->id, n < 0 ? errno : EIO, "cannot learn whether the process started");
	}
	p->done = true; /* the child exits 127; reap_children passes over it */
}

static void proc_read_output(struct proc *p, int *fd, uint32_t stream)
{
	frame_begin(T_OUTPUT, p->id);
	field_u32(F_STREAM, stream);
	uint8_t *f = queue_reserve(&out, FIELD_HEADER_SIZE + MAX_OUTPUT);
	ssize_t n = read(*fd, f + FIELD_HEADER_SIZE, MAX_OUTPUT);
	if (n > 0) {
		put16(f, F_DATA);
		put32(f + 2, n);
		out.tail += FIELD_HEADER_SIZE + n;
		frame_end();
		return;
	}
	frame_cancel();
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* EOF; or EIO, which is how a pty master says every holder of the terminal closed it */
	close_fd(fd);
	proc_check_done(p);
}

static void proc_write_stdin(struct proc *p)
{
	if (p->in_fd < 0)
		return;
	if (queue_write(&p->stdin_pending, p->in_fd) != 0) {
		/* The process closed its stdin (EPIPE): what it did not read is dropped. */
		queue_free(&p->stdin_pending);
		p->stdin_open = p->stdin_eof = false;
		if (!p->pty)
			close_fd(&p->in_fd);
		return;
	}
	if (p->stdin_eof && !queue_pending(&p->stdin_pending) && !p->pty)
		close_fd(&p->in_fd);
}

static void proc_free(struct proc *p)
{
	close_fd(&p->status_fd);
	close_fd(&p->in_fd);
	close_fd(&p->out_fd);
	close_fd(&p->err_fd);
	queue_free(&p->stdin_pending);
	free(p);
}

/* What the child needs, prepared before fork so that the child only makes system calls. */
struct spawn {
	char **argv, **envp;
	const char *cwd;
	const char *path; /* where to look for argv[0] */
	bool set_uid, set_gid;
	uid_t uid;
	gid_t gid;
	int stdin_fd; /* -1: /dev/null */
	int stdout_fd, stderr_fd;
	int tty_fd;   /* the pty's slave, made the controlling terminal; or -1 */
	int status_fd;
};

static void child_fail(int status_fd, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void child_fail(int status_fd, const char *fmt, ...)
{
	struct exec_failure failure = { .err = errno };
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(failure.message, sizeof failure.message, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof failure.message)
		snprintf(failure.message + n, sizeof failure.message - n, ": %s", strerror(failure.err));
	if (write(status_fd, &failure, sizeof failure) < 0) {
		/* nobody to tell: the agent will see EOF and report the process as started */
	}
	_exit(127);
}

/* execvpe with an explicit PATH: glibc's would search the agent's PATH, not the new environment's. */
static void exec_search(const char *file, char *const argv[], char *const envp[], const char *path)
{
	if (strchr(file, '/')) {
		execve(file, argv, envp);
		return;
	}
	int err = ENOENT;
	for (const char *dir = path;; dir++) {
		const char *end = strchrnul(dir, ':');
		char full[4096];
		int len = end > dir ? (int)(end - dir) : 1;
		if (snprintf(full, sizeof full, "%.*s/%s", len, end > dir ? dir : ".", file) < (int)sizeof full) {
			execve(full, argv, envp);
			if (errno == EACCES)
				err = EACCES; /* remembered; a later directory may still have it */
			else if (errno != ENOENT && errno != ENOTDIR)
				return;
		}
		if (!*(dir = end))
			break;
	}
	errno = err;
}

static void child_run(const struct spawn *s)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (size_t i = 0; i < sizeof ignored_signals / sizeof *ignored_signals; i++)
		signal(ignored_signals[i], SIG_DFL);
	umask(child_umask);
	/* Its own session: signals for the agent's group never reach it, and a pty can become its terminal. */
	if (setsid() < 0)
		child_fail(s->status_fd, "setsid");
	if (s->tty_fd >= 0 && ioctl(s->tty_fd, TIOCSCTTY, 0) < 0)
		child_fail(s->status_fd, "cannot make the pty the controlling terminal");
	int in = s->stdin_fd >= 0 ? s->stdin_fd : open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (in < 0)
		child_fail(s->status_fd, "open /dev/null");
	if (dup2(in, 0) < 0 || dup2(s->stdout_fd, 1) < 0 || dup2(s->stderr_fd, 2) < 0)
		child_fail(s->status_fd, "dup2");
	/* Root's supplementary groups must not follow the process to another identity. */
	if ((s->set_uid || s->set_gid) && setgroups(0, NULL) < 0)
		child_fail(s->status_fd, "setgroups");
	if (s->set_gid && setgid(s->gid) < 0)
		child_fail(s->status_fd, "setgid %u", (unsigned)s->gid);
	if (s->set_uid && setuid(s->uid) < 0)
		child_fail(s->status_fd, "setuid %u", (unsigned)s->uid);
	if (chdir(s->cwd) < 0)
		child_fail(s->status_fd, "chdir %s", s->cwd);
	exec_search(s->argv[0], s->argv, s->envp, s->path);
	child_fail(s->status_fd, "exec %s", s->argv[0]);
}

static int child_entry(void *arg)
{
	child_run(arg);
	return 127;
}

/* Starts child_run in a new process the way posix_spawn does: the child
 * borrows the agent's memory (CLONE_VM) and the agent waits (CLONE_VFORK)
 * until it has called execve or exited. A fork would copy the agent's page
 * tables and then fault on every page either side writes; in an emulated CPU
 * that was about a third of an EXEC's cost. The child only makes system calls
 * and writes to its own stack, so borrowing is safe; it has its own file
 * table and signal handlers (no CLONE_FILES, no CLONE_SIGHAND). */
static pid_t spawn_child(struct spawn *s)
{
	static uint8_t stack[64 * 1024] __attribute__((aligned(16)));
	return clone(child_entry, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, s);
}

/* The value of PATH in an environment, or the default. */
static const char *env_path(char **envp)
{
	for (char **e = envp; *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			return *e + 5;
	return DEFAULT_PATH;
}

/* Descriptors of one EXEC being set up; [0] read end, [1] write end. */
struct exec_fds {
	int status[2], in[2], out[2], err[2];
	int master, slave;
};

static void exec_fds_close(struct exec_fds *x)
{
	int *all[] = { &x->status[0], &x->status[1], &x->in[0], &x->in[1], &x->out[0], &x->out[1],
		       &x->err[0], &x->err[1], &x->master, &x->slave };
	for (size_t i = 0; i < sizeof all / sizeof *all; i++)
		close_fd(all[i]);
}

/* Opens the pipes, or the pty, of an EXEC. Returns 0 or an errno, with what failed in *what. */
static int exec_fds_open(struct exec_fds *x, bool want_stdin, bool pty, const struct winsize *size, const char **what)
{
	*what = "pipe2";
	if (pipe2(x->status, O_CLOEXEC) < 0)
		return errno;
	if (!pty) {
		if ((want_stdin && pipe2(x->in, O_CLOEXEC) < 0) || pipe2(x->out, O_CLOEXEC) < 0 ||
		    pipe2(x->err, O_CLOEXEC) < 0)
			return errno;
		return 0;
	}
	char name[64];
	*what = "cannot open a pty";
	if ((x->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0 || grantpt(x->master) < 0 ||
	    unlockpt(x->master) < 0 || ptsname_r(x->master, name, sizeof name) != 0 ||
	    (x->slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0)
		return errno;
	*what = "TIOCSWINSZ";
	if (ioctl(x->master, TIOCSWINSZ, size) < 0)
		return errno;
	/* The child's stdin is the terminal either way; STDIN only says whether the host writes to it. */
	*what = "dup";
	if ((x->in[1] = fcntl(x->master, F_DUPFD_CLOEXEC, 0)) < 0)
		return errno;
	return 0;
}

static void handle_exec(uint32_t id, const struct fields *f)
{
	if (!has(f, F_ARG)) {
		reply_error(id, EINVAL, "EXEC needs at least one ARG");
		return;
	}
	if (proc_find(id)) {
		reply_error(id, EEXIST, "request id %u already names a running process", id);
		return;
	}
	bool pty = has(f, F_ROWS) || has(f, F_COLS);
	if (pty && !(has(f, F_ROWS) && has(f, F_COLS))) {
		reply_error(id, EINVAL, "a pty needs both ROWS and COLS");
		return;
	}
	struct winsize size = { .ws_row = get_u32(f, F_ROWS, 0), .ws_col = get_u32(f, F_COLS, 0) };
	bool want_stdin = get_u32(f, F_STDIN, 0) == 1;

	struct exec_fds x = { { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 }, -1, -1 };
	const char *what;
	int err = exec_fds_open(&x, want_stdin, pty, &size, &what);
	if (err) {
		exec_fds_close(&x);
		reply_error(id, err, "%s: %s", what, strerror(err));
		return;
	}

	char **env = get_strs(f, F_ENV);
	char *cwd = get_str(f, F_CWD, "/");
	struct spawn s = {
		.argv = get_strs(f, F_ARG),
		.envp = env ? env : default_env,
		.cwd = cwd,
		.set_uid = has(f, F_UID),
		.set_gid = has(f, F_GID),
		.uid = get_u32(f, F_UID, 0),
		.gid = get_u32(f, F_GID, 0),
		.stdin_fd = pty ? x.slave : x.in[0],
		.stdout_fd = pty ? x.slave : x.out[1],
		.stderr_fd = pty ? x.slave : x.err[1],
		.tty_fd = pty ? x.slave : -1,
		.status_fd = x.status[1],
	};
	s.path = env_path(s.envp);
	pid_t pid = spawn_child(&s);
	err = errno;
	free_strs(s.argv);
	free_strs(env);
	free(cwd);
	if (pid < 0) {
		exec_fds_close(&x);
		reply_error(id, err, "fork: %s", strerror(err));
		return;
	}

	struct proc *p = calloc(1, sizeof *p);
	if (!p)
		die("out of memory");
	*p = (struct proc){
		.next = procs,
		.id = id,
		.pid = pid,
		.pty = pty,
		.status_fd = x.status[0],
		.in_fd = x.in[1],
		.out_fd = pty ? x.master : x.out[0],
		.err_fd = x.err[0],
		.stdin_open = want_stdin,
	};
	procs = p;
	x.status[0] = x.in[1] = x.out[0] = x.err[0] = x.master = -1; /* now the proc's */
	exec_fds_close(&x); /* the child's ends: the child has its own copies */
	int mine[] = { p->status_fd, p->in_fd, p->out_fd, p->err_fd };
	for (size_t i = 0; i < sizeof mine / sizeof *mine; i++)
		if (mine[i] >= 0)
			set_nonblock(mine[i]);
}

static void handle_stdin(uint32_t id, const struct fields *f)
{
	struct proc *p = proc_find(id);
	if (!p || !p->stdin_open)
		return; /* STDIN has no reply: a late one for a finished process is not an error */
	if (has(f, F_DATA))
		queue_append(&p->stdin_pending, f->value[F_DATA], f->size[F_DATA]);
	if (get_u32(f, F_EOF, 0) == 1) {
		p->stdin_open = false;
		/* A terminal cannot be closed for reading only: it gets its end-of-input character. */
		if (p->pty)
			queue_append(&p->stdin_pending, &(uint8_t){ TTY_EOF }, 1);
		else
			p->stdin_eof = true;
	}
	proc_write_stdin(p);
}

static void handle_signal(uint32_t id, const struct fields *f)
{
	if (!has(f, F_SIGNAL)) {
		reply_error(id, EINVAL, "SIGNAL needs a SIGNAL field");
		return;
	}
	reap_children(); /* so that a process that has just died counts as exited */
	struct proc *p = proc_find(id);
	if (!p || p->reaped) {
		reply_error(id, ESRCH, "the process of request %u has exited", id);
		return;
	}
	if (kill(p->pid, get_u32(f, F_SIGNAL, 0)) < 0) {
		reply_error(id, errno, "kill %d: %s", (int)p->pid, strerror(errno));
		return;
	}
	reply_ok(id);
}

static void handle_resize(uint32_t id, const struct fields *f)
{
	if (!has(f, F_ROWS) || !has(f, F_COLS)) {
		reply_error(id, EINVAL, "RESIZE needs ROWS and COLS");
		return;
	}
	struct proc *p = proc_find(id);
	if (!p) {
		reply_error(id, ESRCH, "the process of request %u has exited", id);
		return;
	}
	if (!p->pty) {
		reply_error(id, ENOTTY, "the process of request %u has no terminal", id);
		return;
	}
	struct winsize size = { .ws_row = get_u32(f, F_ROWS, 0), .ws_col = get_u32(f, F_COLS, 0) };
	if (ioctl(p->in_fd, TIOCSWINSZ, &size) < 0) {
		reply_error(id, errno, "TIOCSWINSZ: %s", strerror(errno));
		return;
	}
	reply_ok(id);
}

/* ---------------------------------------------------------------- file operations */

/* mkdir -p of everything before the last '/'; failures show when the file is opened. */
static void make_parents(const char *path)
{
	char *dir = copy_str((const uint8_t *)path, strlen(path));
	for (char *slash = dir + 1; (slash = strchr(slash, '/')); *slash++ = '/') {
		*slash = 0;
		mkdir(dir, 0755);
	}
	free(dir);
}

static int write_all(int fd, const uint8_t *data, size_t left)
{
	while (left > 0) {
		ssize_t n = write(fd, data, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -1 : (errno = EIO, -1);
		data += n;
		left -= n;
	}
	return 0;
}

/* Files are opened O_NONBLOCK so that a FIFO or a device cannot stall the agent. */
static void handle_write_file(uint32_t id, const struct fields *f)
{
	char *path = get_str(f, F_PATH, NULL);
	if (!path) {
		reply_error(id, EINVAL, "WRITE_FILE needs a PATH");
		return;
	}
	make_parents(path);
	int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	flags |= get_u32(f, F_APPEND, 0) == 1 ? O_APPEND : O_TRUNC;
	mode_t mode = get_u32(f, F_MODE, 0644) & 07777;
	const char *failed = NULL;
	int fd = open(path, flags, mode); /* the agent's umask is 0: a new file gets exactly mode */
	if (fd < 0)
		failed = "open";
	else if (has(f, F_MODE) && fchmod(fd, mode) < 0)
		failed = "chmod"; /* an explicit MODE also applies to a file that existed */
	else if (has(f, F_DATA) && write_all(fd, f->value[F_DATA], f->size[F_DATA]) < 0)
		failed = "write";
	int err = errno;
	if (fd >= 0 && close(fd) < 0 && !failed) {
		failed = "close";
		err = errno;
	}
	if (failed)
		reply_error(id, err, "%s %s: %s", failed, path, strerror(err));
	else
		reply_ok(id);
	free(path);
}

static void handle_read_file(uint32_t id, const struct fields *f)
{
	char *path = get_str(f, F_PATH, NULL);
	if (!path) {
		reply_error(id, EINVAL, "READ_FILE needs a PATH");
		return;
	}
	uint64_t offset = get_u64(f, F_OFFSET, 0);
	uint32_t length = get_u32(f, F_LENGTH, MAX_READ);
	if (length > MAX_READ)
		length = MAX_READ;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0) {
		reply_error(id, errno, "open %s: %s", path, strerror(errno));
		close_fd(&fd);
		free(path);
		return;
	}
	frame_begin(T_DATA, id);
	field_u64(F_SIZE, st.st_size);
	uint8_t *field = queue_reserve(&out, FIELD_HEADER_SIZE + length);
	uint8_t *data = field + FIELD_HEADER_SIZE;
	uint32_t got = 0;
	while (got < length) {
		/* plain read at offset 0, so pipes and devices that cannot seek still read */
		ssize_t n = offset ? pread(fd, data + got, length - got, offset + got) : read(fd, data + got, length - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break; /* nothing more now (a FIFO without a writer): what there was */
		if (n < 0) {
			int err = errno;
			frame_cancel();
			reply_error(id, err, "read %s: %s", path, strerror(err));
			close(fd);
			free(path);
			return;
		}
		if (n == 0)
			break;
		got += n;
	}
	put16(field, F_DATA);
	put32(field + 2, got);
	out.tail += FIELD_HEADER_SIZE + got;
	frame_end();
	close(fd);
	free(path);
}

static void handle_stat(uint32_t id, const struct fields *f)
{
	char *path = get_str(f, F_PATH, NULL);
	if (!path) {
		reply_error(id, EINVAL, "STAT needs a PATH");
		return;
	}
	struct stat st;
	if (stat(path, &st) < 0) {
		reply_error(id, errno, "stat %s: %s", path, strerror(errno));
	} else {
		frame_begin(T_STAT_RESULT, id);
		field_u32(F_MODE, st.st_mode);
		field_u64(F_SIZE, st.st_size);
		field_u64(F_MTIME, st.st_mtim.tv_sec);
		field_u32(F_UID, st.st_uid);
		field_u32(F_GID, st.st_gid);
		frame_end();
	}
	free(path);
}

/* mkdir -p: the directory and its parents; one that exists already is fine. */
static void handle_mkdir(uint32_t id, const struct fields *f)
{
	char *path = get_str(f, F_PATH, NULL);
	if (!path) {
		reply_error(id, EINVAL, "MKDIR needs a PATH");
		return;
	}
	make_parents(path);
	struct stat st;
	if (mkdir(path, get_u32(f, F_MODE, 0755) & 07777) < 0 && !(errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)))
		reply_error(id, errno, "mkdir %s: %s", path, strerror(errno));
	else
		reply_ok(id);
	free(path);
}

/* nftw's callback for a recursive REMOVE: children first (FTW_DEPTH). */
static int remove_entry(const char *path, const struct stat *st, int kind, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return (kind == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT ? -1 : 0;
}

/* rm (-r with RECURSIVE=1, which stays on the path's own filesystem), or
 * rmdir for a directory without RECURSIVE (a cgroup, say). */
static void handle_remove(uint32_t id, const struct fields *f)
{
	char *path = get_str(f, F_PATH, NULL);
	if (!path) {
		reply_error(id, EINVAL, "REMOVE needs a PATH");
		return;
	}
	struct stat st;
	int rc;
	if (lstat(path, &st) < 0)
		rc = -1;
	else if (!S_ISDIR(st.st_mode))
		rc = unlink(path);
	else if (get_u32(f, F_RECURSIVE, 0) == 1)
		rc = nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	else
		rc = rmdir(path);
	if (rc < 0)
		reply_error(id, errno, "remove %s: %s", path, strerror(errno));
	else
		reply_ok(id);
	free(path);
}

/* mount(2) as is: FLAGS are Linux's MS_* bits, OPTIONS the filesystem's data string. */
static void handle_mount(uint32_t id, const struct fields *f)
{
	char *target = get_str(f, F_PATH, NULL);
	char *source = get_str(f, F_SOURCE, "none");
	char *fstype = get_str(f, F_FSTYPE, NULL);
	char *options = get_str(f, F_OPTIONS, NULL);
	if (!target)
		reply_error(id, EINVAL, "MOUNT needs a PATH");
	else if (mount(source, target, fstype, get_u32(f, F_FLAGS, 0), options) < 0)
		reply_error(id, errno, "mount %s on %s: %s", fstype ? fstype : source, target, strerror(errno));
	else
		reply_ok(id);
	free(target);
	free(source);
	free(fstype);
	free(options);
}

/* umount2(2): FLAGS are Linux's MNT_* bits (2 = MNT_DETACH). */
static void handle_umount(uint32_t id, const struct fields *f)
{
	char *target = get_str(f, F_PATH, NULL);
	if (!target)
		reply_error(id, EINVAL, "UMOUNT needs a PATH");
	else if (umount2(target, get_u32(f, F_FLAGS, 0)) < 0)
		reply_error(id, errno, "umount %s: %s", target, strerror(errno));
	else
		reply_ok(id);
	free(target);
}

/* The wall clock, from the host: a restored guest's clock resumes from the
 * moment its snapshot was taken. TIME_NS is nanoseconds since 1970 (UTC). */
static void handle_set_time(uint32_t id, const struct fields *f)
{
	if (!has(f, F_TIME_NS)) {
		reply_error(id, EINVAL, "SET_TIME needs a TIME_NS");
		return;
	}
	uint64_t ns = get_u64(f, F_TIME_NS, 0);
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u) };
	if (clock_settime(CLOCK_REALTIME, &ts) < 0)
		reply_error(id, errno, "clock_settime: %s", strerror(errno));
	else
		reply_ok(id);
}

static void handle_ping(uint32_t id, const struct fields *f)
{
	(void)f;
	reply_ok(id);
}

/* ---------------------------------------------------------------- requests */

static const struct {
	uint16_t type;
	void (*handle)(uint32_t id, const struct fields *f);
} handlers[] = {
	{ T_PING, handle_ping },
	{ T_EXEC, handle_exec },
	{ T_STDIN, handle_stdin },
	{ T_SIGNAL, handle_signal },
	{ T_RESIZE, handle_resize },
	{ T_WRITE_FILE, handle_write_file },
	{ T_READ_FILE, handle_read_file },
	{ T_STAT, handle_stat },
	{ T_MKDIR, handle_mkdir },
	{ T_REMOVE, handle_remove },
	{ T_MOUNT, handle_mount },
	{ T_UMOUNT, handle_umount },
	{ T_SET_TIME, handle_set_time },
};

static void dispatch(uint16_t type, uint32_t id, const uint8_t *payload, uint32_t length)
{
	for (size_t i = 0; i < sizeof handlers / sizeof *handlers; i++) {
		if (handlers[i].type != type)
			continue;
		struct fields f;
		char why[128];
		int err = fields_parse(&f, payload, length, why, sizeof why);
		if (err) {
			reply_error(id, err, "%s", why);
			return;
		}
		handlers[i].handle(id, &f);
		return;
	}
	reply_error(id, ENOSYS, "unknown message type 0x%04x", type);
}

/* ---------------------------------------------------------------- the channel */

static int channel = -1;

/* Bytes from the host not yet consumed. Any frame the agent accepts fits whole. */
static struct {
	uint8_t data[HEADER_SIZE + MAX_FRAME];
	size_t len;
	uint32_t skip; /* payload bytes of an oversized frame still to discard */
} in;

/* Handles every complete frame in data[0, len); returns how many bytes it used. */
static size_t consume_frames(const uint8_t *data, size_t len)
{
	size_t pos = 0;
	while (pos < len) {
		size_t avail = len - pos;
		const uint8_t *h = data + pos;
		if (in.skip) {
			size_t n = avail < in.skip ? avail : in.skip;
			in.skip -= n;
			pos += n;
			continue;
		}
		if (h[0] != MAGIC0 || (avail >= 2 && h[1] != MAGIC1)) {
			/* Not a frame: resynchronize at the next byte that could start one. */
			const uint8_t *next = memchr(h + 1, MAGIC0, avail - 1);
			pos = next ? (size_t)(next - data) : len;
			continue;
		}
		if (avail < HEADER_SIZE)
			break;
		uint16_t type = get16(h + 2);
		uint32_t id = get32(h + 4), length = get32(h + 8);
		if (length > MAX_FRAME) {
			reply_error(id, E2BIG, "frame of %u bytes is over the %u-byte limit", length, MAX_FRAME);
			in.skip = length;
			pos += HEADER_SIZE;
			continue;
		}
		if (avail < HEADER_SIZE + length)
			break;
		dispatch(type, id, h + HEADER_SIZE, length);
		pos += HEADER_SIZE + length;
	}
	return pos;
}

/* The host is gone: its requests have failed (AGENT_GONE), so their processes go too. */
static void agent_exit(int status, const char *why) __attribute__((noreturn));
static void agent_exit(int status, const char *why)
{
	for (struct proc *p = procs; p; p = p->next)
		if (!p->reaped)
			kill(p->pid, SIGKILL);
	if (why)
		fprintf(stderr, "hyperlab-agent: %s\n", why);
	exit(status);
}

static void read_channel(void)
{
	ssize_t n = read(channel, in.data + in.len, sizeof in.data - in.len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0)
		agent_exit(1, "reading the channel failed");
	if (n == 0)
		agent_exit(0, NULL); /* the host closed it */
	in.len += n;
	size_t used = consume_frames(in.data, in.len);
	/* Only after a whole frame: a large frame arrives in many small reads, and
	 * moving its partial bytes on each would be quadratic. */
	if (used > 0) {
		memmove(in.data, in.data + used, in.len - used);
		in.len -= used;
	}
}

static void flush_channel(void)
{
	int err = queue_write(&out, channel);
	if (err) {
		errno = err;
		agent_exit(1, "writing the channel failed");
	}
}

static int open_channel(const char *path)
{
	struct stat st;
	int fd;
	if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		struct sockaddr_un addr = { .sun_family = AF_UNIX };
		if (strlen(path) >= sizeof addr.sun_path) {
			errno = ENAMETOOLONG;
			return -1;
		}
		strcpy(addr.sun_path, path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
			close(fd);
			return -1;
		}
	} else {
		fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	}
	if (fd < 0)
		return -1;
	struct termios t;
	if (tcgetattr(fd, &t) == 0) {
		cfmakeraw(&t);
		if (tcsetattr(fd, TCSANOW, &t) < 0) {
			close(fd);
			return -1;
		}
		/* Bytes sent before this agent said HELLO were meant for a previous one. */
		tcflush(fd, TCIFLUSH);
	}
	set_nonblock(fd);
	return fd;
}

/* ---------------------------------------------------------------- main loop */

enum watch_kind { W_CHANNEL, W_SIGNALS, W_STATUS, W_OUT, W_ERR, W_IN };

static struct pollfd *pfds;
static struct {
	enum watch_kind kind;
	struct proc *proc;
} *watches;
static size_t nwatch, watch_cap;

static void watch(int fd, short events, enum watch_kind kind, struct proc *p)
{
	if (nwatch == watch_cap) {
		watch_cap = watch_cap ? watch_cap * 2 : 64;
		pfds = realloc(pfds, watch_cap * sizeof *pfds);
		watches = realloc(watches, watch_cap * sizeof *watches);
		if (!pfds || !watches)
			die("out of memory");
	}
	pfds[nwatch] = (struct pollfd){ .fd = fd, .events = events };
	watches[nwatch].kind = kind;
	watches[nwatch].proc = p;
	nwatch++;
}

static void drain_signals(int sfd)
{
	struct signalfd_siginfo si;
	while (read(sfd, &si, sizeof si) == sizeof si)
		;
	reap_children();
}

static void sweep_procs(void)
{
	for (struct proc **pp = &procs; *pp;) {
		struct proc *p = *pp;
		if (p->done) {
			*pp = p->next;
			proc_free(p);
		} else {
			pp = &p->next;
		}
	}
}

static void serve(int sfd)
{
	for (;;) {
		nwatch = 0;
		short channel_events = queue_pending(&out) ? POLLOUT : 0;
		if (queue_pending(&out) < QUEUE_FULL && in.len < sizeof in.data)
			channel_events |= POLLIN;
		watch(channel, channel_events, W_CHANNEL, NULL);
		watch(sfd, POLLIN, W_SIGNALS, NULL);
		bool output_room = queue_pending(&out) < QUEUE_HIGH;
		for (struct proc *p = procs; p; p = p->next) {
			if (p->status_fd >= 0) {
				watch(p->status_fd, POLLIN, W_STATUS, p);
				continue;
			}
			if (output_room && p->out_fd >= 0)
				watch(p->out_fd, POLLIN, W_OUT, p);
			if (output_room && p->err_fd >= 0)
				watch(p->err_fd, POLLIN, W_ERR, p);
			if (p->in_fd >= 0 && queue_pending(&p->stdin_pending))
				watch(p->in_fd, POLLOUT, W_IN, p);
		}
		if (poll(pfds, nwatch, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		/* Handlers act on the proc's current descriptors, so an entry made stale
		 * earlier in this pass (a descriptor closed) is harmless; procs are freed
		 * only by sweep_procs, after the pass. */
		for (size_t i = 0; i < nwatch; i++) {
			if (!pfds[i].revents)
				continue;
			struct proc *p = watches[i].proc;
			switch (watches[i].kind) {
			case W_CHANNEL:
				if (pfds[i].revents & ~POLLOUT)
					read_channel();
				break;
			case W_SIGNALS:
				drain_signals(sfd);
				break;
			case W_STATUS:
				if (p->status_fd >= 0)
					proc_read_status(p);
				break;
			case W_OUT:
				if (p->out_fd >= 0)
					proc_read_output(p, &p->out_fd, 1);
				break;
			case W_ERR:
				if (p->err_fd >= 0)
					proc_read_output(p, &p->err_fd, 2);
				break;
			case W_IN:
				proc_write_stdin(p);
				break;
			}
		}
		sweep_procs();
		flush_channel();
	}
}

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("hyperlab-agent: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	agent_exit(1, NULL);
}

/* The agent's environment with hyperlab's PATH: what EXEC gives a process when the host sends no ENV. */
static char **make_default_env(void)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = malloc((n + 2) * sizeof *env);
	if (!env)
		die("out of memory");
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "PATH=", 5) != 0)
			env[k++] = environ[i];
	env[k++] = "PATH=" DEFAULT_PATH;
	env[k] = NULL;
	return env;
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : DEFAULT_CHANNEL;
	/* Descriptors 0-2 stay taken, so no pipe of ours is ever one a child's stdio replaces. */
	int fd;
	while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2)
		;
	if (fd > 2)
		close(fd);
	child_umask = umask(0);
	if (chdir("/") < 0)
		die("chdir /: %s", strerror(errno));
	for (size_t i = 0; i < sizeof ignored_signals / sizeof *ignored_signals; i++)
		signal(ignored_signals[i], SIG_IGN);
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0)
		die("signalfd: %s", strerror(errno));
	default_env = make_default_env();

	if ((channel = open_channel(path)) < 0) {
		fprintf(stderr, "hyperlab-agent: cannot open the channel %s: %s\n", path, strerror(errno));
		/* init restarts us at once: keep a missing device from flooding the console.
		 * poll, not sleep: glibc's sleep uses a 32-bit-time system call the guest
		 * kernel may lack (CONFIG_COMPAT_32BIT_TIME), and would return at once. */
		poll(NULL, 0, 5000);
		return 1;
	}
	frame_begin(T_HELLO, 0);
	field_u32(F_VERSION, PROTOCOL_VERSION);
	field_str(F_AGENT, AGENT_NAME);
	field_u32(F_MAX_FRAME, MAX_FRAME);
	field_u32(F_PID, getpid());
	frame_end();
	flush_channel();
	serve(sfd);
}
