/* hyperlab-agent: the guest's end of the hyperlab agent protocol, version 1
 * (docs/agent-protocol.md is the specification; this file follows it).
 *
 * busybox init starts it (and restarts it if it dies). It talks to the host
 * over the control channel, virtio console port 1 (/dev/hyperlab-control, which /init links to /dev/vport<N>p1; a virtio-serial port, not a tty), and runs
 * processes and file operations for it. Everything happens in one poll(2)
 * loop: many requests are in flight at once and none waits for another, so
 * every descriptor the loop touches is non-blocking, child exits arrive
 * through a signalfd, and frames for the host wait in an output queue until
 * the channel takes them.
 *
 * Byte streams (CONNECT, LISTEN) are sockets in the same loop, each with a
 * window of credit both ways so that neither a slow guest peer nor a slow
 * host makes the agent buffer without bound.
 *
 * The file reads top to bottom as: byte queues and framing, fields of a
 * request, errors, the process table (EXEC and friends), file operations,
 * byte streams, the request table, the channel, tools loaded on first use
 * and the main loop.
 *
 * argv[1] names the channel (default /dev/hyperlab-control). A tty is put in raw mode;
 * a Unix socket is connected to, so the agent can be tested on the host.
 * Run under the name of a tool loaded on first use (/usr/bin/docker is a link
 * to it), it fetches that tool from the host and execs it (run_tool). */
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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
#define DEFAULT_CHANNEL "/dev/hyperlab-control" /* init links it to the virtio console's port 1 */
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

/* Byte streams (CONNECT, LISTEN). The agent grants the host STREAM_WINDOW
 * bytes per stream: host data waiting for a slow guest peer never exceeds
 * that, and the host gets more credit as the peer takes it, in steps of
 * STREAM_GRANT. Guest data is read only while the host has granted credit and
 * the output queue is below QUEUE_HIGH. Streams and listeners together are at
 * most MAX_STREAMS; ids the agent picks (accepted connections) have
 * ACCEPTED_ID_BIT set, the host's never do. */
#define STREAM_WINDOW (256u << 10)
#define STREAM_GRANT (STREAM_WINDOW / 4)
#define DEFAULT_HOST_WINDOW (256u << 10)
#define MAX_STREAM_DATA 65536
#define MAX_STREAMS 256
#define ACCEPTED_ID_BIT 0x80000000u

enum type {
	T_HELLO = 0x0001, T_OK = 0x0002, T_ERROR = 0x0003, T_PING = 0x0004,
	T_EXEC = 0x0010, T_STARTED = 0x0011, T_OUTPUT = 0x0012, T_EXITED = 0x0013,
	T_STDIN = 0x0014, T_SIGNAL = 0x0015, T_RESIZE = 0x0016,
	T_WRITE_FILE = 0x0020, T_READ_FILE = 0x0021, T_DATA = 0x0022,
	T_STAT = 0x0023, T_STAT_RESULT = 0x0024,
	T_MKDIR = 0x0025, T_REMOVE = 0x0026, T_MOUNT = 0x0027, T_UMOUNT = 0x0028,
	T_SET_TIME = 0x0030,
	T_CONNECT = 0x0040, T_CONNECTED = 0x0041, T_STREAM_DATA = 0x0042, T_STREAM_WINDOW = 0x0043,
	T_STREAM_EOF = 0x0044, T_STREAM_CLOSE = 0x0045, T_LISTEN = 0x0046, T_ACCEPTED = 0x0047,
	T_UNLISTEN = 0x0048,
};

