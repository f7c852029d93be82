# Shared by every recipe in guest-images/. Source it; do not run it.
# Everything here is deterministic: fixed mtimes, sorted archive entries.

export SOURCE_DATE_EPOCH=1767225600 # 2026-01-01T00:00:00Z
export LC_ALL=C TZ=UTC
umask 022 # file modes in the archives must not depend on the caller's umask
HL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HL_CACHE=${HYPERLAB_IMAGE_CACHE:-$HL_ROOT/.cache}
HL_DIST=$HL_ROOT/dist
mkdir -p "$HL_CACHE/debs" "$HL_DIST"

hl_log() { printf '[images] %s\n' "$*" >&2; }
hl_die() { printf '[images] error: %s\n' "$*" >&2; exit 1; }

# hl_need_tools CMD... : fail early, naming the Debian package to install.
hl_need_tools() {
  local missing=()
  for t in "$@"; do command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}"); done
  [ ${#missing[@]} -eq 0 ] || hl_die "missing build tools; run: apt-get install ${missing[*]}"
}

# hl_deb PKG:ARCH -> prints the path of the downloaded .deb (cached).
# Records "package version arch" in $HL_CACHE/packages-$HL_STEP.txt for the manifest.
hl_deb() {
  local spec=$1 name=${1%%:*} deb
  deb=$(ls "$HL_CACHE/debs/${name}_"*"_${1##*:}.deb" 2>/dev/null | head -n1 || true)
  if [ -z "$deb" ]; then
    (cd "$HL_CACHE/debs" && apt-get download -o APT::Sandbox::User=root "$spec" >&2) \
      || hl_die "could not download $spec (is 'dpkg --add-architecture i386 && apt-get update' done?)"
    deb=$(ls "$HL_CACHE/debs/${name}_"*"_${1##*:}.deb" | head -n1)
  fi
  dpkg-deb --show --showformat='${Package} ${Version} ${Architecture}\n' "$deb" >> "$HL_CACHE/packages-${HL_STEP:?}.txt"
  printf '%s\n' "$deb"
}

# hl_extract PKG:ARCH DIR : unpack a package's files into DIR, keep its copyright.
hl_extract() {
  local deb name=${1%%:*}
  deb=$(hl_deb "$1")
  dpkg-deb -x "$deb" "$2"
  mkdir -p "$HL_DIST/licenses"
  local c="$2/usr/share/doc/$name/copyright"
  [ -f "$c" ] && cp "$c" "$HL_DIST/licenses/$name.copyright"
  return 0
}

# hl_cpio DIR OUT : a reproducible newc archive of DIR (root-owned, sorted, fixed mtime).
hl_cpio() {
  local dir=$1 out=$2
  find "$dir" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  (cd "$dir" && find . -mindepth 1 | sed 's|^\./||' | sort \
    | cpio --quiet -o -H newc -R 0:0 --reproducible) > "$out"
}

# hl_i386 PROGRAM ARGS... : runs an i386 program of the guest on the build host:
# directly where the kernel runs 32-bit x86 code, else (a kernel without IA32
# emulation: "Exec format error") through qemu-user.
hl_i386() {
  local err rc=0 q
  err=$(mktemp)
  "$@" 2>"$err" || rc=$?
  if [ "$rc" -eq 126 ] && grep -q 'Exec format error' "$err"; then
    rm -f "$err"
    q=$(command -v qemu-i386-static || command -v qemu-i386) \
      || hl_die "this kernel cannot run i386 programs (no IA32 emulation) and qemu-user is missing: apt-get install qemu-user-static"
    "$q" "$@"
    return
  fi
  cat "$err" >&2; rm -f "$err"
  return "$rc"
}

# The shared libraries the default guest carries (runtimes.cpio), which a
# profile's layer need not: the sonames, with a space at each end.
HL_DEFAULT_LIBS=" ld-linux.so.2 libc.so.6 libcap.so.2 libseccomp.so.2 libsystemd.so.0 libyajl.so.2 "

# hl_needed_libs PKGS LIBDIR HAVE FILE... : copies into LIBDIR every shared
# library the FILEs load (following ELF NEEDED entries, libraries' own
# included) found in the unpacked packages under PKGS, except the sonames in
# HAVE (space-separated, with a space at each end: what lower layers carry).
hl_needed_libs() {
  local pkgs=$1 libdir=$2 have=$3 f lib d src
  shift 3
  local queue=("$@")
  declare -A seen=()
  mkdir -p "$libdir"
  while [ ${#queue[@]} -gt 0 ]; do
    f=${queue[0]}; queue=("${queue[@]:1}")
    for lib in $(readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      [ -n "${seen[$lib]:-}" ] && continue
      seen[$lib]=1
      case "$have" in *" $lib "*) continue ;; esac
      src=
      for d in lib/i386-linux-gnu usr/lib/i386-linux-gnu lib; do
        [ -e "$pkgs/$d/$lib" ] && { src=$pkgs/$d/$lib; break; }
      done
      [ -n "$src" ] || hl_die "shared library $lib (needed by ${f##*/}) not found in the downloaded packages; add its package to the $HL_STEP recipe"
      install -m 0755 "$(readlink -f "$src")" "$libdir/$lib"
      queue+=("$libdir/$lib")
    done
  done
}

hl_begin_step() { export HL_STEP=$1; : > "$HL_CACHE/packages-$1.txt"; }
hl_sha() { (cd "$HL_DIST" && sha256sum "$@"); }
