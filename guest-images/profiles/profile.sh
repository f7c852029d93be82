# Shared by the profile recipes (profiles/NAME/build.sh). Source it after lib.sh.

# hl_profile_layer NAME PAYLOAD_DIR WORK : makes dist/profile-NAME.cpio, an
# uncompressed newc archive of three files:
#   /usr/lib/hyperlab/profile/NAME.cpio.xz   PAYLOAD_DIR as an xz-compressed newc archive
#   /usr/libexec/hyperlab/profile-init       the boot steps: unpack the payload, run profile.d/
#   /etc/inittab                             the default's, with profile-init as its first entry
# The payload is xz (CRC32: what busybox's xz decoder checks; no BCJ filter:
# busybox's decoder has none; dictionary 8 MiB: the memory the guest lends the
# decoder at boot). busybox init runs sysinit entries, and waits for them,
# before anything else, so the agent answers only once the profile is set up.
# Writes $HL_CACHE/profile-NAME.json, what the manifest records of the payload.
hl_profile_layer() {
  local name=$1 payload=$2 work=$3 wrap=$3/wrap xzf
  chmod -R u+rwX,go+rX,go-w "$payload"
  hl_cpio "$payload" "$work/$name.cpio"
  rm -rf "$wrap"
  mkdir -p "$wrap/etc" "$wrap/usr/lib/hyperlab/profile" "$wrap/usr/libexec/hyperlab"
  xzf=$wrap/usr/lib/hyperlab/profile/$name.cpio.xz
  xz --check=crc32 --lzma2=preset=9e,dict=8MiB -c "$work/$name.cpio" > "$xzf"
  install -m 0755 "$HL_ROOT/profiles/profile-init" "$wrap/usr/libexec/hyperlab/profile-init"
  { grep '^#' "$HL_ROOT/rootfs/files/etc/inittab"
    echo "# The profile's boot steps first: /usr/libexec/hyperlab/profile-init."
    echo "::sysinit:/usr/libexec/hyperlab/profile-init"
    grep -v '^#' "$HL_ROOT/rootfs/files/etc/inittab"
  } > "$wrap/etc/inittab"
  chmod 0644 "$wrap/etc/inittab"
  hl_cpio "$wrap" "$HL_DIST/profile-$name.cpio"
  printf '{"payload":"/usr/lib/hyperlab/profile/%s.cpio.xz","unpackedBytes":%s,"compressedBytes":%s}\n' \
    "$name" "$(stat -c %s "$work/$name.cpio")" "$(stat -c %s "$xzf")" > "$HL_CACHE/profile-$name.json"
  hl_log "$name payload: $(stat -c %s "$work/$name.cpio") bytes unpacked, $(stat -c %s "$xzf") as xz"
}