enum tag {
	F_VERSION = 1, F_AGENT = 2, F_MAX_FRAME = 3, F_PID = 4, F_CODE = 5, F_ERRNO = 6, F_MESSAGE = 7,
	F_ARG = 10, F_ENV = 11, F_CWD = 12, F_UID = 13, F_GID = 14,
	F_STDIN = 20, F_ROWS = 21, F_COLS = 22, F_STREAM = 23, F_DATA = 24, F_EOF = 25, F_SIGNAL = 26,
	F_PATH = 30, F_MODE = 31, F_APPEND = 32, F_OFFSET = 33, F_LENGTH = 34, F_SIZE = 35, F_MTIME = 36,
	F_RECURSIVE = 37, F_SOURCE = 38, F_FSTYPE = 39, F_FLAGS = 40, F_OPTIONS = 41,
	F_TIME_NS = 42, F_ADDRESS = 43, F_PORT = 44, F_WINDOW = 45, F_LISTENER = 46,
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
	[F_TIME_NS] = { "TIME_NS", U64 }, [F_ADDRESS] = { "ADDRESS", STR }, [F_PORT] = { "PORT", U32 },
	[F_WINDOW] = { "WINDOW", U32 }, [F_LISTENER] = { "LISTENER", U32 },
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

/* Writes the OOM killer's adjustment of this process (-1000..1000); best effort: a kernel without it leaves the default. */
static void set_oom_score_adj(const char *value)
{
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, value, strlen(value)) < 0) {
		/* the default stays: the agent is as likely a victim as anything else */
	}
	close(fd);
}

static void child_run(const struct spawn *s)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (size_t i = 0; i < sizeof ignored_signals / sizeof *ignored_signals; i++)
		signal(ignored_signals[i], SIG_DFL);
	umask(child_umask);
	/* Not the agent's protection from the OOM killer: a container's processes are fair game, as under Docker.
	 * This is a vfork child, so the write is its own (the kernel does not share it with the agent's). */
	set_oom_score_adj("0");
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

/* ---------------------------------------------------------------- byte streams */

/* One CONNECT or accepted connection (a socket in the guest), or one LISTEN
 * (a listening Unix socket). A stream is connecting until its non-blocking
 * connect completes, then carries bytes both ways until both directions have
 * ended (the guest's side read to EOF, the host's EOF written through with
 * shutdown), an error, or the host's STREAM_CLOSE. */
struct stream {
	struct stream *next;
	uint32_t id;
	int fd;
	bool listener;
	bool connecting;
	bool done;           /* freed at the end of the loop iteration */
	/* a listener's */
	char *path;          /* the socket file, removed by UNLISTEN */
	dev_t dev;           /* which file it is: removed only if it is still ours */
	ino_t ino;
	mode_t mode;
	uint32_t window;     /* the window each accepted stream starts with */
	/* a connection's */
	uint32_t credit;     /* bytes the host still lets us send */
	uint32_t held;       /* host bytes received and not yet granted back: pending + written since the last grant */
	struct queue pending;/* host bytes not yet written to the socket */
	bool read_eof;       /* the guest side ended (STREAM_EOF sent) */
	bool host_eof;       /* the host ended: shut down writing once pending is written */
	bool shut;
	char target[128];    /* what a CONNECT connects to, for its error */
};

static struct stream *streams;
static size_t nstreams;
static uint32_t next_accepted;

static struct stream *stream_find(uint32_t id)
{
	for (struct stream *s = streams; s; s = s->next)
		if (s->id == id && !s->done)
			return s;
	return NULL;
}

static struct stream *stream_new(uint32_t id, int fd)
{
	struct stream *s = calloc(1, sizeof *s);
	if (!s)
		die("out of memory");
	s->id = id;
	s->fd = fd;
	s->next = streams;
	streams = s;
	nstreams++;
	return s;
}

/* Ends a stream: STREAM_CLOSE to the host (with the errno, if it failed) unless the host closed it. */
static void stream_end(struct stream *s, bool tell, int err, const char *what)
{
	if (s->done)
		return;
	if (tell) {
		frame_begin(T_STREAM_CLOSE, s->id);
		if (err) {
			char message[256];
			snprintf(message, sizeof message, "%s: %s", what, strerror(err));
			field_str(F_CODE, errno_name(err));
			field_i32(F_ERRNO, err);
			field_str(F_MESSAGE, message);
		}
		frame_end();
	}
	close_fd(&s->fd);
	s->done = true;
}

/* A connection is over when both directions are: the guest's side at EOF, the host's written and shut. */
static void stream_check_done(struct stream *s)
{
	if (!s->listener && !s->done && s->read_eof && s->shut)
		stream_end(s, true, 0, NULL);
}

static void stream_grant(struct stream *s, bool all)
{
	uint32_t written = s->held - queue_pending(&s->pending);
	if (written == 0 || (!all && written < STREAM_GRANT))
		return;
	frame_begin(T_STREAM_WINDOW, s->id);
	field_u32(F_LENGTH, written);
	frame_end();
	s->held -= written;
}

