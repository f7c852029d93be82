/* hyperlab-net-hook: the OCI prestart hook that wires a container to a bridge
 * network, as one small static program talking netlink, where a shell
 * script would start a dozen processes (sh, sed, nsenter, ip...).
 *
 * Usage (src/containers/network.ts writes it into the bundle's config.json):
 *   hyperlab-net-hook bridge ADDRESS/PREFIX HOST_IF [BRIDGE GATEWAY [internal]]
 * stdin: the container's OCI state (JSON), whose "pid" names its namespaces.
 *
 * It makes sure the bridge exists with GATEWAY/PREFIX and is up (default:
 * hl0 with 10.88.0.1, the default network; a user network names its own
 * bridge and gateway); creates a veth pair whose host end HOST_IF joins the
 * bridge and whose other end is created directly inside the container's
 * network namespace as eth0; then, inside that namespace, gives eth0 ADDRESS
 * and a default route through the gateway (none with "internal": the
 * container reaches only its own subnet). The runtime has already brought the
 * namespace's loopback up. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The default network's bridge and gateway, when the arguments name none. */
#define DEFAULT_BRIDGE "hl0"
#define DEFAULT_GATEWAY "10.88.0.1"

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("hyperlab-net-hook: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* ---------------------------------------------------------------- netlink messages */

struct msg {
	struct nlmsghdr *h;
	char buf[1024];
};

static void msg_begin(struct msg *m, uint16_t type, uint16_t flags, const void *body, size_t n)
{
	memset(m->buf, 0, sizeof m->buf);
	m->h = (struct nlmsghdr *)m->buf;
	m->h->nlmsg_type = type;
	m->h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	m->h->nlmsg_len = NLMSG_LENGTH(n);
	memcpy(NLMSG_DATA(m->h), body, n);
}

static struct rtattr *attr(struct msg *m, uint16_t type, const void *data, size_t n)
{
	size_t at = NLMSG_ALIGN(m->h->nlmsg_len);
	if (at + RTA_SPACE(n) > sizeof m->buf)
		fail("netlink message too long");
	struct rtattr *a = (struct rtattr *)(m->buf + at);
	a->rta_type = type;
	a->rta_len = RTA_LENGTH(n);
	if (n)
		memcpy(RTA_DATA(a), data, n);
	m->h->nlmsg_len = at + RTA_SPACE(n);
	return a;
}

static void attr_str(struct msg *m, uint16_t type, const char *s) { attr(m, type, s, strlen(s) + 1); }
static void attr_u32(struct msg *m, uint16_t type, uint32_t v) { attr(m, type, &v, sizeof v); }
static struct rtattr *nest_begin(struct msg *m, uint16_t type) { return attr(m, type, NULL, 0); }
static void nest_end(struct msg *m, struct rtattr *a) { a->rta_len = (char *)m->buf + m->h->nlmsg_len - (char *)a; }

/* Sends one request and waits for its acknowledgement; returns 0 or an errno. */
static int talk(int fd, struct msg *m)
{
	static uint32_t seq;
	m->h->nlmsg_seq = ++seq;
	if (send(fd, m->buf, m->h->nlmsg_len, 0) < 0)
		return errno;
	char reply[4096];
	for (;;) {
		ssize_t n = recv(fd, reply, sizeof reply, 0);
		if (n < 0)
			return errno;
		for (struct nlmsghdr *h = (struct nlmsghdr *)reply; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_seq != seq || h->nlmsg_type != NLMSG_ERROR)
				continue;
			return -((struct nlmsgerr *)NLMSG_DATA(h))->error;
		}
	}
}

static int netlink_open(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		fail("netlink socket: %s", strerror(errno));
	return fd;
}

/* ---------------------------------------------------------------- operations */

static void link_up(int fd, int index, const char *name)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = index, .ifi_flags = IFF_UP, .ifi_change = IFF_UP };
	struct msg m;
	msg_begin(&m, RTM_NEWLINK, 0, &ifi, sizeof ifi);
	int err = talk(fd, &m);
	if (err)
		fail("set %s up: %s", name, strerror(err));
}

static void add_address(int fd, int index, const char *name, struct in_addr addr, int prefix)
{
	struct ifaddrmsg ifa = { .ifa_family = AF_INET, .ifa_prefixlen = prefix, .ifa_index = index };
	struct msg m;
	msg_begin(&m, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof ifa);
	attr(&m, IFA_LOCAL, &addr, sizeof addr);
	attr(&m, IFA_ADDRESS, &addr, sizeof addr);
	int err = talk(fd, &m);
	if (err && err != EEXIST)
		fail("add address %s/%d to %s: %s", inet_ntoa(addr), prefix, name, strerror(err));
}

/* The bridge, once per guest; a concurrent hook may be making it too. */
static int ensure_bridge(int fd, const char *bridge, struct in_addr gw, int prefix)
{
	int index = if_nametoindex(bridge);
	if (!index) {
		struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
		struct msg m;
		msg_begin(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof ifi);
		attr_str(&m, IFLA_IFNAME, bridge);
		struct rtattr *info = nest_begin(&m, IFLA_LINKINFO);
		attr_str(&m, IFLA_INFO_KIND, "bridge");
		nest_end(&m, info);
		int err = talk(fd, &m);
		if (err && err != EEXIST)
			fail("create bridge %s: %s", bridge, strerror(err));
		if (!(index = if_nametoindex(bridge)))
			fail("bridge %s: %s", bridge, strerror(errno));
	}
	add_address(fd, index, bridge, gw, prefix);
	link_up(fd, index, bridge);
	return index;
}

