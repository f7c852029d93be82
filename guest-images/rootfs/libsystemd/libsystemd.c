/* hyperlab's stand-in for libsystemd.so.0, for crun (and, in the podman
 * profile, conmon, which imports one journal call for its journald log
 * driver; hyperlab's podman logs to files).
 *
 * Debian's crun links libsystemd for two things the guest does not have:
 * the systemd cgroup driver (it talks to systemd over D-Bus) and the journald
 * log driver. hyperlab runs crun with the cgroupfs driver and plain log files,
 * so neither is ever called, yet loading libsystemd and the five libraries
 * behind it (libgcrypt, libgpg-error, liblzma, libzstd, liblz4) costs every
 * crun invocation millions of emulated instructions and the initramfs 3 MB.
 *
 * This library has the same soname and symbol versions as the symbols crun
 * imports. Notification calls succeed as "no notify socket" (what libsystemd
 * does when $NOTIFY_SOCKET is unset); D-Bus and journal calls fail with
 * ENOSYS, so asking crun for the systemd driver gives a clear error. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define ENOSYS 38

typedef struct sd_bus sd_bus;
typedef struct sd_bus_message sd_bus_message;
typedef struct sd_bus_error sd_bus_error;
typedef struct sd_bus_slot sd_bus_slot;

int sd_notify(int unset_environment, const char *state) { (void)unset_environment; (void)state; return 0; }
int sd_notify_barrier(int unset_environment, uint64_t timeout) { (void)unset_environment; (void)timeout; return 0; }
struct iovec;
int sd_journal_sendv_with_location(const char *file, const char *line, const char *func, const struct iovec *iov, int n) { (void)file; (void)line; (void)func; (void)iov; (void)n; return -ENOSYS; }
int sd_journal_send_with_location(const char *file, const char *line, const char *func, const char *format, ...) { (void)file; (void)line; (void)func; (void)format; return -ENOSYS; }

int sd_bus_default_system(sd_bus **bus) { if (bus) *bus = NULL; return -ENOSYS; }
int sd_bus_default_user(sd_bus **bus) { if (bus) *bus = NULL; return -ENOSYS; }
sd_bus *sd_bus_unref(sd_bus *bus) { (void)bus; return NULL; }
int sd_bus_process(sd_bus *bus, sd_bus_message **r) { (void)bus; if (r) *r = NULL; return -ENOSYS; }
int sd_bus_wait(sd_bus *bus, uint64_t timeout_usec) { (void)bus; (void)timeout_usec; return -ENOSYS; }
int sd_bus_call(sd_bus *bus, sd_bus_message *m, uint64_t usec, sd_bus_error *e, sd_bus_message **r) { (void)bus; (void)m; (void)usec; (void)e; if (r) *r = NULL; return -ENOSYS; }
int sd_bus_match_signal_async(sd_bus *bus, sd_bus_slot **ret, const char *sender, const char *path, const char *interface, const char *member, void *callback, void *install_callback, void *userdata) { (void)bus; (void)sender; (void)path; (void)interface; (void)member; (void)callback; (void)install_callback; (void)userdata; if (ret) *ret = NULL; return -ENOSYS; }
void sd_bus_error_free(sd_bus_error *e) { (void)e; }
int sd_bus_error_get_errno(const sd_bus_error *e) { (void)e; return ENOSYS; }
int sd_bus_message_new_method_call(sd_bus *bus, sd_bus_message **m, const char *destination, const char *path, const char *interface, const char *member) { (void)bus; (void)destination; (void)path; (void)interface; (void)member; if (m) *m = NULL; return -ENOSYS; }
sd_bus_message *sd_bus_message_unref(sd_bus_message *m) { (void)m; return NULL; }
int sd_bus_message_append(sd_bus_message *m, const char *types, ...) { (void)m; (void)types; return -ENOSYS; }
int sd_bus_message_append_strv(sd_bus_message *m, char **l) { (void)m; (void)l; return -ENOSYS; }
int sd_bus_message_open_container(sd_bus_message *m, char type, const char *contents) { (void)m; (void)type; (void)contents; return -ENOSYS; }
int sd_bus_message_close_container(sd_bus_message *m) { (void)m; return -ENOSYS; }
int sd_bus_message_read(sd_bus_message *m, const char *types, ...) { (void)m; (void)types; return -ENOSYS; }