/* Writes what the host sent as far as the socket takes it; shuts down writing after the host's EOF. */
static void stream_write(struct stream *s)
{
	if (s->done || s->connecting || s->fd < 0)
		return;
	int err = queue_write(&s->pending, s->fd);
	if (err) {
		stream_end(s, true, err, "write");
		return;
	}
	stream_grant(s, false);
	if (s->host_eof && !queue_pending(&s->pending) && !s->shut) {
		if (shutdown(s->fd, SHUT_WR) < 0 && errno != ENOTCONN) {
			stream_end(s, true, errno, "shutdown");
			return;
		}
		s->shut = true;
		stream_check_done(s);
	}
}

static void stream_read(struct stream *s)
{
	uint32_t room = s->credit < MAX_STREAM_DATA ? s->credit : MAX_STREAM_DATA;
	if (s->done || room == 0)
		return;
	frame_begin(T_STREAM_DATA, s->id);
	uint8_t *f = queue_reserve(&out, FIELD_HEADER_SIZE + room);
	ssize_t n = read(s->fd, f + FIELD_HEADER_SIZE, room);
	if (n > 0) {
		put16(f, F_DATA);
		put32(f + 2, n);
		out.tail += FIELD_HEADER_SIZE + n;
		frame_end();
		s->credit -= n;
		return;
	}
	frame_cancel();
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		stream_end(s, true, errno, "read");
		return;
	}
	s->read_eof = true;
	frame_begin(T_STREAM_EOF, s->id);
	frame_end();
	stream_check_done(s);
}

/* A non-blocking connect finished: CONNECTED, or the ERROR that ends the request. */
static void stream_connected(struct stream *s)
{
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == EINPROGRESS || err == EALREADY)
		return;
	if (err) {
		reply_error(s->id, err, "connect %s: %s", s->target, strerror(err));
		stream_end(s, false, 0, NULL);
		return;
	}
	s->connecting = false;
	frame_begin(T_CONNECTED, s->id);
	field_u32(F_WINDOW, STREAM_WINDOW);
	frame_end();
	stream_write(s); /* data the host sent ahead of CONNECTED */
}

static void stream_free(struct stream *s)
{
	close_fd(&s->fd);
	queue_free(&s->pending);
	free(s->path);
	free(s);
}

static void handle_connect(uint32_t id, const struct fields *f)
{
	if (stream_find(id) || proc_find(id)) {
		reply_error(id, EEXIST, "request id %u already names a stream", id);
		return;
	}
	if (id & ACCEPTED_ID_BIT) {
		reply_error(id, EINVAL, "stream ids with bit 31 set are the agent's");
		return;
	}
	if (nstreams >= MAX_STREAMS) {
		reply_error(id, EMFILE, "%u streams and listeners are open already", MAX_STREAMS);
		return;
	}
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_un un;
	} addr = { 0 };
	socklen_t len;
	char target[128];
	if (has(f, F_PATH) == has(f, F_ADDRESS)) {
		reply_error(id, EINVAL, "CONNECT needs either a PATH or an ADDRESS and a PORT");
		return;
	}
	if (has(f, F_PATH)) {
		if (f->size[F_PATH] == 0 || f->size[F_PATH] >= sizeof addr.un.sun_path) {
			reply_error(id, ENAMETOOLONG, "a Unix socket path must be 1 to %zu bytes", sizeof addr.un.sun_path - 1);
			return;
		}
		addr.un.sun_family = AF_UNIX;
		memcpy(addr.un.sun_path, f->value[F_PATH], f->size[F_PATH]);
		len = sizeof addr.un;
		snprintf(target, sizeof target, "%s", addr.un.sun_path);
	} else {
		char *address = get_str(f, F_ADDRESS, NULL);
		uint32_t port = get_u32(f, F_PORT, 0);
		int ok = inet_pton(AF_INET, address, &addr.in.sin_addr);
		snprintf(target, sizeof target, "%s:%u", address, port);
		free(address);
		if (ok != 1 || port == 0 || port > 65535) {
			reply_error(id, EINVAL, "CONNECT to '%s': ADDRESS must be an IPv4 address and PORT 1-65535", target);
			return;
		}
		addr.in.sin_family = AF_INET;
		addr.in.sin_port = htons(port);
		len = sizeof addr.in;
	}
	int fd = socket(addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		reply_error(id, errno, "socket: %s", strerror(errno));
		return;
	}
	if (addr.sa.sa_family == AF_INET) /* a relay: Nagle's delay would only add latency */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	bool pending = false;
	if (connect(fd, &addr.sa, len) < 0) {
		if (errno != EINPROGRESS) {
			int err = errno;
			close(fd);
			reply_error(id, err, "connect %s: %s", target, strerror(err));
			return;
		}
		pending = true;
	}
	struct stream *s = stream_new(id, fd);
	s->credit = get_u32(f, F_WINDOW, DEFAULT_HOST_WINDOW);
	s->connecting = true;
	snprintf(s->target, sizeof s->target, "%s", target);
	if (!pending)
		stream_connected(s);
}

