# SPDX-License-Identifier: BSD-3-Clause
# Sourced by the consumer tests (sh): install_as_user BUILD DEST installs
# exactly what a user gets into DEST (meson install --destdir, no rebuild)
# and points pkg-config at it; it sets libdir (the installed library
# directory) and san_flags (the -fsanitize flags a consumer of a sanitized
# build needs, from $sanitize). It exits the test with 1 on failure.
install_as_user() {
	_build=$1 _dest=$2
	if ! meson install -C "$_build" --destdir "$_dest" --no-rebuild >"$_dest.install.log" 2>&1; then
		cat "$_dest.install.log"
		echo "FAIL: meson install --destdir"
		exit 1
	fi
	_pc=$(find "$_dest" -name aioblk.pc -path '*/pkgconfig/*' | head -n 1)
	if [ -z "$_pc" ]; then
		echo "FAIL: no aioblk.pc under $_dest"
		exit 1
	fi
	# The .pc file holds the real prefix; the sysroot puts -I and -L inside the destdir.
	PKG_CONFIG_PATH=$(dirname "$_pc")
	PKG_CONFIG_LIBDIR=$PKG_CONFIG_PATH
	PKG_CONFIG_SYSROOT_DIR=$_dest
	export PKG_CONFIG_PATH PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR
	libdir=$_dest$(pkg-config --variable=libdir aioblk | sed "s|^$_dest||")
	san_flags=
	if [ "${sanitize:-none}" != none ] && [ -n "${sanitize:-}" ]; then
		san_flags="-fsanitize=$sanitize"
	fi
}
