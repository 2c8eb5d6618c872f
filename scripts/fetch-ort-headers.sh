#!/usr/bin/env bash
# Fetches the ONNX Runtime C API headers (Debian sid's libonnxruntime-dev, headers only) into .cache/ort-headers.
# The op library and the session addon compile against them; nothing links libonnxruntime.
# The apt source is derived from this machine's own Debian sources, with the suite switched to sid, in a private
# apt state directory so the system's package lists are untouched.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.cache/ort-headers"
if [[ -f "$dest/include/onnxruntime_c_api.h" ]]; then echo "$dest/include"; exit 0; fi
if [[ -n "${ORT_HEADERS_DIR:-}" && -f "$ORT_HEADERS_DIR/onnxruntime_c_api.h" ]]; then echo "$ORT_HEADERS_DIR"; exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/etc/sources.list.d" "$work/etc/preferences.d"
# First Debian archive URI this machine uses (not the security one).
uri=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | grep -E '^(URIs:|deb )' \
  | grep -v security | grep -oE 'https?://[^ ]+/debian/?' | head -n1 || true)
[[ -n "$uri" ]] || { echo "fetch-ort-headers: no Debian archive found in this machine's apt sources" >&2; exit 1; }
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
printf 'Types: deb\nURIs: %s\nSuites: sid\nComponents: main\nSigned-By: %s\n' "$uri" "$keyring" > "$work/etc/sources.list.d/sid.sources"
: > "$work/etc/sources.list"
opts=(-o Dir::State::Lists="$work/lists" -o Dir::Cache="$work/cache" -o Dir::Etc::SourceList="$work/etc/sources.list"
      -o Dir::Etc::SourceParts="$work/etc/sources.list.d" -o Dir::Etc::Preferences="$work/etc/preferences"
      -o Dir::Etc::PreferencesParts="$work/etc/preferences.d" -o APT::Architecture=amd64 -o APT::Architectures=amd64
      -o Acquire::Languages=none -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
# (downloads into a private temporary folder as the caller: apt's _apt sandbox user could not write there)
echo "fetching the ONNX Runtime C headers (Debian sid libonnxruntime-dev, once; cached in .cache/)" >&2
apt-get "${opts[@]}" -qq update >&2
(cd "$work" && apt-get "${opts[@]}" -qq download libonnxruntime-dev >&2)
deb=$(ls "$work"/libonnxruntime-dev_*.deb | head -n1)
dpkg -x "$deb" "$work/x"
hdr=$(dirname "$(find "$work/x" -name onnxruntime_c_api.h | head -n1)")
mkdir -p "$dest/include"
cp "$hdr"/*.h "$dest/include/"
basename "$deb" > "$dest/SOURCE"
echo "$dest/include"
