#!/usr/bin/env bash
# Builds, from this checkout, what bootpolicy is installed from (docs/install.md):
#   dist/bootpolicy_<version>_amd64.deb   apt install ./dist/bootpolicy_<version>_amd64.deb
#   dist/bootpolicy-<version>.oci.tar     podman load -i dist/bootpolicy-<version>.oci.tar
#
#   scripts/package.sh [--no-image] [--no-lint]
#
# The binary is a release build with the Swift runtime, Foundation (--static-swift-stdlib) and
# libstdc++ linked in: it needs only Debian's libc, libgcc_s, SQLite and Lua 5.4, which the
# package's Depends names (dpkg-shlibdeps) and the image carries. Two objects are linked in
# beside it: the commit (`bootpolicy --version`), and a trimmed copy of the ICU data that
# Foundation embeds (packaging/icu-trim.py: 34 MB down to 2 MB, for the <= 60 MB image).
# Installs nothing on the host but build tools (dpkg-dev, lintian, podman, runc); builds into
# .build-package; leaves dist/ and nothing else.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
export PATH="/opt/swift/usr/bin:$PATH"

IMAGE=1 LINT=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-image) IMAGE=0 ;;
    --no-lint) LINT=0 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package.sh: unknown argument '$1' (--no-image, --no-lint)" >&2; exit 2 ;;
  esac
  shift
done
say() { echo "package: $*"; }

BOOTPOLICY_EXTRA_DEPS="dpkg-dev binutils libstdc++-12-dev $([ "$LINT" = 1 ] && echo lintian) $([ "$IMAGE" = 1 ] && echo podman runc)" \
  scripts/deps.sh test >/dev/null

