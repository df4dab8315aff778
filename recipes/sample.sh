#!/bin/sh
# Generate the sample device images and the payloads the reference recipes
# pin, deterministically: every file is a short text header followed by
# filler derived from its name, so digests are stable across machines and
# nothing large or foreign is committed.
#
#   recipes/sample.sh image VARIANT DIR   VARIANT: old | current | patched
#   recipes/sample.sh payloads DIR        payloads/ tree of a feed
set -eu

# gen FILE NAME SIZE: write SIZE bytes of content named NAME to FILE
gen() {
	mkdir -p "$(dirname "$1")"
	{ printf 'bsi sample file: %s\n' "$2"; yes "$2" | head -c "$3"; } > "$1"
}

# framework DIR NAME: the Versions/A + Current symlink layout of a bundle
framework_links() {
	ln -sfn A "$1/Versions/Current"
	ln -sfn "Versions/Current/$2" "$1/$2"
}

# The files each release has.  $1 image dir, $2 release tag of each file.
lay_out() {
	d=$1
	gen "$d/Applications/Safari.app/Contents/MacOS/Safari" "Safari $2" 40000
	gen "$d/Applications/Safari.app/Contents/Frameworks/SafariShared" "SafariShared $2" 30000
	for f in WebKit JavaScriptCore ImageIO; do
		fw="$d/System/Library/Frameworks/$f.framework"
		rel=$2
		[ "$f" = ImageIO ] && rel=$3
		gen "$fw/Versions/A/$f" "$f $rel" 60000
		framework_links "$fw" "$f"
	done
	gen "$d/usr/lib/libSystem.B.dylib" "libSystem $3" 50000
	gen "$d/usr/lib/libboringssl.dylib" "libboringssl $3" 45000
	mkdir -p "$d/System/Library/CoreServices"
	cat > "$d/System/Library/CoreServices/SystemVersion.plist" <<PLIST
<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0">
<dict>
	<key>ProductName</key>
	<string>macOS</string>
	<key>ProductVersion</key>
	<string>$4</string>
</dict>
</plist>
PLIST
	printf '%s\n' "$2" > "$d/System/Library/Frameworks/WebKit.framework/Versions/A/version.txt"
}

case "${1:-}" in
image)
	variant=$2 dir=$3
	rm -rf "$dir"
	mkdir -p "$dir"
	case "$variant" in
	old) lay_out "$dir" 25.6 25.6 25.6 ;;
	current) lay_out "$dir" 26.0 26.0 26.0 ;;
	patched)
		lay_out "$dir" 26.0 26.0 26.0
		"$0" payloads "$dir.payloads"
		p="$dir.payloads"
		cp "$p/safari/Safari-26.0.1" "$dir/Applications/Safari.app/Contents/MacOS/Safari"
		cp "$p/safari/SafariShared-26.0.1" "$dir/Applications/Safari.app/Contents/Frameworks/SafariShared"
		for f in WebKit JavaScriptCore; do
			cp "$p/webkit/$f-26.0.2" "$dir/System/Library/Frameworks/$f.framework/Versions/A/$f"
		done
		cp "$p/corelibs/libboringssl-26.0.1" "$dir/usr/lib/libboringssl.dylib"
		cp "$p/corelibs/ImageIO-26.0.1" "$dir/System/Library/Frameworks/ImageIO.framework/Versions/A/ImageIO"
		cp "$p/corelibs/libSystem-26.0.1" "$dir/usr/lib/libSystem.B.dylib"
		rm -rf "$p"
		;;
	*) echo "unknown variant $variant (old, current, patched)" >&2; exit 2 ;;
	esac
	;;
payloads)
	p=$2
	gen "$p/safari/Safari-26.0.1" "Safari 26.0.1" 40100
	gen "$p/safari/SafariShared-26.0.1" "SafariShared 26.0.1" 30100
	gen "$p/webkit/JavaScriptCore-26.0.1" "JavaScriptCore 26.0.1" 60100
	gen "$p/webkit/WebKit-26.0.2" "WebKit 26.0.2" 60200
	gen "$p/webkit/JavaScriptCore-26.0.2" "JavaScriptCore 26.0.2" 60200
	gen "$p/corelibs/libboringssl-26.0.1" "libboringssl 26.0.1" 45100
	gen "$p/corelibs/ImageIO-26.0.1" "ImageIO 26.0.1" 60100
	gen "$p/corelibs/libSystem-26.0.1" "libSystem 26.0.1" 50100
	;;
*)
	echo "usage: $0 image old|current|patched DIR | payloads DIR" >&2
	exit 2
	;;
esac
