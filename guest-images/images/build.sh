#!/usr/bin/env bash
# Builds the container images the guest runs, as one OCI image layout
# (dist/images/: oci-layout, index.json, blobs/sha256/) holding three linux/386
# images that share layers:
#   busybox:latest  busybox
#   lua:5.1         busybox + libc + lua5.1
#   lua:5.4         busybox + libc + lua5.4
# busybox   static busybox, its applet links, /etc/passwd and /etc/group, empty /tmp /root /proc /sys /dev
# libc      ld-linux.so.2 and every shared library either lua needs (ELF NEEDED, followed
#           through the downloaded packages): one layer, identical in both lua images
# lua5.X    Debian's lua5.X interpreter and compiler, /usr/bin/lua and luac links, liblua5.X.so.0
# Layers are uncompressed tars (the guest's busybox tar unpacks them without
# spending emulated CPU on decompression), root-owned, sorted, fixed mtime and modes.
set -euo pipefail; cd "$(dirname "$0")"
. ../lib.sh
hl_begin_step images
hl_need_tools tar:tar readelf:binutils dpkg-deb:dpkg node:nodejs
work=$HL_CACHE/images
rm -rf "$work"; mkdir -p "$work/layers"
pkgs=$work/pkgs; mkdir -p "$pkgs"

# layer_tar DIR OUT : a reproducible tar of DIR's contents (entry names without "./").
# Modes are set here, not inherited from the umask or the packages' build.
layer_tar() {
  local dir=$1 out=$2
  find "$dir" -type d -exec chmod 0755 {} +
  find "$dir" -type f -perm /111 -exec chmod 0755 {} +
  find "$dir" -type f ! -perm /111 -exec chmod 0644 {} +
  [ ! -d "$dir/tmp" ] || chmod 1777 "$dir/tmp"
  (cd "$dir" && find . -mindepth 1 -printf '%P\n' | sort) \
    | tar -C "$dir" -cf "$out" --no-recursion -T - --format=gnu --sort=name \
        --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner
}

# --- busybox: the first layer of every image
bb=$work/busybox
hl_extract busybox-static:i386 "$pkgs"
mkdir -p "$bb"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root}
install -m 0755 "$pkgs/bin/busybox" "$bb/bin/busybox"
# Applet links, from the list busybox itself reports (it is static i386; the host runs it).
"$bb/bin/busybox" --list-full | sort | while read -r path; do
  case "$path" in bin/busybox|linuxrc) continue ;; esac
  # -s: without it, realpath follows this host's own /bin -> usr/bin link (merged /usr).
  ln -sf "$(realpath -s -m --relative-to="$(dirname "/$path")" /bin/busybox)" "$bb/$path"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$bb/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$bb/etc/group"
layer_tar "$bb" "$work/layers/busybox.tar"

# --- lua5.1, lua5.4: the interpreters (Debian selects /usr/bin/lua with alternatives; here it is a link)
versions=(5.1 5.4)
libpkgs=(libc6 libreadline8 libtinfo6) # what lua needs besides itself; the NEEDED walk below checks it is enough
for p in "${libpkgs[@]}"; do hl_extract "$p:i386" "$pkgs"; done
for v in "${versions[@]}"; do
  hl_extract "lua$v:i386" "$pkgs"; hl_extract "liblua$v-0:i386" "$pkgs"
  l=$work/lua$v
  mkdir -p "$l/usr/bin" "$l/usr/lib/i386-linux-gnu"
  install -m 0755 "$pkgs/usr/bin/lua$v" "$pkgs/usr/bin/luac$v" "$l/usr/bin/"
  ln -s "lua$v" "$l/usr/bin/lua"; ln -s "luac$v" "$l/usr/bin/luac"
  # The C library only: the interpreter links Lua in statically, and the C++
  # build (liblua$v-c++.so) would pull libstdc++ into the image for nothing.
  install -m 0644 "$pkgs/usr/lib/i386-linux-gnu/liblua$v.so.0.0.0" "$l/usr/lib/i386-linux-gnu/"
  ln -s "liblua$v.so.0.0.0" "$l/usr/lib/i386-linux-gnu/liblua$v.so.0"
done

# --- libc: every shared library the lua layers need that they do not carry
# themselves, found by following ELF NEEDED entries through the downloaded
# packages (as rootfs/build.sh does for crun), in the directory its package
# puts it, plus the dynamic loader. Both lua images get the same layer.
libc=$work/libc
libdirs=(lib/i386-linux-gnu usr/lib/i386-linux-gnu lib usr/lib)
find_lib() { # find_lib SONAME -> DIR of the package tree that holds it
  local d
  for d in "${libdirs[@]}"; do [ -e "$pkgs/$d/$1" ] && { printf '%s\n' "$d"; return; }; done
  hl_die "shared library $1 (needed by $2) not found in the downloaded packages; add its package to images/build.sh"
}
queue=()
for v in "${versions[@]}"; do
  while IFS= read -r f; do queue+=("$f"); done < <(find "$work/lua$v" -type f | sort)