/* HOST_IF on the bridge (up) and, in the namespace netns_fd names, eth0 (down). */
static void make_veth(int fd, const char *host_if, int bridge, int netns_fd)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_flags = IFF_UP, .ifi_change = IFF_UP };
	struct msg m;
	msg_begin(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof ifi);
	attr_str(&m, IFLA_IFNAME, host_if);
	attr_u32(&m, IFLA_MASTER, bridge);
	struct rtattr *info = nest_begin(&m, IFLA_LINKINFO);
	attr_str(&m, IFLA_INFO_KIND, "veth");
	struct rtattr *data = nest_begin(&m, IFLA_INFO_DATA);
	struct rtattr *peer = nest_begin(&m, VETH_INFO_PEER);
	/* The peer's own link header, then its attributes. It cannot be set up
	 * here: a veth opens only once both ends exist (ENOTCONN before). */
	struct ifinfomsg peer_ifi = { .ifi_family = AF_UNSPEC };
	size_t at = NLMSG_ALIGN(m.h->nlmsg_len);
	memcpy(m.buf + at, &peer_ifi, sizeof peer_ifi);
	m.h->nlmsg_len = at + NLMSG_ALIGN(sizeof peer_ifi);
	attr_str(&m, IFLA_IFNAME, "eth0");
	attr_u32(&m, IFLA_NET_NS_FD, netns_fd);
	nest_end(&m, peer);
	nest_end(&m, data);
	nest_end(&m, info);
	int err = talk(fd, &m);
	if (err)
		fail("create veth pair %s/eth0: %s", host_if, strerror(err));
}

static void default_route(int fd, struct in_addr via)
{
	struct rtmsg rt = {
		.rtm_family = AF_INET, .rtm_table = RT_TABLE_MAIN, .rtm_protocol = RTPROT_BOOT,
		.rtm_scope = RT_SCOPE_UNIVERSE, .rtm_type = RTN_UNICAST,
	};
	struct msg m;
	msg_begin(&m, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &rt, sizeof rt);
	attr(&m, RTA_GATEWAY, &via, sizeof via);
	int err = talk(fd, &m);
	if (err)
		fail("add default route via %s: %s", inet_ntoa(via), strerror(err));
}

/* "pid" from the OCI state on stdin. */
static long state_pid(void)
{
	char buf[8192];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof buf - 1 && (n = read(0, buf + len, sizeof buf - 1 - len)) > 0)
		len += n;
	buf[len] = 0;
	char *p = strstr(buf, "\"pid\"");
	if (!p || !(p = strchr(p + 5, ':')))
		fail("no pid in the container state on stdin");
	long pid = strtol(p + 1, NULL, 10);
	if (pid <= 0)
		fail("bad pid in the container state on stdin");
	return pid;
}

int main(int argc, char **argv)
{
	int internal = argc == 7 && strcmp(argv[6], "internal") == 0;
	if ((argc != 4 && argc != 6 && !internal) || strcmp(argv[1], "bridge") != 0)
		fail("usage: hyperlab-net-hook bridge ADDRESS/PREFIX HOST_IF [BRIDGE GATEWAY [internal]] (OCI state on stdin)");
	const char *host_if = argv[3];
	const char *bridge = argc > 4 ? argv[4] : DEFAULT_BRIDGE;
	const char *gateway = argc > 4 ? argv[5] : DEFAULT_GATEWAY;
	if (strlen(host_if) >= IFNAMSIZ || strlen(bridge) >= IFNAMSIZ)
		fail("interface names are at most %d characters: '%s', '%s'", IFNAMSIZ - 1, host_if, bridge);
	char address[32];
	snprintf(address, sizeof address, "%s", argv[2]);
	char *slash = strchr(address, '/');
	struct in_addr addr, gw;
	if (!slash || (*slash = 0, inet_pton(AF_INET, address, &addr) != 1))
		fail("bad address '%s': use A.B.C.D/PREFIX", argv[2]);
	int prefix = atoi(slash + 1);
	if (prefix < 1 || prefix > 30)
		fail("bad prefix in '%s': use 1 to 30", argv[2]);
	if (inet_pton(AF_INET, gateway, &gw) != 1)
		fail("bad gateway '%s': use A.B.C.D", gateway);

	char path[64];
	snprintf(path, sizeof path, "/proc/%ld/ns/net", state_pid());
	int netns = open(path, O_RDONLY | O_CLOEXEC);
	if (netns < 0)
		fail("open %s: %s", path, strerror(errno));

	int fd = netlink_open();
	/* The bridge holds the gateway in the container's subnet. */
	make_veth(fd, host_if, ensure_bridge(fd, bridge, gw, prefix), netns);
	close(fd);

	/* The rest happens inside the container's network namespace. */
	if (setns(netns, CLONE_NEWNET) < 0)
		fail("enter %s: %s", path, strerror(errno));
	fd = netlink_open();
	int eth0 = if_nametoindex("eth0");
	if (!eth0)
		fail("eth0 is missing in the container: %s", strerror(errno));
	add_address(fd, eth0, "eth0", addr, prefix);
	link_up(fd, eth0, "eth0");
	/* An internal network's containers reach only their subnet (Docker's --internal). */
	if (!internal)
		default_route(fd, gw);
	return 0;
}