/* The host's bytes for a stream, within the window it was granted (past it: EPROTO, the stream ends). */
static void handle_stream_data(uint32_t id, const struct fields *f)
{
	struct stream *s = stream_find(id);
	if (!s || s->listener || !has(f, F_DATA))
		return; /* a late frame for a stream that ended: no reply, as with STDIN */
	uint32_t n = f->size[F_DATA];
	if (s->host_eof || n > STREAM_WINDOW - s->held) {
		stream_end(s, true, EPROTO, s->host_eof ? "data after the host's STREAM_EOF" : "the host sent more than its window");
		return;
	}
	queue_append(&s->pending, f->value[F_DATA], n);
	s->held += n;
	stream_write(s);
}

static void handle_stream_window(uint32_t id, const struct fields *f)
{
	struct stream *s = stream_find(id);
	if (!s || s->listener)
		return;
	uint32_t n = get_u32(f, F_LENGTH, 0);
	s->credit = n > UINT32_MAX - s->credit ? UINT32_MAX : s->credit + n;
}

static void handle_stream_eof(uint32_t id, const struct fields *f)
{
	(void)f;
	struct stream *s = stream_find(id);
	if (!s || s->listener)
		return;
	s->host_eof = true;
	stream_write(s);
}

/* The host is done with the stream (or never knew it, in a guest restored from a snapshot): closed at once, nothing more sent. */
static void handle_stream_close(uint32_t id, const struct fields *f)
{
	(void)f;
	struct stream *s = stream_find(id);
	if (s && !s->listener)
		stream_end(s, false, 0, NULL);
}

static struct stream *listener_at(const char *path)
{
	for (struct stream *s = streams; s; s = s->next)
		if (s->listener && !s->done && strcmp(s->path, path) == 0)
			return s;
	return NULL;
}

/* Makes room for a socket at path: a stale socket file goes; a live one (someone else's) or another kind of file stays, with the error. */
static int clear_socket_path(const char *path, struct sockaddr_un *addr)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : errno;
	if (!S_ISSOCK(st.st_mode))
		return EEXIST;
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return errno;
	int rc = connect(probe, (struct sockaddr *)addr, sizeof *addr);
	int err = rc < 0 ? errno : 0;
	close(probe);
	if (rc == 0 || err == EAGAIN || err == EINPROGRESS)
		return EADDRINUSE;
	return unlink(path) < 0 && errno != ENOENT ? errno : 0;
}

