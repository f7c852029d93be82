# The podman profile's boot step (run by /usr/libexec/hyperlab/profile-init
# before the agent starts, so it is in the profile's boot snapshot): the
# directories podman expects, and the engine's busybox image in podman's
# store, read from the OCI image layout the profile carries (no registry).
mkdir -p /var/lib/containers /run/containers/storage /var/tmp /etc/containers/networks
# The store on a tmpfs of its own: the guest's root is the initramfs, a ramfs,
# which has no extended attributes and no RENAME_WHITEOUT, and overlayfs needs
# both in its upper layer (it warns, and deletions in a container fall back).
mount -t tmpfs -o mode=0700 containers /var/lib/containers
mkdir -p /var/lib/containers/storage
# (podman names an image pulled from a layout after the layout's path: it is
# given busybox's own name instead)
id=$(podman pull -q oci:/usr/share/hyperlab/images)
podman tag "$id" docker.io/library/busybox:latest
podman untag "$id" localhost/usr/share/hyperlab/images:latest
rm -rf /usr/share/hyperlab/images