SCRATCH=$REPO/.build-package
DIST=$REPO/dist
WORK=$(mktemp -d /tmp/bp-package.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$DIST" "$SCRATCH/objects"

commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit-dirty"; fi

# --- the two linked-in objects -------------------------------------------------------------
# SwiftPM does not know these inputs: when one changes, the binary is removed so it is linked
# again; when none does, a rebuild of the same commit links nothing.
put() { if ! cmp -s "$1" "$2" 2>/dev/null; then cp "$1" "$2"; rm -f "$SCRATCH/release/bootpolicy"; fi; }
printf '    .section .rodata\n    .globl bootpolicy_build_commit\n    .type bootpolicy_build_commit, @object\nbootpolicy_build_commit:\n    .asciz "%s"\n    .size bootpolicy_build_commit, . - bootpolicy_build_commit\n    .section .note.GNU-stack,"",@progbits\n' "$commit" >"$WORK/stamp.S"
cc -c "$WORK/stamp.S" -o "$WORK/stamp.o"
put "$WORK/stamp.o" "$SCRATCH/objects/stamp.o"

icu_lib=$(dirname "$(command -v swift)")/../lib/swift_static/linux/lib_FoundationICU.a
# nm -A says "ARCHIVE:MEMBER:VALUE R icudt76_dat" for the object that defines the data.
icu_symbols=$(nm -A "$icu_lib" 2>/dev/null || true)
icu_line=$(grep -E ' [RD] icudt[0-9]+_dat$' <<<"$icu_symbols" | head -n 1 || true)
[ -n "$icu_line" ] || { echo "package: no ICU data object in $icu_lib" >&2; exit 1; }
icu_symbol=${icu_line##* }
member=${icu_line#"$icu_lib":}; member=${member%%:*}
(cd "$WORK" && ar x "$icu_lib" "$member")
objcopy -O binary --only-section=.rodata "$WORK/$member" "$WORK/icu-full.dat"
python3 packaging/icu-trim.py "$WORK/icu-full.dat" "$WORK/icu.dat"
# Foundation's ICU reads the data through the symbol $icu_symbol; --wrap points those reads
# at ours, so the archive's 34 MB member is never pulled in.
printf '    .section .rodata.icudata,"a",@progbits\n    .globl __wrap_%s\n    .type __wrap_%s, @object\n    .balign 16\n__wrap_%s:\n    .incbin "%s"\n    .size __wrap_%s, . - __wrap_%s\n    .section .note.GNU-stack,"",@progbits\n' \
  "$icu_symbol" "$icu_symbol" "$icu_symbol" "$WORK/icu.dat" "$icu_symbol" "$icu_symbol" >"$WORK/icu.S"
cc -c "$WORK/icu.S" -o "$WORK/icu.o"
put "$WORK/icu.o" "$SCRATCH/objects/icu.o"

# --- the binary ----------------------------------------------------------------------------
# The link flags, each for the image's size (docs/install.md, "The binary"):
#   --no-export-dynamic  swiftc's static-stdlib-args.lnk passes -export-dynamic, which put every
#       symbol of every package object (41,000: NIO, GRDB, BoringSSL, ours) in .dynsym and
#       made each one a --gc-sections root. Nothing looks them up (the runtime's own libraries
#       are --exclude-libs ALL already; the one dlsym, setns, is libc's): 4.3 MB.
#   -use-ld=lld, -z pack-relative-relocs  the toolchain's lld instead of gold, for DT_RELR:
#       the PIE's 127,000 relative relocations take 25 KB instead of 3 MB of .rela.dyn
#       (glibc >= 2.36, Debian 12's; the binary then needs GLIBC_ABI_DT_RELR, so an older
#       libc refuses it at load instead of crashing). Given to swiftc, the flag only selects
#       the linker; compiling ignores it.
#   --icf=safe           identical code folded where no address is taken.
#   -L static-libstdc++  libstdc++ linked in: a folder holding only GCC's libstdc++.a, searched
#       before GCC's own (where -lstdc++ finds the .so), so the 2.2 MB shared library leaves
#       the image for the 0.5 MB of it the binary uses. Nothing else in the process loads
#       libstdc++ (liblua5.4 and libsqlite3 are C), so there is one copy.
stdcxx=$(dirname "$(command -v swift)")/clang
stdcxx=$("$stdcxx" -print-file-name=libstdc++.a)
[ -f "$stdcxx" ] || { echo "package: no libstdc++.a (libstdc++-12-dev)" >&2; exit 1; }
mkdir -p "$SCRATCH/static-libstdc++"
if [ "$(readlink "$SCRATCH/static-libstdc++/libstdc++.a" 2>/dev/null)" != "$stdcxx" ]; then
  ln -sfn "$stdcxx" "$SCRATCH/static-libstdc++/libstdc++.a"; rm -f "$SCRATCH/release/bootpolicy"
fi
link_flags=(-Xswiftc -use-ld=lld -Xlinker -z -Xlinker pack-relative-relocs
            -Xlinker --no-export-dynamic -Xlinker --icf=safe -Xswiftc "-L$SCRATCH/static-libstdc++")
say "swift build -c release --static-swift-stdlib (commit $commit)"
if ! swift build -c release --static-swift-stdlib --product bootpolicy --scratch-path "$SCRATCH" -j 2 \
     -Xlinker "$SCRATCH/objects/stamp.o" -Xlinker "$SCRATCH/objects/icu.o" -Xlinker "--wrap=$icu_symbol" \
     "${link_flags[@]}" >"$WORK/build.log" 2>&1; then
  grep -E "error" "$WORK/build.log" | head -n 30 >&2; tail -n 5 "$WORK/build.log" >&2
  echo "package: build failed" >&2; exit 1
fi
bin=$SCRATCH/release/bootpolicy
if readelf -d "$bin" | grep -q 'NEEDED.*libstdc++'; then
  echo "package: the binary loads libstdc++.so: the linker found it before $SCRATCH/static-libstdc++" >&2; exit 1
fi
stripped=$WORK/bootpolicy
cp "$bin" "$stripped"
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$stripped"
version=$("$stripped" version | awk '{print $2}')
"$stripped" --version | grep -q "commit $commit" || { echo "package: the binary does not say commit $commit" >&2; exit 1; }
say "bootpolicy $("$stripped" --version), $(( $(stat -c %s "$stripped") / 1048576 )) MiB stripped ($(stat -c %s "$stripped") bytes)"
# A smoke test of what the trimmed ICU data could break (dates in JSON logs, the API's times):
# serve on loopback for a moment, and every line must have come out before it was stopped.
smoke_root=$WORK/smoke
mkdir -p "$smoke_root"
"$stripped" serve --user root --listen 127.0.0.1 --dhcp-port 0 --tftp-port 0 --http-port 0 --tftp-root "$smoke_root" \
  --log-format json >"$WORK/smoke.log" 2>&1 &
smoke_pid=$!
for _ in $(seq 1 100); do grep -q '"msg":"serving: http' "$WORK/smoke.log" && break; kill -0 "$smoke_pid" 2>/dev/null || break; sleep 0.1; done
smoke_port=$(grep -o '"msg":"serving: http 127.0.0.1:[0-9]*' "$WORK/smoke.log" | grep -o '[0-9]*$' || true)
smoke_ok=0
if [ -n "$smoke_port" ] && curl -sf --max-time 5 "http://127.0.0.1:$smoke_port/api/v1/clients" >/dev/null \
   && curl -sf --max-time 5 "http://127.0.0.1:$smoke_port/" >/dev/null; then smoke_ok=1; fi
kill "$smoke_pid" 2>/dev/null || true
wait "$smoke_pid" 2>/dev/null; smoke_rc=$?
if [ "$smoke_ok" != 1 ] || { [ "$smoke_rc" -gt 128 ] && [ "$smoke_rc" -ne 143 ]; }; then
  tail -n 20 "$WORK/smoke.log" >&2; echo "package: the built binary failed its smoke test (exit $smoke_rc)" >&2; exit 1
fi

# Manual pages, one per subcommand (swift-argument-parser's generate-manual plugin, which
# reads the command's --experimental-dump-help). It builds the debug binary in .build, the one
# the tests use: the same commands and flags as the release one, and no second release build.
mkdir -p "$WORK/man"
if ! swift package --allow-writing-to-directory "$WORK/man" generate-manual --configuration debug --multi-page \
     --output-directory "$WORK/man" --date "$(git log -1 --format=%cs 2>/dev/null || date +%F)" \
     --authors "the bootpolicy developers" >"$WORK/manual.log" 2>&1 || ! ls "$WORK"/man/*.1 >/dev/null 2>&1; then
  tail -n 20 "$WORK/manual.log" >&2; echo "package: no manual pages (swift package generate-manual)" >&2; exit 1
fi

# --- the Debian package --------------------------------------------------------------------
root=$WORK/deb
install -D -m 0755 "$stripped" "$root/usr/bin/bootpolicy"
install -d "$root/usr/share/bootpolicy"
cp -r policies "$root/usr/share/bootpolicy/policies"
install -D -m 0644 packaging/bootpolicy.yaml "$root/etc/bootpolicy/bootpolicy.yaml"
install -D -m 0644 packaging/bootpolicy.service "$root/lib/systemd/system/bootpolicy.service"
install -d "$root/usr/share/man/man1"
# generate-manual names a subcommand's page bootpolicy.serve.1 with the name "bootpolicy serve";
# man and whatis want one word, so the pages become bootpolicy-serve(1), as git-commit(1) is,
# with the synopsis still spelling the command as typed. `help` has no page of its own.
for page in "$WORK"/man/*.1; do
  name=$(basename "$page" .1)
  [ "$name" != bootpolicy.help ] || continue
  command=${name//./ }
  file=${name//./-}
  sed -e "s/^\.Dt [A-Z.]* /.Dt $(tr '[:lower:]' '[:upper:]' <<<"$file") /" \
      -e "/^\.Sh NAME/{n;s/^\.Nm .*/.Nm $file/}" -e "s/^\.Nm\$/.Nm \"$command\"/" "$page" \
    | gzip -9n >"$root/usr/share/man/man1/$file.1.gz"
done
# Sourced by bash-completion, not run: no #! line.
"$stripped" --generate-completion-script bash | sed '1{/^#!/d}' | install -D -m 0644 /dev/stdin "$root/usr/share/bash-completion/completions/bootpolicy"
"$stripped" --generate-completion-script zsh | install -D -m 0644 /dev/stdin "$root/usr/share/zsh/vendor-completions/_bootpolicy"
"$stripped" --generate-completion-script fish | install -D -m 0644 /dev/stdin "$root/usr/share/fish/vendor_completions.d/bootpolicy.fish"
doc=$root/usr/share/doc/bootpolicy
install -d "$doc/examples"
cp README.md docs/*.md "$doc/"
cp -r examples/. "$doc/examples/"
install -m 0644 packaging/debian/copyright "$doc/copyright"
sed "s/@VERSION@/$version/; s/@DATE@/$(git log -1 --format=%aD 2>/dev/null || date -R)/; s/@COMMIT@/$commit/" \
  packaging/debian/changelog | gzip -9n >"$doc/changelog.gz"
install -D -m 0644 packaging/debian/lintian-overrides "$root/usr/share/lintian/overrides/bootpolicy"
find "$root" -type d -exec chmod 0755 {} +
find "$root/usr/share" "$root/etc" "$root/lib" -type f -exec chmod 0644 {} +

install -d "$root/DEBIAN"
install -m 0755 packaging/debian/postinst packaging/debian/postrm "$root/DEBIAN/"
echo /etc/bootpolicy/bootpolicy.yaml >"$root/DEBIAN/conffiles"
# dpkg-shlibdeps reads a debian/control, even a minimal one.
mkdir -p "$WORK/shlibs/debian"
printf 'Source: bootpolicy\n\nPackage: bootpolicy\nArchitecture: amd64\n' >"$WORK/shlibs/debian/control"
shlibs=$(cd "$WORK/shlibs" && dpkg-shlibdeps -O "$root/usr/bin/bootpolicy" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "package: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
# DT_RELR (the link above) is a version the binary needs with no symbol behind it, which
# dpkg-shlibdeps does not see: glibc has it from 2.36.
if readelf -V "$root/usr/bin/bootpolicy" | grep -q 'Name: GLIBC_ABI_DT_RELR'; then
  libc=$(grep -o 'libc6 (>= [0-9.]*)' <<<"$shlibs" || true)
  [ -n "$libc" ] || { echo "package: no libc6 in '$shlibs'" >&2; exit 1; }
  libc_version=${libc#*>= }; libc_version=${libc_version%)}
  if dpkg --compare-versions "$libc_version" lt 2.36; then shlibs=${shlibs/"$libc"/libc6 (>= 2.36)}; fi
fi
sed -e "s/@VERSION@/$version/" -e "s/@DEPENDS@/$shlibs, adduser/" \
    -e "s/@SIZE@/$(du -sk --exclude=DEBIAN "$root" | cut -f1)/" packaging/debian/control >"$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum >DEBIAN/md5sums)
deb=$DIST/bootpolicy_${version}_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
say "$deb ($(( $(stat -c %s "$deb") / 1048576 )) MiB), Depends: $shlibs, adduser"
if [ "$LINT" = 1 ]; then
  # Tags not overridden are printed and fail the build (docs/install.md explains the overrides).
  lint_ok=0
  lintian --fail-on error,warning --tag-display-limit 0 "$deb" >"$WORK/lintian.txt" 2>&1 || lint_ok=$?
  lint=$(grep -v '^running with root privileges' "$WORK/lintian.txt" || true)
  [ "$lint_ok" -eq 0 ] || { echo "$lint"; echo "package: lintian found problems" >&2; exit 1; }
  say "lintian: clean${lint:+ (}${lint:+$(echo "$lint" | wc -l) info tags)}"
  [ -z "$lint" ] || echo "$lint" | sed 's/^/  /'
fi

# --- the OCI image -------------------------------------------------------------------------
if [ "$IMAGE" = 1 ]; then
  ctx=$WORK/oci
  rootfs=$ctx/rootfs
  install -D -m 0755 "$stripped" "$rootfs/usr/bin/bootpolicy"
  install -d "$rootfs/usr/share/bootpolicy" "$rootfs/srv/tftp" "$rootfs/var/lib/bootpolicy" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  cp -r policies "$rootfs/usr/share/bootpolicy/policies"
  install -D -m 0644 packaging/bootpolicy.yaml "$rootfs/etc/bootpolicy/bootpolicy.yaml"
  # The libraries the binary loads, and the loader, where the binary looks for them.
  for lib in $(ldd "$stripped" | awk '/=> \// {print $3} /^\t\/lib64/ {print $1}'); do
    install -D -m 0644 "$(readlink -f "$lib")" "$rootfs$lib"
  done
  chmod 0755 "$rootfs"/lib64/ld-linux-*.so.*
  # The user serve gives root up for (uid/gid 101, the image's own: no host account needed).
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nbootpolicy:x:101:101:bootpolicy:/var/lib/bootpolicy:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nbootpolicy:x:101:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  chown 101:101 "$rootfs/var/lib/bootpolicy"
  chmod 0750 "$rootfs/var/lib/bootpolicy"
  tar -C "$rootfs" --numeric-owner --sort=name --mtime=@0 -cf "$ctx/rootfs.tar" .
  rm -rf "$rootfs"
  cp packaging/Containerfile "$ctx/Containerfile"
  conf=$WORK/containers.conf
  # This machine's podman: no default ulimits (the sandbox refuses them), runc not crun.
  printf '[containers]\ndefault_ulimits = []\n' >"$conf"
  export CONTAINERS_CONF=$conf
  tag=localhost/bootpolicy:$version
  podman --runtime runc build --quiet --no-cache --build-arg "VERSION=$version" --build-arg "COMMIT=$commit" \
    -t "$tag" "$ctx" >/dev/null
  oci=$DIST/bootpolicy-$version.oci.tar
  rm -f "$oci"
  podman save --quiet --format oci-archive -o "$oci" "$tag"
  size=$(podman image inspect --format '{{.Size}}' "$tag")
  # Tests/Packaging/run.sh holds the image to 60,000,000 bytes.
  say "$oci: image $tag, $(( size / 1000000 )) MB ($size bytes, $(( 60000000 - size )) under the 60 MB limit) unpacked, archive $(( $(stat -c %s "$oci") / 1000000 )) MB"
fi