done
declare -A seen=()
libs=()
while [ ${#queue[@]} -gt 0 ]; do
  f=${queue[0]}; queue=("${queue[@]:1}")
  for lib in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    [ -z "${seen[$lib]:-}" ] || continue
    seen[$lib]=1
    in_lua=
    for v in "${versions[@]}"; do
      for d in "${libdirs[@]}"; do [ ! -e "$work/lua$v/$d/$lib" ] || in_lua=1; done
    done
    [ -z "$in_lua" ] || continue
    d=$(find_lib "$lib" "${f#"$work"/}")
    libs+=("$lib")
    mkdir -p "$libc/$d"
    install -m 0755 "$(readlink -f "$pkgs/$d/$lib")" "$libc/$d/$lib"
    queue+=("$libc/$d/$lib")
  done
done
# The path every i386 binary names as its interpreter; a link, as in Debian.
mkdir -p "$libc/lib/i386-linux-gnu"
[ -e "$libc/lib/i386-linux-gnu/ld-linux.so.2" ] \
  || install -m 0755 "$(readlink -f "$pkgs/lib/i386-linux-gnu/ld-linux.so.2")" "$libc/lib/i386-linux-gnu/ld-linux.so.2"
ln -s i386-linux-gnu/ld-linux.so.2 "$libc/lib/ld-linux.so.2"
layer_tar "$libc" "$work/layers/libc.tar"
for v in "${versions[@]}"; do layer_tar "$work/lua$v" "$work/layers/lua$v.tar"; done

# --- check: unpack each image's layers in order; no link may dangle, and each lua runs on this host
root=$work/check-busybox; mkdir -p "$root"; tar -C "$root" -xf "$work/layers/busybox.tar"
for v in "${versions[@]}"; do
  mkdir -p "$work/check-lua$v"
  for t in busybox libc "lua$v"; do tar -C "$work/check-lua$v" -xf "$work/layers/$t.tar"; done
done
for root in "$work"/check-*; do
  dangling=$(cd "$root" && find . -xtype l | sort | head -n 5 | xargs)
  [ -z "$dangling" ] || hl_die "${root##*/check-}: dangling links: $dangling"
done
for v in "${versions[@]}"; do
  root=$work/check-lua$v
  got=$("$root/lib/ld-linux.so.2" --inhibit-cache \
    --library-path "$root/lib/i386-linux-gnu:$root/usr/lib/i386-linux-gnu" "$root/usr/bin/lua" -v 2>&1) \
    || hl_die "lua:$v does not run from its layers: $got"
  case "$got" in "Lua $v."*) hl_log "lua:$v: $got" ;; *) hl_die "lua:$v reports '$got'" ;; esac
done

# --- the layout: the tars become blobs; configs, manifests and index.json are JSON
bbver=$(dpkg-deb -f "$(hl_deb busybox-static:i386)" Version)
libcpkgs=$(for p in "${libpkgs[@]}"; do printf '%s %s, ' "$p" "$(dpkg-deb -f "$(hl_deb "$p:i386")" Version)"; done)
declare -A luaver=()
for v in "${versions[@]}"; do luaver[$v]=$(dpkg-deb -f "$(hl_deb "lua$v:i386")" Version); done
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
bblayer="{\"file\": \"$work/layers/busybox.tar\", \"comment\": \"busybox: busybox-static $bbver, applet links, /etc/passwd, /etc/group\"}"
libclayer="{\"file\": \"$work/layers/libc.tar\", \"comment\": \"libc: ${libcpkgs%, }: the shared libraries lua needs ($(printf '%s\n' "${libs[@]}" | sort | xargs))\"}"
lualayer() { printf '{"file": "%s", "comment": "lua%s: lua%s %s, liblua%s.so.0, /usr/bin/lua -> lua%s"}' \
  "$work/layers/lua$1.tar" "$1" "$1" "${luaver[$1]}" "$1" "$1"; }
node oci.mjs "$HL_DIST/images" <<EOF
{ "created": "$created",
  "images": [
    { "ref": "busybox:latest", "cmd": ["sh"], "layers": [$bblayer] },
    { "ref": "lua:5.1", "cmd": ["lua"], "layers": [$bblayer, $libclayer, $(lualayer 5.1)] },
    { "ref": "lua:5.4", "cmd": ["lua"], "layers": [$bblayer, $libclayer, $(lualayer 5.4)] } ] }
EOF
chmod -R u=rwX,go=rX "$HL_DIST/images"

hl_sha images/oci-layout images/index.json
