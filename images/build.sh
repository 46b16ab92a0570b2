#!/usr/bin/env bash
# Build convoy's base images locally, with no container registry:
#   convoy/busybox:1    a busybox-static root filesystem (a few MB, seconds)
#   convoy/python:3.11  Debian bookworm minbase + python3, via debootstrap (a minute or two)
#   convoy/gcc:12       Debian bookworm minbase + gcc, make, libc6-dev (opt-in: only when named)
# With no target (or 'all') builds busybox and python; gcc only when asked for: build.sh gcc.
# Images that already exist are skipped.
#
# usage: images/build.sh [-f|--force] [-q|--quiet] [busybox|python|gcc|all]...
#   -f, --force   rebuild even when the image exists
#   -q, --quiet   print nothing when an image is skipped
# env:  CONVOY_DEBIAN_MIRROR  Debian mirror for debootstrap (default: from apt sources)
#       CONVOY_BUILD_TMP      where to build root filesystems (default: /var/tmp)
set -euo pipefail

BUSYBOX_IMAGE=convoy/busybox:1
PYTHON_IMAGE=convoy/python:3.11
GCC_IMAGE=convoy/gcc:12
IMAGE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SUITE=bookworm

force=0
quiet=0
targets=()
for arg in "$@"; do
    case "$arg" in
        -f|--force) force=1 ;;
        -q|--quiet) quiet=1 ;;
        busybox|python|gcc) targets+=("$arg") ;;
        all) targets+=(busybox python) ;;  # not gcc: opt-in, it takes longer and few need it
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "images/build.sh: unknown argument '$arg' (expected busybox, python, gcc or all)" >&2; exit 2 ;;
    esac