static void listener_close(struct stream *s)
{
	struct stat st;
	/* The file goes only if it is still the one we bound (a later LISTEN may have replaced it). */
	if (lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
		unlink(s->path);
	stream_end(s, false, 0, NULL);
}

static void handle_listen(uint32_t id, const struct fields *f)
{
	char *path = get_str(f, F_PATH, NULL);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (!path) {
		reply_error(id, EINVAL, "LISTEN needs a PATH");
		return;
	}
	if (!*path || strlen(path) >= sizeof addr.sun_path) {
		reply_error(id, ENAMETOOLONG, "a Unix socket path must be 1 to %zu bytes", sizeof addr.sun_path - 1);
		free(path);
		return;
	}
	strcpy(addr.sun_path, path);
	/* One this agent listens on already (an earlier host's, kept in a snapshot) is taken over. */
	struct stream *old = listener_at(path);
	if (old)
		listener_close(old);
	if (nstreams >= MAX_STREAMS) {
		reply_error(id, EMFILE, "%u streams and listeners are open already", MAX_STREAMS);
		free(path);
		return;
	}
	mode_t mode = get_u32(f, F_MODE, 0600) & 0777;
	make_parents(path);
	int err = clear_socket_path(path, &addr);
	if (err) {
		reply_error(id, err, "listen on %s: %s", path, err == EADDRINUSE ? "another program listens there" : strerror(err));
		free(path);
		return;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	const char *failed = fd < 0 ? "socket" : NULL;
	/* The socket file is created with the mode asked for: no moment when others could connect. */
	umask(~mode & 0777);
	if (!failed && bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
		failed = "bind";
	err = errno;
	umask(0);
	struct stat st;
	if (!failed && listen(fd, 64) < 0)
		failed = "listen", err = errno;
	if (!failed && stat(path, &st) < 0)
		failed = "stat", err = errno;
	if (failed) {
		reply_error(id, err, "%s %s: %s", failed, path, strerror(err));
		if (fd >= 0)
			close(fd);
		free(path);
		return;
	}
	struct stream *s = stream_new(id, fd);
	s->listener = true;
	s->path = path;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->mode = mode;
	s->window = get_u32(f, F_WINDOW, DEFAULT_HOST_WINDOW);
	reply_ok(id);
}

static void handle_unlisten(uint32_t id, const struct fields *f)
{
	uint32_t which = get_u32(f, F_LISTENER, 0);
	struct stream *s = stream_find(which);
	if (!has(f, F_LISTENER) || !s || !s->listener) {
		reply_error(id, ENOENT, "no listener has id %u", which);
		return;
	}
	listener_close(s);
	reply_ok(id);
}

/* Takes the listener's waiting connections, each a new stream announced with ACCEPTED. */
static void listener_accept(struct stream *l)
{
	while (nstreams < MAX_STREAMS) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN: none left; anything else: the client gave up, or no descriptors now */
		uint32_t id;
		do
			id = ACCEPTED_ID_BIT | (next_accepted++ & ~ACCEPTED_ID_BIT);
		while (id == ACCEPTED_ID_BIT || stream_find(id));
		struct stream *s = stream_new(id, fd);
		s->credit = l->window;
		struct ucred cred = { 0 };
		socklen_t len = sizeof cred;
		getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
		frame_begin(T_ACCEPTED, id);
		field_u32(F_LISTENER, l->id);
		field_u32(F_WINDOW, STREAM_WINDOW);
		field_u32(F_PID, cred.pid);
		field_u32(F_UID, cred.uid);
		field_u32(F_GID, cred.gid);
		frame_end();
	}
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
	{ T_CONNECT, handle_connect },
	{ T_STREAM_DATA, handle_stream_data },
	{ T_STREAM_WINDOW, handle_stream_window },
	{ T_STREAM_EOF, handle_stream_eof },
	{ T_STREAM_CLOSE, handle_stream_close },
	{ T_LISTEN, handle_listen },
	{ T_UNLISTEN, handle_unlisten },
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

/* ---------------------------------------------------------------- tools loaded on first use */

/* Large programs the guest does not boot with (the docker client) are links
 * to this binary in the image; run under such a name, it asks the host for
 * the real program on TOOLS_SOCKET (one line with the name; the host writes
 * the program to TOOLS_DIR/NAME, then answers "ok" or "error MESSAGE"), and
 * execs it. Once it is there, it is exec'd at once. See docs/agent-protocol.md. */
#define TOOLS_SOCKET "/run/hyperlab/tools.sock"
#define TOOLS_DIR "/usr/libexec/hyperlab"
static const char *const lazy_tools[] = { "docker" };

static int run_tool(const char *name, char **argv)
{
	char real[128], reply[512];
	snprintf(real, sizeof real, "%s/%s", TOOLS_DIR, name);
	if (access(real, X_OK) != 0) {
		struct sockaddr_un addr = { .sun_family = AF_UNIX, .sun_path = TOOLS_SOCKET };
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
			fprintf(stderr,
				"%s: the %s client is not in this guest yet, and no host offers it (%s: %s).\n"
				"It is installed on first use in the VMs of the hyperlab daemon and of the page.\n",
				name, name, TOOLS_SOCKET, strerror(errno));
			return 127;
		}
		if (isatty(2))
			fprintf(stderr, "%s: first use in this VM: fetching it from the host...\n", name);
		size_t got = 0;
		ssize_t n;
		if (dprintf(fd, "%s\n", name) < 0) {
			fprintf(stderr, "%s: cannot ask the host for it: %s\n", name, strerror(errno));
			return 127;
		}
		while (got < sizeof reply - 1 && (n = read(fd, reply + got, sizeof reply - 1 - got)) != 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				break;
			got += n;
			if (memchr(reply, '\n', got))
				break;
		}
		reply[got] = 0;
		reply[strcspn(reply, "\n")] = 0;
		close(fd);
		if (strcmp(reply, "ok") != 0) {
			const char *why = strncmp(reply, "error ", 6) == 0 ? reply + 6 : *reply ? reply : "the host closed the connection without an answer";
			fprintf(stderr, "%s: the host could not install it: %s\n", name, why);
			return 127;
		}
	}
	execv(real, argv);
	fprintf(stderr, "%s: cannot run %s: %s\n", name, real, strerror(errno));
	return 126;
}

/* ---------------------------------------------------------------- main loop */

enum watch_kind { W_CHANNEL, W_SIGNALS, W_STATUS, W_OUT, W_ERR, W_IN, W_LISTEN, W_CONNECTING, W_STREAM };

static struct pollfd *pfds;
static struct {
	enum watch_kind kind;
	struct proc *proc;
	struct stream *stream;
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
	watches[nwatch].stream = NULL;
	nwatch++;
}

static void watch_stream(struct stream *s, short events, enum watch_kind kind)
{
	watch(s->fd, events, kind, NULL);
	watches[nwatch - 1].stream = s;
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

static void sweep_streams(void)
{
	for (struct stream **pp = &streams; *pp;) {
		struct stream *s = *pp;
		if (s->done) {
			*pp = s->next;
			stream_free(s);
			nstreams--;
		} else {
			pp = &s->next;
		}
	}
}

/* A stream's descriptor is watched only for what it can act on now: POLLHUP
 * and POLLERR are reported whatever is asked, so a stream with nothing to do
 * is not watched at all (the loop would spin on a hung-up socket). */
static void watch_streams(bool output_room)
{
	for (struct stream *s = streams; s; s = s->next) {
		if (s->done || s->fd < 0)
			continue;
		if (s->listener) {
			if (nstreams < MAX_STREAMS)
				watch_stream(s, POLLIN, W_LISTEN);
			continue;
		}
		if (s->connecting) {
			watch_stream(s, POLLOUT, W_CONNECTING);
			continue;
		}
		short events = 0;
		if (output_room && !s->read_eof && s->credit > 0)
			events |= POLLIN;
		if (queue_pending(&s->pending))
			events |= POLLOUT;
		if (events)
			watch_stream(s, events, W_STREAM);
	}
}

static void on_stream_event(struct stream *s, enum watch_kind kind, short asked, short revents)
{
	if (s->done)
		return;
	switch (kind) {
	case W_LISTEN:
		listener_accept(s);
		break;
	case W_CONNECTING:
		stream_connected(s);
		break;
	default:
		if ((asked & POLLOUT) && (revents & (POLLOUT | POLLERR | POLLHUP)))
			stream_write(s);
		if ((asked & POLLIN) && (revents & (POLLIN | POLLERR | POLLHUP)))
			stream_read(s);
		break;
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
		watch_streams(output_room);
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
			case W_LISTEN:
			case W_CONNECTING:
			case W_STREAM:
				on_stream_event(watches[i].stream, watches[i].kind, pfds[i].events, pfds[i].revents);
				break;
			}
		}
		sweep_procs();
		sweep_streams();
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
	const char *self = argc > 0 ? (strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0]) : "";
	for (size_t i = 0; i < sizeof lazy_tools / sizeof *lazy_tools; i++)
		if (strcmp(self, lazy_tools[i]) == 0)
			return run_tool(self, argv);
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
	/* The OOM killer passes the agent over, as containerd's -999: with the agent gone the host loses every
	 * container's streams and exits until init restarts it. Not -1000: in extremis it can still go. */
	set_oom_score_adj("-999");

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
