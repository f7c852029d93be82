# The lxc profile's boot step (sourced by /usr/libexec/hyperlab/profile-init,
# before the agent starts): the bridge LXC's default.conf puts every
# container's veth on, and a DHCP server on it.
ip link add lxcbr0 type bridge
ip addr add 10.0.3.1/24 dev lxcbr0
ip link set lxcbr0 up
mkdir -p /run/lxc /var/lib/lxc /var/cache/lxc
touch /run/lxc/udhcpd-lxcbr0.leases
udhcpd /etc/lxc/udhcpd-lxcbr0.conf