done
[[ ${#targets[@]} -gt 0 ]] || targets=(busybox python)

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else
        echo "images/build.sh: building root filesystems needs root (or sudo)" >&2; exit 1
    fi
fi

say() { echo "==> $*"; }
die() { echo "images/build.sh: $*" >&2; exit 1; }

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

need_image() {  # need_image IMAGE: 0 when IMAGE must be built
    if [[ $force -eq 0 ]] && image_exists "$1"; then
        [[ $quiet -eq 1 ]] || say "$1 exists, skipping"
        return 1
    fi
    return 0
}

docker info >/dev/null 2>&1 || die "the Docker engine is not reachable ('docker info' fails); run scripts/setup.sh"

# One build at a time per user: two setup.sh runs must not build the same image twice.
if command -v flock >/dev/null 2>&1; then
    exec 9>"${TMPDIR:-/tmp}/convoy-images.$(id -u).lock"
    flock 9
fi

# Temporary build directory, removed on exit, also on failure or interruption. debootstrap
# mounts /proc and /sys inside the target: unmount anything left there before removing it.
WORK=""
LOG=""
cleanup() {
    local rc=$?
    if [[ $rc -ne 0 && -n "$LOG" && -s "$LOG" ]]; then
        echo "images/build.sh: build failed; last lines of $LOG:" >&2
        tail -n 25 "$LOG" >&2 || true
    fi
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        local m
        while read -r m; do
            "${SUDO[@]}" umount -l "$m" 2>/dev/null || true
        done < <(awk -v w="$WORK/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r)
        "${SUDO[@]}" rm -rf --one-file-system "$WORK" || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

new_workdir() {
    local base=${CONVOY_BUILD_TMP:-/var/tmp}
    [[ -d "$base" && -w "$base" ]] || base=${TMPDIR:-/tmp}
    WORK=$(mktemp -d "$base/convoy-image.XXXXXX")
    LOG="$WORK/build.log"
    : >"$LOG"
}

finish_workdir() {
    LOG=""
    "${SUDO[@]}" rm -rf --one-file-system "$WORK"
    WORK=""
}

# The mirror apt already uses for Debian (deb822 .sources or one-line .list), else the default.
debian_mirror() {
    if [[ -n "${CONVOY_DEBIAN_MIRROR:-}" ]]; then echo "$CONVOY_DEBIAN_MIRROR"; return; fi
    local f url
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        url=$(awk 'tolower($1) == "uris:" {print $2}' "$f" | grep -v -- '-security' | grep -m1 '/debian/\?$' || true)
        if [[ -n "$url" ]]; then echo "${url%/}"; return; fi
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        url=$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}' "$f" \
            | grep -v -- '-security' | grep -m1 '/debian/\?$' || true)
        if [[ -n "$url" ]]; then echo "${url%/}"; return; fi
    done
    echo http://deb.debian.org/debian
}

static_busybox() {
    local bb
    for bb in /bin/busybox /usr/bin/busybox; do
        # a static binary is "not a dynamic executable" for ldd (always there, unlike 'file')
        if [[ -x "$bb" ]] && ! ldd "$bb" >/dev/null 2>&1; then echo "$bb"; return 0; fi
    done
    return 1
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "package(s) $* missing and apt-get not found; install them"
    say "installing $* (apt)"
    local log
    log=${TMPDIR:-/tmp}/convoy-build-apt.$(id -u).log
    if ! { "${SUDO[@]}" apt-get update -q && DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" \
            apt-get install -y -q "$@"; } >"$log" 2>&1; then
        tail -n 25 "$log" >&2
        die "apt-get install $* failed (log: $log)"
    fi
}

build_busybox() {
    need_image "$BUSYBOX_IMAGE" || return 0
    local t0=$SECONDS bb
    bb=$(static_busybox) || { apt_install busybox-static; bb=$(static_busybox) || die "no static busybox after installing busybox-static"; }
    say "building $BUSYBOX_IMAGE from $bb"
    new_workdir
    local root="$WORK/root"
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,proc,sys,dev,home,var/tmp}
    cp "$bb" "$root/bin/busybox"
    chmod 0755 "$root/bin/busybox"
    local applet
    while read -r applet; do
        case "$applet" in bin/busybox|linuxrc|"") continue ;; esac
        [[ -e "$root/$applet" ]] || ln -s /bin/busybox "$root/$applet"
    done < <("$bb" --list-full)
    [[ -e "$root/bin/sh" ]] || ln -s /bin/busybox "$root/bin/sh"
    chmod 1777 "$root/tmp" "$root/var/tmp"
    chmod 0700 "$root/root"
    printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
        'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$root/etc/passwd"
    printf '%s\n' 'root:x:0:' 'nobody:x:65534:' >"$root/etc/group"
    tar --numeric-owner --owner=0 --group=0 -C "$root" -c . \
        | docker import --change "ENV PATH=$IMAGE_PATH" --change 'CMD ["sh"]' \
            --message "convoy busybox image (images/build.sh)" - "$BUSYBOX_IMAGE" >>"$LOG"
    docker run --rm --network none "$BUSYBOX_IMAGE" sh -c 'test -x /bin/sh && ls / >/dev/null' \
        || die "$BUSYBOX_IMAGE does not run"
    finish_workdir
    say "built $BUSYBOX_IMAGE in $((SECONDS - t0)) s"
}

# debootstrap_root PACKAGES MESSAGE: Debian $SUITE minbase plus PACKAGES (comma-separated) in
# $WORK/root (a new work folder), stripped of apt lists and caches, docs, man pages and logs.
debootstrap_root() {
    local packages=$1 what=$2 mirror
    command -v debootstrap >/dev/null 2>&1 || [[ -x /usr/sbin/debootstrap ]] || apt_install debootstrap
    local debootstrap=debootstrap
    command -v debootstrap >/dev/null 2>&1 || debootstrap=/usr/sbin/debootstrap
    mirror=$(debian_mirror)
    say "building $what: debootstrap $SUITE + $packages from $mirror (a minute or two)"
    new_workdir
    local root="$WORK/root" keyring=()
    # Debian's keyring verifies the mirror; on Ubuntu install debian-archive-keyring for it.
    [[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] \
        && keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
    # shellcheck disable=SC2129  # separate steps, one log
    "${SUDO[@]}" "$debootstrap" --variant=minbase --include="$packages" "${keyring[@]}" \
        "$SUITE" "$root" "$mirror" >>"$LOG" 2>&1
    # shellcheck disable=SC2016  # the script is expanded by the inner sh, with root as $1
    "${SUDO[@]}" sh -euc '
        root=$1
        rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/cache/debconf/*-old \
               "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
               "$root"/usr/share/lintian "$root"/usr/share/linda "$root"/var/log/* \
               "$root"/tmp/* "$root"/var/tmp/* "$root"/root/.cache
        mkdir -p "$root"/var/log/apt
        : >"$root"/etc/hostname
        printf "%s\n" "# set by the container runtime" >"$root"/etc/resolv.conf
    ' sh "$root" >>"$LOG" 2>&1
}

# import_root IMAGE CMD MESSAGE: $WORK/root as IMAGE.
import_root() {
    "${SUDO[@]}" tar --numeric-owner -C "$WORK/root" -c . \
        | docker import --change "ENV PATH=$IMAGE_PATH" --change 'ENV LANG=C.UTF-8' \
            --change "CMD [\"$2\"]" --message "$3 (images/build.sh)" - "$1" >>"$LOG"
}

build_python() {
    need_image "$PYTHON_IMAGE" || return 0
    local t0=$SECONDS
    debootstrap_root python3 "$PYTHON_IMAGE"
    # shellcheck disable=SC2016  # the script is expanded by the inner sh, with root as $1
    "${SUDO[@]}" sh -euc '
        root=$1
        find "$root"/usr/lib/python3* -name __pycache__ -prune -exec rm -rf {} + 2>/dev/null || true
        [ -e "$root"/usr/bin/python ] || ln -s python3 "$root"/usr/bin/python
        chroot "$root" /usr/bin/python3 -c "import sys; assert sys.version_info[:2] == (3, 11), sys.version"
        chroot "$root" /bin/sh -c "python --version"
    ' sh "$WORK/root" >>"$LOG" 2>&1
    import_root "$PYTHON_IMAGE" python3 "convoy python image: debootstrap $SUITE minbase + python3"
    docker run --rm --network none "$PYTHON_IMAGE" sh -c 'python3 -c "import json, sqlite3" && python --version' \
        >>"$LOG" 2>&1 || die "$PYTHON_IMAGE does not run"
    finish_workdir
    say "built $PYTHON_IMAGE in $((SECONDS - t0)) s"
}

build_gcc() {
    need_image "$GCC_IMAGE" || return 0
    local t0=$SECONDS
    debootstrap_root gcc,make,libc6-dev "$GCC_IMAGE"
    # 'cc' is the default for make's $(CC): check it is there.
    # shellcheck disable=SC2016  # the script is expanded by the inner sh, with root as $1
    "${SUDO[@]}" sh -euc '
        root=$1
        test "$(chroot "$root" /usr/bin/gcc -dumpversion)" = 12
        chroot "$root" /bin/sh -c "cc --version && make --version"
    ' sh "$WORK/root" >>"$LOG" 2>&1
    import_root "$GCC_IMAGE" bash "convoy gcc image: debootstrap $SUITE minbase + gcc, make, libc6-dev"
    # compile, link and run a C program, as a build step would (no network)
    docker run --rm --network none -w /tmp "$GCC_IMAGE" sh -c \
        'printf "#include <stdio.h>\nint main(void){puts(\"ok\");return 0;}\n" >t.c && printf "t: t.c\n" >Makefile && make -s && ./t' \
        >>"$LOG" 2>&1 || die "$GCC_IMAGE does not compile a C program"
    finish_workdir
    say "built $GCC_IMAGE in $((SECONDS - t0)) s"
}

for t in "${targets[@]}"; do
    "build_$t"
done
